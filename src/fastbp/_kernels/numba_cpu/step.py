"""The one-call network passes of the Numba backend: forward, loss, backward and the
optimizer update for every layer inside ONE compiled call, over the flat buffers.

A pass reads the network's plan (fastbp/_kernels/plan.py: where every layer's W, b, Z, A and
delta lie; made once per network and workspace capacity, kept by NumbaOps with the
workspace), so a step passes few arguments: Numba's dispatch has a cost per argument
(bench/results/step-overhead.md).
A batch of m rows (m <= the plan's CAPACITY) uses the first m rows of each workspace piece,
so every batch size shares one workspace, and a step allocates nothing.

Backward (the view pass) computes every layer's delta first, with the weights as they were,
and the weight gradients after: that order is what lets a plain-SGD step update W by the
weight-gradient product itself (_sgd_pass).

Each entry point returns a status (plan.STATUSES) with the loss: nothing is written to
params or optimizer state unless it is OK, and nothing at all on BAD_X, BAD_Y or BAD_PLAN.
"""
import math

import numpy as np
from numba import njit
from numba.extending import overload

from ... import losses
from .activations import activate, derivative, times_derivative_1d
from .checks import abs_square_sums, abs_sum, nonfinite_count
from .layers import delta_propagate_into, linear_forward_into
from .losses import loss_and_output_grad_into
from .optimizers import adam_layers, sgd_layers, sgd_write
from .options import INLINE, JIT
from .products import matmul_tn, matmul_tn_into
from ..plan import (ACC_AT, ACT, A_AT, B_AT, BAD_PLAN, BAD_X, BAD_Y, CAPACITY, D_AT, FIELDS, HEADER, LOSS,
                    N_IN, N_LAYERS, N_OUT, N_PARAMS, NONFINITE, OK, REDUCTION, TMP_AT, W_AT, WS_SIZE, Z_AT)
from ..plan import BLAS as BLAS_AT

CROSS_ENTROPY, SUM = losses.CROSS_ENTROPY, losses.SUM


def targets_and_labels(X, y, plan):
    """One y -> (targets, labels) as the passes take them: class labels (1-D, cross_entropy)
    or targets (2-D), the other an empty view (no allocation)."""
    return (X[:0, :0], y) if y.ndim == 1 else (y, plan[:0])


@overload(targets_and_labels, jit_options=dict(inline="always"))
def _targets_and_labels(X, y, plan):
    if y.ndim == 1:
        return lambda X, y, plan: (X[:0, :0], y)
    return lambda X, y, plan: (y, plan[:0])

MODE_LOSS, MODE_GRAD = 1, 2
# view_sgd's status when it cannot show the update inside the GEMMs finite (_sgd_pass): not
# one of plan.STATUSES, never seen outside ops.py, which then calls view_sgd_stored
UNBOUNDED = -1

# Networks whose every layer has at most this many multiply-adds per step (batch * n_in *
# n_out) run the view-free pass (_flat_pass): scalar loops over the flat buffers, no array
# views. For them a step is all overhead, and every view Numba makes costs reference
# counting (bench/results/numba-flat-cutoff.md; the sweep: bench/numba_flat_cutoff.py).
FLAT_MAX_MACS = 512

# _rows' field argument as NumPy integers: Numba types a Python int constant argument as a
# literal, and would compile one _rows per field; a NumPy integer is a plain int64
Z_ROWS, A_ROWS, D_ROWS = np.intp(Z_AT), np.intp(A_AT), np.intp(D_AT)


def is_flat(arch, batch):
    """Whether batches of `batch` rows of `arch` take the view-free pass."""
    return all(batch * a * b <= FLAT_MAX_MACS for a, b in arch.shapes)


@njit(**JIT)
def _W(flat, plan, l):
    r = HEADER + l * FIELDS
    return flat[plan[r + W_AT]:plan[r + B_AT]].reshape(plan[r + N_IN], plan[r + N_OUT])


@njit(**JIT)
def _b(flat, plan, l):
    r = HEADER + l * FIELDS
    at = plan[r + B_AT]
    return flat[at:at + plan[r + N_OUT]]


