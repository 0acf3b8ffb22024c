# The optimizer updates of the Cython kernels over a range of the flat buffers (torch semantics).
#
# An update writes every new value or none (numba_cpu/optimizers.py says why and how): a
# check pass computes each new value and only tests it (flags, nothing stored), and when no
# flag is set over the whole update, a write pass computes the same values and stores them.
# Both are plain loops GCC vectorizes: the check pass stores nothing (no aliasing to rule
# out), the write pass stores to 2-3 buffers (few enough run-time alias checks; a one-pass
# version that also kept the old values in an undo buffer had too many, and Adam's loop
# stayed scalar).
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport sqrt, sqrtf

from fastbp._kernels.cython_cpu.primitives cimport real, r_abs

cdef enum:
    GRADIENT = 1        # a gradient is NaN or inf
    UPDATE = 2          # a new parameter or state value is not finite


cdef inline real biggest(real tag) noexcept nogil:
    return FLT_MAX if real is float else DBL_MAX


cdef inline int sgd_flags(const real* p, const real* g, const real* v, Py_ssize_t i0, Py_ssize_t i1, real lr,
                          real momentum, real weight_decay, bint nesterov) noexcept nogil:
    """torch.optim.SGD (dampening 0) over [i0, i1), computed and tested, nothing stored. -> flags."""
    cdef Py_ssize_t i
    cdef real d, vi, pi, gi, new, big = biggest(lr)
    cdef int bad_g = 0, bad = 0
    if momentum == 0:
        for i in range(i0, i1):
            pi = p[i]
            gi = g[i]
            new = pi - lr * (gi + weight_decay * pi)
            bad_g |= not (r_abs(gi) <= big)
            bad |= not (r_abs(new) <= big)
    else:
        for i in range(i0, i1):
            pi = p[i]
            gi = g[i]
            d = gi + weight_decay * pi
            vi = v[i] * momentum + d
            new = pi - lr * ((d + momentum * vi) if nesterov else vi)
            bad_g |= not (r_abs(gi) <= big)
            bad |= (not (r_abs(new) <= big)) | (not (r_abs(vi) <= big))
    return bad_g * GRADIENT | bad * UPDATE


cdef inline void sgd_write(real* p, const real* g, real* v, Py_ssize_t i0, Py_ssize_t i1, real lr, real momentum,
                           real weight_decay, bint nesterov) noexcept nogil:
    """The values sgd_flags tested, stored: p over [i0, i1), and v where momentum != 0."""
    cdef Py_ssize_t i
    cdef real d, vi, pi
    if momentum == 0:
        for i in range(i0, i1):
            pi = p[i]
            p[i] = pi - lr * (g[i] + weight_decay * pi)
    else:
        for i in range(i0, i1):
            pi = p[i]
            d = g[i] + weight_decay * pi
            vi = v[i] * momentum + d
            v[i] = vi
            p[i] = pi - lr * ((d + momentum * vi) if nesterov else vi)


cdef inline real adam_step_of(real pi, real mi, real vi, real step_size, real root_bias2, real eps) noexcept nogil:
    """Adam's new parameter from the new moments."""
    if real is float:
        return pi - step_size * mi / (sqrtf(vi) / root_bias2 + eps)
    else:
        return pi - step_size * mi / (sqrt(vi) / root_bias2 + eps)


cdef inline int adam_flags(const real* p, const real* g, const real* m, const real* v, Py_ssize_t i0, Py_ssize_t i1,
                           real step_size, real root_bias2, real beta1, real beta2, real one_minus_b1,
                           real one_minus_b2, real eps, real weight_decay) noexcept nogil:
    """torch.optim.Adam (L2 weight decay) over [i0, i1), computed and tested, nothing stored.
    -> flags."""
    cdef Py_ssize_t i
    cdef real d, mi, vi, pi, gi, new, big = biggest(eps)
    cdef int bad_g = 0, bad = 0
    for i in range(i0, i1):
        pi = p[i]
        gi = g[i]
        d = gi + weight_decay * pi
        mi = m[i] * beta1 + one_minus_b1 * d
        vi = v[i] * beta2 + one_minus_b2 * d * d
        new = adam_step_of(pi, mi, vi, step_size, root_bias2, eps)
        bad_g |= not (r_abs(gi) <= big)
        bad |= (not (r_abs(new) <= big)) | (not (r_abs(mi) <= big)) | (not (vi <= big))
    return bad_g * GRADIENT | bad * UPDATE


cdef inline void adam_write(real* p, const real* g, real* m, real* v, Py_ssize_t i0, Py_ssize_t i1, real step_size,
                            real root_bias2, real beta1, real beta2, real one_minus_b1, real one_minus_b2, real eps,
                            real weight_decay) noexcept nogil:
    """The values adam_flags tested, stored: p, m and v over [i0, i1)."""
    cdef Py_ssize_t i
    cdef real d, mi, vi, pi
    for i in range(i0, i1):
        pi = p[i]
        d = g[i] + weight_decay * pi
        mi = m[i] * beta1 + one_minus_b1 * d
        vi = v[i] * beta2 + one_minus_b2 * d * d
        m[i] = mi
        v[i] = vi
        p[i] = adam_step_of(pi, mi, vi, step_size, root_bias2, eps)


