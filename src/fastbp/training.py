"""fit(): mini-batch training, readable top to bottom (scikit-learn's MLP loop is the model).

1. Every argument and the data are checked once, before anything changes: a rejected call
   leaves the network, the optimizer and any checkpoint exactly as they were.
2. The training step is chosen once (`make_step`): one call per mini-batch.
3. Each epoch: shuffle, step through the batches, record loss / metric / throughput (and
   per-layer gradient norms on request), write the checkpoint atomically, then apply the
   learning-rate schedule and the early-stopping rule (fastbp.schedules).

A non-finite loss, or an update that would make a parameter or an optimizer state value
non-finite (learning rate x gradient beyond the dtype's range), raises FloatingPointError
naming the epoch and batch; the backend's train_step refuses such a step before anything
changes, so the parameters and the optimizer state stay at their last finite values, and
the last checkpoint (written at the end of an earlier epoch) is intact. The parameters and
the state are also checked once per epoch, before the checkpoint is written (an optimizer
of one's own, or a callback, may have written non-finite values): non-finite ones stop
training with a FloatingPointError that says so, and no checkpoint is ever written from them.
"""
import copy
import numbers
import os
import sys
import time

import numpy as np

from . import checkpoint as checkpoints
from . import distributed, files, memory, validation
from .diagnostics import GradientFlowMonitor
from .metrics import metric_name, score
from .optim import Adam
from .schedules import Adaptive, EarlyStopping
from .validation import sample_weight as checked_sample_weight

EVAL_ROWS = 8192        # rows per forward pass when measuring the loss / metric of a whole set


