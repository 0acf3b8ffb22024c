"""fastbp.sklearn's fit time with alpha > 0, two source trees interleaved in one run: "before"
(the L2 term added on the host around the step) and "after" (MLP(l2=...) inside the kernels),
and the after tree with alpha=0 (the fused step without the term) for the term's own cost.

usage:  python bench/l2_fit_time.py --before /path/to/main/src [--after src] [--rounds 5]
                                    [--backends cython,numba] [--solvers adam,sgd] [--threads 1]

Each fit runs in its own process (one BLAS thread), after a warm-up fit that compiles and
loads everything; the runs of a round follow each other, their order rotating from round to
round. Per configuration: the median fit seconds (wall and process CPU) over the rounds and
the ratio before / after of the medians. Data: a 20000 x 100 synthetic 10-class set
(make_classification, seed 0), MLPClassifier(hidden_layer_sizes=(100,), max_iter=5,
batch_size=200, alpha=1e-4, tol=0, random_state=0).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, os, sys, time, warnings
import numpy as np
from threadpoolctl import threadpool_limits
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from fastbp.sklearn import MLPClassifier
backend, solver, alpha = sys.argv[1], sys.argv[2], float(sys.argv[3])
X, y = make_classification(20000, 100, n_informative=30, n_classes=10, random_state=0)
params = dict(hidden_layer_sizes=(100,), solver=solver, batch_size=200, alpha=alpha, tol=0.0, random_state=0,
              backend=backend)
warnings.simplefilter("ignore", ConvergenceWarning)
with threadpool_limits(1):
    MLPClassifier(max_iter=1, **params).fit(X[:1000], y[:1000])          # warm-up: compile, load
    wall, cpu = time.perf_counter(), time.process_time()
    est = MLPClassifier(max_iter=5, **params).fit(X, y)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps(dict(wall=wall, cpu=cpu, loss=est.loss_)))
"""


def fit_once(src, backend, solver, alpha, cache):
    env = dict(os.environ, PYTHONPATH=src, NUMBA_CACHE_DIR=cache, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, backend, solver, str(alpha)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the source tree (its src/) before the change")
    parser.add_argument("--after", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                        "src"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="cython,numba")
    parser.add_argument("--solvers", default="adam,sgd")
    args = parser.parse_args(argv)
    runs = {"before": (args.before, 1e-4), "after": (args.after, 1e-4), "after alpha=0": (args.after, 0.0)}
    caches = {"before": "/tmp/numba-cache-l2-bench-before", "after": "/tmp/numba-cache-l2-bench-after"}
    lines = ["| backend | solver | before s (cpu) | after s (cpu) | after, alpha=0 s | before / after | "
             "loss before | loss after |", "|---|---|---|---|---|---|---|---|"]
    for backend in args.backends.split(","):
        for solver in args.solvers.split(","):
            got = {run: [] for run in runs}
            for r in range(args.rounds):
                order = list(runs)[r % 3:] + list(runs)[:r % 3]
                for run in order:
                    src, alpha = runs[run]
                    got[run].append(fit_once(src, backend, solver, alpha, caches[run.split()[0]]))
                print(backend, solver, r, {k: round(v[-1]["wall"], 3) for k, v in got.items()}, file=sys.stderr)
            med = {run: (statistics.median(g["wall"] for g in v), statistics.median(g["cpu"] for g in v))
                   for run, v in got.items()}
            lines.append(f"| {backend} | {solver} | {med['before'][0]:.3f} ({med['before'][1]:.3f}) | "
                         f"{med['after'][0]:.3f} ({med['after'][1]:.3f}) | {med['after alpha=0'][0]:.3f} | "
                         f"{med['before'][0] / med['after'][0]:.2f} | {got['before'][0]['loss']:.10f} | "
                         f"{got['after'][0]['loss']:.10f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
