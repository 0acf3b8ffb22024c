"""Fuzz cases for fastbp and the judge of each outcome (docs/design.md, "Bad input").

A case is a call of `fb.kernels.*`, of an `MLP` method, or of a constructor, with arguments
drawn at random: shapes with 0- and 1-sized dims and mismatches; dtypes float16, int, bool,
object, complex, str and mixed float32/float64; Fortran order, strided, negative-stride,
read-only, broadcast (zero-stride), unaligned and np.matrix arrays; 0-d and 3-d arrays;
NaN/inf, tiny, huge and overflowing values; Python lists, tuples, scalars and None.

Each call must either
  * succeed, and then the contract says it should have (an independent check written from
    docs/design.md, not from validation.py), its result equals the NumPy reference on the
    documented conversion of the arguments (C-contiguous copies in the network's dtype),
    and no argument was written to; or
  * raise ValueError/TypeError with a message, the contract says it should have, and
    nothing changed (arguments, parameters, optimizer state).
Anything else is an AssertionError (or the exception itself).

Cases are drawn through a `Chooser`: tests/test_fuzz.py draws them with hypothesis, and
`python tests/fuzz_cases.py SEED N BACKEND...` draws them from a seeded NumPy generator in a
child process, which is how the tests show that no input kills the interpreter.
"""
import json
import math
import os
import sys
import warnings

import numpy as np

import fastbp as fb
from fastbp._kernels import reference

ACTIVATIONS = fb.activations.NAMES
LOSSES = ("mse", "cross_entropy", "bce")
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# The tolerance of docs/design.md ("float64: 1e-10 relative; float32: rounding only"), here relative
# to the sum of the magnitudes that entered each output (a rounding-error bound).
KERNEL_RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 2e-4}
# Network-level comparisons, relative to the largest magnitude of each array.
NET_RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-3}


class RandomChooser:
    """Draws from a seeded NumPy generator (the child-process fuzz)."""

    def __init__(self, rng):
        self.rng = rng

    def integer(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, options):
        return options[self.integer(0, len(options) - 1)]

    def chance(self, p):
        return bool(self.rng.random() < p)


class HypothesisChooser:
    """Draws through hypothesis (shrinks towards small values, the first option, no mutation)."""

    def __init__(self, data):
        from hypothesis import strategies as st
        self.data, self.st = data, st

    def integer(self, lo, hi):
        return self.data.draw(self.st.integers(lo, hi))

    def choice(self, options):
        return self.data.draw(self.st.sampled_from(options))

    def chance(self, p):
        return self.data.draw(self.st.integers(0, 999)) >= round(1000 * (1 - p))


# ---------------------------------------------------------------- values and layouts

SCALES = {  # name -> (float32 scale, float64 scale)
    "normal": (1.0, 1.0),
    "small_ints": (None, None),       # values in {-2, -1, 0, 1, 2}: exact zeros (relu'(0) = 0)
    "tiny": (1e-30, 1e-300),
    "huge": (1e15, 1e100),            # products still finite
    "overflow": (1e30, 1e200),        # products overflow to inf
}


def draw_scale(ch, p_unusual=0.35):
    if not ch.chance(p_unusual):
        return "normal"
    return ch.choice(("small_ints", "tiny", "huge", "overflow"))


def values(rng, shape, dtype, scale):
    dtype = np.dtype(dtype)
    if scale == "small_ints":
        v = rng.integers(-2, 3, size=shape).astype(np.float64)
    else:
        s = SCALES[scale][0 if dtype == np.float32 else 1]
        v = rng.standard_normal(shape) * s
    return v.astype(dtype)


def inject_special(ch, rng, a):
    """Put NaN, inf or -inf at one random place of a float array (in place)."""
    if a.size and a.dtype.kind in "fc":
        a.flat[int(rng.integers(a.size))] = ch.choice((np.nan, np.inf, -np.inf))
    return a


LAYOUTS = ("C", "fortran", "strided", "negative", "readonly", "broadcast", "unaligned", "matrix")
FULL = os.environ.get("FASTBP_FULL") == "1"


