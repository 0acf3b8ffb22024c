"""The fully fused path for narrow networks (every layer size <= MAX_WIDTH = 128), in the
manner of tiny-cuda-nn's fully fused MLP.

    forward    ONE kernel for all layers. A block owns ROWS batch rows; their activations
               stay in shared memory (two ping-pong buffers of ROWS x MAX_WIDTH) from the
               input to the output, so intermediate layers never round-trip through global
               memory on the way forward. Thread j computes output column j for all ROWS
               rows at once (ROWS accumulators in registers), so each weight is read once
               per block, by consecutive threads from consecutive addresses (coalesced).
               Z and A of every layer are also written out (coalesced) for the backward
               pass; for inference only the output layer is written.
    backward   ONE kernel propagates the deltas through all layers the same way,
               delta[l-1] = (delta[l] @ W[l].T) * f'(Z[l-1]), writing each delta[l] out.
    gradients  dW[l] = A[l-1].T @ delta[l], db[l]: the split-batch tiled reduction of
               products.py (a batch of 65,536 rows is cut into chunks so the
               reduction fills the GPU).

Shared memory per block: 2 * ROWS * 128 * itemsize = 32 KiB for float32 (ROWS = 32) and
for float64 (ROWS = 16), under the 48 KiB static limit, leaving room for several blocks
per SM.

When it is used (`eligible`): max(layer sizes) <= 128. This is chosen by design, not
measured (no GPU was available when it was written): for such widths one block holds a
row's whole layer, so L forward launches become one and the activations stay on chip,
which is where the per-layer tiled path loses on narrow networks (small GEMMs: few tiles,
launch overhead, every activation written and re-read). Wider layers take products.py.
"""
import functools

import numpy as np
from numba import cuda

from ..plan import ACT, A_AT, B_AT, D_AT, FIELDS, HEADER, N_IN, N_LAYERS, N_OUT, W_AT, Z_AT
from .activations import device_functions
from .device import WARP, numba_type

MAX_WIDTH = 128


def rows_per_block(dtype):
    return 32 if np.dtype(dtype).itemsize == 4 else 16


def eligible(sizes):
    return max(sizes) <= MAX_WIDTH


def threads_per_block(sizes):
    """One thread per column of the widest layer, rounded up to whole warps."""
    return -(-max(sizes) // WARP) * WARP


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    T = numba_type(dtype)
    activate, derivative, _ = device_functions(np.dtype(dtype))
    ROWS = rows_per_block(dtype)
    W_MAX = MAX_WIDTH

    @cuda.jit(cache=True)
    def forward(X, params, plan, WS, store_all):
        """All layers for this block's ROWS rows; Z and A of layer l into WS at the plan's
        Z_AT and A_AT (every layer with store_all, else the output layer only)."""
        H = cuda.shared.array((2, ROWS, W_MAX), T)
        M = X.shape[0]
        tid, n_threads = cuda.threadIdx.x, cuda.blockDim.x
        row0 = cuda.blockIdx.x * ROWS
        n_rows = min(ROWS, M - row0)
        n_layers = plan[N_LAYERS]
        n0 = plan[HEADER + N_IN]
        for i in range(tid, ROWS * n0, n_threads):      # the input rows; zeros past the batch
            r, c = i // n0, i % n0
            H[0, r, c] = X[row0 + r, c] if r < n_rows else T(0)
        cuda.syncthreads()
        acc = cuda.local.array(ROWS, T)
        cur = 0
        for l in range(n_layers):
            q = HEADER + l * FIELDS
            n_in, n_out, code = plan[q + N_IN], plan[q + N_OUT], plan[q + ACT]
            w_at, b_at, z_at, a_at = plan[q + W_AT], plan[q + B_AT], plan[q + Z_AT], plan[q + A_AT]
            store = store_all or l == n_layers - 1
            for j in range(tid, n_out, n_threads):
                bias = params[b_at + j]
                for r in range(ROWS):
                    acc[r] = bias
                for k in range(n_in):
                    w = params[w_at + k * n_out + j]     # consecutive j: coalesced
                    for r in range(ROWS):
                        acc[r] += H[cur, r, k] * w       # one address per warp: broadcast
                for r in range(ROWS):
                    z = acc[r]
                    a = activate(code, z)
                    H[1 - cur, r, j] = a
                    if store and r < n_rows:
                        at = (row0 + r) * n_out + j
                        WS[z_at + at] = z
                        WS[a_at + at] = a
            cuda.syncthreads()
            cur = 1 - cur

    @cuda.jit(cache=True)
    def backward(params, plan, WS, M):
        """From delta[L-1] (written by the loss kernel) down to delta[0]:
        delta[l-1] = (delta[l] @ W[l].T) * f'(Z[l-1]); each delta into WS at the plan's D_AT."""
        S = cuda.shared.array((2, ROWS, W_MAX), T)
        tid, n_threads = cuda.threadIdx.x, cuda.blockDim.x
        row0 = cuda.blockIdx.x * ROWS
        n_rows = min(ROWS, M - row0)
        last = plan[N_LAYERS] - 1
        n_last, d_last = plan[HEADER + last * FIELDS + N_OUT], plan[HEADER + last * FIELDS + D_AT]
        for i in range(tid, ROWS * n_last, n_threads):
            r, c = i // n_last, i % n_last
            S[0, r, c] = WS[d_last + (row0 + r) * n_last + c] if r < n_rows else T(0)
        cuda.syncthreads()
        acc = cuda.local.array(ROWS, T)
        cur = 0
        for l in range(last, 0, -1):
            q, below = HEADER + l * FIELDS, HEADER + (l - 1) * FIELDS
            n_in, n_out, w_at = plan[q + N_IN], plan[q + N_OUT], plan[q + W_AT]  # layer l-1 has n_in units
            code, z_at, a_at, d_at = plan[below + ACT], plan[below + Z_AT], plan[below + A_AT], plan[below + D_AT]
            for k in range(tid, n_in, n_threads):
                for r in range(ROWS):
                    acc[r] = T(0)
                for j in range(n_out):
                    w = params[w_at + k * n_out + j]     # row k of W: cached (W is at most 128 x 128)
                    for r in range(ROWS):
                        acc[r] += S[cur, r, j] * w
                for r in range(ROWS):
                    d = T(0)
                    if r < n_rows:
                        at = (row0 + r) * n_in + k
                        d = acc[r] * derivative(code, WS[z_at + at], WS[a_at + at])
                        WS[d_at + at] = d
                    S[1 - cur, r, k] = d
            cuda.syncthreads()
            cur = 1 - cur

    return dict(forward=forward, backward=backward)


def forward(X, params, plan, WS, sizes, store_all):
    """plan: the network's plan on the device; WS: the workspace; sizes: the layer sizes (host)."""
    blocks = -(-X.shape[0] // rows_per_block(X.dtype))
    kernels(X.dtype)["forward"][blocks, threads_per_block(sizes)](X, params, plan, WS, store_all)


def backward(params, plan, WS, sizes, M):
    blocks = -(-M // rows_per_block(params.dtype))
    kernels(params.dtype)["backward"][blocks, threads_per_block(sizes)](params, plan, WS, M)
