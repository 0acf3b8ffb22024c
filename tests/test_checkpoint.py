"""Checkpoints: bit-for-bit round trips (with optimizer state), atomic writes that survive
a kill, and a ValueError naming the file for corrupt, truncated or foreign files."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import fastbp as fb
from fastbp.network import load_checkpoint

from conftest import CPU_BACKENDS


def trained(backend, dtype, optimizer):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), rng.normal(size=(40, 2))
    net = fb.MLP([4, 7, 5, 2], activation="tanh", output_activation="sigmoid", loss="mse", reduction="sum",
                 dtype=dtype, backend=backend, seed=0)
    for _ in range(3):
        net.train_step(X, y, optimizer)
    return net, X, y


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("make_optimizer", [lambda: fb.Adam(lr=1e-2, betas=(0.8, 0.95), eps=1e-7, weight_decay=1e-3),
                                            lambda: fb.SGD(lr=0.05, momentum=0.9, nesterov=True)],
                         ids=["adam", "sgd"])
def test_round_trip_is_bit_for_bit_and_training_continues_identically(tmp_path, backend, dtype, make_optimizer):
    opt = make_optimizer()
    net, X, y = trained(backend, dtype, opt)
    path = tmp_path / "net.npz"
    net.save(path, optimizer=opt)
    loaded, loaded_opt = load_checkpoint(path, backend=backend)
    assert repr(loaded) == repr(net)
    assert loaded.dtype == net.dtype and loaded.layer_sizes == net.layer_sizes
    np.testing.assert_array_equal(loaded.get_flat_params(), net.get_flat_params())
    assert type(loaded_opt) is type(opt) and loaded_opt.hyperparameters() == opt.hyperparameters()
    assert loaded_opt.step_count == opt.step_count == 3
    for name in opt.state_names:
        np.testing.assert_array_equal(loaded_opt.state[name], opt.state[name])
    for _ in range(2):
        assert loaded.train_step(X, y, loaded_opt) == net.train_step(X, y, opt)
    np.testing.assert_array_equal(loaded.get_flat_params(), net.get_flat_params())
    plain = fb.MLP.load(path, backend=backend)         # the network alone
    assert plain.n_params == net.n_params


def test_save_without_optimizer_and_before_its_first_step(tmp_path):
    net = fb.MLP([3, 2], backend="numpy", seed=0)
    net.save(tmp_path / "a.npz")
    again, opt = load_checkpoint(tmp_path / "a.npz", backend="numpy")
    assert opt is None
    np.testing.assert_array_equal(again.get_flat_params(), net.get_flat_params())
    net.save(tmp_path / "b.npz", optimizer=fb.Adam())
    _, opt = load_checkpoint(tmp_path / "b.npz", backend="numpy")
    assert isinstance(opt, fb.Adam) and opt.step_count == 0 and not opt.state


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    net = fb.MLP([3, 4, 2], backend="numpy", seed=0)
    path = tmp_path / "c.npz"
    net.save(path)
    before = path.read_bytes()

    def broken(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        fb.MLP([3, 4, 2], backend="numpy", seed=1).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]


SAVING_LOOP = textwrap.dedent("""
    import sys
    import numpy as np
    import fastbp as fb
    net = fb.MLP([200, 300, 10], backend="numpy", seed=0)
    print("ready", flush=True)
    k = 0
    while True:
        k += 1
        flat = net.get_flat_params()
        flat[0] = k
        net.set_flat_params(flat)
        net.save(sys.argv[1])
