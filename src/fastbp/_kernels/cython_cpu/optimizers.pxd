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
