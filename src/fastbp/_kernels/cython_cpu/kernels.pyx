# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The Cython CPU kernels, one extension module: BLAS GEMMs with the elementwise work fused
around them, the whole network step, and the public kernels.

    forward     Z = b (rows), Z = A_prev @ W + Z  (GEMM, beta 1)   then one pass: A = f(Z)
    output      one pass: loss and dLoss/dOut;   then the same f'/db pass
    backward    D[l-1] = D[l] @ W.T     (GEMM)   then one pass: D *= f'(Z), db = D.sum(0)
                (every layer's delta first, with the weights as they were), then
                dW = A_prev.T @ D[l]    (GEMM)
    update      one pass per layer's weights and biases (SGD, momentum, Nesterov, Adam),
                all or nothing: the old values kept as the new ones are written, put back
                if one is not finite (optimizers.pxd); plain SGD instead updates W inside
                the weight-gradient GEMM itself, W = (1 - lr*wd) W - lr A_prev.T @ D[l]
                (beta, alpha), once a bound shows every new value finite (sgd_in_gemm)
    L2 term     with an L2 penalty (MLP.l2), 0.5 * c * sum(W**2) joins the loss and c * W the
                weights' gradient (one pass over the weights, none when l2 is 0; c =
                penalty_scale); plain SGD folds c * W into the GEMM's beta, 1 - lr*(wd + c)

