"""What is particular to the Numba backend: float64 activations are libm, the
one-call training step against the composed NumPy reference, the non-finite path, the
per-batch-size workspaces, thread limits, and compile-on-first-use.

(The shared suites -- kernels, autograd, worked examples, bad input -- run on this backend
through the `backend` fixture.) Few specialisations on purpose: compile time is most of
this file's run time.
"""
import subprocess
import sys

import numpy as np
import pytest

import fastbp as fb

pytestmark = pytest.mark.skipif("numba" not in fb.available_backends(), reason="numba backend not usable")

F32 = np.float32


# ---------------------------------------------------------------- activations
# (the float32 approximations' error bound: tests/test_activations32.py)

def activate(x, code):
    from fastbp._kernels.numba_cpu.activations import activate_1d
    out = np.empty_like(x)
    activate_1d(x, out, code)
    return out


def sigmoid64(z):
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


def test_float64_activations_are_libm():
    from fastbp import activations as act
    x = np.linspace(-30, 30, 10001)
    np.testing.assert_allclose(activate(x, act.TANH), np.tanh(x), rtol=1e-15, atol=0)
    np.testing.assert_allclose(activate(x, act.SIGMOID), sigmoid64(x), rtol=1e-15, atol=0)


# ---------------------------------------------------------------- the fused step

OPTIMIZERS = {
    "sgd": lambda: fb.SGD(0.05),
    "momentum": lambda: fb.SGD(0.05, momentum=0.9, weight_decay=1e-3),
    "nesterov": lambda: fb.SGD(0.05, momentum=0.8, nesterov=True),
    "adam": lambda: fb.Adam(0.01, weight_decay=1e-3),
}
LOSSES = [("mse", "mean", "tanh", "sigmoid"), ("mse", "sum", "relu", "identity"),
          ("cross_entropy", "mean", "sigmoid", "identity"), ("cross_entropy", "sum", "gelu", "identity"),
          ("bce", "mean", "silu", "identity"), ("bce", "sum", "elu", "identity")]


def data(loss, batch, rng, n_in=5, n_out=3):
    X = rng.standard_normal((batch, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, batch)
    elif loss == "bce":
        y = rng.random((batch, n_out))
    else:
        y = rng.standard_normal((batch, n_out))
    return X, y


def pair(loss, reduction, hidden, output, dtype, sizes=(5, 8, 6, 3)):
    return [fb.MLP(list(sizes), activation=hidden, output_activation=output, loss=loss, reduction=reduction,
                   dtype=dtype, backend=b, seed=3) for b in ("numpy", "numba")]


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("loss,reduction,hidden,output", LOSSES)
def test_fused_step_matches_the_composed_reference(loss, reduction, hidden, output, opt_name):
    """Several float64 steps of the one-call step == NumpyOps' kernel-by-kernel step, to 1e-10:
    the losses, the parameters and the optimizer state."""
    rng = np.random.default_rng(11)
    ref, net = pair(loss, reduction, hidden, output, np.float64)
    opt_ref, opt = OPTIMIZERS[opt_name](), OPTIMIZERS[opt_name]()
    for _ in range(4):
        X, y = data(loss, 7, rng)
        assert net.train_step(X, y, opt) == pytest.approx(ref.train_step(X, y, opt_ref), rel=1e-10)
    np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), rtol=1e-10, atol=1e-12)
    for name in opt.state_names:
        np.testing.assert_allclose(opt.state[name], opt_ref.state[name], rtol=1e-10, atol=1e-12)
    assert opt.step_count == opt_ref.step_count == 4


@pytest.mark.parametrize("loss,reduction,hidden,output", [LOSSES[0], LOSSES[2], LOSSES[4]])
def test_fused_step_float32_is_the_reference_up_to_rounding(loss, reduction, hidden, output):
    rng = np.random.default_rng(5)
    ref, net = pair(loss, reduction, hidden, output, F32)
    opt_ref, opt = fb.Adam(0.01), fb.Adam(0.01)
    for _ in range(3):
        X, y = data(loss, 6, rng)
        assert net.train_step(X, y, opt) == pytest.approx(ref.train_step(X, y, opt_ref), rel=1e-4)
    np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), rtol=1e-4, atol=1e-5)


