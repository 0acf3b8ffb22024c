"""The backend interface (thinc's Ops is the model): the kernels of docs/design.md, the
network-level passes composed from them, one workspace cache and one training-step
orchestration. A backend is one `Ops` subclass in one module and overrides what it does
faster; everything else works from here on its first day:

    kernels         default: the NumPy reference (reference.py) on host copies
    forward, loss, loss_and_grad
                    default: composed from the kernels, layer by layer
    train_step      here only: a backend's compiled whole step for the optimizer's kind (from
                    `prepare`), or the gradient pass and the optimizer's own update
    prepared        the per-network cache: one workspace (`make_workspace`), grown for a larger
                    batch, and per batch size the backend's `prepare` (entry points, views)

Kernels receive arrays the API boundary has already checked (one float dtype, consistent
shapes, finite, C-contiguous, in the backend's memory) and activation/loss codes from
`fastbp.activations` and `fastbp.losses`. `sw`, where a pass takes it: per-row sample
weights (batch,) of the network's dtype, checked (finite, >= 0), or None for none
(fastbp.losses: how they enter the loss and its gradient).
"""
import math

import numpy as np

from ..layout import penalty_scale
from ..validation import kernel_array
from .plan import NONFINITE, OK, status_error

MAX_PREPARED = 4     # batch sizes kept per network (fit's batch, its last short one, evaluation, ...)


