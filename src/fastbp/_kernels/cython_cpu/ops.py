"""The Cython CPU backend's face: BLAS GEMMs with fused epilogues, compiled at install time.

The compiled code is kernels.pyx (built from the .pxd parts beside it) and blas.pyx (which
BLAS, and row-major GEMM through it). The public kernels allocate their outputs here and
call one compiled function each; the network passes run ONE compiled call per step over the
flat parameter, gradient and optimizer-state buffers and the workspace and plan that the
base Ops keeps per network (plan.py).

Nothing here imports Numba or SciPy (SciPy's BLAS is loaded only when NumPy's cannot be
found or FASTBP_CYTHON_BLAS=scipy asks for it). NumPy's OpenBLAS is the default: already
loaded, and faster through these kernels (bench/results/cython-blas.md).

Threads: the GEMMs use the BLAS's own threads (threadpoolctl / OPENBLAS_NUM_THREADS limit
them); where the cores are shared with other busy processes, one BLAS thread is the stable
choice (bench/results/threads.md).
"""
import numpy as np

from ... import activations, losses
from ..base import Ops
from ..plan import NONFINITE, WS_SIZE, layer_field, make_plan, status_error
from ..plan import A_AT as _A_AT

try:
    from . import blas as _cy_blas
    from . import kernels as _k
    _IMPORT_ERROR = None
except ImportError as e:           # not built (no compiler at install time), or built for another Python
    _k = _cy_blas = None
    _IMPORT_ERROR = e

MODE = _k.codes()["modes"] if _k is not None else {}


def _codes_match():
    """The codes compiled into the extension are fastbp's (the kernel ABI)."""
    codes = _k.codes()
    return (codes["activations"] == activations.CODES and codes["losses"] == losses.CODES
            and codes["reductions"] == losses.REDUCTION_CODES)


def available():
    if _k is None:
        from ..._build_status import cython_missing
        return False, cython_missing(_IMPORT_ERROR)
    name, description = _cy_blas.provider()
    if name is None:
        return False, f"no BLAS reachable from Cython: {description}"
    if not _codes_match():
        return False, "the Cython extension was built from other activation/loss codes; rebuild it"
    return True, ""


def build_info():
    """One line for `fastbp info`: the BLAS in use and whether OpenMP was compiled in."""
    if _k is None:
        return f"not built ({_IMPORT_ERROR})"
    with_openmp, threads = _k.openmp()
    omp = (f"OpenMP compiled in ({threads} threads, for elementwise passes over >= "
           f"{_k.get_parallel_min():,} elements; FASTBP_CYTHON_PARALLEL_MIN)" if with_openmp
           else "built without OpenMP: elementwise passes run on one thread")
    return f"{_cy_blas.provider()[1]}; {omp}"


def activation_info():
    """One line for `fastbp info`: the instruction-set path the activation loops run on."""
    name, description = _k.activation_path()
    usable = ", ".join(path for path, _ in _k.activation_paths())
    return f"{description} loops ({name!r}, chosen at import from those this CPU runs: {usable})"


