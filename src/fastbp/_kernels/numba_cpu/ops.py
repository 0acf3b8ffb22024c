"""The Numba CPU backend: the kernels of DESIGN.md and one-call network passes.

Kernels live in numba_kernels.py (activations with fast float32 forms from numba_math.py,
size-aware matrix products, losses, optimizer updates); the fused forward / loss /
backward / update pass in numba_fused.py. Everything compiles on first use and is cached
on disk (cache=True); importing this module compiles nothing.

The network-level methods run ONE compiled call each. Workspaces are allocated once per
batch size and kept in `state.scratch` with the pass's plan (a `Prepared`, see
numba_fused.plan) and the plan's compiled entry points, so a step's Python is a few
look-ups and one call of 12 arguments (15 for Adam); tiny networks (every layer <=
numba_fused.FLAT_MAX_MACS) run a view-free pass. The entry points are one per purpose
(loss, SGD step, Adam step) and pass kind, so a first call compiles only what it runs. X and y
are checked for NaN/inf inside the compiled call (the model boundary passes them
unchecked, see `checks_finite`), and a bad input or a non-finite loss/gradient is
reported before anything is written. Plain SGD (momentum 0) updates each W inside its
weight-gradient GEMM (numba_fused._sgd_pass), so that step leaves no gradient behind.

Threads: no prange loop; the only parallelism is BLAS's (NumPy's own OpenBLAS, called
through numba_blas.gemm, limited by fastbp.set_num_threads; np.dot in njit, i.e. SciPy's
OpenBLAS, only when NumPy's cblas gemm cannot be found). np.dot's SciPy BLAS was a second
busy-waiting OpenBLAS pool beside NumPy's: with 2 threads on 2 cores the two fought
(`fastbp bench --threads 2`, mnist-b256: 4.9-21.5 ms per step, IQR 60-200%, against 2.0 ms,
IQR 1%, with NumPy's BLAS; see numba_blas.py). Measured on
the shared 2-core CI machine (bench/numba_profile.py, fastbp bench --threads 1/2): with 1
BLAS thread the steps are stable; with 2, OpenBLAS's threads collapse whenever the other
core is busy. prange over the batch did not pay for layers this small.

Developers: Numba's on-disk cache (src/fastbp/_kernels/__pycache__/numba_*.nbi/.nbc) is
keyed on each function's own file, not on the files it calls. After editing
numba_math.py or numba_kernels.py, delete those cache files (an install or upgrade
rewrites every file, so users are not affected).
"""
import numpy as np

from ... import losses
from ...optim import SGD, Adam
from ..base import Ops
from . import layers, step as fused
from .blas import gemm_address
from .checks import nonfinite_count
from .losses import loss_and_output_grad
from .optimizers import adam_update, sgd_update

_CE = losses.CROSS_ENTROPY
_NO_LABELS = np.zeros(0, dtype=np.intp)
_NO_TARGETS = {np.dtype(np.float32): np.zeros((0, 0), np.float32),
               np.dtype(np.float64): np.zeros((0, 0), np.float64)}


# workspaces kept per network (one per batch size seen; the oldest is dropped beyond this)
MAX_WORKSPACES = 4


