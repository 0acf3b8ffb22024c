"""Per-row sample weights in every loss, on every backend (fastbp.losses): the weighted mean
sum_i w_i l_i / sum_i w_i (scikit-learn's np.average, torch's reduction='none' times the
weights), through the loss kernels, the network passes and the fused training steps."""
import numpy as np
import pytest

import fastbp as fb
from fastbp import losses
from fastbp._kernels import get_ops
from conftest import tolerance

LOSSES = losses.NAMES
REDUCTIONS = losses.REDUCTIONS


def targets(rng, loss, shape):
    if loss == "cross_entropy":
        return rng.integers(0, shape[1], size=shape[0]).astype(np.intp)
    if loss == "bce":
        return rng.uniform(size=shape)
    if loss == "poisson":
        return rng.poisson(2.0, size=shape).astype(np.float64)
    return rng.normal(size=shape)


def weights(rng, n):
    w = rng.uniform(0, 3, size=n)
    w[::4] = 0.0                                   # zero weights take part too
    w[1] = 1.0
    return w


def network(sizes, loss, reduction, dtype, backend, seed=0):
    return fb.MLP(sizes, activation="tanh", output_activation="identity", loss=loss, reduction=reduction,
                  dtype=dtype, backend=backend, seed=seed)


def data(sizes, loss, dtype, batch, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, sizes[0])).astype(dtype)
    y = targets(rng, loss, (batch, sizes[-1]))
    return X, (y if loss == "cross_entropy" else y.astype(dtype)), weights(rng, batch).astype(dtype)


# ---- the loss kernels, against torch ----

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_weighted(torch, out, y, w, loss, reduction):
    """torch.nn.functional's reduction='none' loss times the row weights, then reduced."""
    import torch.nn.functional as F
    if loss == "mse":
        per = F.mse_loss(out, y, reduction="none")
    elif loss == "cross_entropy":
        per = F.cross_entropy(out, y, reduction="none")[:, None]
    elif loss == "bce":
        per = F.binary_cross_entropy_with_logits(out, y, reduction="none")
    else:
        per = F.poisson_nll_loss(out, y, log_input=True, full=False, reduction="none") + torch.xlogy(y, y) - y
    total = (per * w[:, None]).sum()
    return total / (w.sum() * per.shape[1]) if reduction == "mean" else total


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_weighted_loss_kernel_matches_torch(torch, backend, loss, reduction):
    rng = np.random.default_rng(5)
    out = rng.normal(size=(9, 4)) * 3
    y, w = targets(rng, loss, out.shape), weights(rng, 9)
    ops = get_ops(backend)
    value, grad = ops.loss_and_output_grad(ops.from_host(out), ops.from_host(y), losses.code(loss),
                                           losses.reduction_code(reduction), ops.from_host(w))
    t_out = torch.tensor(out, requires_grad=True)
    t_y = torch.tensor(y, dtype=torch.long if loss == "cross_entropy" else torch.float64)
    t_loss = torch_weighted(torch, t_out, t_y, torch.tensor(w), loss, reduction)
    t_loss.backward()
    assert value == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(ops.to_host(grad), t_out.grad.numpy(), rtol=1e-11, atol=1e-14)


# ---- the network passes: against torch, the reference, unit weights and repeated rows ----

SHAPES = {"tiny": ([3, 4, 2], 5), "wide": ([20, 48, 33, 3], 40)}     # the Numba flat pass, then views + BLAS


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_weighted_gradients_match_torch_autograd(torch, cpu_backend, loss, shape):
    from test_autograd import TorchMLP
    sizes, batch = SHAPES[shape]
    net = network(sizes, loss, "mean", np.float64, cpu_backend)
    X, y, w = data(sizes, loss, np.float64, batch)
    twin = TorchMLP(torch, net)
    t_y = torch.tensor(y, dtype=torch.long if loss == "cross_entropy" else torch.float64)
    t_loss = torch_weighted(torch, twin.forward(X), t_y, torch.tensor(w), loss, "mean")
    t_loss.backward()
    value, dW, db = net.loss_and_grad(X, y, sample_weight=w)
    assert value == pytest.approx(t_loss.item(), rel=1e-10)
    for l in range(len(dW)):
        np.testing.assert_allclose(dW[l], twin.W[l].grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(db[l], twin.b[l].grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_weighted_passes_match_the_reference(backend, dtype, loss, reduction, shape):
    sizes, batch = SHAPES[shape]
    if backend == "cuda" and shape == "wide":
        pytest.skip("the CUDA simulator runs tiny shapes only (0.2 ms per simulated thread)")
    net, ref = (network(sizes, loss, reduction, dtype, b) for b in (backend, "numpy"))
    X, y, w = data(sizes, loss, dtype, batch)
    tol = tolerance(dtype)
    assert net.loss_value(X, y, w) == pytest.approx(ref.loss_value(X, y, w), rel=tol["rtol"])
    got, want = net.loss_and_grad(X, y, w), ref.loss_and_grad(X, y, w)
    assert got[0] == pytest.approx(want[0], rel=tol["rtol"])
    for a, b in zip(got[1] + got[2], want[1] + want[2]):
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_weighted_fused_steps_match_the_reference(backend, loss, shape, kind):
    """The compiled whole steps (plain SGD inside the GEMM, momentum, Adam) take the weights."""
    sizes, batch = SHAPES[shape]
    if backend == "cuda" and shape == "wide":
        pytest.skip("the CUDA simulator runs tiny shapes only (0.2 ms per simulated thread)")
    make = {"sgd": lambda: fb.SGD(0.1), "momentum": lambda: fb.SGD(0.05, momentum=0.9),
            "adam": lambda: fb.Adam(0.01)}[kind]
    net, ref = (network(sizes, loss, "mean", np.float64, b) for b in (backend, "numpy"))
    opt, opt_ref = make(), make()
    X, y, w = data(sizes, loss, np.float64, batch)
    for _ in range(3):
        assert net.train_step(X, y, opt, sample_weight=w) == pytest.approx(
            ref.train_step(X, y, opt_ref, sample_weight=w), rel=1e-10)
    np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), rtol=1e-9, atol=1e-12)
    assert not np.allclose(ref.get_flat_params(), network(sizes, loss, "mean", np.float64, "numpy")
                           .get_flat_params()), "the steps moved the parameters"


