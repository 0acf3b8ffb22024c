"""fb.MLP: seeded initialisation, the one-flat-buffer layout, set_params, save/load, forward."""
import numpy as np
import pytest

import fastbp as fb
from fastbp import activations
from conftest import CUDA_SIMULATED, tolerance


def small(backend):
    return backend == "cuda" and CUDA_SIMULATED


# ---- initialisation ----

def test_same_seed_same_weights_other_seed_other_weights(backend, dtype):
    a = fb.MLP([5, 7, 3], dtype=dtype, backend=backend, seed=42)
    b = fb.MLP([5, 7, 3], dtype=dtype, backend=backend, seed=42)
    c = fb.MLP([5, 7, 3], dtype=dtype, backend=backend, seed=43)
    d, e = fb.MLP([5, 7, 3], dtype=dtype, backend=backend), fb.MLP([5, 7, 3], dtype=dtype, backend=backend)
    assert a.get_flat_params().tobytes() == b.get_flat_params().tobytes()
    assert not np.array_equal(a.get_flat_params(), c.get_flat_params())
    assert not np.array_equal(d.get_flat_params(), e.get_flat_params()), "seed=None must draw fresh entropy"


def test_initial_weights_do_not_depend_on_the_backend_or_dtype(backend):
    ref64 = fb.MLP([6, 5, 4], activation="tanh", dtype=np.float64, backend="numpy", seed=7).get_flat_params()
    net64 = fb.MLP([6, 5, 4], activation="tanh", dtype=np.float64, backend=backend, seed=7)
    net32 = fb.MLP([6, 5, 4], activation="tanh", dtype=np.float32, backend=backend, seed=7)
    assert net64.get_flat_params().tobytes() == ref64.tobytes()
    assert net32.get_flat_params().tobytes() == ref64.astype(np.float32).tobytes()


@pytest.mark.parametrize("activation", activations.NAMES)
def test_he_for_relu_like_glorot_otherwise(activation):
    """He-normal std sqrt(2/n_in) for relu-like hidden layers; Glorot-uniform on
    +-sqrt(6/(n_in+n_out)) otherwise (the output layer follows its own activation); zero biases."""
    n_in, n_hidden, n_out = 400, 300, 200
    net = fb.MLP([n_in, n_hidden, n_out], activation=activation, output_activation="identity",
                 dtype=np.float64, backend="numpy", seed=0)
    W0, W1 = net.weights
    relu_like = activations.code(activation) in activations.RELU_LIKE
    if relu_like:
        std = np.sqrt(2.0 / n_in)
        assert W0.std() == pytest.approx(std, rel=0.02)
        assert abs(W0.mean()) < 0.01 * std
        assert np.abs(W0).max() > 3.5 * std                # normal tails, not a uniform box
    else:
        limit = np.sqrt(6.0 / (n_in + n_hidden))
        assert np.abs(W0).max() <= limit and np.abs(W0).max() > 0.99 * limit
        assert W0.var() == pytest.approx(limit**2 / 3, rel=0.02)   # variance 2 / (n_in + n_out)
    limit1 = np.sqrt(6.0 / (n_hidden + n_out))                    # identity output: Glorot
    assert np.abs(W1).max() <= limit1 and W1.var() == pytest.approx(limit1**2 / 3, rel=0.03)
    for b in net.biases:
        assert not b.any()


# ---- the flat buffer ----

def test_layout_is_w0_b0_w1_b1(backend, dtype):
    net = fb.MLP([3, 4, 2], dtype=dtype, backend=backend, seed=1)
    flat = net.get_flat_params()
    assert flat.shape == (net.n_params,) == (3 * 4 + 4 + 4 * 2 + 2,)
    expected = np.concatenate([np.ravel(a) for pair in zip(net.weights, net.biases) for a in pair])
    assert flat.tobytes() == expected.astype(dtype).tobytes()
    assert [w.shape for w in net.weights] == [(3, 4), (4, 2)]
    assert [b.shape for b in net.biases] == [(4,), (2,)]


def test_weights_are_views_into_the_flat_buffer_on_cpu(cpu_backend, dtype):
    net = fb.MLP([3, 4, 2], dtype=dtype, backend=cpu_backend, seed=1)
    flat = net.flat_params
    for arr in net.weights + net.biases:
        assert np.shares_memory(arr, flat) and arr.flags.writeable
    net.weights[1][2, 1] = 5.5
    net.biases[0][3] = -2.25
    offsets = net.arch.offsets
    assert flat[offsets[1][0] + 2 * 2 + 1] == 5.5
    assert flat[offsets[0][1] + 3] == -2.25
    X = np.ones((1, 3), dtype)
    before = net.forward(X)
    net.weights[1][...] = 0
    net.biases[1][...] = 1
    np.testing.assert_array_equal(net.forward(X), np.ones((1, 2)))
    assert not np.array_equal(before, net.forward(X))
    flat[...] = 0
    assert not any(a.any() for a in net.weights + net.biases)


