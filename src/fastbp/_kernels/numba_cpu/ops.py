"""The Numba CPU backend's face: the kernels of docs/design.md and the one-call network passes.

Each method runs one compiled function (the modules beside this one); everything compiles
on first use and is cached on disk (cache=True); importing compiles nothing. The network
passes run over the workspace and plan that the base Ops keeps per network (plan.py), with
the entry points chosen once per batch size (`Prepared`): tiny networks (step.is_flat) run
a view-free pass, the others views of the flat buffers with BLAS for the large products.
X and y are checked for NaN/inf inside the compiled call (`checks_finite`), and a bad input
or a non-finite loss/gradient is reported before anything is written. Plain SGD (momentum
0) updates each W inside its weight-gradient GEMM (step._sgd_pass), so that step leaves no
gradient behind.

Threads: no prange loop; the only parallelism is BLAS's (NumPy's own OpenBLAS through
blas.gemm, limited by fastbp.set_num_threads). One BLAS thread is the stable choice where
the cores are shared: bench/results/threads.md.

Developers: Numba's on-disk cache is keyed on each function's own file, not on the files it
calls. After editing fastbp/activations.py or a module here, delete the cache
($NUMBA_CACHE_DIR, or numba_cpu/__pycache__/*.nbi, *.nbc); an install rewrites every file,
so users are not affected.
"""
import numpy as np

from ... import losses
from ..base import Ops
from ..plan import NONFINITE, WS_SIZE, make_plan, status_error
from . import layers, step
from .step import UNBOUNDED, view_sgd, view_sgd_stored
from .blas import gemm_address
from .checks import nonfinite_count
from .losses import loss_and_output_grad
from .optimizers import adam_update, sgd_update

_NO_LABELS = np.zeros(0, dtype=np.intp)
_NO_TARGETS = {np.dtype(np.float32): np.zeros((0, 0), np.float32),
               np.dtype(np.float64): np.zeros((0, 0), np.float64)}
_NO_WEIGHTS = {np.dtype(np.float32): np.zeros(0, np.float32),      # sw=None: one compiled signature
               np.dtype(np.float64): np.zeros(0, np.float64)}


class NumbaOps(Ops):
    name = "numba"
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

    def loss_and_output_grad(self, out, y, loss, reduction, sw=None):
        sw = _NO_WEIGHTS[out.dtype] if sw is None else sw
        if loss == losses.CROSS_ENTROPY:
            total, grad = loss_and_output_grad(out, _NO_TARGETS[out.dtype], y, sw, loss, reduction)
        else:
            total, grad = loss_and_output_grad(out, y, _NO_LABELS, sw, loss, reduction)
        return float(total), grad

    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov):
        return sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov)

    def adam_update(self, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        return adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay)

    def all_finite(self, a):
        return not nonfinite_count(a)

    # ---- network level: one compiled call each ----
    def make_workspace(self, arch, capacity):
        return Workspace(arch, capacity)

    def prepare(self, state, workspace, batch):
        return Prepared(state, workspace, batch)

    def forward(self, state, X):
        ws = self.prepared(state, X.shape[0]).workspace
        status, out = step.forward(X, state.params.flat, ws.buffer, ws.plan)
        if status:
            raise status_error(status)
        return out

    def loss(self, state, X, y, sw=None):
        status, loss = self.prepared(state, X.shape[0]).pass_(step.MODE_LOSS, X, y, sw)
        if status:
            raise status_error(status, loss)
        return loss

    def loss_and_grad(self, state, X, y, sw=None):
        status, loss = self.gradient_pass(state, X, y, sw)
        if status and status != NONFINITE:
            raise status_error(status, loss)
        return loss

    def gradient_pass(self, state, X, y, sw=None):
        return self.prepared(state, X.shape[0]).pass_(step.MODE_GRAD, X, y, sw)


class Workspace:
    """The network's workspace for batches of up to `capacity` rows, and its plan."""

    def __init__(self, arch, capacity):
        self.capacity = capacity
        self.plan = make_plan(arch, capacity, scratch=True, blas=gemm_address(arch.dtype))
        self.buffer = np.empty(int(self.plan[WS_SIZE]), dtype=arch.dtype)


class Prepared:
    """The compiled entry points for batches of one size (view-free for tiny networks), bound
    to the network's buffers and workspace: `pass_(mode, X, y, sw)` and `steps`, the whole
    training steps by optimizer kind (Ops.train_step). The hyper-parameters are read from
    the optimizer on every step (a user may change opt.lr between steps)."""

    def __init__(self, state, workspace, batch):
        self.workspace = workspace
        self.flat = flat = step.is_flat(state.arch, batch)
        loss_pass, sgd, adam = ((step.flat_loss, step.flat_sgd, step.flat_adam) if flat
                                else (step.view_loss, step.view_momentum, step.view_adam))
        params, grads, ws, plan = state.params.flat, state.grads.flat, workspace.buffer, workspace.plan
        no_weights = _NO_WEIGHTS[params.dtype]

        def pass_(mode, X, y, sw):
            return loss_pass(mode, X, y, no_weights if sw is None else sw, params, grads, ws, plan, state.l2)

        def sgd_step(X, y, sw, opt):
            return sgd(X, y, no_weights if sw is None else sw, params, grads, ws, plan, state.l2,
                       opt.state["velocity"], opt.lr, opt.momentum, opt.weight_decay, opt.nesterov)

        def view_sgd_step(X, y, sw, opt):
            """Plain SGD on the view pass: its own entry point, which compiles only what it runs."""
            if opt.momentum != 0:
                return sgd_step(X, y, sw, opt)
            weights = no_weights if sw is None else sw
            status, loss = view_sgd(X, y, weights, params, grads, ws, plan, state.l2,
                                    opt.state["velocity"], opt.lr, opt.weight_decay)
            if status == UNBOUNDED:
                status = view_sgd_stored(X, weights, params, grads, ws, plan, state.l2, opt.lr,
                                         opt.weight_decay)
            return status, loss

        def adam_step(X, y, sw, opt):
            beta1, beta2 = opt.betas
            moments = opt.state
            return adam(X, y, no_weights if sw is None else sw, params, grads, ws, plan, state.l2,
                        moments["m"], moments["v"], opt.step_count + 1, opt.lr, beta1, beta2, opt.eps,
                        opt.weight_decay)

        self.pass_ = pass_
        self.steps = {"sgd": sgd_step if flat else view_sgd_step, "adam": adam_step}


def available():
    try:
        import numba  # noqa: F401
    except ImportError as e:      # pragma: no cover - numba is a hard dependency
        return False, f"numba is not installed ({e})"
    return True, ""


ops = NumbaOps()
