"""The activation table (fastbp/activations.py) and what is built from it: every entry has a
reference form, the formulas themselves agree with the reference, the generated Cython file
is current, the formula rules are enforced, and an unknown code fails loudly everywhere.

(Each backend's numbers against the reference and torch: test_kernels.py, test_autograd.py,
test_numerics.py, which run every activation of the table.)
"""
import math

import numpy as np
import pytest

import fastbp as fb
from fastbp import activations
from fastbp._kernels import reference

Z = np.concatenate([np.linspace(-12, 12, 241), [0.0, -0.0, 1e-300, -1e-300, 99.0, 101.0, -101.0, 500.0, -500.0]])


def test_table_is_consistent():
    assert activations.NAMES == tuple(a.name for a in activations.TABLE)
    assert len(set(activations.NAMES)) == len(activations.NAMES)
    assert [activations.CODES[n] for n in activations.NAMES] == list(range(len(activations.NAMES)))
    assert set(reference.FUNCTIONS) == set(reference.DERIVATIVES) == set(range(len(activations.TABLE)))
    for entry in activations.TABLE:
        assert entry.f.__name__ == f"f_{entry.name}" and entry.df.__name__ == f"df_{entry.name}"


@pytest.mark.parametrize("name", activations.NAMES)
def test_plain_python_formulas_equal_the_reference(name):
    """The single source itself, run as plain Python on float64 (math's primitives), against
    the hand-written NumPy reference: f and f' to 1e-13 of the scale."""
    entry = activations.TABLE[activations.CODES[name]]
    code = activations.CODES[name]
    A = reference.FUNCTIONS[code](Z)
    D = reference.DERIVATIVES[code](Z, A)
    f = np.array([entry.f(float(z)) for z in Z])
    df = np.array([entry.df(float(z), float(a)) for z, a in zip(Z, A)])
    for got, want, what in ((f, A, "f"), (df, D, "f'")):
        scale = np.abs(want).max()
        assert np.all(np.abs(got - want) <= 1e-13 * (np.abs(want) + scale)), (name, what)


def test_derivative_from_output_is_exact():
    """Where the table says f' needs only a = f(z), computing it from (a, a) is exact."""
    for code, entry in enumerate(activations.TABLE):
        if entry.from_output:
            A = reference.FUNCTIONS[code](Z)
            np.testing.assert_array_equal(reference.DERIVATIVES[code](A, A), reference.DERIVATIVES[code](Z, A))


def test_generated_cython_files_are_current():
    from fastbp._kernels.cython_cpu import generate
    for path, make in generate.FILES.items():
        with open(path, encoding="utf-8") as f:
            checked_in = f.read()
        assert checked_in == make(), f"{path} is stale: run python -m fastbp._kernels.cython_cpu.generate and rebuild"


def test_generator_rejects_what_the_targets_cannot_compile():
    from fastbp._kernels.cython_cpu.generate import FormulaError, c_function

    def bare_number(z):
        return 2.0 * z

    def loop(z):
        for _ in range(3):
            z = z * activations.HALF
        return z

    def unknown_call(z):
        return math.sin(z)

    for fn, why in ((bare_number, "bare number"), (loop, "only `name = expression`"),
                    (unknown_call, "calls must be")):
        with pytest.raises(FormulaError, match=why):
            c_function(fn, [])


def test_numba_switches_fail_loudly_on_an_unknown_code():
    pytest.importorskip("numba")
    if "numba" not in fb.available_backends():
        pytest.skip("numba backend not usable")
    from fastbp._kernels.numba_cpu import activations as nb
    unknown = len(activations.TABLE)
    x = np.ones(3)
    for call in (lambda: nb.activate(unknown, 0.5), lambda: nb.derivative(unknown, 0.5, 0.5),
                 lambda: nb.activate_1d(x, x.copy(), unknown),
                 lambda: nb.times_derivative_1d(x, x, x, unknown, x.copy())):
        with pytest.raises(ValueError, match="unknown activation code"):
            call()


@pytest.mark.parametrize("kernel", ["linear_forward", "activation_backward", "delta_propagate"])
def test_compiled_entry_points_reject_an_unknown_code(kernel):
    """Below fastbp.kernels (which maps names), the Cython entry points check the code too."""
    if "cython" not in fb.available_backends():
        pytest.skip("cython backend not usable")
    from fastbp._kernels.cython_cpu import kernels as C
    a = np.ones((2, 2))
    args = dict(linear_forward=(a, a, np.ones(2), a.copy(), a.copy()), activation_backward=(a.copy(), a, a),
                delta_propagate=(a, a, a, a, a.copy()))[kernel]
    with pytest.raises(ValueError, match="unknown activation code"):
        getattr(C, kernel)(*args, len(activations.TABLE))
