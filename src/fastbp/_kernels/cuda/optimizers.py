"""The optimizer updates over the flat buffers on the device (torch semantics, as reference.py),
all or nothing: each kernel runs twice over the same arithmetic, first to test (`write`
False: flags[0] = 0 where a gradient is NaN/inf, flags[1] = 0 where a new parameter or state
value would not be finite), then, once the flags are read back and both are 1, to write.
The read-back is the step's one (CudaOps: with the loss), so refusing costs one more pass
over the buffers on the device and no extra synchronisation."""
import functools
import math

import numpy as np
from numba import cuda

from . import elementwise
from .device import numba_type
from .elementwise import launch_shape


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    T = numba_type(dtype)

    @cuda.jit(cache=True)
    def sgd(p, g, velocity, lr, momentum, weight_decay, nesterov, flags, write):
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            gi, pi = g[i], p[i]
            d = gi + T(weight_decay) * pi
            v = velocity[i]
            step = d
            if momentum != 0:
                v = T(momentum) * v + d
                step = d + T(momentum) * v if nesterov else v
            new = pi - T(lr) * step
            if write:
                if momentum != 0:
                    velocity[i] = v
                p[i] = new
            else:
                if not math.isfinite(gi):
                    flags[0] = T(0)
                if not (math.isfinite(new) and math.isfinite(v)):
                    flags[1] = T(0)

    @cuda.jit(cache=True)
    def adam(p, g, m, v, step_size, sqrt_bias2, beta1, beta2, eps, weight_decay, flags, write):
        for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            gi, pi = g[i], p[i]
            d = gi + T(weight_decay) * pi
            mi = T(beta1) * m[i] + T(1 - beta1) * d
            vi = T(beta2) * v[i] + T(1 - beta2) * d * d
            new = pi - T(step_size) * mi / (math.sqrt(vi) / T(sqrt_bias2) + T(eps))
            if write:
                m[i] = mi
                v[i] = vi
                p[i] = new
            else:
                if not math.isfinite(gi):
                    flags[0] = T(0)
                if not (math.isfinite(new) and math.isfinite(mi) and math.isfinite(vi)):
                    flags[1] = T(0)

    return dict(sgd=sgd, adam=adam)


def _sgd(p, g, velocity, lr, momentum, weight_decay, nesterov, flags, write):
    blocks, threads = launch_shape(p.size)
    kernels(p.dtype)["sgd"][blocks, threads](p, g, velocity, lr, momentum, weight_decay, bool(nesterov), flags,
                                             write)


def _adam(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay, flags, write):
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    blocks, threads = launch_shape(p.size)
    kernels(p.dtype)["adam"][blocks, threads](p, g, m, v, lr / bias1, math.sqrt(bias2), beta1, beta2,
                                              eps, weight_decay, flags, write)


UPDATES = {"sgd": _sgd, "adam": _adam}


def test(kind, flags, *args):
    """Launch the `kind` update's test pass; flags (2 device values) are set to 1 first."""
    elementwise.fill(flags, 1.0)
    UPDATES[kind](*args, flags, False)


def write(kind, flags, *args):
    """Launch the `kind` update's writing pass (after its test pass found both flags 1)."""
    UPDATES[kind](*args, flags, True)


def update(kind, *args):
    """test, read back, write: -> True when applied, False (nothing written) when refused."""
    flags = cuda.device_array(2, dtype=args[0].dtype)
    test(kind, flags, *args)
    if not (flags.copy_to_host() == np.ones(2)).all():
        return False
    write(kind, flags, *args)
    return True
