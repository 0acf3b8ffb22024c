"""Saving and loading networks: one .npz holding the flat parameter buffer, optionally the
optimizer's state buffers, and a JSON description (architecture, optimizer, training
progress for `fit(resume=...)`).

Round trips are bit-for-bit: the parameters and state buffers are stored in their own
dtype and copied back unchanged; hyper-parameters are JSON floats (exact in Python).
Writes go through fastbp.files' atomic writer, so a process killed mid-save leaves the
previous file intact; non-finite parameters or state are never written.

Reading trusts nothing in the file (fastbp.npzfile): the description is read first (its
size bounded), then every section is checked (architecture, optimizer and its
hyper-parameters, training progress, RNG state, history), then every array's declared
dtype and shape against the architecture and the member's real size, and the memory the
network will need against the memory available; only then are the arrays read. No
network is built before all of that passed. Any failure is a ValueError naming the file;
a missing file is FileNotFoundError.
"""
import json
import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from . import files, memory, validation
from .layout import architecture
from .npzfile import Archive

FORMAT = "fastbp-mlp"
VERSION = 1
MAX_META_BYTES = 64 << 20          # the JSON description (a long run's history included)
MAX_STEP_COUNT = 2 ** 53
_ARCHITECTURE_KEYS = ("layer_sizes", "activation", "output_activation", "loss", "reduction", "dtype")
_META_KEYS = {"format", "version", "optimizer", "training", "l2", *_ARCHITECTURE_KEYS}   # l2: optional (0.0)
_TRAINING_KEYS = {"epoch", "epochs", "batch_size", "shuffle", "n_samples", "rng", "history"}
_OPTIONAL_TRAINING_KEYS = {"seed"}      # fit's seed (an int or null); checkpoints written before it lack it


@dataclass
class Checkpoint:
    """What a checkpoint file holds, every section checked, not yet applied."""
    path: str
    architecture: dict            # MLP keyword arguments: layer_sizes, activation, ..., dtype
    params: np.ndarray            # the flat parameter buffer, in its dtype, finite
    optimizer: dict = None        # {"type", "hyperparameters", "step_count"} or None
    optimizer_arrays: dict = field(default_factory=dict)    # state name -> flat array
    training: dict = None         # fit's progress (epoch, RNG state, history, ...) or None
    l2: float = 0.0               # the network's L2 penalty (checkpoints written before it lack it: 0)

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
    """Write `net` (and `optimizer`'s state, and fit's `training` progress) to `path` atomically.
    Non-finite parameters or optimizer state are a ValueError, and nothing is written."""
    meta = dict(format=FORMAT, version=VERSION, **architecture_of(net), l2=net.l2)
    arrays = {"params": net.get_flat_params()}
    if optimizer is not None:
        meta["optimizer"] = optimizer.checkpoint_meta()
        arrays.update({f"optim_{k}": v for k, v in optimizer.checkpoint_arrays().items()})
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise ValueError(f"{os.fspath(path)}: not saved: {name} contains NaN or inf")
    if training is not None:
        meta["training"] = training
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    write_atomically(path, arrays)


def write_atomically(path, arrays):
    files.write_atomically(path, lambda f: np.savez(f, **arrays), what="checkpoint")


def read(path):
    """-> Checkpoint, every section checked (see the module docstring)."""
    path = os.fspath(path)
    try:
        with Archive(path) as archive:
            checkpoint = _read_checked(path, archive)
    except FileNotFoundError:
        raise
    except ValueError as e:
        raise ValueError(f"{path}: not a readable fastbp checkpoint: {e}") from None
    return checkpoint


# ---- reading: each section checked before the next is trusted ----

