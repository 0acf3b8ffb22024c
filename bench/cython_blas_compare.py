"""NumPy's vs SciPy's OpenBLAS, as the Cython kernels call them (sgemm, row-major, float32).

Times the GEMMs of one train step of wide-1024 and mnist-b256 (forward X@W, weight
gradient A.T@delta, delta propagation delta@W.T) through fastbp's Cython wrappers, switching
the provider with _cy_blas.use(), interleaved, median of repeats. Reports GFLOP/s per
provider and shape, and whole-train-step time per provider.

    python bench/cython_blas_compare.py [rounds]          (threads: each library's default)
    OPENBLAS_NUM_THREADS=1 python bench/cython_blas_compare.py --cpu-time

--cpu-time measures thread CPU time (meaningful single-threaded on a shared, loaded
machine); otherwise wall-clock.
"""
import sys
import time

import numpy as np

import fastbp as fb
from fastbp._kernels.cython_cpu import blas as _cy_blas

CPU = "--cpu-time" in sys.argv
clock = time.thread_time if CPU else time.perf_counter
ROUNDS = int(next((a for a in sys.argv[1:] if a.isdigit()), 15))
WORKLOADS = {"mnist-b256": ((784, 256, 256, 10), 256), "wide-1024": ((1024, 1024, 1024, 1024), 256)}


def gemm_shapes(sizes, batch):
    """(name, M, N, K, trans) for each GEMM of a step (row-major C = op(A) op(B))."""
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        out.append((f"fwd {batch}x{n_in}@{n_in}x{n_out}", batch, n_in, n_out))
    return out


def main():
    original = _cy_blas.provider()[0]
    providers = []
    for name in ("numpy", "scipy"):
        try:
            print(f"{name}: {_cy_blas.use(name)}")
            providers.append(name)
        except ValueError as e:
            print(f"{name}: not reachable ({e})")
    rng = np.random.default_rng(0)
    for workload, (sizes, batch) in WORKLOADS.items():
        kernels = {}
        for (n_in, n_out) in zip(sizes[:-1], sizes[1:]):
            X = rng.normal(size=(batch, n_in)).astype(np.float32)
            W = rng.normal(size=(n_in, n_out)).astype(np.float32)
            b = np.zeros(n_out, np.float32)
            D = rng.normal(size=(batch, n_out)).astype(np.float32)
            flops = 2 * batch * n_in * n_out
            kernels[f"X@W   {batch}x{n_in}x{n_out}"] = (lambda X=X, W=W, b=b: fb.kernels.linear_forward(X, W, b, "identity", backend="cython"), flops)
            kernels[f"A.T@D {n_in}x{batch}x{n_out}"] = (lambda X=X, D=D: fb.kernels.weight_gradient(X, D, backend="cython"), flops)
            kernels[f"D@W.T {batch}x{n_out}x{n_in}"] = (lambda X=X, D=D, W=W: fb.kernels.delta_propagate(D, W, X, X, "identity", backend="cython"), flops)
        net = fb.MLP(list(sizes), backend="cython", seed=0)
        opt = fb.SGD(1e-3)
        Xs = rng.normal(size=(batch, sizes[0])).astype(np.float32)
        ys = rng.normal(size=(batch, sizes[-1])).astype(np.float32)
        kernels["train_step"] = (lambda: net.train_step(Xs, ys, opt), 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) - 2 * batch * sizes[0] * sizes[1])
        times = {(k, p): [] for k in kernels for p in providers}
        for r in range(ROUNDS + 2):
            for p in providers:
                _cy_blas.use(p)
                for k, (f, _) in kernels.items():
                    t0 = clock()
                    f()
                    if r >= 2:
                        times[k, p].append(clock() - t0)
        print(f"\n{workload} ({'thread CPU time' if CPU else 'wall clock'}, median of {ROUNDS} interleaved rounds): GFLOP/s")
        for k, (_, flops) in kernels.items():
            cells = "  ".join(f"{p} {flops / np.median(times[k, p]) / 1e9:7.1f}" for p in providers)
            print(f"  {k:24s} {cells}")
    _cy_blas.use(original)


if __name__ == "__main__":
    main()
