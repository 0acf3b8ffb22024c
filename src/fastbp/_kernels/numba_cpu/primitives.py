"""The primitives the Numba backend's formulas are built on: exp, tanh, sigmoid, fast in
float32 and exact in float64 (activations.py injects them into fastbp/activations.py's
formulas; expm1 and log1p are libm's).

Numba has no SVML here, so `math.tanh`/`math.exp` on float32 data become scalar libm
calls that LLVM cannot vectorize (most of a tiny-64 step: bench/results/numba-primitives.md).
For float32 the functions below are branch-free and computed in float32 arithmetic, so LLVM
vectorizes the loops that call them 8 lanes wide (AVX2 ymm; float64 arithmetic gave 4):

    exp      x clamped to [-105, 89] (the float32 result is 0 / inf beyond); x = n ln2 + r,
             |r| <= ln2/2, with ln 2 in two parts (Cody-Waite: n * LN2_HI is exact);
             Cephes' expf minimax polynomial (degree 7); 2**n for n in [-151, 128] as
             2**(n >> 1) * 2**(n - (n >> 1)), two normal floats built from their bits, so
             results in the subnormal range are rounded once
    tanh     |x| < 0.625: Cephes' tanhf odd minimax polynomial (x + x**3 P(x**2), exact
             for tiny x); else (1 - t) / (1 + t) with t = exp(-2|x|) (1 - t >= 0.71)
    sigmoid  1 / (1 + e) or e / (1 + e) with e = exp(-|x|)  (never overflows)

Error bound, tested in tests/test_activations32.py over a dense sweep including the
extremes: relative error <= 1e-6 against float64 libm wherever the float64 result is a
normal float32; results below the float32 normal range are within 1e-6 * 2**-126 absolute
(the measured maxima: bench/results/numba-primitives.md). NaN propagates; +-inf give the
limits. float64 data use
libm (math.exp, math.tanh): exact to the reference.

Compilation flags matter: `exp32` is compiled with fastmath "contract" only and called,
not Numba-inlined, so LLVM inlines it with its own flags and the kernels' "reassoc" cannot
fold the two-part ln 2 reduction into one float32 constant (which would break the 1e-6
bound at |x| ~ 100). `tanh32`/`sigmoid32` are Numba-inlined (too large for LLVM's inliner, and
a call in the loop stops vectorization); their own arithmetic tolerates reassociation.

`fast_exp`, `fast_tanh`, `fast_sigmoid` choose by the argument's type (float32: the
approximations above, returning float32; float64: libm), so one kernel source serves both
dtypes.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

F32 = np.float32
I32 = np.int32
# float32 constants: a bare Python float is float64 in Numba and would promote the arithmetic
LOG2E = F32(1.4426950408889634)
HALF = F32(0.5)
ONE = F32(1.0)
TWO = F32(2.0)
LN2_HI = F32(0.693359375)         # 9 significant bits: n * LN2_HI is exact for |n| < 2**15
LN2_LO = F32(-2.12194440e-4)      # ln 2 - LN2_HI
EXP_HI = F32(89.0)                # exp(89) > float32 max: the result is inf
EXP_LO = F32(-105.0)              # exp(-105) < 2**-150: the result rounds to 0
EXP_P = tuple(F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                               4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
TANH_SMALL = F32(0.625)
TANH_P = tuple(F32(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                1.33314422036e-1, -3.33332819422e-1))
EXP_BIAS = I32(127)
MANT_BITS = I32(23)
ONE_BIT = I32(1)

MATH32 = dict(cache=True, error_model="numpy", fastmath={"contract"})


@njit(**MATH32)
def exp32(x):
    """exp(x) for a float32 x, computed in float32; NaN -> NaN."""
    xc = x if x > EXP_LO else EXP_LO          # NaN -> EXP_LO here; restored at the end
    xc = xc if xc < EXP_HI else EXP_HI
    n = np.floor(xc * LOG2E + HALF)           # vroundps
    r = (xc - n * LN2_HI) - n * LN2_LO
    p = ((((EXP_P[0] * r + EXP_P[1]) * r + EXP_P[2]) * r + EXP_P[3]) * r + EXP_P[4]) * r + EXP_P[5]
    p = p * (r * r) + r + ONE
    k = I32(n)                                # vcvttps2dq; n is an exact integer
    k1 = k >> ONE_BIT
    s1 = I32((k1 + EXP_BIAS) << MANT_BITS).view(F32)       # 2**k1
    s2 = I32((k - k1 + EXP_BIAS) << MANT_BITS).view(F32)   # 2**(k - k1)
    y = (p * s1) * s2                         # the first product is exact
    return y if x == x else x


@njit(inline="always", **MATH32)
def tanh32(x):
    """tanh(x) for a float32 x, computed in float32; NaN -> NaN."""
    ax = abs(x)
    z = x * x
    small = ((((TANH_P[0] * z + TANH_P[1]) * z + TANH_P[2]) * z + TANH_P[3]) * z + TANH_P[4]) * z * x + x
    t = exp32(-TWO * ax)
    big = (ONE - t) / (ONE + t)
    big = big if x >= 0 else -big
    y = small if ax < TANH_SMALL else big
    return y if x == x else x


@njit(inline="always", **MATH32)
def sigmoid32(x):
    """1 / (1 + exp(-x)) for a float32 x, computed in float32; NaN -> NaN."""
    e = exp32(-abs(x))
    s = ONE / (ONE + e)
    y = s if x >= 0 else e * s
    return y if x == x else x


@njit(cache=True, error_model="numpy", inline="always")
def sigmoid_exact(x):
    e = math.exp(-abs(x))          # the reference's formula, operation for operation
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


# ---- type-dispatched entry points used by the kernels ----
# float32 argument: the float32 approximation; float64: libm. The test is on the
# argument's type, a compile-time constant, so each specialisation keeps one branch.

def is_float32(x):
    return isinstance(x, np.float32)


@overload(is_float32)
def _is_float32(x):
    if x == types.float32:
        return lambda x: True
    return lambda x: False


@njit(cache=True, error_model="numpy", inline="always")
def fast_exp(x):
    if is_float32(x):
        return exp32(x)
    return math.exp(x)


@njit(cache=True, error_model="numpy", inline="always")
def fast_tanh(x):
    if is_float32(x):
        return tanh32(x)
    return math.tanh(x)


@njit(cache=True, error_model="numpy", inline="always")
def fast_sigmoid(x):
    if is_float32(x):
        return sigmoid32(x)
    return sigmoid_exact(x)
