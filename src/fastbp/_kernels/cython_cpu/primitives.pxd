# The primitives the Cython kernels are built on. Two families:
#
# 1. The activation formulas' primitives (activations.pxd, generated, is built over these):
#    exp, expm1, log1p, tanh, sigmoid for float (f32, computed in float) and double (f64),
#    branch-free C below: selects and arithmetic, no calls, so that GCC and Clang vectorize the
#    loops that call them with whatever instruction set the loop is compiled for (SSE2, AVX2,
#    AVX-512: activations.pxd's paths). -fno-trapping-math (setup.py) lets GCC if-convert
#    the selects; -ffast-math would break the NaN tests they rely on.
#        exp       x clamped to [-104, 89] (float; [-746, 710] double: the result is 0 / inf
#                  beyond); x = n ln2 + r, n = round(x / ln2) by the 1.5 * 2**23 (2**52) trick,
#                  ln2 in two parts (Cody-Waite: n * LN2_HI is exact), |r| <= ln2/2; exp(r) by
#                  Cephes' expf minimax polynomial (float) or the Taylor polynomial of degree 13
#                  (double; truncation < 1e-17); 2**n as 2**h * 2**(n - h), h = round(n / 2),
#                  two normal numbers built from their bits, so subnormal results round once
#        expm1     |x| < ln2/2: Taylor polynomial (degree 7 float, 13 double); else exp(x) - 1
#                  (no cancellation worth a bit there)
#        log1p     w = 1 + u = 2**e m, m in [sqrt(1/2), sqrt 2); log m = 2 atanh(s),
#                  s = (m - 1) / (m + 1), by its series (|s| < 0.172); plus (u - (w - 1)) / w,
#                  the rounding of 1 + u. u = -1 -> -inf, u < -1 -> NaN, +inf -> inf
#        tanh      float: |x| < 0.625 Cephes' tanhf odd polynomial, else 1 - 2t / (1 + t),
#                  t = exp(-2|x|) (near saturation the one rounding is 1 - a small number's:
#                  f' = 1 - a*a there is only as good as a's last bits); double: -em / (2 + em),
#                  em = expm1(-2|x|); the sign restored
#        sigmoid   q = e / (1 + e), e = exp(-|x|) (never overflows), for x < 0; 1 - q else (the
#                  last rounding near 1 is once, as for tanh)
#    NaN -> NaN, +-inf -> the limits. Accuracy, tested on every path in
#    tests/test_activations32.py over dense sweeps: float within 1e-6 relative of float64
#    wherever the result is a normal float (the bound the Numba forms are tested to); double
#    within 1e-15 relative of libm. Measured maxima and speeds: bench/results/cython-activations.md.
#
# 2. libm's exp, log1p, fabs for `real` (float or double): the losses and checks, which run once
#    per output element or parameter.
from libc.math cimport exp, expf, log1p, log1pf, fabs, fabsf

ctypedef fused real:
    float
    double

