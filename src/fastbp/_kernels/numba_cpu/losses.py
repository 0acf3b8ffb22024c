"""The losses (torch.nn.functional semantics) with dLoss/d out, for the Numba kernels."""
import math

import numpy as np
from numba import njit

from ... import losses
from .options import JIT
from .primitives import fast_sigmoid

MSE, CROSS_ENTROPY, BCE, MEAN = losses.MSE, losses.CROSS_ENTROPY, losses.BCE, losses.MEAN


@njit(**JIT)
def loss_and_output_grad_into(out, y, labels, loss, reduction, grad):
    """The loss (float64) and dLoss/d out written into grad; torch.nn.functional semantics.
    y: targets (batch, n_out) for mse/bce; labels: class indices (batch,) for cross_entropy."""
    B, N = out.shape
    total = 0.0
    if loss == MSE:
        for m in range(B):
            for j in range(N):
                diff = out[m, j] - y[m, j]
                total += diff * diff
                grad[m, j] = 2 * diff
        count = B * N
    elif loss == CROSS_ENTROPY:
        for m in range(B):
            row = out[m]
            mx = row[0]
            for j in range(1, N):
                mx = max(mx, row[j])
            s = 0.0
            for j in range(N):
                s += math.exp(row[j] - mx)
            lse = math.log(s)
            g = grad[m]
            for j in range(N):
                log_p = (row[j] - mx) - lse
                g[j] = math.exp(log_p)
                if j == labels[m]:
                    total -= log_p
                    g[j] -= 1
        count = B
    elif loss == BCE:   # on logits
        for m in range(B):
            for j in range(N):
                o = out[m, j]
                t = y[m, j]
                total += max(o, 0.0) - o * t + math.log1p(math.exp(-abs(o)))
                grad[m, j] = fast_sigmoid(o) - t
        count = B * N
    else:
        raise ValueError("unknown loss code")
    if reduction == MEAN:
        total /= count
        scale = grad.dtype.type(count)
        flat = grad.ravel()
        for i in range(flat.size):
            flat[i] /= scale
    return total


@njit(**JIT)
def loss_and_output_grad(out, y, labels, loss, reduction):
    grad = np.empty_like(out)
    total = loss_and_output_grad_into(out, y, labels, loss, reduction, grad)
    return total, grad