def test_forward_loss_and_grad_match_the_reference():
    rng = np.random.default_rng(2)
    ref, net = pair("cross_entropy", "mean", "tanh", "identity", np.float64)
    X, y = data("cross_entropy", 9, rng)
    np.testing.assert_allclose(net.forward(X), ref.forward(X), rtol=1e-12)
    assert net.loss_value(X, y) == pytest.approx(ref.loss_value(X, y), rel=1e-12)
    l1, dW1, db1 = net.loss_and_grad(X, y)
    l0, dW0, db0 = ref.loss_and_grad(X, y)
    assert l1 == pytest.approx(l0, rel=1e-12)
    for a, b in zip(dW1 + db1, dW0 + db0):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def snapshot(net, opt):
    return (net.get_flat_params(), {k: np.array(v) for k, v in opt.state.items()}, opt.step_count)


def assert_unchanged(before, net, opt):
    params, state, steps = before
    np.testing.assert_array_equal(net.get_flat_params(), params)
    assert opt.step_count == steps
    for k, v in state.items():
        np.testing.assert_array_equal(opt.state[k], v)


@pytest.mark.parametrize("opt_name", ["momentum", "adam"])
def test_nonfinite_loss_updates_nothing(opt_name):
    """A loss that overflows inside the compiled call: FloatingPointError, and the update
    (skipped inside the same call) has touched neither parameters nor optimizer state."""
    rng = np.random.default_rng(0)
    net = fb.MLP([5, 8, 3], activation="relu", dtype=F32, backend="numba", seed=1)
    opt = OPTIMIZERS[opt_name]()
    X, y = data("mse", 4, rng)
    net.train_step(X, y, opt)                       # state buffers now hold non-zero values
    before = snapshot(net, opt)
    with pytest.raises(FloatingPointError):
        net.train_step(X * 1e30, y, opt)            # finite input, overflowing loss/gradients
    assert_unchanged(before, net, opt)
    net.train_step(X, y, opt)                       # and training goes on from there
    assert opt.step_count == before[2] + 1


@pytest.mark.parametrize("where", ["X", "y"])
def test_nan_input_is_rejected_inside_the_call_before_any_write(where):
    rng = np.random.default_rng(0)
    net = fb.MLP([5, 8, 3], activation="tanh", dtype=F32, backend="numba", seed=1)
    opt = fb.Adam(0.01)
    X, y = data("mse", 4, rng)
    net.train_step(X, y, opt)
    grads = net.flat_grads.copy()
    before = snapshot(net, opt)
    bad = X.copy() if where == "X" else y.copy()
    bad[2, 1] = np.inf if where == "X" else np.nan
    with pytest.raises(ValueError, match=f"^{where} contains NaN or inf"):
        net.train_step(bad, y, opt) if where == "X" else net.train_step(X, bad, opt)
    assert_unchanged(before, net, opt)
    np.testing.assert_array_equal(net.flat_grads, grads)


def test_workspaces_are_reused_across_changing_batch_sizes():
    """One workspace per network, allocated once for the largest batch so far and shared by
    the smaller ones; what each batch size needs besides it is prepared once and reused;
    results as the reference whatever the order of sizes; only a few sizes kept."""
    from fastbp._kernels.base import MAX_PREPARED
    rng = np.random.default_rng(4)
    ref, net = pair("mse", "mean", "sigmoid", "identity", np.float64)
    opt_ref, opt = fb.SGD(0.1, momentum=0.5), fb.SGD(0.1, momentum=0.5)
    seen = []
    for batch in (5, 3, 5, 1, 3, 8, 5):
        X, y = data("mse", batch, rng)
        assert net.train_step(X, y, opt) == pytest.approx(ref.train_step(X, y, opt_ref), rel=1e-10)
        seen.append((net._state.scratch[batch], net._state.scratch["workspace"]))
    np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), rtol=1e-10)
    (p5, w0), (p3, _), (p5b, _), _, (p3b, _), (p8, w8), (p5c, w8b) = seen
    assert p5b is p5 and p3b is p3                                  # prepared once per batch size
    assert all(w is w0 for _, w in seen[:5]) and w0.capacity == 5   # one workspace shared by 5, 3, 1
    assert w8 is w8b is not w0 and w8.capacity == 8                 # grown once, for 8
    assert p5c is not p5 and p5c.workspace is w8                    # 5 prepared again over the new one
    for batch in (9, 10, 11, 12, 13):
        net.train_step(*data("mse", batch, rng), opt)
    assert sum(isinstance(k, int) for k in net._state.scratch) <= MAX_PREPARED