@pytest.mark.parametrize("loss", LOSSES)
def test_unit_weights_are_no_weights(backend, dtype, loss):
    sizes, batch = SHAPES["tiny"]
    net = network(sizes, loss, "mean", dtype, backend)
    X, y, _ = data(sizes, loss, dtype, batch)
    plain, unit = net.loss_and_grad(X, y), net.loss_and_grad(X, y, np.ones(batch))
    assert unit[0] == plain[0]
    for a, b in zip(unit[1] + unit[2], plain[1] + plain[2]):
        np.testing.assert_array_equal(a, b)
    opt_a, opt_b = fb.Adam(0.01), fb.Adam(0.01)
    twin = network(sizes, loss, "mean", dtype, backend)
    assert net.train_step(X, y, opt_a, sample_weight=np.ones(batch)) == twin.train_step(X, y, opt_b)
    np.testing.assert_array_equal(net.get_flat_params(), twin.get_flat_params())


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_integer_weights_are_repeated_rows(cpu_backend, loss, reduction):
    sizes, batch = SHAPES["tiny"]
    net = network(sizes, loss, reduction, np.float64, cpu_backend)
    X, y, _ = data(sizes, loss, np.float64, batch)
    counts = np.array([0, 1, 2, 3, 1])
    rows = np.repeat(np.arange(batch), counts)
    weighted, repeated = net.loss_and_grad(X, y, counts), net.loss_and_grad(X[rows], y[rows])
    assert weighted[0] == pytest.approx(repeated[0], rel=1e-12)
    for a, b in zip(weighted[1] + weighted[2], repeated[1] + repeated[2]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)


def test_all_zero_weights_in_a_batch_give_loss_and_gradient_zero(backend):
    """fit's batches may hold only zero-weight rows: they carry no weight (fastbp.losses)."""
    sizes, batch = SHAPES["tiny"]
    net = network(sizes, "mse", "mean", np.float64, backend)
    X, y, _ = data(sizes, "mse", np.float64, batch)
    ops = get_ops(backend)
    value, grad = ops.loss_and_output_grad(ops.from_host(np.ascontiguousarray(X[:, :2])), ops.from_host(y), losses.MSE, losses.MEAN,
                                           ops.from_host(np.zeros(batch)))
    assert value == 0.0 and not np.any(ops.to_host(grad))
    assert net.loss_value(X, y, np.r_[np.zeros(batch - 1), 1.0]) == pytest.approx(net.loss_value(X[-1:], y[-1:]))


@pytest.mark.parametrize("loss", LOSSES)
def test_gradcheck_with_weights(cpu_backend, loss):
    sizes, batch = SHAPES["tiny"]
    net = network(sizes, loss, "mean", np.float64, cpu_backend)
    X, y, w = data(sizes, loss, np.float64, batch)
    report = fb.gradcheck(net, X, y, sample_weight=w)
    assert report.passed, str(report)
    # the weights matter: the unweighted gradient is not the weighted one
    assert not np.allclose(net.loss_and_grad(X, y)[1][0], net.loss_and_grad(X, y, w)[1][0])


# ---- bad weights: ValueError naming sample_weight, nothing changed ----

BAD = {
    "wrong length": np.ones(4),
    "2-D": np.ones((5, 1)),
    "NaN": np.r_[1.0, np.nan, 1, 1, 1],
    "inf": np.r_[1.0, np.inf, 1, 1, 1],
    "negative": np.r_[1.0, -0.5, 1, 1, 1],
    "all zero": np.zeros(5),
    "beyond float32": np.r_[1.0, 1e39, 1, 1, 1],
}