def _read_checked(path, archive):
    meta = _description(archive)
    try:
        arch = architecture(**{k: meta[k] for k in _ARCHITECTURE_KEYS})
    except (TypeError, ValueError) as e:
        raise ValueError(f"its architecture: {e}") from None
    try:
        l2 = validation.l2_penalty(meta.get("l2", 0.0))
    except (TypeError, ValueError) as e:
        raise ValueError(f"its L2 penalty: {e}") from None
    optimizer, state_names = _optimizer_section(meta.get("optimizer"))
    training = meta.get("training")
    if training is not None:
        _check_training(training, arch.n_layers)

    names = set(archive.names) - {"meta"}
    state_arrays = {n for n in names if n.startswith("optim_")}
    unknown = names - state_arrays - {"params"}
    if unknown or "params" not in names:
        raise ValueError(f"it holds arrays {sorted(names)}; a checkpoint holds params and optim_* only")
    if state_arrays and (optimizer is None or state_arrays != {f"optim_{n}" for n in state_names}):
        raise ValueError(f"its optimizer state arrays {sorted(state_arrays)} do not match its optimizer "
                         f"{None if optimizer is None else optimizer['type']}")
    if state_arrays and optimizer["step_count"] < 1:
        raise ValueError("it holds optimizer state but a step count of 0")

    members = {name: archive.member(name) for name in ["params", *sorted(state_arrays)]}
    for name, member in members.items():                     # declared shapes, before anything is read
        if member.shape != (arch.n_params,) or member.dtype.newbyteorder("=") != arch.dtype:
            raise ValueError(f"array {name!r} is declared {member.dtype} {member.shape}; the architecture "
                             f"{list(arch.sizes)} needs {arch.dtype} ({arch.n_params:,},)")
    try:
        memory.require(memory.loaded_network_bytes(arch, len(state_arrays)),
                       f"its network (MLP({list(arch.sizes)}) {arch.dtype.name}: {arch.n_params:,} parameters) would")
    except MemoryError as e:
        raise ValueError(str(e)) from None

    arrays = {name: member.read() for name, member in members.items()}
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise ValueError(f"array {name!r} contains NaN or inf")
    if "optim_v" in arrays and (arrays["optim_v"] < 0).any():
        raise ValueError("Adam's second-moment state optim_v has negative entries")
    return Checkpoint(path=path, architecture={k: meta[k] for k in _ARCHITECTURE_KEYS},
                      params=arrays.pop("params"), optimizer=optimizer,
                      optimizer_arrays={k[len("optim_"):]: v for k, v in arrays.items()}, training=training,
                      l2=l2)


