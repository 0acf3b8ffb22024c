"""The sweep behind cython_cpu/kernels.pyx's parallel_min (when an elementwise pass splits
over OpenMP threads): the same float32 SGD train_step with every pass split and with the
default cut-off, interleaved in one process, median wall time of rounds.

    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 python bench/cython_parallel_min.py [--workloads mnist-b256,wide-1024] [--rounds 9]

Prints ms per step for each cut-off and split / default: above 1, splitting loses. On a
machine whose cores are shared, expect it to lose badly (bench/results/cython-openmp.md).
"""
import argparse
import statistics
import time

import numpy as np

import fastbp as fb
from fastbp._kernels.cython_cpu import kernels
from fastbp.benchmark.workloads import ALL, make_batch, make_net


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="mnist-b256,wide-1024")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with_openmp, threads = kernels.openmp()
    print(f"OpenMP compiled in: {with_openmp}, {threads} threads; default cut-off {kernels.get_parallel_min():,}")
    default = kernels.get_parallel_min()
    for name in args.workloads.split(","):
        w = ALL[name]
        net, (X, y), opt = make_net(w, np.float32, "cython"), make_batch(w, np.float32), fb.SGD(1e-3)
        times = {"split": [], "default": []}
        for _ in range(args.rounds):
            for label, cutoff in (("split", 0), ("default", default)):
                kernels.set_parallel_min(cutoff)
                t0 = time.perf_counter()
                net.train_step(X, y, opt)
                times[label].append(time.perf_counter() - t0)
        kernels.set_parallel_min(default)
        split, base = statistics.median(times["split"]), statistics.median(times["default"])
        print(f"{name:>12}  split {split * 1e3:8.2f} ms  default {base * 1e3:8.2f} ms  split/default {split / base:5.2f}")


if __name__ == "__main__":
    main()
