"""The vectorizable float32 exp / tanh / sigmoid the compiled backends use in their forward
passes, driven through each backend's own compiled code: relative error <= 1e-6 against
float64 wherever the float64 result is a normal float32, within 1e-6 * tiny below that,
NaN -> NaN, +-inf -> the limits. Numba's (numba_cpu/primitives.py) compute in float32 lanes, as
the float32 backends promise; Cython's tanh (cython_cpu/primitives.pxd) computes in double and rounds once, so it
must also be within one float32 ulp (float32 rounding only, as docs/design.md asks of a backend).
Cython's sigmoid is libm's expf-based formula (covered by the shared suites).
"""
import numpy as np
import pytest

import fastbp as fb
from fastbp import activations as act

F32 = np.float32
TINY = np.finfo(F32).tiny


def sweep():
    """Dense float32 points over the whole useful range, the extremes and special values."""
    parts = [np.linspace(-120, 120, 1_000_001), np.geomspace(1e-38, 120, 100_001),
             -np.geomspace(1e-38, 120, 100_001),
             [0.0, -0.0, 0.3, -0.3, np.nextafter(0.3, 0), 88.72, 89.0, -87.3, -103.9, -104.0,
              1e30, -1e30, np.finfo(F32).max, -np.finfo(F32).max, TINY, -TINY, 1e-45]]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]).astype(F32)


def numba_activate(x, code):
    from fastbp._kernels.numba_cpu.activations import activate_1d
    out = np.empty_like(x)
    activate_1d(x, out, code)
    return out


def numba_exp(x):
    """fast_exp isn't used by a kernel on its own; evaluate it under the kernels' flags."""
    from numba import njit

    from fastbp._kernels.numba_cpu.options import FASTMATH
    from fastbp._kernels.numba_cpu.primitives import fast_exp

    @njit(fastmath=FASTMATH, error_model="numpy")
    def run(a, out):
        for i in range(a.size):
            out[i] = fast_exp(a[i])

    out = np.empty_like(x)
    run(x, out)
    return out


def cython_activate(x, code):
    """A = f(X @ [[1]] + 0): the extension's forward pass itself (X @ [[1]] + 0 is x exactly)."""
    from fastbp._kernels.cython_cpu import kernels as C
    X = np.ascontiguousarray(x.reshape(-1, 1))
    Z, A = np.empty_like(X), np.empty_like(X)
    C.linear_forward(X, np.ones((1, 1), F32), np.zeros(1, F32), Z, A, code)
    return A.reshape(-1)


def sigmoid64(z):
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


FUNCTIONS = {
    ("numba", "tanh"): lambda x: numba_activate(x, act.TANH),
    ("numba", "sigmoid"): lambda x: numba_activate(x, act.SIGMOID),
    ("numba", "exp"): numba_exp,
    ("cython", "tanh"): lambda x: cython_activate(x, act.TANH),
}
REFERENCE = {"tanh": np.tanh, "sigmoid": sigmoid64, "exp": np.exp}


@pytest.mark.parametrize("backend,name", sorted(FUNCTIONS), ids=[f"{b}-{n}" for b, n in sorted(FUNCTIONS)])
def test_float32_approximation_error_bound(backend, name):
    if backend not in fb.available_backends():
        pytest.skip(f"{backend} backend not usable here")
    fn = FUNCTIONS[backend, name]
    x = sweep()
    with np.errstate(over="ignore"):
        got = fn(x)
        ref = REFERENCE[name](x.astype(np.float64))
    assert got.dtype == F32
    normal = (np.abs(ref) >= TINY) & (np.abs(ref) <= np.finfo(F32).max)
    rel = np.abs(got[normal].astype(np.float64) - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= 1e-6, f"{name}: max relative error {rel.max():.3g} at x={x[normal][rel.argmax()]}"
    if backend == "cython":
        ulps = np.abs(got[normal].astype(np.float64) - ref[normal]) / np.spacing(np.abs(ref[normal]).astype(F32))
        assert ulps.max() <= 1.0, f"{name}: {ulps.max():.3f} ulp at x={x[normal][ulps.argmax()]}"
    small = np.abs(ref) < TINY
    assert np.all(np.abs(got[small].astype(np.float64) - ref[small]) <= 1e-6 * TINY + 1e-45)
    if name == "exp":
        assert np.all(np.isinf(got[ref > np.finfo(F32).max]))
    special = np.array([np.nan, np.inf, -np.inf], F32)
    with np.errstate(over="ignore", invalid="ignore"):
        out = fn(special)
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], {"tanh": [1, -1], "sigmoid": [1, 0], "exp": [np.inf, 0]}[name])


def test_cython_float64_activations_are_libm():
    if "cython" not in fb.available_backends():
        pytest.skip("cython backend not usable here")
    from fastbp._kernels.cython_cpu import kernels as C
    x = np.linspace(-30, 30, 10001).reshape(-1, 1)
    Z, A = np.empty_like(x), np.empty_like(x)
    for code, ref in ((act.TANH, np.tanh), (act.SIGMOID, sigmoid64)):
        C.linear_forward(x, np.ones((1, 1)), np.zeros(1), Z, A, code)
        np.testing.assert_allclose(A.ravel(), ref(x.ravel()), rtol=1e-15, atol=0)
