"""The Cython backend: really compiled, really run, and its one-call step equal to the
reference's composed step. (The shared suites in test_kernels.py, test_autograd.py,
test_bad_input.py, ... run on it through the `backend` fixture.)"""
import importlib.machinery
import inspect
import subprocess
import sys

import numpy as np
import pytest

import fastbp as fb
from fastbp import _kernels, activations
from fastbp._kernels import base, reference
from conftest import tolerance

cython_cpu = pytest.importorskip("fastbp._kernels.cython_cpu.ops")
pytestmark = pytest.mark.skipif(not cython_cpu.available()[0],
                                reason=f"Cython backend not usable: {cython_cpu.available()[1]}")

SIZES = [6, 16, 9, 4]
OPTIMIZERS = {
    "sgd": lambda: fb.SGD(lr=0.05),
    "momentum": lambda: fb.SGD(lr=0.05, momentum=0.9, weight_decay=0.01),
    "nesterov": lambda: fb.SGD(lr=0.05, momentum=0.8, nesterov=True),
    "adam": lambda: fb.Adam(lr=0.01, weight_decay=0.001),
}
LOSSES = [("mse", "mean", "identity"), ("mse", "sum", "tanh"), ("cross_entropy", "mean", "identity"),
          ("cross_entropy", "sum", "identity"), ("bce", "mean", "identity"), ("bce", "sum", "sigmoid")]


def batch(rng, n, loss, n_in=SIZES[0], n_out=SIZES[-1]):
    X = rng.normal(size=(n, n_in))
    if loss == "cross_entropy":
        return X, rng.integers(0, n_out, n)
    if loss == "bce":
        return X, (rng.random((n, n_out)) > 0.5).astype(float)
    return X, rng.normal(size=(n, n_out))


def pair(dtype, loss="mse", reduction="mean", activation="relu", output="identity", sizes=SIZES):
    return [fb.MLP(sizes, activation=activation, output_activation=output, loss=loss, reduction=reduction,
                   dtype=dtype, backend=b, seed=3) for b in ("numpy", "cython")]


# ---- the extension is built and is what runs ----

def test_extension_modules_are_compiled():
    from fastbp._kernels.cython_cpu import blas as _cy_blas, kernels as _cython_kernels
    for module in (_cython_kernels, _cy_blas):
        assert module.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), module.__file__
    for name in ("network_pass", "sgd_step", "adam_step", "linear_forward", "delta_propagate",
                 "weight_gradient", "loss_and_output_grad", "sgd_update", "adam_update"):
        kernel = getattr(_cython_kernels, name)
        assert not inspect.isfunction(kernel), f"{name} is a Python function, not compiled code"
        assert type(kernel).__name__ in ("cython_function_or_method", "fused_cython_function",
                                         "builtin_function_or_method"), type(kernel)
    net = fb.MLP([2, 2], backend="cython")
    assert net._ops is cython_cpu.ops
    assert set(net._ops.prepared(net._state, 3).steps) == {"sgd", "adam"}     # compiled whole steps


def test_results_do_not_come_from_the_reference(monkeypatch):
    rng = np.random.default_rng(0)
    X, y = batch(rng, 8, "mse")
    net = fb.MLP(SIZES, backend="cython", seed=1)
    start = net.get_flat_params()
    first = (net.forward(X), net.loss_and_grad(X, y)[0], net.train_step(X, y, fb.SGD(0.1)), net.get_flat_params())

    def broken(*args, **kwargs):
        raise AssertionError("the reference was called")
    for name in ("linear_forward", "activation_backward", "delta_propagate", "weight_gradient",
                 "loss_and_output_grad", "sgd_update", "adam_update", "forward", "loss_and_grad", "train_step"):
        monkeypatch.setattr(reference.NumpyOps, name, broken)
    monkeypatch.setattr(reference, "FUNCTIONS", {})
    monkeypatch.setattr(np, "matmul", broken)
    net.set_flat_params(start)
    again = (net.forward(X), net.loss_and_grad(X, y)[0], net.train_step(X, y, fb.SGD(0.1)), net.get_flat_params())
    for a, b in zip(first, again):
        assert np.array_equal(a, b)


