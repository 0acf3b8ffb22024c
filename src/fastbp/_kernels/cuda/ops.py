"""The numba.cuda backend: `CudaOps`, its kernels in the modules beside it, everything on the device.

Parameters, gradients, optimizer state and workspaces stay on the GPU; a training step
reads back three numbers (the loss and two flags: the gradient finite, the update's new
values finite), then writes the update only if all three are (optimizers.py).
`from_host`/`to_host` are the only host<->device copies, so `MLP.weights` on "cuda" are host
copies.

Network-level steps take one of two paths, chosen per network (`uses_fused`):
  fused   every layer size <= 128: one kernel for the whole forward pass, one for the
          backward delta propagation (narrow.py).
  tiled   otherwise: per layer, tiled shared-memory GEMMs with fused epilogues (products.py).
Either way all the weight gradients are then one batched reduction launch (plus one to
add the batch chunks), written straight into the flat gradient buffer.
`CudaOps.fused` forces a path (True/False) for tests and experiments; None is automatic.

Public kernels (fastbp.kernels.*) accept host NumPy arrays (copied over, results copied
back: host in, host out) or device arrays: any object with __cuda_array_interface__
(Numba device arrays, CuPy arrays, PyTorch CUDA tensors), used in place without copies,
results returned as Numba device arrays. Device inputs get the same checks as host ones
(dtype, shape, non-empty, finite: a device reduction); a non-contiguous device input is
copied once on the device into C order.

Under NUMBA_ENABLE_CUDASIM=1 (numba's CUDA simulator, set before numba is imported) the
same code runs on the CPU, slowly: that is how it is tested without a GPU.
"""
import math
import threading

import numpy as np

from ... import activations
from ...validation import kernel_array, kernel_array_kind
from ..base import Ops
from ..plan import A_AT, D_AT, NONFINITE, OK, OVERFLOW, WS_SIZE, Z_AT, layer_field, make_plan

try:
    from numba import cuda
    _import_error = None
except Exception as e:          # noqa: BLE001 - numba-cuda absent or broken: the backend is unusable
    cuda = None
    _import_error = e

if cuda is not None:            # our own kernel modules: an error there is a bug, not "unavailable"
    from . import elementwise, losses, narrow, optimizers
    from . import products as gemm
    from .activations import activation_backward


def available():
    if cuda is None:
        return False, (f"numba.cuda cannot be imported ({type(_import_error).__name__}: {_import_error}); "
                       f"install numba-cuda")
    try:
        usable = cuda.is_available()
    except Exception as e:      # noqa: BLE001 - a broken driver is "not usable", not a crash
        return False, f"numba.cuda could not query the driver ({type(e).__name__}: {e})"
    if not usable:
        return False, ("numba.cuda finds no usable CUDA GPU and driver (for numba's slow CPU simulator, "
                       "set NUMBA_ENABLE_CUDASIM=1 before Python starts)")
    return True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1)" if simulated() else ""


def simulated():
    from numba import config
    return bool(getattr(config, "ENABLE_CUDASIM", False))


def is_device_array(a):
    """A Numba device array, or any object exposing __cuda_array_interface__."""
    if cuda is None or isinstance(a, np.ndarray):
        return False
    return cuda.devicearray.is_cuda_ndarray(a) or hasattr(a, "__cuda_array_interface__")


def as_device_array(a):
    """A Numba device array viewing the same memory (no copy)."""
    if cuda.devicearray.is_cuda_ndarray(a):
        return a
    return cuda.as_cuda_array(a)


