"""The base Ops: a backend that overrides nothing runs everything on its first day (its kernels
are the reference's, on host copies), and the one train_step orchestration (optimizer kind,
binding, status codes -> exceptions) behaves the same for every backend."""
import numpy as np
import pytest

import fastbp as fb
from fastbp._kernels import base, plan
from conftest import BACKENDS, tolerance


class DayOne(base.Ops):
    """A new backend before it has written a single kernel."""
    name = "day-one"


class Device(np.ndarray):
    """Stands for arrays in another memory: only from_host/to_host/copy_into cross over."""


class OtherMemory(base.Ops):
    name = "other-memory"

    def from_host(self, a):
        return np.array(a, copy=True).view(Device)

    def to_host(self, a):
        return np.array(a, copy=True)

    def copy_into(self, dst, host_src):
        dst[...] = host_src


def nets(loss="cross_entropy"):
    kwargs = dict(activation="mish", output_activation="identity", loss=loss, dtype=np.float64, seed=0)
    return fb.MLP([3, 4, 2], backend="numpy", **kwargs), fb.MLP([3, 4, 2], backend="numpy", **kwargs)


@pytest.mark.parametrize("ops", [DayOne(), OtherMemory()], ids=["day-one", "other-memory"])
@pytest.mark.parametrize("make_opt", [lambda: fb.SGD(0.1, momentum=0.9), lambda: fb.Adam(0.01)], ids=["sgd", "adam"])
def test_a_backend_that_overrides_nothing_trains(ops, make_opt):
    ref, net = nets()
    rng = np.random.default_rng(0)
    ref_opt, opt = make_opt(), make_opt()
    state = net._state
    if isinstance(ops, OtherMemory):            # its buffers live in "its" memory
        for buffers in (state.params, state.grads):
            buffers.flat = ops.from_host(buffers.flat)
            buffers.W = [buffers.flat[w:b].reshape(W.shape) for W, (w, b) in zip(buffers.W, net.arch.offsets)]
            buffers.b = [buffers.flat[b:b + n].reshape(n) for (_, b), n in zip(net.arch.offsets, net.arch.sizes[1:])]
    for _ in range(3):
        X, y = rng.normal(size=(5, 3)), rng.integers(0, 2, 5)
        loss = ops.train_step(state, ops.from_host(X), ops.from_host(y), opt)
        assert loss == pytest.approx(ref.train_step(X, y, ref_opt), rel=1e-12)
    np.testing.assert_allclose(ops.to_host(state.params.flat), ref.get_flat_params(), **tolerance(np.float64))
    for name in ref_opt.state:
        np.testing.assert_allclose(ops.to_host(opt.state[name]), ref_opt.state[name], **tolerance(np.float64))
    assert opt.step_count == ref_opt.step_count == 3
    out = ops.forward(state, ops.from_host(X))
    np.testing.assert_allclose(ops.to_host(out), ref.forward(X), **tolerance(np.float64))


def test_the_kernels_default_to_the_reference():
    ops, ref = DayOne(), fb._kernels.reference.ops
    rng = np.random.default_rng(1)
    X, W, b, D = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=(4, 5))
    code = fb.activations.code("selu")
    for got, want in zip(ops.linear_forward(X, W, b, code), ref.linear_forward(X, W, b, code)):
        np.testing.assert_array_equal(got, want)
    Z, A = ref.linear_forward(X, W, b, code)
    np.testing.assert_array_equal(ops.activation_backward(D, Z, A, code), ref.activation_backward(D, Z, A, code))
    dW, db = np.empty((3, 5)), np.empty(5)
    assert ops.weight_gradient(X, D, dW, db) == (dW, db)
    np.testing.assert_array_equal(dW, ref.weight_gradient(X, D)[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_first_step_leaves_the_optimizer_unbound(backend):
    """A non-finite step raises FloatingPointError (the status), nothing updated, the optimizer
    as it was before the call: unbound, so it may still be used with another network."""
    net = fb.MLP([2, 3, 1], dtype=np.float64, backend=backend, seed=0)
    net.set_params([np.full((2, 3), 1e200), np.full((3, 1), 1e200)], [np.zeros(3), np.zeros(1)])
    before = net.get_flat_params()
    for opt in (fb.SGD(0.1), fb.SGD(0.1, momentum=0.5), fb.Adam()):
        with pytest.raises(FloatingPointError, match="non-finite"):
            net.train_step(np.full((4, 2), 1e200), np.zeros((4, 1)), opt)
        assert opt.bound_to is None and opt.state == {} and opt.step_count == 0
        assert net.get_flat_params().tobytes() == before.tobytes()


def test_statuses_map_to_the_documented_exceptions():
    assert isinstance(plan.status_error(plan.BAD_X), ValueError) and "X contains NaN" in str(plan.status_error(plan.BAD_X))
    assert isinstance(plan.status_error(plan.BAD_Y), ValueError) and "y contains NaN" in str(plan.status_error(plan.BAD_Y))
    assert isinstance(plan.status_error(plan.NONFINITE, float("inf")), FloatingPointError)
    assert isinstance(plan.status_error(plan.BAD_PLAN), ValueError)


def test_a_subclassed_optimizer_takes_its_own_update():
    """kind is not inherited: a subclass may change the update, so the compiled steps leave it alone."""
    class Halved(fb.SGD):
        def _apply(self, ops, params, grads):
            super()._apply(ops, params, grads * 0.5)
    assert fb.SGD.kind == "sgd" and Halved.kind is None
    for backend in [b for b in BACKENDS if b != "cuda"]:
        a = fb.MLP([2, 3, 1], dtype=np.float64, backend=backend, seed=0)
        b = fb.MLP([2, 3, 1], dtype=np.float64, backend="numpy", seed=0)
        X, y = np.ones((4, 2)), np.zeros((4, 1))
        a.train_step(X, y, Halved(0.2))
        b.train_step(X, y, fb.SGD(0.1))
        np.testing.assert_allclose(a.get_flat_params(), b.get_flat_params(), **tolerance(np.float64))
