# The optimizer updates of the Cython kernels over a range of the flat buffers (torch semantics).
from libc.math cimport sqrt, sqrtf

from fastbp._kernels.cython_cpu.primitives cimport real


cdef inline void sgd_range(real* p, const real* g, real* v, Py_ssize_t i0, Py_ssize_t i1, real lr,
                    real momentum, real weight_decay, bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef real d, vi
    if momentum == 0 and weight_decay == 0:
        for i in range(i0, i1):
            p[i] = p[i] - lr * g[i]
    elif momentum == 0:
        for i in range(i0, i1):
            d = g[i] + weight_decay * p[i]
            p[i] = p[i] - lr * d
    elif nesterov:
        for i in range(i0, i1):
            d = g[i] + weight_decay * p[i]
            vi = v[i] * momentum + d
            v[i] = vi
            p[i] = p[i] - lr * (d + momentum * vi)
    else:
        for i in range(i0, i1):
            d = g[i] + weight_decay * p[i]
            vi = v[i] * momentum + d
            v[i] = vi
            p[i] = p[i] - lr * vi


cdef inline void adam_range(real* p, const real* g, real* m, real* v, Py_ssize_t i0, Py_ssize_t i1,
                     real step_size, real root_bias2, real beta1, real beta2, real one_minus_b1,
                     real one_minus_b2, real eps, real weight_decay) noexcept nogil:
    cdef Py_ssize_t i
    cdef real d, mi, vi
    for i in range(i0, i1):
        d = g[i] + weight_decay * p[i]
        mi = m[i] * beta1 + one_minus_b1 * d
        vi = v[i] * beta2 + one_minus_b2 * d * d
        m[i] = mi
        v[i] = vi
        if real is float:
            p[i] = p[i] - step_size * mi / (sqrtf(vi) / root_bias2 + eps)
        else:
            p[i] = p[i] - step_size * mi / (sqrt(vi) / root_bias2 + eps)
