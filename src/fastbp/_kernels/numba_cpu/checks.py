"""Whole-array checks a step makes before it writes anything: NaN/inf, and |sum| bounds."""
from numba import njit

from .options import JIT


@njit(**JIT)
def nonfinite_count(a):
    """0 if every element is finite: x * 0 is 0 for finite x and NaN otherwise."""
    flat = a.ravel()
    s = a.dtype.type(0)
    for i in range(flat.size):
        s += flat[i] * 0
    return 0 if s == 0 else 1


@njit(**JIT)
def abs_sum(a):
    """The sum of |a| in float64: finite exactly when every element is (for float32 data;
    for float64 it may also overflow, which callers treat as 'too large to bound')."""
    flat = a.ravel()
    s = 0.0
    for i in range(flat.size):
        s += abs(flat[i])
    return s
