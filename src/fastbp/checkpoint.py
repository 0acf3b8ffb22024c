"""Saving and loading networks: one .npz holding the flat parameter buffer and a JSON
description. Writes are atomic (temporary file, fsync, rename), so a process killed
mid-save leaves the previous file intact.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastbp-mlp"
VERSION = 1


def save(net, path, optimizer=None):
    meta = dict(format=FORMAT, version=VERSION, layer_sizes=list(net.layer_sizes),
                activation=net.activation, output_activation=net.output_activation,
                loss=net.loss, reduction=net.reduction, dtype=net.dtype.name)
    arrays = {"params": net.get_flat_params()}
    if optimizer is not None:
        meta["optimizer"] = optimizer.checkpoint_meta()
        arrays.update({f"optim_{k}": v for k, v in optimizer.checkpoint_arrays().items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    write_atomically(path, arrays)


def write_atomically(path, arrays):
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastbp-", suffix=".tmp")
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


def load(path, backend="auto"):
    """-> (net, optimizer or None). A corrupt, truncated or foreign file is a ValueError naming it."""
    from .network import MLP
    from .optim import optimizer_from_checkpoint
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError("not a fastbp checkpoint")
            if meta.get("version") != VERSION:
                raise ValueError(f"checkpoint version {meta.get('version')} is not {VERSION}")
            params = data["params"]
            optim_arrays = {k[len("optim_"):]: data[k] for k in data.files if k.startswith("optim_")}
        net = MLP(meta["layer_sizes"], activation=meta["activation"],
                  output_activation=meta["output_activation"], loss=meta["loss"],
                  reduction=meta["reduction"], dtype=meta["dtype"], backend=backend)
        if params.dtype != net.dtype:
            raise ValueError(f"parameters are {params.dtype}, description says {net.dtype}")
        net.set_flat_params(params)
        optimizer = None
        if "optimizer" in meta:
            optimizer = optimizer_from_checkpoint(meta["optimizer"], optim_arrays, net)
    except FileNotFoundError:
        raise
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile,
            json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable fastbp checkpoint ({type(e).__name__}: {e})") from None
    return net, optimizer