`network_pass`, `sgd_step` and `adam_step` run it for a whole network in one call, over the
flat parameter and gradient buffers and a workspace laid out by the plan
(fastbp/_kernels/plan.py; the field names come from plan.pxd). The parts live in the .pxd
files beside this one (activations, products, losses, optimizers, checks). The elementwise
passes split columns over OpenMP threads when the extension was built with OpenMP and the
pass is big enough (`parallel_min`).
"""
from libc.math cimport NAN, fabs, isfinite, sqrt
from libc.float cimport DBL_MAX, FLT_MAX
from libc.string cimport memset
from cython.parallel cimport prange
cimport numpy as cnp
import numpy as np

from fastbp._kernels.cython_cpu.activations cimport (
    activate_block, activation_codes, path_count, path_description, path_in_use, path_name, path_usable,
    primitive_vector, times_derivative_block, use_path, IDENTITY, N_ACTIVATIONS)
from fastbp._kernels.cython_cpu.checks cimport abs_square_sum, abs_sum, finite_all, set_reduction_isa, square_sum_f32
from fastbp._kernels.cython_cpu.losses cimport loss_and_gradient, BCE, CROSS_ENTROPY, MEAN, MSE, POISSON, SUM
from fastbp._kernels.cython_cpu.optimizers cimport (
    GRADIENT, adam_flags, adam_flags_f32, adam_write, adam_write_f32, sgd_flags, sgd_write)
from fastbp._kernels.cython_cpu.plan cimport (
    ACT, A_AT, B_AT, BAD_X, BAD_Y, CAPACITY, D_AT, FIELDS, HEADER, LOSS, N_IN, N_LAYERS, N_OUT, N_PARAMS,
    NONFINITE, OK, OVERFLOW, REDUCTION, W_AT, WS_SIZE, Z_AT)
from fastbp._kernels.cython_cpu.primitives cimport COLUMN_BLOCK, real
from fastbp._kernels.cython_cpu.products cimport gemm, linear_into

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

# network_pass modes (MODE_DELTAS: internal, the backward pass up to the weight gradients)
cdef enum:
    MODE_FORWARD = 0
    MODE_LOSS = 1
    MODE_GRADIENT = 2
    MODE_DELTAS = 3

# Elements; smaller passes run on one thread. Splitting did not pay for these passes where
# the cores are shared (every parallel region waits at its barrier for a descheduled thread;
# bench/results/cython-openmp.md), so by default only passes over >= 2**24 elements (16M
# parameters) split; set_parallel_min() or FASTBP_CYTHON_PARALLEL_MIN changes it.
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
    return dict(activations=activation_codes(), losses=dict(mse=MSE, cross_entropy=CROSS_ENTROPY, bce=BCE, poisson=POISSON),
                reductions=dict(mean=MEAN, sum=SUM),
                modes=dict(forward=MODE_FORWARD, loss=MODE_LOSS, gradient=MODE_GRADIENT))


def openmp():
    """(built with OpenMP, threads an elementwise pass may use)."""
    return bool(FASTBP_OPENMP), fastbp_max_threads()


# The activation loops run on the best instruction-set path this CPU supports (activations.pxd).
def activation_paths():
    """The paths of the activation loops this CPU can run, best first: (name, description) pairs."""
    return tuple((path_name(i).decode(), path_description(i).decode()) for i in range(path_count())
                 if path_usable(i))


def activation_path():
    """The path in use: (name, description)."""
    return path_name(path_in_use()).decode(), path_description(path_in_use()).decode()


# the float32 Adam passes' and reductions' instruction set (optimizers.pxd, checks.pxd), with
# the activation path
cdef int update_isa = 0
UPDATE_ISAS = {"avx512": 2, "avx2": 1}


def set_activation_path(str name):
    """Run the activation loops, the float32 Adam update and reductions, on the path `name` (one of
    activation_paths()); -> the previous path's name. For tests and benchmarks: import
    chooses the best."""
    global update_isa
    usable = [path for path, _ in activation_paths()]
    if name not in usable:
        raise ValueError(f"activation path {name!r} is not usable here; usable: {usable}")
    old = activation_path()[0]
    use_path([path_name(i).decode() for i in range(path_count())].index(name))
    update_isa = UPDATE_ISAS.get(name, 0)
    set_reduction_isa(update_isa)
    return old


set_activation_path(activation_paths()[0][0])


def get_parallel_min():
    """Passes over fewer elements than this run on one thread."""
    return parallel_min


def set_parallel_min(Py_ssize_t n):
    """Passes over fewer than n elements run on one thread; -> the previous value."""
    global parallel_min
    old, parallel_min = parallel_min, n
    return old


cdef inline int pass_threads(Py_ssize_t work) noexcept nogil:
    if not FASTBP_OPENMP or work < parallel_min:
        return 1
    return fastbp_max_threads()


cdef inline Py_ssize_t part(Py_ssize_t c, Py_ssize_t n, int nt) noexcept nogil:
    """Where part c of n columns (or elements) split nt ways starts: widths rounded to 16."""
    return min(n, c * (((n + nt - 1) // nt + 15) // 16 * 16))


# ---------------------------------------------------------------- elementwise passes

cdef void activation_cols(const real* Z, real* A, Py_ssize_t m, Py_ssize_t n,
                          Py_ssize_t j0, Py_ssize_t j1, int code) noexcept nogil:
    """Columns j0:j1 of A = f(Z). A may be Z itself."""
    activate_block(code, Z, A, m, n, j0, j1)


cdef void derivative_cols(real* D, const real* Z, const real* A, real* db, Py_ssize_t m, Py_ssize_t n,
                          Py_ssize_t j0, Py_ssize_t j1, int code) noexcept nogil:
    """Columns j0:j1 of D *= f'(Z) (identity: D unchanged, Z and A unread) and, when db is
    given, db = D.sum(axis=0) in the same pass, summed in float64 (a float32 running sum
    over a large batch drifts: tests/test_numerics.py)."""
    cdef Py_ssize_t i, j, block, jb, je
    cdef double acc[COLUMN_BLOCK]
    if db == NULL:
        if code != IDENTITY:
            times_derivative_block(code, D, Z, A, m, n, j0, j1, NULL)
        return
    for block in range((j1 - j0 + COLUMN_BLOCK - 1) // COLUMN_BLOCK):      # a block of accumulators at a time
        jb = j0 + block * COLUMN_BLOCK
        je = min(j1, jb + COLUMN_BLOCK)
        memset(acc, 0, (je - jb) * sizeof(double))
        if code != IDENTITY:
            times_derivative_block(code, D, Z, A, m, n, jb, je, acc)
        else:
            for i in range(m):
                for j in range(jb, je):
                    acc[j - jb] += D[i * n + j]
        for j in range(jb, je):
            db[j] = <real>acc[j - jb]


cdef void forward_epilogue(const real* Z, real* A, Py_ssize_t m, Py_ssize_t n, int code) noexcept nogil:
    cdef int c, nt = pass_threads(m * n)
    if code == IDENTITY and A == Z:
        return
    if nt > 1 and n >= 32 * nt:
        for c in prange(nt, num_threads=nt, schedule='static'):
            activation_cols(Z, A, m, n, part(c, n, nt), part(c + 1, n, nt), code)
    else:
        activation_cols(Z, A, m, n, 0, n, code)


cdef void backward_epilogue(real* D, const real* Z, const real* A, real* db, Py_ssize_t m,
                            Py_ssize_t n, int code) noexcept nogil:
    cdef int c, nt = pass_threads(m * n)
    if code == IDENTITY and db == NULL:
        return
    if nt > 1 and n >= 32 * nt:
        for c in prange(nt, num_threads=nt, schedule='static'):
            derivative_cols(D, Z, A, db, m, n, part(c, n, nt), part(c + 1, n, nt), code)
    else:
        derivative_cols(D, Z, A, db, m, n, 0, n, code)


# ---------------------------------------------------------------- optimizer updates, all or nothing
# (optimizers.pxd): a range split over OpenMP threads when it is large, then every layer

cdef int sgd_apply(real* p, const real* g, real* v, Py_ssize_t i0, Py_ssize_t i1, double lr, double momentum,
                   double weight_decay, bint nesterov, bint write) noexcept nogil:
    """sgd_flags over [i0, i1), or with `write` sgd_write. -> flags (0 when writing)."""
    cdef int c, flags = 0, nt = pass_threads(i1 - i0)
    cdef Py_ssize_t n = i1 - i0
    if nt > 1:
        for c in prange(nt, num_threads=nt, schedule='static'):
            if write:
                sgd_write(p, g, v, i0 + part(c, n, nt), i0 + part(c + 1, n, nt), <real>lr, <real>momentum,
                          <real>weight_decay, nesterov)
            else:
                flags |= sgd_flags(p, g, v, i0 + part(c, n, nt), i0 + part(c + 1, n, nt), <real>lr, <real>momentum,
                                   <real>weight_decay, nesterov)
        return flags
    if write:
        sgd_write(p, g, v, i0, i1, <real>lr, <real>momentum, <real>weight_decay, nesterov)
        return 0
    return sgd_flags(p, g, v, i0, i1, <real>lr, <real>momentum, <real>weight_decay, nesterov)


cdef int adam_apply(real* p, const real* g, real* m, real* v, Py_ssize_t i0, Py_ssize_t i1, long step, double lr,
                    double beta1, double beta2, double eps, double weight_decay, bint write) noexcept nogil:
    """adam_flags over [i0, i1), or with `write` adam_write. -> flags (0 when writing)."""
    # torch / reference.py: p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    cdef real step_size = <real>(lr / (1 - beta1 ** step))
    cdef real root_bias2 = <real>sqrt(1 - beta2 ** step)
    cdef real b1 = <real>beta1, b2 = <real>beta2, c1 = <real>(1 - beta1), c2 = <real>(1 - beta2)
    cdef int c, flags = 0, nt = pass_threads(i1 - i0)
    cdef Py_ssize_t width = i1 - i0
    if nt > 1:
        for c in prange(nt, num_threads=nt, schedule='static'):
            flags |= adam_pass(p, g, m, v, i0 + part(c, width, nt), i0 + part(c + 1, width, nt), step_size,
                               root_bias2, b1, b2, c1, c2, <real>eps, <real>weight_decay, write)
        return flags
    return adam_pass(p, g, m, v, i0, i1, step_size, root_bias2, b1, b2, c1, c2, <real>eps, <real>weight_decay, write)


cdef inline int adam_pass(real* p, const real* g, real* m, real* v, Py_ssize_t i0, Py_ssize_t i1, real step_size,
                          real root_bias2, real b1, real b2, real c1, real c2, real eps, real weight_decay,
                          bint write) noexcept nogil:
    """adam_flags or adam_write over [i0, i1); float32 on the path in use. -> flags (0 when writing)."""
    if real is float:
        if write:
            adam_write_f32(update_isa, p, g, m, v, i0, i1, step_size, root_bias2, b1, b2, c1, c2, eps, weight_decay)
            return 0
        return adam_flags_f32(update_isa, p, g, m, v, i0, i1, step_size, root_bias2, b1, b2, c1, c2, eps,
                              weight_decay)
    else:
        if write:
            adam_write(p, g, m, v, i0, i1, step_size, root_bias2, b1, b2, c1, c2, eps, weight_decay)
            return 0
        return adam_flags(p, g, m, v, i0, i1, step_size, root_bias2, b1, b2, c1, c2, eps, weight_decay)


cdef inline int update_status(int flags) noexcept nogil:
    if flags == 0:
        return OK
    return NONFINITE if flags & GRADIENT else OVERFLOW


cdef int sgd_layers(real* P, const real* G, real* V, const Py_ssize_t* plan, double lr, double momentum,
                    double weight_decay, bint nesterov) noexcept nogil:
    """SGD over every layer's weights, then its biases, all or nothing: the check pass over
    every layer, then the write pass. -> OK, NONFINITE (a gradient is not finite) or OVERFLOW
    (a new value would not be): then nothing was written."""
    cdef const Py_ssize_t* q
    cdef int l, write, flags = 0
    for write in range(2):
        if write and flags:
            break
        for l in range(<int>plan[N_LAYERS]):
            q = plan + HEADER + l * FIELDS
            flags |= sgd_apply(P, G, V, q[W_AT], q[B_AT], lr, momentum, weight_decay, nesterov, write)
            flags |= sgd_apply(P, G, V, q[B_AT], q[B_AT] + q[N_OUT], lr, momentum, weight_decay, nesterov, write)
    return update_status(flags)


cdef int adam_layers(real* P, const real* G, real* M, real* V, const Py_ssize_t* plan, long step, double lr, double beta1,
                     double beta2, double eps, double weight_decay) noexcept nogil:
    """Adam over every layer's weights, then its biases, all or nothing (as sgd_layers)."""
    cdef const Py_ssize_t* q
    cdef int l, write, flags = 0
    for write in range(2):
        if write and flags:
            break
        for l in range(<int>plan[N_LAYERS]):
            q = plan + HEADER + l * FIELDS
            flags |= adam_apply(P, G, M, V, q[W_AT], q[B_AT], step, lr, beta1, beta2, eps, weight_decay, write)
            flags |= adam_apply(P, G, M, V, q[B_AT], q[B_AT] + q[N_OUT], step, lr, beta1, beta2, eps,
                                weight_decay, write)
    return update_status(flags)


