"""MLP(l2=...): the L2 penalty on the weights (never the biases) as part of the network's loss,
in every pass of every backend: 0.5 * l2 * sum(W**2) added to the summed loss and divided as
the reduction divides the data term (by the rows, or the total sample weight, for the mean)."""
import warnings

import numpy as np
import pytest

import fastbp as fb
from conftest import tolerance

L2 = 0.7
# the Numba flat pass; views + BLAS with plain SGD inside every weight-gradient GEMM; a first
# layer below the BLAS threshold (its SGD update through loops into grads) under GEMM layers
SHAPES = {"tiny": ([3, 4, 2], 5), "wide": ([20, 48, 33, 3], 40), "mixed": ([8, 10, 64, 3], 40)}
CUDA_SHAPES = ("tiny",)          # the CUDA simulator: 0.2 ms per simulated thread
OPTIMIZERS = {"sgd": lambda: fb.SGD(0.1), "momentum": lambda: fb.SGD(0.05, momentum=0.9, weight_decay=0.01),
              "adam": lambda: fb.Adam(0.01)}


def network(sizes, loss, reduction, dtype, backend, l2=L2, seed=0):
    return fb.MLP(sizes, activation="tanh", loss=loss, reduction=reduction, dtype=dtype, backend=backend,
                  seed=seed, l2=l2)


def data(sizes, loss, dtype, batch, weighted, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], size=batch).astype(np.intp)
    else:
        y = rng.normal(size=(batch, sizes[-1])).astype(dtype)
    w = None
    if weighted:
        w = rng.uniform(0, 3, size=batch).astype(dtype)
        w[::4] = 0.0
    return X, y, w


def skip_cuda_shape(backend, shape):
    if backend == "cuda" and shape not in CUDA_SHAPES:
        pytest.skip("the CUDA simulator runs tiny shapes only (0.2 ms per simulated thread)")


# ---- the loss and its gradient, against torch autograd ----

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_objective(torch, twin, X, y, w, loss, reduction, l2):
    """The data loss (torch.nn.functional; rows weighted by w) plus 0.5 * l2 * sum(W**2) / n."""
    from test_sample_weight import torch_weighted
    from test_autograd import torch_loss, torch_targets
    out = twin.forward(X)
    t_y = torch_targets(torch, y, loss)
    if w is None:
        data_loss, n = torch_loss(torch, out, t_y, loss, reduction), X.shape[0]
    else:
        t_w = torch.tensor(np.asarray(w, np.float64))
        data_loss, n = torch_weighted(torch, out, t_y, t_w, loss, reduction), t_w.sum()
    squares = sum((W * W).sum() for W in twin.W)
    return data_loss + 0.5 * l2 * squares / (n if reduction == "mean" else 1)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("shape", ["tiny", "wide"])
