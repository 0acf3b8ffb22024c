# The optimizer updates of the Cython kernels over a range of the flat buffers (torch semantics).
#
# An update writes every new value or none (numba_cpu/optimizers.py says why and how): one
# pass writes the new values, keeps each old parameter in g (read there for the last time)
# and the old state in `undo`, and returns flags; where a flag is set the caller puts the
# old values back (undo_range) and refuses the step.
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport sqrt, sqrtf

from fastbp._kernels.cython_cpu.primitives cimport real, r_abs

cdef enum:
    GRADIENT = 1        # a gradient is NaN or inf
    UPDATE = 2          # a new parameter or state value is not finite


cdef inline real biggest(real tag) noexcept nogil:
    return FLT_MAX if real is float else DBL_MAX


cdef inline int sgd_range(real* p, real* g, real* v, real* undo, Py_ssize_t i0, Py_ssize_t i1, real lr,
                          real momentum, real weight_decay, bint nesterov) noexcept nogil:
    """torch.optim.SGD (dampening 0) over [i0, i1): old p into g, old v into undo. -> flags."""
    cdef Py_ssize_t i
    cdef real d, vi, vo, pi, gi, new, big = biggest(lr)
    cdef int bad_g = 0, bad = 0
    if momentum == 0:
        for i in range(i0, i1):
            pi = p[i]
            gi = g[i]
            new = pi - lr * (gi + weight_decay * pi)
            g[i] = pi
            p[i] = new
            bad_g |= not (r_abs(gi) <= big)
            bad |= not (r_abs(new) <= big)
    else:
        for i in range(i0, i1):
            pi = p[i]
            gi = g[i]
            vo = v[i]
            d = gi + weight_decay * pi
            vi = vo * momentum + d
            new = pi - lr * ((d + momentum * vi) if nesterov else vi)
            g[i] = pi
            undo[i] = vo
            v[i] = vi
            p[i] = new
            bad_g |= not (r_abs(gi) <= big)
            bad |= (not (r_abs(new) <= big)) | (not (r_abs(vi) <= big))
    return bad_g * GRADIENT | bad * UPDATE


cdef inline int adam_range(real* p, real* g, real* m, real* v, real* undo, Py_ssize_t n, Py_ssize_t i0,
                           Py_ssize_t i1, real step_size, real root_bias2, real beta1, real beta2,
                           real one_minus_b1, real one_minus_b2, real eps, real weight_decay) noexcept nogil:
    """torch.optim.Adam (L2 weight decay) over [i0, i1): old p into g, old m into undo[i],
    old v into undo[n + i] (n: the buffers' length). -> flags."""
    cdef Py_ssize_t i
    cdef real d, mi, vi, pi, gi, mo, vo, new, big = biggest(eps)
    cdef int bad_g = 0, bad = 0
    for i in range(i0, i1):
        pi = p[i]
        gi = g[i]
        mo = m[i]
        vo = v[i]
        d = gi + weight_decay * pi
        mi = mo * beta1 + one_minus_b1 * d
        vi = vo * beta2 + one_minus_b2 * d * d
        if real is float:
            new = pi - step_size * mi / (sqrtf(vi) / root_bias2 + eps)
        else:
            new = pi - step_size * mi / (sqrt(vi) / root_bias2 + eps)
        g[i] = pi
        undo[i] = mo
        undo[n + i] = vo
        m[i] = mi
        v[i] = vi
        p[i] = new
        bad_g |= not (r_abs(gi) <= big)
        bad |= (not (r_abs(new) <= big)) | (not (r_abs(mi) <= big)) | (not (vi <= big))
    return bad_g * GRADIENT | bad * UPDATE


cdef inline void undo_range(real* p, const real* g, real* s1, real* s2, const real* undo, Py_ssize_t n,
                            Py_ssize_t i0, Py_ssize_t i1) noexcept nogil:
    """Put back what an update pass over [i0, i1) changed: p from g, s1 from undo[i], s2 from
    undo[n + i] (s1, s2 NULL where there is no such state)."""
    cdef Py_ssize_t i
    for i in range(i0, i1):
        p[i] = g[i]
    if s1 != NULL:
        for i in range(i0, i1):
            s1[i] = undo[i]
    if s2 != NULL:
        for i in range(i0, i1):
            s2[i] = undo[n + i]
