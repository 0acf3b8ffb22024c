"""The measuring instrument behind `fastbp bench` and the pytest-benchmark suite in bench/.

workloads  the standard workloads (names, shapes), their data and their flop counts
peers      one SGD training step written with NumPy, PyTorch, JAX and scikit-learn
timing     interleaved rounds, warm-up excluded, medians; the GEMM peak
guard      fastbp backends against the NumPy reference, peers against fastbp's losses
threads    one thread limit applied to every pool (BLAS, OpenMP, Numba, torch, XLA)
cold       first-call latency in fresh subprocesses
report     the table, the JSON record, the bar chart

Nothing here is imported by `import fastbp`.
"""