def test_loss_and_gradient_match_torch_autograd(torch, cpu_backend, dtype, shape, loss, reduction, weighted):
    from test_autograd import TorchMLP
    sizes, batch = SHAPES[shape]
    net = network(sizes, loss, reduction, dtype, cpu_backend)
    X, y, w = data(sizes, loss, dtype, batch, weighted)
    twin = TorchMLP(torch, net)
    t_loss = torch_objective(torch, twin, X, y, w, loss, reduction, L2)
    t_loss.backward()
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    value, dW, db = net.loss_and_grad(X, y, w)
    assert value == pytest.approx(t_loss.item(), rel=rtol)
    assert net.loss_value(X, y, w) == pytest.approx(t_loss.item(), rel=rtol)
    atol = 1e-12 if dtype == np.float64 else 1e-4
    for l in range(len(dW)):
        np.testing.assert_allclose(dW[l], twin.W[l].grad.numpy(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(db[l], twin.b[l].grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_the_penalty_is_on_the_weights_only(backend, weighted, reduction):
    """With l2 the weights' gradient gains exactly l2 * W / n (n: rows or total weight; 1 for
    the sum) and the loss 0.5 * l2 * sum(W**2) / n; the biases' gradient is unchanged."""
    sizes, batch = SHAPES["tiny"]
    X, y, w = data(sizes, "mse", np.float64, batch, weighted)
    plain, penalised = (network(sizes, "mse", reduction, np.float64, backend, l2=l2) for l2 in (0.0, L2))
    n = 1.0 if reduction == "sum" else (batch if w is None else w.sum())
    (l0, dW0, db0), (l1, dW1, db1) = plain.loss_and_grad(X, y, w), penalised.loss_and_grad(X, y, w)
    weights = penalised.weights
    assert l1 - l0 == pytest.approx(0.5 * L2 * sum(float((W * W).sum()) for W in weights) / n, rel=1e-9)
    for a, b, W in zip(dW1, dW0, weights):
        np.testing.assert_allclose(a - b, L2 * W / n, rtol=1e-9, atol=1e-13)
    for a, b in zip(db1, db0):
        np.testing.assert_array_equal(a, b)


# ---- every backend's passes and compiled steps equal the reference's ----

@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", SHAPES)
def test_passes_match_the_reference(backend, dtype, shape, reduction, weighted):
    skip_cuda_shape(backend, shape)
    sizes, batch = SHAPES[shape]
    net, ref = (network(sizes, "cross_entropy", reduction, dtype, b) for b in (backend, "numpy"))
    X, y, w = data(sizes, "cross_entropy", dtype, batch, weighted)
    tol = tolerance(dtype)
    assert net.loss_value(X, y, w) == pytest.approx(ref.loss_value(X, y, w), rel=tol["rtol"])
    got, want = net.loss_and_grad(X, y, w), ref.loss_and_grad(X, y, w)
    assert got[0] == pytest.approx(want[0], rel=tol["rtol"])
    for a, b in zip(got[1] + got[2], want[1] + want[2]):
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("kind", OPTIMIZERS)
@pytest.mark.parametrize("shape", SHAPES)
def test_compiled_steps_match_the_reference(backend, shape, kind, weighted):
    """The whole steps (plain SGD with the L2 term folded into the GEMM's beta, momentum, Adam)."""
    skip_cuda_shape(backend, shape)
    sizes, batch = SHAPES[shape]
    net, ref = (network(sizes, "mse", "mean", np.float64, b) for b in (backend, "numpy"))
    opt, opt_ref = OPTIMIZERS[kind](), OPTIMIZERS[kind]()
    X, y, w = data(sizes, "mse", np.float64, batch, weighted)
    for _ in range(3):
        assert net.train_step(X, y, opt, sample_weight=w) == pytest.approx(
            ref.train_step(X, y, opt_ref, sample_weight=w), rel=1e-10)
    np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), rtol=1e-9, atol=1e-12)
    unpenalised = network(sizes, "mse", "mean", np.float64, "numpy", l2=0.0)
    opt_plain = OPTIMIZERS[kind]()
    for _ in range(3):
        unpenalised.train_step(X, y, opt_plain, sample_weight=w)
    assert not np.allclose(ref.get_flat_params(), unpenalised.get_flat_params(), rtol=1e-6), \
        "the L2 term changed the steps"


@pytest.mark.parametrize("shape", ["tiny", "wide"])
def test_float32_steps_match_the_reference(cpu_backend, shape):
    sizes, batch = SHAPES[shape]
    net, ref = (network(sizes, "cross_entropy", "mean", np.float32, b) for b in (cpu_backend, "numpy"))
    X, y, w = data(sizes, "cross_entropy", np.float32, batch, weighted=True)
    for kind in OPTIMIZERS:
        opt, opt_ref = OPTIMIZERS[kind](), OPTIMIZERS[kind]()
        for _ in range(2):
            assert net.train_step(X, y, opt, w) == pytest.approx(ref.train_step(X, y, opt_ref, w), rel=2e-4)
    np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), rtol=2e-4, atol=1e-5)


def test_fit_matches_the_reference(cpu_backend):
    sizes, _ = SHAPES["wide"]
    X, y, w = data(sizes, "mse", np.float64, 100, weighted=True)
    histories = []
    for b in (cpu_backend, "numpy"):
        net = network(sizes, "mse", "mean", np.float64, b)
        histories.append((net.fit(X, y, epochs=2, batch_size=32, optimizer=fb.SGD(0.05), seed=0,
                                  sample_weight=w), net.get_flat_params()))
    (h, p), (h_ref, p_ref) = histories
    np.testing.assert_allclose(h["loss"], h_ref["loss"], rtol=1e-10)
    np.testing.assert_allclose(p, p_ref, rtol=1e-9, atol=1e-12)


