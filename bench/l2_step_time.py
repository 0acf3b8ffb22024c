"""Per-step time of plain SGD (momentum 0: Numba's and Cython's SGD-in-GEMM step) with and
without MLP(l2=...), two source trees interleaved in one run: "before" and "after" with
l2 = 1e-4, and "after" with l2 = 0 for the term's own cost.

usage:  python bench/l2_step_time.py --before /path/to/before/src [--after src] [--rounds 7]
                                     [--backends numba,cython]

MLP([64, 100, 10], relu, cross_entropy, float32, seed 0), the first 32 rows of
fastbp.datasets.load_digits(), SGD(lr=0.01). Each run is its own process (one BLAS thread):
2000 warm-up steps, then 15 x 2000 steps timed in thread CPU time; a run's figure is the
median of the 15, a configuration's the median over the rounds (whose order rotates).
(bench/l2_fit_time.py times fastbp.sklearn's fit, whose SGD solver has momentum 0.9 and so
never takes the SGD-in-GEMM step.)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
import fastbp as fb
backend, l2 = sys.argv[1], float(sys.argv[2])
X, y = fb.datasets.load_digits()
X, y = np.ascontiguousarray(X[:32], np.float32), y[:32]
with threadpool_limits(1):
    net = fb.MLP([64, 100, 10], activation="relu", loss="cross_entropy", dtype=np.float32, backend=backend, seed=0,
                 l2=l2)
    opt = fb.SGD(0.01)
    for _ in range(2000):
        net.train_step(X, y, opt)
    times = []
    for _ in range(15):
        t = time.thread_time()
        for _ in range(2000):
            net.train_step(X, y, opt)
        times.append((time.thread_time() - t) / 2000 * 1e6)
print(json.dumps(statistics.median(times)))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the source tree (its src/) before the change")
    parser.add_argument("--after", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                        "src"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backends", default="numba,cython")
    args = parser.parse_args(argv)
    runs = {"before": (args.before, 1e-4), "after": (args.after, 1e-4), "after l2=0": (args.after, 0.0)}
    caches = {"before": "/tmp/numba-cache-l2-step-before", "after": "/tmp/numba-cache-l2-step-after"}
    lines = ["| backend | before: us/step | after | after, l2=0 | before / after | after / l2=0 |",
             "|---|---|---|---|---|---|"]
    for backend in args.backends.split(","):
        got = {run: [] for run in runs}
        for r in range(args.rounds):
            for run in list(runs)[r % 3:] + list(runs)[:r % 3]:
                src, l2 = runs[run]
                env = dict(os.environ, PYTHONPATH=src, NUMBA_CACHE_DIR=caches[run.split()[0]], OMP_NUM_THREADS="1",
                           OPENBLAS_NUM_THREADS="1")
                out = subprocess.run([sys.executable, "-c", CHILD, backend, str(l2)], env=env, check=True,
                                     capture_output=True, text=True).stdout
                got[run].append(json.loads(out.strip().splitlines()[-1]))
            print(backend, r, {k: round(v[-1], 2) for k, v in got.items()}, file=sys.stderr)
        b, a, z = (statistics.median(got[run]) for run in runs)
        lines.append(f"| {backend} | {b:.1f} | {a:.1f} | {z:.1f} | {b / a:.3f} | {a / z:.3f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
