"""The optimizer updates over the flat buffers (torch semantics), for the Numba kernels.

An update writes every new value or none: where a new parameter or state value would not
be finite (learning rate x gradient beyond the dtype, Adam's second moment overflowing) the
step is refused with everything as it was. Two passes do it: a check pass computes every
new value and only tests it (it reads the buffers and stores nothing, so it vectorizes as
a reduction), and, when all is finite, a write pass computes the same values again and
stores them (a plain vectorized loop, the update as it was before refusals). The write
pass's values are the check pass's bit for bit: the same expressions, compiled with the
same flags. One pass that kept the old values where it could put them back (and undid on
failure) cost the momentum and Adam steps up to twice their time without refusals; the
two passes cost them a few percent (bench/results/update-refusal.md).

    sgd_layers, adam_layers   the compiled steps' update, layer by layer over the plan
                    (each layer's weights, then its biases: a later step may fuse a
                    layer's update into its weight-gradient product)
    sgd_update, adam_update   the public kernels (Ops): the same two passes over the
                    whole buffers; g is only read
    sgd_write       the write pass alone, for a range whose new values are known finite
                    (step._sgd_pass's bound)

A range's flags: GRADIENT (a gradient is NaN/inf), UPDATE (a new value is not finite).
"""
import math

import numpy as np
from numba import njit

from .options import JIT
from ..plan import B_AT, FIELDS, HEADER, N_LAYERS, N_OUT, NONFINITE, OK, OVERFLOW, W_AT

GRADIENT, UPDATE = 1, 2

# Adam without reassociation: with it LLVM turned b2*v + (1-b2)*d*d, where d*d overflows to
# inf, into NaN (harmless now that such a step is refused, but the test of v is then a test
# of what LLVM did; torch and the reference give inf)
ADAM_JIT = dict(JIT, fastmath={"contract"})


@njit(**JIT)
def _ranges(p, g, s, i0, i1):
    """-> the three buffers' [i0, i1), indexed from 0 by the passes: with the index known
    non-negative LLVM drops Numba's negative-index wraparound, which otherwise turned the
    loads of the check passes into gathers"""
    return p[i0:i1], g[i0:i1], s[i0:i1]


@njit(**JIT)
def sgd_flags(p, g, velocity, i0, i1, lr, momentum, weight_decay, nesterov):
    """torch.optim.SGD (dampening 0) over p[i0:i1], computed and tested, nothing stored.
    -> flags (GRADIENT, UPDATE)."""
    T = p.dtype.type
    lr_, mu, wd = T(lr), T(momentum), T(weight_decay)
    big = np.finfo(p.dtype).max
    p, g, velocity = _ranges(p, g, velocity, i0, i1)
    bad_g = bad = False
    if momentum == 0:
        for i in range(p.size):
            pi, gi = p[i], g[i]
            new = pi - lr_ * (gi + wd * pi)
            bad_g |= not abs(gi) <= big
            bad |= not abs(new) <= big
    else:
        for i in range(p.size):
            pi, gi = p[i], g[i]
            d = gi + wd * pi
            v = mu * velocity[i] + d
            new = pi - lr_ * (d + mu * v if nesterov else v)
            bad_g |= not abs(gi) <= big
            bad |= (not abs(new) <= big) | (not abs(v) <= big)
    return bad_g * GRADIENT | bad * UPDATE


@njit(**JIT)
def sgd_write(p, g, velocity, i0, i1, lr, momentum, weight_decay, nesterov):
    """The values sgd_flags tested, stored: p[i0:i1] (and velocity where momentum != 0)."""
    T = p.dtype.type
    lr_, mu, wd = T(lr), T(momentum), T(weight_decay)
    p, g, velocity = _ranges(p, g, velocity, i0, i1)
    if momentum == 0:
        for i in range(p.size):
            pi = p[i]
            p[i] = pi - lr_ * (g[i] + wd * pi)
    else:
        for i in range(p.size):
            pi = p[i]
            d = g[i] + wd * pi
            v = mu * velocity[i] + d
            velocity[i] = v
            p[i] = pi - lr_ * (d + mu * v if nesterov else v)


