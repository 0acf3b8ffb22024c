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


def softplus(z):
    return np.logaddexp(0, z)


# f(Z) and f'(Z) given Z and A = f(Z), by activation name; the where()s clip the branch they
# do not take, so that it cannot overflow into a warning
_FUNCTIONS = {
    "identity": (lambda z: z.copy(), lambda z, a: np.ones_like(z)),
    "sigmoid": (sigmoid, lambda z, a: a * (1 - a)),
    "tanh": (np.tanh, lambda z, a: 1 - a * a),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),            # 0 at 0
    "leaky_relu": (lambda z: np.where(z > 0, z, act.LEAKY_SLOPE * z),
                   lambda z, a: np.where(z > 0, 1, act.LEAKY_SLOPE).astype(z.dtype)),
    "elu": (lambda z: np.where(z > 0, z, act.ELU_ALPHA * np.expm1(np.minimum(z, 0))),
            lambda z, a: np.where(z > 0, 1, act.ELU_ALPHA * np.exp(np.minimum(z, 0))).astype(z.dtype)),
    "softplus": (softplus, lambda z, a: sigmoid(z)),
    "gelu": (gelu, lambda z, a: gelu_derivative(z)),
    "silu": (lambda z: z * sigmoid(z), lambda z, a: sigmoid(z) * (1 + z * (1 - sigmoid(z)))),
    "selu": (lambda z: act.SELU_SCALE * np.where(z > 0, z, act.SELU_ALPHA * np.expm1(np.minimum(z, 0))),
             lambda z, a: (act.SELU_SCALE * np.where(z > 0, 1, act.SELU_ALPHA * np.exp(np.minimum(z, 0))))
             .astype(z.dtype)),
    "mish": (lambda z: z * np.tanh(softplus(z)),
             lambda z, a: np.tanh(softplus(z)) + z * sigmoid(z) * (1 - np.tanh(softplus(z)) ** 2)),
}
FUNCTIONS = {act.CODES[name]: f for name, (f, _) in _FUNCTIONS.items()}           # code -> f(Z)
DERIVATIVES = {act.CODES[name]: df for name, (_, df) in _FUNCTIONS.items()}       # code -> f'(Z), given Z, A


# Each loss -> (the loss of every element, as (batch, n) or (batch,) for cross_entropy;
# dLoss/d out of the summed loss)
def mse(out, y):
    diff = out - y
    return diff * diff, 2 * diff


def cross_entropy(logits, labels):
    rows = np.arange(len(labels))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    grad = np.exp(log_p)
    grad[rows, labels] -= 1
    return -log_p[rows, labels], grad


def bce(logits, y):
    return np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits))), sigmoid(logits) - y


@np.errstate(over="ignore")         # exp(z) beyond the dtype is an inf loss: the caller's FloatingPointError
def poisson(z, y):
    rate = np.exp(z)
    y_log_y = np.where(y > 0, y * np.log(np.where(y > 0, y, 1)), 0)
    return rate - y * z + y_log_y - y, rate - y


LOSSES = {losses.MSE: mse, losses.CROSS_ENTROPY: cross_entropy, losses.BCE: bce, losses.POISSON: poisson}


def weighted_loss(out, y, loss, reduction, sw=None):
    """-> (the reduced loss, dLoss/d out) with optional per-row weights sw (fastbp.losses)."""
    elements, grad = LOSSES[loss](out, y)
    per_row = 1 if elements.ndim == 1 else elements.shape[1]
    if sw is None:
        total, count = np.sum(elements), elements.size
    else:
        w = sw if elements.ndim == 1 else sw[:, None]
        total, grad = np.sum(elements * w), grad * sw[:, None]
        count = np.sum(sw, dtype=np.float64) * per_row or 1.0      # all-zero weights: loss and gradient 0
    if reduction == losses.MEAN:
        count = grad.dtype.type(count)
        total, grad = total / count, grad / count
    return float(total), grad.astype(out.dtype, copy=False)


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
        # sum, which in float32 drifts over a long batch of equal rows (tests/test_numerics.py).
        if dW is None:
            return A_prev.T @ delta, delta.sum(axis=0, dtype=np.float64).astype(delta.dtype)
        np.matmul(A_prev.T, delta, out=dW)
        np.sum(delta, axis=0, dtype=np.float64, out=db)
        return dW, db

    def loss_and_output_grad(self, out, y, loss, reduction, sw=None):
        return weighted_loss(out, y, loss, reduction, sw)

    def weight_penalty(self, weights, weight_grads, c):
        # the L2 term 0.5 * c * sum(W**2) and its gradient c * W, weights only
        if weight_grads is not None:
            for W, dW in zip(weights, weight_grads):
                dW += c * W
        return 0.5 * c * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in weights)

    # the updates compute every new value first and write them only if all are finite
    # (nothing changes otherwise: -> False); the overflow that may come is the point
    @np.errstate(over="ignore", invalid="ignore")
    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov):
        d = g + weight_decay * p
        v = momentum * velocity + d if momentum else velocity
        new = p - lr * ((d + momentum * v if nesterov else v) if momentum else d)
        if not (np.isfinite(new).all() and np.isfinite(v).all()):
            return False
        p[...], velocity[...] = new, v
        return True

    @np.errstate(over="ignore", invalid="ignore")
    def adam_update(self, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        d = g + weight_decay * p
        m_new = beta1 * m + (1 - beta1) * d
        v_new = beta2 * v + (1 - beta2) * d * d
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        new = p - (lr / bias1) * m_new / (np.sqrt(v_new) / math.sqrt(bias2) + eps)
        if not (np.isfinite(new).all() and np.isfinite(m_new).all() and np.isfinite(v_new).all()):
            return False
        p[...], m[...], v[...] = new, m_new, v_new
        return True


def available():
    return True, ""


ops = NumpyOps()
