"""One layer's kernels on arrays (the public kernels of fastbp.kernels, and the view-based
network pass): the linear forward with its activation, the delta propagated through f',
the weight gradient. The `_into` forms write into given arrays; the others allocate."""
import numpy as np
from numba import njit

from .activations import activate_1d, times_derivative_1d
from .blas import PLAIN, gemm_into
from .options import INLINE, JIT
from .products import matmul_nn, matmul_nt, matmul_tn, use_blas


@njit(**INLINE)
def linear_forward_into(X, W, b, code, Z, A, blas):
    M, N = Z.shape
    if use_blas(M * N * X.shape[1], N):
        # Z filled with b, then Z = X @ W + Z in the GEMM (beta 1): no BLAS zeroing pass over
        # Z (beta 0) and no separate bias pass
        for m in range(M):
            z = Z[m]
            for j in range(N):
                z[j] = b[j]
        if gemm_into(blas, PLAIN, PLAIN, 1.0, X, W, 1.0, Z):
            activate_1d(Z.ravel(), A.ravel(), code)
            return
    matmul_nn(X, W, Z, blas)
    for m in range(M):
        z = Z[m]
        for j in range(N):
            z[j] += b[j]
    activate_1d(Z.ravel(), A.ravel(), code)


@njit(**JIT)
def weight_gradient_into(A_prev, delta, dW, db, blas):
    matmul_tn(A_prev, delta, dW, blas)
    # the bias gradient summed in float64 (a float32 running sum over a long batch drifts)
    acc = np.zeros(db.size, np.float64)
    for m in range(delta.shape[0]):
        d = delta[m]
        for j in range(db.size):
            acc[j] += d[j]
    for j in range(db.size):
        db[j] = acc[j]


@njit(**INLINE)
def delta_propagate_into(delta, W, Z, A, code, out, tmp, blas):
    matmul_nt(delta, W, out, tmp, blas)
    flat = out.ravel()
    times_derivative_1d(flat, Z.ravel(), A.ravel(), code, flat)


@njit(**JIT)
def linear_forward(X, W, b, code, blas):
    Z = np.empty((X.shape[0], W.shape[1]), X.dtype)
    A = np.empty_like(Z)
    linear_forward_into(X, W, b, code, Z, A, blas)
    return Z, A


@njit(**JIT)
def activation_backward(dA, Z, A, code):
    out = np.empty_like(dA)
    times_derivative_1d(dA.ravel(), Z.ravel(), A.ravel(), code, out.ravel())
    return out


@njit(**JIT)
def delta_propagate(delta, W, Z, A, code, blas):
    out = np.empty((delta.shape[0], W.shape[0]), delta.dtype)
    delta_propagate_into(delta, W, Z, A, code, out, np.empty(W.size, W.dtype), blas)
    return out


@njit(**JIT)
def weight_gradient(A_prev, delta, blas):
    dW = np.empty((A_prev.shape[1], delta.shape[1]), delta.dtype)
    db = np.empty(delta.shape[1], delta.dtype)
    weight_gradient_into(A_prev, delta, dW, db, blas)
    return dW, db


