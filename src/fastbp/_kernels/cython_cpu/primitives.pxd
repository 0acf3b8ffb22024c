# The primitives the Cython kernels' formulas are built on (activations.pxd is generated over
# these): exp, expm1, log1p, tanh, abs for `real` (float or double). libm's, except the float
# tanh: fastbp_tanh32 below, branch-free C that GCC vectorizes at -O3 with the baseline
# instruction set (SSE2), where libm's tanhf is a scalar call. It computes in double and
# rounds once, so the result is tanhf's to float32 rounding (tested in
# tests/test_activations32.py: within 1 ulp of float64 over a dense sweep):
#     exp(x), |x| <= 105   x = n ln2 + r with n = round(x / ln2) (the 1.5 * 2**52 trick: no
#                          floor, which SSE2 lacks), |r| <= ln2/2; exp(r) by its Taylor
#                          polynomial of degree 10 (truncation < 2e-12 relative); 2**n as two
#                          normal floats built from their bits, multiplied in double
#     tanh                 |x| < 0.01: x - x^3/3 + 2x^5/15 - 17x^7/315 (error < 1e-19);
#                          else (1 - t) / (1 + t), t = exp(-2|x|), sign restored
# NaN propagates; +-inf give the limits. Its speed against tanhf, and why sigmoid keeps libm's
# expf: bench/results/cython-tanh32.md.
from libc.math cimport exp, expf, tanh, log1p, log1pf, expm1, expm1f, fabs, fabsf

ctypedef fused real:
    float
    double

cdef enum:
    COLUMN_BLOCK = 256      # columns per block of float64 accumulators (on the stack)

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline float fastbp_bits_to_float(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
    /* exp(x) in double for float32 x; x clamped to [-105, 89] (the float32 result is 0 / inf
       beyond); NaN is the caller's to restore */
    static inline double fastbp_exp_d(float x) {
        const double LOG2E = 1.4426950408889634, ROUND = 6755399441055744.0;   /* 1.5 * 2**52 */
        const double LN2_HI = 0.6931471803691238, LN2_LO = 1.9082149292705877e-10;
        double xc = x > -105.0f ? (double)x : -105.0;
        xc = xc < 89.0 ? xc : 89.0;
        double n = (xc * LOG2E + ROUND) - ROUND;
        double r = (xc - n * LN2_HI) - n * LN2_LO;
        double p = 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0;
        p = p * r + 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        int32_t k = (int32_t)n, k1 = k >> 1;
        double s1 = (double)fastbp_bits_to_float((k1 + 127) << 23);        /* 2**k1 */
        double s2 = (double)fastbp_bits_to_float((k - k1 + 127) << 23);    /* 2**(k - k1) */
        return p * (s1 * s2);
    }
    static inline float fastbp_tanh32(float x) {
        double xd = x, ax = x >= 0 ? xd : -xd, z = xd * xd;
        double small = xd + xd * z * (-1.0 / 3.0 + z * (2.0 / 15.0 - z * (17.0 / 315.0)));
        double t = fastbp_exp_d((float)(-2.0 * ax));
        double big = (1.0 - t) / (1.0 + t);
        big = x >= 0 ? big : -big;
        float y = (float)(ax < 0.01 ? small : big);
        return x == x ? y : x;
    }
    """
    float tanh32 "fastbp_tanh32"(float x) noexcept nogil


# (in each, `real is float` is a compile-time constant: one call per specialisation)
cdef inline real r_exp(real x) noexcept nogil:
    return expf(x) if real is float else exp(x)

cdef inline real r_tanh(real x) noexcept nogil:
    return tanh32(x) if real is float else tanh(x)

cdef inline real r_log1p(real x) noexcept nogil:
    return log1pf(x) if real is float else log1p(x)

cdef inline real r_expm1(real x) noexcept nogil:
    return expm1f(x) if real is float else expm1(x)

cdef inline real r_abs(real x) noexcept nogil:
    return fabsf(x) if real is float else fabs(x)
