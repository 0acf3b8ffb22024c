"""Saving and loading networks: one .npz holding the flat parameter buffer, optionally the
optimizer's state buffers, and a JSON description (architecture, optimizer, training
progress for `fit(resume=...)`).

Round trips are bit-for-bit: the parameters and state buffers are stored in their own
dtype and copied back unchanged; hyper-parameters are JSON floats (exact in Python).
Writes are atomic (temporary file in the same folder, fsync, rename, fsync of the folder),
so a process killed mid-save leaves the previous file intact. A corrupt, truncated or
foreign file is a ValueError naming the file.
"""
import json
import os
import secrets
import socket
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .layout import architecture

FORMAT = "fastbp-mlp"
VERSION = 1


@dataclass
class Checkpoint:
    """What a checkpoint file holds, checked for consistency but not yet applied."""
    path: str
    architecture: dict            # MLP keyword arguments: layer_sizes, activation, ..., dtype
    params: np.ndarray            # the flat parameter buffer, in its dtype
    optimizer: dict = None        # {"type", "hyperparameters", "step_count"} or None
    optimizer_arrays: dict = field(default_factory=dict)    # state name -> flat array
    training: dict = None         # fit's progress (epoch, RNG state, history, ...) or None

    def build_optimizer(self, net):
        from .optim import optimizer_from_checkpoint
        if self.optimizer is None:
            return None
        return optimizer_from_checkpoint(self.optimizer, self.optimizer_arrays, net)


def architecture_of(net):
    return dict(layer_sizes=list(net.layer_sizes), activation=net.activation,
                output_activation=net.output_activation, loss=net.loss,
                reduction=net.reduction, dtype=net.dtype.name)


def save(net, path, optimizer=None, training=None):
    """Write `net` (and `optimizer`'s state, and fit's `training` progress) to `path` atomically."""
    meta = dict(format=FORMAT, version=VERSION, **architecture_of(net))
    arrays = {"params": net.get_flat_params()}
    if optimizer is not None:
        meta["optimizer"] = optimizer.checkpoint_meta()
        arrays.update({f"optim_{k}": v for k, v in optimizer.checkpoint_arrays().items()})
    if training is not None:
        meta["training"] = training
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    write_atomically(path, arrays)


def _create_temporary(folder):
    """-> (fd, path) of a new file in `folder`, mode 0666 less the umask as for any new file
    (the kernel applies the umask: no os.umask round trip, which is process-wide and would
    race with other threads creating files). The name carries host and pid, so that the
    leftovers of saves killed mid-write can be recognised and removed later."""
    _remove_leftovers(folder)
    while True:
        tmp = os.path.join(folder, f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


_TMP_PREFIX = f".fastbp-{socket.gethostname()}-"


def _remove_leftovers(folder):
    """Delete temporary files of this host's saves whose process is gone (killed mid-save)."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(_TMP_PREFIX) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        try:
            pid = int(name[len(_TMP_PREFIX):].split("-")[0])
            os.kill(pid, 0)                      # raises if no such process
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
        except (ValueError, PermissionError, OSError):
            pass                                 # not ours to judge: leave it


def write_atomically(path, arrays):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temporary(folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read(path):
    """-> Checkpoint. A corrupt, truncated or foreign file is a ValueError naming it;
    a missing file is FileNotFoundError."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files") or "meta" not in data.files:
                raise ValueError("no fastbp description inside")
            meta = json.loads(bytes(data["meta"]).decode())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError("not a fastbp checkpoint")
            if meta.get("version") != VERSION:
                raise ValueError(f"checkpoint version {meta.get('version')!r} is not {VERSION}")
            params = np.array(data["params"])
            optim_arrays = {k[len("optim_"):]: np.array(data[k]) for k in data.files if k.startswith("optim_")}
        checkpoint = Checkpoint(
            path=path,
            architecture={k: meta[k] for k in ("layer_sizes", "activation", "output_activation",
                                               "loss", "reduction", "dtype")},
            params=params, optimizer=meta.get("optimizer"), optimizer_arrays=optim_arrays,
            training=meta.get("training"))
        _check_consistent(checkpoint)
    except FileNotFoundError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OSError, EOFError, zipfile.BadZipFile,
            UnicodeDecodeError) as e:     # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: not a readable fastbp checkpoint ({type(e).__name__}: {e})") from None
    return checkpoint


def _check_consistent(ck):
    """The description and the arrays agree (a network can be built from them)."""
    probe = architecture(**ck.architecture)      # validates the description
    if ck.params.dtype != probe.dtype or ck.params.shape != (probe.n_params,):
        raise ValueError(f"parameters are {ck.params.dtype} {ck.params.shape}; the description needs "
                         f"{probe.dtype} ({probe.n_params},)")
    if not np.isfinite(ck.params).all():
        raise ValueError("parameters contain NaN or inf")
    if ck.optimizer is not None:
        if not isinstance(ck.optimizer, dict):
            raise ValueError("optimizer description is not a mapping")
        for name, arr in ck.optimizer_arrays.items():
            if arr.dtype != probe.dtype or arr.shape != (probe.n_params,):
                raise ValueError(f"optimizer state {name!r} is {arr.dtype} {arr.shape}; expected "
                                 f"{probe.dtype} ({probe.n_params},)")
    if ck.training is not None and not isinstance(ck.training, dict):
        raise ValueError("training description is not a mapping")
