"""The worked examples of docs/design.md, number for number, on every backend."""
import numpy as np
import pytest

import fastbp as fb

X = np.array([[2.0, 3.0]])
W1 = np.array([[0.1, 0.2], [0.3, 0.4]])
b1 = np.array([0.5, 0.6])
W2 = np.array([[0.5, 0.6], [0.7, 0.8]])


def test_forward_gives_z1(backend, dtype):
    Z, A = fb.kernels.linear_forward(X.astype(dtype), W1.astype(dtype), b1.astype(dtype), "sigmoid",
                                     backend=backend)
    np.testing.assert_allclose(Z, [[1.6, 2.2]], rtol=1e-6)
    np.testing.assert_allclose(A, 1 / (1 + np.exp(-np.array([[1.6, 2.2]]))), rtol=1e-6)
    assert Z.dtype == dtype and A.dtype == dtype


def test_dw2_from_a1_and_delta2(backend, dtype):
    dW2, db2 = fb.kernels.weight_gradient(np.array([[0.9, 0.95]], dtype), np.array([[0.2, -0.3]], dtype),
                                          backend=backend)
    np.testing.assert_allclose(dW2, [[0.18, -0.27], [0.19, -0.285]], rtol=1e-6)
    np.testing.assert_allclose(db2, [0.2, -0.3], rtol=1e-6)


def test_dw1_from_x_and_delta1(backend, dtype):
    dW1, db1 = fb.kernels.weight_gradient(X.astype(dtype), np.array([[-0.01, -0.02]], dtype), backend=backend)
    np.testing.assert_allclose(dW1, [[-0.02, -0.04], [-0.03, -0.06]], rtol=1e-6)
    np.testing.assert_allclose(db1, [-0.01, -0.02], rtol=1e-6)


def test_delta1_by_delta_propagate(backend, dtype):
    Z1 = np.array([[1.6, 2.2]])
    A1 = 1 / (1 + np.exp(-Z1))
    d2 = np.array([[0.2, -0.3]])
    d1 = fb.kernels.delta_propagate(d2.astype(dtype), W2.astype(dtype), Z1.astype(dtype), A1.astype(dtype),
                                    "sigmoid", backend=backend)
    # by hand: delta2 @ W2.T = [0.2*.5 - .3*.6, 0.2*.7 - .3*.8] = [-0.08, -0.10], times sigmoid'(Z1)
    expected = np.array([[-0.08, -0.10]]) * A1 * (1 - A1)
    np.testing.assert_allclose(d1, expected, rtol=1e-6)


def test_scalar_chain_rule(backend):
    # x=1, y=2, w=1, squared error: loss (1*1 - 2)^2 = 1, dloss/dw = 2 (wx - y) x = -2
    net = fb.MLP([1, 1], activation="identity", output_activation="identity", loss="mse",
                 dtype=np.float64, backend=backend)
    net.set_params([np.array([[1.0]])], [np.array([0.0])])
    loss, dW, db = net.loss_and_grad(np.array([[1.0]]), np.array([[2.0]]))
    assert loss == pytest.approx(1.0, rel=1e-12)
    assert dW[0][0, 0] == pytest.approx(-2.0, rel=1e-12)
    assert db[0][0] == pytest.approx(-2.0, rel=1e-12)


def test_two_two_two_network_end_to_end(backend):
    """The 2-2-2 example as one network: its gradients are the kernels' numbers chained."""
    net = fb.MLP([2, 2, 2], activation="sigmoid", output_activation="identity", loss="mse",
                 reduction="sum", dtype=np.float64, backend=backend)
    net.set_params([W1, W2], [b1, np.zeros(2)])
    y = np.array([[1.0, 0.0]])
    Z1 = X @ W1 + b1
    A1 = 1 / (1 + np.exp(-Z1))
    out = A1 @ W2
    d2 = 2 * (out - y)
    d1 = (d2 @ W2.T) * A1 * (1 - A1)
    loss, dW, db = net.loss_and_grad(X, y)
    assert loss == pytest.approx(float(np.sum((out - y) ** 2)), rel=1e-12)
    np.testing.assert_allclose(dW[1], A1.T @ d2, rtol=1e-12)
    np.testing.assert_allclose(dW[0], X.T @ d1, rtol=1e-12)
    np.testing.assert_allclose(db[0], d1[0], rtol=1e-12)