def fit(net, X, y, epochs=10, batch_size=32, optimizer=None, shuffle=True, validation_data=None,
        seed=None, progress=True, checkpoint=None, resume=None, grad_norms=False, callback=None, comm=None,
        validation_split=None, lr_schedule=None, early_stopping=None, sample_weight=None):
    """Train `net` on (X, y) by mini-batch backpropagation (also `net.fit(X, y, ...)`).

    Every argument and the data are checked before anything changes.

    Args:
        net: the `MLP` to train, in place.
        X: inputs (n, n_features); any real numeric array.
        y: targets for the network's loss (integer labels for cross_entropy).
        epochs: train until this many epochs are done (counting those in `resume`).
        batch_size: rows per step; the last batch of an epoch holds the remainder.
        optimizer: a fastbp optimizer (default `Adam(lr=1e-3)`); updated in place.
        shuffle: reshuffle the rows each epoch, from a generator seeded by `seed`.
        validation_data: `(X_val, y_val)` or `(X_val, y_val, sample_weight_val)`: loss and
            metric recorded after each epoch (weighted by sample_weight_val when given).
        seed: seeds the shuffling (recorded in the checkpoint).
        progress: a progress bar per epoch on a terminal (stderr); quiet otherwise.
        checkpoint: a path: after each epoch the network, the optimizer state and the
            training progress are written there atomically (temporary file + rename).
        resume: the path of such a checkpoint: continue from where it stopped; with the
            same data, batch_size and shuffle this reaches the same weights as one
            uninterrupted run. `optimizer` may be omitted (the saved one is rebuilt).
        grad_norms: record per-layer gradient norms and warn (GradientFlowWarning, naming
            the layer) when one vanishes or explodes.
        callback: `callback(epoch, history)` after each epoch (and its checkpoint);
            returning True stops training.
        comm: an mpi4py communicator (e.g. `MPI.COMM_WORLD`): data-parallel training over
            its ranks (`fastbp.distributed`). Every rank passes the same X, y and
            arguments; each global batch is split across the ranks; rank 0's weights are
            broadcast first; rank 0 alone draws the progress bar and writes the
            checkpoint; an error on any rank stops every rank.
        validation_split: a fraction in (0, 1): that share of the rows, drawn by the
            generator seeded by `seed` before training, is held out as the validation
            data (instead of validation_data).
        lr_schedule: `fastbp.schedules.InverseScaling` or `Adaptive`: sets optimizer.lr
            after each epoch (history["lr"] records the rate each epoch ran with).
        early_stopping: a `fastbp.schedules.EarlyStopping`: after each epoch (and the
            callback) it counts epochs without improvement of its monitored history value;
            at a plateau training stops, or Adaptive lowers the rate. With restore_best the
            best epoch's parameters are put back at the end. The object keeps its state
            across calls, like an optimizer.
        sample_weight: one weight >= 0 per row of X (not all zero), or None: each batch's
            loss is the weighted mean of fastbp.losses; the weights are shuffled and batched
            with their rows, and validation_split holds out the weights of its rows with
            them. Not with comm.

    Returns:
        history: a dict of per-epoch lists: "epoch", "loss" (the mean of the epoch's batch
            losses, weighted by rows, or by the batches' total sample weight; a sum for
            reduction="sum"), "accuracy" or "r2" (on
            the training data after the epoch), "val_loss" and "val_accuracy"/"val_r2"
            with validation_data, "samples_per_s" (training steps only), "seconds", and
            "grad_norms" (a list per epoch, layer 1 first) when asked. Resumed runs
            include the epochs done before.

    Raises:
        FloatingPointError: a non-finite loss, or an update that would make the parameters
            or the optimizer state non-finite, naming the epoch and batch; the parameters
            stay at their last finite values.
    """
    # ---- 1. check everything once; nothing is changed before the end of this block ----
    dp = None if comm is None else distributed.DataParallel(comm, net)   # data-parallel over MPI ranks
    with distributed.agreement(dp, "checking fit's arguments"):      # with comm: fails on every rank or none
        epochs = _positive_int(epochs, "epochs")
        batch_size = _positive_int(batch_size, "batch_size")
        shuffle, progress, grad_norms = (_flag(v, n) for v, n in
                                         ((shuffle, "shuffle"), (progress, "progress"), (grad_norms, "grad_norms")))
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable; got {type(callback).__name__}")
        X, y = net._inputs(X, y)
        sw = checked_sample_weight(sample_weight, X.shape[0], net.dtype)
        if sw is not None and comm is not None:
            raise ValueError("sample_weight is not supported with comm (data-parallel training) yet")
        validation = _validation_data(net, validation_data)
        split = _validation_split(validation_split, validation, X.shape[0], resume)
        _check_schedules(net, lr_schedule, early_stopping, validation is not None or split is not None, resume)
        checkpoint = _checkpoint_path(checkpoint)
        saved, saved_optimizer = _resume_point(net, resume, optimizer, X.shape[0], batch_size, shuffle, epochs)
        if optimizer is None:
            optimizer = saved_optimizer if saved is not None else Adam()
        net.check_optimizer(optimizer)
        if saved is None and not net._ops.all_finite(net.flat_params):
            raise ValueError("the network's parameters contain NaN or inf (written through net.weights?)")
        if saved is None and not all(net._ops.all_finite(buffer) for buffer in optimizer.state.values()):
            raise ValueError("the optimizer's state contains NaN or inf (written through optimizer.state?)")
        memory.require(memory.training_bytes(net.arch, 0 if optimizer.state else len(optimizer.state_names),
                                             min(batch_size, X.shape[0]), min(X.shape[0], EVAL_ROWS)),
                       f"fit of {net._parameters_text()}, with {type(optimizer).__name__} state and batch {batch_size},")

    given_seed = int(seed) if isinstance(seed, numbers.Integral) else None     # recorded in the checkpoint
    if dp is not None:
        dp.check_same_network(net, optimizer, saved)
        dp.check_same_inputs(X, y, validation, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                             seed=seed, resume=resume is not None, optimizer=repr(optimizer))
        seed = dp.common_seed(seed)

    # ---- 2. set up: the state to start from, the step, the batches ----
    ops, state = net._ops, net._state
    rng = np.random.default_rng(seed)
    if split is not None:                   # hold out the validation rows (drawn before any shuffle)
        rows = rng.permutation(X.shape[0])
        held, kept = rows[:split], rows[split:]
        validation = (X[held], y[held], None if sw is None else sw[held])
        X, y, sw = X[kept], y[kept], None if sw is None else sw[kept]
    history = _new_history(net, validation is not None, grad_norms, lr_schedule is not None)
    first_epoch = 1
    if saved is not None:
        net.set_flat_params(saved.params)
        if optimizer is not saved_optimizer:
            _restore_optimizer(optimizer, saved_optimizer, net)
        rng.bit_generator.state = saved.training["rng"]
        history = _restored_history(saved.training["history"], history)
        first_epoch = saved.training["epoch"] + 1
    step = make_step(net, optimizer, keep_grads=grad_norms)
    if dp is not None:
        dp.broadcast_parameters(state, optimizer)            # every replica starts from rank 0's
        step = dp.make_step(net, optimizer)                  # shards the batch, one Allreduce
    dataset = ops.dataset(X, y, sw)      # batches in the backend's memory (CUDA: the data set on the device)
    n, n_batches = X.shape[0], -(-X.shape[0] // batch_size)
    starts = np.arange(0, n, batch_size)
    monitor = GradientFlowMonitor(net.arch) if grad_norms else None
    show_bar = progress_shown(progress) and distributed.is_root(comm)
    metric = metric_name(net.arch.loss)
    lr_init = optimizer.lr

    # ---- 3. the epochs ----
    for epoch in range(first_epoch, epochs + 1):
        order = rng.permutation(n) if shuffle else None
        bar = _progress_bar(epoch, epochs, n_batches) if show_bar else None
        if bar is not None and epoch == first_epoch and ops.first_step_note:
            bar.set_postfix_str(ops.first_step_note, refresh=True)
        # what each batch's mean loss counts for in the epoch's: its rows, or its total weight
        shares = (np.diff(np.append(starts, n)) if sw is None
                  else np.add.reduceat(sw if order is None else sw[order], starts, dtype=np.float64))
        total, started = 0.0, time.perf_counter()
        for batch, (Xb, yb, swb) in enumerate(dataset.batches(batch_size, order), 1):
            try:
                loss = step(Xb, yb, swb)
            except FloatingPointError as e:
                if bar is not None:
                    bar.close()
                raise _stopped(net, optimizer, epoch, batch, n_batches, checkpoint, e) from None
            total += loss * shares[batch - 1] if net.reduction == "mean" else loss
            if monitor is not None:
                monitor.record(ops.to_host(state.grads.flat))
            if bar is not None:
                if batch % 10 == 0 or batch == 1:
                    bar.set_postfix_str(f"loss {loss:.4g}", refresh=False)
                bar.update(1)
        seconds = time.perf_counter() - started
        if _non_finite(net, optimizer):                       # an update overflowed on a finite loss
            if bar is not None:
                bar.close()
            raise _stopped(net, optimizer, epoch, n_batches, n_batches, checkpoint, None)

        history["epoch"].append(epoch)
        history["loss"].append(total / shares.sum() if net.reduction == "mean" else total)
        history["samples_per_s"].append(n / seconds if seconds > 0 else float("inf"))
        history["seconds"].append(seconds)
        if lr_schedule is not None:
            history["lr"].append(optimizer.lr)
        history[metric].append(evaluate(net, X, y, sw)[1])
        if validation is not None:
            val_loss, val_metric = evaluate(net, *validation)
            history["val_loss"].append(val_loss)
            history["val_" + metric].append(val_metric)
        if monitor is not None:
            history["grad_norms"].append(monitor.end_epoch(epoch))
        if bar is not None:
            bar.set_postfix_str(epoch_summary(history), refresh=True)
            bar.close()
        with distributed.agreement(dp, "writing the checkpoint"):       # with comm: rank 0 writes
            if checkpoint is not None and distributed.is_root(comm):
                checkpoints.save(net, checkpoint, optimizer, training=dict(
                    epoch=epoch, epochs=epochs, batch_size=batch_size, shuffle=shuffle, seed=given_seed,
                    n_samples=n, rng=rng.bit_generator.state, history=history))
        if callback is not None:
            with distributed.agreement(dp, "the callback"):
                stop = callback(epoch, history) is True
            if stop if dp is None else dp.any_rank(stop):                 # with comm: any rank stops all
                break
        if lr_schedule is not None or early_stopping is not None:
            stop = _schedule_says_stop(net, optimizer, lr_schedule, early_stopping, history, lr_init, epoch * n)
            if stop if dp is None else dp.any_rank(stop):       # (the ranks' histories agree: a safeguard)
                break
    if early_stopping is not None:
        early_stopping.restore(net)
    return history


def _non_finite(net, optimizer):
    """-> "parameters" or "optimizer state" if either holds NaN or inf (one pass each), else None."""
    ops = net._ops
    if not ops.all_finite(net.flat_params):
        return "parameters"
    if not all(ops.all_finite(buffer) for buffer in optimizer.state.values()):
        return "optimizer state"
    return None


def _stopped(net, optimizer, epoch, batch, n_batches, checkpoint, error):
    """The FloatingPointError that stops fit, saying what is true of the parameters now."""
    kept = f"; {checkpoint} was not written from them" if checkpoint is not None else ""
    broken = _non_finite(net, optimizer)
    if error is not None and broken is None:
        return FloatingPointError(f"training stopped in epoch {epoch}, batch {batch} of {n_batches}: {error}; "
                                  f"the parameters are those after the last finite step{kept}")
    when = (f"found after batch {batch} of {n_batches} of epoch {epoch}" if error is None else
            f"found in epoch {epoch}, batch {batch} of {n_batches}, whose step failed ({error})")
    return FloatingPointError(
        f"non-finite {broken} {when}: written in this epoch by the optimizer's own update or outside the "
        f"training steps (fastbp's steps refuse an update that would make them non-finite); training "
        f"stopped, and they cannot be used{kept}")


def _schedule_says_stop(net, optimizer, lr_schedule, early_stopping, history, lr_init, samples_seen):
    """After an epoch: the early-stopping count, then the schedule's rate; -> stop training?"""
    plateau = early_stopping is not None and early_stopping.update(history[early_stopping.monitor][-1], net)
    if lr_schedule is not None:
        optimizer.lr = lr_schedule.after_epoch(optimizer.lr, lr_init, samples_seen)
    if not plateau:
        return False
    lower = lr_schedule.on_plateau(optimizer.lr) if lr_schedule is not None else None
    if lower is None:
        return True
    optimizer.lr, early_stopping.count = lower, 0
    return False


# ---- the training step: one call per mini-batch ----

def make_step(net, optimizer, keep_grads=False):
    """-> step(X_batch, y_batch, sw_batch or None) -> loss: forward, backward and update, in place.

    Backend arrays in, a float out; FloatingPointError (before any update) on a non-finite
    loss or gradient. With keep_grads the gradients stay in the network's gradient buffer
    for diagnostics (a fused backend step need not keep them). Data-parallel training
    swaps in a step that averages the gradients across processes.
    """
    ops, state = net._ops, net._state
    run = ops.composed_train_step if keep_grads else ops.train_step

    def step(X, y, sw=None):
        return run(state, X, y, optimizer, sw)
    return step


# ---- measuring ----

def evaluate(net, X, y, sw=None):
    """(loss, metric) of checked data (X, y) and sample weights (or None) in the network's
    reduction, in chunks of rows."""
    ops, state, arch = net._ops, net._state, net.arch
    n = X.shape[0]
    total, weight, outputs = 0.0, 0.0, []
    for start in range(0, n, EVAL_ROWS):
        chunk = slice(start, start + EVAL_ROWS)
        Xc, yc, swc = X[chunk], y[chunk], None if sw is None else sw[chunk]
        share = len(Xc) if swc is None else float(np.sum(swc, dtype=np.float64))
        out = ops.forward(state, ops.from_host(Xc))
        loss = ops.loss_and_output_grad(out, ops.from_host(yc), arch.loss, arch.reduction,
                                        None if swc is None else ops.from_host(swc))[0]
        total += loss * share if net.reduction == "mean" else loss
        weight += share
        outputs.append(np.array(ops.to_host(out), copy=True))     # a backend may reuse its output buffer
    outputs = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
    return (total / weight if net.reduction == "mean" else total), score(outputs, y, arch.loss, sw)


def epoch_summary(history):
    """One line for the last epoch: loss, metric, validation, throughput."""
    parts = [f"loss {history['loss'][-1]:.4f}"]
    for key in ("accuracy", "r2", "val_loss", "val_accuracy", "val_r2"):
        if history.get(key):
            parts.append(f"{key} {history[key][-1]:.4f}")
    parts.append(f"{history['samples_per_s'][-1]:,.0f} samples/s")
    return "  ".join(parts)


def progress_shown(progress):
    """Whether fit draws a progress bar: asked for, and stderr is a terminal."""
    try:
        return bool(progress) and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _progress_bar(epoch, epochs, total):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=True,
                file=sys.stderr, dynamic_ncols=True)