def readonly_together(arrays):
    """The default run: when one array of a call is C-contiguous and read-only, every array
    of the call becomes a C-contiguous read-only copy (same values and dtypes). Numba
    compiles a kernel once per combination of read-only arguments (a flag of the array
    type; arrays of other layouts arrive as writable copies), so independent draws cost one
    compile per combination: minutes with an empty cache. Read-only inputs still reach
    every kernel and network pass, all or none at a time, and every other layout is still
    drawn; FASTBP_FULL=1 draws each argument's layout independently (every combination)."""
    if FULL or not any(isinstance(a, np.ndarray) and not a.flags.writeable and a.flags.c_contiguous for a in arrays):
        return arrays
    frozen = []
    for a in arrays:
        if isinstance(a, np.ndarray):
            a = np.array(a, order="C")          # a base-class copy, C-contiguous and aligned
            a.setflags(write=False)
        frozen.append(a)
    return frozen


def relayout(a, layout):
    """The same values (`broadcast`: row 0 repeated) in another memory layout."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "strided" and a.ndim:
        big = np.zeros(tuple(2 * s + 1 for s in a.shape), dtype=a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "negative" and a.ndim:
        return np.flip(np.flip(a).copy())
    if layout == "readonly":
        out = a.copy()
        out.setflags(write=False)
        return out
    if layout == "broadcast" and a.ndim and a.shape[0]:
        return np.broadcast_to(a[:1], a.shape)
    if layout == "unaligned" and a.dtype.kind in "fiucb" and a.dtype.itemsize > 1:
        raw = np.frombuffer(bytearray(a.nbytes + 1), dtype=np.uint8)[1:]
        out = raw.view(a.dtype).reshape(a.shape)
        out[...] = a
        return out
    if layout == "matrix" and a.ndim == 2 and a.dtype.kind != "U":
        return np.asmatrix(a)
    return a


OTHER_DTYPES = (np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex128, object, "U8")


def retype(ch, rng, a, allowed_float):
    """An array of another dtype holding (roughly) the same values."""
    target = ch.choice(OTHER_DTYPES + ("other_float",))
    if target == "other_float":
        target = np.float64 if a.dtype == np.float32 else np.float32
        if not allowed_float:
            return a.astype(target)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if target == "U8":
            return a.astype(str)
        return a.astype(target)


def reshape_wrong(ch, rng, a):
    """The same kind of array with a wrong shape: 0-d, 1-d, 3-d, an empty or an off-by-one dim."""
    how = ch.choice(("dim_plus", "dim_minus", "empty", "zero_d", "one_d", "three_d"))
    shape = list(a.shape)
    if how in ("dim_plus", "dim_minus", "empty") and shape:
        i = ch.integer(0, len(shape) - 1)
        shape[i] = 0 if how == "empty" else max(0, shape[i] + (1 if how == "dim_plus" else -1))
    elif how == "zero_d":
        shape = []
    elif how == "one_d":
        shape = [max(1, a.size)]
    else:
        shape = [2] + (shape or [1]) + [1] * max(0, 2 - len(shape))
    return values(rng, tuple(shape), a.dtype, "normal") if a.dtype.kind == "f" else np.zeros(shape, a.dtype)


def containerize(ch, a):
    """Not an ndarray: a nested list, a Python scalar, None or a string."""
    kind = ch.choice(("list", "tuple", "scalar", "none", "string"))
    if kind == "list":
        return a.tolist()
    if kind == "tuple":
        return tuple(map(tuple, a.tolist())) if a.ndim == 2 else tuple(a.tolist()) if a.ndim else a.item()
    if kind == "scalar":
        return float(a.flat[0]) if a.size else 1.0
    if kind == "none":
        return None
    return "not an array"


# ---------------------------------------------------------------- snapshots

def snapshot(x):
    if isinstance(x, np.ndarray):
        return ("array", x.dtype.str, x.shape, x.strides, np.asarray(x).tobytes() if x.dtype != object else repr(x))
    return ("other", repr(x))


def assert_unchanged(before, args, what):
    for name, snap, x in zip(before.keys(), before.values(), args):
        assert snapshot(x) == snap, f"{what}: argument {name} was written to"


def net_state_bytes(net, optimizer=None):
    state = [net.get_flat_params().tobytes()]
    if optimizer is not None:
        state.append(repr(optimizer.step_count))
        state += [name + ":" + arr.tobytes().hex() for name, arr in sorted(_optimizer_arrays(optimizer).items())]
    return state


def _optimizer_arrays(optimizer):
    return optimizer.checkpoint_arrays() if optimizer.state else {}


# ---------------------------------------------------------------- comparisons

def f64(a):
    return np.asarray(a, dtype=np.float64)


def assert_close_scaled(got, ref, scale, what):
    """|got - ref| <= rtol * scale (+ a floor for denormals) wherever ref is finite and the
    scale fits the dtype; such a finite reference value may not come back as NaN/inf."""
    assert isinstance(got, np.ndarray) and type(got) is np.ndarray, f"{what}: returned {type(got).__name__}, not ndarray"
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype}, reference {ref.dtype}"
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, reference {ref.shape}"
    with np.errstate(all="ignore"):
        # where the magnitudes entering an output exceed the dtype, partial sums overflow in an
        # order-dependent way (inf - inf): any answer is as good as the reference's there
        overflowed = ~(f64(scale) <= np.finfo(ref.dtype).max)
    fin = np.isfinite(ref) & ~overflowed
    lost = fin & ~np.isfinite(got)
    assert not lost.any(), f"{what}: non-finite output where the reference is finite: {got[lost][:4]} vs {ref[lost][:4]}"
    rtol = KERNEL_RTOL[ref.dtype]
    floor = 64 * np.finfo(ref.dtype).tiny
    with np.errstate(all="ignore"):
        err = np.abs(f64(got) - f64(ref))
        bound = rtol * f64(scale) + floor
    bad = fin & ~(err <= bound)
    assert not bad.any(), (f"{what}: differs from the reference: got {got[bad][:4]}, reference {ref[bad][:4]} "
                           f"(bound {bound[bad][:4]})")


def assert_close_normwise(got, ref, dtype, what):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, reference {ref.shape}"
    fin = np.isfinite(ref)
    lost = fin & ~np.isfinite(got)
    assert not lost.any(), f"{what}: non-finite output where the reference is finite"
    if not fin.any():
        return
    with np.errstate(all="ignore"):
        size = np.max(np.abs(f64(ref)[fin]))
        err = np.abs(f64(got) - f64(ref))[fin]
    bound = NET_RTOL[np.dtype(dtype)] * size + 64 * np.finfo(dtype).tiny
    assert np.all(err <= bound), f"{what}: max error {err.max()} > {bound} (size {size})"


def assert_no_aliasing(outputs, inputs, what):
    for i, out in enumerate(outputs):
        for x in inputs:
            if isinstance(x, np.ndarray):
                assert not np.shares_memory(out, x), f"{what}: output {i} shares memory with an input"
        for j, other in enumerate(outputs[:i]):
            assert not np.shares_memory(out, other), f"{what}: outputs {j} and {i} share memory"


# ---------------------------------------------------------------- kernels

KERNEL_ARGS = {
    "linear_forward": (("X", 2), ("W", 2), ("b", 1)),
    "activation_backward": (("dA", 2), ("Z", 2), ("A", 2)),
    "delta_propagate": (("delta", 2), ("W", 2), ("Z", 2), ("A", 2)),
    "weight_gradient": (("A_prev", 2), ("delta", 2)),
}


def kernel_shapes(kernel, n, k, m):
    return {
        "linear_forward": {"X": (n, k), "W": (k, m), "b": (m,)},
        "activation_backward": {"dA": (n, m), "Z": (n, m), "A": (n, m)},
        "delta_propagate": {"delta": (n, m), "W": (k, m), "Z": (n, k), "A": (n, k)},
        "weight_gradient": {"A_prev": (n, k), "delta": (n, m)},
    }[kernel]


def activation_values(Z, activation):
    """A = f(Z) by the reference (a kernel's A argument is the activation of its Z)."""
    with np.errstate(all="ignore"):
        return reference.FUNCTIONS[ACTIVATIONS.index(activation)](Z).astype(Z.dtype)


def draw_kernel_case(ch, max_dim=5):
    kernel = ch.choice(tuple(KERNEL_ARGS))
    rng = np.random.default_rng(ch.integer(0, 2**32 - 1))
    dtype = ch.choice(FLOATS)
    dims = [ch.integer(1, max_dim) for _ in range(3)]
    if ch.chance(0.08):
        dims[ch.integer(0, 2)] = 0
    shapes = kernel_shapes(kernel, *dims)
    activation = ch.choice(ACTIVATIONS)
    if ch.chance(0.05):
        activation = ch.choice(("Relu", "softmax", "", None, 3, b"relu"))
    scale = draw_scale(ch)
    args = {}
    for name, _ in KERNEL_ARGS[kernel]:
        if name == "A":
            continue
        args[name] = values(rng, shapes[name], dtype, draw_scale(ch, 0.1) if ch.chance(0.2) else scale)
    if "A" in shapes:
        args["A"] = activation_values(args["Z"], activation if activation in ACTIVATIONS else "relu")
    order = [name for name, _ in KERNEL_ARGS[kernel]]
    for name in order:
        a = args[name]
        if ch.chance(0.1):
            mutation = ch.choice(("dtype", "shape", "special", "container"))
            if mutation == "dtype":
                a = retype(ch, rng, a, allowed_float=False)
            elif mutation == "shape":
                a = reshape_wrong(ch, rng, a)
            elif mutation == "special":
                a = inject_special(ch, rng, a.copy())
            else:
                a = containerize(ch, a)
        if isinstance(a, np.ndarray) and ch.chance(0.4):
            a = relayout(a, ch.choice(LAYOUTS))
        args[name] = a
    return dict(family="kernel", kernel=kernel, activation=activation, args=readonly_together([args[n] for n in order]),
                names=order)


def kernel_call_is_valid(kernel, args, activation):
    """The contract, written independently of validation.py: float32/float64 ndarrays of one
    dtype, the right ndims, non-empty, finite, consistent shapes, a known activation."""
    if kernel != "weight_gradient" and activation not in ACTIVATIONS:
        return False
    dtype = None
    for (name, ndim), a in zip(KERNEL_ARGS[kernel], args):
        if not isinstance(a, np.ndarray) or a.dtype not in FLOATS:
            return False
        if dtype is not None and a.dtype != dtype:
            return False
        dtype = a.dtype
        if a.ndim != ndim or a.size == 0 or not np.isfinite(a).all():
            return False
    s = [a.shape for a in args]
    if kernel == "linear_forward":
        return s[1][0] == s[0][1] and s[2] == (s[1][1],)
    if kernel == "activation_backward":
        return s[0] == s[1] == s[2]
    if kernel == "delta_propagate":
        return s[1][1] == s[0][1] and s[2] == s[3] == (s[0][0], s[1][0])
    return s[0][0] == s[1][0]


def kernel_reference(kernel, args, activation):
    """(outputs, scales): the reference on C-contiguous copies, and per output the sum of
    magnitudes that entered it (the rounding-error scale)."""
    ops = reference.ops
    c = [np.array(a, order="C", copy=True) for a in args]      # the documented conversion
    m = [np.abs(f64(a)) for a in c]
    code = ACTIVATIONS.index(activation) if activation in ACTIVATIONS else None
    with np.errstate(all="ignore"):
        if kernel == "linear_forward":
            Z, A = ops.linear_forward(c[0], c[1], c[2], code)
            sZ = m[0] @ m[1] + m[2]
            return (Z, A), (sZ, 1.2 * sZ + np.abs(f64(A)))
        if kernel == "activation_backward":
            d = np.abs(f64(reference.DERIVATIVES[code](c[1], c[2])))
            return (ops.activation_backward(*c, code),), (m[0] * (d + 1),)
        if kernel == "delta_propagate":
            d = np.abs(f64(reference.DERIVATIVES[code](c[2], c[3])))
            return (ops.delta_propagate(*c, code),), ((m[0] @ m[1].T) * (d + 1),)
        dW, db = ops.weight_gradient(c[0], c[1])
        return (dW, db), (m[0].T @ m[1], m[1].sum(axis=0))


def run_kernel_case(case, backend):
    """-> "accepted" | "rejected"; AssertionError when the contract is broken."""
    kernel, activation, args = case["kernel"], case["activation"], case["args"]
    before = {name: snapshot(a) for name, a in zip(case["names"], args)}
    valid = kernel_call_is_valid(kernel, args, activation)
    call = getattr(fb.kernels, kernel)
    what = f"fb.kernels.{kernel} on {backend!r}"
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if kernel == "weight_gradient":
                out = call(*args, backend=backend)
            else:
                out = call(*args, activation, backend=backend)
    except (ValueError, TypeError) as e:
        assert str(e).strip(), f"{what}: {type(e).__name__} without a message"
        assert not valid, f"{what}: rejected a valid call: {type(e).__name__}: {e}"
        assert_unchanged(before, args, what)
        return "rejected"
    assert valid, f"{what}: accepted an invalid call (returned {type(out).__name__})"
    assert_unchanged(before, args, what)
    outputs = tuple(out) if isinstance(out, tuple) else (out,)
    refs, scales = kernel_reference(kernel, args, activation)
    assert len(outputs) == len(refs), f"{what}: {len(outputs)} outputs, reference {len(refs)}"
    for i, (got, ref, scale) in enumerate(zip(outputs, refs, scales)):
        assert_close_scaled(got, ref, scale, f"{what} output {i}")
    assert_no_aliasing(outputs, args, what)
    return "accepted"


# ---------------------------------------------------------------- MLP methods

def draw_net_config(ch):
    sizes = [ch.integer(1, 4)] + ([ch.integer(1, 5)] if ch.chance(0.6) else []) + [ch.integer(1, 4)]
    return dict(layer_sizes=sizes, activation=ch.choice(ACTIVATIONS),
                output_activation=ch.choice(ACTIVATIONS), loss=ch.choice(LOSSES),
                reduction=ch.choice(("mean", "sum")), dtype=ch.choice(FLOATS), seed=ch.integer(0, 9))


INPUT_DTYPES = (np.float64, np.float32, np.int64, np.float16, np.bool_, np.int8, np.uint8)


def draw_features(ch, rng, batch, n_in, dtype):
    a = values(rng, (batch, n_in), np.float64, draw_scale(ch, 0.2))
    if ch.chance(0.4):
        with np.errstate(all="ignore"):
            a = a.astype(ch.choice(INPUT_DTYPES))
    else:
        with np.errstate(all="ignore"):
            a = a.astype(dtype)
    return mutate_model_input(ch, rng, a)


def draw_targets(ch, rng, loss, batch, n_out):
    if loss == "cross_entropy":
        a = rng.integers(0, n_out, size=batch)
        kind = ch.choice(("int64", "int32", "float", "column", "bool", "uint8"))
        if kind == "column":
            a = a[:, None]
        elif kind == "bool":
            a = a.astype(bool)
        elif kind != "int64":
            a = a.astype({"int32": np.int32, "float": np.float64, "uint8": np.uint8}[kind])
        if ch.chance(0.12):
            bad = ch.choice(("out_of_range", "negative", "fraction", "two_columns"))
            a = a.astype(np.float64) if bad == "fraction" else a.astype(np.int64) if a.dtype.kind in "ub" else a
            if bad == "two_columns":
                a = np.stack([a.ravel(), a.ravel()], axis=1)
            elif a.size:
                a.flat[int(rng.integers(a.size))] = {"out_of_range": n_out, "negative": -1, "fraction": 0.5}[bad]
    else:
        a = values(rng, (batch, n_out), np.float64, "normal")
        if loss == "bce":
            a = (a > 0).astype(np.float64) if ch.chance(0.5) else np.abs(np.tanh(a))
        if n_out == 1 and ch.chance(0.3):
            a = a[:, 0]
        if ch.chance(0.3):
            a = a.astype(ch.choice(INPUT_DTYPES))
    return mutate_model_input(ch, rng, a)


def mutate_model_input(ch, rng, a):
    if ch.chance(0.15):
        mutation = ch.choice(("dtype", "shape", "special", "container", "ragged", "bigint"))
        if mutation == "dtype":
            a = retype(ch, rng, a, allowed_float=True)
        elif mutation == "shape":
            a = reshape_wrong(ch, rng, a.astype(np.float64))
        elif mutation == "special":
            a = inject_special(ch, rng, a.astype(np.float64))
        elif mutation == "container":
            a = containerize(ch, a)
        elif mutation == "ragged" and a.ndim == 2 and a.shape[0] > 1 and a.shape[1] > 1:
            a = a.tolist()
            a[-1] = a[-1][:-1]
        elif mutation == "bigint":
            a = a.tolist()
            (a[0] if isinstance(a[0], list) else a)[0] = 2**70
        return a
    if ch.chance(0.2):
        return a.tolist()
    if ch.chance(0.4):
        return relayout(a, ch.choice(LAYOUTS))
    return a


def features_are_valid(X, n_in, dtype):
    """Real numbers (bool/int/float), 2-D (batch >= 1, n_in), finite in the network's dtype."""
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError):
        return False
    if arr.dtype.kind not in "biuf" or arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != n_in:
        return False
    with np.errstate(all="ignore"):
        return bool(np.isfinite(arr.astype(dtype)).all())