# Adam's float32 passes once per instruction-set path of the activation loops (activations.pxd;
# kernels.pyx keeps `isa` in step with the path in use): on the SSE2 baseline the square
# root and the division make them 3x slower than on AVX-512 (bench/update_isa_prototype.c).
# The same expressions as adam_flags / adam_write above, and no FMA contraction on any
# path, so every path gives the baseline's bits (sqrt and division round correctly at any
# vector width).
cdef extern from *:
    """
    #include <float.h>
    #include <math.h>
    #define FASTBP_ADAM_F32(SUFFIX, ATTR, NO_CONTRACT) \\
    static ATTR int fastbp_adam_flags_f32_##SUFFIX(const float* p, const float* g, const float* m, const float* v, \\
            Py_ssize_t i0, Py_ssize_t i1, float step_size, float root_bias2, float b1, float b2, float c1, float c2, \\
            float eps, float wd) { \\
        NO_CONTRACT \\
        int bad_g = 0, bad = 0; \\
        Py_ssize_t i; \\
        for (i = i0; i < i1; i++) { \\
            float pi = p[i], gi = g[i], d = gi + wd * pi; \\
            float mi = m[i] * b1 + c1 * d, vi = v[i] * b2 + c2 * d * d; \\
            float nw = pi - step_size * mi / (sqrtf(vi) / root_bias2 + eps); \\
            bad_g |= !(fabsf(gi) <= FLT_MAX); \\
            bad |= (!(fabsf(nw) <= FLT_MAX)) | (!(fabsf(mi) <= FLT_MAX)) | (!(vi <= FLT_MAX)); \\
        } \\
        return bad_g * 1 | bad * 2; \\
    } \\
    static ATTR void fastbp_adam_write_f32_##SUFFIX(float* p, const float* g, float* m, float* v, Py_ssize_t i0, \\
            Py_ssize_t i1, float step_size, float root_bias2, float b1, float b2, float c1, float c2, float eps, \\
            float wd) { \\
        NO_CONTRACT \\
        Py_ssize_t i; \\
        for (i = i0; i < i1; i++) { \\
            float pi = p[i], d = g[i] + wd * pi; \\
            float mi = m[i] * b1 + c1 * d, vi = v[i] * b2 + c2 * d * d; \\
            m[i] = mi; \\
            v[i] = vi; \\
            p[i] = pi - step_size * mi / (sqrtf(vi) / root_bias2 + eps); \\
        } \\
    }

    FASTBP_ADAM_F32(baseline, , )

    #if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && defined(__has_attribute)
    #if __has_attribute(target) && (defined(__clang__) ? __clang_major__ >= 14 : __GNUC__ >= 6)
    #define FASTBP_UPDATE_ISA_PATHS 1
    #endif
    #endif
    #ifdef FASTBP_UPDATE_ISA_PATHS
    #ifdef __clang__
    #define FASTBP_NO_CONTRACT _Pragma("clang fp contract(off)")
    #else
    #define FASTBP_NO_CONTRACT
    #pragma GCC push_options
    #pragma GCC optimize("fp-contract=off")
    #endif
    FASTBP_ADAM_F32(avx2, __attribute__((target("avx2"))), FASTBP_NO_CONTRACT)
    FASTBP_ADAM_F32(avx512, __attribute__((target("avx512f,avx2"))), FASTBP_NO_CONTRACT)
    #ifndef __clang__
    #pragma GCC pop_options
    #endif
    #define FASTBP_ADAM_PICK(isa, name) ((isa) == 2 ? name##_avx512 : (isa) == 1 ? name##_avx2 : name##_baseline)
    #else
    #define FASTBP_ADAM_PICK(isa, name) (name##_baseline)
    #endif

    /* isa: 0 baseline, 1 AVX2, 2 AVX-512 (kernels.pyx: the activation path in use) */
    static int fastbp_adam_flags_f32(int isa, const float* p, const float* g, const float* m, const float* v,
            Py_ssize_t i0, Py_ssize_t i1, float step_size, float root_bias2, float b1, float b2, float c1, float c2,
            float eps, float wd) {
        return FASTBP_ADAM_PICK(isa, fastbp_adam_flags_f32)(p, g, m, v, i0, i1, step_size, root_bias2, b1, b2, c1,
                                                            c2, eps, wd);
    }
    static void fastbp_adam_write_f32(int isa, float* p, const float* g, float* m, float* v, Py_ssize_t i0,
            Py_ssize_t i1, float step_size, float root_bias2, float b1, float b2, float c1, float c2, float eps,
            float wd) {
        FASTBP_ADAM_PICK(isa, fastbp_adam_write_f32)(p, g, m, v, i0, i1, step_size, root_bias2, b1, b2, c1, c2, eps,
                                                     wd);
    }
    """
    int adam_flags_f32 "fastbp_adam_flags_f32"(int isa, const float* p, const float* g, const float* m,
                                               const float* v, Py_ssize_t i0, Py_ssize_t i1, float step_size,
                                               float root_bias2, float b1, float b2, float c1, float c2, float eps,
                                               float wd) noexcept nogil
    void adam_write_f32 "fastbp_adam_write_f32"(int isa, float* p, const float* g, float* m, float* v, Py_ssize_t i0,
                                                Py_ssize_t i1, float step_size, float root_bias2, float b1, float b2,
                                                float c1, float c2, float eps, float wd) noexcept nogil