def _new_history(net, with_validation, grad_norms, with_lr=False):
    metric = metric_name(net.arch.loss)
    keys = ["epoch", "loss", metric, "samples_per_s", "seconds"]
    if with_lr:
        keys.append("lr")
    if with_validation:
        keys += ["val_loss", "val_" + metric]
    if grad_norms:
        keys.append("grad_norms")
    return {k: [] for k in keys}


def _restored_history(saved, fresh):
    """The saved history, with the keys this run records (missing ones padded with None)."""
    done = len(saved.get("epoch", []))
    return {k: copy.deepcopy(saved[k]) if k in saved else [None] * done for k in fresh}


# ---- argument checks ----

def _positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer; got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _validation_data(net, validation_data):
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise TypeError("validation_data must be a pair (X_val, y_val) or a triple (X_val, y_val, sample_weight_val)")
    X_val = validation.features(validation_data[0], net.dtype, net.arch.sizes[0], name="validation_data X")
    y_val = validation.targets(validation_data[1], net.arch.loss, net.dtype, X_val.shape[0],
                               net.arch.sizes[-1], name="validation_data y")
    sw_val = checked_sample_weight(validation_data[2] if len(validation_data) == 3 else None, X_val.shape[0],
                                   net.dtype, name="validation_data sample_weight")
    return X_val, y_val, sw_val


