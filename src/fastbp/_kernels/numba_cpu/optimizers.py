"""The optimizer updates over the flat buffers (torch semantics), for the Numba kernels."""
import math

from numba import njit

from .options import JIT


@njit(**JIT)
def sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov):
    """torch.optim.SGD (dampening 0), fused over the flat buffers."""
    T = p.dtype.type
    lr_, mu, wd = T(lr), T(momentum), T(weight_decay)
    n = p.size
    if momentum == 0:
        if weight_decay == 0:
            for i in range(n):
                p[i] -= lr_ * g[i]
        else:
            for i in range(n):
                p[i] -= lr_ * (g[i] + wd * p[i])
    elif nesterov:
        for i in range(n):
            d = g[i] + wd * p[i]
            v = mu * velocity[i] + d
            velocity[i] = v
            p[i] -= lr_ * (d + mu * v)
    else:
        for i in range(n):
            d = g[i] + wd * p[i]
            v = mu * velocity[i] + d
            velocity[i] = v
            p[i] -= lr_ * v


# Adam without reassociation: with it LLVM turned b2*v + (1-b2)*d*d, where d*d overflows to
# inf, into NaN (the reference, and torch, keep v = inf and leave the parameter unchanged)
@njit(**dict(JIT, fastmath={"contract"}))
def adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """torch.optim.Adam (L2 weight decay), fused over the flat buffers."""
    T = p.dtype.type
    b1, b2, wd, e = T(beta1), T(beta2), T(weight_decay), T(eps)
    c1, c2 = T(1 - beta1), T(1 - beta2)
    step_size = T(lr / (1 - beta1 ** step))
    inv_sqrt_bias2 = T(1 / math.sqrt(1 - beta2 ** step))
    for i in range(p.size):
        d = g[i] + wd * p[i]
        mi = b1 * m[i] + c1 * d
        vi = b2 * v[i] + c2 * d * d
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) * inv_sqrt_bias2 + e)