def test_blas_is_reachable_and_both_providers_agree():
    from fastbp._kernels.cython_cpu import blas as _cy_blas
    name, description = _cy_blas.provider()
    assert name in ("numpy", "scipy"), description
    rng = np.random.default_rng(2)
    X, W, b = rng.normal(size=(33, 70)), rng.normal(size=(70, 45)), rng.normal(size=45)
    results = {}
    try:
        for provider in ("numpy", "scipy"):
            try:
                _cy_blas.use(provider)
            except ValueError as e:
                pytest.skip(f"{provider}'s BLAS not reachable here: {e}")
            results[provider] = fb.kernels.linear_forward(X, W, b, "tanh", backend="cython")[1]
    finally:
        _cy_blas.use(name)
    np.testing.assert_allclose(results["numpy"], results["scipy"], rtol=1e-12)
    np.testing.assert_allclose(results["numpy"], np.tanh(X @ W + b), rtol=1e-12)


def test_threaded_and_serial_passes_give_identical_bits():
    from fastbp._kernels.cython_cpu import kernels as k
    rng = np.random.default_rng(4)
    X, y = batch(rng, 64, "mse", n_in=40, n_out=70)
    outs = []
    old = k.set_parallel_min(0)
    try:
        for threshold in (0, 1 << 60):
            k.set_parallel_min(threshold)
            net, opt = fb.MLP([40, 300, 70], activation="gelu", backend="cython", seed=5), fb.Adam(0.01)
            for _ in range(2):
                net.train_step(X, y, opt)
            outs.append(net.get_flat_params())
    finally:
        k.set_parallel_min(old)
    assert outs[0].tobytes() == outs[1].tobytes()


def test_float32_adam_update_gives_the_same_bits_on_every_path():
    """The float32 Adam passes run on the activation path's instruction set
    (optimizers.pxd); without FMA contraction every path must write the same values, and
    refuse the same updates."""
    from conftest import cython_paths, on_cython_path
    from fastbp._kernels.cython_cpu import kernels as k
    rng = np.random.default_rng(6)
    n = 1000 + 37                      # vector bodies and a remainder on every width
    p, g, m = (rng.normal(size=n).astype(np.float32) for _ in range(3))
    v = np.abs(rng.normal(size=n)).astype(np.float32)
    g[::5] *= np.float32(1e-30)        # tiny gradients: subnormal squares in v
    results = {}
    for path in cython_paths():
        with on_cython_path(path):
            pp, mm, vv = p.copy(), m.copy(), v.copy()
            assert k.adam_update(pp, g, mm, vv, 3, 1e-3, 0.9, 0.999, 1e-8, 0.01)
            huge = g.copy()
            huge[n - 1] = np.float32(1e21)     # (1 - beta2) * g * g overflows float32: v would be inf
            refused = (pp.copy(), mm.copy(), vv.copy())
            assert not k.adam_update(pp, huge, mm, vv, 4, 1e-3, 0.9, 0.999, 1e-8, 0.01)
            assert all(a.tobytes() == b.tobytes() for a, b in zip((pp, mm, vv), refused))
            results[path] = b"".join(a.tobytes() for a in (pp, mm, vv))
    assert len(set(results.values())) == 1, sorted(results)



def test_float32_reductions_give_the_same_bits_on_every_path():
    """sum|a| (the SGD bound's) and sum a**2 (the L2 term's) run on the activation path's
    instruction set (checks.pxd): per-column double accumulators summed down the rows, then
    the columns in order, on every path; numpy's axis-0 sum adds row by row and cumsum in
    order, the same order, so the bits must match it too."""
    from conftest import cython_paths, on_cython_path
    rng = np.random.default_rng(8)
    a = rng.normal(size=(67, 2 * 256 + 37)).astype(np.float32)     # two column blocks and a ragged one
    a[::7, ::3] *= np.float32(1e-40)                                # subnormals
    a[3, ::5] *= np.float32(1e30)
    wide = a.astype(np.float64)
    expected = (np.cumsum(np.abs(wide).sum(axis=0))[-1], np.cumsum((wide * wide).sum(axis=0))[-1])
    for path in cython_paths():
        with on_cython_path(path) as k:
            got = (k.matrix_abs_sum(a), k.matrix_square_sum(a))
            assert [g.hex() for g in got] == [e.hex() for e in expected], path
            assert k.matrix_abs_sum(a[:0]) == 0.0

# ---- the fused step equals the reference's composed step ----