@njit(**JIT)
def _rows(ws, plan, l, field, m):
    """Layer l's Z, A or delta (field Z_ROWS, A_ROWS, D_ROWS) for a batch of m rows: an (m, n_out) view."""
    r = HEADER + l * FIELDS
    at, n = plan[r + field], plan[r + N_OUT]
    return ws[at:at + m * n].reshape(m, n)


@njit(**JIT)
def _fits(X, params, ws, plan):
    """The plan was made for at least this many rows, layer 0's inputs, this parameter buffer
    and a workspace this large: the compiled code never indexes past what it was given."""
    return (1 <= X.shape[0] <= plan[CAPACITY] and X.shape[1] == plan[HEADER + N_IN]
            and params.size == plan[N_PARAMS] and ws.size >= plan[WS_SIZE])


@njit(**INLINE)
def _forward(X, params, ws, plan):
    A_prev, m = X, X.shape[0]
    for l in range(plan[N_LAYERS]):
        A = _rows(ws, plan, l, A_ROWS, m)
        r = HEADER + l * FIELDS
        linear_forward_into(A_prev, _W(params, plan, l), _b(params, plan, l), plan[r + ACT],
                            _rows(ws, plan, l, Z_ROWS, m), A, plan[BLAS_AT])
        A_prev = A
    return A_prev


@njit(**JIT)
def forward(X, params, ws, plan):
    """-> (status, output activations: a new array the caller owns)."""
    if not _fits(X, params, ws, plan):
        return BAD_PLAN, np.empty((0, 0), X.dtype)
    if nonfinite_count(X):
        return BAD_X, np.empty((0, 0), X.dtype)
    return OK, _forward(X, params, ws, plan).copy()


@njit(**JIT)
def _weight_gradient(A_prev, delta, dW, db, acc, blas):
    """dW = A_prev.T @ delta; db = delta summed over the batch (_bias_gradient)."""
    matmul_tn(A_prev, delta, dW, blas)
    _bias_gradient(delta, db, acc)


@njit(**JIT)
def _bias_gradient(delta, db, acc):
    """db = delta summed over the batch, in float64 (acc: scratch)."""
    n = db.size
    for j in range(n):
        acc[j] = 0.0
    for m in range(delta.shape[0]):
        d = delta[m]
        for j in range(n):
            acc[j] += d[j]
    for j in range(n):
        db[j] = acc[j]


@njit(**JIT)
def _penalty_scale(l2, plan, m, sw):
    """c of the L2 term 0.5 * c * sum(W**2) (layout.penalty_scale): l2 / n for the mean, n
    the batch's rows or its total sample weight (all-zero: 1); l2 for the sum."""
    if l2 == 0.0 or plan[REDUCTION] == SUM:
        return l2
    if sw.size == 0:
        return l2 / m
    n = 0.0
    for i in range(sw.size):
        n += sw[i]
    return l2 / (n if n != 0.0 else 1.0)


@njit(**JIT)
def _weight_penalty(params, grads, plan, c, gradient):
    """-> 0.5 * c * sum(W**2) over every layer's weights (summed in float64); with
    `gradient`, c * W added to the weight gradients in grads. The biases are not penalised.
    (Two loops: the sum alone vectorizes under JIT's reassociation.)"""
    total = 0.0
    c_ = params.dtype.type(c)
    for l in range(plan[N_LAYERS]):
        r = HEADER + l * FIELDS
        w, b = plan[r + W_AT], plan[r + B_AT]
        for i in range(w, b):
            x = float(params[i])
            total += x * x
        if gradient:
            for i in range(w, b):
                grads[i] += c_ * params[i]
    return 0.5 * c * total


@njit(**JIT)
def _penalised(mode, total, params, grads, ws, plan, c):
    """The data loss `total` plus the L2 term (and, mode >= MODE_GRAD, its gradient into grads)."""
    if c == 0.0:
        return total
    return total + _weight_penalty(params, grads, plan, c, mode != MODE_LOSS)


