"""fb.gradcheck: passes on correct networks, fails (naming the layer) on a planted wrong derivative."""
import numpy as np
import pytest

import fastbp as fb
from fastbp import activations
from fastbp._kernels import get_ops, reference
from conftest import CUDA_SIMULATED

SMOOTH = [("tanh", "identity", "mse"), ("sigmoid", "sigmoid", "bce"), ("softplus", "identity", "cross_entropy"),
          ("gelu", "tanh", "mse"), ("silu", "identity", "bce"), ("elu", "softplus", "cross_entropy"),
          ("identity", "gelu", "mse")]


def problem(sizes, loss, seed=0, batch=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, sizes[0]))
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], size=batch)
    elif loss == "bce":
        y = rng.uniform(size=(batch, sizes[-1]))
    else:
        y = rng.normal(size=(batch, sizes[-1]))
    return X, y


def small(backend):
    return backend == "cuda" and CUDA_SIMULATED


def checks(backend):
    """Entries checked per tensor: all, except a few on the CUDA simulator (~0.2 ms per thread)."""
    return dict(max_checks_per_tensor=3) if small(backend) else {}


def net_for(backend, sizes, hidden, output, loss, dtype=np.float64, reduction="mean", seed=0):
    net = fb.MLP(sizes, activation=hidden, output_activation=output, loss=loss, reduction=reduction,
                 dtype=dtype, backend=backend, seed=seed)
    rng = np.random.default_rng(seed + 1)
    net.set_params(net.weights, [0.3 * rng.normal(size=b.shape) for b in net.biases])
    return net


@pytest.mark.parametrize("hidden,output,loss", SMOOTH, ids=["-".join(s) for s in SMOOTH])
def test_passes_on_correct_networks(backend, dtype, hidden, output, loss):
    sizes = [3, 4, 2] if small(backend) else [5, 8, 6, 3]
    net = net_for(backend, sizes, hidden, output, loss, dtype)
    X, y = problem(sizes, loss)
    report = fb.gradcheck(net, X, y, **checks(backend))
    assert report.passed, str(report)
    assert len(report.tensors) == 2 * (len(sizes) - 1)
    assert report.max_abs < 1e-6, str(report)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_passes_with_both_reductions(backend, reduction):
    sizes = [3, 3, 2]
    net = net_for(backend, sizes, "tanh", "identity", "mse", reduction=reduction)
    assert fb.gradcheck(net, *problem(sizes, "mse", batch=5), **checks(backend)).passed


@pytest.mark.parametrize("hidden", ["relu", "leaky_relu"])
def test_kinked_activations_pass_away_from_the_kink(backend, hidden):
    """relu and leaky_relu have a kink at 0, where central differences straddle two slopes.
    The data are chosen so no pre-activation lies within 1e-3 of it (checked here), far
    outside the finite-difference step."""
    sizes = [4, 6, 2]
    net = net_for(backend, sizes, hidden, "identity", "mse", seed=3)
    X, y = problem(sizes, "mse", seed=3)
    Z1 = X @ net.weights[0] + net.biases[0]
    assert np.abs(Z1).min() > 1e-3, "test data put a pre-activation on the kink; pick another seed"
    report = fb.gradcheck(net, X, y, **checks(backend))
    assert report.passed, str(report)


def test_a_kink_inside_the_step_is_reported(backend):
    """A relu pre-activation exactly at 0: backprop uses the derivative 0 (torch's convention)
    while central differences see the average slope 1/2, so gradcheck flags the first layer.
    It is a property of the kink, not a bug, and the report must say where it is."""
    net = net_for(backend, [1, 1, 1], "relu", "identity", "mse")
    net.set_params([np.array([[1.0]]), np.array([[1.0]])], [np.array([0.0]), np.array([0.0])])
    X, y = np.array([[0.0]]), np.array([[1.0]])       # Z1 = 0 exactly
    report = fb.gradcheck(net, X, y)
    failed = {(t.layer, t.param) for t in report.tensors if not t.passed}
    assert not report.passed and (0, "W") not in failed and (0, "b") in failed, str(report)