def _validation_split(fraction, validation, n, resume):
    """-> the number of rows held out, or None."""
    if fraction is None:
        return None
    if resume is not None:
        raise ValueError("resume does not record a validation_split's rows yet: resume with validation_data")
    if isinstance(fraction, (bool, np.bool_)) or not isinstance(fraction, numbers.Real):
        raise TypeError(f"validation_split must be a fraction in (0, 1); got {fraction!r}")
    if not 0 < fraction < 1:
        raise ValueError(f"validation_split must be a fraction in (0, 1); got {fraction!r}")
    if validation is not None:
        raise ValueError("give validation_data or validation_split, not both")
    held_out = int(round(fraction * n))
    if not 1 <= held_out < n:
        raise ValueError(f"validation_split={fraction} of {n} rows leaves {held_out} for validation "
                         f"and {n - held_out} for training: both need at least one")
    return held_out


def _check_schedules(net, lr_schedule, early_stopping, with_validation, resume):
    if lr_schedule is not None and not (callable(getattr(lr_schedule, "after_epoch", None))
                                        and callable(getattr(lr_schedule, "on_plateau", None))):
        raise TypeError(f"lr_schedule must be a fastbp.schedules schedule (InverseScaling, Adaptive); "
                        f"got {type(lr_schedule).__name__}")
    if early_stopping is not None:
        if not isinstance(early_stopping, EarlyStopping):
            raise TypeError(f"early_stopping must be a fastbp.schedules.EarlyStopping; "
                            f"got {type(early_stopping).__name__}")
        if early_stopping.monitor.startswith("val_") and not with_validation:
            raise ValueError(f"early_stopping monitors {early_stopping.monitor!r}: give validation_data "
                             "or validation_split")
        if early_stopping.monitor.removeprefix("val_") not in ("loss", metric_name(net.arch.loss)):
            raise ValueError(f"early_stopping monitors {early_stopping.monitor!r}, which this network does "
                             f"not record (its metric is {metric_name(net.arch.loss)!r})")
    elif isinstance(lr_schedule, Adaptive):
        raise ValueError("lr_schedule Adaptive lowers the rate at early_stopping's plateaus: give early_stopping too")
    if resume is not None and (lr_schedule is not None or early_stopping is not None):
        raise ValueError("resume does not carry a learning-rate schedule's or early stopping's "
                         "state yet: resume without lr_schedule and early_stopping")


