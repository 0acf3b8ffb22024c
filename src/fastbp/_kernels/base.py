"""The backend interface: the kernels of docs/design.md, plus network-level steps built from them.

A backend is one `Ops` subclass in one module. Its kernels receive arrays that the API
boundary has already checked (one float dtype, consistent shapes, finite, C-contiguous,
in the backend's memory) and activation/loss codes from `fastbp.activations` and
`fastbp.losses`. The network-level methods below compose those kernels layer by layer;
a backend with a fused path (one compiled call per step) overrides them.
"""
import math

import numpy as np

from ..validation import kernel_array


class Ops:
    name = "base"
    # True where train_step itself rejects NaN/inf in X or y (ValueError naming the
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

    def dataset(self, X, y):
        """Checked training data -> an object whose batches(batch_size, order) yields
        mini-batches in this backend's memory (fit's data source)."""
        return HostDataset(self, X, y)

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

    # ---- kernels (each backend implements these) ----
    def linear_forward(self, X, W, b, act):
        """-> (Z, A): Z = X @ W + b, A = f(Z)."""
        raise NotImplementedError

    def activation_backward(self, dA, Z, A, act):
        """-> dA * f'(Z)."""
        raise NotImplementedError

    def delta_propagate(self, delta, W, Z, A, act):
        """-> (delta @ W.T) * f'(Z), with Z, A of the earlier layer."""
        raise NotImplementedError

    def weight_gradient(self, A_prev, delta, dW=None, db=None):
        """-> (dW, db) = (A_prev.T @ delta, delta.sum(0)); written into dW, db when given."""
        raise NotImplementedError

    def loss_and_output_grad(self, out, y, loss, reduction):
        """-> (loss as a Python float, dLoss/d out)."""
        raise NotImplementedError

    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov):
        raise NotImplementedError

    def adam_update(self, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        raise NotImplementedError

    # ---- network level, composed from the kernels ----
    def forward(self, state, X):
        """Output activations of the network; an array the caller owns."""
        A = X
        for W, b, act in zip(state.params.W, state.params.b, state.arch.activations):
            _, A = self.linear_forward(A, W, b, act)
        return A

    def loss(self, state, X, y):
        out = self.forward(state, X)
        return self.loss_and_output_grad(out, y, state.arch.loss, state.arch.reduction)[0]

    def loss_and_grad(self, state, X, y):
        """Forward and backward; writes the gradients into state.grads; -> loss."""
        arch, P, G = state.arch, state.params, state.grads
        acts = arch.activations
        Zs, As = [], [X]
        for W, b, act in zip(P.W, P.b, acts):
            Z, A = self.linear_forward(As[-1], W, b, act)
            Zs.append(Z)
            As.append(A)
        loss, d_out = self.loss_and_output_grad(As[-1], y, arch.loss, arch.reduction)
        delta = self.activation_backward(d_out, Zs[-1], As[-1], acts[-1])
        for l in reversed(range(arch.n_layers)):
            self.weight_gradient(As[l], delta, G.W[l], G.b[l])
            if l > 0:
                delta = self.delta_propagate(delta, P.W[l], Zs[l - 1], As[l], acts[l - 1])
        return loss

    def train_step(self, state, X, y, optimizer):
        """Forward, backward and update. A non-finite loss or gradient raises
        FloatingPointError before anything is updated."""
        loss = self.loss_and_grad(state, X, y)
        if not (math.isfinite(loss) and self.all_finite(state.grads.flat)):
            raise FloatingPointError(f"non-finite loss ({loss}) or gradient; parameters left unchanged")
        optimizer.update(self, state.params.flat, state.grads.flat)
        return loss


class HostDataset:
    """Training data in host memory, served as mini-batches in the backend's memory.

    In order, a batch is a row slice of the checked data (a view, no copy, on CPU backends);
    in a given order (shuffled), its rows are gathered into one batch buffer allocated once.
    A batch is valid until the next one is taken. A backend that keeps data sets in its own
    memory overrides `Ops.dataset` with the same `batches` method (CUDA: on the device).
    """

    def __init__(self, ops, X, y):
        self.ops, self.X, self.y = ops, X, y
        self.n = X.shape[0]
        self._buffers = None

    def batches(self, batch_size, order=None):
        """-> iterator of (X_batch, y_batch); the last batch holds the remainder."""
        ops, X, y = self.ops, self.X, self.y
        if order is not None and self._buffers is None:
            rows = min(batch_size, self.n)
            self._buffers = (np.empty((rows,) + X.shape[1:], X.dtype), np.empty((rows,) + y.shape[1:], y.dtype))
        for start in range(0, self.n, batch_size):
            stop = min(start + batch_size, self.n)
            if order is None:
                Xb, yb = X[start:stop], y[start:stop]
            else:
                rows = order[start:stop]
                Xb = np.take(X, rows, axis=0, out=self._buffers[0][:stop - start])
                yb = np.take(y, rows, axis=0, out=self._buffers[1][:stop - start])
            yield ops.from_host(Xb), ops.from_host(yb)
