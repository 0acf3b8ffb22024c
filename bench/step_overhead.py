"""Per-step Python overhead of the compiled steps on a tiny network (seed-2x2: 2-2-2, batch 1),
where a step is almost all dispatch: the figure to watch when touching Ops.train_step or a
backend's Prepared.

    python bench/step_overhead.py [--backends numba,cython] [--steps 20000] [--rounds 7]

Prints, per backend and optimizer, the best of `rounds` rounds of `steps` train_step calls,
in microseconds of this thread's CPU time per step (time.thread_time: a process that waits
for a shared core is not charged for the wait). Compare two trees by alternating processes (noise on a shared
machine is larger than the differences), e.g.
    for i in 1 2 3; do for t in /old /new; do PYTHONPATH=$t/src python bench/step_overhead.py; done; done
"""
import argparse
import time

import numpy as np

import fastbp as fb


def per_step(net, X, y, opt, steps, rounds):
    for _ in range(200):                       # compile, bind, warm the caches
        net.train_step(X, y, opt)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        for _ in range(steps):
            net.train_step(X, y, opt)
        best = min(best, (time.thread_time() - t0) / steps)
    return best * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numba,cython")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    X = np.array([[0.05, 0.10]], dtype=np.float32)
    y = np.array([[0.01, 0.99]], dtype=np.float32)
    for backend in args.backends.split(","):
        for name, make in (("sgd", lambda: fb.SGD(0.5)), ("adam", lambda: fb.Adam(0.01))):
            net = fb.MLP([2, 2, 2], activation="sigmoid", output_activation="sigmoid", backend=backend, seed=0)
            print(f"{backend:8s} {name:5s} {per_step(net, X, y, make(), args.steps, args.rounds):7.3f} us/step",
                  flush=True)


if __name__ == "__main__":
    main()
