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

The weight gradients reduce over the batch, which is long while dW may be small (64 x 64 is
16 tiles): the batch is split into `splits` chunks whose partial sums land in a workspace
and are added by a second, element-wise kernel, so a big batch still fills the GPU, and
the result does not depend on scheduling (no atomics: reproducible sums). One launch does
every layer of a network (a table of (layer, k-tile, n-tile) blocks over the workspace laid
out by the network's plan, fastbp/_kernels/plan.py), writing the flat gradient buffer
directly: two launches per step for all the weight gradients. A single layer's
weight_gradient is the same launch over a one-layer plan.

TILE is 16 on a GPU (256 threads per block). Under numba's simulator, where each thread
is a Python thread, the default is 4: the kernels are the same code with a different
compile-time constant (`kernels(dtype, tile)`), and the tests also run them at 16.
"""
import functools

import numpy as np
from numba import cuda

from ..plan import A_AT, B_AT, D_AT, FIELDS, HEADER, N_IN, N_OUT, W_AT
from .activations import device_functions
from .device import SIMULATED, numba_type
from .elementwise import launch_shape

TILE = 4 if SIMULATED else 16
ROWS_PER_SPLIT = 1024       # batch rows per weight-gradient chunk (a multiple of TILE)
TARGET_BLOCKS = 512         # enough blocks to fill a large GPU (about 4 per SM on an H100)


@functools.lru_cache(maxsize=None)
def kernels(dtype, tile=None):
    TILE = tile or globals()["TILE"]
    PADDED = TILE + 1            # shared-array shapes must be plain constants
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
            A[row, col] = activate(code, z)

    @cuda.jit(cache=True)
    def delta_propagate(D, W, Z, A, code, out):
        """out[m, k] = sum_n D[m, n] W[k, n] * f'(Z[m, k])."""
        M, N = D.shape
        K = W.shape[0]
        sD = cuda.shared.array((TILE, TILE), T)
        sW = cuda.shared.array((TILE, PADDED), T)       # read along its first axis: padded
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
            out[row, col] = acc * derivative(code, Z[row, col], A[row, col])

    @cuda.jit(cache=True)
    def weight_gradients(X, WS, plan, tiles, rows_per_split, G):
        """Every layer's dW and db in one launch. Block (t, s) computes tile t = tiles[t] =
        (layer l, first k, first n) of dW[l] over batch chunk s, into G[s] laid out as the
        flat gradient buffer (plan's W_AT, B_AT). A[l-1] is X for l = 0, else WS at the plan's
        A_AT of layer l-1; delta[l] is WS at D_AT of layer l (rows of the layer's width)."""
        M = X.shape[0]
        sA = cuda.shared.array((TILE, TILE), T)
        sD = cuda.shared.array((TILE, TILE), T)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        t, s = cuda.blockIdx.x, cuda.blockIdx.y
        l, k_tile, n_tile = tiles[t, 0], tiles[t, 1], tiles[t, 2]
        r = HEADER + l * FIELDS
        K, N = plan[r + N_IN], plan[r + N_OUT]
        a_at = plan[r - FIELDS + A_AT] if l > 0 else 0
        d_at = plan[r + D_AT]
        n = n_tile + tx
        k = k_tile + ty
        m_begin = s * rows_per_split
        m_end = min(M, m_begin + rows_per_split)
        bias_thread = k_tile == 0 and ty == 0
        acc = T(0)
        acc_b = T(0)
        for m0 in range(m_begin, m_end, TILE):
            m = m0 + ty
            kk = k_tile + tx
            a = T(0)
            if m < m_end and kk < K:
                a = X[m, kk] if l == 0 else WS[a_at + m * K + kk]
            sA[ty, tx] = a
            sD[ty, tx] = WS[d_at + m * N + n] if m < m_end and n < N else T(0)
            cuda.syncthreads()
            for j in range(TILE):
                acc += sA[j, ty] * sD[j, tx]
            if bias_thread:
                for j in range(TILE):
                    acc_b += sD[j, tx]
            cuda.syncthreads()
        if k < K and n < N:
            G[s, plan[r + W_AT] + k * N + n] = acc
        if bias_thread and n < N:
            G[s, plan[r + B_AT] + n] = acc_b

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
                weight_gradients=weight_gradients, sum_splits=sum_splits)


def _grid(n_cols, n_rows, depth=1, tile=None):
    tile = tile or TILE
    return (-(-n_cols // tile), -(-n_rows // tile), depth)


def linear_forward(X, W, b, code, Z, A, tile=None):
    tile = tile or TILE
    kernels(X.dtype, tile)["linear_forward"][_grid(W.shape[1], X.shape[0], 1, tile), (tile, tile)](
        X, W, b, code, Z, A)


def delta_propagate(delta, W, Z, A, code, out, tile=None):
    tile = tile or TILE
    kernels(delta.dtype, tile)["delta_propagate"][_grid(W.shape[0], delta.shape[0], 1, tile), (tile, tile)](
        delta, W, Z, A, code, out)


def batch_splits(M, n_tiles, tile=None):
    """(splits, rows per split) for a reduction over M batch rows by n_tiles output tiles:
    enough blocks to fill the GPU, chunks of at least ROWS_PER_SPLIT rows (a multiple of the tile)."""
    tile = tile or TILE
    splits = max(1, min(max(1, TARGET_BLOCKS // n_tiles), -(-M // ROWS_PER_SPLIT)))
    rows = -(-M // splits)
    rows = -(-rows // tile) * tile
    return -(-M // rows), rows


def tile_table(sizes, tile=None):
    """The (layer, first k, first n) of every output tile of every layer's dW: an (n_tiles, 3) int64 array."""
    tile = tile or TILE
    return np.array([(l, k0, n0) for l in range(len(sizes) - 1)
                     for k0 in range(0, sizes[l], tile) for n0 in range(0, sizes[l + 1], tile)], dtype=np.int64)


def weight_gradients(X, WS, plan, tiles, n_tiles, G, workspace, tile=None):
    """All layers' dW, db into the flat gradient buffer G (device) in one launch (+ one to add
    the batch chunks when the batch is split). plan: the network's plan on the device;
    tiles: tile_table(...) on the device; workspace(name, shape) -> a device scratch array."""
    tile = tile or TILE
    M = X.shape[0]
    splits, rows = batch_splits(M, n_tiles, tile)
    k = kernels(X.dtype, tile)
    target = G.reshape(1, G.size) if splits == 1 else workspace("wgrads", (splits, G.size))
    k["weight_gradients"][(n_tiles, splits), (tile, tile)](X, WS, plan, tiles, rows, target)
    if splits > 1:
        blocks, threads = launch_shape(G.size)
        k["sum_splits"][blocks, threads](target, G)


def weight_gradient(A_prev, delta, G, workspace, tile=None):
    """dW = A_prev.T @ delta and db = delta.sum(0) into the flat device array G (K*N + N:
    dW row-major, then db): the network launch over a one-layer plan."""
    tile = tile or TILE
    M, K = A_prev.shape
    N = delta.shape[1]
    plan = np.zeros(HEADER + FIELDS, dtype=np.intp)
    plan[HEADER + N_IN], plan[HEADER + N_OUT], plan[HEADER + B_AT] = K, N, K * N     # W_AT, D_AT: 0
    tiles = tile_table((K, N), tile)
    weight_gradients(A_prev, delta.reshape(M * N), cuda.to_device(plan), cuda.to_device(tiles), len(tiles), G,
                     workspace, tile)
