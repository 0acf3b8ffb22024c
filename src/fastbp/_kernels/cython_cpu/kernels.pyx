# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython CPU kernels: BLAS GEMMs with the elementwise work fused around them.

    forward     Z = b (rows), Z = A_prev @ W + Z  (GEMM, beta 1)   then one pass: A = f(Z)
                (float32 tanh: primitives.pxd's vectorized, libm-accurate form)
    output      one pass: loss and dLoss/dOut;   then the same f'/db pass
    backward    D[l-1] = D[l] @ W.T     (GEMM)   then one pass: D *= f'(Z), db = D.sum(0)
                (every layer's delta first, with the weights as they were), then
                dW = A_prev.T @ D[l]    (GEMM)
    update      one pass over the flat parameter buffer (SGD, momentum, Nesterov, Adam);
                plain SGD instead updates W inside the weight-gradient GEMM itself:
                W = (1 - lr*wd) W - lr A_prev.T @ D[l] (beta, alpha), see sgd_in_gemm

`network_step` runs all of it for a whole network in one call, over the flat parameter and
gradient buffers and a workspace the caller allocates once (see cython_cpu.py for its layout).
Arguments are checked at the Python boundary (fastbp.validation, cython_cpu.py): nothing
here checks shapes. The elementwise passes split columns over OpenMP threads when the
extension was built with OpenMP and the pass is big enough (`parallel_min`).
"""
from libc.math cimport sqrt, sqrtf, log, isfinite
from libc.float cimport FLT_MAX, DBL_MAX
from cython.parallel cimport prange
cimport numpy as cnp

from fastbp._kernels.cython_cpu.activations cimport (
    activate_cols, activation_codes, derivative_from_output, sigmoid, times_derivative_cols, IDENTITY,
    N_ACTIVATIONS)
from fastbp._kernels.cython_cpu.blas cimport sgemm_rm, dgemm_rm
from fastbp._kernels.cython_cpu.primitives cimport real, r_abs, r_exp, r_log1p, COLUMN_BLOCK

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTBP_OPENMP 1
    static int fastbp_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define FASTBP_OPENMP 0
    static int fastbp_max_threads(void) { return 1; }
    #endif
    """
    const int FASTBP_OPENMP
    int fastbp_max_threads() noexcept nogil

# loss and reduction codes (fastbp.losses)
cdef enum:
    MSE = 0
    CROSS_ENTROPY = 1
    BCE = 2
    MEAN = 0
    SUM = 1

# network_step modes (DELTAS: internal, the backward pass up to the weight gradients)
cdef enum:
    FORWARD = 0
    LOSS = 1
    GRADIENT = 2
    TRAIN = 3
    DELTAS = 4

# network_step optimizers
cdef enum:
    NO_UPDATE = 0
    OPT_SGD = 1
    OPT_ADAM = 2

cdef enum:
    N_PLAN = 8      # per layer in a plan: n_in, n_out, activation, W at, b at, Z at, A at, delta at
PLAN_FIELDS = N_PLAN

# Elements; smaller passes run on one thread. OpenMP is compiled in, but measured it did not
# pay for these passes: on an idle machine they are a few percent of a step (the GEMMs
# dominate), and where the cores are shared (the 2-core CI/dev machine under load) every
# parallel region waits at its closing barrier for a descheduled thread: mnist-b256 steps
# went from ~30 ms to ~300-900 ms with two OpenMP threads at load ~13 (OpenBLAS alone: ~30 ms).
# So by default only passes over >= 2**24 elements (16M parameters) split; set_parallel_min()
# or FASTBP_CYTHON_PARALLEL_MIN changes it.
cdef Py_ssize_t parallel_min = 1 << 24


def _parallel_min_from_environment():
    import os
    global parallel_min
    value = os.environ.get("FASTBP_CYTHON_PARALLEL_MIN", "").strip()
    if value.isdigit():
        parallel_min = int(value)


_parallel_min_from_environment()


def codes():
    """The codes compiled in, for the import-time check against fastbp.activations/losses."""
    return dict(activations=activation_codes(),
                losses=dict(mse=MSE, cross_entropy=CROSS_ENTROPY, bce=BCE),
                reductions=dict(mean=MEAN, sum=SUM),
                modes=dict(forward=FORWARD, loss=LOSS, gradient=GRADIENT, train=TRAIN),
                optimizers=dict(none=NO_UPDATE, sgd=OPT_SGD, adam=OPT_ADAM))


def openmp():
    """(built with OpenMP, threads an elementwise pass may use)."""
    return bool(FASTBP_OPENMP), fastbp_max_threads()


def get_parallel_min():
    """Passes over fewer elements than this run on one thread."""
    return parallel_min


def set_parallel_min(Py_ssize_t n):
    """Passes over fewer than n elements run on one thread; -> the previous value."""
    global parallel_min
    old, parallel_min = parallel_min, n
    return old


def keeps_z(int code):
    """Whether a layer with this activation needs Z kept apart from A for its derivative."""
    return not derivative_from_output(code)


cdef inline int pass_threads(Py_ssize_t work) noexcept nogil:
    if not FASTBP_OPENMP or work < parallel_min:
        return 1
    return fastbp_max_threads()


cdef inline void gemm(char ta, char tb, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, real alpha,
                      const real* A, Py_ssize_t lda, const real* B, Py_ssize_t ldb, real beta,
                      real* C, Py_ssize_t ldc) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C, row-major (beta 0: C only written)."""
    if real is float:
        sgemm_rm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
    else:
        dgemm_rm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)


cdef void linear_into(const real* X, const real* W, const real* b, real* Z, Py_ssize_t m, Py_ssize_t k,
                      Py_ssize_t n) noexcept nogil:
    """Z = X @ W + b: Z filled with b's rows, then one GEMM with beta 1. That spares BLAS's
    zeroing pass over Z (beta 0) and a bias pass after it; the sum is the same rounding."""
    cdef Py_ssize_t i, j
    cdef real* zr
    for i in range(m):
        zr = Z + i * n
        for j in range(n):
            zr[j] = b[j]
    gemm(c'N', c'N', m, n, k, 1, X, k, W, n, 1, Z, n)


# ---------------------------------------------------------------- elementwise passes

cdef void activation_cols(const real* Z, real* A, Py_ssize_t m, Py_ssize_t n,
                          Py_ssize_t j0, Py_ssize_t j1, int code) noexcept nogil:
    """Columns j0:j1 of A = f(Z). A may be Z itself."""
    cdef Py_ssize_t i
    for i in range(m):
        activate_cols(code, Z + i * n, A + i * n, j0, j1)


cdef void derivative_cols(real* D, const real* Z, const real* A, real* db, Py_ssize_t m, Py_ssize_t n,
                          Py_ssize_t j0, Py_ssize_t j1, int code) noexcept nogil:
    """Columns j0:j1 of D *= f'(Z) and, when db is given, db = D.sum(axis=0) in the same pass,
    summed in float64 (a float32 running sum over a large batch drifts: ~0.4% over 1e6 rows)."""
    cdef Py_ssize_t i, j, jb, je
    cdef double acc[COLUMN_BLOCK]
    cdef real* dr
    jb = j0
    while jb < j1:
        je = min(j1, jb + COLUMN_BLOCK)
        for j in range(je - jb):
            acc[j] = 0
        for i in range(m):
            dr = D + i * n
            if code != IDENTITY:
                times_derivative_cols(code, dr, Z + i * n, A + i * n, jb, je)
            if db != NULL:
                for j in range(jb, je):
                    acc[j - jb] += dr[j]
        if db != NULL:
            for j in range(jb, je):
                db[j] = <real>acc[j - jb]
        jb = je


cdef void column_sums(const real* D, real* out, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """out = D.sum(axis=0), summed in float64."""
    cdef Py_ssize_t i, j, jb, je
    cdef double acc[COLUMN_BLOCK]
    jb = 0
    while jb < n:
        je = min(n, jb + COLUMN_BLOCK)
        for j in range(je - jb):
            acc[j] = 0
        for i in range(m):
            for j in range(jb, je):
                acc[j - jb] += D[i * n + j]
        for j in range(jb, je):
            out[j] = <real>acc[j - jb]
        jb = je


cdef inline Py_ssize_t column_width(Py_ssize_t n, int nt) noexcept nogil:
    return ((n + nt - 1) // nt + 15) // 16 * 16


cdef void forward_epilogue(const real* Z, real* A, Py_ssize_t m, Py_ssize_t n, int code) noexcept nogil:
    cdef int nt = pass_threads(m * n)
    cdef Py_ssize_t c, width, j0, j1
    if code == IDENTITY and A == Z:
        return
    if nt > 1 and n >= 32 * nt:
        width = column_width(n, nt)
        for c in prange(nt, num_threads=nt, schedule='static'):
            j0 = c * width
            j1 = min(n, j0 + width)
            if j0 < j1:
                activation_cols(Z, A, m, n, j0, j1, code)
    else:
        activation_cols(Z, A, m, n, 0, n, code)


cdef void backward_epilogue(real* D, const real* Z, const real* A, real* db, Py_ssize_t m,
                            Py_ssize_t n, int code) noexcept nogil:
    cdef int nt = pass_threads(m * n)
    cdef Py_ssize_t c, width, j0, j1
    if code == IDENTITY and db == NULL:
        return
    if nt > 1 and n >= 32 * nt:
        width = column_width(n, nt)
        for c in prange(nt, num_threads=nt, schedule='static'):
            j0 = c * width
            j1 = min(n, j0 + width)
            if j0 < j1:
                derivative_cols(D, Z, A, db, m, n, j0, j1, code)
    else:
        derivative_cols(D, Z, A, db, m, n, 0, n, code)


cdef double loss_and_gradient(const real* out, const real* Y, const Py_ssize_t* labels, real* grad,
                              Py_ssize_t m, Py_ssize_t n, int loss, int reduction) noexcept nogil:
    """The loss (torch semantics) and dLoss/dOut into grad; one pass (two per row for
    cross-entropy). Sums in double."""
    cdef Py_ssize_t i, j, jb, je, count
    cdef double total = 0.0, row_sum
    cdef double acc[COLUMN_BLOCK]
    cdef real x, diff, mx, log_sum, log_p, scale
    cdef const real* o
    cdef const real* yr
    cdef real* g
    if loss == CROSS_ENTROPY:
        count = m
        for i in range(m):
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
            total -= log_p
            g[labels[i]] -= 1
    else:
        # elementwise losses: summed down the columns, a block of float64 accumulators at a
        # time, so the loop vectorizes without reassociating (one scalar chain of double
        # additions took ~0.9 ms of a wide-1024 step); the mean's division in the same pass
        count = m * n
        scale = <real>(count if reduction == MEAN else 1)
        jb = 0
        while jb < n:
            je = min(n, jb + COLUMN_BLOCK)
            for j in range(je - jb):
                acc[j] = 0
            for i in range(m):
                o = out + i * n
                yr = Y + i * n
                g = grad + i * n
                if loss == MSE:
                    for j in range(jb, je):
                        diff = o[j] - yr[j]
                        acc[j - jb] += <double>diff * diff
                        g[j] = (<real>2 * diff) / scale      # in real: 2 * diff overflows as the reference's does
                else:   # BCE on logits
                    for j in range(jb, je):
                        x = o[j]
                        acc[j - jb] += <double>((x if x > 0 else 0) - x * yr[j] + r_log1p(r_exp(-r_abs(x))))
                        g[j] = (sigmoid(x) - yr[j]) / scale
            for j in range(je - jb):
                total += acc[j]
            jb = je
        return total / count if reduction == MEAN else total
    if reduction == MEAN:
        for i in range(m * n):
            grad[i] = grad[i] / <real>count
        total /= count
    return total


cdef bint finite_all(const real* a, Py_ssize_t n) noexcept nogil:
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


# ---------------------------------------------------------------- optimizer updates

cdef void sgd_range(real* p, const real* g, real* v, Py_ssize_t i0, Py_ssize_t i1, real lr,
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


cdef void adam_range(real* p, const real* g, real* m, real* v, Py_ssize_t i0, Py_ssize_t i1,
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


cdef void sgd_flat(real* p, const real* g, real* v, Py_ssize_t n, double lr, double momentum,
                   double weight_decay, bint nesterov) noexcept nogil:
    cdef int nt = pass_threads(n)
    cdef Py_ssize_t c, width, i0, i1
    if nt > 1:
        width = column_width(n, nt)
        for c in prange(nt, num_threads=nt, schedule='static'):
            i0 = c * width
            i1 = min(n, i0 + width)
            if i0 < i1:
                sgd_range(p, g, v, i0, i1, <real>lr, <real>momentum, <real>weight_decay, nesterov)
    else:
        sgd_range(p, g, v, 0, n, <real>lr, <real>momentum, <real>weight_decay, nesterov)


cdef void adam_flat(real* p, const real* g, real* m, real* v, Py_ssize_t n, long step, double lr,
                    double beta1, double beta2, double eps, double weight_decay) noexcept nogil:
    # torch / reference.py: p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    cdef real step_size = <real>(lr / (1 - beta1 ** step))
    cdef real root_bias2 = <real>sqrt(1 - beta2 ** step)
    cdef int nt = pass_threads(n)
    cdef Py_ssize_t c, width, i0, i1
    if nt > 1:
        width = column_width(n, nt)
        for c in prange(nt, num_threads=nt, schedule='static'):
            i0 = c * width
            i1 = min(n, i0 + width)
            if i0 < i1:
                adam_range(p, g, m, v, i0, i1, step_size, root_bias2, <real>beta1, <real>beta2,
                           <real>(1 - beta1), <real>(1 - beta2), <real>eps, <real>weight_decay)
    else:
        adam_range(p, g, m, v, 0, n, step_size, root_bias2, <real>beta1, <real>beta2,
                   <real>(1 - beta1), <real>(1 - beta2), <real>eps, <real>weight_decay)


# ---------------------------------------------------------------- the whole network

cdef double network_pass(int mode, real* P, real* G, const real* X, const real* Y,
                         const Py_ssize_t* labels, real* WS, const Py_ssize_t* plan, int L,
                         Py_ssize_t m, int loss, int reduction) noexcept nogil:
    """Forward (mode FORWARD), + loss (LOSS), + every layer's delta into the workspace and
    the bias gradients into G (DELTAS), + the weight gradients into G (GRADIENT)."""
    cdef const Py_ssize_t* q
    cdef const real* A_prev = X
    cdef Py_ssize_t n_in, n_out
    cdef int l
    cdef double value = 0.0
    for l in range(L):
        q = plan + l * N_PLAN
        n_in, n_out = q[0], q[1]
        linear_into(A_prev, P + q[3], P + q[4], WS + q[5], m, n_in, n_out)
        forward_epilogue(WS + q[5], WS + q[6], m, n_out, <int>q[2])
        A_prev = WS + q[6]
    if mode == FORWARD:
        return value
    q = plan + (L - 1) * N_PLAN
    value = loss_and_gradient(A_prev, Y, labels, WS + q[7], m, q[1], loss, reduction)
    if mode == LOSS:
        return value
    backward_epilogue(WS + q[7], WS + q[5], WS + q[6], G + q[4], m, q[1], <int>q[2])
    for l in range(L - 1, 0, -1):       # deltas first: the weights are still the step's own
        q = plan + l * N_PLAN
        n_in, n_out = q[0], q[1]
        gemm(c'N', c'T', m, n_in, n_out, 1, WS + q[7], n_out, P + q[3], n_out, 0, WS + (q - N_PLAN)[7], n_in)
        q = q - N_PLAN
        backward_epilogue(WS + q[7], WS + q[5], WS + q[6], G + q[4], m, n_in, <int>q[2])
    if mode == GRADIENT:
        weight_gradients(G, X, WS, plan, L, m)
    return value


cdef void weight_gradients(real* G, const real* X, const real* WS, const Py_ssize_t* plan, int L,
                           Py_ssize_t m) noexcept nogil:
    """dW[l] = A_prev.T @ delta[l] into G, every layer (after a DELTAS pass)."""
    cdef const Py_ssize_t* q
    cdef const real* A_prev
    cdef int l
    for l in range(L):
        q = plan + l * N_PLAN
        A_prev = X if l == 0 else WS + (q - N_PLAN)[6]
        gemm(c'T', c'N', q[0], q[1], m, 1, A_prev, q[0], WS + q[7], q[1], 0, G + q[3], q[1])


cdef double abs_sum(const real* a, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """sum |a| over an (m, n) matrix, in double: finite exactly when every element is (float32
    data cannot overflow it; for float64 an overflow reads as 'too large to bound', which is
    what callers want). Summed down the columns, a block of per-column accumulators at a
    time, so the inner loop vectorizes without reassociating (one scalar chain of double
    additions was ~0.3 ms of a 2 ms mnist-b256 step)."""
    cdef Py_ssize_t i, j, jb, je
    cdef double acc[COLUMN_BLOCK]
    cdef double total = 0
    cdef const real* row
    jb = 0
    while jb < n:
        je = min(n, jb + COLUMN_BLOCK)
        for j in range(je - jb):
            acc[j] = 0
        for i in range(m):
            row = a + i * n + jb
            for j in range(je - jb):
                acc[j] += r_abs(row[j])
        for j in range(je - jb):
            total += acc[j]
        jb = je
    return total


cdef bint products_bounded(double x_abs, real* WS, const Py_ssize_t* plan, int L, Py_ssize_t m) noexcept nogil:
    """Every weight-gradient product A_prev.T @ delta, and each partial sum of it, is finite:
    |sum_i a_ik d_ij| <= sum|A_prev| * sum|delta| stays under half the dtype's largest value
    (NaN or inf anywhere fails the test too). x_abs: abs_sum of X."""
    cdef const Py_ssize_t* q
    cdef int l
    cdef double limit = (FLT_MAX if real is float else DBL_MAX) / 2
    cdef double a_abs = x_abs
    for l in range(L):
        q = plan + l * N_PLAN
        if not a_abs * abs_sum(WS + q[7], m, q[1]) <= limit:
            return False
        if l + 1 < L:
            a_abs = abs_sum(WS + q[6], m, q[1])
    return True


cdef bint sgd_in_gemm(real* P, real* G, const real* X, double x_abs, real* WS, const Py_ssize_t* plan,
                      int L, Py_ssize_t m, Py_ssize_t n, double lr, double weight_decay) noexcept nogil:
    """Plain SGD (momentum 0) after a DELTAS pass: W = (1 - lr*wd) W - lr A_prev.T @ delta as
    one GEMM per layer (alpha, beta), b -= lr (db + wd b) from the bias gradients in G. The
    weight gradient is never written, scanned or re-read: on wide-1024 the stored-gradient
    path spent ~1.6 ms of 28 on those passes. Nothing is written unless products_bounded
    shows every product finite; else the stored-gradient path (GEMMs into G, scan, update).
    -> False (nothing updated) on a non-finite gradient."""
    cdef const Py_ssize_t* q
    cdef const real* A_prev
    cdef int l
    cdef real lr_ = <real>lr, wd = <real>weight_decay
    if not products_bounded(x_abs, WS, plan, L, m):
        weight_gradients(G, X, WS, plan, L, m)
        if not finite_all(G, n):
            return False
        sgd_flat(P, G, G, n, lr, 0.0, weight_decay, False)
        return True
    for l in range(L):
        q = plan + l * N_PLAN
        A_prev = X if l == 0 else WS + (q - N_PLAN)[6]
        sgd_range(P + q[4], G + q[4], G, 0, q[1], lr_, 0, wd, False)     # the bias, from db in G
        gemm(c'T', c'N', q[0], q[1], m, -lr_, A_prev, q[0], WS + q[7], q[1], 1 - lr_ * wd, P + q[3], q[1])
    return True


# ---------------------------------------------------------------- shape checks
# The extension's functions are importable by anyone, so each checks the shapes it relies on
# (O(1), or O(layers)/O(batch) for the network step) and raises ValueError rather than
# reading or writing outside an array. fastbp's own callers always pass valid shapes.

cdef int require(bint ok, str message) except -1:
    if not ok:
        raise ValueError(message)
    return 0

# (the checks on the per-step path build their messages only when they fail: an f-string
# argument is formatted on every call, and a 2-2-2 step spent ~1 us formatting them)

cdef int check_matrix(Py_ssize_t got_rows, Py_ssize_t got_cols, Py_ssize_t rows, Py_ssize_t cols,
                      str name) except -1:
    if got_rows != rows or got_cols != cols:
        raise ValueError(f"{name} must have shape ({rows}, {cols}); got ({got_rows}, {got_cols})")
    return 0


cdef int check_label_values(const Py_ssize_t* labels, Py_ssize_t m, Py_ssize_t n_out) except -1:
    cdef Py_ssize_t i
    for i in range(m):
        if not 0 <= labels[i] < n_out:
            raise ValueError(f"labels must lie in [0, {n_out}); got {labels[i]}")
    return 0


cdef int check_labels(const Py_ssize_t[::1] labels, Py_ssize_t m, Py_ssize_t n_out) except -1:
    if labels.shape[0] != m:
        raise ValueError(f"labels must have shape ({m},); got ({labels.shape[0]},)")
    return check_label_values(&labels[0], m, n_out)


cdef int check_plan(const Py_ssize_t* plan, Py_ssize_t plan_len, Py_ssize_t n_params, Py_ssize_t n_ws,
                    Py_ssize_t m, Py_ssize_t n_features) except -1:
    """Every layer's pieces lie inside params / the workspace for a batch of m rows."""
    cdef Py_ssize_t l, k, n_in, n_out, expected_in = n_features
    cdef const Py_ssize_t* q
    if plan_len == 0 or plan_len % N_PLAN != 0:
        raise ValueError(f"plan must hold {N_PLAN} entries per layer; got {plan_len}")
    if m <= 0:
        raise ValueError("X must have at least one row")
    for l in range(plan_len // N_PLAN):
        q = plan + l * N_PLAN
        n_in, n_out = q[0], q[1]
        if n_in != expected_in or n_out <= 0:
            raise ValueError(f"plan layer {l}: sizes ({n_in}, {n_out}) do not chain")
        if not 0 <= q[2] < N_ACTIVATIONS:
            raise ValueError(f"plan layer {l}: unknown activation code")
        if not (0 <= q[3] and q[3] + n_in * n_out <= n_params and 0 <= q[4] and q[4] + n_out <= n_params):
            raise ValueError(f"plan layer {l}: weights/bias outside the parameter buffer")
        for k in range(5, 8):
            if not (0 <= q[k] and q[k] + m * n_out <= n_ws):
                raise ValueError(f"plan layer {l}: Z/A/delta outside the workspace for {m} rows")
        expected_in = n_out
    return 0


# The network step's arrays are checked through NumPy's C API (type, dtype, dimensions,
# C-contiguous, aligned, writeable): typed memoryview arguments cost ~0.1-0.4 us each to
# acquire, most of a 2-2-2 step when there were eight of them.

cdef char* array_data(object a, int typenum, int ndim, bint writable, str name) except NULL:
    """The data of a C-contiguous, aligned (and, if `writable`, writeable) ndarray of this
    dtype and number of dimensions, with at least one element; else TypeError/ValueError."""
    cdef cnp.ndarray arr
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy array; got {type(a).__name__}")
    arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise TypeError(f"{name} must be {cnp.PyArray_DescrFromType(typenum)}; got {a.dtype}")
    if cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {a.shape}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr)):
        raise ValueError(f"{name} must be C-contiguous and aligned")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writeable")
    if cnp.PyArray_SIZE(arr) == 0:
        raise ValueError(f"{name} must not be empty; got shape {a.shape}")
    return <char*>cnp.PyArray_DATA(arr)


cdef inline Py_ssize_t dim(object a, int i) noexcept:
    return cnp.PyArray_DIM(<cnp.ndarray>a, i)


cdef object network_step_impl(real tag, int mode, object params, object grads, object X, object y,
                              object ws, object plan, int loss,
                              int reduction, int optimizer, object s1, object s2, long step, double lr,
                              double h1, double h2, double h3, double h4, bint check_inputs):
    """network_step_f32/_f64 (`tag` only selects the dtype)."""
    cdef int typenum = cnp.NPY_FLOAT32 if real is float else cnp.NPY_FLOAT64
    cdef real* P = <real*>array_data(params, typenum, 1, True, "params")
    cdef real* G = <real*>array_data(grads, typenum, 1, True, "grads")
    cdef const real* Xp = <const real*>array_data(X, typenum, 2, False, "X")
    cdef real* WS = <real*>array_data(ws, typenum, 1, True, "ws")
    cdef const Py_ssize_t* PL = <const Py_ssize_t*>array_data(plan, cnp.NPY_INTP, 1, False, "plan")
    cdef real* S1 = P
    cdef real* S2 = P
    cdef const real* y_ptr = NULL
    cdef const Py_ssize_t* label_ptr = NULL
    cdef Py_ssize_t plan_len = dim(plan, 0)
    cdef int L = plan_len // N_PLAN
    cdef Py_ssize_t m = dim(X, 0), n = dim(params, 0)
    cdef double value
    cdef double x_abs = -1      # sum|X| once computed
    cdef bint finite = True
    cdef Py_ssize_t n_out
    if not FORWARD <= mode <= TRAIN:
        raise ValueError(f"unknown mode {mode}")
    check_plan(PL, plan_len, n, dim(ws, 0), m, dim(X, 1))
    n_out = PL[plan_len - N_PLAN + 1]
    if dim(grads, 0) != n:
        raise ValueError(f"grads must have {n} entries; got {dim(grads, 0)}")
    if mode == TRAIN and optimizer != NO_UPDATE:
        S1 = <real*>array_data(s1, typenum, 1, True, "s1")
        S2 = <real*>array_data(s2, typenum, 1, True, "s2")
        if dim(s1, 0) != n or dim(s2, 0) != n:
            raise ValueError(f"optimizer state must have {n} entries")
    if mode != FORWARD:
        require(MSE <= loss <= BCE and MEAN <= reduction <= SUM, "unknown loss or reduction code")
        if loss == CROSS_ENTROPY:
            label_ptr = <const Py_ssize_t*>array_data(y, cnp.NPY_INTP, 1, False, "labels")
            if dim(y, 0) != m:
                raise ValueError(f"labels must have shape ({m},); got ({dim(y, 0)},)")
            check_label_values(label_ptr, m, n_out)
        else:
            y_ptr = <const real*>array_data(y, typenum, 2, False, "y")
            check_matrix(dim(y, 0), dim(y, 1), m, n_out, "y")
    if check_inputs:       # the model boundary left the NaN/inf pass to this call (Ops.checks_finite)
        # sum|X|: the NaN/inf check (finite exactly when X is, for float32) and the first factor
        # of sgd_in_gemm's bound in one pass; only an overflowing float64 sum rescans
        x_abs = abs_sum(Xp, m, dim(X, 1))
        if not isfinite(x_abs) and not finite_all(Xp, m * dim(X, 1)):
            raise ValueError("X contains NaN or inf")
        if y_ptr != NULL and not finite_all(y_ptr, m * n_out):
            raise ValueError("y contains NaN or inf")
    with nogil:
        if mode == TRAIN and optimizer == OPT_SGD and h1 == 0:
            value = network_pass(DELTAS, P, G, Xp, y_ptr, label_ptr, WS, PL, L, m, loss, reduction)
            if x_abs < 0:
                x_abs = abs_sum(Xp, m, PL[0])
            finite = isfinite(value) and sgd_in_gemm(P, G, Xp, x_abs, WS, PL, L, m, n, lr, h2)
        else:
            value = network_pass(GRADIENT if mode == TRAIN else mode, P, G, Xp, y_ptr, label_ptr, WS, PL, L,
                                 m, loss, reduction)
            if mode == TRAIN:
                finite = isfinite(value) and finite_all(G, n)
                if finite and optimizer == OPT_SGD:
                    sgd_flat(P, G, S1, n, lr, h1, h2, h3 != 0)
                elif finite and optimizer == OPT_ADAM:
                    adam_flat(P, G, S1, S2, n, step, lr, h1, h2, h3, h4)
    if not finite:
        raise FloatingPointError(f"non-finite loss ({value}) or gradient; parameters left unchanged")
    return value


def network_step_f32(int mode, params, grads, X, y, ws, plan, int loss, int reduction, int optimizer, s1, s2, long step, double lr, double h1,
                     double h2, double h3, double h4, bint check_inputs=False):
    """One call per step: mode forward / loss / gradient / train over a whole float32 network
    (params, grads, ws, s1, s2: float32 1-D; X float32 (batch, n_in); y float32 (batch, n_out),
    or np.intp labels (batch,) for cross_entropy, ignored in forward mode; plan: np.intp).
    Optimizer SGD: h1..h3 = momentum, weight_decay, nesterov; Adam: beta1, beta2, eps,
    weight_decay. A non-finite loss or gradient raises FloatingPointError before any update;
    check_inputs: NaN/inf in X or y raises ValueError before anything is written."""
    return network_step_impl(<float>0, mode, params, grads, X, y, ws, plan, loss, reduction,
                             optimizer, s1, s2, step, lr, h1, h2, h3, h4, check_inputs)


def network_step_f64(int mode, params, grads, X, y, ws, plan, int loss, int reduction, int optimizer, s1, s2, long step, double lr, double h1,
                     double h2, double h3, double h4, bint check_inputs=False):
    """network_step_f32 for float64."""
    return network_step_impl(<double>0, mode, params, grads, X, y, ws, plan, loss, reduction,
                             optimizer, s1, s2, step, lr, h1, h2, h3, h4, check_inputs)


# ---------------------------------------------------------------- the public kernels

def linear_forward(const real[:, ::1] X, const real[:, ::1] W, const real[::1] b,
                   real[:, ::1] Z, real[:, ::1] A, int code):
    """Z = X @ W + b, A = f(Z), into Z and A."""
    cdef Py_ssize_t m = X.shape[0], k = X.shape[1], n = W.shape[1]
    require(m > 0 and k > 0 and n > 0, "X and W must not be empty")
    check_matrix(W.shape[0], W.shape[1], k, n, "W")
    require(b.shape[0] == n, f"b must have shape ({n},); got ({b.shape[0]},)")
    check_matrix(Z.shape[0], Z.shape[1], m, n, "Z")
    check_matrix(A.shape[0], A.shape[1], m, n, "A")
    require(0 <= code < N_ACTIVATIONS, f"unknown activation code {code}")
    with nogil:
        linear_into(&X[0, 0], &W[0, 0], &b[0], &Z[0, 0], m, k, n)
        forward_epilogue(&Z[0, 0], &A[0, 0], m, n, code)


def activation_backward(real[:, ::1] D, const real[:, ::1] Z, const real[:, ::1] A, int code):
    """D *= f'(Z), in place."""
    require(D.shape[0] > 0 and D.shape[1] > 0, "D must not be empty")
    check_matrix(Z.shape[0], Z.shape[1], D.shape[0], D.shape[1], "Z")
    check_matrix(A.shape[0], A.shape[1], D.shape[0], D.shape[1], "A")
    require(0 <= code < N_ACTIVATIONS, f"unknown activation code {code}")
    with nogil:
        backward_epilogue(&D[0, 0], &Z[0, 0], &A[0, 0], NULL, D.shape[0], D.shape[1], code)


def delta_propagate(const real[:, ::1] delta, const real[:, ::1] W, const real[:, ::1] Z,
                    const real[:, ::1] A, real[:, ::1] out, int code):
    """out = (delta @ W.T) * f'(Z)."""
    cdef Py_ssize_t m = delta.shape[0], n = delta.shape[1], k = W.shape[0]
    require(m > 0 and n > 0 and k > 0, "delta and W must not be empty")
    check_matrix(W.shape[0], W.shape[1], k, n, "W")
    check_matrix(Z.shape[0], Z.shape[1], m, k, "Z")
    check_matrix(A.shape[0], A.shape[1], m, k, "A")
    check_matrix(out.shape[0], out.shape[1], m, k, "out")
    require(0 <= code < N_ACTIVATIONS, f"unknown activation code {code}")
    with nogil:
        gemm(c'N', c'T', m, k, n, 1, &delta[0, 0], n, &W[0, 0], n, 0, &out[0, 0], k)
        backward_epilogue(&out[0, 0], &Z[0, 0], &A[0, 0], NULL, m, k, code)


def weight_gradient(const real[:, ::1] A_prev, const real[:, ::1] delta, real[:, ::1] dW,
                    real[::1] db):
    """dW = A_prev.T @ delta, db = delta.sum(axis=0)."""
    cdef Py_ssize_t m = A_prev.shape[0], k = A_prev.shape[1], n = delta.shape[1]
    require(m > 0 and k > 0 and n > 0, "A_prev and delta must not be empty")
    check_matrix(delta.shape[0], delta.shape[1], m, n, "delta")
    check_matrix(dW.shape[0], dW.shape[1], k, n, "dW")
    require(db.shape[0] == n, f"db must have shape ({n},); got ({db.shape[0]},)")
    with nogil:
        gemm(c'T', c'N', k, n, m, 1, &A_prev[0, 0], k, &delta[0, 0], n, 0, &dW[0, 0], n)
        column_sums(&delta[0, 0], &db[0], m, n)


def loss_and_output_grad(const real[:, ::1] out, y, real[:, ::1] grad, int loss, int reduction):
    """-> the loss; dLoss/dOut into grad. y: intp labels (cross_entropy) or out's shape."""
    cdef const real[:, ::1] Y
    cdef const Py_ssize_t[::1] labels
    cdef const real* y_ptr = NULL
    cdef const Py_ssize_t* label_ptr = NULL
    cdef double value
    require(out.shape[0] > 0 and out.shape[1] > 0, "out must not be empty")
    check_matrix(grad.shape[0], grad.shape[1], out.shape[0], out.shape[1], "grad")
    require(MSE <= loss <= BCE and MEAN <= reduction <= SUM, "unknown loss or reduction code")
    if loss == CROSS_ENTROPY:
        labels = y
        check_labels(labels, out.shape[0], out.shape[1])
        label_ptr = &labels[0]
    else:
        Y = y
        check_matrix(Y.shape[0], Y.shape[1], out.shape[0], out.shape[1], "y")
        y_ptr = &Y[0, 0]
    with nogil:
        value = loss_and_gradient(&out[0, 0], y_ptr, label_ptr, &grad[0, 0], out.shape[0],
                                  out.shape[1], loss, reduction)
    return value


def sgd_update(real[::1] p, const real[::1] g, real[::1] velocity, double lr, double momentum,
               double weight_decay, bint nesterov):
    require(p.shape[0] > 0 and g.shape[0] == p.shape[0] and velocity.shape[0] == p.shape[0],
            "p, g and velocity must be non-empty and of one length")
    with nogil:
        sgd_flat(&p[0], &g[0], &velocity[0], p.shape[0], lr, momentum, weight_decay, nesterov)


def adam_update(real[::1] p, const real[::1] g, real[::1] m, real[::1] v, long step, double lr,
                double beta1, double beta2, double eps, double weight_decay):
    require(p.shape[0] > 0 and g.shape[0] == p.shape[0] and m.shape[0] == p.shape[0]
            and v.shape[0] == p.shape[0], "p, g, m and v must be non-empty and of one length")
    with nogil:
        adam_flat(&p[0], &g[0], &m[0], &v[0], p.shape[0], step, lr, beta1, beta2, eps, weight_decay)


def all_finite(const real[::1] a):
    cdef bint ok
    if a.shape[0] == 0:
        return True
    with nogil:
        ok = finite_all(&a[0], a.shape[0])
    return ok
