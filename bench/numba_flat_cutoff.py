"""The sweep behind numba_cpu/step.py's FLAT_MAX_MACS: the view-free pass against the
view/BLAS pass on the same tiny networks, around the cut-off (float32 SGD train_step, thread
CPU time, best of rounds, interleaved in one process).

    python bench/numba_flat_cutoff.py [--rounds 7] [--steps 5000]

Prints, per shape, the largest layer's multiply-adds per step (batch * n_in * n_out; the
view-free pass runs where it is <= FLAT_MAX_MACS) and view / flat time: above 1, the
view-free pass is faster.
"""
import argparse
import time

import numpy as np

import fastbp as fb
from fastbp._kernels.numba_cpu import step

SHAPES = [((2, 2, 2), 1), ((4, 8, 4), 2), ((8, 8, 8), 4), ((8, 16, 8), 4), ((16, 16, 4), 2),
          ((16, 16, 16), 2), ((16, 32, 16), 1), ((32, 32, 8), 2), ((32, 32, 32), 1)]


def timed(net, X, y, opt, steps):
    t0 = time.thread_time()
    for _ in range(steps):
        net.train_step(X, y, opt)
    return (time.thread_time() - t0) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"FLAT_MAX_MACS = {step.FLAT_MAX_MACS}")
    print(f"{'shape':>14} {'batch':>5} {'max MACs':>9} {'flat us':>8} {'view us':>8} {'view/flat':>9}")
    limit = step.FLAT_MAX_MACS
    for sizes, batch in SHAPES:
        X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
        y = rng.normal(size=(batch, sizes[-1])).astype(np.float32)
        runs = {}
        for kind, cutoff in (("flat", 1 << 62), ("view", -1)):
            step.FLAT_MAX_MACS = cutoff          # read when a batch size is first prepared
            net = fb.MLP(list(sizes), activation="tanh", backend="numba", seed=0)
            opt = fb.SGD(1e-3)
            timed(net, X, y, opt, 50)
            runs[kind] = (net, opt)
        step.FLAT_MAX_MACS = limit
        best = {kind: min(timed(runs[kind][0], X, y, runs[kind][1], args.steps) for _ in range(args.rounds))
                for kind in runs}
        macs = max(batch * a * b for a, b in zip(sizes[:-1], sizes[1:]))
        print(f"{'-'.join(map(str, sizes)):>14} {batch:>5} {macs:>9} {best['flat'] * 1e6:>8.2f} "
              f"{best['view'] * 1e6:>8.2f} {best['view'] / best['flat']:>9.2f}")


if __name__ == "__main__":
    main()
