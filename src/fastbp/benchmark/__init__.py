"""The measuring instrument behind `fastbp bench` and the pytest-benchmark suite in bench/.

workloads  the standard workloads (names, shapes), their data and their flop counts
optimizers the update rules a step is timed with (plain SGD, momentum SGD, Adam)
peers      one training step written with NumPy, PyTorch, JAX and scikit-learn, each
           with its own optimizer
timing     interleaved rounds, warm-up excluded, medians; the GEMM peak
guard      fastbp backends against the NumPy reference, every candidate's losses and
           parameters after a few steps against the reference's
threads    one thread limit applied to every pool (BLAS, OpenMP, Numba, torch, XLA)
cold       first-call latency in fresh subprocesses
report     the table, the JSON record, the bar chart

Nothing here is imported by `import fastbp`.
"""
