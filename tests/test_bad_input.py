"""The bad-input contract of docs/design.md, case by case, on every backend.

Each rejected call must raise ValueError/TypeError with a message naming the argument, and
change nothing: parameters, gradients, and the optimizer's state (made non-trivial by one
training step first) stay bit-for-bit as they were.
"""
import numpy as np
import pytest

import fastbp as fb
from conftest import CUDA_SIMULATED

N_IN, HIDDEN, N_OUT, BATCH = 4, 5, 3, 6


# ---- helpers: a trained network + optimizer, and bit-for-bit snapshots ----

def make_net(backend, loss="mse", dtype=np.float64, sizes=(N_IN, HIDDEN, N_OUT), seed=0):
    return fb.MLP(list(sizes), activation="tanh", loss=loss, dtype=dtype, backend=backend, seed=seed)


def good_targets(loss, rng, batch=BATCH, n_out=N_OUT):
    if loss == "cross_entropy":
        return rng.integers(0, n_out, size=batch)
    if loss == "bce":
        return rng.uniform(size=(batch, n_out))
    return rng.normal(size=(batch, n_out))


def trained(backend, loss="mse", optimizer=None, dtype=np.float64):
    """A network and an optimizer after one real step (non-zero grads, momentum, Adam moments)."""
    rng = np.random.default_rng(1)
    net = make_net(backend, loss, dtype)
    opt = optimizer if optimizer is not None else fb.Adam(lr=0.01)
    net.train_step(rng.normal(size=(BATCH, N_IN)), good_targets(loss, rng), opt)
    return net, opt


def snapshot(net, opt=None):
    host = lambda a: np.array(net._ops.to_host(a), copy=True)   # noqa: E731
    snap = {"flat_params": net.get_flat_params(), "flat_grads": host(net.flat_grads)}
    snap.update({f"W{l}": np.array(w, copy=True) for l, w in enumerate(net.weights)})
    snap.update({f"b{l}": np.array(b, copy=True) for l, b in enumerate(net.biases)})
    if opt is not None:
        snap.update({f"opt_{k}": v for k, v in opt.checkpoint_arrays().items()})
        snap["opt_step_count"] = np.array(opt.step_count)
    return snap


def assert_unchanged(net, opt, before, what):
    after = snapshot(net, opt)
    assert after.keys() == before.keys(), what
    for key in before:
        same = before[key].shape == after[key].shape and before[key].tobytes() == after[key].tobytes()
        assert same, f"{what}: {key} changed by a rejected call"


