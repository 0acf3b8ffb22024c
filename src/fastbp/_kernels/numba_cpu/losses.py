"""The losses (torch.nn.functional semantics) with dLoss/d out, for the Numba kernels."""
import math

import numpy as np
from numba import njit

from ... import losses
from .options import JIT
from .primitives import fast_sigmoid

MSE, CROSS_ENTROPY, BCE, POISSON, MEAN = losses.MSE, losses.CROSS_ENTROPY, losses.BCE, losses.POISSON, losses.MEAN


@njit(**JIT)
def loss_and_output_grad_into(out, y, labels, sw, loss, reduction, grad):
    """The loss (float64) and dLoss/d out written into grad; torch.nn.functional semantics.
    y: targets (batch, n_out) for mse/bce/poisson; labels: class indices (batch,) for
    cross_entropy; sw: per-row weights (batch,), or empty for none (fastbp.losses)."""
    B, N = out.shape
    weighted = sw.size > 0
    one = grad.dtype.type(1)
    total = 0.0
    if loss == MSE:
        for m in range(B):
            w = sw[m] if weighted else one
            for j in range(N):
                diff = out[m, j] - y[m, j]
                total += w * (diff * diff)
                grad[m, j] = 2 * diff * w
        per_row = N
    elif loss == CROSS_ENTROPY:
        for m in range(B):
            w = sw[m] if weighted else one
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
                    total -= w * log_p
                    g[j] -= 1
                g[j] *= w
        per_row = 1
    elif loss == BCE:   # on logits
        for m in range(B):
            w = sw[m] if weighted else one
            for j in range(N):
                o = out[m, j]
                t = y[m, j]
                total += w * (max(o, 0.0) - o * t + math.log1p(math.exp(-abs(o))))
                grad[m, j] = (fast_sigmoid(o) - t) * w
        per_row = N
    elif loss == POISSON:   # on log-rates: half the Poisson deviance
        for m in range(B):
            w = sw[m] if weighted else one
            for j in range(N):
                z = out[m, j]
                t = y[m, j]
                rate = math.exp(z)
                total += w * (rate - t * z + (t * math.log(t) if t > 0 else 0.0) - t)
                grad[m, j] = (rate - t) * w
        per_row = N
    else:
        raise ValueError("unknown loss code")
    if reduction == MEAN:
        count = float(B * per_row)
        if weighted:
            w_sum = 0.0
            for m in range(B):
                w_sum += sw[m]
            count = w_sum * per_row if w_sum > 0 else 1.0      # all-zero weights: loss and gradient 0
        total /= count
        scale = grad.dtype.type(count)
        flat = grad.ravel()
        for i in range(flat.size):
            flat[i] /= scale
    return total


@njit(**JIT)
def loss_and_output_grad(out, y, labels, sw, loss, reduction):
    grad = np.empty_like(out)
    total = loss_and_output_grad_into(out, y, labels, sw, loss, reduction, grad)
    return total, grad
