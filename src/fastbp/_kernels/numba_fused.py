"""The one-call network passes of the Numba backend: forward, loss, backward and the
optimizer update for every layer inside ONE compiled call, over the flat buffers.

Workspace `ws` (one flat array per batch size, allocated once by NumbaOps): for each
layer l, Z[l] then A[l] (batch, n_l); then two delta buffers (batch, max n_l) used in
turn; then scratch for a transposed weight matrix (max n_in * n_out).

Status codes returned with the loss (nothing is written to params/optimizer state unless
the status is OK; BAD_X/BAD_Y are found before anything at all is written):
"""
import math

import numpy as np
from numba import njit

from .numba_kernels import (JIT, adam_update, delta_propagate_into, linear_forward_into,
                            loss_and_output_grad_into, nonfinite_count, sgd_update,
                            times_derivative, weight_gradient_into)

OK, BAD_X, BAD_Y, NONFINITE = 0, 1, 2, 3
MODE_LOSS, MODE_GRAD, MODE_TRAIN = 1, 2, 3
OPT_NONE, OPT_SGD, OPT_ADAM = 0, 1, 2


def workspace_size(sizes, batch):
    n = sizes[1:]
    return 2 * batch * sum(n) + 2 * batch * max(n) + max(a * b for a, b in zip(sizes[:-1], sizes[1:]))


@njit(**JIT)
def _param_offset(sizes, l):
    at = 0
    for i in range(l):
        at += sizes[i] * sizes[i + 1] + sizes[i + 1]
    return at


@njit(**JIT)
def _z_offset(sizes, batch, l):
    at = 0
    for i in range(l):
        at += 2 * batch * sizes[i + 1]
    return at


@njit(**JIT)
def _W(flat, sizes, l):
    at = _param_offset(sizes, l)
    return flat[at:at + sizes[l] * sizes[l + 1]].reshape(sizes[l], sizes[l + 1])


@njit(**JIT)
def _b(flat, sizes, l):
    at = _param_offset(sizes, l) + sizes[l] * sizes[l + 1]
    return flat[at:at + sizes[l + 1]]


@njit(**JIT)
def _Z(ws, sizes, batch, l):
    at = _z_offset(sizes, batch, l)
    return ws[at:at + batch * sizes[l + 1]].reshape(batch, sizes[l + 1])


@njit(**JIT)
def _A(ws, sizes, batch, l):
    at = _z_offset(sizes, batch, l) + batch * sizes[l + 1]
    return ws[at:at + batch * sizes[l + 1]].reshape(batch, sizes[l + 1])


@njit(**JIT)
def _tail(ws, sizes, batch):
    """(delta buffer 0, delta buffer 1, transpose scratch) as flat arrays."""
    L = sizes.size - 1
    at = _z_offset(sizes, batch, L)
    widest = 0
    for i in range(1, L + 1):
        widest = max(widest, sizes[i])
    d = batch * widest
    return ws[at:at + d], ws[at + d:at + 2 * d], ws[at + 2 * d:]


@njit(**JIT)
def _forward(X, params, ws, sizes, acts):
    batch = X.shape[0]
    A_prev = X
    for l in range(sizes.size - 1):
        Z = _Z(ws, sizes, batch, l)
        A = _A(ws, sizes, batch, l)
        linear_forward_into(A_prev, _W(params, sizes, l), _b(params, sizes, l), acts[l], Z, A)
        A_prev = A
    return A_prev


@njit(**JIT)
def forward(X, params, ws, sizes, acts):
    """-> (status, output activations: a new array the caller owns)."""
    if nonfinite_count(X):
        return BAD_X, np.empty((0, 0), X.dtype)
    return OK, _forward(X, params, ws, sizes, acts).copy()


@njit(**JIT)
def step(mode, X, y, labels, params, grads, ws, sizes, acts, loss, reduction,
         opt, lr, momentum, weight_decay, nesterov, beta1, beta2, eps, step_count, s1, s2):
    """One compiled pass. mode MODE_LOSS: the loss only; MODE_GRAD: loss and gradients
    (into grads); MODE_TRAIN: and then the optimizer update (opt: OPT_SGD with velocity s1,
    OPT_ADAM with m s1 and v s2), skipped when the loss or a gradient is not finite.
    -> (status, loss)."""
    if nonfinite_count(X):
        return BAD_X, math.nan
    if nonfinite_count(y):
        return BAD_Y, math.nan
    batch = X.shape[0]
    L = sizes.size - 1
    out = _forward(X, params, ws, sizes, acts)
    d0, d1, tmp = _tail(ws, sizes, batch)
    delta = d0[:batch * sizes[L]].reshape(batch, sizes[L])
    total = loss_and_output_grad_into(out, y, labels, loss, reduction, delta)
    if mode == MODE_LOSS:
        return OK, total
    flat = delta.ravel()
    times_derivative(flat, _Z(ws, sizes, batch, L - 1).ravel(), out.ravel(), acts[L - 1], flat)
    use0 = True
    for l in range(L - 1, -1, -1):
        A_prev = X if l == 0 else _A(ws, sizes, batch, l - 1)
        weight_gradient_into(A_prev, delta, _W(grads, sizes, l), _b(grads, sizes, l))
        if l > 0:
            use0 = not use0
            buf = d0 if use0 else d1
            nxt = buf[:batch * sizes[l]].reshape(batch, sizes[l])
            delta_propagate_into(delta, _W(params, sizes, l), _Z(ws, sizes, batch, l - 1), A_prev,
                                 acts[l - 1], nxt, tmp)
            delta = nxt
    if not math.isfinite(total) or nonfinite_count(grads):
        return NONFINITE, total
    if mode == MODE_TRAIN:
        if opt == OPT_SGD:
            sgd_update(params, grads, s1, lr, momentum, weight_decay, nesterov)
        elif opt == OPT_ADAM:
            adam_update(params, grads, s1, s2, step_count, lr, beta1, beta2, eps, weight_decay)
    return OK, total
