"""fastbp.sklearn's fit time with alpha > 0, two source trees interleaved in one run: "before"
(the L2 term added on the host around the step) and "after" (MLP(l2=...) inside the kernels),
and the after tree with alpha=0 (the fused step without the term) for the term's own cost.

usage:  python bench/l2_fit_time.py --before /path/to/main/src [--after src] [--rounds 5]
                                    [--backends cython,numba] [--solvers adam,sgd]
                                    [--data synthetic|digits] [--batch-size 200] [--epochs 5]

Each fit runs in its own process (one BLAS thread), after a warm-up fit that compiles and
loads everything; the runs of a round follow each other, their order rotating from round to
round. Per configuration: the median fit seconds (wall and process CPU) over the rounds and
the ratio before / after of the medians. Data: "synthetic", a 20000 x 100 10-class set
(make_classification, seed 0), or "digits" (1797 x 64, 10 classes, fastbp.datasets);
MLPClassifier(hidden_layer_sizes=(100,), max_iter=epochs, batch_size, alpha=1e-4, tol=0,
random_state=0).
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
backend, solver, alpha, name, batch, epochs = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], \
    int(sys.argv[5]), int(sys.argv[6])
if name == "digits":
    import fastbp
    X, y = fastbp.datasets.load_digits()
else:
    X, y = make_classification(20000, 100, n_informative=30, n_classes=10, random_state=0)
params = dict(hidden_layer_sizes=(100,), solver=solver, batch_size=batch, alpha=alpha, tol=0.0, random_state=0,
              backend=backend)
warnings.simplefilter("ignore", ConvergenceWarning)
with threadpool_limits(1):
    MLPClassifier(max_iter=1, **params).fit(X[:1000], y[:1000])          # warm-up: compile, load
    wall, cpu = time.perf_counter(), time.process_time()
    est = MLPClassifier(max_iter=epochs, **params).fit(X, y)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps(dict(wall=wall, cpu=cpu, loss=est.loss_)))
"""


def fit_once(src, backend, solver, alpha, cache, args):
    env = dict(os.environ, PYTHONPATH=src, NUMBA_CACHE_DIR=cache, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, backend, solver, str(alpha), args.data, str(args.batch_size),
                          str(args.epochs)], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the source tree (its src/) before the change")
    parser.add_argument("--after", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                        "src"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="cython,numba")
    parser.add_argument("--solvers", default="adam,sgd")
    parser.add_argument("--data", default="synthetic", choices=("synthetic", "digits"))
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    runs = {"before": (args.before, 1e-4), "after": (args.after, 1e-4), "after alpha=0": (args.after, 0.0)}
    caches = {"before": "/tmp/numba-cache-l2-bench-before", "after": "/tmp/numba-cache-l2-bench-after"}
    lines = ["| backend | solver | before: wall s (cpu s) | after | after, alpha=0 | before / after: wall (cpu) | "
             "after / alpha=0: cpu | loss_ before | loss_ after |", "|---|---|---|---|---|---|---|---|---|"]
    for backend in args.backends.split(","):
        for solver in args.solvers.split(","):
            got = {run: [] for run in runs}
            for r in range(args.rounds):
                order = list(runs)[r % 3:] + list(runs)[:r % 3]
                for run in order:
                    src, alpha = runs[run]
                    got[run].append(fit_once(src, backend, solver, alpha, caches[run.split()[0]], args))
                print(backend, solver, r, {k: round(v[-1]["wall"], 3) for k, v in got.items()}, file=sys.stderr)
            med = {run: (statistics.median(g["wall"] for g in v), statistics.median(g["cpu"] for g in v))
                   for run, v in got.items()}
            b, a, z = med["before"], med["after"], med["after alpha=0"]
            lines.append(f"| {backend} | {solver} | {b[0]:.3f} ({b[1]:.3f}) | {a[0]:.3f} ({a[1]:.3f}) | "
                         f"{z[0]:.3f} ({z[1]:.3f}) | {b[0] / a[0]:.2f} ({b[1] / a[1]:.2f}) | {a[1] / z[1]:.2f} | "
                         f"{got['before'][0]['loss']:.10f} | {got['after'][0]['loss']:.10f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
