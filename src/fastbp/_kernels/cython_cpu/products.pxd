# The matrix products of the Cython kernels: row-major GEMM through the BLAS of blas.pyx, and
# the linear layer built on it.
from fastbp._kernels.cython_cpu.blas cimport gemm_rm
from fastbp._kernels.cython_cpu.primitives cimport real


cdef inline void gemm(char ta, char tb, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, real alpha,
                      const real* A, Py_ssize_t lda, const real* B, Py_ssize_t ldb, real beta,
                      real* C, Py_ssize_t ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C, row-major (beta 0: C only written)."""
    gemm_rm(real is float, ta, tb, M, N, K, &alpha, A, lda, B, ldb, &beta, C, ldc)


cdef inline void linear_into(const real* X, const real* W, const real* b, real* Z, Py_ssize_t m, Py_ssize_t k,
                      Py_ssize_t n) noexcept nogil:
    """Z = X @ W + b: Z filled with b's rows, then one GEMM with beta 1. That spares BLAS's
    zeroing pass over Z (beta 0) and a bias pass after it; the sum is the same rounding."""
    cdef Py_ssize_t i, j
    cdef real* zr
    for i in range(m):
        zr = Z + i * n
        for j in range(n):
            zr[j] = b[j]
    gemm(c'N', c'N', m, n, k, 1, X, k, W, n, 1, Z, n)