@njit(**INLINE)
def _flat_pass(mode, X, y, labels, sw, params, grads, ws, plan, c):
    """Forward, loss and (mode >= MODE_GRAD) backward for a tiny network (is_flat):
    the same arithmetic, in the same order, as the view-based pass, as scalar loops over
    offsets into the flat buffers; then the L2 term of scale c (_penalty_scale). -> the loss."""
    zero = ws.dtype.type(0)
    L, batch = plan[N_LAYERS], X.shape[0]
    for l in range(L):
        r = HEADER + l * FIELDS
        n_in, n_out, code = plan[r + N_IN], plan[r + N_OUT], plan[r + ACT]
        w, b, z, a = plan[r + W_AT], plan[r + B_AT], plan[r + Z_AT], plan[r + A_AT]
        prev = plan[r - FIELDS + A_AT] if l > 0 else 0
        for m in range(batch):
            zm = z + m * n_out
            for j in range(n_out):
                ws[zm + j] = zero
            for k in range(n_in):                   # Z[m] = X[m] @ W, row k of W at a time
                x = X[m, k] if l == 0 else ws[prev + m * n_in + k]
                wk = w + k * n_out
                for j in range(n_out):
                    ws[zm + j] += x * params[wk + j]
            am = a + m * n_out
            for j in range(n_out):                  # + b, then A = f(Z)
                v = ws[zm + j] + params[b + j]
                ws[zm + j] = v
                ws[am + j] = activate(code, v)
    r = HEADER + (L - 1) * FIELDS
    n_last, z_last, a_last = plan[r + N_OUT], plan[r + Z_AT], plan[r + A_AT]
    cur = plan[r + D_AT]
    size = batch * n_last
    total = loss_and_output_grad_into(ws[a_last:a_last + size].reshape(batch, n_last), y, labels, sw,
                                      plan[LOSS], plan[REDUCTION], ws[cur:cur + size].reshape(batch, n_last))
    if mode == MODE_LOSS:
        return _penalised(mode, total, params, grads, ws, plan, c)
    code = plan[r + ACT]
    for i in range(size):
        ws[cur + i] *= derivative(code, ws[z_last + i], ws[a_last + i])
    for l in range(L - 1, -1, -1):
        r = HEADER + l * FIELDS
        n_in, n_out, w, b = plan[r + N_IN], plan[r + N_OUT], plan[r + W_AT], plan[r + B_AT]
        prev = plan[r - FIELDS + A_AT] if l > 0 else 0
        cur = plan[r + D_AT]
        for i in range(n_in * n_out):               # dW = A_prev.T @ delta, summed over the batch in order
            grads[w + i] = zero
        for m in range(batch):
            dm = cur + m * n_out
            for k in range(n_in):
                x = X[m, k] if l == 0 else ws[prev + m * n_in + k]
                gk = w + k * n_out
                for j in range(n_out):
                    grads[gk + j] += x * ws[dm + j]
        for j in range(n_out):                      # db = delta summed over the batch, in float64
            acc = 0.0
            for m in range(batch):
                acc += ws[cur + m * n_out + j]
            grads[b + j] = acc
        if l > 0:                                   # delta[l-1] = (delta @ W.T) * f'(Z[l-1])
            rp = r - FIELDS
            z_prev, code, d_prev = plan[rp + Z_AT], plan[rp + ACT], plan[rp + D_AT]
            for m in range(batch):
                dm = cur + m * n_out
                for k in range(n_in):
                    s = zero
                    wk = w + k * n_out
                    for j in range(n_out):
                        s += ws[dm + j] * params[wk + j]
                    i = m * n_in + k
                    ws[d_prev + i] = s * derivative(code, ws[z_prev + i], ws[prev + i])
    return _penalised(mode, total, params, grads, ws, plan, c)


@njit(**INLINE)
def _forward_loss(X, y, labels, sw, params, ws, plan):
    """Forward, the loss, and dLoss/dOut into the output layer's delta. -> the loss."""
    out = _forward(X, params, ws, plan)
    delta = _rows(ws, plan, plan[N_LAYERS] - 1, D_ROWS, X.shape[0])
    return loss_and_output_grad_into(out, y, labels, sw, plan[LOSS], plan[REDUCTION], delta)