def targets_are_valid(y, loss, batch, n_out, dtype):
    try:
        arr = np.asarray(y)
    except (ValueError, TypeError):
        return False
    if arr.dtype.kind not in "biuf":
        return False
    if loss == "cross_entropy":
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.shape != (batch,):
            return False
        v = arr.astype(np.float64)
        return bool(np.isfinite(v).all() and (v == np.round(v)).all() and (v >= 0).all() and (v < n_out).all())
    if arr.ndim == 1 and n_out == 1:
        arr = arr[:, None]
    if arr.shape != (batch, n_out):
        return False
    with np.errstate(all="ignore"):
        v = arr.astype(dtype)
    if not np.isfinite(v).all():
        return False
    return loss != "bce" or bool(((v >= 0) & (v <= 1)).all())      # bce targets are probabilities


def converted_targets(y, loss, dtype, n_out):
    """The documented conversion: integer labels (batch,) for cross_entropy, else (batch, n_out)."""
    arr = np.asarray(y)
    if loss == "cross_entropy":
        return np.ascontiguousarray(arr.reshape(-1).astype(np.intp))
    return np.ascontiguousarray(arr.reshape(-1, n_out).astype(dtype))


OPTIMIZERS = {
    "sgd": lambda: fb.SGD(0.05),
    "momentum": lambda: fb.SGD(0.05, momentum=0.9, weight_decay=1e-3, nesterov=True),
    "adam": lambda: fb.Adam(1e-2, weight_decay=1e-3),
}


