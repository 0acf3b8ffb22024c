"""Tiled shared-memory matrix products with their epilogues fused, for the layers of any width.

    linear_forward    Z = X @ W + b, A = f(Z)                    (bias + activation epilogue)
    delta_propagate   out = (delta @ W.T) * f'(Z)                (derivative epilogue)
    weight_gradient   dW = A_prev.T @ delta, db = delta.sum(0)   (bias reduction in the same pass)

Each block computes a TILE x TILE tile of the output with TILE x TILE threads, one output
per thread; the inner dimension is walked TILE at a time through two shared-memory tiles.
Threads of a warp vary fastest along the row-major arrays' last axis (threadIdx.x is the
column), so every global load and store is coalesced. Tiles read along their first axis
are padded by one column (TILE + 1) against shared-memory bank conflicts. Edges are
zero-filled, so any size works (1, 3, 17, ...).

weight_gradient reduces over the batch, which is long while dW may be small (64 x 64 is
16 tiles): the batch is split into `splits` chunks (grid z) whose partial sums land in a
workspace and are added by a second, element-wise kernel, so a big batch still fills the
GPU, and the result does not depend on scheduling (no atomics: reproducible sums).
"""
import functools

import numpy as np
from numba import cuda

from .cuda_elementwise import launch_shape
from .cuda_math import device_functions, numba_type

TILE = 16
ROWS_PER_SPLIT = 1024       # batch rows per weight-gradient chunk (a multiple of TILE)
TARGET_BLOCKS = 512         # enough blocks to fill a large GPU (about 4 per SM on an H100)


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    T = numba_type(dtype)
    activate, derivative, _ = device_functions(np.dtype(dtype))

    @cuda.jit(cache=True)
    def linear_forward(X, W, b, code, Z, A):
        M, K = X.shape
        N = W.shape[1]
        sX = cuda.shared.array((TILE, TILE), T)
        sW = cuda.shared.array((TILE, TILE), T)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        acc = T(0)
        for k0 in range(0, K, TILE):
            sX[ty, tx] = X[row, k0 + tx] if row < M and k0 + tx < K else T(0)
            sW[ty, tx] = W[k0 + ty, col] if k0 + ty < K and col < N else T(0)
            cuda.syncthreads()
            for j in range(TILE):
                acc += sX[ty, j] * sW[j, tx]        # sX: broadcast; sW: consecutive banks
            cuda.syncthreads()
        if row < M and col < N:
            z = acc + b[col]
            Z[row, col] = z
            A[row, col] = activate(z, code)

    @cuda.jit(cache=True)
    def delta_propagate(D, W, Z, A, code, out):
        """out[m, k] = sum_n D[m, n] W[k, n] * f'(Z[m, k])."""
        M, N = D.shape
        K = W.shape[0]
        sD = cuda.shared.array((TILE, TILE), T)
        sW = cuda.shared.array((TILE, TILE + 1), T)     # read along its first axis: padded
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        w_row = cuda.blockIdx.x * TILE + ty             # the W row this thread loads
        acc = T(0)
        for n0 in range(0, N, TILE):
            sD[ty, tx] = D[row, n0 + tx] if row < M and n0 + tx < N else T(0)
            sW[ty, tx] = W[w_row, n0 + tx] if w_row < K and n0 + tx < N else T(0)
            cuda.syncthreads()
            for j in range(TILE):
                acc += sD[ty, j] * sW[tx, j]
            cuda.syncthreads()
        if row < M and col < K:
            out[row, col] = acc * derivative(Z[row, col], A[row, col], code)

    @cuda.jit(cache=True)
    def weight_gradient(Ap, D, rows_per_split, dW, db):
        """dW[s, k, n] = sum over this split's rows m of Ap[m, k] D[m, n]; db[s, n] likewise
        of D[m, n] (computed by the blocks of the first k-tile row)."""
        M, K = Ap.shape
        N = D.shape[1]
        sA = cuda.shared.array((TILE, TILE), T)         # sA[j, ty]: one address per half-warp (broadcast)
        sD = cuda.shared.array((TILE, TILE), T)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        k_tile, s = cuda.blockIdx.y * TILE, cuda.blockIdx.z
        n = cuda.blockIdx.x * TILE + tx
        k = k_tile + ty
        m_begin = s * rows_per_split
        m_end = min(M, m_begin + rows_per_split)
        bias_thread = cuda.blockIdx.y == 0 and ty == 0
        acc = T(0)
        acc_b = T(0)
        for m0 in range(m_begin, m_end, TILE):
            m = m0 + ty
            sA[ty, tx] = Ap[m, k_tile + tx] if m < m_end and k_tile + tx < K else T(0)
            sD[ty, tx] = D[m, n] if m < m_end and n < N else T(0)
            cuda.syncthreads()
            for j in range(TILE):
                acc += sA[j, ty] * sD[j, tx]
            if bias_thread:
                for j in range(TILE):
                    acc_b += sD[j, tx]
            cuda.syncthreads()
        if k < K and n < N:
            dW[s, k, n] = acc
        if bias_thread and n < N:
            db[s, n] = acc_b

    @cuda.jit(cache=True)
    def sum_splits(parts, out):
        """out[i] = sum_s parts[s, i] (a fixed order: reproducible)."""
        S, n = parts.shape
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            acc = T(0)
            for s in range(S):
                acc += parts[s, i]
            out[i] = acc

    return dict(linear_forward=linear_forward, delta_propagate=delta_propagate,
                weight_gradient=weight_gradient, sum_splits=sum_splits)


