"""Nanoseconds per element of every activation, forward f(z) and derivative d *= f'(z, a), on
each instruction-set path of the Cython loops (kernels.activation_paths()) beside Numba's,
and optionally an older tree's Cython, interleaved rounds, medians.

    python bench/cython_activations.py [--dtype float32] [--rounds 9] [--old /path/to/old/src]

Times are this thread's CPU time (every loop here runs on one thread), which on a shared,
loaded machine measures the work rather than the scheduler. Cython's forward is timed
through linear_forward on a rank-1 product (X (m, 1) @ W (1, n): Z is the activation's input
row by row) minus the identity's time, the same for an old tree; its derivative through
activation_backward on a refilled D, minus the refill (identity: nothing to do). Numba's
through activate_1d and times_derivative_1d over the same elements. --old SRC times SRC's
Cython in a child process each round (PYTHONPATH=SRC; its best path, or its only one).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROWS, COLS = 256, 256           # 64K elements: the arrays stay in L2, as a layer's do


def inputs(dtype):
    rng = np.random.default_rng(0)
    row = (rng.standard_normal((1, COLS)) * 3).astype(dtype)
    return row, np.tile(row, (ROWS, 1))


def per_element(fn, inner):
    """ns per element of one call of fn (CPU time of this thread, `inner` calls after a warm-up)."""
    fn()
    t0 = time.thread_time()
    for _ in range(inner):
        fn()
    return (time.thread_time() - t0) / inner / (ROWS * COLS) * 1e9


def cython_times(dtype, inner):
    """{(activation, 'f' | "f'"): ns/element} of the Cython kernels importable here, on their path in use."""
    from fastbp import activations as act
    from fastbp._kernels.cython_cpu import kernels as C
    row, Z = inputs(dtype)
    X1, b = np.ones((ROWS, 1), dtype), np.zeros(COLS, dtype)
    Zo, A, D, ones = np.empty_like(Z), np.empty_like(Z), np.empty_like(Z), np.ones_like(Z)
    times = {}
    base = per_element(lambda: C.linear_forward(X1, row, b, Zo, A, act.IDENTITY), inner)
    refill = per_element(lambda: np.copyto(D, ones), inner)
    for name in act.NAMES:
        code = act.CODES[name]
        times[name, "f"] = per_element(lambda: C.linear_forward(X1, row, b, Zo, A, code), inner) - base
        C.linear_forward(X1, row, b, Zo, A, code)
        # D is refilled before each call (D *= f' again and again would reach subnormal numbers)
        times[name, "f'"] = per_element(lambda: (np.copyto(D, ones), C.activation_backward(D, Zo, A, code)),
                                        inner) - refill
    return times


def numba_times(dtype, inner):
    from fastbp import activations as act
    from fastbp._kernels.numba_cpu.activations import activate_1d, times_derivative_1d
    z = inputs(dtype)[1].ravel()
    a, d, out = np.empty_like(z), np.ones_like(z), np.empty_like(z)
    times = {}
    for name in act.NAMES:
        code = act.CODES[name]
        times[name, "f"] = per_element(lambda: activate_1d(z, a, code), inner)
        times[name, "f'"] = per_element(lambda: times_derivative_1d(d, z, a, code, out), inner)
    return times


def child(dtype, inner):
    """--child: the Cython times of the tree on PYTHONPATH, as JSON on stdout."""
    print(json.dumps([[k[0], k[1], v] for k, v in cython_times(dtype, inner).items()]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--inner", type=int, default=20, help="calls per timing")
    parser.add_argument("--old", default=None, help="src folder of an older tree: its Cython, in a child process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype).type
    if args.child:
        return child(dtype, args.inner)
    from fastbp import activations as act
    from fastbp._kernels.cython_cpu import kernels as C
    paths = [name for name, _ in C.activation_paths()]
    columns = {f"cython {p}": [] for p in paths}
    columns["numba"] = []
    if args.old:
        columns["old cython"] = []
    numba_times(dtype, 1)           # compile outside the timing
    start = C.activation_path()[0]
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", end="\r", file=sys.stderr)
        for p in paths:
            C.set_activation_path(p)
            columns[f"cython {p}"].append(cython_times(dtype, args.inner))
        C.set_activation_path(start)
        columns["numba"].append(numba_times(dtype, args.inner))
        if args.old:
            env = dict(os.environ, PYTHONPATH=args.old)
            done = subprocess.run([sys.executable, __file__, "--child", "--dtype", args.dtype, "--inner",
                                   str(args.inner)], env=env, capture_output=True, text=True, check=True)
            columns["old cython"].append({(n, k): v for n, k, v in json.loads(done.stdout)})
    medians = {c: {key: float(np.median([t[key] for t in runs])) for key in runs[0]} for c, runs in columns.items()}
    print(f"ns per element, {args.dtype}, {ROWS}x{COLS}, medians of {args.rounds} interleaved rounds; "
          f"Cython forward = rank-1 linear_forward minus identity's")
    print(f"{'activation':16s}" + "".join(f"{c:>16s}" for c in medians))
    for name in act.NAMES:
        for kind in ("f", "f'"):
            print(f"{name + ' ' + kind:16s}" + "".join(f"{medians[c][name, kind]:16.2f}" for c in medians))


if __name__ == "__main__":
    main()