@njit(**ADAM_JIT)
def adam_flags(p, g, m, v, i0, i1, step, lr, beta1, beta2, eps, weight_decay):
    """torch.optim.Adam (L2 weight decay) over p[i0:i1], computed and tested, nothing
    stored. -> flags (GRADIENT, UPDATE)."""
    T = p.dtype.type
    b1, b2, wd, e = T(beta1), T(beta2), T(weight_decay), T(eps)
    c1, c2 = T(1 - beta1), T(1 - beta2)
    step_size = T(lr / (1 - beta1 ** step))
    inv_sqrt_bias2 = T(1 / math.sqrt(1 - beta2 ** step))
    big = np.finfo(p.dtype).max
    p, g, m, v = _ranges(p, g, m, i0, i1) + (v[i0:i1],)
    bad_g = bad = False
    for i in range(p.size):
        pi, gi = p[i], g[i]
        d = gi + wd * pi
        mi = b1 * m[i] + c1 * d
        vi = b2 * v[i] + c2 * d * d
        new = pi - step_size * mi / (math.sqrt(vi) * inv_sqrt_bias2 + e)
        bad_g |= not abs(gi) <= big
        bad |= (not abs(new) <= big) | (not abs(mi) <= big) | (not vi <= big)
    return bad_g * GRADIENT | bad * UPDATE


@njit(**ADAM_JIT)
def adam_write(p, g, m, v, i0, i1, step, lr, beta1, beta2, eps, weight_decay):
    """The values adam_flags tested, stored: p, m and v over [i0, i1)."""
    T = p.dtype.type
    b1, b2, wd, e = T(beta1), T(beta2), T(weight_decay), T(eps)
    c1, c2 = T(1 - beta1), T(1 - beta2)
    step_size = T(lr / (1 - beta1 ** step))
    inv_sqrt_bias2 = T(1 / math.sqrt(1 - beta2 ** step))
    p, g, m, v = _ranges(p, g, m, i0, i1) + (v[i0:i1],)
    for i in range(p.size):
        pi = p[i]
        d = g[i] + wd * pi
        mi = b1 * m[i] + c1 * d
        vi = b2 * v[i] + c2 * d * d
        m[i] = mi
        v[i] = vi
        p[i] = pi - step_size * mi / (math.sqrt(vi) * inv_sqrt_bias2 + e)


@njit(**JIT)
def _status(flags):
    """-> OK, NONFINITE (a gradient is not finite) or OVERFLOW (a new value would not be)."""
    if flags == 0:
        return OK
    return NONFINITE if flags & GRADIENT else OVERFLOW


@njit(**JIT)
def sgd_layers(plan, p, g, velocity, lr, momentum, weight_decay, nesterov):
    """torch.optim.SGD over every layer's weights, then its biases, all or nothing. -> status."""
    flags = 0
    for l in range(plan[N_LAYERS]):
        r = HEADER + l * FIELDS
        w, b = plan[r + W_AT], plan[r + B_AT]
        flags |= sgd_flags(p, g, velocity, w, b, lr, momentum, weight_decay, nesterov)
        flags |= sgd_flags(p, g, velocity, b, b + plan[r + N_OUT], lr, momentum, weight_decay, nesterov)
    if flags == 0:
        for l in range(plan[N_LAYERS]):
            r = HEADER + l * FIELDS
            w, b = plan[r + W_AT], plan[r + B_AT]
            sgd_write(p, g, velocity, w, b, lr, momentum, weight_decay, nesterov)
            sgd_write(p, g, velocity, b, b + plan[r + N_OUT], lr, momentum, weight_decay, nesterov)
    return _status(flags)


@njit(**JIT)
def adam_layers(plan, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """torch.optim.Adam over every layer's weights, then its biases, all or nothing. -> status."""
    flags = 0
    for l in range(plan[N_LAYERS]):
        r = HEADER + l * FIELDS
        w, b = plan[r + W_AT], plan[r + B_AT]
        flags |= adam_flags(p, g, m, v, w, b, step, lr, beta1, beta2, eps, weight_decay)
        flags |= adam_flags(p, g, m, v, b, b + plan[r + N_OUT], step, lr, beta1, beta2, eps, weight_decay)
    if flags == 0:
        for l in range(plan[N_LAYERS]):
            r = HEADER + l * FIELDS
            w, b = plan[r + W_AT], plan[r + B_AT]
            adam_write(p, g, m, v, w, b, step, lr, beta1, beta2, eps, weight_decay)
            adam_write(p, g, m, v, b, b + plan[r + N_OUT], step, lr, beta1, beta2, eps, weight_decay)
    return _status(flags)


@njit(**JIT)
def sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov):
    """The public kernel: torch.optim.SGD over the flat buffers, g unchanged. -> applied?"""
    if sgd_flags(p, g, velocity, 0, p.size, lr, momentum, weight_decay, nesterov):
        return False
    sgd_write(p, g, velocity, 0, p.size, lr, momentum, weight_decay, nesterov)
    return True


@njit(**JIT)
def adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """The public kernel: torch.optim.Adam over the flat buffers, g unchanged. -> applied?"""
    if adam_flags(p, g, m, v, 0, p.size, step, lr, beta1, beta2, eps, weight_decay):
        return False
    adam_write(p, g, m, v, 0, p.size, step, lr, beta1, beta2, eps, weight_decay)
    return True