def draw_api_case(ch):
    config = draw_net_config(ch)
    rng = np.random.default_rng(ch.integer(0, 2**32 - 1))
    sizes, dtype = config["layer_sizes"], config["dtype"]
    batch = ch.integer(1, 6)
    X = draw_features(ch, rng, batch, sizes[0], dtype)
    y = draw_targets(ch, rng, config["loss"], batch, sizes[-1])
    X, y = readonly_together([X, y])
    method = ch.choice(("train_step", "loss_and_grad", "forward", "loss_value"))
    optimizer = ch.choice(tuple(OPTIMIZERS))
    bad_optimizer = ch.choice((None, "not_an_optimizer", "bound_elsewhere")) if ch.chance(0.08) else None
    warm_steps = ch.integer(0, 2)
    return dict(family="api", config=config, X=X, y=y, batch=batch, method=method,
                optimizer=optimizer, bad_optimizer=bad_optimizer, warm_steps=warm_steps)


def _call(net, method, X, y, optimizer):
    if method == "forward":
        return net.forward(X)
    if method == "loss_value":
        return net.loss_value(X, y)
    if method == "loss_and_grad":
        return net.loss_and_grad(X, y)
    return net.train_step(X, y, optimizer)


def _warm_up(net, optimizer, steps, rng_seed):
    """A few steps on clean data so the optimizer state is not all zeros."""
    rng = np.random.default_rng(rng_seed)
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    X = rng.standard_normal((3, n_in)).astype(net.dtype)
    y = (rng.integers(0, n_out, 3) if net.loss == "cross_entropy"
         else (rng.random((3, n_out)) > 0.5).astype(net.dtype))
    for _ in range(steps):
        net.train_step(X, y, optimizer)


