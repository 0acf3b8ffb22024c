"""The losses on the device (torch.nn.functional semantics): dLoss/d out times the output
layer's f'(Z) into grad, and the reduced loss into a one-element device array."""
import functools
import math

import numpy as np
from numba import cuda

from ... import losses
from .activations import device_functions
from .device import numba_type
from .elementwise import block_sum, finish_sum, launch_shape

MSE = losses.MSE


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    """elementwise(loss, out, y, Z, code, scale, grad, partials) for mse and bce,
    cross_entropy(out, labels, Z, code, scale, grad, partials): the loss sum of each block into
    partials[block]."""
    T = numba_type(dtype)
    _, derivative, sigmoid = device_functions(np.dtype(dtype))
    total_of_block = block_sum(dtype)

    @cuda.jit(cache=True)
    def elementwise(loss, out, y, Z, code, scale, grad, partials):
        """mse or bce (on logits), one thread per element."""
        n_cols = out.shape[1]
        acc = T(0)
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            r, c = i // n_cols, i % n_cols
            x, t = out[r, c], y[r, c]
            if loss == MSE:
                d = x - t
                acc += d * d
                g = T(2) * d
            else:
                acc += max(x, T(0)) - x * t + math.log1p(math.exp(-abs(x)))
                g = sigmoid(x) - t
            grad[r, c] = T(scale) * g * derivative(code, Z[r, c], x)
        total = total_of_block(acc)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x] = total

    @cuda.jit(cache=True)
    def cross_entropy(out, labels, Z, code, scale, grad, partials):
        """One thread per row (softmax over the row's classes)."""
        n_cols = out.shape[1]
        acc = T(0)
        for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            top = out[r, 0]
            for c in range(1, n_cols):
                top = max(top, out[r, c])
            total = T(0)
            for c in range(n_cols):
                total += math.exp(out[r, c] - top)
            log_total = math.log(total)
            label = labels[r]
            acc -= out[r, label] - top - log_total
            for c in range(n_cols):
                p = math.exp(out[r, c] - top - log_total)
                if c == label:
                    p -= T(1)
                grad[r, c] = T(scale) * p * derivative(code, Z[r, c], out[r, c])
        block_total = total_of_block(acc)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x] = block_total

    return dict(elementwise=elementwise, cross_entropy=cross_entropy)


def loss_and_output_grad(out, y, Z, code, loss, reduction, grad, partials, result):
    """Writes dLoss/d(out) * f'(Z) into grad and the reduced loss into result[0] (device);
    partials: a device buffer of >= MAX_BLOCKS elements."""
    count = out.shape[0] if loss == losses.CROSS_ENTROPY else out.size
    scale = 1.0 / count if reduction == losses.MEAN else 1.0
    blocks, threads = launch_shape(count)
    k = kernels(out.dtype)
    if loss == losses.CROSS_ENTROPY:
        k["cross_entropy"][blocks, threads](out, y, Z, code, scale, grad, partials)
    else:
        k["elementwise"][blocks, threads](loss, out, y, Z, code, scale, grad, partials)
    finish_sum(partials, blocks, scale, result)
