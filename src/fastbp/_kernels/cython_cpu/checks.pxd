# Whole-array checks the Cython kernels make before a step writes anything: NaN/inf, |sum|.
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport fabs
from libc.string cimport memset

from fastbp._kernels.cython_cpu.primitives cimport COLUMN_BLOCK, real, r_abs


cdef inline bint finite_all(const real* a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef int bad = 0
    cdef real biggest
    if real is float:
        biggest = FLT_MAX
    else:
        biggest = DBL_MAX
    for i in range(n):
        bad |= not (r_abs(a[i]) <= biggest)
    return bad == 0


cdef inline double abs_sum(const real* a, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """sum |a| over an (m, n) matrix, in double: finite exactly when every element is (float32
    data cannot overflow it; for float64 an overflow reads as 'too large to bound', which is
    what callers want). Summed down the columns, a block of per-column accumulators at a
    time, so the inner loop vectorizes without reassociating (bench/results/cython-reductions.md)."""
    cdef Py_ssize_t i, j, block, jb, width
    cdef double acc[COLUMN_BLOCK]
    cdef double total = 0
    for block in range((n + COLUMN_BLOCK - 1) // COLUMN_BLOCK):
        jb = block * COLUMN_BLOCK
        width = min(n - jb, COLUMN_BLOCK)
        memset(acc, 0, width * sizeof(double))
        for i in range(m):
            for j in range(width):
                acc[j] += r_abs(a[i * n + jb + j])
        for j in range(width):
            total += acc[j]
    return total


cdef inline double abs_square_sum(const real* a, Py_ssize_t m, Py_ssize_t n, double* squares) noexcept nogil:
    """abs_sum, and sum a**2 added to squares[0], from one read of a (the SGD-in-GEMM bound's
    pass over W also gives the L2 term's sum); each sum in abs_sum's order."""
    cdef Py_ssize_t i, j, block, jb, width
    cdef double acc[COLUMN_BLOCK]
    cdef double acc2[COLUMN_BLOCK]
    cdef double total = 0, total2 = 0, x
    for block in range((n + COLUMN_BLOCK - 1) // COLUMN_BLOCK):
        jb = block * COLUMN_BLOCK
        width = min(n - jb, COLUMN_BLOCK)
        memset(acc, 0, width * sizeof(double))
        memset(acc2, 0, width * sizeof(double))
        for i in range(m):
            for j in range(width):
                x = a[i * n + jb + j]
                acc[j] += fabs(x)
                acc2[j] += x * x
        for j in range(width):
            total += acc[j]
            total2 += acc2[j]
    squares[0] += total2
    return total
