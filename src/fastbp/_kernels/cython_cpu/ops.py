"""The Cython CPU backend: BLAS GEMMs with fused epilogues, compiled at install time.

The compiled code is in _cython_kernels.pyx (kernels, elementwise passes, the one-call
network step), _cy_activations.pxd (scalar activations) and _cy_blas.pyx (which BLAS, and
row-major GEMM through it). This module is the `Ops` face of it: the public kernels
allocate their outputs here and call one compiled function each; forward / loss /
loss_and_grad / train_step run ONE compiled call per step over the flat parameter,
gradient and optimizer-state buffers and a workspace kept in `state.scratch`.

Nothing here imports Numba or SciPy (SciPy's BLAS is loaded only when NumPy's cannot be
found or FASTBP_CYTHON_BLAS=scipy asks for it).

Workspace layout (one flat array of the network's dtype, allocated for `capacity` rows and
reused, prefix-wise, by every batch up to that size; grown when a larger batch comes):
for each layer, Z (capacity x n_out) and, when the activation's derivative needs Z (elu,
softplus, gelu, silu), A beside it; otherwise A is written over Z. Then two delta
buffers of capacity x widest layer, used in turn going backwards.

BLAS: NumPy's OpenBLAS (scipy-openblas64 0.3.31, found with dlsym, already loaded) is used
rather than SciPy's (0.3.30 via scipy.linalg.cython_blas, whose import alone costs 0.1-0.3 s).
Measured through these kernels, float32, one thread, thread CPU time, 15 interleaved rounds
(`OPENBLAS_NUM_THREADS=1 python bench/cython_blas_compare.py 15 --cpu-time`; shared 2-core
AMD EPYC, load 15-20 from other engineers' jobs), GFLOP/s NumPy's / SciPy's:
    wide-1024   X@W 256x1024x1024 73.1/68.6, A.T@D 77.0/68.4, D@W.T 72.6/67.0; train_step 75.5/70.9
    mnist-b256  X@W 256x784x256 64.4/54.6, A.T@D 57.9/55.1, D@W.T(256) 68.6/48.3,
                the 10-wide layer 12-18/8-14; train_step 67.4/59.5
so NumPy's is 5-15% faster on every shape. FASTBP_CYTHON_BLAS=scipy selects SciPy's.

Threads: the GEMMs use the BLAS's own threads (threadpoolctl / OPENBLAS_NUM_THREADS limit
them). On a machine whose cores are shared with other busy processes, OpenBLAS's per-GEMM
fork/join stalls: mnist-b256 measured 30 ms/step with 2 threads vs 12 ms with 1 at load ~6
on 2 cores (4.7 ms of CPU). Limit the BLAS to one thread there.
"""
import numpy as np

from ... import activations, losses
from ...optim import SGD, Adam
from ..base import Ops

try:
    from . import blas as _cy_blas
    from . import kernels as _k
    _IMPORT_ERROR = None
except ImportError as e:           # not built (no compiler at install time), or built for another Python
    _k = _cy_blas = None
    _IMPORT_ERROR = e

MODE = OPTIMIZER = TRAIN = OPT_SGD = OPT_ADAM = None
NO_UPDATE = 0
if _k is not None:
    _codes = _k.codes()
    MODE, OPTIMIZER = _codes["modes"], _codes["optimizers"]
    NO_UPDATE = OPTIMIZER["none"]
    TRAIN, OPT_SGD, OPT_ADAM = MODE["train"], OPTIMIZER["sgd"], OPTIMIZER["adam"]


def _codes_match():
    """The codes compiled into the extension are fastbp's (the kernel ABI)."""
    return (_codes["activations"] == activations.CODES and _codes["losses"] == losses.CODES
            and _codes["reductions"] == losses.REDUCTION_CODES)


def available():
    if _k is None:
        return False, (f"the Cython extension was not built or does not load ({_IMPORT_ERROR}); "
                       f"reinstall with a C compiler available: pip install --force-reinstall fastbp")
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


class Workspace:
    """Activations and deltas for batches of up to `capacity` rows, and the plan that says
    where each layer's pieces are (in _cython_kernels.network_step's format)."""

    def __init__(self, arch, capacity):
        self.capacity = capacity
        plan, at = [], 0
        for (n_in, n_out), (w_at, b_at), code in zip(arch.shapes, arch.offsets, arch.activations):
            z_at = at
            at += capacity * n_out
            a_at = z_at
            if _k.keeps_z(code):
                a_at = at
                at += capacity * n_out
            plan.append((n_in, n_out, code, w_at, b_at, z_at, a_at, at))    # then the layer's delta
            at += capacity * n_out
        self.buffer = np.empty(at, dtype=arch.dtype)
        self.plan = np.array(plan, dtype=np.intp).reshape(-1)
        self.out_at, self.n_out = plan[-1][6], arch.sizes[-1]
        self.step = _k.network_step_f32 if arch.dtype == np.float32 else _k.network_step_f64

    def output(self, batch):
        """A copy of the last forward pass's output (batch, n_out)."""
        return self.buffer[self.out_at:self.out_at + batch * self.n_out].reshape(batch, self.n_out).copy()