def _checkpoint_path(path):
    if path is None:
        return None
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"checkpoint must be a file path; got {type(path).__name__}") from None
    files.check_target(path, "checkpoint", probe=True)      # writable, for a regular file, before training
    return path


def _resume_point(net, resume, optimizer, n_samples, batch_size, shuffle, epochs):
    """Read and check a checkpoint to resume from (nothing applied yet; checkpoints.read has
    checked every section) -> (Checkpoint, the optimizer it holds), or (None, None)."""
    if resume is None:
        return None, None
    try:
        resume = os.fspath(resume)
    except TypeError:
        raise TypeError(f"resume must be a file path; got {type(resume).__name__}") from None
    saved = checkpoints.read(resume)
    mine = checkpoints.architecture_of(net)
    if saved.architecture != mine:
        raise ValueError(f"resume: {resume} holds a network {saved.architecture}; this one is {mine}")
    training = saved.training
    if training is None or saved.optimizer is None:
        raise ValueError(f"resume: {resume} was not written by fit(checkpoint=...) "
                         "(it lacks the training progress or the optimizer state)")
    for key, value in (("n_samples", n_samples), ("batch_size", batch_size), ("shuffle", shuffle)):
        if training.get(key) != value:
            raise ValueError(f"resume: {resume} was trained with {key}={training.get(key)!r}; this call has "
                             f"{key}={value!r} (resuming needs the same data and batching)")
    if training["epoch"] > epochs:
        raise ValueError(f"resume: {resume} has done {training['epoch']} epochs; epochs={epochs} asks for "
                         f"fewer (epochs counts those in the checkpoint)")
    try:
        saved_optimizer = saved.build_optimizer(net)
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"resume: {resume}: unreadable optimizer state ({e})") from None
    if optimizer is not None:
        kind, hyper = type(saved_optimizer).__name__, saved_optimizer.hyperparameters()
        if type(optimizer) is not type(saved_optimizer) or optimizer.hyperparameters() != hyper:
            raise ValueError(f"resume: {resume} was trained with {kind}{hyper}; the optimizer given is "
                             f"{type(optimizer).__name__}{optimizer.hyperparameters()}")
        net.check_optimizer(optimizer)
    return saved, saved_optimizer


def _restore_optimizer(optimizer, saved_optimizer, net):
    """Copy a restored optimizer's state (step count, buffers) into `optimizer`."""
    ops = net._ops
    if saved_optimizer.state:
        optimizer.bind(ops, net.flat_params)
        for name in optimizer.state_names:
            ops.copy_into(optimizer.state[name], ops.to_host(saved_optimizer.state[name]))
    optimizer.step_count = saved_optimizer.step_count
