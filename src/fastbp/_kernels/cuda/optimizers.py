"""The optimizer updates over the flat buffers on the device (torch semantics, as reference.py)."""
import functools
import math

from numba import cuda

from .device import numba_type
from .elementwise import launch_shape


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    T = numba_type(dtype)

    @cuda.jit(cache=True)
    def sgd(p, g, velocity, lr, momentum, weight_decay, nesterov):
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            d = g[i] + T(weight_decay) * p[i]
            if momentum != 0:
                v = T(momentum) * velocity[i] + d
                velocity[i] = v
                d = d + T(momentum) * v if nesterov else v
            p[i] -= T(lr) * d

    @cuda.jit(cache=True)
    def adam(p, g, m, v, step_size, sqrt_bias2, beta1, beta2, eps, weight_decay):
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            d = g[i] + T(weight_decay) * p[i]
            mi = T(beta1) * m[i] + T(1 - beta1) * d
            vi = T(beta2) * v[i] + T(1 - beta2) * d * d
            m[i] = mi
            v[i] = vi
            p[i] -= T(step_size) * mi / (math.sqrt(vi) / T(sqrt_bias2) + T(eps))

    return dict(sgd=sgd, adam=adam)


def sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov):
    blocks, threads = launch_shape(p.size)
    kernels(p.dtype)["sgd"][blocks, threads](p, g, velocity, lr, momentum, weight_decay, bool(nesterov))


def adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    blocks, threads = launch_shape(p.size)
    kernels(p.dtype)["adam"][blocks, threads](p, g, m, v, lr / bias1, math.sqrt(bias2), beta1, beta2,
                                              eps, weight_decay)
