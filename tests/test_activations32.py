"""The vectorizable primitives the compiled backends' activations are built on, driven through
each backend's own compiled code over dense sweeps.

float32: relative error <= 1e-6 against float64 wherever the float64 result is a normal
float32, within 1e-6 * tiny below that, +-inf where it overflows float32, NaN where it is NaN;
NaN -> NaN, +-inf -> the limits. Numba's exp, tanh, sigmoid (numba_cpu/primitives.py) and
Cython's exp, expm1, log1p, tanh, sigmoid (cython_cpu/primitives.pxd) compute in float32
lanes; Cython's on every instruction-set path this CPU can run (kernels.activation_paths()).

float64: Cython's within 1e-15 relative of libm (NumPy's) over dense sweeps and of mpmath on
sparser ones (Numba's float64 primitives are libm's own).

And every activation f and f' of the table on every Cython path, float32 and float64, close to
the float64 reference over a dense sweep (ACTIVATION_TOL).
"""
import numpy as np
import pytest

import fastbp as fb
from fastbp import activations as act
from fastbp._kernels import reference
from conftest import cython_paths, on_cython_path

F32 = np.float32
TINY = np.finfo(F32).tiny


def sweep():
    """Dense float32 points over the whole useful range, the extremes and special values."""
    parts = [np.linspace(-120, 120, 1_000_001), np.geomspace(1e-38, 120, 100_001),
             -np.geomspace(1e-38, 120, 100_001),
             [0.0, -0.0, 0.3, -0.3, np.nextafter(0.3, 0), 88.72, 89.0, -87.3, -103.9, -104.0, -1.0,
              np.nextafter(F32(-1), F32(0)), 1e30, -1e30, np.finfo(F32).max, -np.finfo(F32).max, TINY, -TINY, 1e-45]]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]).astype(F32)


def sweep64():
    parts = [np.linspace(-40, 40, 400_001), np.geomspace(1e-300, 745, 20_001), -np.geomspace(1e-300, 745, 20_001),
             [0.0, -0.0, 709.7, 710.0, -745.1, -746.0, 1e300, -1e300, -1.0, np.nextafter(-1.0, 0), 5e-324]]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


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


def cython_primitive(path, name):
    def evaluate(x):
        with on_cython_path(path) as C:
            out = np.empty_like(x)
            C.evaluate_primitive(name, x, out)
            return out
    return evaluate


def sigmoid64(z):
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


PATHS = cython_paths()
FUNCTIONS = {
    ("numba", "tanh"): lambda x: numba_activate(x, act.TANH),
    ("numba", "sigmoid"): lambda x: numba_activate(x, act.SIGMOID),
    ("numba", "exp"): numba_exp,
}
FUNCTIONS.update({(f"cython-{path}", name): cython_primitive(path, name) for path in PATHS for name in act.PRIMITIVES})
REFERENCE = {"tanh": np.tanh, "sigmoid": sigmoid64, "exp": np.exp, "expm1": np.expm1, "log1p": np.log1p}
LIMITS = {"tanh": [1, -1], "sigmoid": [1, 0], "exp": [np.inf, 0], "expm1": [np.inf, -1], "log1p": [np.inf, np.nan]}


@pytest.mark.parametrize("backend,name", sorted(FUNCTIONS), ids=[f"{b}-{n}" for b, n in sorted(FUNCTIONS)])
def test_float32_approximation_error_bound(backend, name):
    if backend.partition("-")[0] not in fb.available_backends():
        pytest.skip(f"{backend} backend not usable here")
    fn = FUNCTIONS[backend, name]
    x = sweep()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        got = fn(x)
        ref = REFERENCE[name](x.astype(np.float64))
    assert got.dtype == F32
    normal = (np.abs(ref) >= TINY) & (np.abs(ref) <= np.finfo(F32).max)
    rel = np.abs(got[normal].astype(np.float64) - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= 1e-6, f"{name}: max relative error {rel.max():.3g} at x={x[normal][rel.argmax()]}"
    small = np.abs(ref) < TINY
    assert np.all(np.abs(got[small].astype(np.float64) - ref[small]) <= 1e-6 * TINY + 1e-45)
    huge = np.abs(ref) > np.finfo(F32).max                  # overflows float32 (exp), or -inf (log1p(-1))
    np.testing.assert_array_equal(got[huge], np.sign(ref[huge]) * np.inf)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))          # log1p below -1
    special = np.array([np.nan, np.inf, -np.inf], F32)
    with np.errstate(over="ignore", invalid="ignore"):
        out = fn(special)
    assert np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], LIMITS[name])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", act.PRIMITIVES)
