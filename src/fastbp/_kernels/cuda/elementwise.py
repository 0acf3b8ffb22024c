"""CUDA kernels that touch each element once and are not mathematics of their own: the
block reduction the losses use, the finiteness check, fill, strided copy, row gather.

Kernels are compiled lazily, once per dtype (`kernels(np.float32)`), on first use. The
launch helpers below pick the grid; they take and return device arrays only.
"""
import functools
import math

from numba import cuda

from .device import WARP, numba_type

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
def block_sum(dtype):
    """A device function block_sum(value) -> the sum of `value` over the block's threads
    (blockDim.x a power of two <= THREADS), for every thread of the block."""
    T = numba_type(dtype)

    @cuda.jit(device=True)
    def block_sum(value):
        sh = cuda.shared.array(THREADS, T)
        tid = cuda.threadIdx.x
        sh[tid] = value
        cuda.syncthreads()
        s = cuda.blockDim.x // 2
        while s > 0:
            if tid < s:
                sh[tid] += sh[tid + s]
            cuda.syncthreads()
            s //= 2
        return sh[0]

    return block_sum


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    T = numba_type(dtype)
    total_of_block = block_sum(dtype)

    @cuda.jit(cache=True)
    def finish_sum(partials, n_partials, scale, norm, result):
        """One block: result[0] = scale * sum(partials[:n_partials]), times norm[0] unless
        norm is empty."""
        acc = T(0)
        for i in range(cuda.threadIdx.x, n_partials, cuda.blockDim.x):
            acc += partials[i]
        total = total_of_block(acc)
        if cuda.threadIdx.x == 0:
            result[0] = total * (T(scale) if norm.size == 0 else T(scale) * norm[0])

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

    return dict(finish_sum=finish_sum, flag_nonfinite=flag_nonfinite, set_value=set_value, fill=fill,
                copy_1d=copy_1d, copy_2d=copy_2d, gather_rows=gather_rows)


@functools.lru_cache(maxsize=None)
def index_kernels():
    """Kernels over integer arrays (labels): dtype-independent."""
    @cuda.jit(cache=True)
    def gather_1d(src, rows, dst):
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            dst[i] = src[rows[i]]

    return dict(gather_1d=gather_1d)


# ---- launches (device arrays in, device arrays out) ----

def finish_sum(partials, n_partials, scale, norm, result):
    """result[0] = scale * sum(partials[:n_partials]) (* norm[0], a device factor, unless norm
    is empty), on the device."""
    _, threads = launch_shape(n_partials)
    kernels(partials.dtype)["finish_sum"][1, threads](partials, n_partials, scale, norm, result)


def flag_nonfinite(flat, flag, slot):
    """flag[slot] = 1 if the 1-D device array `flat` is all finite, else 0 (on the device)."""
    k = kernels(flat.dtype)
    k["set_value"][1, 1](flag, slot, 1.0)
    blocks, threads = launch_shape(flat.size)
    k["flag_nonfinite"][blocks, threads](flat, flag, slot)


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
        index_kernels()["gather_1d"][blocks, threads](src, rows, dst)
    else:
        kernels(src.dtype)["gather_rows"][blocks, threads](src, rows, dst)
    return dst