@pytest.mark.parametrize("broken", ["tanh", "sigmoid", "gelu"])
def test_fails_on_a_wrong_activation_derivative(monkeypatch, broken):
    """Plant a wrong f' in the reference backend (1% off): every layer whose delta passes
    through the broken hidden activation fails; the output layer, whose own derivative is
    still right, passes."""
    code = activations.code(broken)
    right = reference.DERIVATIVES[code]
    sizes = [4, 5, 6, 3]
    net = net_for("numpy", sizes, broken, "identity", "mse")
    X, y = problem(sizes, "mse")
    assert fb.gradcheck(net, X, y).passed
    monkeypatch.setitem(reference.DERIVATIVES, code, lambda z, a: right(z, a) * 1.01)
    report = fb.gradcheck(net, X, y)
    assert not report.passed
    failed_layers = {t.layer for t in report.tensors if not t.passed}
    assert failed_layers == {0, 1}, str(report)
    text = str(report)
    assert "FAILED" in text
    for line in text.splitlines():
        if line.strip().startswith(("W[0]", "b[0]", "W[1]", "b[1]")):
            assert line.rstrip().endswith("NO"), line
        if line.strip().startswith(("W[2]", "b[2]")):
            assert line.rstrip().endswith("yes"), line


def test_fails_on_a_wrong_output_derivative(monkeypatch):
    code = activations.SIGMOID
    right = reference.DERIVATIVES[code]
    net = net_for("numpy", [3, 4, 2], "tanh", "sigmoid", "mse")
    X, y = problem([3, 4, 2], "mse")
    monkeypatch.setitem(reference.DERIVATIVES, code, lambda z, a: right(z, a) + 1e-3)
    report = fb.gradcheck(net, X, y)
    assert {t.layer for t in report.tensors if not t.passed} == {0, 1}, str(report)


@pytest.mark.parametrize("bad_layer", [0, 1, 2])
def test_fails_on_a_planted_wrong_gradient_in_any_backend(backend, monkeypatch, bad_layer):
    """Corrupt one layer's weight gradient after the backend's own backward pass (whatever
    path it takes; one entry, or all on the CUDA simulator where only a few are checked):
    exactly that tensor fails."""
    ops = get_ops(backend)
    real = ops.loss_and_grad

    def corrupted(state, X, y, sw=None):
        loss = real(state, X, y, sw)
        W = state.grads.W[bad_layer]
        host = np.array(ops.to_host(W), copy=True)
        if small(backend):          # a few entries sampled per tensor: corrupt them all
            host += 1e-2 + np.abs(host)
        else:                       # every entry checked: one wrong entry must be found
            host[0, 0] += 1e-2 + abs(host[0, 0])
        ops.copy_into(W, host)
        return loss

    monkeypatch.setattr(ops, "loss_and_grad", corrupted)
    sizes = [3, 4, 3, 2]
    net = net_for(backend, sizes, "tanh", "identity", "mse")
    report = fb.gradcheck(net, *problem(sizes, "mse"), **checks(backend))
    failed = [(t.layer, t.param) for t in report.tensors if not t.passed]
    assert failed == [(bad_layer, "W")], str(report)
    assert f"W[{bad_layer}]" in str(report)


def test_report_renders_and_summarises(backend):
    sizes = [2, 2, 1] if small(backend) else [3, 4, 2]
    net = net_for(backend, sizes, "tanh", "identity", "mse")
    report = fb.gradcheck(net, *problem(sizes, "mse"))
    text = str(report)
    assert "passed" in text and backend in text
    for name in ("W[0]", "b[0]", "W[1]", "b[1]"):
        assert name in text
    assert report.max_abs == max(t.max_abs for t in report.tensors)
    assert report.max_rel == max(t.max_rel for t in report.tensors)
    assert all(t.checked == t.size for t in report.tensors)


def test_large_tensors_are_sampled(backend):
    sizes = [3, 4, 2] if small(backend) else [30, 20, 2]
    net = net_for(backend, sizes, "tanh", "identity", "mse")
    report = fb.gradcheck(net, *problem(sizes, "mse"), max_checks_per_tensor=10)
    assert report.passed, str(report)
    for t in report.tensors:
        assert t.checked == min(10, t.size)


def test_gradcheck_leaves_the_network_unchanged(backend, dtype):
    net = net_for(backend, [3, 4, 2], "tanh", "identity", "mse", dtype=dtype)
    before = net.get_flat_params()
    fb.gradcheck(net, *problem([3, 4, 2], "mse"), **checks(backend))
    assert before.tobytes() == net.get_flat_params().tobytes()


def test_gradcheck_validates_its_data(backend):
    net = net_for(backend, [3, 4, 2], "tanh", "identity", "mse")
    with pytest.raises(ValueError, match="X"):
        fb.gradcheck(net, np.ones((2, 5)), np.ones((2, 2)))
