"""The four public kernels (fb.kernels.*) on each backend, at each workload's shapes:
linear_forward and weight_gradient on the first layer, delta_propagate from the second
layer into the first, activation_backward on the first layer. The timings include the
public boundary's argument checks, as a user calling fb.kernels.* pays them."""
import numpy as np
import pytest

import fastbp as fb
from fastbp.benchmark.workloads import make_batch, make_net

DTYPE = np.float32     # the benchmarks' dtype (bench/conftest.py)


def tolerance(workload):
    from fastbp.benchmark.guard import tolerance
    return tolerance(workload, DTYPE)


@pytest.fixture
def layer(workload):
    """First-layer operands of the workload, and the reference forward through it."""
    X, _ = make_batch(workload, DTYPE)
    net = make_net(workload, DTYPE, "numpy")
    W0, b0, W1 = net.weights[0], net.biases[0], net.weights[1]
    Z0, A0 = fb.kernels.linear_forward(X, W0, b0, workload.activation, backend="numpy")
    rng = np.random.default_rng(1)
    delta1 = rng.standard_normal((workload.batch, W1.shape[1])).astype(DTYPE)
    dA0 = rng.standard_normal(Z0.shape).astype(DTYPE)
    return dict(X=X, W0=W0, b0=b0, W1=W1, Z0=Z0, A0=A0, delta1=delta1, dA0=dA0, act=workload.activation)


def assert_close(got, want, workload):
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        scale = max(float(np.max(np.abs(w))), 1e-30)
        assert float(np.max(np.abs(g - w))) / scale <= tolerance(workload)


def test_linear_forward(run_benchmark, workload, backend, layer):
    L = layer
    fn = lambda: fb.kernels.linear_forward(L["X"], L["W0"], L["b0"], L["act"], backend=backend)  # noqa: E731
    assert_close(fn(), (L["Z0"], L["A0"]), workload)
    run_benchmark(fn)


def test_activation_backward(run_benchmark, workload, backend, layer):
    L = layer
    fn = lambda: fb.kernels.activation_backward(L["dA0"], L["Z0"], L["A0"], L["act"], backend=backend)  # noqa: E731
    want = fb.kernels.activation_backward(L["dA0"], L["Z0"], L["A0"], L["act"], backend="numpy")
    assert_close([fn()], [want], workload)
    run_benchmark(fn)


def test_delta_propagate(run_benchmark, workload, backend, layer):
    L = layer
    fn = lambda: fb.kernels.delta_propagate(L["delta1"], L["W1"], L["Z0"], L["A0"], L["act"], backend=backend)  # noqa: E731
    want = fb.kernels.delta_propagate(L["delta1"], L["W1"], L["Z0"], L["A0"], L["act"], backend="numpy")
    assert_close([fn()], [want], workload)
    run_benchmark(fn)


def test_weight_gradient(run_benchmark, workload, backend, layer):
    L = layer
    delta0 = L["dA0"]
    fn = lambda: fb.kernels.weight_gradient(L["X"], delta0, backend=backend)  # noqa: E731
    assert_close(fn(), fb.kernels.weight_gradient(L["X"], delta0, backend="numpy"), workload)
    run_benchmark(fn)