class CythonOps(Ops):
    name = "cython"
    # train_step checks X and y for NaN/inf inside its compiled call, before anything is
    # written (ValueError naming the argument), so the model boundary may skip that pass.
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

    def loss_and_output_grad(self, out, y, loss, reduction):
        grad = np.empty_like(out)
        total = _k.loss_and_output_grad(out, y, grad, loss, reduction)
        return float(total), grad

    def sgd_update(self, p, g, velocity, lr, momentum, weight_decay, nesterov):
        _k.sgd_update(p, g, velocity, lr, momentum, weight_decay, nesterov)

    def adam_update(self, p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        _k.adam_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay)

    def all_finite(self, a):
        return bool(_k.all_finite(np.ascontiguousarray(a).reshape(-1)))

    # ---- network level: one compiled call per step ----
    def workspace(self, state, batch):
        """The state's workspace, allocated once and grown only for a larger batch."""
        ws = state.scratch.get("cython")
        if ws is None or ws.capacity < batch:
            ws = state.scratch["cython"] = Workspace(state.arch, batch)
        return ws

    def _run(self, mode, state, X, y, optimizer=NO_UPDATE, s1=None, s2=None,
             step=0, lr=0.0, h1=0.0, h2=0.0, h3=0.0, h4=0.0, check_inputs=False):
        X = np.ascontiguousarray(X)
        ws = self.workspace(state, X.shape[0])
        grads = state.grads.flat
        return ws, ws.step(mode, state.params.flat, grads, X, y, ws.buffer, ws.plan,
                           state.arch.loss, state.arch.reduction, optimizer,
                           grads if s1 is None else s1, grads if s2 is None else s2,
                           step, lr, h1, h2, h3, h4, check_inputs)

    def forward(self, state, X):
        ws, _ = self._run(MODE["forward"], state, X, None)
        return ws.output(X.shape[0])

    def loss(self, state, X, y):
        return float(self._run(MODE["loss"], state, X, y)[1])

    def loss_and_grad(self, state, X, y):
        return float(self._run(MODE["gradient"], state, X, y)[1])

    def train_step(self, state, X, y, optimizer):
        """Forward, backward, finiteness check and update in one compiled call. The Python
        here is the whole per-step overhead on tiny networks: look-ups only. X, y come from
        the model boundary (C-contiguous, the network's dtype; the compiled call re-checks
        what it relies on); the hyper-parameters are read from the optimizer every step."""
        kind = type(optimizer)
        if kind is not SGD and kind is not Adam:       # a subclass may change the update
            for name, a in (("X", X), ("y", y)):
                if a.dtype.kind == "f" and not self.all_finite(a):
                    raise ValueError(f"{name} contains NaN or inf")
            return super().train_step(state, X, y, optimizer)
        ws = state.scratch.get("cython")
        if ws is None or ws.capacity < X.shape[0]:
            ws = self.workspace(state, X.shape[0])
        fresh = optimizer._binding is None
        if fresh:
            optimizer.bind(self, state.params.flat)
        step = optimizer.step_count + 1
        arch = state.arch
        try:
            if kind is SGD:
                v = optimizer.state["velocity"]
                loss = ws.step(TRAIN, state.params.flat, state.grads.flat, X, y, ws.buffer, ws.plan,
                               arch.loss, arch.reduction, OPT_SGD, v, v, step, optimizer.lr,
                               optimizer.momentum, optimizer.weight_decay, float(optimizer.nesterov), 0.0, True)
            else:
                beta1, beta2 = optimizer.betas
                loss = ws.step(TRAIN, state.params.flat, state.grads.flat, X, y, ws.buffer, ws.plan,
                               arch.loss, arch.reduction, OPT_ADAM, optimizer.state["m"],
                               optimizer.state["v"], step, optimizer.lr, beta1, beta2, optimizer.eps,
                               optimizer.weight_decay, True)
        except BaseException:
            if fresh:       # a rejected first step leaves the optimizer unbound, as it was
                optimizer.unbind()
            raise
        optimizer.step_count = step
        return loss


ops = CythonOps()
