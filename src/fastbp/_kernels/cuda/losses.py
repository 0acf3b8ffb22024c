"""The losses on the device (torch.nn.functional semantics): dLoss/d out times the output
layer's f'(Z) into grad, and the reduced loss into a one-element device array; rows weighted
by per-row sample weights when given (fastbp.losses). And the network's L2 term on the
weights (MLP.l2; fastbp.layout.penalty_scale): 0.5 * c * sum(W**2) added to that loss, c * W
to the weight gradients."""
import functools
import math

import numpy as np
from numba import cuda

from ... import losses
from ..plan import B_AT, FIELDS, HEADER, W_AT
from .activations import device_functions
from .device import numba_type
from .elementwise import THREADS, block_sum, finish_sum, launch_shape

MSE, BCE = losses.MSE, losses.BCE


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    """elementwise(loss, out, y, sw, Z, code, scale, norm, grad, partials) for mse, bce and
    poisson, cross_entropy(out, labels, sw, Z, code, scale, norm, grad, partials): the loss
    sum of each block into partials[block]. sw: per-row weights, or empty for none; then the
    gradient's scale is norm[0] (weight_norm's), not `scale`."""
    T = numba_type(dtype)
    _, derivative, sigmoid = device_functions(np.dtype(dtype))
    total_of_block = block_sum(dtype)

    @cuda.jit(cache=True)
    def weight_norm(sw, per_row, mean, norm):
        """One block: norm[0] = 1 / (sum(sw) * per_row) for the mean (1 when the weights are
        all zero: loss and gradient 0), 1 for the sum."""
        acc = T(0)
        for i in range(cuda.threadIdx.x, sw.size, cuda.blockDim.x):
            acc += sw[i]
        total = total_of_block(acc)
        if cuda.threadIdx.x == 0:
            norm[0] = T(1) / (total * T(per_row)) if mean and total > T(0) else T(1)

    @cuda.jit(cache=True)
    def elementwise(loss, out, y, sw, Z, code, scale, norm, grad, partials):
        """mse, bce (on logits) or poisson (on log-rates), one thread per element."""
        n_cols = out.shape[1]
        weighted = sw.size > 0
        s = norm[0] if weighted else T(scale)
        acc = T(0)
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            r, c = i // n_cols, i % n_cols
            x, t = out[r, c], y[r, c]
            w = sw[r] if weighted else T(1)
            if loss == MSE:
                d = x - t
                acc += w * (d * d)
                g = T(2) * d
            elif loss == BCE:
                acc += w * (max(x, T(0)) - x * t + math.log1p(math.exp(-abs(x))))
                g = sigmoid(x) - t
            else:
                rate = math.exp(x)
                acc += w * (rate - t * x + (t * math.log(t) if t > T(0) else T(0)) - t)
                g = rate - t
            grad[r, c] = s * (g * w) * derivative(code, Z[r, c], x)
        total = total_of_block(acc)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x] = total

    @cuda.jit(cache=True)
    def cross_entropy(out, labels, sw, Z, code, scale, norm, grad, partials):
        """One thread per row (softmax over the row's classes)."""
        n_cols = out.shape[1]
        weighted = sw.size > 0
        s = norm[0] if weighted else T(scale)
        acc = T(0)
        for r in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            w = sw[r] if weighted else T(1)
            top = out[r, 0]
            for c in range(1, n_cols):
                top = max(top, out[r, c])
            total = T(0)
            for c in range(n_cols):
                total += math.exp(out[r, c] - top)
            log_total = math.log(total)
            label = labels[r]
            acc -= w * (out[r, label] - top - log_total)
            for c in range(n_cols):
                p = math.exp(out[r, c] - top - log_total)
                if c == label:
                    p -= T(1)
                grad[r, c] = s * (p * w) * derivative(code, Z[r, c], out[r, c])
        block_total = total_of_block(acc)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x] = block_total

    @cuda.jit(cache=True)
    def penalty_scale(sw, l2, c):
        """One block: c[0] = l2 / sum(sw), the weighted mean's L2 scale (l2 when the weights
        are all zero, as the data term counts them)."""
        acc = T(0)
        for i in range(cuda.threadIdx.x, sw.size, cuda.blockDim.x):
            acc += sw[i]
        total = total_of_block(acc)
        if cuda.threadIdx.x == 0:
            c[0] = T(l2) / total if total > T(0) else T(l2)

    @cuda.jit(cache=True)
    def weight_penalty(params, grads, plan, n_layers, scale, c, gradient, partials):
        """sum(W**2) over every layer's weights (the plan's W_AT..B_AT ranges, not the
        biases) per block into partials[block]; with `gradient`, grads[W] += c * W. The scale
        is c[0] when c is not empty, else `scale`."""
        s = c[0] if c.size > 0 else T(scale)
        acc = T(0)
        for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
            for l in range(n_layers):
                r = HEADER + l * FIELDS
                if plan[r + W_AT] <= i and i < plan[r + B_AT]:
                    p = params[i]
                    acc += p * p
                    if gradient:
                        grads[i] += s * p
        total = total_of_block(acc)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x] = total

    @cuda.jit(cache=True)
    def add_penalty(partials, n_partials, scale, c, result):
        """One block: result[0] += 0.5 * c * sum(partials[:n_partials]) (c: c[0], or `scale`
        when c is empty)."""
        acc = T(0)
        for i in range(cuda.threadIdx.x, n_partials, cuda.blockDim.x):
            acc += partials[i]
        total = total_of_block(acc)
        if cuda.threadIdx.x == 0:
            s = c[0] if c.size > 0 else T(scale)
            result[0] += T(0.5) * s * total

    return dict(weight_norm=weight_norm, elementwise=elementwise, cross_entropy=cross_entropy,
                penalty_scale=penalty_scale, weight_penalty=weight_penalty, add_penalty=add_penalty)


