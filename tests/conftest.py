"""Shared test fixtures: every correctness test runs on every usable backend.

The CUDA backend appears where a GPU or the simulator (NUMBA_ENABLE_CUDASIM=1) is usable;
the simulator runs about 0.2 ms per simulated thread, so tests over big shapes take
`cpu_backend` (or check `fast_backend`) instead of `backend`.
"""
import contextlib
import os

import numpy as np
import pytest

import fastbp as fb

BACKENDS = fb.available_backends()
CUDA_SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
CPU_BACKENDS = tuple(b for b in BACKENDS if b != "cuda")
FULL = os.environ.get("FASTBP_FULL") == "1"     # the long versions of the slow suites


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=CPU_BACKENDS)
def cpu_backend(request):
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def cython_paths():
    """The instruction-set paths of the Cython activation loops this CPU can run, best first
    (["unbuilt"] without the extension: tests taking them skip)."""
    try:
        from fastbp._kernels.cython_cpu import kernels
    except ImportError:
        return ["unbuilt"]
    return [name for name, _ in kernels.activation_paths()]


@contextlib.contextmanager
def on_cython_path(path):
    """The Cython kernels (the module) with their activation loops on `path`, restored after:
    import runs the best path only, so the tests ask for every one."""
    if "cython" not in BACKENDS:
        pytest.skip("cython backend not usable here")
    from fastbp._kernels.cython_cpu import kernels
    old = kernels.set_activation_path(path)
    try:
        yield kernels
    finally:
        kernels.set_activation_path(old)


@pytest.fixture(params=cython_paths())
def cython_path(request):
    """Each Cython activation path in turn, in force for the test."""
    with on_cython_path(request.param):
        yield request.param


def tolerance(dtype):
    """Same-numbers tolerance vs the reference: 1e-10 relative in float64, rounding in float32."""
    return dict(rtol=1e-10, atol=1e-12) if np.dtype(dtype) == np.float64 else dict(rtol=2e-4, atol=1e-5)


# ---- reliability figures: tests/fuzz_report.py prints what the suite measured ----
# ---- the suite spread over the CPU cores ----
MAX_WORKERS = 4       # a few long files set the time; more workers only add start-ups and memory


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Where pytest-xdist is installed (the test extra brings it) and the command line chose
    nothing (-n N; -n 0 or -p no:xdist for one process), run the tests in one worker per
    core, up to MAX_WORKERS, each test file whole on one worker (a module's fixtures once)."""
    if (getattr(config.option, "numprocesses", False) is None and not hasattr(config, "workerinput")
            and not config.option.usepdb and not config.option.collectonly):
        workers = min(os.cpu_count() or 1, MAX_WORKERS)
        if workers > 1:
            config.option.numprocesses = workers
            config.option.dist = "loadfile" if config.option.dist == "no" else config.option.dist


# Each xdist worker counts its own tests' figures; the controller, which prints the summary,
# adds up what every worker sent when it finished.
def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):
        import fuzz_report
        session.config.workeroutput["fastbp_figures"] = fuzz_report.snapshot()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    import fuzz_report
    if "fastbp_figures" in getattr(node, "workeroutput", {}):
        fuzz_report.merge(node.workeroutput["fastbp_figures"])


def pytest_terminal_summary(terminalreporter):
    import fuzz_report
    fuzz_report.summary(terminalreporter)
