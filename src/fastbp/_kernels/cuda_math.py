"""Device functions shared by the CUDA kernels: activations and their derivatives.

One set per dtype (`device_functions(np.float32)`), so that float32 kernels compute in
float32 throughout: every constant is cast to the dtype `T`, and `math.exp` etc. of a
float32 is the float32 intrinsic. The formulas are those of the NumPy reference
(`reference.py`), term for term.
"""
import functools
import math

import numba
import numpy as np
from numba import cuda

from .. import activations as act

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU, SILU = (
    act.IDENTITY, act.SIGMOID, act.TANH, act.RELU, act.LEAKY_RELU, act.ELU, act.SOFTPLUS, act.GELU, act.SILU)


SIMULATED = bool(getattr(numba.config, "ENABLE_CUDASIM", False))
# Thread counts are rounded to whole warps on a GPU; numba's simulator runs each thread as a
# Python thread (about 0.2 ms each), so there they are rounded to 8 instead: same kernels.
WARP = 8 if SIMULATED else 32


def numba_type(dtype):
    return numba.from_dtype(np.dtype(dtype))


@functools.lru_cache(maxsize=None)
def device_functions(dtype):
    """-> (activate(z, code), derivative(z, a, code), sigmoid(z)) as device functions for `dtype`."""
    T = numba_type(dtype)
    slope, alpha = act.LEAKY_SLOPE, act.ELU_ALPHA
    gelu_c, gelu_k = act.GELU_C, act.GELU_K

    @cuda.jit(device=True, cache=True)
    def sigmoid(z):
        e = math.exp(-abs(z))                    # never overflows
        if z >= T(0):
            return T(1) / (T(1) + e)
        return e / (T(1) + e)

    @cuda.jit(device=True, cache=True)
    def activate(z, code):
        if code == IDENTITY:
            return z
        if code == SIGMOID:
            return sigmoid(z)
        if code == TANH:
            return math.tanh(z)
        if code == RELU:
            return z if z > T(0) else T(0)
        if code == LEAKY_RELU:
            return z if z > T(0) else T(slope) * z
        if code == ELU:
            return z if z > T(0) else T(alpha) * math.expm1(z)
        if code == SOFTPLUS:                     # logaddexp(0, z)
            return max(z, T(0)) + math.log1p(math.exp(-abs(z)))
        if code == GELU:
            return T(0.5) * z * (T(1) + math.tanh(T(gelu_c) * (z + T(gelu_k) * z * z * z)))
        # SILU
        return z * sigmoid(z)

    @cuda.jit(device=True, cache=True)
    def derivative(z, a, code):
        """f'(z), given z and a = f(z)."""
        if code == IDENTITY:
            return T(1)
        if code == SIGMOID:
            return a * (T(1) - a)
        if code == TANH:
            return T(1) - a * a
        if code == RELU:
            return T(1) if z > T(0) else T(0)    # 0 at 0
        if code == LEAKY_RELU:
            return T(1) if z > T(0) else T(slope)
        if code == ELU:
            return T(1) if z > T(0) else T(alpha) * math.exp(z)
        if code == SOFTPLUS:
            return sigmoid(z)
        if code == GELU:
            t = math.tanh(T(gelu_c) * (z + T(gelu_k) * z * z * z))
            zc = min(max(z, T(-100)), T(100))    # as the reference: 1 - t*t is 0 beyond, and z*z may overflow
            return (T(0.5) * (T(1) + t)
                    + T(0.5) * zc * (T(1) - t * t) * T(gelu_c) * (T(1) + T(3) * T(gelu_k) * zc * zc))
        # SILU
        s = sigmoid(z)
        return s * (T(1) + z * (T(1) - s))

    return activate, derivative, sigmoid
