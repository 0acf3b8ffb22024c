"""The plan: where a network's pieces lie, computed once per network and workspace capacity,
in the one format the compiled CPU backends read (llm.c's layout with named fields), and the
status codes their compiled calls return.

A plan is an np.intp array: a header, then FIELDS entries per layer, read through the named
indices below (Numba takes them as compile-time constants; Cython from plan.pxd, which
cython_cpu/generate.py writes from this file).

    header    LOSS, REDUCTION: codes (fastbp.losses); N_LAYERS; CAPACITY: the batch rows the
              workspace holds; N_PARAMS; WS_SIZE: the workspace's length in elements;
              TMP_AT, ACC_AT: the scratch below; BLAS: the address of the cblas gemm the Numba
              kernels call (numba_cpu/blas.py; 0: none)
    layer l   N_IN, N_OUT; ACT: the activation code; W_AT, B_AT: where W[l] (n_in x n_out) and
              b[l] start in the flat parameter and gradient buffers; Z_AT, A_AT, D_AT: where
              Z, A = f(Z) and delta = dLoss/dZ start in the workspace, each CAPACITY x N_OUT
              row-major (a batch of m rows uses the first m rows)

The workspace is one flat array of the network's dtype: per layer Z, then A (with
`share_za`, A is written over Z where the activation's derivative needs only A,
activations.TABLE[code].from_output: A_AT == Z_AT), then delta; with `scratch`, room for a
transposed weight matrix (TMP_AT, the largest n_in * n_out) and a float64 accumulator as
long as the widest layer (ACC_AT, 8-byte aligned). The CPU backends keep A apart: their
compilers vectorize a[i] = f(z[i]) only where a and z are known not to overlap (in place,
the loops ran scalar: 7-10x slower for tanh and sigmoid under Numba, 4-10% of a Cython step).
"""
import numpy as np

from .. import activations

HEADER_FIELDS = ("LOSS", "REDUCTION", "N_LAYERS", "CAPACITY", "N_PARAMS", "WS_SIZE", "TMP_AT", "ACC_AT", "BLAS")
LAYER_FIELDS = ("N_IN", "N_OUT", "ACT", "W_AT", "B_AT", "Z_AT", "A_AT", "D_AT")
LOSS, REDUCTION, N_LAYERS, CAPACITY, N_PARAMS, WS_SIZE, TMP_AT, ACC_AT, BLAS = range(len(HEADER_FIELDS))
N_IN, N_OUT, ACT, W_AT, B_AT, Z_AT, A_AT, D_AT = range(len(LAYER_FIELDS))
HEADER, FIELDS = len(HEADER_FIELDS), len(LAYER_FIELDS)

# what a compiled call returns with its result: nothing is written to the parameters or the
# optimizer state unless it is OK, and nothing at all on BAD_X, BAD_Y or BAD_PLAN. NONFINITE:
# the loss or a gradient is NaN/inf; OVERFLOW: both are finite, but the update would make a
# parameter or an optimizer state value non-finite (learning rate x gradient beyond the dtype)
STATUSES = ("OK", "BAD_X", "BAD_Y", "NONFINITE", "BAD_PLAN", "OVERFLOW")
OK, BAD_X, BAD_Y, NONFINITE, BAD_PLAN, OVERFLOW = range(len(STATUSES))


def make_plan(arch, capacity, share_za=False, scratch=False, blas=0):
    """-> the plan (np.intp array) of `arch` for a workspace of `capacity` rows."""
    rows, at = [], 0
    for (n_in, n_out), (w_at, b_at), code in zip(arch.shapes, arch.offsets, arch.activations):
        z_at = at
        at += capacity * n_out
        a_at = z_at
        if not (share_za and activations.TABLE[code].from_output):
            a_at, at = at, at + capacity * n_out
        rows += [n_in, n_out, code, w_at, b_at, z_at, a_at, at]
        at += capacity * n_out
    tmp_at = acc_at = size = at
    if scratch:
        acc_at = tmp_at + max(a * b for a, b in arch.shapes)
        acc_at += acc_at % 2                    # 8-byte aligned float64 in a float32 workspace
        size = acc_at + max(arch.sizes[1:]) * (8 // arch.dtype.itemsize)
    header = [arch.loss, arch.reduction, arch.n_layers, capacity, arch.n_params, size, tmp_at, acc_at, blas]
    return np.array(header + rows, dtype=np.intp)


def layer_field(plan, l, field):
    """plan's `field` (an index above) of layer l."""
    return int(plan[HEADER + l * FIELDS + field])


def status_error(status, loss=None):
    """The exception a non-OK status stands for."""
    if status == BAD_X:
        return ValueError("X contains NaN or inf")
    if status == BAD_Y:
        return ValueError("y contains NaN or inf")
    if status == NONFINITE:
        return FloatingPointError(f"non-finite loss ({loss}) or gradient; parameters left unchanged")
    if status == OVERFLOW:
        return FloatingPointError("the update would make the parameters or the optimizer state non-finite (the "
                                  "learning rate times the gradient is beyond the dtype's range); parameters and "
                                  "optimizer state left unchanged")
    if status == BAD_PLAN:      # a caller bypassed the checked boundary
        return ValueError("the arrays do not match the network's shapes and workspace")
    return RuntimeError(f"unknown status {status} from a compiled call")
