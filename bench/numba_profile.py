"""Where the time of a Numba train_step goes: the public net.train_step, the backend's
ops.train_step (no boundary checks), the bare compiled call, and the boundary checks
alone, interleaved in one process (medians of rounds), beside JAX jit and torch eager.

    python bench/numba_profile.py [workload ...] [--rounds N] [--no-peers] [--gemm]

--gemm times the register-blocked loops against BLAS (np.dot in njit) on the benchmark
shapes, which is how numba_cpu.products.BLAS_MIN_FLOPS was chosen.
"""
import argparse
import dataclasses
import time

import numpy as np

import fastbp as fb
from fastbp import validation
from fastbp.benchmark import optimizers
from fastbp.benchmark.workloads import ALL


def timer(fn, n=None, budget=0.01):
    """A callable timing one round of fn: n calls (or as many as fit in ~budget seconds)."""
    if n is None:
        fn()
        t = time.perf_counter()
        fn()
        n = max(1, min(20000, int(budget / max(time.perf_counter() - t, 1e-7))))

    def run():
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n
    return run


def interleaved(fns, rounds):
    for f in fns.values():
        f()
    res = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            res[k].append(f())
    return {k: float(np.median(v)) for k, v in res.items()}


def profile(w, rounds, peers):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((w.batch, w.sizes[0])).astype(np.float32)
    y = rng.standard_normal((w.batch, w.sizes[-1])).astype(np.float32)
    net = fb.MLP(w.sizes, activation=w.activation, output_activation=w.output_activation,
                 loss=w.loss, dtype=np.float32, backend="numba", seed=0)
    opt = fb.SGD(1e-4)
    net.train_step(X, y, opt)
    ops, state = net._ops, net._state
    run = ops.prepared(state, w.batch).steps["sgd"]      # the compiled step with its arguments
    n = None      # calibrated per implementation: ~10 ms per round
    fns = {
        "net.train_step": timer(lambda: net.train_step(X, y, opt), n),
        "ops.train_step": timer(lambda: ops.train_step(state, X, y, opt), n),
        "compiled call": timer(lambda: run(X, y, opt), n),
        "boundary checks": timer(lambda: (net.check_optimizer(opt),
                                          validation.ready_pair(X, y, net.dtype, w.sizes[0], w.sizes[-1])), n),
    }
    if peers:
        from fastbp.benchmark.peers import PEERS
        for peer in PEERS.values():
            if peer.name in ("jax", "torch") and peer.available()[0]:
                step = peer.build(w, [np.array(a) for a in net.weights], [np.array(b) for b in net.biases],
                                  X, y, dataclasses.replace(optimizers.SGD, lr=1e-4)).step
                fns["peer:" + peer.name] = timer(step, n)
    res = interleaved(fns, rounds)
    print(f"{w.name}: {w.label()}  (median of {rounds} interleaved rounds of ~10 ms)")
    for k, v in res.items():
        print(f"  {k:18s} {v * 1e6:10.2f} us")
    best = min((v for k, v in res.items() if k.startswith("peer:")), default=None)
    if best:
        print(f"  speed-up of net.train_step over the best peer: {best / res['net.train_step']:.2f}x")


def gemm(rounds):
    from numba import njit
    from fastbp._kernels.numba_cpu import products as K

    @njit(cache=True)
    def blas_nn(A, B, C):
        np.dot(A, B, C)

    rng = np.random.default_rng(0)
    print("C = A @ B, float32: register-blocked loops vs BLAS (np.dot in njit), us")
    for M, Kk, N in [(1, 2, 2), (4, 16, 16), (8, 32, 32), (16, 32, 32), (32, 64, 1), (64, 64, 10),
                     (16, 64, 64), (32, 64, 64), (64, 64, 64), (64, 128, 64), (64, 784, 128), (256, 256, 256)]:
        A = rng.standard_normal((M, Kk)).astype(np.float32)
        B = rng.standard_normal((Kk, N)).astype(np.float32)
        C = np.empty((M, N), np.float32)
        n = max(3, int(1e7 / (M * Kk * N + 1000)))
        res = interleaved({"loops": timer(lambda: K._small_nn(A, B, C, False), n),
                           "blas": timer(lambda: blas_nn(A, B, C), n)}, rounds)
        print(f"  {M:4d}x{Kk:4d}x{N:4d} ({M * Kk * N:9d} MACs): loops {res['loops'] * 1e6:9.2f}  "
              f"blas {res['blas'] * 1e6:9.2f}  loops/blas {res['loops'] / res['blas']:.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("workloads", nargs="*", default=["seed-2x2", "tiny-64", "mnist", "mnist-b256"])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--gemm", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="fastbp.set_num_threads(N) first")
    a = p.parse_args()
    if a.threads:
        fb.set_num_threads(a.threads)
    if a.gemm:
        gemm(a.rounds)
    else:
        for name in a.workloads:
            profile(ALL[name], a.rounds, not a.no_peers)