class Workspace:
    """One network's device memory for batches of up to `capacity` rows, allocated once: the
    plan (host and device copies), the workspace it lays out (Z, A, delta of every layer),
    the tile table of the weight-gradient launch, the loss partial sums, the read-back
    result = [loss, gradient finite, update finite] (`flags`: its last two), and named
    scratch (the split weight-gradient sums)."""

    def __init__(self, arch, capacity):
        self.capacity, self.sizes = capacity, arch.sizes
        self.plan = make_plan(arch, capacity, share_za=True)
        self.plan_d = cuda.to_device(self.plan)
        self.buffer = cuda.device_array(int(self.plan[WS_SIZE]), dtype=arch.dtype)
        tiles = gemm.tile_table(arch.sizes)
        self.tiles, self.n_tiles = cuda.to_device(tiles), len(tiles)
        self.partials = cuda.device_array(elementwise.MAX_BLOCKS, dtype=arch.dtype)
        self.norm = cuda.device_array(1, dtype=arch.dtype)          # the weighted mean's 1 / sum(sw)
        self.penalty_scale = cuda.device_array(1, dtype=arch.dtype)  # and its L2 scale, l2 / sum(sw)
        self.result = cuda.device_array(3, dtype=arch.dtype)
        self.flags = self.result[1:]
        self._scratch = {}

    def rows(self, l, field, m):
        """Layer l's Z, A or delta (plan field Z_AT, A_AT, D_AT) for m rows: an (m, n) device view."""
        at, n = layer_field(self.plan, l, field), self.sizes[l + 1]
        return self.buffer[at:at + m * n].reshape(m, n)

    def scratch(self, name, shape):
        key = (name, shape)
        if key not in self._scratch:
            self._scratch[key] = cuda.device_array(shape, dtype=self.buffer.dtype)
        return self._scratch[key]


class Prepared:
    """Device views of the workspace for batches of m rows: Z[l], A[l], D[l], and `steps`, the
    training steps by optimizer kind (Ops.train_step): a few launches and one read-back each."""

    def __init__(self, ops, state, workspace, m):
        self.workspace, self.m = workspace, m
        L = len(workspace.sizes) - 1
        self.Z, self.A, self.D = ([workspace.rows(l, field, m) for l in range(L)] for field in (Z_AT, A_AT, D_AT))
        params, grads = state.params.flat, state.grads.flat

        def sgd_step(X, y, sw, opt):
            return ops.step(state, X, y, sw, self, "sgd", (params, grads, opt.state["velocity"], opt.lr, opt.momentum,
                                                       opt.weight_decay, opt.nesterov))

        def adam_step(X, y, sw, opt):
            beta1, beta2 = opt.betas
            return ops.step(state, X, y, sw, self, "adam", (params, grads, opt.state["m"], opt.state["v"],
                                                        opt.step_count + 1, opt.lr, beta1, beta2, opt.eps,
                                                        opt.weight_decay))

        self.steps = {"sgd": sgd_step, "adam": adam_step}


def _fresh_scratch(dtype):
    return lambda name, shape: cuda.device_array(shape, dtype=dtype)


class CudaDataset:
    """A training set (and its sample weights) copied to the device once; batches (X, y, sw
    or None) are sliced (in order) or gathered (shuffled, the epoch's order uploaded once) on
    the device. A yielded batch is valid until the next one is taken (the buffers are reused)."""

    def __init__(self, X, y, sw=None):
        self.arrays = {name: cuda.to_device(np.ascontiguousarray(a)) for name, a in (("X", X), ("y", y), ("sw", sw))
                       if a is not None}
        self.n = X.shape[0]
        self._buffers = {}

    def _gathered(self, which, rows):
        src = self.arrays[which]
        key = (which, rows.size)
        if key not in self._buffers:
            self._buffers[key] = cuda.device_array((rows.size,) + src.shape[1:], dtype=src.dtype)
        return elementwise.gather_rows(src, rows, self._buffers[key])

    def batches(self, batch_size, order=None):
        order_d = None if order is None else cuda.to_device(np.ascontiguousarray(order, dtype=np.intp))
        for start in range(0, self.n, batch_size):
            stop = min(self.n, start + batch_size)
            if order_d is None:
                batch = {name: a[start:stop] for name, a in self.arrays.items()}
            else:
                batch = {name: self._gathered(name, order_d[start:stop]) for name in self.arrays}
            yield batch["X"], batch["y"], batch.get("sw")


