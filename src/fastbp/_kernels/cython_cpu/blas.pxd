# Row-major GEMM through a real BLAS, for the Cython kernels (see blas.pyx).
#   C (M x N) = alpha * op(A) @ op(B) + beta * C, all row-major; trans 'N' or 'T';
#   lda/ldb/ldc are the row strides (in elements) of the arrays as stored.

cdef void sgemm_rm(char trans_a, char trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                   float alpha, const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
                   float beta, float* C, Py_ssize_t ldc) noexcept nogil

cdef void dgemm_rm(char trans_a, char trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                   double alpha, const double* A, Py_ssize_t lda, const double* B, Py_ssize_t ldb,
                   double beta, double* C, Py_ssize_t ldc) noexcept nogil