@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("loss,reduction,output", LOSSES, ids=[f"{l}-{r}-{o}" for l, r, o in LOSSES])
def test_fused_step_matches_reference(dtype, loss, reduction, output, optimizer):
    rng = np.random.default_rng(7)
    nets = pair(dtype, loss, reduction, activation="tanh" if optimizer == "adam" else "relu", output=output)
    opts = [OPTIMIZERS[optimizer]() for _ in nets]
    for step in range(4):
        X, y = batch(rng, 11 if step % 2 else 17, loss)
        # the step's gradients, through loss_and_grad (it stores them and changes nothing;
        # train_step may update W from the products without storing the gradient)
        for net in nets:
            net.loss_and_grad(X, y)
        np.testing.assert_allclose(nets[1].flat_grads, nets[0].flat_grads, **tolerance(dtype))
        losses = [net.train_step(X, y, opt) for net, opt in zip(nets, opts)]
        np.testing.assert_allclose(losses[1], losses[0], **tolerance(dtype))
        np.testing.assert_allclose(nets[1].flat_params, nets[0].flat_params, **tolerance(dtype))
    for name in opts[0].state:
        np.testing.assert_allclose(opts[1].state[name], opts[0].state[name], **tolerance(dtype))
    assert opts[0].step_count == opts[1].step_count == 4
    np.testing.assert_allclose(nets[1].forward(X), nets[0].forward(X), **tolerance(dtype))
    np.testing.assert_allclose(nets[1].loss_value(X, y), nets[0].loss_value(X, y), **tolerance(dtype))


@pytest.mark.parametrize("activation", activations.NAMES)
def test_every_activation_in_the_fused_pass(cython_path, dtype, activation):
    """On each instruction-set path: the fused pass runs the derivative loops that also sum
    the bias gradient (the kernels' activation_backward runs the plain ones)."""
    rng = np.random.default_rng(8)
    nets = pair(dtype, activation=activation, output=activation)
    X, y = batch(rng, 13, "mse")
    grads = [net.loss_and_grad(X, y) for net in nets]
    np.testing.assert_allclose(grads[1][0], grads[0][0], **tolerance(dtype))
    for a, b in zip(grads[1][1] + grads[1][2], grads[0][1] + grads[0][2]):
        np.testing.assert_allclose(a, b, **tolerance(dtype))


def test_fused_step_matches_cython_composed_kernels(dtype):
    """The one-call step and Ops.train_step composed from this backend's own kernels."""
    rng = np.random.default_rng(9)
    nets = [fb.MLP(SIZES, activation="elu", dtype=dtype, backend="cython", seed=2) for _ in range(2)]
    opts = [fb.SGD(0.05, momentum=0.9) for _ in nets]
    for _ in range(3):
        X, y = batch(rng, 10, "mse")
        fused = nets[0].train_step(X, y, opts[0])
        X, y = nets[1]._inputs(X, y)
        composed = base.Ops.train_step(cython_cpu.ops, nets[1]._state, X, y, opts[1])
        np.testing.assert_allclose(fused, composed, **tolerance(dtype))
    np.testing.assert_allclose(nets[0].flat_params, nets[1].flat_params, **tolerance(dtype))


# ---- failure paths and workspaces ----

@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_non_finite_step_changes_nothing(dtype, optimizer):
    rng = np.random.default_rng(10)
    net, opt = fb.MLP(SIZES, activation="identity", dtype=dtype, backend="cython", seed=1), OPTIMIZERS[optimizer]()
    X, y = batch(rng, 8, "mse")
    net.train_step(X, y, opt)
    net.set_params([np.ones(w.shape) for w in net.weights], net.biases)
    params, state, count = net.get_flat_params(), {k: v.copy() for k, v in opt.state.items()}, opt.step_count
    huge = np.full((8, SIZES[0]), np.finfo(dtype).max / 4)
    with pytest.raises(FloatingPointError):
        net.train_step(huge, y, opt)
    assert net.get_flat_params().tobytes() == params.tobytes()
    assert all(opt.state[k].tobytes() == state[k].tobytes() for k in state)
    assert opt.step_count == count
    net.train_step(X, y, opt)                      # and it goes on from there
    assert np.isfinite(net.get_flat_params()).all() and opt.step_count == count + 1


