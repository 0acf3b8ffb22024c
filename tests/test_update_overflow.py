"""An update that overflows although its loss is finite (learning rate x gradient beyond the
dtype's range), on every backend.

train_step: refused (FloatingPointError) with the parameters, the optimizer state and its
step count bit for bit as they were, and a fresh optimizer left unbound. fit: the refused
step stops training with a FloatingPointError naming the epoch and the batch, the
parameters are the last finite ones, and the checkpoint is never written from non-finite
values: an earlier one stays bit for bit and loads. save: non-finite parameters or
optimizer state are refused.
"""
import os

import numpy as np
import pytest

import fastbp as fb
import fuzz_report
from conftest import CUDA_SIMULATED
from hostile_files import crc32

FAMILY = "overflowing updates"
OPTIMIZERS = {
    # plain SGD and momentum with lr = max / 8: a gradient entry beyond 8 overflows the update
    "sgd": lambda dtype: fb.SGD(float(np.finfo(dtype).max) / 8),
    "sgd momentum": lambda dtype: fb.SGD(float(np.finfo(dtype).max) / 8, momentum=0.5),
    # Adam's step is about lr: an lr beyond float32 (fine as a Python float) overflows it
    "adam lr beyond float32": lambda dtype: fb.Adam(lr=1e39 if dtype == np.float32 else float(np.finfo(dtype).max)),
}


# the networks: "tiny" takes the compiled backends' tiny-network paths (Numba's view-free
# pass); "wide" their BLAS paths (plain SGD: the update inside the weight-gradient GEMM)
SHAPES = {"tiny": ([4, 8, 2], 16), "wide": ([64, 48, 16], 64)}


def problem(backend, dtype, shape="tiny"):
    """A network whose loss is finite and whose output-bias gradient is about -50."""
    sizes, rows = SHAPES[shape]
    rng = np.random.default_rng(0)
    net = fb.MLP(sizes, activation="tanh", loss="mse", dtype=dtype, backend=backend, seed=0)
    return net, rng.normal(size=(rows, sizes[0])).astype(dtype), np.full((rows, sizes[-1]), 25.0 * sizes[-1], dtype)


def state_bytes(net, opt):
    return (net.get_flat_params().tobytes(), opt.step_count,
            {k: v.tobytes() for k, v in opt.checkpoint_arrays().items()})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("batch_size", [16, 8], ids=["one batch per epoch", "two batches"])
def test_fit_stops_naming_epoch_and_batch_and_keeps_the_last_checkpoint(backend, dtype, optimizer, batch_size,
                                                                         tmp_path):
    if optimizer == "adam lr beyond float32" and dtype == np.float64:
        pytest.skip("no Python float lies beyond float64's range")
    net, X, y = problem(backend, dtype)
    path = str(tmp_path / "ckpt.npz")
    net.fit(X, y, epochs=1, batch_size=batch_size, optimizer=fb.SGD(1e-3), checkpoint=path, progress=False)
    good_crc, before = crc32(path), net.get_flat_params().tobytes()
    with fuzz_report.hostile_case(FAMILY):
        with pytest.raises(FloatingPointError) as info:
            net.fit(X, y, epochs=3, batch_size=batch_size, optimizer=OPTIMIZERS[optimizer](dtype), checkpoint=path,
                    shuffle=False, progress=False)
        message = str(info.value)
        n_batches = 16 // batch_size
        assert f"epoch 1, batch 1 of {n_batches}" in message, message
        assert "would make the parameters or the optimizer state non-finite" in message, message
        assert "the parameters are those after the last finite step" in message, message
        assert net.get_flat_params().tobytes() == before, "the refused step changed the parameters"
        assert crc32(path) == good_crc, "the good checkpoint was replaced"
        assert np.isfinite(fb.MLP.load(path).get_flat_params()).all()
        fresh = str(tmp_path / "never.npz")
        net2, _, _ = problem(backend, dtype)
        with pytest.raises(FloatingPointError):
            net2.fit(X, y, epochs=2, batch_size=batch_size, optimizer=OPTIMIZERS[optimizer](dtype), checkpoint=fresh,
                     progress=False)
        assert not os.path.exists(fresh), "a checkpoint was written from non-finite parameters"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_optimizer_state_is_never_trained_nor_saved(backend, tmp_path):
    """Adam's second moment set to inf by hand: a step is refused (its update would keep a
    state value non-finite), fit refuses to start, naming the state, and save refuses it;
    nothing changes."""
    net, X, y = problem(backend, np.float64)
    opt = fb.Adam(1e-3)
    path = str(tmp_path / "adam.npz")
    net.fit(X, y, epochs=1, batch_size=8, optimizer=opt, checkpoint=path, progress=False)
    good_crc = crc32(path)
    v = opt.checkpoint_arrays()["v"]
    v[0] = np.inf
    net._ops.copy_into(opt.state["v"], v)
    before = net.get_flat_params().tobytes(), opt.step_count
    with fuzz_report.hostile_case(FAMILY):
        with pytest.raises(FloatingPointError, match="would make the parameters or the optimizer state non-finite"):
            net.train_step(X, y, opt)
        with pytest.raises(ValueError, match="the optimizer's state contains NaN or inf"):
            net.fit(X, y, epochs=2, batch_size=8, optimizer=opt, checkpoint=path, progress=False)
        assert crc32(path) == good_crc
        with pytest.raises(ValueError, match="optim_v contains NaN or inf"):
            net.save(path, opt)
        assert crc32(path) == good_crc and (net.get_flat_params().tobytes(), opt.step_count) == before