def _grid(n_cols, n_rows, depth=1):
    return (-(-n_cols // TILE), -(-n_rows // TILE), depth)


def linear_forward(X, W, b, code, Z, A):
    kernels(X.dtype)["linear_forward"][_grid(W.shape[1], X.shape[0]), (TILE, TILE)](X, W, b, code, Z, A)


def delta_propagate(delta, W, Z, A, code, out):
    kernels(delta.dtype)["delta_propagate"][_grid(W.shape[0], delta.shape[0]), (TILE, TILE)](
        delta, W, Z, A, code, out)


def weight_gradient_splits(M, K, N):
    """How many batch chunks the weight gradient of an (M, K) x (M, N) product uses:
    enough blocks to fill the GPU, never chunks shorter than ROWS_PER_SPLIT."""
    tiles = -(-K // TILE) * -(-N // TILE)
    wanted = max(1, TARGET_BLOCKS // tiles)
    return max(1, min(wanted, -(-M // ROWS_PER_SPLIT)))


def weight_gradient(A_prev, delta, dW, db, workspace):
    """dW = A_prev.T @ delta, db = delta.sum(0), into the device arrays dW, db.
    workspace(name, shape) -> a device scratch array (used when the batch is split)."""
    M, K = A_prev.shape
    N = delta.shape[1]
    splits = weight_gradient_splits(M, K, N)
    rows = -(-M // splits)
    rows = -(-rows // TILE) * TILE
    splits = -(-M // rows)
    k = kernels(A_prev.dtype)
    grid = _grid(N, K, splits)
    if splits == 1:
        k["weight_gradient"][grid, (TILE, TILE)](A_prev, delta, rows, dW.reshape(1, K, N), db.reshape(1, N))
        return
    parts_w = workspace("wgrad_w", (splits, K * N))
    parts_b = workspace("wgrad_b", (splits, N))
    k["weight_gradient"][grid, (TILE, TILE)](A_prev, delta, rows, parts_w.reshape(splits, K, N), parts_b)
    blocks, threads = launch_shape(K * N)
    k["sum_splits"][blocks, threads](parts_w, dW.reshape(K * N))
    blocks, threads = launch_shape(N)
    k["sum_splits"][blocks, threads](parts_b, db)