@pytest.mark.parametrize("bad", BAD)
def test_bad_weights_are_rejected_and_change_nothing(cpu_backend, bad):
    sizes, batch = SHAPES["tiny"]
    net = network(sizes, "mse", "mean", np.float32, cpu_backend)
    X, y, _ = data(sizes, "mse", np.float32, batch)
    opt = fb.Adam(0.01)
    net.train_step(X, y, opt)
    before, state = net.get_flat_params(), {k: v.copy() for k, v in opt.checkpoint_arrays().items()}
    calls = [lambda: net.loss_value(X, y, BAD[bad]), lambda: net.loss_and_grad(X, y, BAD[bad]),
             lambda: net.train_step(X, y, opt, sample_weight=BAD[bad]),
             lambda: net.fit(X, y, epochs=1, optimizer=opt, progress=False, sample_weight=BAD[bad])]
    for call in calls:
        with pytest.raises(ValueError, match="sample_weight"):
            call()
    np.testing.assert_array_equal(net.get_flat_params(), before)
    assert opt.step_count == 1
    for k, v in opt.checkpoint_arrays().items():
        np.testing.assert_array_equal(v, state[k])


def test_strings_as_weights_are_a_type_error():
    net = network([3, 2], "mse", "mean", np.float64, "numpy")
    with pytest.raises(TypeError, match="sample_weight"):
        net.loss_value(np.ones((2, 3)), np.ones((2, 2)), np.array(["a", "b"]))


# ---- fit: the weights travel with their rows ----

def junk_rows(y, w):
    """y with the zero-weight rows' targets replaced by far-off values."""
    y = y.copy()
    y[w == 0] = 1e3
    return y


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython", "cuda"])
def test_fit_shuffles_and_batches_weights_with_their_rows(backend_name):
    if backend_name not in fb.available_backends():
        pytest.skip(f"{backend_name} is not usable here")
    sizes = [3, 5, 2]
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(23, 3)), rng.normal(size=(23, 2))
    w = weights(rng, 23)
    runs = []
    for targets_ in (y, junk_rows(y, w)):
        net = network(sizes, "mse", "mean", np.float64, backend_name)
        h = net.fit(X, targets_, epochs=3, batch_size=4, optimizer=fb.SGD(0.05), seed=3, progress=False,
                    sample_weight=w, validation_split=0.3)
        runs.append((net.get_flat_params(), h))
    # the far-off targets of zero-weight rows change nothing: training or validation loss
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(runs[0][1]["loss"], runs[1][1]["loss"], rtol=1e-12)
    np.testing.assert_allclose(runs[0][1]["val_loss"], runs[1][1]["val_loss"], rtol=1e-12)
    # and without the weights they would
    net = network(sizes, "mse", "mean", np.float64, backend_name)
    net.fit(X, junk_rows(y, w), epochs=3, batch_size=4, optimizer=fb.SGD(0.05), seed=3, progress=False)
    assert not np.allclose(net.get_flat_params(), runs[0][0])


def test_fit_epoch_loss_is_the_weighted_mean_of_its_batches():
    sizes = [3, 4, 1]
    rng = np.random.default_rng(4)
    X, y, w = rng.normal(size=(10, 3)), rng.normal(size=(10, 1)), rng.uniform(0.5, 2, size=10)
    net, twin = (network(sizes, "mse", "mean", np.float64, "numpy") for _ in range(2))
    h = net.fit(X, y, epochs=1, batch_size=4, optimizer=fb.SGD(0.1), shuffle=False, progress=False, sample_weight=w)
    opt, total = fb.SGD(0.1), 0.0
    for s in (0, 4, 8):
        total += twin.train_step(X[s:s + 4], y[s:s + 4], opt, sample_weight=w[s:s + 4]) * w[s:s + 4].sum()
    assert h["loss"][0] == pytest.approx(total / w.sum(), rel=1e-12)
    np.testing.assert_array_equal(net.get_flat_params(), twin.get_flat_params())


def test_fit_validation_data_takes_weights():
    sizes = [3, 4, 1]
    rng = np.random.default_rng(6)
    X, y, w = rng.normal(size=(12, 3)), rng.normal(size=(12, 1)), rng.uniform(0, 2, size=12)
    net = network(sizes, "mse", "mean", np.float64, "numpy")
    h = net.fit(X, y, epochs=1, progress=False, validation_data=(X, y, w))
    assert h["val_loss"][0] == pytest.approx(net.loss_value(X, y, w), rel=1e-12)
    with pytest.raises(ValueError, match="validation_data sample_weight"):
        net.fit(X, y, epochs=1, progress=False, validation_data=(X, y, -w))


def test_fit_refuses_weights_with_comm():
    MPI = pytest.importorskip("mpi4py.MPI", reason="mpi4py (the mpi extra) is not installed")
    net = network([3, 1], "mse", "mean", np.float64, "numpy")
    before = net.get_flat_params()
    with pytest.raises(ValueError, match="sample_weight"):
        net.fit(np.ones((4, 3)), np.ones((4, 1)), epochs=1, progress=False, sample_weight=np.ones(4),
                comm=MPI.COMM_SELF)
    np.testing.assert_array_equal(net.get_flat_params(), before)