cdef enum:
    COLUMN_BLOCK = 256      # columns per block of float64 accumulators (on the stack)

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>
    #if defined(__GNUC__)
    #define FASTBP_INLINE static inline __attribute__((always_inline))
    #else
    #define FASTBP_INLINE static inline
    #endif

    FASTBP_INLINE float fastbp_f32_from_bits(uint32_t i) { float f; memcpy(&f, &i, 4); return f; }
    FASTBP_INLINE uint32_t fastbp_f32_bits(float f) { uint32_t i; memcpy(&i, &f, 4); return i; }
    FASTBP_INLINE double fastbp_f64_from_bits(uint64_t i) { double f; memcpy(&f, &i, 8); return f; }
    FASTBP_INLINE uint64_t fastbp_f64_bits(double f) { uint64_t i; memcpy(&i, &f, 8); return i; }

    /* ---- float ---- */
    /* exp(xc) = 2**n * p for xc in [-104, 89] (clamped by the caller): -> p, and n */
    FASTBP_INLINE float fastbp_exp_reduced_f32(float xc, float* n) {
        const float LOG2E = 1.44269504088896341f, ROUND = 12582912.0f;          /* 1.5 * 2**23 */
        const float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
        *n = (xc * LOG2E + ROUND) - ROUND;                      /* round to nearest */
        float r = (xc - *n * LN2_HI) - *n * LN2_LO;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        return p * (r * r) + r + 1.0f;
    }

    /* p * 2**n for n in [-150, 128]: 2**h * 2**(n - h), h = n >> 1, so that a result below
       2**-126 is rounded once */
    FASTBP_INLINE float fastbp_scaled_f32(float p, float n) {
        int32_t k = (int32_t)n, h = k >> 1;
        return (p * fastbp_f32_from_bits((uint32_t)(h + 127) << 23))
               * fastbp_f32_from_bits((uint32_t)(k - h + 127) << 23);
    }

    FASTBP_INLINE float fastbp_exp_f32(float x) {
        float n, xc = x > -104.0f ? x : -104.0f;                /* NaN -> -104: restored below */
        xc = xc < 89.0f ? xc : 89.0f;
        float p = fastbp_exp_reduced_f32(xc, &n);
        float y = fastbp_scaled_f32(p, n);
        return x == x ? y : x;
    }

    FASTBP_INLINE float fastbp_expm1_f32(float x) {
        float p = 1.0f / 5040.0f;
        p = p * x + 1.0f / 720.0f;
        p = p * x + 1.0f / 120.0f;
        p = p * x + 1.0f / 24.0f;
        p = p * x + 1.0f / 6.0f;
        p = p * x + 0.5f;
        float small = p * (x * x) + x;
        float big = fastbp_exp_f32(x) - 1.0f;
        return fabsf(x) < 0.34657359f ? small : big;            /* NaN: big, NaN */
    }

    FASTBP_INLINE float fastbp_log1p_f32(float u) {
        float w = 1.0f + u;
        uint32_t bits = fastbp_f32_bits(w);
        float m = fastbp_f32_from_bits((bits & 0x007fffffu) | 0x3f800000u);      /* in [1, 2) */
        float e = (float)((int32_t)((bits >> 23) & 0xffu) - 127);
        float high = m > 1.41421356f ? 1.0f : 0.0f;
        m = m > 1.41421356f ? 0.5f * m : m;
        e = e + high;
        float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
        float q = 2.0f / 9.0f;
        q = q * s2 + 2.0f / 7.0f;
        q = q * s2 + 2.0f / 5.0f;
        q = q * s2 + 2.0f / 3.0f;
        float log_m = q * s2 * s + 2.0f * s;
        float y = (e * 0.693359375f + (e * -2.12194440e-4f + log_m)) + (u - (w - 1.0f)) / w;
        y = u > -1.0f ? y : (u == -1.0f ? -INFINITY : NAN);      /* NaN -> NaN too */
        return u < INFINITY ? y : u;
    }

    FASTBP_INLINE float fastbp_tanh_f32(float x) {
        float ax = fabsf(x), z = x * x, n;
        float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                        + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
        /* t = exp(-2|x|), clamped where it is normal (t < 2**-25 gives big = 1 exactly anyway):
           2**n in one factor */
        float tc = -2.0f * ax > -87.0f ? -2.0f * ax : -87.0f;
        float p = fastbp_exp_reduced_f32(tc, &n);
        float t = p * fastbp_f32_from_bits((uint32_t)((int32_t)n + 127) << 23);
        float big = 1.0f - (t + t) / (1.0f + t);       /* (1 - t) / (1 + t), rounded near 1 once */
        big = x >= 0.0f ? big : -big;
        float y = ax < 0.625f ? small : big;
        return x == x ? y : x;
    }

    FASTBP_INLINE float fastbp_sigmoid_f32(float x) {
        float n, xc = -fabsf(x) > -104.0f ? -fabsf(x) : -104.0f;
        float p = fastbp_exp_reduced_f32(xc, &n);
        float e = fastbp_scaled_f32(p, n);                                          /* exp(-|x|) */
        float q = e / (1.0f + e);                       /* sigmoid(-|x|) */
        float y = x >= 0.0f ? 1.0f - q : q;
        return x == x ? y : x;
    }

    /* ---- double ---- */
    FASTBP_INLINE double fastbp_exp_f64(double x) {
        const double LOG2E = 1.4426950408889634, ROUND = 6755399441055744.0;     /* 1.5 * 2**52 */
        const double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;
        double xc = x > -746.0 ? x : -746.0;
        xc = xc < 710.0 ? xc : 710.0;
        double n_round = xc * LOG2E + ROUND;                    /* n + ROUND: n in its low bits */
        double n = n_round - ROUND;
        double r = (xc - n * LN2_HI) - n * LN2_LO;
        double p = 1.0 / 6227020800.0;
        p = p * r + 1.0 / 479001600.0;
        p = p * r + 1.0 / 39916800.0;
        p = p * r + 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0;
        p = p * r + 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * (r * r) + r + 1.0;
        /* the exponents from the bits of h + ROUND and (n - h) + ROUND: 64-bit integer adds
           and shifts only (SSE2 and AVX2 have no double -> int64 conversion) */
        double h_round = n * 0.5 + ROUND, h = h_round - ROUND;
        double g_round = (n - h) + ROUND;
        uint64_t bias = 1023 - fastbp_f64_bits(ROUND);
        double y = (p * fastbp_f64_from_bits((fastbp_f64_bits(h_round) + bias) << 52))
                   * fastbp_f64_from_bits((fastbp_f64_bits(g_round) + bias) << 52);
        return x == x ? y : x;
    }

    FASTBP_INLINE double fastbp_expm1_f64(double x) {
        double p = 1.0 / 6227020800.0;
        p = p * x + 1.0 / 479001600.0;
        p = p * x + 1.0 / 39916800.0;
        p = p * x + 1.0 / 3628800.0;
        p = p * x + 1.0 / 362880.0;
        p = p * x + 1.0 / 40320.0;
        p = p * x + 1.0 / 5040.0;
        p = p * x + 1.0 / 720.0;
        p = p * x + 1.0 / 120.0;
        p = p * x + 1.0 / 24.0;
        p = p * x + 1.0 / 6.0;
        p = p * x + 0.5;
        double small = p * (x * x) + x;
        double big = fastbp_exp_f64(x) - 1.0;
        return fabs(x) < 0.34657359027997264 ? small : big;      /* NaN: big, NaN */
    }

    FASTBP_INLINE double fastbp_log1p_f64(double u) {
        double w = 1.0 + u;
        uint64_t bits = fastbp_f64_bits(w);
        double m = fastbp_f64_from_bits((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
        /* the biased exponent as a double: the bits of 2**52 + it, minus 2**52 (no int64 ->
           double conversion either) */
        double e = fastbp_f64_from_bits(((bits >> 52) & 0x7ffu) | 0x4330000000000000ull)
                   - (4503599627370496.0 + 1023.0);
        double high = m > 1.4142135623730951 ? 1.0 : 0.0;
        m = m > 1.4142135623730951 ? 0.5 * m : m;
        e = e + high;
        double s = (m - 1.0) / (m + 1.0), s2 = s * s;
        double q = 2.0 / 23.0;
        q = q * s2 + 2.0 / 21.0;
        q = q * s2 + 2.0 / 19.0;
        q = q * s2 + 2.0 / 17.0;
        q = q * s2 + 2.0 / 15.0;
        q = q * s2 + 2.0 / 13.0;
        q = q * s2 + 2.0 / 11.0;
        q = q * s2 + 2.0 / 9.0;
        q = q * s2 + 2.0 / 7.0;
        q = q * s2 + 2.0 / 5.0;
        q = q * s2 + 2.0 / 3.0;
        double log_m = q * s2 * s + 2.0 * s;
        double y = (e * 6.93147180369123816490e-01 + (e * 1.90821492927058770002e-10 + log_m))
                   + (u - (w - 1.0)) / w;
        y = u > -1.0 ? y : (u == -1.0 ? -INFINITY : NAN);
        return u < INFINITY ? y : u;
    }

    FASTBP_INLINE double fastbp_tanh_f64(double x) {
        double em = fastbp_expm1_f64(-2.0 * fabs(x));          /* in [-1, 0] */
        double t = -em / (2.0 + em);
        double y = x >= 0.0 ? t : -t;
        return x == x ? y : x;
    }

    FASTBP_INLINE double fastbp_sigmoid_f64(double x) {
        double e = fastbp_exp_f64(-fabs(x));
        double q = e / (1.0 + e);
        double y = x >= 0.0 ? 1.0 - q : q;
        return x == x ? y : x;
    }
    """
    float sigmoid_f32 "fastbp_sigmoid_f32"(float x) noexcept nogil
    double sigmoid_f64 "fastbp_sigmoid_f64"(double x) noexcept nogil


# (in each, `real is float` is a compile-time constant: one call per specialisation)
cdef inline real r_exp(real x) noexcept nogil:
    return expf(x) if real is float else exp(x)

cdef inline real r_log1p(real x) noexcept nogil:
    return log1pf(x) if real is float else log1p(x)

cdef inline real r_abs(real x) noexcept nogil:
    return fabsf(x) if real is float else fabs(x)
