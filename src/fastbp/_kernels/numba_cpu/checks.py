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


@njit(**JIT)
def abs_square_sums(a):
    """-> (sum |a|, sum a**2), both in float64, in one pass over a (abs_sum's bound and the
    L2 term's sum of squares from one read of the weights)."""
    flat = a.ravel()
    s = q = 0.0
    for i in range(flat.size):
        x = float(flat[i])
        s += abs(x)
        q += x * x
    return s, q
