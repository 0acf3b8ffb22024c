"""fb.kernels.* on every backend against the NumPy reference, every activation, both dtypes.

Also the layout contract of docs/design.md: Fortran-ordered, strided, negative-stride and
read-only inputs give the same numbers as a C-contiguous copy, and no input is ever
written to (nor returned as an output that the caller could write through).
"""
import numpy as np
import pytest

import fastbp as fb
from fastbp import activations
from fastbp._kernels import reference
from conftest import CUDA_SIMULATED, tolerance

ACTIVATIONS = activations.NAMES
REF = reference.ops

# (batch, n_in, n_out): odd, prime, one-sized and not-a-multiple-of-anything sizes.
SIZES = [(1, 1, 1), (7, 13, 5), (3, 1, 17), (33, 65, 31), (129, 10, 3)]
TINY_SIZES = [(1, 1, 1), (3, 5, 2)]      # the CUDA simulator runs ~0.2 ms per thread


def sizes_for(backend):
    return TINY_SIZES if backend == "cuda" and CUDA_SIMULATED else SIZES


def arrays(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=s) * 1.5).astype(dtype) for s in shapes]


def layer_inputs(batch, n_in, n_out, dtype, activation, seed=0):
    """Everything the four kernels take, with Z/A of one layer consistent (A = f(Z))."""
    X, W, b, delta, Z_prev = arrays([(batch, n_in), (n_in, n_out), (n_out,), (batch, n_out), (batch, n_in)],
                                    dtype, seed)
    code = activations.code(activation)
    A_prev = reference.FUNCTIONS[code](Z_prev).astype(dtype)
    Z, A = REF.linear_forward(X, W, b, code)
    return dict(X=X, W=W, b=b, delta=delta, Z_prev=Z_prev, A_prev=A_prev, Z=Z, A=A)


def call(kernel, inputs, activation, backend):
    """Run one public kernel; -> tuple of outputs."""
    i = inputs
    if kernel == "linear_forward":
        out = fb.kernels.linear_forward(i["X"], i["W"], i["b"], activation, backend=backend)
    elif kernel == "activation_backward":
        out = fb.kernels.activation_backward(i["delta"], i["Z"], i["A"], activation, backend=backend)
    elif kernel == "delta_propagate":
        out = fb.kernels.delta_propagate(i["delta"], i["W"], i["Z_prev"], i["A_prev"], activation, backend=backend)
    else:
        out = fb.kernels.weight_gradient(i["X"], i["delta"], backend=backend)
    return out if isinstance(out, tuple) else (out,)


def expected(kernel, inputs, activation):
    """The reference, spelt out from the formulas of docs/design.md on the reference's f and f'."""
    i, code = inputs, activations.code(activation)
    f, df = reference.FUNCTIONS[code], reference.DERIVATIVES[code]
    if kernel == "linear_forward":
        Z = i["X"] @ i["W"] + i["b"]
        return Z, f(Z)
    if kernel == "activation_backward":
        return (i["delta"] * df(i["Z"], i["A"]),)
    if kernel == "delta_propagate":
        return ((i["delta"] @ i["W"].T) * df(i["Z_prev"], i["A_prev"]),)
    return i["X"].T @ i["delta"], i["delta"].sum(axis=0, dtype=np.float64)      # db: float64 accumulator


KERNELS = ("linear_forward", "activation_backward", "delta_propagate", "weight_gradient")


def check_outputs(got, want, dtype, what):
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray), f"{what}: returned {type(g).__name__}, not a host numpy array"
        assert g.dtype == dtype, f"{what}: dtype {g.dtype}, expected {np.dtype(dtype)}"
        assert g.shape == w.shape, f"{what}: shape {g.shape}, expected {w.shape}"
        np.testing.assert_allclose(g, w, **tolerance(dtype), err_msg=what)


# weight_gradient takes no activation: it runs once (under "identity").
KERNEL_ACTIVATION = [(k, a) for k in KERNELS if k != "weight_gradient" for a in ACTIVATIONS] + [
    ("weight_gradient", "identity")]


@pytest.mark.parametrize("kernel,activation", KERNEL_ACTIVATION, ids=[f"{k}-{a}" for k, a in KERNEL_ACTIVATION])
def test_kernel_matches_reference(backend, dtype, kernel, activation):
    for n, (batch, n_in, n_out) in enumerate(sizes_for(backend)):
        inputs = layer_inputs(batch, n_in, n_out, dtype, activation, seed=n)
        got = call(kernel, inputs, activation, backend)
        check_outputs(got, expected(kernel, inputs, activation), dtype,
                      f"{kernel}({activation}) on {backend}, {np.dtype(dtype)}, sizes {(batch, n_in, n_out)}")