def run_api_case(case, backend):
    config = case["config"]
    sizes, dtype, loss = config["layer_sizes"], np.dtype(config["dtype"]), config["loss"]
    net = fb.MLP(backend=backend, **config)
    ref = fb.MLP(backend="numpy", **config)
    optimizer, ref_optimizer = OPTIMIZERS[case["optimizer"]](), OPTIMIZERS[case["optimizer"]]()
    _warm_up(net, optimizer, case["warm_steps"], config["seed"])
    _warm_up(ref, ref_optimizer, case["warm_steps"], config["seed"])
    ref.set_flat_params(net.get_flat_params())    # same starting point, whatever the backends' rounding
    for name, arr in _optimizer_arrays(optimizer).items():
        ref_optimizer.state[name][...] = arr
    if case["bad_optimizer"] == "not_an_optimizer":
        optimizer = "adam"
    elif case["bad_optimizer"] == "bound_elsewhere":
        optimizer = OPTIMIZERS[case["optimizer"]]()      # bound to another network
        _warm_up(fb.MLP([sizes[0] + 1, 1], backend=backend, dtype=dtype), optimizer, 1, 0)
    X, y, method = case["X"], case["y"], case["method"]
    uses_y, uses_opt = method != "forward", method == "train_step"
    valid = (features_are_valid(X, sizes[0], dtype)
             and (not uses_y or (features_are_valid(X, sizes[0], dtype)
                                 and targets_are_valid(y, loss, np.asarray(X).shape[0], sizes[-1], dtype)))
             and (not uses_opt or case["bad_optimizer"] is None))
    before_args = {"X": snapshot(X), "y": snapshot(y)}
    before_state = net_state_bytes(net, optimizer if not isinstance(optimizer, str) else None)
    what = f"MLP.{method} on {backend!r} ({config})"
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            got = _call(net, method, X, y, optimizer)
    except (ValueError, TypeError) as e:
        assert str(e).strip(), f"{what}: {type(e).__name__} without a message"
        assert not valid, f"{what}: rejected a valid call: {type(e).__name__}: {e}"
        assert_unchanged(before_args, (X, y), what)
        assert net_state_bytes(net, optimizer if not isinstance(optimizer, str) else None) == before_state, \
            f"{what}: a rejected call changed the parameters or the optimizer state"
        return "rejected"
    except FloatingPointError:
        # allowed only where the reference also finds a non-finite loss, and then nothing changed
        assert valid and method == "train_step", f"{what}: FloatingPointError outside train_step"
        assert net_state_bytes(net, optimizer) == before_state, f"{what}: FloatingPointError but state changed"
        assert_unchanged(before_args, (X, y), what)
        Xc = np.ascontiguousarray(np.asarray(X).astype(dtype))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                ref.train_step(Xc, converted_targets(y, loss, dtype, sizes[-1]), ref_optimizer)
            except FloatingPointError:
                return "rejected"
        raise AssertionError(f"{what}: FloatingPointError where the reference trains on")
    assert valid, f"{what}: accepted an invalid call (X={X!r}, y={y!r})"
    assert_unchanged(before_args, (X, y), what)
    if method != "train_step":
        assert net_state_bytes(net) == before_state[:1], f"{what}: changed the parameters"
    Xc = np.ascontiguousarray(np.asarray(X).astype(dtype))
    yc = converted_targets(y, loss, dtype, sizes[-1]) if uses_y else None
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            want = _call(ref, method, Xc, yc, ref_optimizer)
        except FloatingPointError:
            raise AssertionError(f"{what}: the reference finds a non-finite loss, {backend!r} returned {got!r}")
    if method == "forward":
        assert isinstance(got, np.ndarray) and got.dtype == dtype, f"{what}: returned {type(got)}"
        assert_close_normwise(got, want, dtype, what)
    elif method == "loss_and_grad":
        assert isinstance(got[0], float), f"{what}: loss is {type(got[0]).__name__}, not float"
        assert_close_normwise(np.array([got[0]]), np.array([want[0]]), dtype, what + " loss")
        for g, w in zip(got[1] + got[2], want[1] + want[2]):
            assert_close_normwise(g, w, dtype, what + " gradient")
    else:
        assert isinstance(got, float), f"{what}: loss is {type(got).__name__}, not float"
        assert_close_normwise(np.array([got]), np.array([want]), dtype, what + " loss")
        if method == "train_step":
            assert_close_normwise(net.get_flat_params(), ref.get_flat_params(), dtype, what + " parameters")
            assert optimizer.step_count == ref_optimizer.step_count
    return "accepted"


