# Row-major GEMM through a real BLAS, for the Cython kernels (see blas.pyx).
#   C (M x N) = alpha * op(A) @ op(B) + beta * C, all row-major; trans 'N' or 'T';
#   lda/ldb/ldc are the row strides (in elements) of the arrays as stored; single: float32
#   data (else float64), alpha and beta pointing to scalars of that type.

cdef void gemm_rm(bint single, char trans_a, char trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                  const void* alpha, const void* A, Py_ssize_t lda, const void* B, Py_ssize_t ldb,
                  const void* beta, void* C, Py_ssize_t ldc) noexcept nogil