@functools.lru_cache(maxsize=None)
def no_weights(dtype):
    """The empty device array that stands for "no sample weights"."""
    return cuda.device_array(0, dtype=dtype)


def loss_and_output_grad(out, y, sw, Z, code, loss, reduction, grad, partials, norm, result):
    """Writes dLoss/d(out) * f'(Z) into grad and the reduced loss into result[0] (device);
    sw: per-row weights (device, (batch,)) or None; partials: a device buffer of >= MAX_BLOCKS
    elements; norm: a one-element device buffer (the weighted mean's 1 / sum)."""
    per_row = 1 if loss == losses.CROSS_ENTROPY else out.shape[1]
    count = out.shape[0] * per_row
    mean = reduction == losses.MEAN
    k = kernels(out.dtype)
    if sw is None:
        sw, scale, factor = no_weights(out.dtype), (1.0 / count if mean else 1.0), no_weights(out.dtype)
    else:
        k["weight_norm"][1, THREADS](sw, per_row, mean, norm)
        scale, factor = 1.0, norm
    blocks, threads = launch_shape(out.shape[0] if loss == losses.CROSS_ENTROPY else out.size)
    if loss == losses.CROSS_ENTROPY:
        k["cross_entropy"][blocks, threads](out, y, sw, Z, code, scale, norm, grad, partials)
    else:
        k["elementwise"][blocks, threads](loss, out, y, sw, Z, code, scale, norm, grad, partials)
    finish_sum(partials, blocks, scale, factor, result)


def weight_penalty(params, grads, plan_d, n_layers, l2, reduction, rows, sw, c, partials, result, gradient):
    """result[0] += the L2 term 0.5 * c * sum(W**2) (fastbp.layout.penalty_scale: c = l2 / n
    for the mean, n the rows or sum(sw); l2 for the sum); grads[W] += c * W when `gradient`.
    c: a one-element device buffer (the weighted mean's scale, computed on the device);
    partials: >= MAX_BLOCKS elements."""
    k = kernels(params.dtype)
    none = no_weights(params.dtype)
    if reduction == losses.SUM:
        scale, c = l2, none
    elif sw is None:
        scale, c = l2 / rows, none
    else:
        k["penalty_scale"][1, THREADS](sw, l2, c)
        scale = 0.0
    blocks, threads = launch_shape(params.size)
    k["weight_penalty"][blocks, threads](params, grads, plan_d, n_layers, scale, c, gradient, partials)
    _, finish_threads = launch_shape(blocks)
    k["add_penalty"][1, finish_threads](partials, blocks, scale, c, result)