def test_gradients_live_in_one_flat_buffer_and_are_returned_as_copies(cpu_backend):
    net = fb.MLP([3, 4, 2], dtype=np.float64, backend=cpu_backend, seed=1)
    rng = np.random.default_rng(0)
    loss, dW, db = net.loss_and_grad(rng.normal(size=(5, 3)), rng.normal(size=(5, 2)))
    expected = np.concatenate([np.ravel(a) for pair in zip(dW, db) for a in pair])
    np.testing.assert_array_equal(net.flat_grads, expected)
    dW[0][...] = 99.0                             # the caller's copy; the buffer is untouched
    np.testing.assert_array_equal(net.flat_grads, expected)


def test_set_params_round_trip(backend, dtype):
    net = fb.MLP([4, 6, 3], dtype=dtype, backend=backend, seed=0)
    rng = np.random.default_rng(9)
    Ws = [rng.normal(size=(4, 6)), rng.normal(size=(6, 3))]
    bs = [rng.normal(size=6), rng.normal(size=3)]
    net.set_params(Ws, bs)
    for got, want in zip(net.weights + net.biases, Ws + bs):
        assert got.dtype == dtype
        assert got.tobytes() == want.astype(dtype).tobytes()
    Ws[0][...] = 0                                 # set_params copied: later edits don't leak in
    assert net.weights[0].any()
    flat = net.get_flat_params()
    other = fb.MLP([4, 6, 3], dtype=dtype, backend=backend, seed=1)
    other.set_flat_params(flat)
    assert other.get_flat_params().tobytes() == flat.tobytes()
    np.testing.assert_array_equal(other.forward(np.ones((2, 4))), net.forward(np.ones((2, 4))))


def test_save_load_round_trip_bit_for_bit(backend, dtype, tmp_path):
    net = fb.MLP([4, 6, 5, 3], activation="gelu", output_activation="sigmoid", loss="bce", reduction="sum",
                 dtype=dtype, backend=backend, seed=2)
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(8, 4)), rng.uniform(size=(8, 3))
    net.train_step(X, y, fb.SGD(lr=0.1))          # not just the initial weights
    path = tmp_path / "net.npz"
    net.save(path)
    back = fb.MLP.load(path, backend=backend)
    assert (back.layer_sizes, back.activation, back.output_activation, back.loss, back.reduction, back.dtype) == \
           (net.layer_sizes, net.activation, net.output_activation, net.loss, net.reduction, net.dtype)
    assert back.get_flat_params().tobytes() == net.get_flat_params().tobytes()
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    assert back.loss_and_grad(X, y)[0] == net.loss_and_grad(X, y)[0]


# ---- forward and gradients ----

def test_forward_on_a_batch_equals_row_by_row(backend, dtype):
    sizes = [3, 4, 2] if small(backend) else [7, 16, 9, 3]
    net = fb.MLP(sizes, activation="tanh", output_activation="sigmoid", dtype=dtype, backend=backend, seed=4)
    X = np.random.default_rng(5).normal(size=(4 if small(backend) else 33, sizes[0])).astype(dtype)
    batch = net.forward(X)
    assert batch.shape == (len(X), sizes[-1]) and batch.dtype == dtype
    rows = np.vstack([net.forward(X[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(batch, rows, **tolerance(dtype))


def test_forward_matches_numpy_by_hand(backend, dtype):
    net = fb.MLP([3, 5, 2], activation="tanh", output_activation="identity", dtype=dtype, backend=backend, seed=6)
    rng = np.random.default_rng(6)
    net.set_params(net.weights, [rng.normal(size=b.shape) for b in net.biases])
    X = rng.normal(size=(4, 3)).astype(dtype)
    W, b = [w.astype(np.float64) for w in net.weights], [v.astype(np.float64) for v in net.biases]
    expected = np.tanh(X @ W[0] + b[0]) @ W[1] + b[1]
    np.testing.assert_allclose(net.forward(X), expected, **tolerance(dtype))


def test_loss_and_grad_changes_no_parameter_and_train_step_is_sgd(backend, dtype):
    net = fb.MLP([3, 4, 2], activation="tanh", dtype=dtype, backend=backend, seed=8)
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    before = net.get_flat_params()
    loss, dW, db = net.loss_and_grad(X, y)
    assert before.tobytes() == net.get_flat_params().tobytes()
    assert loss == pytest.approx(net.loss_value(X, y), rel=1e-6)
    grads = np.concatenate([np.ravel(a) for pair in zip(dW, db) for a in pair])
    step_loss = net.train_step(X, y, fb.SGD(lr=0.5))
    assert step_loss == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(net.get_flat_params(), before - dtype(0.5) * grads, **tolerance(dtype))


def test_description(backend):
    net = fb.MLP([2, 3, 3, 1], activation="elu", output_activation="sigmoid", loss="bce", reduction="sum",
                 dtype=np.float64, backend=backend)
    assert net.layer_sizes == (2, 3, 3, 1)
    assert (net.activation, net.output_activation, net.loss, net.reduction) == ("elu", "sigmoid", "bce", "sum")
    assert net.dtype == np.float64 and net.backend == backend
    assert net.n_params == 2 * 3 + 3 + 3 * 3 + 3 + 3 * 1 + 1
    text = repr(net)
    assert "elu" in text and "bce" in text and backend in text
    one_layer = fb.MLP([4, 2], output_activation="tanh", backend=backend)
    assert one_layer.output_activation == "tanh" and one_layer.dtype == np.float32


def test_auto_backend_is_a_usable_one():
    net = fb.MLP([2, 1], backend="auto")
    assert net.backend in fb.available_backends()