class NumbaOps(Ops):
    name = "numba"
    # The network-level methods below check X and y for NaN/inf inside the compiled call
    # (raising ValueError before anything is written), so the model boundary may skip that pass.
    checks_finite = True
    first_step_note = "compiling the Numba kernels (once; cached on disk)"

    # ---- kernels ----
    def linear_forward(self, X, W, b, act):
        return layers.linear_forward(X, W, b, act, gemm_address(X.dtype))

    def activation_backward(self, dA, Z, A, act):
        return layers.activation_backward(dA, Z, A, act)

    def delta_propagate(self, delta, W, Z, A, act):
        return layers.delta_propagate(delta, W, Z, A, act, gemm_address(delta.dtype))

    def weight_gradient(self, A_prev, delta, dW=None, db=None):
        if dW is None:
            return layers.weight_gradient(A_prev, delta, gemm_address(delta.dtype))
        layers.weight_gradient_into(A_prev, delta, dW, db, gemm_address(delta.dtype))
        return dW, db

    def loss_and_output_grad(self, out, y, loss, reduction):
        if loss == losses.CROSS_ENTROPY:
            total, grad = loss_and_output_grad(out, _NO_TARGETS[out.dtype], y, loss, reduction)
        else:
            total, grad = loss_and_output_grad(out, y, _NO_LABELS, loss, reduction)
        return float(total), grad

    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov):
        sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov)

    def adam_update(self, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay)

    def all_finite(self, a):
        return not nonfinite_count(a)

    # ---- network level: one compiled call each ----
    def prepared(self, state, batch):
        """The per-network, per-batch-size things a pass needs that never change between
        steps (workspace, plan, empty stand-ins), made once and kept in `state.scratch`."""
        scratch = state.scratch
        prep = scratch.get(batch)
        if prep is None:
            sizes = [k for k in scratch if isinstance(k, int)]
            if len(sizes) >= MAX_WORKSPACES:        # fit's last short batch, eval sizes, ...: keep a few
                del scratch[sizes[0]]
            prep = scratch[batch] = Prepared(state.arch, batch)
        return prep

    def forward(self, state, X):
        prep = self.prepared(state, X.shape[0])
        status, out = fused.forward(X, state.params.flat, prep.ws, prep.plan)
        _raise_for(status)
        return out

    def _pass(self, mode, state, X, y):
        prep = self.prepared(state, X.shape[0])
        targets, labels = (prep.no_targets, y) if prep.labels else (y, _NO_LABELS)
        status, loss = prep.loss(mode, X, targets, labels, state.params.flat, state.grads.flat, prep.ws, prep.plan)
        if status != fused.NONFINITE:
            _raise_for(status)
        return loss

    def loss(self, state, X, y):
        return self._pass(fused.MODE_LOSS, state, X, y)

    def loss_and_grad(self, state, X, y):
        return self._pass(fused.MODE_GRAD, state, X, y)

    def train_step(self, state, X, y, optimizer):
        """Forward, backward and update in one compiled call; FloatingPointError (nothing
        updated) on a non-finite loss or gradient, ValueError (nothing written) on NaN/inf
        in X or y. The Python here is the whole per-step overhead: keep it to look-ups.
        The hyper-parameters are read from the optimizer on every step (a user may change
        opt.lr between steps)."""
        prep = state.scratch.get(X.shape[0])
        if prep is None:
            prep = self.prepared(state, X.shape[0])
        kind = type(optimizer)
        if kind is not SGD and kind is not Adam:       # a subclass may change the update
            if not (self.all_finite(X) and self.all_finite(y)):
                raise ValueError(f"{'X' if not self.all_finite(X) else 'y'} contains NaN or inf")
            return super().train_step(state, X, y, optimizer)
        fresh = optimizer._binding is None
        if fresh:
            optimizer.bind(self, state.params.flat)
        st = optimizer.state
        targets, labels = (prep.no_targets, y) if prep.labels else (y, _NO_LABELS)
        params, grads = state.params.flat, state.grads.flat
        if kind is SGD:
            status, loss = prep.sgd(X, targets, labels, params, grads, prep.ws, prep.plan, st["velocity"],
                                    optimizer.lr, optimizer.momentum, optimizer.weight_decay, optimizer.nesterov)
        else:
            beta1, beta2 = optimizer.betas
            status, loss = prep.adam(X, targets, labels, params, grads, prep.ws, prep.plan, st["m"], st["v"],
                                     optimizer.step_count + 1, optimizer.lr, beta1, beta2, optimizer.eps,
                                     optimizer.weight_decay)
        if status:
            if fresh:       # a rejected first step leaves the optimizer unbound, as it was
                optimizer.unbind()
            if status == fused.NONFINITE:
                raise FloatingPointError(f"non-finite loss ({loss}) or gradient; parameters left unchanged")
            _raise_for(status)
        optimizer.step_count += 1
        return loss


class Prepared:
    """What a pass over batches of one size needs besides the data, the parameter/gradient
    buffers and the optimizer: the workspace, its plan (numba_fused.plan), empty stand-ins,
    and the compiled entry points for the plan's pass kind (view-free for tiny networks)."""
    __slots__ = ("ws", "plan", "labels", "no_targets", "loss", "sgd", "adam")

    def __init__(self, arch, batch):
        self.plan, size = fused.plan(arch, batch)
        if self.plan[fused.FLAT]:
            self.loss, self.sgd, self.adam = fused.flat_loss, fused.flat_sgd, fused.flat_adam
        else:
            self.loss, self.sgd, self.adam = fused.view_loss, fused.view_sgd, fused.view_adam
        self.ws = np.empty(size, dtype=arch.dtype)
        self.labels = arch.loss == _CE          # y is class labels (np.intp), not targets
        self.no_targets = _NO_TARGETS[arch.dtype]


def _raise_for(status):
    if status == fused.BAD_X:
        raise ValueError("X contains NaN or inf")
    if status == fused.BAD_Y:
        raise ValueError("y contains NaN or inf")
    if status == fused.BAD_PLAN:      # a caller bypassed the checked boundary
        raise ValueError("the arrays do not match the network's shapes and workspace")


def available():
    try:
        import numba  # noqa: F401
    except ImportError as e:      # pragma: no cover - numba is a hard dependency
        return False, f"numba is not installed ({e})"
    return True, ""


ops = NumbaOps()
