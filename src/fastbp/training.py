"""fit(): mini-batch training, readable top to bottom.

The data are checked and converted once; each step then goes straight to the backend.
"""
import numbers
import time

import numpy as np

from .optim import Adam


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def fit(net, X, y, epochs=10, batch_size=32, optimizer=None, shuffle=True,
        validation_data=None, seed=None, progress=False):
    """Train `net` on (X, y); -> history dict of per-epoch lists.

    A non-finite loss raises FloatingPointError naming the epoch and batch; the
    parameters stay at their last finite values.
    """
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    optimizer = Adam() if optimizer is None else optimizer
    net.check_optimizer(optimizer)
    X, y = net._inputs(X, y)
    if validation_data is not None:
        X_val, y_val = net._inputs(*validation_data)
    ops, state = net._ops, net._state
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    history = {"loss": [], "val_loss": [], "samples_per_s": []}

    for epoch in range(1, epochs + 1):
        order = rng.permutation(n) if shuffle else None
        started, total = time.perf_counter(), 0.0
        for batch, start in enumerate(range(0, n, batch_size), 1):
            rows = order[start:start + batch_size] if shuffle else slice(start, start + batch_size)
            Xb, yb = X[rows], y[rows]
            try:
                loss = ops.train_step(state, ops.from_host(Xb), ops.from_host(yb), optimizer)
            except FloatingPointError as e:
                raise FloatingPointError(f"non-finite loss in epoch {epoch}, batch {batch}: training stopped; "
                                         f"the parameters are those after the last finite step ({e})") from None
            total += loss * len(Xb)
        elapsed = time.perf_counter() - started
        history["loss"].append(total / n)
        history["samples_per_s"].append(n / elapsed if elapsed > 0 else float("inf"))
        if validation_data is not None:
            history["val_loss"].append(ops.loss(state, ops.from_host(X_val), ops.from_host(y_val)))
        if progress:
            val = f"  val_loss {history['val_loss'][-1]:.6g}" if validation_data is not None else ""
            print(f"epoch {epoch}/{epochs}  loss {history['loss'][-1]:.6g}{val}", flush=True)
    return history