# ---------------------------------------------------------------- constructors

def draw_constructor_case(ch):
    what = ch.choice(("mlp", "sgd", "adam"))
    if what == "mlp":
        sizes = ch.choice(([2, 3, 1], [1, 1], (4, 2), [np.int64(3), 2], [0, 2], [2, -1], [2],
                           [], [2.0, 1], [True, 2], "23", None, [2, 3.5], [2, "3"], np.array([2, 2])))
        kwargs = dict(activation=ch.choice(ACTIVATIONS + ("RELU", None, 1)),
                      loss=ch.choice(LOSSES + ("nll", None)),
                      reduction=ch.choice(("mean", "sum", "none", None)),
                      dtype=ch.choice((np.float32, np.float64, "float32", np.float16, int, "complex128", None, "x")))
        return dict(family="constructor", kind="mlp", sizes=sizes, kwargs=kwargs)
    number = lambda: ch.choice((0.1, 1, 0.0, -1.0, float("nan"), float("inf"), "0.1", None, True, 1e-3))  # noqa: E731
    if what == "sgd":
        return dict(family="constructor", kind="sgd", kwargs=dict(
            lr=number(), momentum=ch.choice((0.0, 0.9, -0.5, float("nan"), 2.0)),
            nesterov=ch.choice((False, True, "yes", 1))))
    return dict(family="constructor", kind="adam", kwargs=dict(
        lr=number(), betas=ch.choice(((0.9, 0.999), (1.0, 0.9), (0.9,), (-0.1, 0.5), "ab", (0.5, float("nan")))),
        eps=ch.choice((1e-8, 0.0, -1e-8, float("nan")))))