# ---------------------------------------------------------------- the whole network
# Layer l's plan fields start at plan + HEADER + l * FIELDS.

cdef double penalty_scale(double l2, const real* SW, Py_ssize_t m, int reduction) noexcept nogil:
    """c of the L2 term 0.5 * c * sum(W**2) (fastbp.layout.penalty_scale): l2 / n for the
    mean, n the batch's rows or its total sample weight (all-zero: 1); l2 for the sum."""
    cdef Py_ssize_t i
    cdef double n = 0
    if l2 == 0 or reduction == SUM:
        return l2
    if SW == NULL:
        return l2 / m
    for i in range(m):
        n += SW[i]
    return l2 / (n if n != 0 else 1.0)


cdef double square_sum(const real* a, Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """sum a**2 over an (m, n) matrix, in double, down the columns a block of per-column
    accumulators at a time (as checks.abs_sum: the inner loop vectorizes without
    reassociating, where one running sum cannot); float32 on the ISA path in use."""
    cdef Py_ssize_t i, j, block, jb, width
    cdef double acc[COLUMN_BLOCK]
    cdef double total = 0, x
    if real is float:
        return square_sum_f32(a, m, n)
    else:
        for block in range((n + COLUMN_BLOCK - 1) // COLUMN_BLOCK):
            jb = block * COLUMN_BLOCK
            width = min(n - jb, COLUMN_BLOCK)
            memset(acc, 0, width * sizeof(double))
            for i in range(m):
                for j in range(width):
                    x = a[i * n + jb + j]
                    acc[j] += x * x
            for j in range(width):
                total += acc[j]
        return total


cdef double weight_penalty(const real* P, real* G, const Py_ssize_t* plan, double c) noexcept nogil:
    """-> 0.5 * c * sum(W**2) over every layer's weights (in double); G[W] += c * W when G is
    not NULL. The biases are not penalised."""
    cdef const Py_ssize_t* q
    cdef int l
    cdef Py_ssize_t i
    cdef double total = 0
    cdef real c_ = <real>c
    for l in range(<int>plan[N_LAYERS]):
        q = plan + HEADER + l * FIELDS
        total += square_sum(P + q[W_AT], q[N_IN], q[N_OUT])
        if G != NULL:
            for i in range(q[W_AT], q[B_AT]):
                G[i] += c_ * P[i]
    return 0.5 * c * total


cdef double run_pass(int mode, real* P, real* G, const real* X, const real* Y, const Py_ssize_t* labels,
                     const real* SW, real* WS, const Py_ssize_t* plan, Py_ssize_t m, double c) noexcept nogil:
    """Forward (MODE_FORWARD), + loss (MODE_LOSS), + every layer's delta into the workspace
    and the bias gradients into G (MODE_DELTAS), + the weight gradients into G (MODE_GRADIENT);
    the loss includes the L2 term of scale c (penalty_scale), except in MODE_DELTAS, and in
    MODE_GRADIENT G its gradient."""
    cdef const Py_ssize_t* q
    cdef const Py_ssize_t* below
    cdef const real* A_prev = X
    cdef int l, L = <int>plan[N_LAYERS]
    cdef double value = 0.0
    for l in range(L):
        q = plan + HEADER + l * FIELDS
        linear_into(A_prev, P + q[W_AT], P + q[B_AT], WS + q[Z_AT], m, q[N_IN], q[N_OUT])
        forward_epilogue(WS + q[Z_AT], WS + q[A_AT], m, q[N_OUT], <int>q[ACT])
        A_prev = WS + q[A_AT]
    if mode == MODE_FORWARD:
        return value
    q = plan + HEADER + (L - 1) * FIELDS
    value = loss_and_gradient(A_prev, Y, labels, SW, WS + q[D_AT], m, q[N_OUT], <int>plan[LOSS],
                              <int>plan[REDUCTION])
    # the L2 term: the gradient pass adds it after its GEMMs, sgd_in_gemm (after MODE_DELTAS)
    # from its bound's pass over the weights
    if c != 0 and mode == MODE_LOSS:
        value += weight_penalty(P, NULL, plan, c)
    if mode == MODE_LOSS:
        return value
    backward_epilogue(WS + q[D_AT], WS + q[Z_AT], WS + q[A_AT], G + q[B_AT], m, q[N_OUT], <int>q[ACT])
    for l in range(L - 1, 0, -1):       # deltas first: the weights are still the step's own
        q = plan + HEADER + l * FIELDS
        below = q - FIELDS
        gemm(c'N', c'T', m, q[N_IN], q[N_OUT], 1, WS + q[D_AT], q[N_OUT], P + q[W_AT], q[N_OUT], 0,
             WS + below[D_AT], q[N_IN])
        backward_epilogue(WS + below[D_AT], WS + below[Z_AT], WS + below[A_AT], G + below[B_AT], m, q[N_IN],
                          <int>below[ACT])
    if mode == MODE_GRADIENT:
        weight_gradients(G, X, WS, plan, m, 1, 0)
        if c != 0:
            value += weight_penalty(P, G, plan, c)
    return value


cdef void weight_gradients(real* G, const real* X, const real* WS, const Py_ssize_t* plan, Py_ssize_t m,
                           real alpha, real beta) noexcept nogil:
    """G[W of l] = alpha * A_prev.T @ delta[l] + beta * G[W of l], every layer, after a
    MODE_DELTAS pass (with G the parameters, alpha -lr and beta 1 - lr*wd: plain SGD)."""
    cdef const Py_ssize_t* q
    cdef const real* A_prev
    cdef int l
    for l in range(<int>plan[N_LAYERS]):
        q = plan + HEADER + l * FIELDS
        A_prev = X if l == 0 else WS + (q - FIELDS)[A_AT]
        gemm(c'T', c'N', q[N_IN], q[N_OUT], m, alpha, A_prev, q[N_IN], WS + q[D_AT], q[N_OUT], beta, G + q[W_AT],
             q[N_OUT])


cdef bint gemm_update_bounded(const real* P, const real* G, double x_abs, const real* WS, const Py_ssize_t* plan,
                              Py_ssize_t m, double lr, double weight_decay, double c, double* squares) noexcept nogil:
    """Whether the plain-SGD update inside the weight-gradient GEMMs is known finite before
    anything is written, after a MODE_DELTAS pass (the bias gradients in G): every product
    A_prev.T @ delta, and each partial sum of it, satisfies |sum_i a_ik d_ij| <= sum|A_prev| *
    sum|delta| =: B; every new weight |(1 - lr*(wd + c)) w - lr p| <= |1 - lr*(wd + c)| sum|W|
    + lr B (c: the L2 term's scale, weights only);
    every new bias is computed. Each must stay under half the dtype's largest value (NaN or
    inf anywhere fails the test too). x_abs: abs_sum of X. With the L2 term (c != 0) the same
    read of each W also adds its sum of squares to squares[0] (every layer's, whatever the
    answer), so the term's loss costs no pass of its own."""
    cdef const Py_ssize_t* q
    cdef int l, L = <int>plan[N_LAYERS]
    cdef Py_ssize_t j
    cdef double limit = (FLT_MAX if real is float else DBL_MAX) / 2
    cdef real lr_ = <real>lr, wd = <real>weight_decay
    cdef double decay = fabs(<double>(1 - lr_ * wd - lr_ * <real>c)), product, w_abs, a_abs = x_abs
    cdef bint bounded = True
    for l in range(L):
        q = plan + HEADER + l * FIELDS
        if c != 0:
            w_abs = abs_square_sum(P + q[W_AT], q[N_IN], q[N_OUT], squares)
        elif bounded:
            w_abs = abs_sum(P + q[W_AT], q[N_IN], q[N_OUT])
        else:
            break
        if not bounded:         # past a failed layer only the sum of squares is wanted
            continue
        product = a_abs * abs_sum(WS + q[D_AT], m, q[N_OUT])
        bounded = product <= limit and decay * w_abs + lr_ * product <= limit
        for j in range(q[N_OUT]):
            if not fabs(P[q[B_AT] + j] - lr_ * (G[q[B_AT] + j] + wd * P[q[B_AT] + j])) <= limit:
                bounded = False
        if bounded and l + 1 < L:
            a_abs = abs_sum(WS + q[A_AT], m, q[N_OUT])
    return bounded


cdef int sgd_in_gemm(real* P, real* G, const real* X, double x_abs, real* WS, const Py_ssize_t* plan,
                     Py_ssize_t m, double lr, double weight_decay, double c, double* value) noexcept nogil:
    """Plain SGD (momentum 0) after a MODE_DELTAS pass: W = (1 - lr*(wd + c)) W - lr A_prev.T @
    delta as one GEMM per layer (alpha, beta; c: the L2 term's scale, its gradient c * W folded
    into beta), b -= lr (db + wd b) from the bias gradients in G.
    The weight gradient is never written, scanned or re-read (bench/results/sgd-in-gemm.md).
    Nothing is written unless gemm_update_bounded shows every new value finite; else the
    stored-gradient path (GEMMs into G, then the all-or-nothing update). value: the data
    loss of the MODE_DELTAS pass, to which the L2 term is added. -> status."""
    cdef const Py_ssize_t* q
    cdef int l
    cdef real lr_ = <real>lr, wd = <real>weight_decay
    cdef double squares = 0
    cdef bint bounded = gemm_update_bounded(P, G, x_abs, WS, plan, m, lr, weight_decay, c, &squares)
    if c != 0:
        value[0] += 0.5 * c * squares          # as weight_penalty
        if not isfinite(value[0]):
            return NONFINITE
    if not bounded:
        weight_gradients(G, X, WS, plan, m, 1, 0)
        if c != 0:
            weight_penalty(P, G, plan, c)
        return sgd_layers(P, G, NULL, plan, lr, 0.0, weight_decay, False)
    for l in range(<int>plan[N_LAYERS]):
        q = plan + HEADER + l * FIELDS
        sgd_write(P, G, NULL, q[B_AT], q[B_AT] + q[N_OUT], lr_, 0, wd, False)     # the bias, from db in G
    weight_gradients(P, X, WS, plan, m, -lr_, 1 - lr_ * wd - lr_ * <real>c)
    return OK


# ---------------------------------------------------------------- shape checks
# The extension's functions are importable by anyone, so each checks the shapes it relies on
# (O(1), or O(layers)/O(batch) for the network step) and raises ValueError rather than
# reading or writing outside an array. fastbp's own callers always pass valid shapes.

cdef int require(bint ok, str message) except -1:
    if not ok:
        raise ValueError(message)
    return 0

# (the checks on the per-step path build their messages only when they fail: an f-string
# argument is formatted on every call; bench/results/step-overhead.md)

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


cdef inline bint inside(Py_ssize_t at, Py_ssize_t size, Py_ssize_t total) noexcept:
    return 0 <= at and at + size <= total


cdef int check_plan(const Py_ssize_t* plan, Py_ssize_t plan_len, Py_ssize_t n_params, Py_ssize_t n_ws,
                    Py_ssize_t m, Py_ssize_t n_features) except -1:
    """The plan describes its layers, and every layer's pieces lie inside params / the
    workspace for a batch of m rows."""
    cdef Py_ssize_t l, n_in, n_out, L, rows, expected_in = n_features
    cdef const Py_ssize_t* q
    if plan_len < HEADER or (plan_len - HEADER) % FIELDS != 0 or plan[N_LAYERS] != (plan_len - HEADER) // FIELDS:
        raise ValueError(f"plan must hold {HEADER} header entries and {FIELDS} per layer; got {plan_len}")
    L = plan[N_LAYERS]
    if L < 1 or plan[N_PARAMS] != n_params or plan[WS_SIZE] > n_ws:
        raise ValueError("plan does not match the parameter buffer or the workspace")
    if not 1 <= m <= plan[CAPACITY]:
        raise ValueError(f"X must have between 1 and {plan[CAPACITY]} rows; got {m}")
    if not (MSE <= plan[LOSS] <= POISSON and MEAN <= plan[REDUCTION] <= SUM):
        raise ValueError("plan: unknown loss or reduction code")
    for l in range(L):
        q = plan + HEADER + l * FIELDS
        n_in, n_out = q[N_IN], q[N_OUT]
        if n_in != expected_in or n_out <= 0:
            raise ValueError(f"plan layer {l}: sizes ({n_in}, {n_out}) do not chain")
        if not 0 <= q[ACT] < N_ACTIVATIONS:
            raise ValueError(f"plan layer {l}: unknown activation code")
        if not (0 <= q[W_AT] and q[W_AT] + n_in * n_out <= n_params and 0 <= q[B_AT] and q[B_AT] + n_out <= n_params):
            raise ValueError(f"plan layer {l}: weights/bias outside the parameter buffer")
        rows = plan[CAPACITY] * n_out
        if not (inside(q[Z_AT], rows, n_ws) and inside(q[A_AT], rows, n_ws) and inside(q[D_AT], rows, n_ws)):
            raise ValueError(f"plan layer {l}: Z/A/delta outside the workspace")
        expected_in = n_out
    return 0


# The network step's arrays are checked through NumPy's C API (type, dtype, dimensions,
# C-contiguous, aligned, writeable): acquiring typed memoryview arguments costs more than
# a tiny network's whole step (bench/results/step-overhead.md).

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


cdef struct Net:      # a checked network call's arrays (pointers; the dtype is the caller's `real`)
    void* P
    void* G
    const void* X
    const void* Y           # targets, or NULL (cross_entropy's labels, or the forward pass)
    const Py_ssize_t* labels
    const void* SW          # per-row sample weights, or NULL (none)
    void* WS
    const Py_ssize_t* plan
    Py_ssize_t m            # batch rows
    Py_ssize_t k            # input features
    Py_ssize_t n            # parameters
    Py_ssize_t n_out


cdef int unpack(real tag, Net* net, object params, object grads, object X, object y, object sw, object ws,
                object plan, bint with_y) except -1:
    """Every check the compiled code relies on (TypeError/ValueError otherwise), then the arrays' data."""
    cdef int typenum = cnp.NPY_FLOAT32 if real is float else cnp.NPY_FLOAT64
    cdef Py_ssize_t plan_len
    net.P = array_data(params, typenum, 1, True, "params")
    net.G = array_data(grads, typenum, 1, True, "grads")
    net.X = array_data(X, typenum, 2, False, "X")
    net.WS = array_data(ws, typenum, 1, True, "ws")
    net.plan = <const Py_ssize_t*>array_data(plan, cnp.NPY_INTP, 1, False, "plan")
    net.m, net.k, net.n = dim(X, 0), dim(X, 1), dim(params, 0)
    plan_len = dim(plan, 0)
    check_plan(net.plan, plan_len, net.n, dim(ws, 0), net.m, net.k)
    net.n_out = net.plan[plan_len - FIELDS + N_OUT]
    if dim(grads, 0) != net.n:
        raise ValueError(f"grads must have {net.n} entries; got {dim(grads, 0)}")
    net.Y, net.labels, net.SW = NULL, NULL, NULL
    if not with_y:
        return 0
    if sw is not None:
        net.SW = array_data(sw, typenum, 1, False, "sw")
        if dim(sw, 0) != net.m:
            raise ValueError(f"sw must have shape ({net.m},); got ({dim(sw, 0)},)")
    if net.plan[LOSS] == CROSS_ENTROPY:
        net.labels = <const Py_ssize_t*>array_data(y, cnp.NPY_INTP, 1, False, "labels")
        if dim(y, 0) != net.m:
            raise ValueError(f"labels must have shape ({net.m},); got ({dim(y, 0)},)")
        check_label_values(net.labels, net.m, net.n_out)
    else:
        net.Y = array_data(y, typenum, 2, False, "y")
        check_matrix(dim(y, 0), dim(y, 1), net.m, net.n_out, "y")
    return 0


cdef int check_state(object s, Py_ssize_t n, int typenum, str name) except -1:
    array_data(s, typenum, 1, True, name)
    if dim(s, 0) != n:
        raise ValueError(f"{name} must have {n} entries; got {dim(s, 0)}")
    return 0


cdef int inputs_status(real tag, Net* net, double* x_abs) noexcept nogil:
    """OK, or BAD_X / BAD_Y when X / y holds NaN or inf. x_abs: sum|X| (the NaN/inf check,
    finite exactly when X is for float32, and the first factor of sgd_in_gemm's bound in one
    pass; only an overflowing float64 sum rescans)."""
    x_abs[0] = abs_sum(<const real*>net.X, net.m, net.k)
    if not isfinite(x_abs[0]) and not finite_all(<const real*>net.X, net.m * net.k):
        return BAD_X
    if net.Y != NULL and not finite_all(<const real*>net.Y, net.m * net.n_out):
        return BAD_Y
    return OK


cdef object pass_impl(real tag, int mode, object params, object grads, object X, object y, object sw,
                      object ws, object plan, bint check, double l2):
    cdef Net net
    cdef double value = NAN, x_abs, c
    cdef int status = OK
    if not MODE_FORWARD <= mode <= MODE_GRADIENT:
        raise ValueError(f"unknown mode {mode}")
    unpack(tag, &net, params, grads, X, y, sw, ws, plan, mode != MODE_FORWARD)
    with nogil:
        if check:
            status = inputs_status(tag, &net, &x_abs)
        if status == OK:
            c = penalty_scale(l2, <const real*>net.SW, net.m, <int>net.plan[REDUCTION])
            value = run_pass(mode, <real*>net.P, <real*>net.G, <const real*>net.X, <const real*>net.Y, net.labels,
                             <const real*>net.SW, <real*>net.WS, net.plan, net.m, c)
            if check and mode == MODE_GRADIENT and not (isfinite(value) and finite_all(<real*>net.G, net.n)):
                status = NONFINITE
    return status, value


cdef object sgd_impl(real tag, object params, object grads, object X, object y, object sw, object ws, object plan,
                     object velocity, double lr, double momentum, double weight_decay, bint nesterov,
                     double l2):
    cdef Net net
    cdef double value = NAN, x_abs, c
    cdef int status
    cdef int typenum = cnp.NPY_FLOAT32 if real is float else cnp.NPY_FLOAT64
    unpack(tag, &net, params, grads, X, y, sw, ws, plan, True)
    check_state(velocity, net.n, typenum, "velocity")
    cdef real* V = <real*>cnp.PyArray_DATA(<cnp.ndarray>velocity)
    with nogil:
        status = inputs_status(tag, &net, &x_abs)
        if status == OK:
            c = penalty_scale(l2, <const real*>net.SW, net.m, <int>net.plan[REDUCTION])
            value = run_pass(MODE_DELTAS if momentum == 0 else MODE_GRADIENT, <real*>net.P, <real*>net.G,
                             <const real*>net.X, <const real*>net.Y, net.labels, <const real*>net.SW, <real*>net.WS,
                             net.plan, net.m, c)
            if not isfinite(value):
                status = NONFINITE
            elif momentum == 0:
                status = sgd_in_gemm(<real*>net.P, <real*>net.G, <const real*>net.X, x_abs, <real*>net.WS,
                                     net.plan, net.m, lr, weight_decay, c, &value)
            else:
                status = sgd_layers(<real*>net.P, <real*>net.G, V, net.plan, lr, momentum, weight_decay, nesterov)
    return status, value


cdef object adam_impl(real tag, object params, object grads, object X, object y, object sw, object ws, object plan,
                      object m, object v, long step, double lr, double beta1, double beta2, double eps,
                      double weight_decay, double l2):
    cdef Net net
    cdef double value = NAN, x_abs, c
    cdef int status
    cdef int typenum = cnp.NPY_FLOAT32 if real is float else cnp.NPY_FLOAT64
    unpack(tag, &net, params, grads, X, y, sw, ws, plan, True)
    check_state(m, net.n, typenum, "m")
    check_state(v, net.n, typenum, "v")
    cdef real* M = <real*>cnp.PyArray_DATA(<cnp.ndarray>m)
    cdef real* V = <real*>cnp.PyArray_DATA(<cnp.ndarray>v)
    with nogil:
        status = inputs_status(tag, &net, &x_abs)
        if status == OK:
            c = penalty_scale(l2, <const real*>net.SW, net.m, <int>net.plan[REDUCTION])
            value = run_pass(MODE_GRADIENT, <real*>net.P, <real*>net.G, <const real*>net.X, <const real*>net.Y,
                             net.labels, <const real*>net.SW, <real*>net.WS, net.plan, net.m, c)
            if not isfinite(value):
                status = NONFINITE
            else:
                status = adam_layers(<real*>net.P, <real*>net.G, M, V, net.plan, step, lr, beta1, beta2, eps,
                                     weight_decay)
    return status, value


cdef inline bint is_float32(object a):
    return cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT32


def network_pass(int mode, params, grads, X, y, sw, ws, plan, bint check=False, double l2=0.0):
    """One call over a whole float32 or float64 network: mode 0 forward, 1 loss, 2 gradients
    (into grads). params, grads, ws: 1-D of the network's dtype; X: (batch, n_in); y:
    (batch, n_out) targets, or np.intp labels (batch,) for cross_entropy, unused in forward
    mode; sw: per-row sample weights (batch,) of the network's dtype, or None; plan: plan.py's for ws. check: report NaN/inf in X or y (and for gradients, a
    non-finite loss or gradient) as the status. l2: the network's L2 penalty on the weights
    (MLP.l2; in the loss and the gradients). -> (status, loss); the forward pass leaves the
    output in the workspace."""
    if is_float32(params):
        return pass_impl(<float>0, mode, params, grads, X, y, sw, ws, plan, check, l2)
    return pass_impl(<double>0, mode, params, grads, X, y, sw, ws, plan, check, l2)


def sgd_step(params, grads, X, y, sw, ws, plan, velocity, double lr, double momentum, double weight_decay,
             bint nesterov, double l2=0.0):
    """A whole training step with torch's SGD (network_pass's arrays and l2, the velocity
    buffer). -> (status, loss): nothing is written to params or velocity unless the status
    is OK (0); grads is left as scratch."""
    if is_float32(params):
        return sgd_impl(<float>0, params, grads, X, y, sw, ws, plan, velocity, lr, momentum, weight_decay,
                        nesterov, l2)
    return sgd_impl(<double>0, params, grads, X, y, sw, ws, plan, velocity, lr, momentum, weight_decay,
                    nesterov, l2)


def adam_step(params, grads, X, y, sw, ws, plan, m, v, long step, double lr, double beta1, double beta2,
              double eps, double weight_decay, double l2=0.0):
    """A whole training step with torch's Adam (network_pass's arrays and l2, the m and v
    buffers, this step's number from 1). -> (status, loss): nothing is written to params, m
    or v unless it is OK (0)."""
    if is_float32(params):
        return adam_impl(<float>0, params, grads, X, y, sw, ws, plan, m, v, step, lr, beta1, beta2, eps,
                         weight_decay, l2)
    return adam_impl(<double>0, params, grads, X, y, sw, ws, plan, m, v, step, lr, beta1, beta2, eps,
                     weight_decay, l2)


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
        derivative_cols(<real*>&delta[0, 0], NULL, NULL, &db[0], m, n, 0, n, IDENTITY)   # identity: column sums only


def loss_and_output_grad(const real[:, ::1] out, y, real[:, ::1] grad, int loss, int reduction, sw=None):
    """-> the loss; dLoss/dOut into grad. y: intp labels (cross_entropy) or out's shape; sw:
    per-row sample weights (batch,), or None."""
    cdef const real[::1] weights
    cdef const real[:, ::1] Y
    cdef const Py_ssize_t[::1] labels
    cdef const real* y_ptr = NULL
    cdef const Py_ssize_t* label_ptr = NULL
    cdef const real* sw_ptr = NULL
    cdef double value
    require(out.shape[0] > 0 and out.shape[1] > 0, "out must not be empty")
    check_matrix(grad.shape[0], grad.shape[1], out.shape[0], out.shape[1], "grad")
    require(MSE <= loss <= POISSON and MEAN <= reduction <= SUM, "unknown loss or reduction code")
    if sw is not None:
        weights = sw
        require(weights.shape[0] == out.shape[0], f"sw must have shape ({out.shape[0]},); got ({weights.shape[0]},)")
        sw_ptr = &weights[0]
    if loss == CROSS_ENTROPY:
        labels = y
        check_labels(labels, out.shape[0], out.shape[1])
        label_ptr = &labels[0]
    else:
        Y = y
        check_matrix(Y.shape[0], Y.shape[1], out.shape[0], out.shape[1], "y")
        y_ptr = &Y[0, 0]
    with nogil:
        value = loss_and_gradient(&out[0, 0], y_ptr, label_ptr, sw_ptr, &grad[0, 0], out.shape[0],
                                  out.shape[1], loss, reduction)
    return value


def sgd_update(real[::1] p, const real[::1] g, real[::1] velocity, double lr, double momentum,
               double weight_decay, bint nesterov):
    """torch.optim.SGD over the flat buffers, all or nothing, g unchanged. -> applied?"""
    require(p.shape[0] > 0 and g.shape[0] == p.shape[0] and velocity.shape[0] == p.shape[0],
            "p, g and velocity must be non-empty and of one length")
    cdef Py_ssize_t n = p.shape[0]
    cdef int flags
    with nogil:
        flags = sgd_apply(&p[0], &g[0], &velocity[0], 0, n, lr, momentum, weight_decay, nesterov, False)
        if flags == 0:
            sgd_apply(&p[0], &g[0], &velocity[0], 0, n, lr, momentum, weight_decay, nesterov, True)
    return flags == 0


def adam_update(real[::1] p, const real[::1] g, real[::1] m, real[::1] v, long step, double lr,
                double beta1, double beta2, double eps, double weight_decay):
    """torch.optim.Adam over the flat buffers, all or nothing, g unchanged. -> applied?"""
    require(p.shape[0] > 0 and g.shape[0] == p.shape[0] and m.shape[0] == p.shape[0]
            and v.shape[0] == p.shape[0], "p, g, m and v must be non-empty and of one length")
    cdef Py_ssize_t n = p.shape[0]
    cdef int flags
    with nogil:
        flags = adam_apply(&p[0], &g[0], &m[0], &v[0], 0, n, step, lr, beta1, beta2, eps, weight_decay, False)
        if flags == 0:
            adam_apply(&p[0], &g[0], &m[0], &v[0], 0, n, step, lr, beta1, beta2, eps, weight_decay, True)
    return flags == 0


def evaluate_primitive(str name, const real[::1] x, real[::1] out):
    """out = p(x) for the formulas' primitive `name` (fastbp.activations.PRIMITIVES), on the path
    in use: the activation loops' accuracy, tested on its own (tests/test_activations32.py)."""
    from fastbp.activations import PRIMITIVES
    if name not in PRIMITIVES:
        raise ValueError(f"unknown primitive {name!r}; expected one of {list(PRIMITIVES)}")
    require(out.shape[0] == x.shape[0], "x and out must have one length")
    cdef int which = PRIMITIVES.index(name)
    if x.shape[0] == 0:
        return
    with nogil:
        primitive_vector(which, &x[0], &out[0], x.shape[0])


def all_finite(const real[::1] a):
    cdef bint ok
    if a.shape[0] == 0:
        return True
    with nogil:
        ok = finite_all(&a[0], a.shape[0])
    return ok


def matrix_abs_sum(const real[:, ::1] a):
    """sum |a| in double, as the SGD bound computes it, on the path in use (tests/test_cython.py)."""
    cdef double total
    with nogil:
        total = abs_sum(&a[0, 0], a.shape[0], a.shape[1]) if a.shape[0] * a.shape[1] else 0.0
    return total


def matrix_square_sum(const real[:, ::1] a):
    """sum a**2 in double, as the L2 term computes it, on the path in use (tests/test_cython.py)."""
    cdef double total
    with nogil:
        total = square_sum(&a[0, 0], a.shape[0], a.shape[1]) if a.shape[0] * a.shape[1] else 0.0
    return total