def _description(archive):
    """The JSON description, its size bounded, as a dict of the known keys."""
    if "meta" not in archive.names:
        raise ValueError("no fastbp description inside")
    member = archive.member("meta")
    if member.dtype != np.uint8 or len(member.shape) != 1:
        raise ValueError(f"its description is {member.dtype} {member.shape}, not bytes")
    if member.nbytes > MAX_META_BYTES:
        raise ValueError(f"its description is {member.nbytes:,} bytes (at most {MAX_META_BYTES:,} are read)")
    try:
        meta = json.loads(member.read().tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:     # JSONDecodeError is a ValueError
        raise ValueError(f"its description is not JSON ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not a fastbp checkpoint")
    if meta.get("version") != VERSION:
        raise ValueError(f"checkpoint version {meta.get('version')!r} is not {VERSION}")
    missing, unknown = set(_ARCHITECTURE_KEYS) - set(meta), set(meta) - _META_KEYS
    if missing or unknown:
        raise ValueError(f"its description lacks {sorted(missing)} or has unknown keys {sorted(unknown)}")
    return meta


def _optimizer_section(section):
    """-> (the checked section or None, the optimizer's state names)."""
    if section is None:
        return None, ()
    from .optim import Adam, SGD
    kinds = {"SGD": SGD, "Adam": Adam}
    if not isinstance(section, dict) or set(section) != {"type", "hyperparameters", "step_count"}:
        raise ValueError("its optimizer section is not {type, hyperparameters, step_count}")
    kind, hyper, steps = section["type"], section["hyperparameters"], section["step_count"]
    if not isinstance(kind, str) or kind not in kinds:
        raise ValueError(f"unknown optimizer type {kind!r}")
    if not isinstance(hyper, dict) or not all(isinstance(k, str) for k in hyper):
        raise ValueError("its optimizer hyper-parameters are not a mapping")
    try:
        built = kinds[kind](**{k: tuple(v) if k == "betas" and isinstance(v, list) else v for k, v in hyper.items()})
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise ValueError(f"its {kind} hyper-parameters: {type(e).__name__}: {e}") from None
    if built.hyperparameters() != {k: tuple(v) if k == "betas" else v for k, v in hyper.items()}:
        raise ValueError(f"its {kind} hyper-parameters {hyper} are incomplete")
    if not _is_int(steps) or not 0 <= steps < MAX_STEP_COUNT:
        raise ValueError(f"its optimizer step count {steps!r} is not an integer in [0, 2**53)")
    return section, built.state_names


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_training(training, n_layers):
    """fit's progress section: counts, the RNG state (tried on a scratch generator), the history."""
    if not isinstance(training, dict) or not _TRAINING_KEYS <= set(training) <= _TRAINING_KEYS | _OPTIONAL_TRAINING_KEYS:
        raise ValueError(f"its training section is not {sorted(_TRAINING_KEYS)} (and optionally "
                         f"{sorted(_OPTIONAL_TRAINING_KEYS)})")
    seed = training.get("seed")
    if seed is not None and (not _is_int(seed) or seed < 0):
        raise ValueError(f"its training seed {seed!r} is not null or a non-negative integer")
    for key in ("epochs", "batch_size", "n_samples"):
        if not _is_int(training[key]) or training[key] < 1:
            raise ValueError(f"its training {key} {training[key]!r} is not a positive integer")
    epoch = training["epoch"]
    if not _is_int(epoch) or not 0 <= epoch <= training["epochs"]:
        raise ValueError(f"its training epoch {epoch!r} is not an integer in [0, epochs={training['epochs']}]")
    if not isinstance(training["shuffle"], bool):
        raise ValueError(f"its training shuffle {training['shuffle']!r} is not true or false")
    _check_rng_state(training["rng"])
    history = training["history"]
    if not isinstance(history, dict) or history.get("epoch") != list(range(1, epoch + 1)):
        raise ValueError(f"its history does not record epochs 1..{epoch}")
    for key, values in history.items():
        if not isinstance(key, str) or not isinstance(values, list) or len(values) != epoch:
            raise ValueError(f"its history entry {key!r} is not a list of {epoch} values")
        for value in values:
            row = value if isinstance(value, list) and key == "grad_norms" else [value]
            if key == "grad_norms" and isinstance(value, list) and len(value) != n_layers:
                raise ValueError(f"its history's grad_norms rows are not {n_layers} numbers")
            if not all(v is None or _is_number(v) for v in row):
                raise ValueError(f"its history entry {key!r} holds a value that is not a number")


def _check_rng_state(rng):
    """A PCG64 state as numpy's bit_generator.state writes it, every field in range (numpy's
    setter accepts floats, extra keys and has_uint32=5 silently), then tried on a scratch one."""
    inner = rng.get("state") if isinstance(rng, dict) else None
    well_formed = (isinstance(rng, dict) and set(rng) == {"bit_generator", "state", "has_uint32", "uinteger"}
                   and rng["bit_generator"] == "PCG64" and isinstance(inner, dict) and set(inner) == {"state", "inc"}
                   and all(_is_int(inner[k]) and 0 <= inner[k] < 2 ** 128 for k in ("state", "inc"))
                   and inner["inc"] % 2 == 1 and rng["has_uint32"] in (0, 1) and _is_int(rng["has_uint32"])
                   and _is_int(rng["uinteger"]) and 0 <= rng["uinteger"] < 2 ** 32)
    if not well_formed:
        raise ValueError("its RNG state is not a PCG64 state (bit_generator, state {state, inc}, has_uint32, "
                         "uinteger, each an integer in range)")
    try:
        np.random.PCG64().state = rng
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise ValueError(f"its RNG state is malformed ({type(e).__name__}: {e})") from None
