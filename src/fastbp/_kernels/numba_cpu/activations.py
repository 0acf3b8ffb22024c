"""The activation table compiled for Numba CPU (fastbp/activations.py's formulas).

Primitives: exp, tanh and sigmoid are primitives.py's (float32 data: branch-free float32
forms that LLVM vectorizes 8 lanes wide; float64: libm); expm1 and log1p are libm's.
Constants exact in float32 are float32, so they never promote float32 arithmetic (and are
exact for float64); the others (LEAKY_SLOPE, GELU_C, ...) stay float64: float32 data compute
those terms in float64 and store the rounded result. The formulas are inlined into their
callers (Numba IR), so a loop over one of them is one straight loop.

    activate(code, z), derivative(code, z, a)     one element (the view-free step)
    activate_1d(z, a, code)                       a[i] = f(z[i]) over 1-D arrays (a may be z)
    times_derivative_1d(d, z, a, code, out)       out[i] = d[i] * f'(z[i]) given a = f(z) (out may be d)

The loops branch on the code outside the element loop, so each branch vectorizes. An
unknown code raises ValueError.
"""
import math

import numpy as np
from numba import njit

from ..formulas import compile_formulas, switch
from .options import FASTMATH, JIT
from .primitives import fast_exp, fast_sigmoid, fast_tanh


def _constant(value):
    return np.float32(value) if float(np.float32(value)) == value else float(value)


_formulas = compile_formulas(njit(inline="always", error_model="numpy", fastmath=FASTMATH),
                             dict(exp=fast_exp, expm1=math.expm1, log1p=math.log1p, tanh=fast_tanh,
                                  sigmoid=fast_sigmoid),
                             _constant, __name__)
_UNKNOWN = ['raise ValueError("unknown activation code")']

activate = njit(**JIT)(switch(_formulas, __file__, "activate(code, z)",
                              lambda e: [f"return {e.f.__name__}(z)"], _UNKNOWN))
derivative = njit(**JIT)(switch(_formulas, __file__, "derivative(code, z, a)",
                                lambda e: [f"return {e.df.__name__}(z, a)"], _UNKNOWN))
activate_1d = njit(**JIT)(switch(_formulas, __file__, "activate_1d(z, a, code)",
                                 lambda e: ["for i in range(z.size):", f"    a[i] = {e.f.__name__}(z[i])"],
                                 _UNKNOWN))
times_derivative_1d = njit(**JIT)(switch(
    _formulas, __file__, "times_derivative_1d(d, z, a, code, out)",
    lambda e: ["for i in range(d.size):", f"    out[i] = d[i] * {e.df.__name__}(z[i], a[i])"], _UNKNOWN))