class CythonOps(Ops):
    name = "cython"
    checks_finite = True

    # ---- kernels: outputs allocated here, one compiled call each ----
    def linear_forward(self, X, W, b, act):
        Z = np.empty((X.shape[0], W.shape[1]), dtype=X.dtype)
        A = np.empty_like(Z)
        _k.linear_forward(X, W, b, Z, A, act)
        return Z, A

    def activation_backward(self, dA, Z, A, act):
        dZ = np.array(dA, copy=True)
        _k.activation_backward(dZ, Z, A, act)
        return dZ

    def delta_propagate(self, delta, W, Z, A, act):
        out = np.empty((delta.shape[0], W.shape[0]), dtype=delta.dtype)
        _k.delta_propagate(delta, W, Z, A, out, act)
        return out

    def weight_gradient(self, A_prev, delta, dW=None, db=None):
        if dW is None:
            dW = np.empty((A_prev.shape[1], delta.shape[1]), dtype=delta.dtype)
            db = np.empty(delta.shape[1], dtype=delta.dtype)
        _k.weight_gradient(A_prev, delta, dW, db)
        return dW, db

    def loss_and_output_grad(self, out, y, loss, reduction, sw=None):
        grad = np.empty_like(out)
        total = _k.loss_and_output_grad(out, y, grad, loss, reduction, sw)
        return float(total), grad

    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov):
        return _k.sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov)

    def adam_update(self, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        return _k.adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay)

    def all_finite(self, a):
        return bool(_k.all_finite(np.ascontiguousarray(a).reshape(-1)))

    # ---- network level: one compiled call per step ----
    def make_workspace(self, arch, capacity):
        return Workspace(arch, capacity)

    def prepare(self, state, workspace, batch):
        return Prepared(state, workspace)

    def forward(self, state, X):
        X = np.ascontiguousarray(X)
        prep = self.prepared(state, X.shape[0])
        status, _ = prep.pass_(MODE["forward"], X, None, None, False)
        if status:
            raise status_error(status)
        return prep.workspace.output(X.shape[0])

    def loss(self, state, X, y, sw=None):
        X = np.ascontiguousarray(X)
        status, loss = self.prepared(state, X.shape[0]).pass_(MODE["loss"], X, y, sw, False)
        if status:
            raise status_error(status, loss)
        return float(loss)

    def loss_and_grad(self, state, X, y, sw=None):
        X = np.ascontiguousarray(X)
        status, loss = self.prepared(state, X.shape[0]).pass_(MODE["gradient"], X, y, sw, False)
        if status and status != NONFINITE:
            raise status_error(status, loss)
        return float(loss)

    def gradient_pass(self, state, X, y, sw=None):
        X = np.ascontiguousarray(X)
        status, loss = self.prepared(state, X.shape[0]).pass_(MODE["gradient"], X, y, sw, True)
        return status, float(loss)


class Workspace:
    """The network's workspace for batches of up to `capacity` rows, and its plan."""

    def __init__(self, arch, capacity):
        self.capacity = capacity
        self.plan = make_plan(arch, capacity)
        self.buffer = np.empty(int(self.plan[WS_SIZE]), dtype=arch.dtype)
        self.out_at, self.n_out = layer_field(self.plan, arch.n_layers - 1, _A_AT), arch.sizes[-1]

    def output(self, batch):
        """A copy of the last forward pass's output (batch, n_out)."""
        return self.buffer[self.out_at:self.out_at + batch * self.n_out].reshape(batch, self.n_out).copy()


class Prepared:
    """The compiled calls bound to the network's buffers and workspace: `pass_(mode, X, y,
    sw, check)` and `steps`, the whole training steps by optimizer kind (Ops.train_step). X, y
    come from the model boundary (C-contiguous, the network's dtype; the compiled call
    re-checks what it relies on); the hyper-parameters are read from the optimizer on every
    step (a user may change opt.lr between steps)."""

    def __init__(self, state, workspace):
        self.workspace = workspace
        params, grads, ws, plan = state.params.flat, state.grads.flat, workspace.buffer, workspace.plan
        network_pass, sgd, adam = _k.network_pass, _k.sgd_step, _k.adam_step

        def pass_(mode, X, y, sw, check):
            return network_pass(mode, params, grads, X, y, sw, ws, plan, check, state.l2)

        def sgd_step(X, y, sw, opt):
            return sgd(params, grads, X, y, sw, ws, plan, opt.state["velocity"], opt.lr, opt.momentum,
                       opt.weight_decay, opt.nesterov, state.l2)

        def adam_step(X, y, sw, opt):
            beta1, beta2 = opt.betas
            moments = opt.state
            return adam(params, grads, X, y, sw, ws, plan, moments["m"], moments["v"], opt.step_count + 1, opt.lr,
                        beta1, beta2, opt.eps, opt.weight_decay, state.l2)

        self.pass_ = pass_
        self.steps = {"sgd": sgd_step, "adam": adam_step}


ops = CythonOps()