""")


def test_kill_during_saves_never_leaves_a_broken_checkpoint(tmp_path):
    path = tmp_path / "busy.npz"
    for delay in (0.3, 0.45, 0.6):
        child = subprocess.Popen([sys.executable, "-c", SAVING_LOOP, str(path)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if path.exists():
            net = fb.MLP.load(path, backend="numpy")          # complete, whichever save it was
            assert net.get_flat_params()[0] >= 1
    assert path.exists()


def write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def meta_bytes(**meta):
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


GOOD_META = dict(format="fastbp-mlp", version=1, layer_sizes=[3, 2], activation="relu",
                 output_activation="identity", loss="mse", reduction="mean", dtype="float32")


@pytest.mark.parametrize("kind", ["empty", "random bytes", "truncated", "flipped byte", "json file",
                                  "foreign npz", "other format", "future version", "wrong param count",
                                  "wrong dtype", "nan params", "bad activation", "object array",
                                  "optimizer state shape", "unknown optimizer", "folder"])
def test_corrupt_or_foreign_file_is_a_value_error_naming_it(tmp_path, kind):
    path = tmp_path / f"{kind.replace(' ', '_')}.npz"
    good = tmp_path / "good.npz"
    net = fb.MLP([3, 2], backend="numpy", seed=0)
    net.save(good, optimizer=fb.Adam())
    params = net.get_flat_params()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(500))
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:-40])
    elif kind == "flipped byte":
        data = bytearray(good.read_bytes())
        with zipfile.ZipFile(good) as z:
            info = z.getinfo("params.npy")
        at = info.header_offset + 30 + len(info.filename) + info.compress_size - 3   # inside the data
        data[at] ^= 0xFF
        path.write_bytes(bytes(data))
    elif kind == "json file":
        path.write_text(json.dumps(GOOD_META))
    elif kind == "foreign npz":
        write_npz(path, X=np.ones(3), y=np.zeros(3))
    elif kind == "other format":
        write_npz(path, params=params, meta=meta_bytes(**(GOOD_META | dict(format="keras"))))
    elif kind == "future version":
        write_npz(path, params=params, meta=meta_bytes(**(GOOD_META | dict(version=99))))
    elif kind == "wrong param count":
        write_npz(path, params=params[:-1], meta=meta_bytes(**GOOD_META))
    elif kind == "wrong dtype":
        write_npz(path, params=params.astype(np.float64), meta=meta_bytes(**GOOD_META))
    elif kind == "nan params":
        write_npz(path, params=np.full_like(params, np.nan), meta=meta_bytes(**GOOD_META))
    elif kind == "bad activation":
        write_npz(path, params=params, meta=meta_bytes(**(GOOD_META | dict(activation="swish2"))))
    elif kind == "object array":
        np.savez(path, params=np.array([object()], dtype=object), meta=meta_bytes(**GOOD_META))
    elif kind == "optimizer state shape":
        write_npz(path, params=params, optim_m=np.zeros(2, np.float32), optim_v=np.zeros(2, np.float32),
                  meta=meta_bytes(**(GOOD_META | dict(optimizer=dict(type="Adam", hyperparameters={}, step_count=1)))))
    elif kind == "unknown optimizer":
        write_npz(path, params=params,
                  meta=meta_bytes(**(GOOD_META | dict(optimizer=dict(type="Lion", hyperparameters={})))))
    elif kind == "folder":
        path.mkdir()
    with pytest.raises(ValueError, match=path.name):
        fb.MLP.load(path, backend="numpy")


def test_missing_file_and_bad_backend_are_the_callers_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        fb.MLP.load(tmp_path / "nothing.npz")
    fb.MLP([3, 2], backend="numpy").save(tmp_path / "n.npz")
    with pytest.raises(ValueError, match="backend"):
        fb.MLP.load(tmp_path / "n.npz", backend="no-such-backend")


def test_save_removes_leftovers_of_killed_saves_only(tmp_path):
    """A save killed mid-write leaves its temporary file; the next save in that folder
    removes the ones whose process is gone and leaves those of live processes alone."""
    import subprocess
    import sys

    from fastbp import files as ckpt      # the one atomic writer, which checkpoints use

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = tmp_path / f"{ckpt._TMP_PREFIX}{dead.pid}-deadbeef.tmp"
    alive = tmp_path / f"{ckpt._TMP_PREFIX}{os.getpid()}-cafef00d.tmp"
    foreign = tmp_path / ".fastbp-otherhost-1-00.tmp"
    for f in (gone, alive, foreign):
        f.write_bytes(b"partial")
    fb.MLP([2, 3, 1], seed=0, backend="numpy").save(tmp_path / "net.npz")
    assert not gone.exists()
    assert alive.exists() and foreign.exists()
    assert fb.MLP.load(tmp_path / "net.npz").layer_sizes == (2, 3, 1)
