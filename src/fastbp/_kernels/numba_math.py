"""Scalar activation functions for the Numba backend: fast float32, exact float64.

Numba has no SVML here, so `math.tanh`/`math.exp` on float32 data become scalar libm
calls that LLVM cannot vectorize; on a tiny-64 step they took most of the time. For
float32 the functions below are branch-free polynomials evaluated in float64 arithmetic
(so LLVM vectorizes the loops that call them) and rounded once to float32:

    exp      range reduction x = n ln2 + r, |r| <= ln2/2, Taylor degree 9 (error < 2e-10
             relative), 2**n built from its bits (no float -> int conversion, which AVX2
             cannot vectorize for float64)
    tanh     |x| < 0.3: odd Taylor series to x**13 (error < 1e-10 relative);
             else (1 - t) / (1 + t) with t = exp(-2|x|)  (no cancellation: 1 - t > 0.45)
    sigmoid  1 / (1 + e) or e / (1 + e) with e = exp(-|x|)  (never overflows)

Error bound, tested in tests/test_numba.py over a dense sweep including the extremes:
relative error <= 1e-6 against float64 libm wherever the float64 result is a normal
float32 (in practice the float32 rounding, <= 6e-8, dominates); results below the
float32 normal range are within 1e-6 * 2**-126 absolute. NaN propagates; +-inf give the
limits. float64 data use libm (math.exp, math.tanh): exact to the reference.

`fast_exp`, `fast_tanh`, `fast_sigmoid` choose by the argument's type (float32: the
approximations above; float64: libm), so one kernel source serves both dtypes.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
# exp of float32 data: beyond these bounds the float32 result is inf / 0 anyway
EXP_HI = 90.0
EXP_LO = -110.0
SHIFTER = 6755399441055744.0   # 1.5 * 2**52


@njit(cache=True, error_model="numpy", inline="always")
def exp_approx(x):
    """exp(x) for a float64 x in float32 range, relative error < 2e-10; NaN -> NaN."""
    xc = x if x > EXP_LO else EXP_LO
    xc = xc if xc < EXP_HI else EXP_HI
    n = math.floor(xc * LOG2E + 0.5)   # an exact integer in float64 (vectorizes: vroundpd)
    r = xc - n * LN2
    p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
        1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880)))))))))
    # 2**n from its bits without a float -> int conversion (AVX2 has none for float64):
    # n + 1.5 * 2**52 is exact and holds n (two's complement) in its low mantissa bits,
    # which the shift moves into the exponent field.
    scale = np.int64((np.float64(n + SHIFTER).view(np.int64) + 1023) << 52).view(np.float64)
    y = p * scale
    return y if x == x else x


@njit(cache=True, error_model="numpy", inline="always")
def tanh_approx(x):
    """tanh(x) for a float64 x, relative error < 1e-9; NaN -> NaN."""
    ax = abs(x)
    x2 = x * x
    small = x * (1.0 + x2 * (-1.0 / 3 + x2 * (2.0 / 15 + x2 * (-17.0 / 315 + x2 * (
        62.0 / 2835 + x2 * (-1382.0 / 155925 + x2 * (21844.0 / 6081075)))))))
    t = exp_approx(-2.0 * ax)
    big = (1.0 - t) / (1.0 + t)
    big = big if x >= 0 else -big
    y = small if ax < 0.3 else big
    return y if x == x else x


@njit(cache=True, error_model="numpy", inline="always")
def sigmoid_approx(x):
    """1 / (1 + exp(-x)) for a float64 x, relative error < 1e-9; NaN -> NaN."""
    e = exp_approx(-abs(x))
    s = 1.0 / (1.0 + e)
    y = s if x >= 0 else e * s
    return y if x == x else x


@njit(cache=True, error_model="numpy", inline="always")
def sigmoid_exact(x):
    e = math.exp(-abs(x))          # the reference's formula, operation for operation
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


# ---- type-dispatched entry points used by the kernels ----
# float32 argument: the approximation (computed and returned in float64; the kernels round
# it once when they store it); float64: libm. The test is on the argument's type, a
# compile-time constant, so each specialisation keeps one branch.

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
        return exp_approx(np.float64(x))
    return math.exp(x)


@njit(cache=True, error_model="numpy", inline="always")
def fast_tanh(x):
    if is_float32(x):
        return tanh_approx(np.float64(x))
    return math.tanh(x)


@njit(cache=True, error_model="numpy", inline="always")
def fast_sigmoid(x):
    if is_float32(x):
        return sigmoid_approx(np.float64(x))
    return sigmoid_exact(x)
