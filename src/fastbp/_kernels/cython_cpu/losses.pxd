# The losses of the Cython kernels (torch.nn.functional semantics), with dLoss/d out.
from libc.math cimport log
from libc.string cimport memset

from fastbp._kernels.cython_cpu.activations cimport sigmoid
from fastbp._kernels.cython_cpu.primitives cimport COLUMN_BLOCK, real, r_abs, r_exp, r_log1p

# loss and reduction codes (fastbp.losses; checked against it at import)
cdef enum:
    MSE = 0
    CROSS_ENTROPY = 1
    BCE = 2
    POISSON = 3
    MEAN = 0
    SUM = 1


cdef inline double loss_and_gradient(const real* out, const real* Y, const Py_ssize_t* labels, const real* SW,
                                     real* grad, Py_ssize_t m, Py_ssize_t n, int loss, int reduction) noexcept nogil:
    """The loss (torch semantics) and dLoss/dOut into grad; one pass (two per row for
    cross-entropy). SW: per-row sample weights, or NULL for none (fastbp.losses). Sums in double."""
    cdef Py_ssize_t i, j, block, jb, je
    cdef double total = 0.0, row_sum, count, w_sum = 0.0
    cdef double acc[COLUMN_BLOCK]
    cdef real x, t, diff, mx, log_sum, log_p, scale, w = 1, rate
    cdef const real* o
    cdef const real* yr
    cdef real* g
    if SW != NULL:
        for i in range(m):
            w_sum += SW[i]
    if loss == CROSS_ENTROPY:
        count = m if SW == NULL else (w_sum if w_sum > 0 else 1.0)    # all-zero weights: loss and gradient 0
        for i in range(m):
            if SW != NULL:
                w = SW[i]
            o = out + i * n
            g = grad + i * n
            mx = o[0]
            for j in range(1, n):
                if o[j] > mx:
                    mx = o[j]
            row_sum = 0.0
            for j in range(n):
                row_sum += r_exp(o[j] - mx)
            log_sum = <real>log(row_sum)
            for j in range(n):
                g[j] = r_exp((o[j] - mx) - log_sum)
            log_p = (o[labels[i]] - mx) - log_sum
            total -= w * log_p
            g[labels[i]] -= 1
            if SW != NULL:
                for j in range(n):
                    g[j] = g[j] * w
        if reduction == MEAN:
            for i in range(m * n):
                grad[i] = grad[i] / <real>count
            total /= count
        return total
    # elementwise losses: summed down the columns, a block of float64 accumulators at a
    # time, so the loop vectorizes without reassociating (bench/results/cython-reductions.md);
    # the mean's division in the same pass
    count = m * n if SW == NULL else (w_sum * n if w_sum > 0 else 1.0)
    scale = <real>(count if reduction == MEAN else 1)
    for block in range((n + COLUMN_BLOCK - 1) // COLUMN_BLOCK):
        jb = block * COLUMN_BLOCK
        je = min(n, jb + COLUMN_BLOCK)
        memset(acc, 0, (je - jb) * sizeof(double))
        for i in range(m):
            if SW != NULL:
                w = SW[i]
            o = out + i * n
            yr = Y + i * n
            g = grad + i * n
            if loss == MSE:
                for j in range(jb, je):
                    diff = o[j] - yr[j]
                    acc[j - jb] += w * (<double>diff * diff)
                    g[j] = (<real>2 * diff * w) / scale      # in real: 2 * diff overflows as the reference's does
            elif loss == BCE:   # on logits
                for j in range(jb, je):
                    x = o[j]
                    acc[j - jb] += w * <double>((x if x > 0 else 0) - x * yr[j] + r_log1p(r_exp(-r_abs(x))))
                    g[j] = ((sigmoid(x) - yr[j]) * w) / scale
            else:   # POISSON on log-rates: half the Poisson deviance
                for j in range(jb, je):
                    x = o[j]
                    t = yr[j]
                    rate = r_exp(x)
                    acc[j - jb] += w * <double>(rate - t * x + (t * <real>log(t) if t > 0 else 0) - t)
                    g[j] = ((rate - t) * w) / scale
        for j in range(je - jb):
            total += acc[j]
    return total / count if reduction == MEAN else total