@njit(**INLINE)
def _deltas(params, ws, plan, m):
    """After _forward_loss on m rows: every layer's delta (dLoss/dZ[l]) into its rows of the
    workspace, all computed before any weight changes."""
    L = plan[N_LAYERS]
    flat = _rows(ws, plan, L - 1, D_ROWS, m).ravel()
    times_derivative_1d(flat, _rows(ws, plan, L - 1, Z_ROWS, m).ravel(), _rows(ws, plan, L - 1, A_ROWS, m).ravel(),
                        plan[HEADER + (L - 1) * FIELDS + ACT], flat)
    tmp = ws[plan[TMP_AT]:plan[ACC_AT]]
    for l in range(L - 1, 0, -1):
        delta_propagate_into(_rows(ws, plan, l, D_ROWS, m), _W(params, plan, l), _rows(ws, plan, l - 1, Z_ROWS, m),
                             _rows(ws, plan, l - 1, A_ROWS, m), plan[HEADER + (l - 1) * FIELDS + ACT],
                             _rows(ws, plan, l - 1, D_ROWS, m), tmp, plan[BLAS_AT])


@njit(**INLINE)
def _weight_gradients(X, grads, ws, plan):
    """dW[l], db[l] into grads from the deltas _deltas left, every layer."""
    acc, m = ws[plan[ACC_AT]:].view(np.float64), X.shape[0]
    for l in range(plan[N_LAYERS]):
        A_prev = X if l == 0 else _rows(ws, plan, l - 1, A_ROWS, m)
        _weight_gradient(A_prev, _rows(ws, plan, l, D_ROWS, m), _W(grads, plan, l), _b(grads, plan, l), acc,
                         plan[BLAS_AT])


@njit(**INLINE)
def _view_pass(mode, X, y, labels, sw, params, grads, ws, plan, c):
    """Forward, loss and (mode >= MODE_GRAD) backward through the kernels of
    layers.py on views of the flat buffers (BLAS for the large products); then the L2 term
    of scale c (_penalty_scale). -> the loss."""
    total = _forward_loss(X, y, labels, sw, params, ws, plan)
    if mode != MODE_LOSS:
        _deltas(params, ws, plan, X.shape[0])
        _weight_gradients(X, grads, ws, plan)
    return _penalised(mode, total, params, grads, ws, plan, c)


@njit(**INLINE)
def _gemm_update_bounded(x_abs, params, grads, ws, plan, m, lr, weight_decay, c):
    """Whether the plain-SGD update inside the weight-gradient GEMMs is known finite before
    anything is written, with the bias gradients already in grads: every product A_prev.T @
    delta, and each of its partial sums, satisfies |sum_m a_mi d_mj| <= sum|A_prev| *
    sum|delta| =: B; every new weight |(1 - lr*(wd + c)) w - lr p| <= |1 - lr*(wd + c)| sum|W|
    + lr B (c: the L2 term's scale, weights only);
    every new bias is computed. Each must stay under half the dtype's largest value (NaN
    or inf anywhere fails the test too); a step that fails it takes the stored-gradient
    path, whose update is exact about what overflows. x_abs: abs_sum(X).
    With the L2 term (c != 0) the same read of each W also gives its sum of squares, so
    the term costs no pass of its own. -> (bounded?, sum(W**2) over every layer's weights
    in float64; 0 when c == 0)."""
    T = ws.dtype.type
    limit = np.finfo(ws.dtype).max / 2
    lr_, wd = T(lr), T(weight_decay)
    rate, decay = float(lr_), abs(float(T(1) - lr_ * wd - lr_ * T(c)))
    a_abs, bounded, squares = x_abs, True, 0.0
    for l in range(plan[N_LAYERS]):
        if c != 0.0:
            w_abs, w_squares = abs_square_sums(_W(params, plan, l))
            squares += w_squares
        elif bounded:
            w_abs = abs_sum(_W(params, plan, l))
        else:
            break
        if not bounded:             # past a failed layer only the sum of squares is wanted
            continue
        product = a_abs * abs_sum(_rows(ws, plan, l, D_ROWS, m))
        bounded = product <= limit and decay * w_abs + rate * product <= limit
        b, db = _b(params, plan, l), _b(grads, plan, l)
        for j in range(b.size):
            bounded = bounded and abs(b[j] - lr_ * (db[j] + wd * b[j])) <= limit
        if bounded and l + 1 < plan[N_LAYERS]:
            a_abs = abs_sum(_rows(ws, plan, l, A_ROWS, m))
    return bounded, squares