class CudaOps(Ops):
    name = "cuda"
    first_step_note = "compiling the CUDA kernels on first use"
    fused = None            # None: automatic (every layer size <= 128); True / False: forced

    def __init__(self):
        self._local = threading.local()

    # ---- memory ----
    def from_host(self, a):
        if is_device_array(a):
            return as_device_array(a)
        return cuda.to_device(np.ascontiguousarray(a))

    def to_host(self, a):
        if is_device_array(a):
            return as_device_array(a).copy_to_host()
        return np.asarray(a)

    def zeros(self, n, dtype):
        return elementwise.fill(cuda.device_array(n, dtype=dtype), 0.0)

    def copy_into(self, dst, host_src):
        dst.copy_to_device(np.ascontiguousarray(np.asarray(host_src, dtype=dst.dtype).reshape(dst.shape)))

    def all_finite(self, a):
        a = as_device_array(a) if is_device_array(a) else self.from_host(a)
        if not a.is_c_contiguous():
            a = elementwise.contiguous_copy(a)
        flag = cuda.device_array(1, dtype=a.dtype)
        elementwise.flag_nonfinite(a.reshape(a.size), flag, 0)
        return bool(flag.copy_to_host()[0] == 1)

    def dataset(self, X, y, sw=None):
        return CudaDataset(X, y, sw)

    # ---- the public kernel boundary ----
    def kernel_inputs(self, named):
        """Host arrays: the usual checks, then copied to the device (results come back to the
        host). Device arrays: the same checks on the device, no copy (results stay there)."""
        device = any(is_device_array(a) for _, a, _ in named)
        self._local.device_outputs = device
        dtype, out = None, []
        for name, a, ndim in named:
            if is_device_array(a):
                a = self._checked_device_array(a, name, ndim, dtype)
            else:
                a = cuda.to_device(kernel_array(a, name, ndim, dtype))
            dtype = a.dtype
            out.append(a)
        return out

    def _checked_device_array(self, a, name, ndim, dtype):
        try:
            d = as_device_array(a)
        except Exception as e:  # noqa: BLE001 - an interface numba cannot read is the caller's error
            raise TypeError(f"{name} exposes __cuda_array_interface__ but numba.cuda cannot use it: {e}") from None
        kernel_array_kind(d, name, ndim, dtype)
        if not d.is_c_contiguous():
            d = elementwise.contiguous_copy(d)
        if not self.all_finite(d):
            raise ValueError(f"{name} contains NaN or inf")
        return d

    def kernel_outputs(self, outs):
        if getattr(self._local, "device_outputs", False):
            return outs
        if isinstance(outs, tuple):
            return tuple(a.copy_to_host() for a in outs)
        return outs.copy_to_host()

    # ---- kernels ----
    def linear_forward(self, X, W, b, act):
        shape = (X.shape[0], W.shape[1])
        Z, A = cuda.device_array(shape, dtype=X.dtype), cuda.device_array(shape, dtype=X.dtype)
        gemm.linear_forward(X, W, b, act, Z, A)
        return Z, A

    def activation_backward(self, dA, Z, A, act):
        return activation_backward(dA, Z, A, act, cuda.device_array(dA.shape, dtype=dA.dtype))

    def delta_propagate(self, delta, W, Z, A, act):
        out = cuda.device_array((delta.shape[0], W.shape[0]), dtype=delta.dtype)
        gemm.delta_propagate(delta, W, Z, A, act, out)
        return out

    def weight_gradient(self, A_prev, delta, dW=None, db=None):
        K, N = A_prev.shape[1], delta.shape[1]
        G = cuda.device_array(K * N + N, dtype=delta.dtype)       # dW then db, as in the flat buffer
        gemm.weight_gradient(A_prev, delta, G, _fresh_scratch(delta.dtype))
        if dW is None:
            return G[:K * N].reshape(K, N), G[K * N:]
        dW.copy_to_device(G[:K * N].reshape(K, N))
        db.copy_to_device(G[K * N:])
        return dW, db

    def loss_and_output_grad(self, out, y, loss, reduction, sw=None):
        grad = cuda.device_array(out.shape, dtype=out.dtype)
        partials = cuda.device_array(elementwise.MAX_BLOCKS, dtype=out.dtype)
        norm, result = cuda.device_array(1, dtype=out.dtype), cuda.device_array(1, dtype=out.dtype)
        losses.loss_and_output_grad(out, y, sw, out, activations.IDENTITY, loss, reduction, grad, partials, norm,
                                    result)
        return float(result.copy_to_host()[0]), grad

    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov):
        return optimizers.update("sgd", p, g, velocity, lr, momentum, weight_decay, nesterov)

    def adam_update(self, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        return optimizers.update("adam", p, g, m, v, step, lr, beta1, beta2, eps, weight_decay)

    # ---- network level: one workspace per network (base Ops.prepared), one read-back per step ----
    def uses_fused(self, arch):
        return narrow.eligible(arch.sizes) if self.fused is None else bool(self.fused)

    def make_workspace(self, arch, capacity):
        return Workspace(arch, capacity)

    def prepare(self, state, workspace, batch):
        return Prepared(self, state, workspace, batch)

    def _forward_into(self, state, X, prep, store_all):
        P, arch, ws = state.params, state.arch, prep.workspace
        if self.uses_fused(arch) and narrow.eligible(arch.sizes):
            narrow.forward(X, P.flat, ws.plan_d, ws.buffer, arch.sizes, store_all)
        else:
            A = X
            for l, code in enumerate(arch.activations):
                gemm.linear_forward(A, P.W[l], P.b[l], code, prep.Z[l], prep.A[l])
                A = prep.A[l]
        return prep.A[-1]

    def _loss_into(self, state, X, y, sw, prep, store_all):
        """Forward, then the loss into result[0] and delta of the output layer into D[-1]."""
        arch, ws = state.arch, prep.workspace
        out = self._forward_into(state, X, prep, store_all)
        losses.loss_and_output_grad(out, y, sw, prep.Z[-1], arch.activations[-1], arch.loss, arch.reduction,
                                    prep.D[-1], ws.partials, ws.norm, ws.result)

    def _penalty(self, state, X, sw, prep, gradient):
        """The L2 term into result[0] (and its gradient into the weight gradients, after
        _backward, when `gradient`); no launch when l2 is 0."""
        if state.l2:
            ws = prep.workspace
            losses.weight_penalty(state.params.flat, state.grads.flat, ws.plan_d, state.arch.n_layers, state.l2,
                                  state.arch.reduction, X.shape[0], sw, ws.penalty_scale, ws.partials, ws.result,
                                  gradient)

    def _backward(self, state, X, prep):
        arch, P, G, ws = state.arch, state.params, state.grads, prep.workspace
        if self.uses_fused(arch) and narrow.eligible(arch.sizes):
            narrow.backward(P.flat, ws.plan_d, ws.buffer, arch.sizes, prep.m)
        else:
            for l in range(arch.n_layers - 1, 0, -1):
                gemm.delta_propagate(prep.D[l], P.W[l], prep.Z[l - 1], prep.A[l - 1], arch.activations[l - 1],
                                     prep.D[l - 1])
        gemm.weight_gradients(X, ws.buffer, ws.plan_d, ws.tiles, ws.n_tiles, G.flat, ws.scratch)

    def forward(self, state, X):
        prep = self.prepared(state, X.shape[0])
        out = self._forward_into(state, X, prep, store_all=False)
        mine = cuda.device_array(out.shape, dtype=out.dtype)
        mine.copy_to_device(out)
        return mine

    def loss(self, state, X, y, sw=None):
        prep = self.prepared(state, X.shape[0])
        self._loss_into(state, X, y, sw, prep, store_all=False)
        self._penalty(state, X, sw, prep, gradient=False)
        return float(prep.workspace.result.copy_to_host()[0])

    def loss_and_grad(self, state, X, y, sw=None):
        prep = self.prepared(state, X.shape[0])
        self._loss_into(state, X, y, sw, prep, store_all=True)
        self._backward(state, X, prep)
        self._penalty(state, X, sw, prep, gradient=True)
        return float(prep.workspace.result.copy_to_host()[0])

    def step(self, state, X, y, sw, prep, kind, args):
        """A whole training step for the optimizer `kind` with its update's arguments `args`
        (optimizers.py): forward, loss, backward, the update's test pass, the one read-back,
        then the update. -> (status, loss); nothing is written unless the status is OK."""
        self._loss_into(state, X, y, sw, prep, store_all=True)
        self._backward(state, X, prep)
        self._penalty(state, X, sw, prep, gradient=True)
        ws = prep.workspace
        optimizers.test(kind, ws.flags, *args)
        loss, gradient_finite, update_finite = (float(v) for v in ws.result.copy_to_host())
        if not (math.isfinite(loss) and gradient_finite == 1.0):
            return NONFINITE, loss
        if update_finite != 1.0:
            return OVERFLOW, loss
        optimizers.write(kind, ws.flags, *args)
        return OK, loss

    def gradient_pass(self, state, X, y, sw=None):
        prep = self.prepared(state, X.shape[0])
        self._loss_into(state, X, y, sw, prep, store_all=True)
        self._backward(state, X, prep)
        self._penalty(state, X, sw, prep, gradient=True)
        result = prep.workspace.result
        elementwise.flag_nonfinite(state.grads.flat, result, 1)
        loss, finite = (float(v) for v in result.copy_to_host()[:2])      # the one read-back
        return (OK if math.isfinite(loss) and finite == 1.0 else NONFINITE), loss


ops = CudaOps()
