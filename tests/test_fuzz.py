"""Fuzzed calls of fb.kernels.*, the MLP methods and the constructors, on every backend.

Each call either equals the NumPy reference on the documented conversion of its arguments
or raises ValueError/TypeError with a message, with nothing changed (see tests/fuzz_cases.py
for the case generator and the judge). The same cases also run in a child process, whose
exit status shows that no input kills the interpreter (a segfault in compiled code would
otherwise take pytest down with it, or corrupt memory silently).

Default: a few hundred cases per backend and family, derandomized (reproducible in CI).
FASTBP_FULL=1: many more cases with a random seed (hypothesis prints it on a failure).
"""
import importlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp as fb
import fuzz_cases
import fuzz_report
from conftest import BACKENDS, CUDA_SIMULATED, FULL

HERE = os.path.dirname(os.path.abspath(__file__))


def examples(backend, default):
    if backend == "cuda":          # the simulator costs ~0.2 ms per simulated thread
        return 4 * default // 10 if FULL else max(10, default // 10)
    return 20 * default if FULL else default


def fuzz_settings(backend, default):
    return settings(max_examples=examples(backend, default), deadline=None, derandomize=not FULL,
                    database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def fuzz_test(family, default):
    """One hypothesis test per backend for a family of cases."""
    def run(backend):
        @fuzz_settings(backend, default)
        @given(st.data())
        def check(data):
            case = fuzz_cases.DRAW[family](fuzz_cases.HypothesisChooser(data))
            fuzz_report.record_fuzz(backend, fuzz_cases.RUN[family](case, backend))
        check()
    return run


@pytest.mark.parametrize("backend", BACKENDS)
def test_fuzz_kernels(backend):
    fuzz_test("kernel", 300)(backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fuzz_model_methods(backend):
    fuzz_test("api", 150)(backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fuzz_constructors(backend):
    fuzz_test("constructor", 60)(backend)


# ---------------------------------------------------------------- the no-crash proof

def run_child(code, env=None, timeout=240):
    """Run `code` in a fresh interpreter with tests/ on the path; -> CompletedProcess."""
    return subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def describe_exit(proc):
    if proc.returncode < 0:
        return f"killed by signal {signal.Signals(-proc.returncode).name}"
    return f"exit status {proc.returncode}"


def test_fuzz_batch_in_a_child_process_exits_cleanly():
    """Seeded random cases (every family, every layout, unaligned and zero-stride arrays
    included) in a child process: it must finish with exit status 0, not by a signal."""
    backends = [b for b in BACKENDS if b != "cuda"] + (["cuda"] if CUDA_SIMULATED else [])
    n = {b: (60 if b == "cuda" else 1500 if FULL else 300) for b in backends}
    code = ("import json, fuzz_cases\n"
            f"out = {{b: fuzz_cases.run_batch(20261123, n, [b])[b] for b, n in {n!r}.items()}}\n"
            "print('FUZZ-COUNTS ' + json.dumps(out))\n")
    proc = run_child(code)
    if proc.returncode < 0:
        fuzz_report.crashes.append(f"fuzz child process: {describe_exit(proc)}")
    assert proc.returncode == 0, f"fuzz child process: {describe_exit(proc)}\n{proc.stderr[-4000:]}"
    line = next(l for l in proc.stdout.splitlines() if l.startswith("FUZZ-COUNTS "))
    counts = json.loads(line[len("FUZZ-COUNTS "):])
    for backend, c in counts.items():
        assert c["inputs"] == n[backend] and c["rejected"] + c["accepted"] == c["inputs"]
        fuzz_report.subprocess_fuzz[backend] += c["inputs"]


def test_child_process_harness_sees_a_crash():
    """The harness above would notice a crash: a child that segfaults is reported as a signal."""
    proc = run_child("import ctypes; ctypes.string_at(0)")
    assert proc.returncode == -signal.SIGSEGV, describe_exit(proc)
    assert describe_exit(proc) == "killed by signal SIGSEGV"


# ---------------------------------------------------------------- compiled code reached only through checks

def compiled_kernel_modules():
    """The compiled (Cython) extension modules of fastbp._kernels that are importable here."""
    import pkgutil

    import fastbp._kernels as pkg
    found = []
    for info in pkgutil.walk_packages(pkg.__path__, "fastbp._kernels."):
        if info.name.startswith("fastbp._kernels.cuda") or info.name.endswith(".generate"):
            continue        # numba.cuda's import is slow and can fail; neither holds extension modules
        module = importlib.import_module(info.name)
        if getattr(module, "__file__", "").endswith((".so", ".pyd")):
            found.append(module)
    return found


KERNEL_METHODS = {   # Ops method -> ndims of its array arguments, in order
    "linear_forward": (2, 2, 1), "activation_backward": (2, 2, 2), "delta_propagate": (2, 2, 2, 2),
    "weight_gradient": (2, 2, 2, 1), "loss_and_output_grad": (2, None),
    "sgd_update": (1, 1, 1), "adam_update": (1, 1, 1, 1),
}
NETWORK_METHODS = ("forward", "loss", "loss_and_grad", "train_step")


def checked_array(a, ndim, dtype, what):
    assert isinstance(a, np.ndarray), f"{what}: reached the backend as {type(a).__name__}"
    assert a.dtype == dtype, f"{what}: reached the backend as {a.dtype}, expected {dtype}"
    assert a.ndim == ndim and a.size > 0, f"{what}: reached the backend with shape {a.shape}"
    assert a.flags.c_contiguous and a.flags.aligned, f"{what}: reached the backend non-contiguous/unaligned"


def tripwire(name, original):
    """Wrap an Ops method: assert its arguments are what the boundary promises (ndarray of one
    float dtype, C-contiguous, aligned, non-empty, consistent shapes) before the real call."""
    def wrapped(*args, **kwargs):
        what = f"ops.{name}"
        if name in NETWORK_METHODS:
            state, X = args[0], args[1]
            arch = state.arch
            checked_array(X, 2, arch.dtype, what + " X")
            assert X.shape[1] == arch.sizes[0], f"{what}: X shape {X.shape}"
            if len(args) > 2:
                y = args[2]
                if arch.loss == 1:     # cross_entropy: labels in range
                    checked_array(y, 1, np.intp, what + " y")
                    assert y.shape == (X.shape[0],) and y.min() >= 0 and y.max() < arch.sizes[-1], \
                        f"{what}: labels {y} reached the backend"
                else:
                    checked_array(y, 2, arch.dtype, what + " y")
                    assert y.shape == (X.shape[0], arch.sizes[-1]), f"{what}: y shape {y.shape}"
        else:
            arrays = [a for a in args if isinstance(a, np.ndarray)]
            dtype = arrays[0].dtype
            for i, (a, ndim) in enumerate(zip(args, KERNEL_METHODS[name])):
                if ndim is not None and a is not None:
                    checked_array(a, ndim, dtype, f"{what} argument {i}")
            if name == "linear_forward":
                X, W, b = args[:3]
                assert W.shape[0] == X.shape[1] and b.shape == (W.shape[1],), f"{what}: shapes"
            elif name == "activation_backward":
                assert args[0].shape == args[1].shape == args[2].shape, f"{what}: shapes"
            elif name == "delta_propagate":
                d, W, Z, A = args[:4]
                assert W.shape[1] == d.shape[1] and Z.shape == A.shape == (d.shape[0], W.shape[0]), f"{what}: shapes"
            elif name == "weight_gradient":
                assert args[0].shape[0] == args[1].shape[0], f"{what}: shapes"
            elif name in ("sgd_update", "adam_update"):
                assert len({a.shape for a in arrays}) == 1, f"{what}: shapes"
        return original(*args, **kwargs)
    return wrapped


def test_backend_is_reached_only_with_checked_arguments(cpu_backend, monkeypatch):
    """The public API validates before compiled code runs: under the fuzz, every call into a
    backend's Ops (kernels and fused network steps; the Cython and Numba ones included) gets
    C-contiguous, aligned, non-empty arrays of one float dtype with consistent shapes and
    in-range labels."""
    ops = importlib.import_module(fb._kernels.MODULES[cpu_backend]).ops
    for name in (*KERNEL_METHODS, *NETWORK_METHODS):
        monkeypatch.setattr(ops, name, tripwire(name, getattr(ops, name)))
    ch = fuzz_cases.RandomChooser(np.random.default_rng(7))
    outcomes = {"accepted": 0, "rejected": 0}
    for i in range(300 * (5 if FULL else 1)):
        family = ("kernel", "api")[i % 2]
        outcomes[fuzz_cases.RUN[family](fuzz_cases.DRAW[family](ch), cpu_backend)] += 1
    assert outcomes["accepted"] > 50 and outcomes["rejected"] > 50, outcomes


@pytest.mark.skipif("cython" not in BACKENDS, reason="the Cython backend is not built/usable here")
def test_cython_extension_functions_refuse_mismatched_shapes_without_crashing():
    """The extension functions are importable by anyone (fastbp._kernels.cython_cpu.*): called
    directly with arrays of mismatched, empty or wrong-rank shapes they must raise, never
    crash or write outside their arrays. Runs in a child process; guard bytes around every
    output array detect out-of-bounds writes."""
    modules = [m.__name__ for m in compiled_kernel_modules()]
    assert modules, "the Cython backend is usable but no compiled extension module was found"
    code = CYTHON_PROBE + f"\nprint('PROBED', probe({modules!r}))\n"
    proc = run_child(code)
    if proc.returncode < 0:
        fuzz_report.crashes.append(f"Cython direct-call probe: {describe_exit(proc)}")
    assert proc.returncode == 0, f"{describe_exit(proc)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "PROBED" in proc.stdout


CYTHON_PROBE = r'''
import importlib, inspect, itertools
import numpy as np

GUARD = 64
INT_ARGS = {"code", "loss", "reduction", "step", "nesterov", "mode", "optimizer", "n", "check_inputs"}
FLOAT_ARGS = {"lr", "momentum", "weight_decay", "beta1", "beta2", "eps"}
SKIP = {"use", "set_parallel_min"}      # global switches, not kernels

def guarded(shape, dtype):
    """A C-contiguous array with guard bytes before and after it in the same buffer."""
    n = int(np.prod(shape))
    buf = np.full(n + 2 * GUARD, 12345.0, dtype=dtype)
    return buf, buf[GUARD:GUARD + n].reshape(shape)

def probe(module_names):
    calls = raised = 0
    problems = []
    shapes = [(3, 4), (4, 3), (0, 4), (3, 0), (1, 1), (4,), (3,), (0,), (2, 2, 2)]
    for name in module_names:
        module = importlib.import_module(name)
        for fname, fn in sorted(vars(module).items()):
            if fname.startswith("_") or fname in SKIP or not callable(fn) or isinstance(fn, type):
                continue
            try:
                params = [p for p in inspect.signature(fn).parameters.values()]
            except (TypeError, ValueError):
                continue
            rng = np.random.default_rng(0)
            for dtype in (np.float64, np.float32):
                for trial in range(40):
                    bufs, args = [], []
                    for p in params:
                        ann = str(p.annotation) + p.name
                        if p.default is not inspect.Parameter.empty:
                            continue
                        if p.name in INT_ARGS or p.name.endswith("_at"):
                            args.append(int(rng.integers(0, 3)))
                            continue
                        if p.name in FLOAT_ARGS or p.name.startswith("h"):
                            args.append(0.1)
                            continue
                        shape = shapes[int(rng.integers(len(shapes)))]
                        buf, a = guarded(shape, dtype)
                        a[...] = rng.standard_normal(shape)
                        bufs.append((buf, a.size))
                        args.append(a)
                    calls += 1
                    try:
                        fn(*args)
                    except Exception:
                        raised += 1
                    for buf, n in bufs:
                        if not (np.all(buf[:GUARD] == 12345.0) and np.all(buf[GUARD + n:] == 12345.0)):
                            problems.append(f"{name}.{fname}: wrote outside its arrays for shapes "
                                            f"{[getattr(x, 'shape', x) for x in args]}")
    assert not problems, "\n".join(problems[:10])
    return calls, raised
'''
