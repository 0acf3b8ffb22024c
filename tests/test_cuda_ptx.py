"""The CUDA kernels on real targets, without a GPU: every kernel the backend can launch,
float32 and float64, compiled to PTX for sm_80 and sm_90 by numba.cuda.compile_ptx and
assembled by ptxas (bench/cuda_resources.py does the work and writes the resource table).

The simulator checks the numbers, not that a kernel types, lowers and fits on hardware; this
checks those. Needs NVVM, NVRTC and ptxas (`pip install ".[cuda-ptx]"`), skips without them
(and under NUMBA_ENABLE_CUDASIM=1, which has no compile_ptx); in CI (CI=true) a missing tool
fails instead. FASTBP_FULL=1 adds the GEMM kernels at tile 8 (the launch helpers take tile=;
at tile 32 the float64 weight gradients need more registers than a 1024-thread block has:
`python bench/cuda_resources.py --tiles 8,32 --out -` shows it).

One test runs where kernels can be launched instead (a GPU, or the simulator): the argument
types the sweep compiles for must be those the backend really launches with.
"""
import collections
import os
import sys

import numpy as np
import pytest

import fastbp as fb
from conftest import CUDA_SIMULATED, FULL

sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import cuda_resources as resources      # noqa: E402 - bench/ is not a package

ARCH_NAMES = {f"sm_{a}{b}" for a, b in resources.ARCHS}


@pytest.fixture(scope="module")
def rows():
    try:
        resources.toolchain()
    except resources.ToolsMissing as e:
        if os.environ.get("CI") == "true" and not CUDA_SIMULATED:
            pytest.fail(f"CI must have the PTX tools (.ci/run installs the cuda-ptx extra): {e}")
        pytest.skip(str(e))
    return resources.sweep(tiles=(8,) if FULL else ())


def label(row):
    return f"{row['factory']}.{row['kernel']} {row['case']} {row['dtype']} tile={row['tile']} {row['arch']}"


def test_every_launchable_kernel_compiles_for_every_arch_and_dtype(rows):
    errors = [f"{label(r)}: {r['error']}" for r in rows if r["error"]]
    assert not errors, "\n\n".join(errors)
    seen = {(r["factory"], r["dtype"], r["arch"]) for r in rows}
    expected = {(f, d, a) for f in ("activations", "losses", "optimizers", "elementwise", "products", "narrow")
                for d in ("float32", "float64") for a in ARCH_NAMES} | {("elementwise", "int64", a) for a in ARCH_NAMES}
    assert seen == expected
    per_kernel = collections.Counter((r["factory"], r["kernel"], r["case"], r["dtype"], r["tile"]) for r in rows)
    assert set(per_kernel.values()) == {len(resources.ARCHS)}


def test_the_fused_kernels_do_not_spill_at_their_widest_layer(rows):
    fused = [r for r in rows if r["factory"] == "narrow"]
    assert {r["kernel"] for r in fused} == {"forward", "backward"}
    widest = resources.kernel_modules().narrow.threads_per_block([resources.fused_max_width()])
    for r in fused:
        assert r["threads"] == widest
        assert (r["spill_stores"], r["spill_loads"]) == (0, 0), f"{label(r)} spills: {r}"


def test_every_kernel_fits_its_launch(rows):
    """Registers x threads per block within the register file, static shared memory within 48 KiB."""
    too_big = [f"{label(r)}: {r['registers']} registers x {r['threads']} threads, {r['smem']} B shared"
               for r in rows if not r["error"] and not resources.fits_launch(r)]
    assert not too_big, "\n".join(too_big)


def test_the_ptxas_report_is_read_with_called_functions_spills_summed():
    report = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'kern' for 'sm_90'
ptxas info    : Function properties for helper
    8 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Function properties for kern
    128 bytes stack frame, 16 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 70 registers, used 1 barriers, 136 bytes cumulative stack size, 32768 bytes smem, 825 bytes cmem[0]
