"""The correctness guard: nothing is timed until it is shown to compute the right step.

1. Each fastbp backend's loss and gradients (net.loss_and_grad) on the workload's batch
   are compared with the NumPy reference's, from identical weights.
2. Every timed candidate (fastbp backends, "auto", peers) does its first STEPS training
   steps from identical weights, and its losses are compared with the reference
   backend's losses for the same steps: this checks the loss, the gradients and the
   update (the learning rate, the loss scaling) together.

Tolerance: errors are normwise, max |x - ref| / max |ref| per array, against
    tol = max(floor, 32 * eps * sqrt(K) * n_layers),  K = the longest dot product
(the batch or the widest layer), eps the dtype's machine epsilon, floor 1e-12 in float64
and 1e-5 in float32. Summation order differs between BLAS, JIT and autograd, so errors
of a few eps * sqrt(K) per layer are rounding; a wrong kernel misses by orders of magnitude.
"""
import math

import numpy as np

from .workloads import make_net

STEPS = 2
LR = 0.01


class GuardError(RuntimeError):
    """A candidate computed different numbers than the reference: nothing is timed."""


def tolerance(workload, dtype):
    dtype = np.dtype(dtype)
    floor = 1e-12 if dtype == np.float64 else 1e-5
    longest = max(workload.batch, max(workload.sizes))
    n_layers = len(workload.sizes) - 1
    return max(floor, 32 * float(np.finfo(dtype).eps) * math.sqrt(longest) * n_layers)


def normwise_error(x, ref):
    x, ref = np.asarray(x, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    err = float(np.max(np.abs(x - ref))) if ref.size else 0.0
    return err / scale if scale > 0 else err


def reference(workload, dtype, X, y):
    """The NumPy reference network's initial weights, loss and gradients, and its losses
    over STEPS training steps."""
    import fastbp as fb
    net = make_net(workload, dtype, "numpy")
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]
    loss, dW, db = net.loss_and_grad(X, y)
    optimizer = fb.SGD(LR)
    losses = [net.train_step(X, y, optimizer) for _ in range(STEPS)]
    return dict(weights=weights, biases=biases, loss=loss, dW=dW, db=db, losses=losses)


def check_gradients(workload, dtype, X, y, backend, ref):
    """Compare a backend's loss_and_grad with the reference's; -> max error; GuardError."""
    net = make_net(workload, dtype, backend)
    net.set_params(ref["weights"], ref["biases"])
    loss, dW, db = net.loss_and_grad(X, y)
    tol = tolerance(workload, dtype)
    errors = {"loss": normwise_error(loss, ref["loss"])}
    for l in range(len(dW)):
        errors[f"dW[{l}]"] = normwise_error(dW[l], ref["dW"][l])
        errors[f"db[{l}]"] = normwise_error(db[l], ref["db"][l])
    worst = max(errors, key=errors.get)
    if not errors[worst] <= tol:        # NaN fails too
        raise GuardError(f"backend {backend!r} disagrees with the NumPy reference on {workload.name} "
                         f"({np.dtype(dtype).name}): {worst} off by {errors[worst]:.3g} relative "
                         f"(tolerance {tol:.3g}); not timing a wrong result")
    return errors[worst]


def check_losses(name, workload, dtype, losses, ref):
    """Compare a candidate's first training-step losses with the reference's; GuardError."""
    tol = tolerance(workload, dtype)
    for i, (got, want) in enumerate(zip(losses, ref["losses"])):
        err = normwise_error(got, want)
        if not err <= tol:
            raise GuardError(f"{name} does not compute the same training step as fastbp on "
                             f"{workload.name} ({np.dtype(dtype).name}): step {i + 1} loss {got!r}, "
                             f"reference {want!r} (relative error {err:.3g}, tolerance {tol:.3g})")
    return max(normwise_error(g, w) for g, w in zip(losses, ref["losses"]))
