"""The optimizer updates over the flat buffers (torch semantics), for the Numba kernels.

An update writes every new value or none: where a new parameter or state value would not
be finite (learning rate x gradient beyond the dtype, Adam's second moment overflowing) the
step is refused with everything as it was. One pass does it: the new values are written
as they are computed, the old ones kept where they can be put back exactly (each old
parameter in the gradient buffer, which the update has just read for the last time; the
old state in `undo`), and a flag says whether any new value or gradient is not finite; if
one is, the pass is undone. That costs the stores of the old values and nothing else: no
second pass over the buffers (bench/results/update-refusal.md).

    sgd_layers, adam_layers   the compiled steps' update, layer by layer over the plan
                    (each layer's weights, then its biases: a later step may fuse a
                    layer's update into its weight-gradient product)
    sgd_update, adam_update   the public kernels (Ops): the same pass on a copy of the
                    gradient, which they leave as it was

A range's flags: GRADIENT (a gradient is NaN/inf), UPDATE (a new value is not finite).
"""
import math

import numpy as np
from numba import njit

from .options import JIT
from ..plan import B_AT, FIELDS, HEADER, N_LAYERS, N_OUT, NONFINITE, OK, OVERFLOW, W_AT

GRADIENT, UPDATE = 1, 2


@njit(**JIT)
def sgd_range(p, g, velocity, undo, i0, i1, lr, momentum, weight_decay, nesterov):
    """torch.optim.SGD (dampening 0) over p[i0:i1]; old p into g, old velocity into undo.
    -> flags (GRADIENT, UPDATE)."""
    T = p.dtype.type
    lr_, mu, wd = T(lr), T(momentum), T(weight_decay)
    big = np.finfo(p.dtype).max
    bad_g = bad = 0
    if momentum == 0:
        for i in range(i0, i1):
            pi, gi = p[i], g[i]
            new = pi - lr_ * (gi + wd * pi)
            g[i] = pi
            p[i] = new
            bad_g |= not abs(gi) <= big
            bad |= not abs(new) <= big
    else:
        for i in range(i0, i1):
            pi, gi, vi = p[i], g[i], velocity[i]
            d = gi + wd * pi
            v = mu * vi + d
            new = pi - lr_ * (d + mu * v if nesterov else v)
            g[i] = pi
            undo[i] = vi
            velocity[i] = v
            p[i] = new
            bad_g |= not abs(gi) <= big
            bad |= (not abs(new) <= big) | (not abs(v) <= big)
    return bad_g * GRADIENT | bad * UPDATE


# Adam without reassociation: with it LLVM turned b2*v + (1-b2)*d*d, where d*d overflows to
# inf, into NaN (harmless now that such a step is refused, but the test of v is then a test
# of what LLVM did; torch and the reference give inf)
@njit(**dict(JIT, fastmath={"contract"}))
def adam_range(p, g, m, v, undo, i0, i1, step, lr, beta1, beta2, eps, weight_decay):
    """torch.optim.Adam (L2 weight decay) over p[i0:i1]; old p into g, old m into undo[:n],
    old v into undo[n:]. -> flags (GRADIENT, UPDATE)."""
    T = p.dtype.type
    n = p.size
    b1, b2, wd, e = T(beta1), T(beta2), T(weight_decay), T(eps)
    c1, c2 = T(1 - beta1), T(1 - beta2)
    step_size = T(lr / (1 - beta1 ** step))
    inv_sqrt_bias2 = T(1 / math.sqrt(1 - beta2 ** step))
    big = np.finfo(p.dtype).max
    bad_g = bad = 0
    for i in range(i0, i1):
        pi, gi, mo, vo = p[i], g[i], m[i], v[i]
        d = gi + wd * pi
        mi = b1 * mo + c1 * d
        vi = b2 * vo + c2 * d * d
        new = pi - step_size * mi / (math.sqrt(vi) * inv_sqrt_bias2 + e)
        g[i] = pi
        undo[i] = mo
        undo[n + i] = vo
        m[i] = mi
        v[i] = vi
        p[i] = new
        bad_g |= not abs(gi) <= big
        bad |= (not abs(new) <= big) | (not abs(mi) <= big) | (not vi <= big)
    return bad_g * GRADIENT | bad * UPDATE


@njit(**JIT)
def undo_update(p, g, s1, s2, undo):
    """Put back what a refused update pass changed: p from g, the state from undo (s1, s2:
    the state buffers, empty where there are none)."""
    n = p.size
    for i in range(n):
        p[i] = g[i]
    for i in range(s1.size):
        s1[i] = undo[i]
    for i in range(s2.size):
        s2[i] = undo[n + i]


@njit(**JIT)
def _finish(flags, p, g, s1, s2, undo):
    """-> the status of an update pass with these flags: OK, NONFINITE (a gradient is not
    finite) or OVERFLOW (a new value would not be); on either it is undone first."""
    if flags == 0:
        return OK
    undo_update(p, g, s1, s2, undo)
    return NONFINITE if flags & GRADIENT else OVERFLOW


@njit(**JIT)
def sgd_layers(plan, p, g, velocity, undo, lr, momentum, weight_decay, nesterov):
    """torch.optim.SGD over every layer's weights, then its biases, all or nothing. -> status."""
    flags = 0
    for l in range(plan[N_LAYERS]):
        r = HEADER + l * FIELDS
        w, b = plan[r + W_AT], plan[r + B_AT]
        flags |= sgd_range(p, g, velocity, undo, w, b, lr, momentum, weight_decay, nesterov)
        flags |= sgd_range(p, g, velocity, undo, b, b + plan[r + N_OUT], lr, momentum, weight_decay, nesterov)
    return _finish(flags, p, g, velocity if momentum != 0 else velocity[:0], velocity[:0], undo)


@njit(**JIT)
def adam_layers(plan, p, g, m, v, undo, step, lr, beta1, beta2, eps, weight_decay):
    """torch.optim.Adam over every layer's weights, then its biases, all or nothing. -> status."""
    flags = 0
    for l in range(plan[N_LAYERS]):
        r = HEADER + l * FIELDS
        w, b = plan[r + W_AT], plan[r + B_AT]
        flags |= adam_range(p, g, m, v, undo, w, b, step, lr, beta1, beta2, eps, weight_decay)
        flags |= adam_range(p, g, m, v, undo, b, b + plan[r + N_OUT], step, lr, beta1, beta2, eps, weight_decay)
    return _finish(flags, p, g, m, v, undo)


@njit(**JIT)
def sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov):
    """The public kernel: torch.optim.SGD over the flat buffers, g unchanged. -> applied?"""
    work, undo = g.copy(), np.empty_like(velocity)
    if sgd_range(p, work, velocity, undo, 0, p.size, lr, momentum, weight_decay, nesterov):
        undo_update(p, work, velocity if momentum != 0 else velocity[:0], velocity[:0], undo)
        return False
    return True


@njit(**JIT)
def adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """The public kernel: torch.optim.Adam over the flat buffers, g unchanged. -> applied?"""
    work, undo = g.copy(), np.empty(2 * p.size, p.dtype)
    if adam_range(p, work, m, v, undo, 0, p.size, step, lr, beta1, beta2, eps, weight_decay):
        undo_update(p, work, m, v, undo)
        return False
    return True