ptxas info    : Compile time = 82.723 ms
"""
    assert resources.parse_ptxas_report(report) == dict(registers=70, smem=32768, stack=128,
                                                        spill_stores=24, spill_loads=16)
    assert resources.parse_ptxas_report(report.replace(", 32768 bytes smem", ""))["smem"] == 0
    with pytest.raises(ValueError, match="no entry function"):
        resources.parse_ptxas_report("ptxas info    : 0 bytes gmem\n")


# ---- the listed argument types against real launches (a GPU or the simulator) ----

@pytest.fixture
def launches(monkeypatch):
    """dispatcher -> the argument-type tuples it was launched with (read from its compiled
    overloads on a GPU; recorded at each launch under the simulator, which compiles nothing)."""
    import numba
    recorded = collections.defaultdict(set)
    if CUDA_SIMULATED:
        from numba.cuda.simulator import kernel as simulated

        original = simulated.FakeCUDAKernel.__call__

        def recording(self, *args):
            if not self._device and simulated._get_kernel_context() is None:      # a launch, not a device call
                recorded[self].add(tuple(numba.typeof(a) for a in args))
            return original(self, *args)
        monkeypatch.setattr(simulated.FakeCUDAKernel, "__call__", recording)
        yield recorded
    else:
        yield recorded
        for k in resources.launchable_kernels():
            recorded[k.dispatcher] |= set(k.dispatcher.overloads)


def run_every_launch_path(dtype, monkeypatch):
    """Tiny workloads that reach every launch helper: fused and tiled networks, each loss, both
    optimizers, fit with shuffling (row gathers), validation, sample weights and an L2 penalty, the public kernels with
    strided and F-order device inputs, weight gradients split over batch chunks."""
    from numba import cuda
    from fastbp._kernels.cuda import ops as backend
    gemm = resources.kernel_modules().products
    monkeypatch.setattr(gemm, "ROWS_PER_SPLIT", gemm.TILE)          # small batches split too
    rng = np.random.default_rng(0)
    for fused in (True, False):
        monkeypatch.setattr(backend.ops, "fused", fused)
        for loss, opt in (("mse", fb.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
                          ("bce", fb.Adam(0.01)), ("cross_entropy", fb.SGD(0.1))):
            net = fb.MLP([3, 4, 2], activation="tanh", loss=loss, dtype=dtype, backend="cuda", seed=1,
                         l2=0.0 if loss == "bce" else 0.1)
            X = rng.normal(size=(9, 3))
            y = (rng.integers(0, 2, size=9) if loss == "cross_entropy"
                 else rng.uniform(size=(9, 2)))
            net.fit(X, y, epochs=1, batch_size=5, optimizer=opt, seed=1, validation_data=(X[:3], y[:3]))
            net.fit(X, y, epochs=1, batch_size=5, optimizer=opt, seed=1, sample_weight=rng.uniform(0.5, 2, size=9))
            net.forward(X)
    X = rng.normal(size=(6, 8)).astype(dtype)
    W, b = rng.normal(size=(3, 2)).astype(dtype), rng.normal(size=4).astype(dtype)
    strided = cuda.to_device(X)[::2, 1::3]                                  # (3, 3), layout A
    f_order = cuda.to_device(np.asfortranarray(X[:3, :3]))                  # layout F
    b_strided = cuda.to_device(b)[::2]                                      # 1-D, layout A
    for X_in in (strided, f_order):
        Z, A = fb.kernels.linear_forward(X_in, cuda.to_device(W), b_strided, "relu", backend="cuda")
        fb.kernels.activation_backward(A, Z, A, "relu", backend="cuda")
        fb.kernels.delta_propagate(A, cuda.to_device(W), X_in, X_in, "sigmoid", backend="cuda")
        fb.kernels.weight_gradient(X_in, A, backend="cuda")


@pytest.mark.skipif("cuda" not in fb.available_backends(),
                    reason="launches need a GPU or the simulator (NUMBA_ENABLE_CUDASIM=1)")
def test_the_listed_argument_types_are_those_the_backend_launches_with(launches, monkeypatch):
    for dtype in resources.DTYPES:
        run_every_launch_path(dtype, monkeypatch)
    listed = collections.defaultdict(set)
    names = {}
    for k in resources.launchable_kernels():
        listed[k.dispatcher].add(tuple(k.argtypes))
        names[k.dispatcher] = f"{k.factory}.{k.name} {k.dtype}"
    unlisted = [f"{getattr(d, '__name__', d)}{sorted(map(str, s))}" for d, s in launches.items() if d not in listed]
    assert not unlisted, f"kernels launched but not in cuda_resources.launchable_kernels: {unlisted}"
    wrong = [f"{names[d]}: launched with {t}, listed {sorted(map(str, listed[d]))}"
             for d, sigs in launches.items() for t in sigs if t not in listed[d]]
    assert not wrong, "\n".join(wrong)
    never = sorted(names[d] for d in listed if not launches.get(d))
    assert not never, f"listed kernels this workload never launched (extend run_every_launch_path): {never}"