def assert_rejected(call, error, names, what=None):
    """call() raises `error` whose message contains every string in `names`."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for name in ([names] if isinstance(names, str) else names):
        assert name in message, f"{what or ''}: message {message!r} does not mention {name!r}"
    return message


# ---- the model methods: X and y ----

def nan_at(shape, value=np.nan):
    a = np.ones(shape)
    a[-1, -1] = value
    return a


BAD_X = {
    "1-D": (np.ones(N_IN), ValueError),
    "3-D": (np.ones((BATCH, N_IN, 1)), ValueError),
    "too few features": (np.ones((BATCH, N_IN - 1)), ValueError),
    "too many features": (np.ones((BATCH, N_IN + 1)), ValueError),
    "empty batch": (np.ones((0, N_IN)), ValueError),
    "scalar": (np.float64(1.0), ValueError),
    "NaN": (nan_at((BATCH, N_IN)), ValueError),
    "inf": (nan_at((BATCH, N_IN), np.inf), ValueError),
    "-inf": (nan_at((BATCH, N_IN), -np.inf), ValueError),
    "ragged list": ([[1.0] * N_IN, [1.0] * (N_IN - 1)], ValueError),
    "object": (np.ones((BATCH, N_IN), dtype=object), TypeError),
    "None": (None, TypeError),
    "strings": (np.full((BATCH, N_IN), "1.0"), TypeError),
    "complex": (np.ones((BATCH, N_IN), dtype=complex), TypeError),
}

BAD_Y = {   # loss -> {case: (y, error)}
    "mse": {
        "batch mismatch": (np.ones((BATCH - 1, N_OUT)), ValueError),
        "wrong width": (np.ones((BATCH, N_OUT + 1)), ValueError),
        "1-D with several outputs": (np.ones(BATCH), ValueError),
        "3-D": (np.ones((BATCH, N_OUT, 1)), ValueError),
        "scalar": (1.0, ValueError),
        "NaN": (nan_at((BATCH, N_OUT)), ValueError),
        "inf": (nan_at((BATCH, N_OUT), np.inf), ValueError),
        "object": (np.ones((BATCH, N_OUT), dtype=object), TypeError),
        "strings": (np.full((BATCH, N_OUT), "0"), TypeError),
        "complex": (np.ones((BATCH, N_OUT), dtype=complex), TypeError),
    },
    "bce": {
        "batch mismatch": (np.ones((BATCH + 1, N_OUT)), ValueError),
        "wrong width": (np.ones((BATCH, 1)), ValueError),
        "NaN": (nan_at((BATCH, N_OUT)), ValueError),
    },
    "cross_entropy": {
        "batch mismatch": (np.zeros(BATCH - 1, dtype=int), ValueError),
        "label == n_out": (np.array([0, 1, 2, N_OUT, 0, 1]), ValueError),
        "negative label": (np.array([0, 1, 2, -1, 0, 1]), ValueError),
        "huge label": (np.array([0, 1, 2, 2.0**62, 0, 1]), ValueError),
        "1e300 label": (np.array([0, 1, 2, 1e300, 0, 1]), ValueError),
        "non-integer label": (np.array([0, 1, 2, 0.5, 0, 1]), ValueError),
        "NaN": (np.array([0, 1, 2, np.nan, 0, 1]), ValueError),
        "inf": (np.array([0, 1, 2, np.inf, 0, 1]), ValueError),
        "one-hot instead of labels": (np.eye(N_OUT)[[0, 1, 2, 0, 1, 2]], ValueError),
        "strings": (np.array(["0", "1", "2", "0", "1", "2"]), TypeError),
        "complex": (np.zeros(BATCH, dtype=complex), TypeError),
    },
}

METHODS = ("forward", "loss_value", "loss_and_grad", "train_step", "fit")


def run_method(method, net, opt, X, y):
    if method == "forward":
        return net.forward(X)
    if method == "loss_value":
        return net.loss_value(X, y)
    if method == "loss_and_grad":
        return net.loss_and_grad(X, y)
    if method == "train_step":
        return net.train_step(X, y, opt)
    return net.fit(X, y, epochs=1, batch_size=4, optimizer=opt, progress=False)


@pytest.mark.parametrize("method", METHODS)
def test_bad_X_is_rejected_and_changes_nothing(backend, method):
    net, opt = trained(backend)
    y = good_targets("mse", np.random.default_rng(2))
    before = snapshot(net, opt)
    for case, (X, error) in BAD_X.items():
        what = f"{method} with X {case}"
        assert_rejected(lambda: run_method(method, net, opt, X, y), error, "X", what)
        assert_unchanged(net, opt, before, what)


@pytest.mark.parametrize("method", METHODS[1:])
@pytest.mark.parametrize("loss", BAD_Y)
def test_bad_y_is_rejected_and_changes_nothing(backend, loss, method):
    net, opt = trained(backend, loss)
    X = np.random.default_rng(2).normal(size=(BATCH, N_IN))
    before = snapshot(net, opt)
    for case, (y, error) in BAD_Y[loss].items():
        what = f"{method} ({loss}) with y {case}"
        message = assert_rejected(lambda: run_method(method, net, opt, X, y), error, "y", what)
        if "label" in case:
            assert "label" in message or "integer" in message, what
        assert_unchanged(net, opt, before, what)


def test_messages_say_what_was_expected_and_what_came(backend):
    net, opt = trained(backend)
    message = assert_rejected(lambda: net.forward(np.ones((2, N_IN + 3))), ValueError, "X")
    assert str(N_IN) in message and str(N_IN + 3) in message, message
    message = assert_rejected(lambda: net.loss_and_grad(np.ones((BATCH, N_IN)), np.ones((BATCH - 2, N_OUT))),
                              ValueError, "y")
    assert str(BATCH) in message and str(BATCH - 2) in message, message
    ce, _ = trained(backend, "cross_entropy")
    message = assert_rejected(lambda: ce.loss_and_grad(np.ones((BATCH, N_IN)), np.full(BATCH, 7)), ValueError, "y")
    assert "7" in message and f"[0, {N_OUT})" in message, message


# ---- other real numeric inputs are converted once, like scikit-learn ----

def converted_inputs():
    rng = np.random.default_rng(5)
    X_int = rng.integers(-3, 4, size=(BATCH, N_IN))
    return {
        "int64": X_int,
        "int8": X_int.astype(np.int8),
        "uint8": np.abs(X_int).astype(np.uint8),
        "bool": X_int > 0,
        "float16": (X_int / 2).astype(np.float16),        # halves: exact in float16
        "float32": (X_int / 4).astype(np.float32),
        "list": X_int.tolist(),
        "Fortran int": np.asfortranarray(X_int),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_other_real_inputs_give_the_numbers_of_float_input(backend, dtype):
    X_variants, losses = converted_inputs(), ("mse", "bce", "cross_entropy")
    simulated = backend == "cuda" and CUDA_SIMULATED    # ~0.2 ms per simulated thread: a representative few
    if simulated:
        X_variants, losses = {k: X_variants[k] for k in ("int64", "bool", "list")}, ("bce", "cross_entropy")
    for loss in losses:
        net = make_net(backend, loss, dtype)
        rng = np.random.default_rng(3)
        if loss == "cross_entropy":
            y_int = rng.integers(0, N_OUT, size=BATCH)
            ys = {"int64": y_int, "int8": y_int.astype(np.int8), "uint16": y_int.astype(np.uint16),
                  "float": y_int.astype(float), "list": y_int.tolist(), "column": y_int[:, None]}
        else:
            y_int = rng.integers(0, 2, size=(BATCH, N_OUT))
            ys = {"int64": y_int, "bool": y_int.astype(bool), "float16": y_int.astype(np.float16),
                  "list": y_int.tolist()}
        y_float = y_int if loss == "cross_entropy" else y_int.astype(dtype)
        if simulated:   # each X variant with float targets, then each y variant with float inputs
            X_float = X_variants["int64"].astype(dtype)
            pairs = [(f"X {name}", X, np.asarray(X).astype(dtype), y_float) for name, X in X_variants.items()]
            pairs += [(f"y {name}", X_float, X_float, y) for name, y in list(ys.items())[:3]]
        else:           # every X variant with every y variant
            pairs = [(f"X {x_name}, y {y_name}", X, np.asarray(X).astype(dtype), y)
                     for x_name, X in X_variants.items() for y_name, y in ys.items()]
        for what, X, X_as_float, y in pairs:
            what = f"{loss}: {what}"
            forward = net.forward(X)
            assert forward.dtype == dtype, what
            np.testing.assert_array_equal(forward, net.forward(X_as_float), err_msg=what)
            loss_value, dW, db = net.loss_and_grad(X, y)
            want_loss, want_dW, want_db = net.loss_and_grad(X_as_float, y_float)
            assert loss_value == want_loss, what
            for got, want in zip(dW + db, want_dW + want_db):
                np.testing.assert_array_equal(got, want, err_msg=what)


def test_single_output_targets_may_be_1d(backend):
    net = make_net(backend, "bce", sizes=(N_IN, HIDDEN, 1))
    X = np.random.default_rng(0).normal(size=(BATCH, N_IN))
    y = np.array([0, 1, 1, 0, 1, 0])
    assert net.loss_and_grad(X, y)[0] == net.loss_and_grad(X, y[:, None].astype(float))[0]


# ---- the constructor ----

UNKNOWN_NAMES = [
    ("activation", dict(activation="relu6"), ["activation", "relu6", "'tanh'", "'gelu'"]),
    ("output_activation", dict(output_activation="softmax"), ["output_activation", "softmax", "'identity'"]),
    ("loss", dict(loss="nll"), ["loss", "nll", "'mse'", "'cross_entropy'", "'bce'"]),
    ("reduction", dict(reduction="none"), ["reduction", "none", "'mean'", "'sum'"]),
    ("backend", dict(backend="tpu"), ["backend", "tpu", "'numpy'"]),
]


@pytest.mark.parametrize("argument,kwargs,names", UNKNOWN_NAMES, ids=[u[0] for u in UNKNOWN_NAMES])
def test_unknown_names_list_the_valid_ones(argument, kwargs, names):
    assert_rejected(lambda: fb.MLP([2, 3, 1], **kwargs), ValueError, names, argument)


@pytest.mark.parametrize("argument", ["activation", "output_activation", "loss", "reduction", "backend"])
def test_names_must_be_strings(argument):
    assert_rejected(lambda: fb.MLP([2, 3, 1], **{argument: 3}), TypeError, argument)


BAD_SIZES = [
    ([3, 0, 2], ValueError), ([0, 2], ValueError), ([3, -1], ValueError), ([3], ValueError), ([], ValueError),
    ([3, 2.5], TypeError), ([3, "4"], TypeError), ([3, True], TypeError), ("34", TypeError), (5, TypeError),
    (None, TypeError),
]


@pytest.mark.parametrize("sizes,error", BAD_SIZES, ids=[repr(s) for s, _ in BAD_SIZES])
def test_bad_layer_sizes(sizes, error):
    assert_rejected(lambda: fb.MLP(sizes), error, "layer_sizes")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float16, np.complex128, bool, object, "banana", None],
                         ids=str)
def test_mlp_dtype_must_be_float32_or_float64(dtype):
    assert_rejected(lambda: fb.MLP([2, 1], dtype=dtype), TypeError, ["dtype", "float32", "float64"])


@pytest.mark.parametrize("seed", ["abc", -1, 1.5, [1, "x"]], ids=repr)
def test_bad_seed_is_named(seed):
    assert_rejected(lambda: fb.MLP([2, 1], seed=seed), (ValueError, TypeError), "seed")


def test_numpy_integer_sizes_and_float_dtype_names_are_fine():
    net = fb.MLP(np.array([3, 4, 2]), dtype="float64", backend="numpy", seed=np.int64(3))
    assert net.layer_sizes == (3, 4, 2) and net.dtype == np.float64


# ---- the kernels: float32/float64 of one dtype, never converted ----

def kernel_calls(backend, dtype=np.float64, **override):
    """name -> zero-argument call of each kernel with good inputs, except those in override."""
    a = dict(X=np.ones((3, 4), dtype), W=np.ones((4, 2), dtype), b=np.ones(2, dtype), dA=np.ones((3, 2), dtype),
             Z=np.ones((3, 2), dtype), A=np.ones((3, 2), dtype), delta=np.ones((3, 2), dtype),
             Z_prev=np.ones((3, 4), dtype), A_prev=np.ones((3, 4), dtype))
    a.update(override)
    k = fb.kernels
    return {
        "linear_forward": lambda: k.linear_forward(a["X"], a["W"], a["b"], "tanh", backend=backend),
        "activation_backward": lambda: k.activation_backward(a["dA"], a["Z"], a["A"], "tanh", backend=backend),
        "delta_propagate": lambda: k.delta_propagate(a["delta"], a["W"], a["Z_prev"], a["A_prev"], "tanh",
                                                     backend=backend),
        "weight_gradient": lambda: k.weight_gradient(a["A_prev"], a["delta"], backend=backend),
    }


ARGUMENTS = {   # kernel -> (public argument name, the key of kernel_calls' inputs)
    "linear_forward": [("X", "X"), ("W", "W"), ("b", "b")],
    "activation_backward": [("dA", "dA"), ("Z", "Z"), ("A", "A")],
    "delta_propagate": [("delta", "delta"), ("W", "W"), ("Z", "Z_prev"), ("A", "A_prev")],
    "weight_gradient": [("A_prev", "A_prev"), ("delta", "delta")],
}


def test_kernel_good_inputs_are_accepted(backend):
    for name, call in kernel_calls(backend).items():
        call()


@pytest.mark.parametrize("kernel", ARGUMENTS)
def test_kernels_reject_other_dtypes_with_type_error(backend, kernel):
    for argument, key in ARGUMENTS[kernel]:
        shape = {"X": (3, 4), "W": (4, 2), "b": (2,), "Z_prev": (3, 4), "A_prev": (3, 4)}.get(key, (3, 2))
        for bad_dtype in (np.int64, np.int32, np.float16, np.complex128, bool, object):
            bad = np.ones(shape, dtype=bad_dtype)
            call = kernel_calls(backend, **{key: bad})[kernel]
            assert_rejected(call, TypeError, argument, f"{kernel}: {argument} as {np.dtype(bad_dtype)}")
        for mixed in (np.float32,):
            call = kernel_calls(backend, **{key: np.ones(shape, dtype=mixed)})[kernel]
            if argument == ARGUMENTS[kernel][0][0]:
                # the first argument sets the dtype; the next one is then the odd one out
                assert_rejected(call, TypeError, ["float32", "float64"], f"{kernel}: mixed dtypes")
            else:
                assert_rejected(call, TypeError, [argument, "float32", "float64"], f"{kernel}: mixed dtypes")
        call = kernel_calls(backend, **{key: np.ones(shape).tolist()})[kernel]
        assert_rejected(call, TypeError, argument, f"{kernel}: {argument} as a list")


@pytest.mark.parametrize("kernel", ARGUMENTS)
def test_kernels_reject_bad_shapes_and_values(backend, kernel):
    shapes = {"X": (3, 4), "W": (4, 2), "b": (2,), "Z_prev": (3, 4), "A_prev": (3, 4)}
    for argument, key in ARGUMENTS[kernel]:
        shape = shapes.get(key, (3, 2))
        wrong = [s + 1 for s in shape]
        cases = {
            "NaN": nan_at(shape) if len(shape) == 2 else np.array([1.0, np.nan]),
            "inf": nan_at(shape, np.inf) if len(shape) == 2 else np.array([np.inf, 1.0]),
            "empty": np.ones((0,) + shape[1:]),
            "wrong ndim": np.ones(shape + (1,)),
        }
        for case, bad in cases.items():
            assert_rejected(kernel_calls(backend, **{key: bad})[kernel], ValueError, argument, f"{kernel}: {argument} {case}")
        # a size that disagrees with another argument's is a ValueError naming one of the two
        for axis in range(len(shape)):
            bad_shape = tuple(wrong[i] if i == axis else shape[i] for i in range(len(shape)))
            call = kernel_calls(backend, **{key: np.ones(bad_shape)})[kernel]
            if (kernel, key, axis) in FREE_AXES:
                call()                   # nothing else constrains this size
                continue
            with pytest.raises(ValueError) as info:
                call()
            assert any(name in str(info.value) for name, _ in ARGUMENTS[kernel]), str(info.value)


# sizes that no other argument of the kernel constrains
FREE_AXES = {("linear_forward", "X", 0), ("weight_gradient", "A_prev", 1), ("weight_gradient", "delta", 1)}


def test_kernels_reject_unknown_activation_and_backend(backend):
    X, W, b = np.ones((2, 3)), np.ones((3, 2)), np.ones(2)
    assert_rejected(lambda: fb.kernels.linear_forward(X, W, b, "swish", backend=backend), ValueError,
                    ["activation", "swish", "'silu'"])
    assert_rejected(lambda: fb.kernels.activation_backward(X, X, X, None, backend=backend), TypeError, "activation")
    assert_rejected(lambda: fb.kernels.weight_gradient(X, X, backend="opencl"), ValueError, ["backend", "'numpy'"])


def test_kernel_inputs_are_untouched_after_a_rejected_call(backend):
    X, W, b = np.random.default_rng(0).normal(size=(3, 4)), np.ones((5, 2)), np.ones(2)
    copies = [a.copy() for a in (X, W, b)]
    with pytest.raises(ValueError):
        fb.kernels.linear_forward(X, W, b, "relu", backend=backend)
    for a, c in zip((X, W, b), copies):
        np.testing.assert_array_equal(a, c)


# ---- optimizers ----

def test_optimizer_used_with_a_different_network(backend):
    for opt in (fb.Adam(lr=0.01), fb.SGD(lr=0.1, momentum=0.9)):
        net, opt = trained(backend, optimizer=opt)
        rng = np.random.default_rng(4)
        X, y = rng.normal(size=(BATCH, N_IN)), rng.normal(size=(BATCH, N_OUT))
        others = {
            "bigger": make_net(backend, sizes=(N_IN, HIDDEN + 1, N_OUT)),
            "float32": make_net(backend, dtype=np.float32),
            "same shape": make_net(backend, seed=9),
        }
        before = snapshot(net, opt)
        for name, other in others.items():
            other_before = snapshot(other)
            assert_rejected(lambda: other.train_step(X, y, opt), ValueError, "optimizer", name)
            assert_rejected(lambda: other.fit(X, y, epochs=1, optimizer=opt, progress=False), ValueError, "optimizer", name)
            assert_unchanged(net, opt, before, f"{name}: the optimizer's own network")
            assert_unchanged(other, None, other_before, f"{name}: the other network")
        net.train_step(X, y, opt)          # still fine with its own network
        assert opt.step_count == 2


def test_train_step_needs_a_fastbp_optimizer(backend):
    net, opt = trained(backend)
    before = snapshot(net, opt)
    for bad in ("adam", None, object(), fb.SGD):
        assert_rejected(lambda: net.train_step(np.ones((2, N_IN)), np.ones((2, N_OUT)), bad), TypeError, "optimizer")
    assert_unchanged(net, opt, before, "train_step with a non-optimizer")


BAD_HYPER = [
    (fb.SGD, dict(lr=0.0), ValueError, "lr"), (fb.SGD, dict(lr=-0.1), ValueError, "lr"),
    (fb.SGD, dict(lr=float("nan")), ValueError, "lr"), (fb.SGD, dict(lr=float("inf")), ValueError, "lr"),
    (fb.SGD, dict(lr="0.1"), TypeError, "lr"), (fb.SGD, dict(lr=True), TypeError, "lr"),
    (fb.SGD, dict(lr=None), TypeError, "lr"),
    (fb.SGD, dict(lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (fb.SGD, dict(lr=0.1, momentum=float("nan")), ValueError, "momentum"),
    (fb.SGD, dict(lr=0.1, weight_decay=-1e-4), ValueError, "weight_decay"),
    (fb.SGD, dict(lr=0.1, nesterov=True), ValueError, "nesterov"),
    (fb.SGD, dict(lr=0.1, momentum=0.9, nesterov="yes"), TypeError, "nesterov"),
    (fb.Adam, dict(lr=0.0), ValueError, "lr"), (fb.Adam, dict(lr=-1.0), ValueError, "lr"),
    (fb.Adam, dict(betas=(1.0, 0.999)), ValueError, "betas[0]"),
    (fb.Adam, dict(betas=(-0.1, 0.999)), ValueError, "betas[0]"),
    (fb.Adam, dict(betas=(0.9, 1.5)), ValueError, "betas[1]"),
    (fb.Adam, dict(betas=0.9), TypeError, "betas"), (fb.Adam, dict(betas=(0.9,)), TypeError, "betas"),
    (fb.Adam, dict(betas=("a", "b")), TypeError, "betas[0]"),
    (fb.Adam, dict(eps=-1e-8), ValueError, "eps"), (fb.Adam, dict(eps=float("nan")), ValueError, "eps"),
    (fb.Adam, dict(weight_decay=-0.1), ValueError, "weight_decay"),
]


@pytest.mark.parametrize("kind,kwargs,error,name", BAD_HYPER,
                         ids=[f"{k.__name__}-{'-'.join(f'{a}={v}' for a, v in kw.items())}" for k, kw, _, _ in BAD_HYPER])
def test_bad_optimizer_hyperparameters(kind, kwargs, error, name):
    assert_rejected(lambda: kind(**kwargs), error, name)


# ---- other entry points ----

def test_set_params_checks_everything_first(backend):
    net, opt = trained(backend)
    good_W, good_b = net.weights, net.biases
    nan_W = [w.copy() for w in good_W]
    nan_W[1][0, 0] = np.nan
    cases = [
        ("too few", lambda: net.set_params(good_W[:1], good_b[:1]), ValueError, "weights"),
        ("not sequences", lambda: net.set_params(5, 5), TypeError, "weights"),
        ("wrong shape", lambda: net.set_params([good_W[0].T, good_W[1]], good_b), ValueError, "weights[0]"),
        ("wrong bias shape", lambda: net.set_params(good_W, [good_b[0], np.ones(N_OUT + 1)]), ValueError, "biases[1]"),
        ("NaN in the last layer", lambda: net.set_params(nan_W, good_b), ValueError, "weights[1]"),
        ("strings", lambda: net.set_params([np.full(good_W[0].shape, "1"), good_W[1]], good_b), TypeError, "weights[0]"),
        ("flat, wrong length", lambda: net.set_flat_params(np.ones(net.n_params + 1)), ValueError, "flat"),
        ("flat, NaN", lambda: net.set_flat_params(np.full(net.n_params, np.nan)), ValueError, "flat"),
    ]
    before = snapshot(net, opt)
    for what, call, error, name in cases:
        assert_rejected(call, error, name, what)
        assert_unchanged(net, opt, before, what)


def test_fit_rejects_bad_options_and_changes_nothing(backend):
    net, opt = trained(backend)
    X, y = np.ones((BATCH, N_IN)), np.ones((BATCH, N_OUT))
    before = snapshot(net, opt)
    for options, name in ((dict(epochs=0), "epochs"), (dict(epochs=-1), "epochs"), (dict(batch_size=0), "batch_size"),
                          (dict(epochs=2.5), "epochs"), (dict(validation_data=(np.ones((2, N_IN + 1)), np.ones((2, N_OUT)))), "X")):
        options = dict(dict(epochs=1, optimizer=opt, progress=False), **options)
        assert_rejected(lambda: net.fit(X, y, **options), (ValueError, TypeError), name, str(options))
        assert_unchanged(net, opt, before, f"fit with {options}")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # the overflow is the point
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_non_finite_loss_raises_before_any_update(backend, dtype):
    """Finite but huge inputs overflow the forward pass: FloatingPointError, nothing updated."""
    rng = np.random.default_rng(1)
    net, opt = fb.MLP([N_IN, HIDDEN, N_OUT], activation="identity", dtype=dtype, backend=backend), fb.SGD(lr=0.1, momentum=0.9)
    net.train_step(rng.normal(size=(BATCH, N_IN)), rng.normal(size=(BATCH, N_OUT)), opt)
    big = np.finfo(dtype).max / 2
    X, y = np.full((BATCH, N_IN), big, dtype), np.zeros((BATCH, N_OUT), dtype)
    net.set_params([np.full(w.shape, 1.0) for w in net.weights], net.biases)     # Z1 = 4 * big: inf
    before = snapshot(net, opt)
    with pytest.raises(FloatingPointError):
        net.train_step(X, y, opt)
    after = snapshot(net, opt)
    for key in before:
        if key != "flat_grads":       # the gradients of the failed step may be left behind
            assert before[key].tobytes() == after[key].tobytes(), f"{key} changed by a step that raised"


def test_load_rejects_a_foreign_file(tmp_path):
    path = tmp_path / "not-a-checkpoint.npz"
    path.write_bytes(b"this is not a zip file at all")
    assert_rejected(lambda: fb.MLP.load(path), ValueError, str(path))
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.ones(3))
    assert_rejected(lambda: fb.MLP.load(other), ValueError, str(other))


def test_no_bad_input_crashes_the_process_on_compiled_backends(backend):
    """A batch of odd calls in a row; reaching the end means no kernel crashed the interpreter."""
    if backend == "cuda" and CUDA_SIMULATED:
        sizes = (2, 2, 2)
    else:
        sizes = (N_IN, HIDDEN, N_OUT)
    net = fb.MLP(list(sizes), backend=backend, seed=0)
    for X in (np.ones((1, sizes[0] + 1)), np.ones((3, sizes[0]))[:, ::-1], np.ones((2, sizes[0]))[::2]):
        try:
            net.forward(X)
        except ValueError:
            pass


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.filterwarnings("error::RuntimeWarning")     # rejected cleanly, without an overflow warning
def test_values_that_overflow_the_network_dtype_are_rejected(backend, method):
    """1e39 is finite in float64 but inf once converted to a float32 network's dtype."""
    net, opt = trained(backend, dtype=np.float32)
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(BATCH, N_IN)), rng.normal(size=(BATCH, N_OUT))
    before = snapshot(net, opt)
    X_big, y_big = X.copy(), y.copy()
    X_big[2, 1], y_big[3, 0] = 1e39, -1e39
    message = assert_rejected(lambda: run_method(method, net, opt, X_big, y), ValueError, "X", f"{method}: X overflows")
    assert "range" in message or "inf" in message, message
    if method != "forward":
        assert_rejected(lambda: run_method(method, net, opt, X, y_big), ValueError, "y", f"{method}: y overflows float32")
    assert_unchanged(net, opt, before, f"{method} with values beyond float32")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_bce_targets_outside_zero_one_are_refused(backend, dtype):
    """BCE is defined for targets in [0, 1]: class labels 3, 9, -2 are a ValueError naming y,
    on every path in (train_step's per-step fast path for ready arrays included)."""
    net, opt = trained(backend, "bce", dtype=dtype)
    X = np.ones((3, N_IN), dtype=dtype)
    labels = np.array([3.0, 9.0, -2.0], dtype=dtype)
    y = np.ascontiguousarray(np.repeat(labels[:, None], N_OUT, axis=1))     # exactly what kernels take
    before = snapshot(net, opt)
    calls = {"loss_and_grad": lambda: net.loss_and_grad(X, y), "loss_value": lambda: net.loss_value(X, y),
             "train_step": lambda: net.train_step(X, y, opt), "train_step(list)": lambda: net.train_step(X, y.tolist(), opt),
             "fit": lambda: net.fit(X, y, epochs=1, optimizer=opt, progress=False),
             "fit(validation_data)": lambda: net.fit(X, np.full_like(y, 0.5), epochs=1, optimizer=opt, progress=False,
                                                     validation_data=(X, y))}
    for what, call in calls.items():
        with pytest.raises(ValueError, match=r"y must hold targets in \[0, 1\] for bce .*got values in \[-2, 9\]"):
            call()
        assert_unchanged(net, opt, before, what)
    edges = np.ascontiguousarray(np.tile(np.array([[0.0], [1.0], [0.25]], dtype=dtype), (1, N_OUT)))
    assert np.isfinite(net.train_step(X, edges, opt))            # 0 and 1 themselves are targets
