"""The activation table compiled for Numba CPU (fastbp/activations.py's formulas).

Primitives: exp, tanh and sigmoid are primitives.py's (float32 data: branch-free float32
forms that LLVM vectorizes 8 lanes wide; float64: libm); expm1 and log1p are libm's.
Constants exact in float32 are float32, so they never promote float32 arithmetic (and are
exact for float64); the others (LEAKY_SLOPE, GELU_C, ...) stay float64: float32 data compute
those terms in float64 and store the rounded result (f' is rounded to d's dtype before the
product).

    activate(code, z), derivative(code, z, a)     one element (the view-free step)
    activate_1d(z, a, code)                       a[i] = f(z[i]) over 1-D arrays (a may be z,
                                                  but runs scalar then)
    times_derivative_1d(d, z, a, code, out)       out[i] = d[i] * f'(z[i]) given a = f(z) (out may be d)

The loops branch on the code outside the element loop, so each branch is one straight loop
that LLVM vectorizes where it can. An unknown code raises ValueError.
"""
import math

import numpy as np
from numba import njit

from ...activations import CONSTANTS
from ..formulas import compile_formulas, switch
from .options import FASTMATH, JIT
from .primitives import fast_exp, fast_sigmoid, fast_tanh


def _constant(value):
    return np.float32(value) if float(np.float32(value)) == value else float(value)


_INLINE = njit(inline="always", error_model="numpy", fastmath=FASTMATH)
_PRIMITIVES = dict(exp=fast_exp, expm1=math.expm1, log1p=math.log1p, tanh=fast_tanh, sigmoid=fast_sigmoid)
_UNKNOWN = ['raise ValueError("unknown activation code")']

# The view-free pass works one element at a time: its switches call the fast primitives
# instead of inlining them into every branch (the same speed there; Numba compiled the
# inlining switches in about twice the time, most of a tiny network's first step).
_called = compile_formulas(_INLINE, {name: njit(**JIT)(fn.py_func) if hasattr(fn, "py_func") else fn
                                     for name, fn in _PRIMITIVES.items()}, _constant, __name__)
activate = njit(**JIT)(switch(_called, __file__, "activate(code, z)",
                              lambda e: [f"return {e.f.__name__}(z)"], _UNKNOWN))
derivative = njit(**JIT)(switch(_called, __file__, "derivative(code, z, a)",
                                lambda e: [f"return {e.df.__name__}(z, a)"], _UNKNOWN))

# The loops inline the formulas LLVM can vectorize, so that each such branch is one straight
# loop. The others call libm (expm1, log1p; or exp, tanh on the float64 a constant promotes
# them to) and run scalar anyway: they are called, compiled once, which spares the loops'
# compile time.
_FLOAT64_CONSTANTS = {name for name, value in CONSTANTS.items() if not isinstance(_constant(value), np.float32)}
_CALL = njit(**JIT)


def _lane_jit(fn):
    names = set(fn.__code__.co_names)
    libm = names & {"expm1", "log1p"} or any(n.startswith("f_") for n in names) or (
        names & _FLOAT64_CONSTANTS and names & {"exp", "tanh", "sigmoid"})
    return (_CALL if libm else _INLINE)(fn)


_formulas = compile_formulas(_lane_jit, _PRIMITIVES, _constant, __name__)
activate_1d = njit(**JIT)(switch(_formulas, __file__, "activate_1d(z, a, code)",
                                 lambda e: ["for i in range(z.size):", f"    a[i] = {e.f.__name__}(z[i])"],
                                 _UNKNOWN))
times_derivative_1d = njit(**JIT)(switch(
    _formulas, __file__, "times_derivative_1d(d, z, a, code, out)",
    lambda e: ["T = d.dtype.type      # f' in d's dtype: float32 lanes for float32 data",
               "for i in range(d.size):", f"    out[i] = d[i] * T({e.df.__name__}(z[i], a[i]))"], _UNKNOWN))