class Ops:
    name = "base"
    # True where the backend's own passes reject NaN/inf in X or y (ValueError naming the
    # argument, raised before anything is written): the model boundary then skips its pass.
    checks_finite = False
    # What a first step may spend its time on, shown by fit's progress bar until the step ends
    # ("" where a first step is as fast as any other).
    first_step_note = ""

    # ---- memory: host NumPy <-> the backend's arrays (identity on CPU backends) ----
    def from_host(self, a):
        return a

    def to_host(self, a):
        return a

    def zeros(self, n, dtype):
        return np.zeros(n, dtype=dtype)

    def copy_into(self, dst, host_src):
        """Copy a host array into a backend array of the same size."""
        dst[...] = host_src

    def all_finite(self, a):
        return bool(np.isfinite(a).all())

    def dataset(self, X, y, sw=None):
        """Checked training data (and sample weights, or None) -> an object whose
        batches(batch_size, order) yields mini-batches (X, y, sw) in this backend's memory
        (fit's data source)."""
        return HostDataset(self, X, y, sw)

    # ---- the public kernel boundary (fastbp.kernels): checks, then backend arrays ----
    def kernel_inputs(self, named):
        """[(name, array, ndim), ...] -> checked backend arrays, all of the first one's dtype."""
        dtype, out = None, []
        for name, a, ndim in named:
            a = kernel_array(a, name, ndim, dtype)
            dtype = a.dtype
            out.append(a)
        return out

    def kernel_outputs(self, outs):
        return outs

    # ---- kernels: by default the NumPy reference, on host copies ----
    def linear_forward(self, X, W, b, act):
        """-> (Z, A): Z = X @ W + b, A = f(Z)."""
        return self._by_reference("linear_forward", X, W, b, act)

    def activation_backward(self, dA, Z, A, act):
        """-> dA * f'(Z)."""
        return self._by_reference("activation_backward", dA, Z, A, act)

    def delta_propagate(self, delta, W, Z, A, act):
        """-> (delta @ W.T) * f'(Z), with Z, A of the earlier layer."""
        return self._by_reference("delta_propagate", delta, W, Z, A, act)

    def weight_gradient(self, A_prev, delta, dW=None, db=None):
        """-> (dW, db) = (A_prev.T @ delta, delta.sum(0)); written into dW, db when given."""
        if dW is None:
            return self._by_reference("weight_gradient", A_prev, delta)
        self._by_reference("weight_gradient", A_prev, delta, dW, db, written=(2, 3))
        return dW, db

    def loss_and_output_grad(self, out, y, loss, reduction, sw=None):
        """-> (loss as a Python float, dLoss/d out), rows weighted by sw when given."""
        return self._by_reference("loss_and_output_grad", out, y, loss, reduction, sw)

    # The updates (torch.optim semantics) write every new value or none: -> True when applied,
    # False (p, g and the state as they were) when a new value would not be finite.
    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov):
        return self._by_reference("sgd_update", p, g, velocity, lr, momentum, weight_decay, nesterov,
                                  written=(0, 2))

    def adam_update(self, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        return self._by_reference("adam_update", p, g, m, v, step, lr, beta1, beta2, eps, weight_decay,
                                  written=(0, 2, 3))

    def weight_penalty(self, weights, weight_grads, c):
        """-> 0.5 * c * sum(W**2) over the weight matrices (a Python float, summed in float64);
        adds c * W to each weight gradient, when weight_grads (one per weight) are given."""
        total = 0.0
        for l, W in enumerate(weights):
            host = self.to_host(W)
            total += float(np.sum(np.square(host, dtype=np.float64)))
            if weight_grads is not None:
                g = self.to_host(weight_grads[l])
                g += host.dtype.type(c) * host
                if g is not weight_grads[l]:
                    self.copy_into(weight_grads[l], g)
        return 0.5 * c * total

    def _by_reference(self, kernel, *args, written=()):
        """The reference's `kernel` on host copies of the array arguments; the arrays at the
        positions `written` are copied back, the arrays returned are in this backend's memory."""
        from .reference import ops as reference
        host = [self.to_host(a) if hasattr(a, "shape") else a for a in args]
        out = getattr(reference, kernel)(*host)
        for i in written:
            if host[i] is not args[i]:
                self.copy_into(args[i], host[i])
        if isinstance(out, tuple):
            return tuple(self.from_host(a) if isinstance(a, np.ndarray) else a for a in out)
        return self.from_host(out) if isinstance(out, np.ndarray) else out

    # ---- network level, composed from the kernels ----
    def forward(self, state, X):
        """Output activations of the network; an array the caller owns."""
        A = X
        for W, b, act in zip(state.params.W, state.params.b, state.arch.activations):
            _, A = self.linear_forward(A, W, b, act)
        return A

    def penalty(self, state, rows, sw, gradient):
        """The network's L2 term for a batch of `rows` (weighted by sw): -> its share of the
        loss, its gradient added to state.grads' weights when `gradient`. 0 when l2 is 0."""
        if not state.l2:
            return 0.0
        weight_sum = None if sw is None else float(np.sum(self.to_host(sw), dtype=np.float64))
        c = penalty_scale(state.l2, state.arch.reduction, rows, weight_sum)
        return self.weight_penalty(state.params.W, state.grads.W if gradient else None, c)

    def loss(self, state, X, y, sw=None):
        out = self.forward(state, X)
        loss = self.loss_and_output_grad(out, y, state.arch.loss, state.arch.reduction, sw)[0]
        return loss + self.penalty(state, X.shape[0], sw, gradient=False)

    def loss_and_grad(self, state, X, y, sw=None):
        """Forward and backward; writes the gradients into state.grads; -> loss."""
        arch, P, G = state.arch, state.params, state.grads
        acts = arch.activations
        Zs, As = [], [X]
        for W, b, act in zip(P.W, P.b, acts):
            Z, A = self.linear_forward(As[-1], W, b, act)
            Zs.append(Z)
            As.append(A)
        loss, d_out = self.loss_and_output_grad(As[-1], y, arch.loss, arch.reduction, sw)
        delta = self.activation_backward(d_out, Zs[-1], As[-1], acts[-1])
        for l in reversed(range(arch.n_layers)):
            self.weight_gradient(As[l], delta, G.W[l], G.b[l])
            if l > 0:
                delta = self.delta_propagate(delta, P.W[l], Zs[l - 1], As[l], acts[l - 1])
        return loss + self.penalty(state, X.shape[0], sw, gradient=True)

    def gradient_pass(self, state, X, y, sw=None):
        """loss_and_grad with its outcome as a status (plan.STATUSES): -> (status, loss);
        NONFINITE when the loss or a gradient is NaN/inf."""
        loss = self.loss_and_grad(state, X, y, sw)
        return (OK if math.isfinite(loss) and self.all_finite(state.grads.flat) else NONFINITE), loss

    # ---- the per-network cache ----
    def make_workspace(self, arch, capacity):
        """The backend's workspace for batches of up to `capacity` rows: an object with a
        `capacity` attribute (none by default)."""
        return NO_WORKSPACE

    def prepare(self, state, workspace, batch):
        """What passes over batches of `batch` rows need besides the data: an object whose
        `steps` maps an optimizer kind ("sgd", "adam") to run(X, y, sw, optimizer) ->
        (status, loss), the backend's compiled whole training step for it (none by default; kinds
        missing from it take composed_train_step)."""
        return NO_STEPS

    def prepared(self, state, batch):
        """prepare(...)'s object for this network and batch size: made once and kept in
        state.scratch with the workspace, which every batch size up to its capacity shares
        (a larger batch grows it, and drops what was prepared for the old one)."""
        scratch = state.scratch
        prep = scratch.get(batch)
        if prep is None:
            workspace = scratch.get("workspace")
            if workspace is None or workspace.capacity < batch:
                scratch.clear()
                workspace = scratch["workspace"] = self.make_workspace(state.arch, batch)
            sizes = [k for k in scratch if k != "workspace"]
            if len(sizes) >= MAX_PREPARED:
                del scratch[sizes[0]]
            prep = scratch[batch] = self.prepare(state, workspace, batch)
        return prep

    # ---- the training step ----
    def train_step(self, state, X, y, optimizer, sw=None):
        """Forward, backward and update, in place; -> loss. FloatingPointError (nothing
        updated) on a non-finite loss or gradient, or an update that would make a parameter or
        an optimizer state value non-finite; ValueError (nothing written) on NaN/inf in X or y
        where the backend checks them (checks_finite). A compiled step leaves state.grads as
        scratch. The Python here is the whole
        per-step overhead of a compiled step: keep it to look-ups. A rejected first step
        leaves the optimizer unbound, as it was."""
        prep = state.scratch.get(X.shape[0]) or self.prepared(state, X.shape[0])
        try:
            run = prep.steps[optimizer.kind]
        except KeyError:            # no compiled step for this kind (None: a kind of its own)
            return self.composed_train_step(state, X, y, optimizer, sw)
        fresh = optimizer.bound_to is None
        if fresh:
            optimizer.bind(self, state.params.flat)
        status, loss = run(X, y, sw, optimizer)
        if status:
            if fresh:
                optimizer.unbind()
            raise status_error(status, loss)
        optimizer.step_count += 1
        return loss

    def composed_train_step(self, state, X, y, optimizer, sw=None):
        """The gradient pass, then the optimizer's own update (FloatingPointError, nothing
        updated, when it would make a value non-finite); the gradients stay in state.grads."""
        status, loss = self.gradient_pass(state, X, y, sw)
        if status:
            raise status_error(status, loss)
        optimizer.update(self, state.params.flat, state.grads.flat)
        return loss


class _NoWorkspace:
    capacity = math.inf


class _NoSteps:
    steps = {}


NO_WORKSPACE, NO_STEPS = _NoWorkspace(), _NoSteps()


class HostDataset:
    """Training data in host memory, served as mini-batches in the backend's memory.

    In order, a batch is a row slice of the checked data (a view, no copy, on CPU backends);
    in a given order (shuffled), its rows are gathered into one batch buffer allocated once.
    A batch is valid until the next one is taken. A backend that keeps data sets in its own
    memory overrides `Ops.dataset` with the same `batches` method (CUDA: on the device).
    """

    def __init__(self, ops, X, y, sw=None):
        self.ops, self.arrays = ops, [a for a in (X, y, sw) if a is not None]
        self.n = X.shape[0]
        self._buffers = None

    def batches(self, batch_size, order=None):
        """-> iterator of (X_batch, y_batch, sw_batch or None); the last batch holds the remainder."""
        ops, arrays = self.ops, self.arrays
        if order is not None and self._buffers is None:
            rows = min(batch_size, self.n)
            self._buffers = [np.empty((rows,) + a.shape[1:], a.dtype) for a in arrays]
        for start in range(0, self.n, batch_size):
            stop = min(start + batch_size, self.n)
            if order is None:
                batch = [a[start:stop] for a in arrays]
            else:
                rows = order[start:stop]
                batch = [np.take(a, rows, axis=0, out=buf[:stop - start]) for a, buf in zip(arrays, self._buffers)]
            batch = [ops.from_host(a) for a in batch]
            yield batch[0], batch[1], batch[2] if len(batch) > 2 else None