@njit(**INLINE)
def _sgd_pass(X, x_abs, y, labels, sw, params, grads, ws, plan, lr, weight_decay, c):
    """A whole training step for plain SGD (momentum 0) on the view pass. The weights are
    updated by the weight-gradient product itself, W = (1 - lr*(wd + c)) * W - lr * A_prev.T @
    delta (BLAS's beta and alpha; c: the L2 term's scale, so its gradient c * W folds into
    beta), so the gradient is never written, zeroed, scanned for NaN or
    re-read by an update pass (bench/results/sgd-in-gemm.md). torch's SGD rule; the
    rounding differs from the stored-gradient path by float rounding only.

    Nothing is written before every new value is known to be finite (_gemm_update_bounded:
    a pass over the activations and deltas, far smaller than the weights, and one over the
    weights, which also sums W**2 for the L2 term's loss); when that cannot be shown, it
    returns UNBOUNDED with the deltas and the bias gradients in place, and the caller
    finishes the step on the stored-gradient path (view_sgd_stored). -> (status, loss);
    grads is left as scratch."""
    total = _forward_loss(X, y, labels, sw, params, ws, plan)
    if not math.isfinite(total):
        return NONFINITE, total
    m = X.shape[0]
    _deltas(params, ws, plan, m)
    acc = ws[plan[ACC_AT]:].view(np.float64)
    for l in range(plan[N_LAYERS]):
        _bias_gradient(_rows(ws, plan, l, D_ROWS, m), _b(grads, plan, l), acc)
    bounded, squares = _gemm_update_bounded(x_abs, params, grads, ws, plan, m, lr, weight_decay, c)
    if c != 0.0:
        total += 0.5 * c * squares              # as _weight_penalty
        if not math.isfinite(total):
            return NONFINITE, total
    if not bounded:
        return UNBOUNDED, total
    T = ws.dtype.type
    lr_, c_ = T(lr), T(c)
    decay = T(1) - lr_ * T(weight_decay) - lr_ * c_
    alpha, beta = np.float64(-lr_), np.float64(decay)      # exact; float64: one gemm_into for every caller
    for l in range(plan[N_LAYERS]):
        A_prev = X if l == 0 else _rows(ws, plan, l - 1, A_ROWS, m)
        r = HEADER + l * FIELDS
        w, b = plan[r + W_AT], plan[r + B_AT]
        # the bias (momentum 0: sgd_write never touches its velocity argument, here grads)
        sgd_write(params, grads, grads, b, b + plan[r + N_OUT], lr, 0.0, weight_decay, False)
        if not matmul_tn_into(alpha, A_prev, _rows(ws, plan, l, D_ROWS, m), beta, _W(params, plan, l), plan[BLAS_AT]):
            # a product below the BLAS threshold: loops into grads, then the update
            matmul_tn(A_prev, _rows(ws, plan, l, D_ROWS, m), _W(grads, plan, l), plan[BLAS_AT])
            if c != 0.0:                            # + the L2 term's gradient
                for i in range(w, b):
                    grads[i] += c_ * params[i]
            sgd_write(params, grads, grads, w, b, lr, 0.0, weight_decay, False)
    return OK, total


@njit(**INLINE)
def _checked(X, y, labels, sw, params, grads, ws, plan):
    """The arrays fit the plan (sw: one weight per row, or none), X and y are finite.
    -> (status, sum|X|)."""
    L, batch = plan[N_LAYERS], X.shape[0]
    n_last = plan[HEADER + (L - 1) * FIELDS + N_OUT]
    if (not _fits(X, params, ws, plan) or grads.size != params.size or (sw.size != 0 and sw.size != batch)
            or (labels.size != batch if plan[LOSS] == CROSS_ENTROPY
                else y.shape[0] != batch or y.shape[1] != n_last)):
        return BAD_PLAN, math.nan
    # sum|X| is the NaN/inf check (finite exactly when X is, for float32) and the first
    # factor of _sgd_pass's bound, in one pass; only an overflowing float64 sum rescans
    x_abs = abs_sum(X)
    if not math.isfinite(x_abs) and nonfinite_count(X):
        return BAD_X, math.nan
    if nonfinite_count(y):
        return BAD_Y, math.nan
    return OK, x_abs


