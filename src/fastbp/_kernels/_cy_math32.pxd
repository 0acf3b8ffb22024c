# float32 tanh / sigmoid for the Cython kernels' forward passes, as accurate as libm's and
# faster: branch-free C that GCC vectorizes at -O3 with the baseline
# instruction set (SSE2), where libm's tanhf/expf are scalar calls (a float32 tanh layer of
# mnist shapes took 330 us of a 600 us step with them).
#
# Unlike the Numba backend's float32-lane approximations (numba_math.py, error <= 1e-6,
# which issue #5 asked for), these work in double and round once at the end, so the float32
# result is float32 rounding of a value good to ~1e-10 (libm: < 1 ulp), i.e. rounding only:
#     exp(x), |x| <= 105   x = n ln2 + r with n = round(x / ln2) (the 1.5 * 2**52 trick: no
#                          floor, which SSE2 lacks), |r| <= ln2/2; exp(r) by its Taylor
#                          polynomial of degree 10 (truncation < 2e-12 relative); 2**n as two
#                          normal floats built from their bits, multiplied in double
#     tanh                 |x| < 0.01: x - x^3/3 + 2x^5/15 - 17x^7/315 (error < 1e-19);
#                          else (1 - t) / (1 + t), t = exp(-2|x|), sign restored
#     sigmoid              1 / (1 + e) or e / (1 + e), e = exp(-|x|)
# NaN propagates; +-inf give the limits. Tested in tests/test_activations32.py: over a
# dense sweep of float32 inputs the results are within 0.5 ulp of float64 (correctly
# rounded there); the test asks <= 1 ulp. Speed, mnist shapes, float32 step: sigmoid
# 374 -> 315 us, tanh 604 -> 350 us (relu: 232 us), 2 threads.

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
    static inline float fastbp_sigmoid32(float x) {
        double e = fastbp_exp_d(x >= 0 ? -x : x);
        double s = 1.0 / (1.0 + e);
        float y = (float)(x >= 0 ? s : e * s);
        return x == x ? y : x;
    }
    """
    float tanh32 "fastbp_tanh32"(float x) noexcept nogil
    float sigmoid32 "fastbp_sigmoid32"(float x) noexcept nogil