def test_parameters_made_non_finite_by_hand_are_never_saved_nor_trained(cpu_backend, tmp_path):
    net, X, y = problem(cpu_backend, np.float32)
    path = str(tmp_path / "net.npz")
    net.save(path)
    good_crc = crc32(path)
    net.weights[0][1, 2] = np.nan                # net.weights are views on CPU backends
    with fuzz_report.hostile_case(FAMILY):
        with pytest.raises(ValueError, match="params contains NaN or inf"):
            net.save(path)
        with pytest.raises(ValueError, match="parameters contain NaN or inf"):
            net.fit(X, y, epochs=1, checkpoint=path, progress=False)
        assert crc32(path) == good_crc


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_train_step_refuses_a_non_finite_update_with_the_parameters_as_they_were(backend, optimizer, shape):
    if backend == "cuda" and CUDA_SIMULATED and shape == "wide":
        pytest.skip("the CUDA simulator is slow; the tiny network takes the same kernels")
    net, X, y = problem(backend, np.float32, shape)
    opt = OPTIMIZERS[optimizer](np.float32)
    before = net.get_flat_params().tobytes()
    try:
        net.train_step(X, y, opt)
        refused = False
    except FloatingPointError:
        refused = True
    assert refused and net.get_flat_params().tobytes() == before, \
        f"{backend}: a finite loss with an overflowing update left non-finite parameters"
    assert opt.step_count == 0 and not opt.checkpoint_arrays(), f"{backend}: the refused first step bound the optimizer"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("optimizer", ["sgd", "sgd momentum", "sgd nesterov", "adam"])
def test_a_refused_step_after_good_ones_leaves_parameters_state_and_count_as_they_were(backend, optimizer, shape):
    """The optimizer's state after two finite steps, then a learning rate that overflows the
    update: refused, everything bit for bit as after the second step; training goes on."""
    if backend == "cuda" and CUDA_SIMULATED and shape == "wide":
        pytest.skip("the CUDA simulator is slow; the tiny network takes the same kernels")
    net, X, y = problem(backend, np.float32, shape)
    opt = {"sgd": fb.SGD(1e-3), "sgd momentum": fb.SGD(1e-3, momentum=0.9),
           "sgd nesterov": fb.SGD(1e-3, momentum=0.9, nesterov=True), "adam": fb.Adam(1e-3)}[optimizer]
    for _ in range(2):
        net.train_step(X, y, opt)
    before = state_bytes(net, opt)
    good_lr, opt.lr = opt.lr, (1e39 if optimizer == "adam" else float(np.finfo(np.float32).max) / 8)
    with pytest.raises(FloatingPointError, match="would make the parameters or the optimizer state non-finite"):
        net.train_step(X, y, opt)
    assert state_bytes(net, opt) == before
    opt.lr = good_lr
    net.train_step(X, y, opt)
    assert opt.step_count == 3 and np.isfinite(net.get_flat_params()).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_adam_refuses_a_second_moment_that_overflows(backend):
    """A finite gradient whose square overflows the second moment (float64: 1e130 squared):
    the step is refused, nothing changed, on every backend as in the reference."""
    X = np.array([[1.7e130], [-6.7e130], [4.6e130]])
    y = np.zeros((3, 2))
    net = fb.MLP([1, 2], activation="identity", output_activation="identity", dtype=np.float64, backend=backend,
                 seed=0)
    opt = fb.Adam()
    net.train_step(X * 1e-130, y, opt)
    before = state_bytes(net, opt)
    with pytest.raises(FloatingPointError, match="would make the parameters or the optimizer state non-finite"):
        net.train_step(X, y, opt)
    assert state_bytes(net, opt) == before


def test_the_public_update_kernels_refuse_too(backend):
    """Ops.sgd_update / adam_update (the composed steps' update) write everything or nothing
    and leave the gradient as it was: -> False on a refusal."""
    ops = fb._kernels.get_ops(backend)
    big = float(np.finfo(np.float32).max)
    p, g = np.array([1.0, -2.0, big], np.float32), np.array([0.5, 3.0, -1.0], np.float32)
    for args, expect in ((dict(lr=0.1), True), (dict(lr=big / 2), False)):
        for kind in ("sgd", "momentum", "adam"):
            pd, gd = ops.from_host(p.copy()), ops.from_host(g.copy())
            state = [ops.from_host(np.full(3, 0.25, np.float32)) for _ in range(1 if kind != "adam" else 2)]
            if kind == "adam":
                done = ops.adam_update(pd, gd, *state, 1, args["lr"] * 1e30 if not expect else args["lr"],
                                       0.9, 0.999, 1e-8, 0.0)
            else:
                done = ops.sgd_update(pd, gd, *state, args["lr"], 0.9 if kind == "momentum" else 0.0, 0.0, False)
            assert bool(done) is expect, (backend, kind, args)
            assert ops.to_host(gd).tobytes() == g.tobytes(), (backend, kind, "the gradient was written")
            if not expect:
                assert ops.to_host(pd).tobytes() == p.tobytes(), (backend, kind)
                assert all((ops.to_host(s) == 0.25).all() for s in state), (backend, kind)