@njit(**INLINE)
def _checked_state(X, y, labels, sw, params, grads, ws, plan, state):
    """_checked, and the optimizer's state buffer is as long as params."""
    status, x_abs = _checked(X, y, labels, sw, params, grads, ws, plan)
    if status == OK and state.size != params.size:
        return BAD_PLAN, math.nan
    return status, x_abs


@njit(**INLINE)
def _checked_adam(X, y, labels, sw, params, grads, ws, plan, m, v):
    """_checked_state for Adam's two state buffers."""
    status, x_abs = _checked_state(X, y, labels, sw, params, grads, ws, plan, m)
    if status == OK and v.size != params.size:
        return BAD_PLAN, math.nan
    return status, x_abs


@njit(**JIT)
def _finite(status, total, grads):
    """After a gradient pass that ran when status was OK: NONFINITE if the loss or a gradient is."""
    if status == OK and (not math.isfinite(total) or nonfinite_count(grads)):
        return NONFINITE
    return status


@njit(**JIT)
def _sgd_applied(status, total, params, grads, plan, velocity, lr, momentum, weight_decay, nesterov):
    """After a gradient pass that ran when status was OK: the all-or-nothing update."""
    if status == OK and not math.isfinite(total):
        return NONFINITE, total
    if status == OK:
        status = sgd_layers(plan, params, grads, velocity, lr, momentum, weight_decay, nesterov)
    return status, total


@njit(**JIT)
def _adam_applied(status, total, params, grads, plan, m, v, step_count, lr, beta1, beta2, eps, weight_decay):
    if status == OK and not math.isfinite(total):
        return NONFINITE, total
    if status == OK:
        status = adam_layers(plan, params, grads, m, v, step_count, lr, beta1, beta2, eps, weight_decay)
    return status, total


# The entry points: one per purpose and pass kind, chosen in Python once per batch size
# (ops.Prepared; on the view pass plain SGD and SGD with momentum apart, chosen per step),
# so that a first call compiles only what it runs (one entry point for everything compiled
# ~3x as many functions; bench/numba_compile_profile.py, figures in
# bench/results/numba-compile.md). Each returns (status, loss); nothing is written to
# params or optimizer state unless the status is OK. Loss passes: mode MODE_LOSS, the loss
# only; MODE_GRAD, and the gradients into grads. SGD steps: velocity is its state buffer;
# Adam steps: m and v, step_count this step's number (from 1). y: the targets (batch,
# n_out), or for cross_entropy the class labels (batch,) (np.intp); sw: per-row sample
# weights (batch,) of the network's dtype, or an empty array for none; l2: the network's
# L2 penalty (MLP.l2).

@njit(**JIT)
def flat_loss(mode, X, y, sw, params, grads, ws, plan, l2):
    targets, labels = targets_and_labels(X, y, plan)
    status, _ = _checked(X, targets, labels, sw, params, grads, ws, plan)
    c = _penalty_scale(l2, plan, X.shape[0], sw)
    total = _flat_pass(mode, X, targets, labels, sw, params, grads, ws, plan, c) if status == OK else math.nan
    return (status if mode == MODE_LOSS else _finite(status, total, grads)), total


@njit(**JIT)
def view_loss(mode, X, y, sw, params, grads, ws, plan, l2):
    targets, labels = targets_and_labels(X, y, plan)
    status, _ = _checked(X, targets, labels, sw, params, grads, ws, plan)
    c = _penalty_scale(l2, plan, X.shape[0], sw)
    total = _view_pass(mode, X, targets, labels, sw, params, grads, ws, plan, c) if status == OK else math.nan
    return (status if mode == MODE_LOSS else _finite(status, total, grads)), total