def test_reference_kernels_are_the_formulas(dtype):
    """The reference backend's own kernels equal the formulas above exactly (no hidden shortcut)."""
    for activation in ACTIVATIONS:
        inputs = layer_inputs(9, 4, 6, dtype, activation, seed=1)
        for kernel in KERNELS:
            got = call(kernel, inputs, activation, "numpy")
            for g, w in zip(got, expected(kernel, inputs, activation)):
                np.testing.assert_array_equal(g, w.astype(dtype))


def test_extreme_preactivations_stay_finite(backend, dtype):
    """Saturating inputs: no overflow warnings turned into inf/NaN in f or f'."""
    big = 80.0 if dtype == np.float32 else 700.0
    X = np.array([[big, -big, 0.0, 1.0]], dtype=dtype)
    W = np.eye(4, dtype=dtype)
    b = np.zeros(4, dtype)
    for activation in ACTIVATIONS:
        Z, A = fb.kernels.linear_forward(X, W, b, activation, backend=backend)
        dZ = fb.kernels.activation_backward(np.ones_like(Z), Z, A, activation, backend=backend)
        assert np.all(np.isfinite(A)) and np.all(np.isfinite(dZ)), activation
        np.testing.assert_allclose(A, expected("linear_forward", dict(X=X, W=W, b=b), activation)[1],
                                   **tolerance(dtype), err_msg=activation)


def test_nan_from_finite_inputs_stays_nan_through_every_activation(backend, dtype):
    """Finite inputs and weights whose hidden layer overflows to +inf and -inf make the output
    layer's Z = inf - inf = NaN; every activation keeps it NaN, as the reference does (relu
    too: max(NaN, 0) is NaN, not 0)."""
    big = np.finfo(dtype).max / 4
    X = np.array([[big]], dtype=dtype)
    weights, biases = [np.array([[big, -big]]), np.ones((2, 1))], [np.zeros(2), np.zeros(1)]
    for activation in ACTIVATIONS:
        outputs = []
        for be in ("numpy", backend):
            net = fb.MLP([1, 2, 1], activation="identity", output_activation=activation, dtype=dtype, backend=be)
            net.set_params(weights, biases)
            with np.errstate(over="ignore", invalid="ignore"):
                outputs.append(net.forward(X))
        assert np.isnan(outputs[0]).all(), f"{activation} in the reference: {outputs[0]}"
        assert np.isnan(outputs[1]).all(), f"{activation} on {backend}: {outputs[1]}"


# ---- memory layouts and read-only inputs ----

def fortran(a):
    return np.asfortranarray(a)


def strided(a):
    """The same values as a view with gaps between elements (every other row and column)."""
    big = np.zeros(tuple(2 * n for n in a.shape), dtype=a.dtype)
    big[tuple(slice(None, None, 2) for _ in a.shape)] = a
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    assert not view.flags.c_contiguous or a.size <= 1
    return view


def reversed_view(a):
    """The same values as a view with negative strides on every axis."""
    flipped = a[tuple(slice(None, None, -1) for _ in a.shape)].copy()
    return flipped[tuple(slice(None, None, -1) for _ in a.shape)]


def read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


LAYOUTS = {"fortran": fortran, "strided": strided, "negative_stride": reversed_view, "read_only": read_only}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_any_layout_gives_the_same_numbers_and_is_never_written(backend, dtype, kernel, layout):
    batch, n_in, n_out = (3, 5, 2) if backend == "cuda" and CUDA_SIMULATED else (6, 7, 5)
    activations_to_try = ["identity"] if kernel == "weight_gradient" else ["tanh", "relu", "gelu"]
    for activation in activations_to_try:
        contiguous = layer_inputs(batch, n_in, n_out, dtype, activation, seed=4)
        want = call(kernel, contiguous, activation, backend)
        odd = {k: LAYOUTS[layout](v) for k, v in contiguous.items()}
        before = {k: v.copy() for k, v in odd.items()}
        got = call(kernel, odd, activation, backend)
        for name, arr in odd.items():
            np.testing.assert_array_equal(arr, before[name], err_msg=f"{kernel} wrote to its input {name}")
            for out in got:
                assert not np.shares_memory(out, arr), f"{kernel}'s output aliases its input {name}"
        check_outputs(got, want, dtype, f"{kernel}({activation}) on {backend}, {layout} inputs")


def test_outputs_are_fresh_arrays_the_caller_may_write(backend, dtype):
    """Writing to one call's outputs changes neither the inputs nor a later call's results."""
    inputs = layer_inputs(4, 3, 2, dtype, "identity", seed=2)
    frozen = {k: v.copy() for k, v in inputs.items()}
    for kernel in KERNELS:
        first = call(kernel, inputs, "identity", backend)
        for out in first:
            out[...] = 123.0
        second = call(kernel, inputs, "identity", backend)
        check_outputs(second, expected(kernel, frozen, "identity"), dtype, f"{kernel} after writing its outputs")
        for k in inputs:
            np.testing.assert_array_equal(inputs[k], frozen[k])
