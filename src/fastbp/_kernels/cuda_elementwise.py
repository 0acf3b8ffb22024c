"""CUDA kernels that touch each element once: the activation derivative, the three
losses (with their reductions on the device), the optimizer updates over the flat
buffers, the finiteness check, and small memory helpers (fill, strided copy, row gather).

Kernels are compiled lazily, once per dtype (`kernels(np.float32)`), on first use.
Launch helpers at the bottom pick the grid; they take and return device arrays only.
"""
import functools
import math

import numpy as np
from numba import cuda

from .. import losses
from .cuda_math import WARP, device_functions, numba_type

THREADS = 256          # threads per block of the 1-D kernels (a power of two: tree reductions)
MAX_BLOCKS = 1024      # grid-stride loops cover the rest; also the length of the partial-sum buffer


def launch_shape(n):
    """(blocks, threads) for n independent items: small blocks for small n (also keeps the
    simulator fast), at most MAX_BLOCKS blocks with grid-stride loops beyond that."""
    threads = WARP
    while threads < THREADS and threads < n:
        threads *= 2
    return min(MAX_BLOCKS, max(1, -(-n // threads))), threads


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    T = numba_type(dtype)
    activate, derivative, sigmoid = device_functions(np.dtype(dtype))
    RED = THREADS

    @cuda.jit(device=True, cache=True)
    def block_sum_to(partials, value):
        """Tree-reduce `value` over the block (blockDim.x a power of two) into partials[blockIdx.x]."""
        sh = cuda.shared.array(RED, T)
        tid = cuda.threadIdx.x
        sh[tid] = value
        cuda.syncthreads()
        s = cuda.blockDim.x // 2
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            partials[cuda.blockIdx.x] = sh[0]

    @cuda.jit(cache=True)
    def finish_sum(partials, n_partials, scale, result):
        """One block: result[0] = scale * sum(partials[:n_partials])."""
        tid = cuda.threadIdx.x
        acc = T(0)
        for i in range(tid, n_partials, cuda.blockDim.x):
            acc += partials[i]
        sh = cuda.shared.array(RED, T)
        sh[tid] = acc
        cuda.syncthreads()
        s = cuda.blockDim.x // 2
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        if tid == 0:
            result[0] = sh[0] * T(scale)

    @cuda.jit(cache=True)
    def activation_backward(dA, Z, A, code, out):
        n_cols = dA.shape[1]
        for i in range(cuda.grid(1), dA.size, cuda.gridsize(1)):
            r, c = i // n_cols, i % n_cols
            out[r, c] = dA[r, c] * derivative(Z[r, c], A[r, c], code)

    # ---- losses: dLoss/dout * f'(Z) into grad, the loss sum into partials (one per block) ----
    @cuda.jit(cache=True)
    def mse(out, y, Z, code, scale, grad, partials):
        n_cols = out.shape[1]
        acc = T(0)
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            r, c = i // n_cols, i % n_cols
            d = out[r, c] - y[r, c]
            acc += d * d
            grad[r, c] = T(scale) * (T(2) * d) * derivative(Z[r, c], out[r, c], code)
        block_sum_to(partials, acc)

    @cuda.jit(cache=True)
    def bce(out, y, Z, code, scale, grad, partials):
        n_cols = out.shape[1]
        acc = T(0)
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            r, c = i // n_cols, i % n_cols
            x, t = out[r, c], y[r, c]
            acc += max(x, T(0)) - x * t + math.log1p(math.exp(-abs(x)))
            grad[r, c] = T(scale) * (sigmoid(x) - t) * derivative(Z[r, c], x, code)
        block_sum_to(partials, acc)

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
                grad[r, c] = T(scale) * p * derivative(Z[r, c], out[r, c], code)
        block_sum_to(partials, acc)

    # ---- optimizer updates over the flat buffers (torch semantics, as reference.py) ----
    @cuda.jit(cache=True)
    def sgd(p, g, velocity, lr, momentum, weight_decay, nesterov):
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            d = g[i] + T(weight_decay) * p[i]
            if momentum != 0:
                v = T(momentum) * velocity[i] + d
                velocity[i] = v
                d = d + T(momentum) * v if nesterov else v
            p[i] -= T(lr) * d

    @cuda.jit(cache=True)
    def adam(p, g, m, v, step_size, sqrt_bias2, beta1, beta2, eps, weight_decay):
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            d = g[i] + T(weight_decay) * p[i]
            mi = T(beta1) * m[i] + T(1 - beta1) * d
            vi = T(beta2) * v[i] + T(1 - beta2) * d * d
            m[i] = mi
            v[i] = vi
            p[i] -= T(step_size) * mi / (math.sqrt(vi) / T(sqrt_bias2) + T(eps))

    # ---- checks and memory ----
    @cuda.jit(cache=True)
    def flag_nonfinite(a, flag, slot):
        """flag[slot] = 0 if any element of the flat array a is NaN or inf, else unchanged
        (the caller sets it to 1 first). Every writer writes the same value, so the
        concurrent stores are benign."""
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            if not math.isfinite(a[i]):
                flag[slot] = T(0)

    @cuda.jit(cache=True)
    def set_value(a, i, value):
        """a[i] = value (one thread)."""
        a[i] = T(value)

    @cuda.jit(cache=True)
    def fill(a, value):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            a[i] = T(value)

    @cuda.jit(cache=True)
    def copy_1d(src, dst):
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            dst[i] = src[i]

    @cuda.jit(cache=True)
    def copy_2d(src, dst):
        """dst = src for any strides of src (dst C-contiguous): reads follow dst's order."""
        n_cols = dst.shape[1]
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            r, c = i // n_cols, i % n_cols
            dst[r, c] = src[r, c]

    @cuda.jit(cache=True)
    def gather_rows(src, rows, dst):
        """dst[i, :] = src[rows[i], :] (coalesced along the row)."""
        n_cols = dst.shape[1]
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            r, c = i // n_cols, i % n_cols
            dst[r, c] = src[rows[r], c]

    return dict(finish_sum=finish_sum, activation_backward=activation_backward,
                losses={losses.MSE: mse, losses.BCE: bce, losses.CROSS_ENTROPY: cross_entropy},
                sgd=sgd, adam=adam, flag_nonfinite=flag_nonfinite, set_value=set_value, fill=fill, copy_1d=copy_1d, copy_2d=copy_2d,
                gather_rows=gather_rows)


@functools.lru_cache(maxsize=None)
def _index_kernels():
    """Kernels over integer arrays (labels): dtype-independent."""
    @cuda.jit(cache=True)
    def gather_1d(src, rows, dst):
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            dst[i] = src[rows[i]]

    return dict(gather_1d=gather_1d)


# ---- launches (device arrays in, device arrays out) ----

def activation_backward(dA, Z, A, code, out):
    blocks, threads = launch_shape(dA.size)
    kernels(dA.dtype)["activation_backward"][blocks, threads](dA, Z, A, code, out)
    return out


def loss_and_output_grad(out, y, Z, code, loss, reduction, grad, partials, result):
    """Writes dLoss/d(out) * f'(Z) into grad and the reduced loss into result[0] (device);
    partials: a device buffer of >= MAX_BLOCKS elements."""
    count = out.shape[0] if loss == losses.CROSS_ENTROPY else out.size
    scale = 1.0 / count if reduction == losses.MEAN else 1.0
    k = kernels(out.dtype)
    blocks, threads = launch_shape(out.shape[0] if loss == losses.CROSS_ENTROPY else out.size)
    k["losses"][loss][blocks, threads](out, y, Z, code, scale, grad, partials)
    _, finish_threads = launch_shape(blocks)
    k["finish_sum"][1, finish_threads](partials, blocks, scale, result)


def flag_nonfinite(flat, flag, slot):
    """flag[slot] = 1 if the 1-D device array `flat` is all finite, else 0 (on the device)."""
    k = kernels(flat.dtype)
    k["set_value"][1, 1](flag, slot, 1.0)
    blocks, threads = launch_shape(flat.size)
    k["flag_nonfinite"][blocks, threads](flat, flag, slot)


def sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov):
    blocks, threads = launch_shape(p.size)
    kernels(p.dtype)["sgd"][blocks, threads](p, g, velocity, lr, momentum, weight_decay, bool(nesterov))


def adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    blocks, threads = launch_shape(p.size)
    kernels(p.dtype)["adam"][blocks, threads](p, g, m, v, lr / bias1, math.sqrt(bias2), beta1, beta2,
                                              eps, weight_decay)


def fill(a, value):
    blocks, threads = launch_shape(a.size)
    kernels(a.dtype)["fill"][blocks, threads](a, value)
    return a


def contiguous_copy(src):
    """A C-contiguous device copy of a strided 1-D or 2-D float device array."""
    dst = cuda.device_array(src.shape, dtype=src.dtype)
    blocks, threads = launch_shape(dst.size)
    kernels(dst.dtype)["copy_1d" if src.ndim == 1 else "copy_2d"][blocks, threads](src, dst)
    return dst


def gather_rows(src, rows, dst):
    """dst[i] = src[rows[i]] for a 2-D float array or a 1-D label array; rows on the device."""
    blocks, threads = launch_shape(dst.size)
    if src.ndim == 1:
        _index_kernels()["gather_1d"][blocks, threads](src, rows, dst)
    else:
        kernels(src.dtype)["gather_rows"][blocks, threads](src, rows, dst)
    return dst
