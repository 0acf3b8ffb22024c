"""The correctness guard: nothing is timed until it is shown to compute the right step.

1. Each fastbp backend's loss and gradients (net.loss_and_grad) on the workload's batch
   are compared with the NumPy reference's, from identical weights.
2. Every timed candidate (fastbp backends, "auto", peers) does its first STEPS training
   steps from identical weights with its own optimizer, and its losses and then its
   parameters are compared with the reference backend's for the same steps and the same
   rule (optimizers.py): this checks the loss, the gradients and the update (the learning
   rate, the loss scaling, momentum, Adam's moments and bias corrections) together. The
   losses alone would miss an update rule that differs only from the second step on (the
   last loss is taken before the last update).

Tolerance: errors are normwise, max |x - ref| / max |ref| per array, against
    tol = max(floor, 32 * eps * sqrt(K) * n_layers),  K = the longest dot product
(the batch or the widest layer), eps the dtype's machine epsilon, floor 1e-12 in float64
and 1e-5 in float32. Summation order differs between BLAS, JIT and autograd, so errors
of a few eps * sqrt(K) per layer are rounding; a wrong kernel misses by orders of magnitude.

Parameters are compared per array against what the steps changed, in the 2-norm:
    ||p - p_ref|| <= max(tol, rule) * ||p_ref - p_0|| + STEPS * eps * ||p_ref||
the first term the gradient's rounding carried through the update, the second one
rounding of each stored parameter per step. rule is the rounding of the update rule's own
constants: 0 for SGD; for Adam eps / (1 - beta2), as 1 - beta2^t computed in the working
precision (optax does, in float32) cancels to t * (1 - beta2). The 2-norm, not the
max-norm: Adam divides a gradient by its own magnitude, so for the few entries whose
gradient is rounding noise below Adam's eps their updates differ between two correct
implementations by a fair fraction of lr; a wrong rule moves all of them.
"""
import math

import numpy as np

from . import optimizers
from .workloads import make_net

STEPS = 2


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


def reference(workload, dtype, X, y, optimizer=optimizers.SGD):
    """The NumPy reference network's initial weights, loss and gradients, its losses over
    STEPS training steps with `optimizer` (an OptimizerSpec) and its parameters after them."""
    net = make_net(workload, dtype, "numpy")
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]
    loss, dW, db = net.loss_and_grad(X, y)
    rule = optimizer.fastbp()
    losses = [net.train_step(X, y, rule) for _ in range(STEPS)]
    return dict(weights=weights, biases=biases, loss=loss, dW=dW, db=db, losses=losses,
                trained=([w.copy() for w in net.weights], [b.copy() for b in net.biases]),
                optimizer=optimizer)


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


def run_steps(name, workload, dtype, step, params, ref):
    """STEPS calls of step(), then both checks (GuardError). -> (worst relative loss error,
    the largest fraction of its allowance a parameter array's error uses)."""
    losses = [step() for _ in range(STEPS)]
    return (check_losses(name, workload, dtype, losses, ref),
            check_params(name, workload, dtype, params(), ref))


def check_params(name, workload, dtype, params, ref):
    """Compare a candidate's parameters (weights, biases) after STEPS steps with the
    reference's (see the module's docstring); GuardError. -> the largest fraction of its
    allowance an array's error uses (at most 1)."""
    tol, eps = tolerance(workload, dtype), float(np.finfo(dtype).eps)
    rule = ref["optimizer"]
    update_tol = max(tol, eps / (1 - rule.betas[1])) if rule.is_adam else tol
    worst = 0.0
    for kind, got_all, start_all, want_all in (("W", params[0], ref["weights"], ref["trained"][0]),
                                               ("b", params[1], ref["biases"], ref["trained"][1])):
        for l, (got, start, want) in enumerate(zip(got_all, start_all, want_all)):
            got, start, want = (np.asarray(a, dtype=np.float64) for a in (got, start, want))
            if got.shape != want.shape:
                raise GuardError(f"{name} returned {kind}[{l}] of shape {got.shape}; fastbp's is {want.shape}")
            moved = float(np.linalg.norm(want - start))
            allowed = update_tol * moved + STEPS * eps * float(np.linalg.norm(want))
            off = float(np.linalg.norm(got - want))
            if not off <= allowed:                     # NaN fails too
                raise GuardError(
                    f"{name} does not make the same {rule.name} update as fastbp on {workload.name} "
                    f"({np.dtype(dtype).name}): after {STEPS} steps {kind}[{l}] is off by {off:.3g} (2-norm) "
                    f"where the steps moved it by {moved:.3g} (allowed: {update_tol:.3g} of that, plus rounding of "
                    f"the stored parameters, {allowed:.3g} in all)")
            worst = max(worst, off / allowed if allowed > 0 else 0.0)
    return worst


def check_losses(name, workload, dtype, losses, ref):
    """Compare a candidate's first training-step losses with the reference's; GuardError."""
    tol = tolerance(workload, dtype)
    for i, (got, want) in enumerate(zip(losses, ref["losses"])):
        err = normwise_error(got, want)
        if not err <= tol:
            raise GuardError(f"{name} does not compute the same {ref['optimizer'].name} training step as fastbp on "
                             f"{workload.name} ({np.dtype(dtype).name}): step {i + 1} loss {got!r}, "
                             f"reference {want!r} (relative error {err:.3g}, tolerance {tol:.3g})")
    return max(normwise_error(g, w) for g, w in zip(losses, ref["losses"]))