def _real(v, low, low_open=False, high=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return math.isfinite(v) and (v > low if low_open else v >= low) and (high is None or v < high)


def constructor_is_valid(case):
    kw = case["kwargs"]
    if case["kind"] == "mlp":
        sizes = case["sizes"]
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
            return False
        if any(isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1 for n in sizes):
            return False
        if kw["dtype"] is None:             # not NumPy's default float64: an error (docs/design.md: a dtype is named)
            return False
        try:
            dt = np.dtype(kw["dtype"])
        except TypeError:
            return False
        return (kw["activation"] in ACTIVATIONS and kw["loss"] in LOSSES
                and kw["reduction"] in ("mean", "sum") and dt in FLOATS)
    if case["kind"] == "sgd":
        return (_real(kw["lr"], 0, low_open=True) and _real(kw["momentum"], 0)
                and isinstance(kw["nesterov"], bool) and not (kw["nesterov"] and kw["momentum"] == 0))
    betas = kw["betas"]
    return (_real(kw["lr"], 0, low_open=True) and isinstance(betas, tuple) and len(betas) == 2
            and all(_real(b, 0, high=1.0) for b in betas) and _real(kw["eps"], 0))


def run_constructor_case(case, backend):
    valid = constructor_is_valid(case)
    what = f"{case['kind']}({case.get('sizes', '')}, {case['kwargs']}) on {backend!r}"
    try:
        if case["kind"] == "mlp":
            fb.MLP(case["sizes"], backend=backend, **case["kwargs"])
        elif case["kind"] == "sgd":
            fb.SGD(**case["kwargs"])
        else:
            fb.Adam(**case["kwargs"])
    except (ValueError, TypeError) as e:
        assert str(e).strip(), f"{what}: {type(e).__name__} without a message"
        assert not valid, f"{what}: rejected a valid call: {e}"
        return "rejected"
    assert valid, f"{what}: accepted an invalid call"
    return "accepted"


# ---------------------------------------------------------------- driver

DRAW = {"kernel": draw_kernel_case, "api": draw_api_case, "constructor": draw_constructor_case}
RUN = {"kernel": run_kernel_case, "api": run_api_case, "constructor": run_constructor_case}


def run_batch(seed, n, backends, families=("kernel", "api", "constructor")):
    """n random cases per backend; -> {backend: {"inputs", "rejected", "accepted"}}."""
    counts = {}
    for backend in backends:
        rng = np.random.default_rng([seed, len(backend)])
        ch = RandomChooser(rng)
        c = counts[backend] = {"inputs": 0, "rejected": 0, "accepted": 0}
        for i in range(n):
            family = families[i % len(families)]
            case = DRAW[family](ch)
            c[RUN[family](case, backend)] += 1
            c["inputs"] += 1
    return counts


if __name__ == "__main__":
    seed, n, backends = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    print(json.dumps(run_batch(seed, n, backends)))
