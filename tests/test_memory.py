"""Memory: after warm-up, train_step allocates no arrays per step on the compiled CPU backends,
and memory stays flat over many steps (10,000 under FASTBP_FULL=1) on every CPU backend.

Per-step allocations are measured with tracemalloc, which sees NumPy's data buffers: the peak
of traced memory during one step, above what was traced before it, is what the step allocated
(and perhaps freed). The NumPy reference allocates its temporaries every step by design
(readable, not fast), so it is only held to "no growth".
"""
import os
import tracemalloc

import numpy as np
import pytest

import fastbp as fb
import fuzz_report
from conftest import FULL

SIZES = [32, 64, 64, 8]
BATCH = 512            # the smallest per-step array, (512, 8) float64 or int labels (512,), is 4 KiB
PYTHON_OVERHEAD = 3 * 1024     # a step's Python objects (floats, tuples, frames), measured ~1.5 KiB
STEPS = 10_000 if FULL else 2_000


def setup(backend, loss):
    net = fb.MLP(SIZES, activation="tanh", loss=loss, dtype=np.float64, backend=backend, seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((BATCH, SIZES[0]))
    y = rng.integers(0, SIZES[-1], BATCH) if loss == "cross_entropy" else rng.standard_normal((BATCH, SIZES[-1]))
    opt = fb.Adam(1e-4)
    for _ in range(20):                    # warm-up: JIT, workspaces, optimizer state
        net.train_step(X, y, opt)
    return net, X, y, opt


def per_step_allocation(net, X, y, opt, steps=20):
    """The most any one step allocated above what was traced before it, in bytes."""
    tracemalloc.start()
    try:
        worst = 0
        for _ in range(steps):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            net.train_step(X, y, opt)
            worst = max(worst, tracemalloc.get_traced_memory()[1] - before)
        return worst
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_train_step_allocates_no_arrays_after_warm_up(cpu_backend, loss):
    if cpu_backend == "numpy":
        pytest.skip("the NumPy reference allocates its temporaries every step by design")
    net, X, y, opt = setup(cpu_backend, loss)
    allocated = per_step_allocation(net, X, y, opt)
    fuzz_report.memory[f"{cpu_backend}/{loss}"] = f"train_step allocates at most {allocated} B per step after warm-up"
    assert allocated < PYTHON_OVERHEAD, (f"{cpu_backend}: a train_step allocated {allocated} bytes after warm-up; "
                                         f"the smallest array of this network's step is {BATCH * 8} bytes")


def test_allocation_probe_sees_one_array():
    """Control: the probe above does see a step that allocates one small array."""
    net, X, y, opt = setup("numpy", "mse")

    class OneArray:
        def train_step(self, X, y, opt):
            return float(np.empty((BATCH, SIZES[-1])).sum())

    assert per_step_allocation(OneArray(), X, y, opt) >= BATCH * SIZES[-1] * 8


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux) for the RSS")
def test_memory_flat_over_many_steps(cpu_backend):
    """2,000 steps of batch 16 (FASTBP_FULL=1: 10,000 steps of batch 512): the traced Python
    memory does not grow, nor does the process's resident size."""
    net, X, y, opt = setup(cpu_backend, "mse")
    if not FULL:
        X, y = X[:16], y[:16]
        net.train_step(X, y, opt)          # warm the workspace for this batch size
    tracemalloc.start()
    try:
        for _ in range(200):
            net.train_step(X, y, opt)
        rss0, traced0 = rss_bytes(), tracemalloc.get_traced_memory()[0]
        for _ in range(STEPS):
            net.train_step(X, y, opt)
        traced_growth = tracemalloc.get_traced_memory()[0] - traced0
        rss_growth = rss_bytes() - rss0
    finally:
        tracemalloc.stop()
    fuzz_report.memory[f"{cpu_backend}/flat"] = (f"{STEPS} steps: traced memory grew {traced_growth} B, "
                                                 f"resident size {rss_growth / 2**20:+.2f} MiB")
    assert traced_growth < 4096, f"{cpu_backend}: traced memory grew by {traced_growth} bytes over {STEPS} steps"
    assert rss_growth < 8 * 2**20, f"{cpu_backend}: resident size grew by {rss_growth / 2**20:.1f} MiB"
