"""The activation table compiled for numba.cuda (fastbp/activations.py's formulas), and the
one activation kernel of its own (activation_backward).

One set of device functions per dtype (`device_functions(np.float32)`), so that float32
kernels compute in float32 throughout: every constant is the dtype's, and math.exp etc. of
a float32 is the float32 intrinsic. An unknown code gives NaN, which poisons what it
touches (a device function cannot raise; the host side checks codes before any launch).
"""
import functools
import math

import numpy as np
from numba import cuda

from ..formulas import compile_formulas, switch

PRIMITIVES = dict(exp=math.exp, expm1=math.expm1, log1p=math.log1p, tanh=math.tanh)


@functools.lru_cache(maxsize=None)
def device_functions(dtype):
    """-> (activate(code, z), derivative(code, z, a), sigmoid(z)) as device functions for `dtype`."""
    T = np.dtype(dtype).type
    device = cuda.jit(device=True)
    formulas = compile_formulas(device, PRIMITIVES, T, __name__)
    formulas["NAN"] = T(np.nan)
    activate = device(switch(formulas, __file__, "activate(code, z)",
                             lambda e: [f"return {e.f.__name__}(z)"], ["return NAN"]))
    derivative = device(switch(formulas, __file__, "derivative(code, z, a)",
                               lambda e: [f"return {e.df.__name__}(z, a)"], ["return NAN"]))
    return activate, derivative, formulas["sigmoid"]


@functools.lru_cache(maxsize=None)
def kernels(dtype):
    """The activation kernels for `dtype`: activation_backward(dA, Z, A, code, out)."""
    _, derivative, _ = device_functions(np.dtype(dtype))

    @cuda.jit(cache=True)
    def activation_backward(dA, Z, A, code, out):
        n_cols = dA.shape[1]
        for i in range(cuda.grid(1), dA.size, cuda.gridsize(1)):
            r, c = i // n_cols, i % n_cols
            out[r, c] = dA[r, c] * derivative(code, Z[r, c], A[r, c])

    return dict(activation_backward=activation_backward)


def activation_backward(dA, Z, A, code, out):
    """out = dA * f'(Z) (device arrays)."""
    from .elementwise import launch_shape
    blocks, threads = launch_shape(dA.size)
    kernels(dA.dtype)["activation_backward"][blocks, threads](dA, Z, A, code, out)
    return out
