"""The per-step fast paths of net.train_step (what makes a tiny step cheap) change no
numbers and go stale on nothing: hyper-parameters changed between steps take effect,
arrays that are not exactly kernel-ready still go through the full checks, and the Numba
backend's view-free pass for tiny networks equals its view/BLAS pass.
"""
import numpy as np
import pytest

import fastbp as fb
from fastbp import validation
from fastbp.activations import NAMES as ACTIVATIONS

from conftest import CPU_BACKENDS, tolerance


def nets(backend, dtype, sizes=(3, 4, 2), activation="tanh", loss="mse"):
    return [fb.MLP(list(sizes), activation=activation, loss=loss, dtype=dtype, backend=b, seed=7)
            for b in ("numpy", backend)]


CHANGES = {
    "sgd": (lambda: fb.SGD(0.1), [("lr", 0.01), ("momentum", 0.9), ("weight_decay", 0.1), ("nesterov", True),
                                  ("momentum", 0.0), ("nesterov", False)]),
    "adam": (lambda: fb.Adam(0.01), [("lr", 0.05), ("betas", (0.5, 0.9)), ("eps", 1e-3), ("weight_decay", 0.2)]),
}


@pytest.mark.parametrize("kind", sorted(CHANGES))
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_hyperparameters_changed_between_steps_take_effect(backend, kind):
    """opt.lr = ... (and every other hyper-parameter) between steps is used by the next
    step, exactly as the reference uses it: nothing a backend keeps between steps goes stale."""
    make, changes = CHANGES[kind]
    ref, net = nets(backend, np.float64)
    opt_ref, opt = make(), make()
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    for name, value in [(None, None)] + changes:
        if name is not None:
            setattr(opt_ref, name, value)
            setattr(opt, name, value)
        before = net.get_flat_params()
        assert net.train_step(X, y, opt) == pytest.approx(ref.train_step(X, y, opt_ref), rel=1e-10)
        np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), **tolerance(np.float64))
        assert not np.array_equal(net.get_flat_params(), before)
    for name in opt.state_names:
        np.testing.assert_allclose(opt.state[name], opt_ref.state[name], **tolerance(np.float64))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_arrays_that_are_not_kernel_ready_give_the_same_step(backend):
    """Read-only, Fortran-order, strided, other-dtype and list inputs take the checked path
    and give the numbers of the C-contiguous array of the network's dtype."""
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((6, 3)).astype(np.float32), rng.standard_normal((6, 2)).astype(np.float32)
    readonly = X.copy()
    readonly.flags.writeable = False
    variants = {"c": (X, y), "readonly": (readonly, y), "fortran": (np.asfortranarray(X), y),
                "strided": (np.repeat(X, 2, axis=0)[::2], y), "float64": (X.astype(np.float64), y),
                "list": (X.tolist(), y.tolist())}
    results = {}
    for name, (Xv, yv) in variants.items():
        net = fb.MLP([3, 4, 2], activation="tanh", dtype=np.float32, backend=backend, seed=1)
        loss = net.train_step(Xv, yv, fb.SGD(0.1))
        results[name] = (loss, net.get_flat_params())
    for name, (loss, params) in results.items():
        assert loss == results["c"][0], name
        np.testing.assert_array_equal(params, results["c"][1], err_msg=name)


def test_ready_pair_accepts_only_exact_kernel_arrays():
    f32 = np.dtype(np.float32)
    X, y = np.zeros((4, 3), f32), np.zeros((4, 2), f32)
    assert validation.ready_pair(X, y, f32, 3, 2)
    readonly = X.copy()
    readonly.flags.writeable = False
    for Xb, yb in [(X[:0], y[:0]), (X, y[:3]), (X[:, :2], y), (X.T.copy().T, y), (readonly, y),
                   (X.astype(np.float64), y), (X, y.astype(np.float64)), (X.tolist(), y),
                   (X.view(np.recarray), y), (X, y[:, :1]), (X.ravel(), y)]:
        assert not validation.ready_pair(Xb, yb, f32, 3, 2)


@pytest.mark.skipif("numba" not in fb.available_backends(), reason="numba backend not usable")
@pytest.mark.parametrize("loss", ["mse", "cross_entropy", "bce"])
def test_numba_flat_pass_equals_the_view_pass(loss, monkeypatch):
    """Tiny networks run the Numba step's view-free pass; forcing the view/BLAS pass on the
    same network gives the same losses, gradients and parameters (float64, every activation)."""
    from fastbp._kernels.numba_cpu import step
    rng = np.random.default_rng(3)
    for activation in ACTIVATIONS:
        pair = []
        for flat_max in (step.FLAT_MAX_MACS, -1):
            monkeypatch.setattr(step, "FLAT_MAX_MACS", flat_max)
            net = fb.MLP([4, 5, 3], activation=activation, loss=loss, dtype=np.float64, backend="numba", seed=2)
            pair.append((net, fb.Adam(0.01)))
            assert net._ops.prepared(net._state, 6).flat == (flat_max > 0)
        for _ in range(3):
            X = rng.standard_normal((6, 4))
            y = rng.integers(0, 3, 6) if loss == "cross_entropy" else rng.random((6, 3))
            (flat, opt_f), (view, opt_v) = pair
            assert flat.train_step(X, y, opt_f) == pytest.approx(view.train_step(X, y, opt_v), rel=1e-12)
            lf, dWf, dbf = flat.loss_and_grad(X, y)
            lv, dWv, dbv = view.loss_and_grad(X, y)
            assert lf == pytest.approx(lv, rel=1e-12)
            for a, b in zip(dWf + dbf, dWv + dbv):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14, err_msg=activation)
        np.testing.assert_allclose(flat.get_flat_params(), view.get_flat_params(), rtol=1e-10, atol=1e-14,
                                   err_msg=activation)
