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


# The float32 reductions once per instruction-set path (the ISA of the activation path in use,
# set by kernels.pyx's set_activation_path): the baseline build's loops are SSE2, two doubles
# wide, and abs_sum reads every weight, delta and activation in each SGD step. The same
# per-column accumulators and summation order on every path, and no FMA contraction, so
# every path gives the same bits.
cdef extern from *:
    """
    #include <math.h>
    #include <string.h>
    #define FASTBP_REDUCTION_BLOCK 256      /* primitives.pxd's COLUMN_BLOCK */
    #define FASTBP_REDUCTIONS_F32(SUFFIX, ATTR, NO_CONTRACT) \\
    static ATTR double fastbp_abs_sum_f32_##SUFFIX(const float* a, Py_ssize_t m, Py_ssize_t n) { \\
        NO_CONTRACT \\
        double acc[FASTBP_REDUCTION_BLOCK], total = 0; \\
        Py_ssize_t i, j, jb, width; \\
        for (jb = 0; jb < n; jb += FASTBP_REDUCTION_BLOCK) { \\
            width = n - jb < FASTBP_REDUCTION_BLOCK ? n - jb : FASTBP_REDUCTION_BLOCK; \\
            memset(acc, 0, width * sizeof(double)); \\
            for (i = 0; i < m; i++) { \\
                const float* row = a + i * n + jb; \\
                for (j = 0; j < width; j++) acc[j] += (double)fabsf(row[j]); \\
            } \\
            for (j = 0; j < width; j++) total += acc[j]; \\
        } \\
        return total; \\
    } \\
    static ATTR double fastbp_square_sum_f32_##SUFFIX(const float* a, Py_ssize_t m, Py_ssize_t n) { \\
        NO_CONTRACT \\
        double acc[FASTBP_REDUCTION_BLOCK], total = 0; \\
        Py_ssize_t i, j, jb, width; \\
        for (jb = 0; jb < n; jb += FASTBP_REDUCTION_BLOCK) { \\
            width = n - jb < FASTBP_REDUCTION_BLOCK ? n - jb : FASTBP_REDUCTION_BLOCK; \\
            memset(acc, 0, width * sizeof(double)); \\
            for (i = 0; i < m; i++) { \\
                const float* row = a + i * n + jb; \\
                for (j = 0; j < width; j++) { double x = row[j]; acc[j] += x * x; } \\
            } \\
            for (j = 0; j < width; j++) total += acc[j]; \\
        } \\
        return total; \\
    }

    FASTBP_REDUCTIONS_F32(baseline, , )

    #if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && defined(__has_attribute)
    #if __has_attribute(target) && (defined(__clang__) ? __clang_major__ >= 14 : __GNUC__ >= 6)
    #define FASTBP_REDUCTION_ISA_PATHS 1
    #endif
    #endif
    #ifdef FASTBP_REDUCTION_ISA_PATHS
    #ifdef __clang__
    #define FASTBP_REDUCTION_NO_CONTRACT _Pragma("clang fp contract(off)")
    #else
    #define FASTBP_REDUCTION_NO_CONTRACT
    #pragma GCC push_options
    #pragma GCC optimize("fp-contract=off")
    #endif
    FASTBP_REDUCTIONS_F32(avx2, __attribute__((target("avx2"))), FASTBP_REDUCTION_NO_CONTRACT)
    FASTBP_REDUCTIONS_F32(avx512, __attribute__((target("avx512f,avx2"))), FASTBP_REDUCTION_NO_CONTRACT)
    #ifndef __clang__
    #pragma GCC pop_options
    #endif
    #define FASTBP_REDUCTION_PICK(isa, name) ((isa) == 2 ? name##_avx512 : (isa) == 1 ? name##_avx2 : name##_baseline)
    #else
    #define FASTBP_REDUCTION_PICK(isa, name) (name##_baseline)
    #endif

    /* 0 baseline, 1 AVX2, 2 AVX-512: as optimizers.pxd's isa */
    static int fastbp_reduction_isa = 0;
    static void fastbp_set_reduction_isa(int isa) { fastbp_reduction_isa = isa; }
    static double fastbp_abs_sum_f32(const float* a, Py_ssize_t m, Py_ssize_t n) {
        return FASTBP_REDUCTION_PICK(fastbp_reduction_isa, fastbp_abs_sum_f32)(a, m, n);
    }
    static double fastbp_square_sum_f32(const float* a, Py_ssize_t m, Py_ssize_t n) {
        return FASTBP_REDUCTION_PICK(fastbp_reduction_isa, fastbp_square_sum_f32)(a, m, n);
    }
    """
    void set_reduction_isa "fastbp_set_reduction_isa"(int isa) noexcept nogil
    double abs_sum_f32 "fastbp_abs_sum_f32"(const float* a, Py_ssize_t m, Py_ssize_t n) noexcept nogil
    double square_sum_f32 "fastbp_square_sum_f32"(const float* a, Py_ssize_t m, Py_ssize_t n) noexcept nogil


cdef inline double abs_sum(const real* a, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """sum |a| over an (m, n) matrix, in double: finite exactly when every element is (float32
    data cannot overflow it; for float64 an overflow reads as 'too large to bound', which is
    what callers want). Summed down the columns, a block of per-column accumulators at a
    time, so the inner loop vectorizes without reassociating (bench/results/cython-reductions.md);
    float32 on the ISA path in use (above)."""
    cdef Py_ssize_t i, j, block, jb, width
    cdef double acc[COLUMN_BLOCK]
    cdef double total = 0
    if real is float:
        return abs_sum_f32(a, m, n)
    else:
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
    """abs_sum, and sum a**2 added to squares[0] (the SGD-in-GEMM bound's pass over W also gives
    the L2 term's sum); each sum in abs_sum's order. float32: abs_sum's and square_sum's loops
    on the ISA path in use (two reads of a); float64: one read of a."""
    cdef Py_ssize_t i, j, block, jb, width
    cdef double acc[COLUMN_BLOCK]
    cdef double acc2[COLUMN_BLOCK]
    cdef double total = 0, total2 = 0, x
    if real is float:
        squares[0] += square_sum_f32(a, m, n)
        return abs_sum_f32(a, m, n)
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