# ---- l2 = 0 is the network without the term ----

@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_l2_zero_steps_are_the_unpenalised_steps_bit_for_bit(cpu_backend, kind):
    sizes, batch = SHAPES["wide"]
    X, y, w = data(sizes, "mse", np.float32, batch, weighted=False)
    default = fb.MLP(sizes, activation="tanh", dtype=np.float32, backend=cpu_backend, seed=0)
    was_penalised = network(sizes, "mse", "mean", np.float32, cpu_backend, l2=L2)
    was_penalised.l2 = 0.0
    opts = OPTIMIZERS[kind](), OPTIMIZERS[kind]()
    for _ in range(3):
        assert default.train_step(X, y, opts[0]) == was_penalised.train_step(X, y, opts[1])
    np.testing.assert_array_equal(default.get_flat_params(), was_penalised.get_flat_params())


# ---- gradcheck, bad values, checkpoints, the estimators ----

@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradcheck_with_l2(cpu_backend, reduction):
    sizes, batch = SHAPES["tiny"]
    net = network(sizes, "cross_entropy", reduction, np.float64, cpu_backend, l2=5.0)
    X, y, w = data(sizes, "cross_entropy", np.float64, batch, weighted=True)
    report = fb.gradcheck(net, X, y, sample_weight=w)
    assert report.passed, str(report)


@pytest.mark.parametrize("bad, error", [(-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                        ("0.1", TypeError), (None, TypeError), (True, TypeError), ([0.1], TypeError)])
def test_bad_l2_is_rejected_naming_it_and_changes_nothing(bad, error):
    with pytest.raises(error, match="l2"):
        fb.MLP([2, 3, 1], l2=bad, backend="numpy")
    net = fb.MLP([2, 3, 1], l2=0.5, backend="numpy")
    with pytest.raises(error, match="l2"):
        net.l2 = bad
    assert net.l2 == 0.5


def test_checkpoint_keeps_l2_and_old_checkpoints_load_as_zero(tmp_path):
    import json
    sizes, batch = SHAPES["tiny"]
    X, y, _ = data(sizes, "mse", np.float64, batch, weighted=False)
    net = network(sizes, "mse", "mean", np.float64, "numpy", l2=0.25)
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = fb.MLP.load(path)
    assert loaded.l2 == 0.25
    assert loaded.loss_value(X, y) == net.loss_value(X, y)

    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["meta"].tobytes())
    for value, expected in ((None, 0.0), (-1.0, ValueError), ("x", ValueError)):
        if value is None:
            meta.pop("l2")                      # a checkpoint written before l2 existed
        else:
            meta["l2"] = value
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        old = tmp_path / "old.npz"
        np.savez(old, **arrays)
        if expected is ValueError:
            with pytest.raises(ValueError, match="L2"):
                fb.MLP.load(old)
        else:
            assert fb.MLP.load(old).l2 == expected


def test_estimator_alpha_is_the_networks_l2_with_lbfgs_over_several_chunks():
    """L-BFGS evaluates the data EVAL_ROWS rows at a time, each chunk carrying its share of
    the L2 term: with more rows than one chunk (and several outputs, whose reported loss is
    corrected) the path is still scikit-learn's."""
    sklearn = pytest.importorskip("sklearn")
    del sklearn
    from sklearn import neural_network as theirs
    from sklearn.exceptions import ConvergenceWarning
    from fastbp.sklearn import MLPRegressor
    from fastbp.training import EVAL_ROWS
    rng = np.random.default_rng(0)
    n = EVAL_ROWS + 500
    X = rng.normal(size=(n, 5))
    y = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
    params = dict(hidden_layer_sizes=(8,), solver="lbfgs", alpha=3.0, max_iter=15, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mine = MLPRegressor(backend="numpy", **params).fit(X, y)
        ref = theirs.MLPRegressor(**params).fit(X, y)
    assert mine._net.l2 == pytest.approx(3.0 / (2 / 2.0))        # alpha / scale (scale = n_outputs / 2)
    np.testing.assert_allclose(mine.loss_, ref.loss_, rtol=1e-6)
    for a, b in zip(mine.coefs_ + mine.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