def test_cython_float64_primitives_are_libm_accurate(path, name):
    """Within 1e-15 relative of NumPy's libm over a dense sweep, and of mpmath on a sparse one;
    below the normal range within 1e-15 * tiny; the limits and NaN as libm."""
    mpmath = pytest.importorskip("mpmath")
    x = sweep64()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        got = cython_primitive(path, name)(x)
        ref = REFERENCE[name](x)
    tiny = np.finfo(np.float64).tiny
    normal = np.isfinite(ref) & (np.abs(ref) >= tiny)
    rel = np.abs(got[normal] - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= 1e-15, f"{name}: max relative error {rel.max():.3g} at x={x[normal][rel.argmax()]}"
    small = np.abs(ref) < tiny
    assert np.all(np.abs(got[small] - ref[small]) <= 1e-15 * tiny)
    np.testing.assert_array_equal(got[~np.isfinite(ref)], ref[~np.isfinite(ref)])     # inf, -inf, NaN
    exact = {"exp": mpmath.exp, "expm1": mpmath.expm1, "log1p": mpmath.log1p, "tanh": mpmath.tanh,
             "sigmoid": lambda z: 1 / (1 + mpmath.exp(-z))}[name]
    with mpmath.workdps(40):
        points = x[normal][::200]
        want = np.array([float(exact(mpmath.mpf(float(z)))) for z in points])
    np.testing.assert_allclose(got[normal][::200], want, rtol=1e-15, atol=0)
    special = cython_primitive(path, name)(np.array([np.nan, np.inf, -np.inf]))
    assert np.isnan(special[0])
    np.testing.assert_array_equal(special[1:], LIMITS[name])


@pytest.mark.parametrize("path", PATHS)
def test_cython_float64_activations_are_libm(path):
    with on_cython_path(path) as C:
        x = np.linspace(-30, 30, 10001).reshape(-1, 1)
        Z, A = np.empty_like(x), np.empty_like(x)
        for code, ref in ((act.TANH, np.tanh), (act.SIGMOID, sigmoid64)):
            C.linear_forward(x, np.ones((1, 1)), np.zeros(1), Z, A, code)
            np.testing.assert_allclose(A.ravel(), ref(x.ravel()), rtol=1e-15, atol=0)


# test_numerics.py's rtol (against mpmath there, at saturated points); its absolute part is 4 eps,
# wider here: over a dense sweep gelu' near saturation (0.5 (1 + t) + ..., t -> -1) amplifies the
# last bit of tanh some 45-fold (measured maxima beyond rtol: gelu' 4.6 eps float32, 43 eps float64;
# every other f and f' within 3.2 eps)
ACTIVATION_TOL = {np.float32: (4e-6, 8 * np.finfo(np.float32).eps), np.float64: (1e-12, 64 * np.finfo(np.float64).eps)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", act.NAMES)
def test_cython_activations_on_every_path(path, name, dtype):
    """f (linear_forward's epilogue) and f' (activation_backward) over a dense sweep against
    the float64 reference (on the same, float32-rounded inputs), within ACTIVATION_TOL."""
    z = np.concatenate([np.linspace(-30, 30, 60_001), np.geomspace(1e-30, 1e4, 2_001),
                        -np.geomspace(1e-30, 1e4, 2_001)]).astype(dtype)
    code = act.CODES[name]
    with on_cython_path(path) as C:
        Z, A = np.empty((z.size, 1), dtype), np.empty((z.size, 1), dtype)
        C.linear_forward(z.reshape(-1, 1), np.ones((1, 1), dtype), np.zeros(1, dtype), Z, A, code)
        D = np.ones_like(Z)
        C.activation_backward(D, Z, A, code)
    z64 = z.astype(np.float64)
    want_a = reference.FUNCTIONS[code](z64)
    want_d = reference.DERIVATIVES[code](z64, want_a)
    rtol, atol = ACTIVATION_TOL[dtype]
    for got, want, what in ((A.ravel(), want_a, "f"), (D.ravel(), want_d, "f'")):
        err = np.abs(got.astype(np.float64) - want)
        bad = ~(err <= rtol * np.abs(want) + atol)
        assert not bad.any(), f"{name} {what} on {path}: z={z[bad][:5]}, got {got[bad][:5]}, want {want[bad][:5]}"