def test_workspace_is_allocated_once_and_reused_across_batch_sizes():
    rng = np.random.default_rng(11)
    nets = pair(np.float64)
    opts = [fb.SGD(0.05) for _ in nets]
    seen = []
    for n in (32, 5, 32, 1, 20):
        X, y = batch(rng, n, "mse")
        for net, opt in zip(nets, opts):
            net.train_step(X, y, opt)
        seen.append(nets[1]._state.scratch["workspace"])
        np.testing.assert_allclose(nets[1].flat_params, nets[0].flat_params, **tolerance(np.float64))
    assert all(ws is seen[0] for ws in seen) and seen[0].capacity == 32
    X, y = batch(rng, 40, "mse")
    nets[1].train_step(X, y, opts[1])
    assert nets[1]._state.scratch["workspace"].capacity == 40       # grown for a larger batch


# ---- backend choice ----

@pytest.mark.parametrize("sizes,activation", [
    ((2, 2, 2), "sigmoid"), ((64, 64, 64, 1), "tanh"), ((64, 64, 64, 1), "relu"), ((784, 128, 64, 10), "sigmoid"),
    ((784, 256, 256, 10), "relu"), ((1024, 1024, 1024, 1024), "relu"), ((32, 32, 32, 1), "mish"),
])
def test_auto_is_cython_wherever_it_is_built(monkeypatch, sizes, activation):
    """Cython is as fast as Numba or faster on every shape (bench/results/auto-rule.md), so
    "auto" takes it whatever the network; Numba where Cython is not usable; the preference
    bounds the choice."""
    monkeypatch.setattr(_kernels, "AUTO_PREFERENCE", ("cython", "numba", "numpy"))
    assert fb.MLP(list(sizes), activation=activation, seed=0).backend == "cython"
    monkeypatch.setitem(_kernels._status, "cython", (False, "not built (a test)"))
    assert _kernels.resolve("auto") == ("numba" if "numba" in fb.available_backends() else "numpy")
    monkeypatch.setattr(_kernels, "AUTO_PREFERENCE", ("numpy",))
    assert _kernels.resolve("auto") == "numpy"


def test_info_names_the_activation_path_in_use():
    """`fastbp info` names the instruction-set path of the activation loops, which import
    chose: the best this CPU runs."""
    from fastbp._kernels.cython_cpu import kernels as k
    name, description = k.activation_paths()[0]
    done = subprocess.run([sys.executable, "-m", "fastbp", "info"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("Cython activations: "))
    assert line.startswith(f"Cython activations: {description} loops ({name!r}, chosen at import"), line
    assert ", ".join(path for path, _ in k.activation_paths()) in line


@pytest.mark.parametrize("backend", ["cython", "auto"])
def test_cython_and_auto_import_no_numba(backend):
    """A fresh process: a network on Cython (asked for, or by "auto"), the first float32
    train_step of every standard benchmark workload (tanh and sigmoid ones included), and
    neither Numba nor SciPy's linear algebra is imported, so nothing waits for a JIT."""
    code = ("import sys, numpy as np, fastbp as fb\n"
            "from fastbp.benchmark import workloads\n"
            "for w in workloads.STANDARD:\n"
            f"    net = workloads.make_net(w, np.float32, {backend!r})\n"
            "    assert net.backend == 'cython', net.backend\n"
            "    net.train_step(*workloads.make_batch(w, np.float32), fb.SGD(0.01))\n"
            "assert 'numba' not in sys.modules, 'numba was imported'\n"
            "assert 'scipy.linalg' not in sys.modules, 'scipy.linalg was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_step_checks_inputs_itself_before_writing(dtype):
    """CythonOps.checks_finite: the compiled step rejects NaN/inf in X or y, nothing written."""
    assert cython_cpu.CythonOps.checks_finite
    rng = np.random.default_rng(12)
    net, opt = fb.MLP(SIZES, dtype=dtype, backend="cython", seed=1), fb.Adam(0.01)
    X, y = (a.astype(dtype) for a in batch(rng, 6, "mse"))
    net.train_step(X, y, opt)
    params, grads, state = net.get_flat_params(), net.flat_grads.copy(), {k: v.copy() for k, v in opt.state.items()}
    for name, bad_X, bad_y in (("X", np.where(X > 1, np.nan, X), y), ("y", X, np.where(y > 1, np.inf, y))):
        with pytest.raises(ValueError, match=name):
            cython_cpu.ops.train_step(net._state, bad_X, bad_y, opt)
        with pytest.raises(ValueError, match=name):
            net.train_step(bad_X, bad_y, opt)
    assert net.get_flat_params().tobytes() == params.tobytes() and net.flat_grads.tobytes() == grads.tobytes()
    assert all(opt.state[k].tobytes() == state[k].tobytes() for k in state) and opt.step_count == 1
