"""Matrix products for the Numba kernels (C row-major, written, never accumulated into):

    nn  C[M,N] = A[M,K] @ B[K,N]
    tn  C[M,N] = A[K,M].T @ B[K,N]
    nt  C[M,N] = A[M,K] @ B[N,K].T

Small products run register-blocked loops (4 rows of C per pass over B, the inner loop over
N vectorized); the others call BLAS gemm: NumPy's OpenBLAS through blas.gemm (`blas`
arguments: blas.gemm_address(dtype)), or np.dot (SciPy's OpenBLAS) when that is 0.
"""
import numpy as np
from numba import njit

from .blas import PLAIN, TRANSPOSED, gemm, gemm_into
from .options import JIT

# The loops only below BLAS_MIN_FLOPS multiply-adds with N >= LOOPS_MIN_N (their vector
# dimension), or below TINY_FLOPS (where BLAS's call overhead is all there is); BLAS beats
# them from ~10k multiply-adds on. The sweep: bench/numba_profile.py --gemm, figures in
# bench/results/numba-blas-cutoff.md.
BLAS_MIN_FLOPS = 12_000
LOOPS_MIN_N = 8
TINY_FLOPS = 512
# A @ B.T as dot products when K >= NT_MIN_K, else through a transposed copy of B.
NT_MIN_K = 16

@njit(**JIT)
def _small_nn(A, B, C, a_transposed):
    """C = op(A) @ B with op(A)[m, k] = A[k, m] if a_transposed else A[m, k]; 4 rows of C
    per pass over B, the inner loop over N contiguous (vectorized)."""
    M, N = C.shape
    K = B.shape[0]
    C[:, :] = 0
    m = 0
    while m + 4 <= M:
        c0, c1, c2, c3 = C[m], C[m + 1], C[m + 2], C[m + 3]
        for k in range(K):
            if a_transposed:
                a0, a1, a2, a3 = A[k, m], A[k, m + 1], A[k, m + 2], A[k, m + 3]
            else:
                a0, a1, a2, a3 = A[m, k], A[m + 1, k], A[m + 2, k], A[m + 3, k]
            bk = B[k]
            for j in range(N):
                b = bk[j]
                c0[j] += a0 * b
                c1[j] += a1 * b
                c2[j] += a2 * b
                c3[j] += a3 * b
        m += 4
    while m < M:
        c0 = C[m]
        for k in range(K):
            a0 = A[k, m] if a_transposed else A[m, k]
            bk = B[k]
            for j in range(N):
                c0[j] += a0 * bk[j]
        m += 1


@njit(**JIT)
def _small_nt(A, B, C):
    """C = A @ B.T as dot products along K (both rows contiguous), 4 rows of A at once."""
    M, N = C.shape
    K = A.shape[1]
    acc = C.dtype.type(0)
    m = 0
    while m + 4 <= M:
        a0, a1, a2, a3 = A[m], A[m + 1], A[m + 2], A[m + 3]
        for j in range(N):
            bj = B[j]
            s0 = s1 = s2 = s3 = acc
            for k in range(K):
                b = bj[k]
                s0 += a0[k] * b
                s1 += a1[k] * b
                s2 += a2[k] * b
                s3 += a3[k] * b
            C[m, j] = s0
            C[m + 1, j] = s1
            C[m + 2, j] = s2
            C[m + 3, j] = s3
        m += 4
    while m < M:
        a0 = A[m]
        for j in range(N):
            bj = B[j]
            s0 = acc
            for k in range(K):
                s0 += a0[k] * bj[k]
            C[m, j] = s0
        m += 1


@njit(**JIT)
def use_blas(flops, vector_length):
    if flops < TINY_FLOPS:
        return False
    return flops >= BLAS_MIN_FLOPS or vector_length < LOOPS_MIN_N


@njit(**JIT)
def matmul_nn(A, B, C, blas):
    """C[M,N] = A[M,K] @ B[K,N]; blas: blas.gemm_address(dtype), or 0 for np.dot."""
    M, N = C.shape
    if use_blas(M * N * A.shape[1], N):
        if not gemm(blas, PLAIN, PLAIN, A, B, C):
            np.dot(A, B, C)
    else:
        _small_nn(A, B, C, False)


@njit(**JIT)
def matmul_tn(A, B, C, blas):
    """C[M,N] = A[K,M].T @ B[K,N]."""
    M, N = C.shape
    if use_blas(M * N * A.shape[0], N):
        if not gemm(blas, TRANSPOSED, PLAIN, A, B, C):
            np.dot(A.T, B, C)
    else:
        _small_nn(A, B, C, True)


@njit(**JIT)
def matmul_tn_into(alpha, A, B, beta, C, blas):
    """C = alpha * A[K,M].T @ B[K,N] + beta * C through BLAS, when matmul_tn would use BLAS
    for this product and BLAS takes the operands. -> False (C untouched) otherwise."""
    M, N = C.shape
    return use_blas(M * N * A.shape[0], N) and gemm_into(blas, TRANSPOSED, PLAIN, alpha, A, B, beta, C)


@njit(**JIT)
def matmul_nt(A, B, C, tmp, blas):
    """C[M,N] = A[M,K] @ B[N,K].T; tmp: scratch of at least N*K elements."""
    M, N = C.shape
    K = A.shape[1]
    if use_blas(M * N * K, K if K >= NT_MIN_K else N):
        if not gemm(blas, PLAIN, TRANSPOSED, A, B, C):
            np.dot(A, B.T, C)
    elif K >= NT_MIN_K:
        _small_nt(A, B, C)
    else:
        # short dot products vectorize badly: copy B.T (N*K, cheap next to M*N*K) and go axpy-wise
        Bt = tmp[:N * K].reshape(K, N)
        for k in range(K):
            for n in range(N):
                Bt[k, n] = B[n, k]
        _small_nn(A, Bt, C, False)


