"""What fit does after each epoch besides recording it: change the learning rate and decide
whether to stop. The rules are scikit-learn's MLP rules, so that fastbp.sklearn and fit
share one definition of each.

    fit(..., lr_schedule=InverseScaling(0.5))            lr_init / (samples seen + 1) ** 0.5
    fit(..., early_stopping=EarlyStopping(10, 1e-4, monitor="val_accuracy"),
        validation_split=0.1)                            stop once the validation accuracy
                                                         stalls; keep the best epoch's weights
    fit(..., early_stopping=EarlyStopping(2), lr_schedule=Adaptive())
                                                         divide lr by 5 at each plateau
                                                         instead of stopping (until 1e-6)

A schedule is a pair of pure functions of the learning rate (it keeps no state), so a
resumed or repeated run recomputes the same rates. EarlyStopping keeps its count and its
best value and parameters: pass the same object to several calls to continue a run, a new
one to start afresh (as with an optimizer).
"""
import math
import numbers

import numpy as np

__all__ = ["InverseScaling", "Adaptive", "EarlyStopping"]


def _real(value, name, low, low_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low or (low_open and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if low_open else '>='} {low}; got {value}")
    return value


class InverseScaling:
    """After each epoch lr = lr_init / (samples_seen + 1) ** power_t, samples_seen counting
    every training row of every epoch so far (scikit-learn's learning_rate='invscaling').
    A plateau ends training."""

    def __init__(self, power_t=0.5):
        self.power_t = _real(power_t, "power_t", 0.0)

    def after_epoch(self, lr, lr_init, samples_seen):
        return lr_init / (samples_seen + 1) ** self.power_t

    def on_plateau(self, lr):
        return None

    def __repr__(self):
        return f"InverseScaling(power_t={self.power_t!r})"


class Adaptive:
    """The learning rate stays while training improves; at each plateau (see EarlyStopping)
    it is divided by `factor`, and a plateau reached at or below `min_lr` ends training
    (scikit-learn's learning_rate='adaptive': factor 5, min_lr 1e-6)."""

    def __init__(self, factor=5.0, min_lr=1e-6):
        self.factor = _real(factor, "factor", 1.0, low_open=True)
        self.min_lr = _real(min_lr, "min_lr", 0.0)

    def after_epoch(self, lr, lr_init, samples_seen):
        return lr

    def on_plateau(self, lr):
        """-> the lower rate to continue with, or None: stop."""
        return None if lr <= self.min_lr else lr / self.factor

    def __repr__(self):
        return f"Adaptive(factor={self.factor!r}, min_lr={self.min_lr!r})"


HIGHER_IS_BETTER = ("accuracy", "r2", "val_accuracy", "val_r2")


class EarlyStopping:
    """scikit-learn's no-improvement rule on one value recorded each epoch.

    An epoch fails to improve when its value is not better than the best so far by more
    than `tol` (a loss: value > best - tol; a score: value < best + tol); the best so far is
    then updated to the better of the two all the same. A plateau is more than
    `n_iter_no_change` consecutive such epochs (np.inf: never); at a plateau training stops,
    unless the learning-rate schedule lowers the rate instead (Adaptive), which restarts
    the count.

    monitor       a key of fit's history: "loss" or "val_loss" (lower is better),
                  "accuracy", "r2", "val_accuracy", "val_r2" (higher is better)
    restore_best  at the end of training put back the parameters of the best epoch
                  (default: when monitoring validation data, as scikit-learn does)

    State: `best` (the best value so far), `count` (epochs without improvement) and, with
    restore_best, `best_params` (a host copy of the flat parameter buffer).
    """

    def __init__(self, n_iter_no_change=10, tol=1e-4, monitor="loss", restore_best=None):
        if n_iter_no_change != np.inf:
            if isinstance(n_iter_no_change, (bool, np.bool_)) or not isinstance(n_iter_no_change, numbers.Integral):
                raise TypeError(f"n_iter_no_change must be a positive integer or np.inf; got {n_iter_no_change!r}")
            if n_iter_no_change < 1:
                raise ValueError(f"n_iter_no_change must be a positive integer or np.inf; got {n_iter_no_change!r}")
        self.n_iter_no_change = n_iter_no_change if n_iter_no_change == np.inf else int(n_iter_no_change)
        self.tol = _real(tol, "tol", 0.0)
        if not isinstance(monitor, str) or monitor not in ("loss", "val_loss") + HIGHER_IS_BETTER:
            raise ValueError(f"monitor must be one of {['loss', 'val_loss', *HIGHER_IS_BETTER]}; got {monitor!r}")
        self.monitor = monitor
        self.higher_is_better = monitor in HIGHER_IS_BETTER
        if restore_best is None:
            restore_best = monitor.startswith("val_")
        if not isinstance(restore_best, (bool, np.bool_)):
            raise TypeError(f"restore_best must be True, False or None; got {restore_best!r}")
        self.restore_best = bool(restore_best)
        self.best = -np.inf if self.higher_is_better else np.inf
        self.count = 0
        self.best_params = None

    def update(self, value, net):
        """Record one epoch's value (for `net`, whose parameters are kept when they are the
        best so far and restore_best is set) -> True at a plateau."""
        sign = 1.0 if self.higher_is_better else -1.0
        if sign * value < sign * self.best + self.tol:      # (NaN compares False: counts as improving, as in sklearn)
            self.count += 1
        else:
            self.count = 0
        if sign * value > sign * self.best:
            self.best = value
            if self.restore_best:
                self.best_params = net.get_flat_params()
        return self.count > self.n_iter_no_change

    def restore(self, net):
        """Put back the best epoch's parameters (restore_best and a best epoch seen)."""
        if self.restore_best and self.best_params is not None:
            net.set_flat_params(self.best_params)

    def __repr__(self):
        return (f"EarlyStopping(n_iter_no_change={self.n_iter_no_change!r}, tol={self.tol!r}, "
                f"monitor={self.monitor!r}, restore_best={self.restore_best!r})")
