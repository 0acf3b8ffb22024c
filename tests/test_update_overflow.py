"""An update that overflows although its loss is finite (learning rate x gradient beyond the
dtype's range), on every backend.

fit: a FloatingPointError naming the epoch and the batch, a message that says the
parameters are not finite (not "those after the last finite step"), and no checkpoint
written from them: an earlier checkpoint stays bit for bit and loads. save: non-finite
parameters or optimizer state are refused.

The single step (train_step) refusing such an update with the parameters as they were is
the kernels' part; its test is at the end, an expected failure until the kernels do it.
"""
import os

import numpy as np
import pytest

import fastbp as fb
import fuzz_report
from hostile_files import crc32

FAMILY = "overflowing updates"
OPTIMIZERS = {
    # plain SGD and momentum with lr = max / 8: a gradient entry beyond 8 overflows the update
    "sgd": lambda dtype: fb.SGD(float(np.finfo(dtype).max) / 8),
    "sgd momentum": lambda dtype: fb.SGD(float(np.finfo(dtype).max) / 8, momentum=0.5),
    # Adam's step is about lr: an lr beyond float32 (fine as a Python float) overflows it
    "adam lr beyond float32": lambda dtype: fb.Adam(lr=1e39 if dtype == np.float32 else float(np.finfo(dtype).max)),
}


def problem(backend, dtype, rows=16):
    """A network whose loss is finite (about 2,500) and whose output-bias gradient is about -50."""
    rng = np.random.default_rng(0)
    net = fb.MLP([4, 8, 2], activation="tanh", loss="mse", dtype=dtype, backend=backend, seed=0)
    return net, rng.normal(size=(rows, 4)).astype(dtype), np.full((rows, 2), 50.0, dtype=dtype)


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
    good_crc = crc32(path)
    with fuzz_report.hostile_case(FAMILY):
        with pytest.raises(FloatingPointError) as info:
            net.fit(X, y, epochs=3, batch_size=batch_size, optimizer=OPTIMIZERS[optimizer](dtype), checkpoint=path,
                    shuffle=False, progress=False)
        message = str(info.value)
        n_batches = 16 // batch_size
        assert "epoch 1" in message and f"of {n_batches}" in message, message
        assert "non-finite parameters" in message and "after the last finite step" not in message, message
        assert f"{path} was not written" in message, message
        assert crc32(path) == good_crc, "the good checkpoint was replaced"
        assert np.isfinite(fb.MLP.load(path).get_flat_params()).all()
        fresh = str(tmp_path / "never.npz")
        net2, _, _ = problem(backend, dtype)
        with pytest.raises(FloatingPointError):
            net2.fit(X, y, epochs=2, batch_size=batch_size, optimizer=OPTIMIZERS[optimizer](dtype), checkpoint=fresh,
                     progress=False)
        assert not os.path.exists(fresh), "a checkpoint was written from non-finite parameters"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_optimizer_state_stops_fit_and_is_never_saved(cpu_backend, tmp_path):
    """Adam's second moment at inf leaves the parameters finite (its step there is 0) but the
    state unusable: fit stops after the epoch, naming the state; save refuses it."""
    net, X, y = problem(cpu_backend, np.float64)
    opt = fb.Adam(1e-3)
    path = str(tmp_path / "adam.npz")
    net.fit(X, y, epochs=1, batch_size=8, optimizer=opt, checkpoint=path, progress=False)
    good_crc = crc32(path)
    opt.state["v"][0] = np.inf                  # a CPU backend's state buffer is a NumPy array
    with fuzz_report.hostile_case(FAMILY):
        with pytest.raises(FloatingPointError, match="non-finite optimizer state found after batch 2 of 2 of epoch 1"):
            net.fit(X, y, epochs=2, batch_size=8, optimizer=opt, checkpoint=path, progress=False)
        assert crc32(path) == good_crc
        with pytest.raises(ValueError, match="optim_v contains NaN or inf"):
            net.save(path, opt)
        assert crc32(path) == good_crc


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
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="kernel-level refusal of a non-finite update: to be done in the kernels after the redesign")
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_train_step_refuses_a_non_finite_update_with_the_parameters_as_they_were(backend, optimizer):
    net, X, y = problem(backend, np.float32)
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
