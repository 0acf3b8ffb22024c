"""The NumPy reference backend: the mathematics of docs/design.md, written to be read.

Every other backend is tested against this file, so it stays short and plain.
"""
import math

import numpy as np

from .. import activations as act
from .. import losses
from .base import Ops


def sigmoid(z):
    e = np.exp(-np.abs(z))          # never overflows
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def gelu(z):
    return 0.5 * z * (1 + np.tanh(act.GELU_C * (z + act.GELU_K * z**3)))


def gelu_derivative(z):
    t = np.tanh(act.GELU_C * (z + act.GELU_K * z**3))
    # Beyond |z| = 100, 1 - t*t is exactly 0; clipping there keeps z*z from overflowing
    # into 0 * inf = NaN for huge finite z (the derivative is 1 or 0 there).
    zc = np.clip(z, -100, 100)
    return 0.5 * (1 + t) + 0.5 * zc * (1 - t * t) * act.GELU_C * (1 + 3 * act.GELU_K * zc * zc)


# code -> f(Z)
FUNCTIONS = {
    act.IDENTITY: lambda z: z.copy(),
    act.SIGMOID: sigmoid,
    act.TANH: np.tanh,
    act.RELU: lambda z: np.maximum(z, 0),
    act.LEAKY_RELU: lambda z: np.where(z > 0, z, act.LEAKY_SLOPE * z),
    act.ELU: lambda z: np.where(z > 0, z, act.ELU_ALPHA * np.expm1(np.minimum(z, 0))),
    act.SOFTPLUS: lambda z: np.logaddexp(0, z),
    act.GELU: gelu,
    act.SILU: lambda z: z * sigmoid(z),
}

# code -> f'(Z), given Z and A = f(Z)
DERIVATIVES = {
    act.IDENTITY: lambda z, a: np.ones_like(z),
    act.SIGMOID: lambda z, a: a * (1 - a),
    act.TANH: lambda z, a: 1 - a * a,
    act.RELU: lambda z, a: (z > 0).astype(z.dtype),            # 0 at 0
    act.LEAKY_RELU: lambda z, a: np.where(z > 0, 1, act.LEAKY_SLOPE).astype(z.dtype),
    act.ELU: lambda z, a: np.where(z > 0, 1, act.ELU_ALPHA * np.exp(np.minimum(z, 0))).astype(z.dtype),
    act.SOFTPLUS: lambda z, a: sigmoid(z),
    act.GELU: lambda z, a: gelu_derivative(z),
    act.SILU: lambda z, a: sigmoid(z) * (1 + z * (1 - sigmoid(z))),
}


def mse(out, y):
    diff = out - y
    return np.sum(diff * diff), 2 * diff, out.size


def cross_entropy(logits, labels):
    rows = np.arange(len(labels))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    grad = np.exp(log_p)
    grad[rows, labels] -= 1
    return -np.sum(log_p[rows, labels]), grad, len(labels)


def bce(logits, y):
    total = np.sum(np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))))
    return total, sigmoid(logits) - y, logits.size


LOSSES = {losses.MSE: mse, losses.CROSS_ENTROPY: cross_entropy, losses.BCE: bce}


class NumpyOps(Ops):
    name = "numpy"

    def linear_forward(self, X, W, b, code):
        Z = X @ W + b
        return Z, FUNCTIONS[code](Z)

    def activation_backward(self, dA, Z, A, code):
        return dA * DERIVATIVES[code](Z, A)

    def delta_propagate(self, delta, W, Z, A, code):
        return (delta @ W.T) * DERIVATIVES[code](Z, A)

    def weight_gradient(self, A_prev, delta, dW=None, db=None):
        # db sums over the batch with a float64 accumulator: NumPy's axis-0 sum is a running
        # sum, which in float32 drifts by ~0.5% over 1e6 equal rows (tests/test_numerics.py).
        if dW is None:
            return A_prev.T @ delta, delta.sum(axis=0, dtype=np.float64).astype(delta.dtype)
        np.matmul(A_prev.T, delta, out=dW)
        np.sum(delta, axis=0, dtype=np.float64, out=db)
        return dW, db

    def loss_and_output_grad(self, out, y, loss, reduction):
        total, grad, count = LOSSES[loss](out, y)
        if reduction == losses.MEAN:
            total, grad = total / count, grad / count
        return float(total), grad.astype(out.dtype, copy=False)

    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov):
        d = g + weight_decay * p
        if momentum:
            velocity *= momentum
            velocity += d
            d = d + momentum * velocity if nesterov else velocity
        p -= lr * d

    def adam_update(self, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        d = g + weight_decay * p
        m *= beta1
        m += (1 - beta1) * d
        v *= beta2
        v += (1 - beta2) * d * d
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        p -= (lr / bias1) * m / (np.sqrt(v) / math.sqrt(bias2) + eps)


def available():
    return True, ""


ops = NumpyOps()