def test_blas_path_matches_the_loops():
    """A network whose first layer goes to BLAS and whose second runs the loops: same
    numbers as the reference on both paths."""
    from fastbp._kernels.numba_cpu.products import BLAS_MIN_FLOPS, use_blas
    rng = np.random.default_rng(8)
    sizes = (300, 40, 8)
    batch = 20
    assert use_blas(batch * sizes[0] * sizes[1], sizes[1])
    assert not use_blas(batch * sizes[1] * sizes[2], sizes[2]) and batch * sizes[1] * sizes[2] < BLAS_MIN_FLOPS
    ref, net = pair("mse", "mean", "tanh", "identity", np.float64, sizes=sizes)
    opt_ref, opt = fb.SGD(0.01), fb.SGD(0.01)
    for _ in range(2):
        X, y = data("mse", batch, rng, n_in=sizes[0], n_out=sizes[-1])
        assert net.train_step(X, y, opt) == pytest.approx(ref.train_step(X, y, opt_ref), rel=1e-10)
    np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), rtol=1e-10, atol=1e-13)


def test_numpy_blas_gemm_and_its_fallback():
    """numba_cpu.blas.gemm (NumPy's cblas gemm through an address argument) on every transpose
    form, on strided row views, and its refusals (address 0, elements not adjacent), which
    leave C untouched so the caller uses np.dot."""
    from fastbp._kernels.numba_cpu import blas as nb
    rng = np.random.default_rng(9)
    for dtype in (np.float32, np.float64):
        addr = nb.gemm_address(dtype)
        if not addr:
            pytest.skip(f"no cblas gemm in NumPy's BLAS here: {nb.provider()}")
        A, B = rng.standard_normal((13, 7)).astype(dtype), rng.standard_normal((7, 5)).astype(dtype)
        big = rng.standard_normal((20, 30)).astype(dtype)
        cases = [((False, False), A, B, A @ B), ((True, False), A.T.copy(), B, A @ B),
                 ((False, True), A, B.T.copy(), A @ B), ((False, False), big[2:15, 3:10], B, big[2:15, 3:10] @ B)]
        for (ta, tb), a, b, want in cases:
            C = np.full(want.shape, np.nan, dtype)
            assert nb.gemm(addr, ta, tb, a, b, C)
            np.testing.assert_allclose(C, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
        C = np.full((13, 5), 7.0, dtype)
        assert not nb.gemm(0, False, False, A, B, C)
        assert not nb.gemm(addr, False, False, big[:13, :14:2], B, C)
        assert (C == 7.0).all()


# ---------------------------------------------------------------- threads, compilation

def test_set_num_threads_limits_numba_and_blas():
    numba = pytest.importorskip("numba")
    from threadpoolctl import threadpool_info
    before = numba.get_num_threads()
    try:
        assert fb.set_num_threads(1) == 1
        assert fb.get_num_threads() == 1
        assert numba.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
        rng = np.random.default_rng(1)
        X, y = data("mse", 40, rng, n_in=300, n_out=2)
        results = []
        for n in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            fb.set_num_threads(n)
            net = fb.MLP([300, 40, 2], dtype=np.float64, backend="numba", seed=0)
            net.train_step(X, y, fb.SGD(0.01))
            results.append(net.get_flat_params())
        np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
    finally:
        fb.set_num_threads(before)
    for bad, err in ((0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)):
        with pytest.raises(err, match="n must"):
            fb.set_num_threads(bad)


def test_import_compiles_nothing():
    code = ("import fastbp, sys, importlib, pkgutil; import fastbp._kernels.numba_cpu as p; "
            "from numba.core.registry import CPUDispatcher; "
            "ms = [importlib.import_module(p.__name__ + '.' + i.name) for i in pkgutil.iter_modules(p.__path__)]; "
            "d = [v for m in ms for v in vars(m).values() if isinstance(v, CPUDispatcher)]; "
            "assert d and all(not f.signatures for f in d), [f for f in d if f.signatures]; "
            "print(len(d))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 10
