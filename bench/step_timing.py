"""train_step time per workload, backend and optimizer, for before/after comparisons of the
step code (the standard workloads' networks and batches, float32, one thread).

    python bench/step_timing.py [--workloads seed-2x2,tiny-64,mnist,mnist-b256]
                                [--backends numba,cython] [--optimizers sgd,adam]
                                [--rounds 7] [--seconds 0.2] [--json PATH]

Prints, per case, the median over `rounds` rounds of the CPU time of this thread per step
(time.thread_time; each round runs about `seconds`). It uses only the API every version of
fastbp has, so the same file times an old tree and a new one: alternate processes, e.g.
    for i in 1 2 3; do for t in /old /new; do PYTHONPATH=$t/src python bench/step_timing.py; done; done
and compare the medians (bench/results/ records such runs with their commands).

    python bench/step_timing.py --summarize PATH.jsonl

prints, from the lines such runs appended (--json), each case's median over the runs per
tree, and the runs' values.
"""
import argparse
import json
import statistics
import time
from collections import defaultdict

import numpy as np

import fastbp as fb
from fastbp.benchmark.workloads import ALL, make_batch, make_net

OPTIMIZERS = {"sgd": lambda: fb.SGD(1e-3), "momentum": lambda: fb.SGD(1e-3, momentum=0.9),
              "adam": lambda: fb.Adam(1e-4)}


def per_step(net, X, y, opt, rounds, seconds):
    """-> the median of `rounds` rounds, in microseconds of thread CPU time per step."""
    for _ in range(20):                          # compile, bind, warm the caches
        net.train_step(X, y, opt)
    t0, steps = time.thread_time(), 0
    while time.thread_time() - t0 < seconds / 4:
        net.train_step(X, y, opt)
        steps += 1
    steps = max(1, int(steps * 4))
    times = []
    for _ in range(rounds):
        t0 = time.thread_time()
        for _ in range(steps):
            net.train_step(X, y, opt)
        times.append((time.thread_time() - t0) / steps)
    return statistics.median(times) * 1e6


def summarize(path):
    rows = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows[(r["workload"], r["backend"], r["optimizer"]), r["tree"].split("/src/")[0]].append(r["us"])
    trees = list(dict.fromkeys(tree for _, tree in rows))
    print(f"{'us/step (median of runs)':30s}" + "".join(f"{t:>32s}" for t in trees))
    for case in dict.fromkeys(case for case, _ in rows):
        cells = [f"{statistics.median(v):.1f} ({', '.join(f'{x:.0f}' for x in v)})" if (v := rows.get((case, t))) else "-"
                 for t in trees]
        print(f"{' '.join(case):30s}" + "".join(f"{c:>32s}" for c in cells))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="seed-2x2,tiny-64,mnist,mnist-b256")
    parser.add_argument("--backends", default="numba,cython")
    parser.add_argument("--optimizers", default="sgd,adam")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.2)
    parser.add_argument("--json", default=None, help="append one JSON line per case to this file")
    parser.add_argument("--summarize", default=None, metavar="PATH", help="summarize a --json file instead")
    args = parser.parse_args()
    if args.summarize:
        return summarize(args.summarize)
    fb.set_num_threads(1)
    for name in args.workloads.split(","):
        workload = ALL[name]
        X, y = make_batch(workload, np.float32)
        for backend in args.backends.split(","):
            for opt_name in args.optimizers.split(","):
                net = make_net(workload, np.float32, backend)
                us = per_step(net, X, y, OPTIMIZERS[opt_name](), args.rounds, args.seconds)
                print(f"{name:11s} {backend:7s} {opt_name:8s} {us:10.2f} us/step", flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps(dict(tree=fb.__file__, workload=name, backend=backend,
                                                optimizer=opt_name, us=us)) + "\n")


if __name__ == "__main__":
    main()
