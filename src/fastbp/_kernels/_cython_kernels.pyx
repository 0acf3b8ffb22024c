# Cython CPU kernels. Inputs are checked at the Python boundary (fastbp.validation),
# so bounds checks are off here.
cimport cython

ctypedef fused real:
    float
    double


def bias_gradient(const real[:, ::1] delta, real[::1] db):
    """db[j] = sum_i delta[i, j]: the bias gradient, one pass over delta in row order."""
    cdef Py_ssize_t i, j, n = delta.shape[0], m = delta.shape[1]
    with nogil:
        for j in range(m):
            db[j] = 0
        for i in range(n):
            for j in range(m):
                db[j] += delta[i, j]