@njit(**JIT)
def flat_sgd(X, y, sw, params, grads, ws, plan, l2, velocity, lr, momentum, weight_decay, nesterov):
    targets, labels = targets_and_labels(X, y, plan)
    status, _ = _checked_state(X, targets, labels, sw, params, grads, ws, plan, velocity)
    c = _penalty_scale(l2, plan, X.shape[0], sw)
    total = _flat_pass(MODE_GRAD, X, targets, labels, sw, params, grads, ws, plan, c) if status == OK else math.nan
    return _sgd_applied(status, total, params, grads, plan, velocity, lr, momentum, weight_decay, nesterov)


@njit(**JIT)
def view_sgd(X, y, sw, params, grads, ws, plan, l2, velocity, lr, weight_decay):
    """Plain SGD (momentum 0): W updated inside its GEMM (_sgd_pass). Status UNBOUNDED: the
    step is not done; view_sgd_stored finishes it (a separate entry point, so that a first
    step compiles the stored-gradient path only if it takes it)."""
    targets, labels = targets_and_labels(X, y, plan)
    status, x_abs = _checked_state(X, targets, labels, sw, params, grads, ws, plan, velocity)
    if status != OK:
        return status, math.nan
    c = _penalty_scale(l2, plan, X.shape[0], sw)
    return _sgd_pass(X, x_abs, targets, labels, sw, params, grads, ws, plan, lr, weight_decay, c)


@njit(**JIT)
def view_sgd_stored(X, sw, params, grads, ws, plan, l2, lr, weight_decay):
    """After view_sgd's UNBOUNDED: the weight gradients (and the L2 term's) into grads, then
    the all-or-nothing update. -> status."""
    _weight_gradients(X, grads, ws, plan)
    c = _penalty_scale(l2, plan, X.shape[0], sw)
    if c != 0.0:
        _weight_penalty(params, grads, plan, c, True)
    return sgd_layers(plan, params, grads, grads[:0], lr, 0.0, weight_decay, False)   # no velocity


@njit(**JIT)
def view_momentum(X, y, sw, params, grads, ws, plan, l2, velocity, lr, momentum, weight_decay, nesterov):
    """SGD with momentum: gradients into grads, then the update (optimizers.sgd_layers)."""
    targets, labels = targets_and_labels(X, y, plan)
    status, _ = _checked_state(X, targets, labels, sw, params, grads, ws, plan, velocity)
    c = _penalty_scale(l2, plan, X.shape[0], sw)
    total = _view_pass(MODE_GRAD, X, targets, labels, sw, params, grads, ws, plan, c) if status == OK else math.nan
    return _sgd_applied(status, total, params, grads, plan, velocity, lr, momentum, weight_decay, nesterov)


@njit(**JIT)
def flat_adam(X, y, sw, params, grads, ws, plan, l2, m, v, step_count, lr, beta1, beta2, eps, weight_decay):
    targets, labels = targets_and_labels(X, y, plan)
    status, _ = _checked_adam(X, targets, labels, sw, params, grads, ws, plan, m, v)
    c = _penalty_scale(l2, plan, X.shape[0], sw)
    total = _flat_pass(MODE_GRAD, X, targets, labels, sw, params, grads, ws, plan, c) if status == OK else math.nan
    return _adam_applied(status, total, params, grads, plan, m, v, step_count, lr, beta1, beta2, eps,
                         weight_decay)


@njit(**JIT)
def view_adam(X, y, sw, params, grads, ws, plan, l2, m, v, step_count, lr, beta1, beta2, eps, weight_decay):
    targets, labels = targets_and_labels(X, y, plan)
    status, _ = _checked_adam(X, targets, labels, sw, params, grads, ws, plan, m, v)
    c = _penalty_scale(l2, plan, X.shape[0], sw)
    total = _view_pass(MODE_GRAD, X, targets, labels, sw, params, grads, ws, plan, c) if status == OK else math.nan
    return _adam_applied(status, total, params, grads, plan, m, v, step_count, lr, beta1, beta2, eps,
                         weight_decay)
