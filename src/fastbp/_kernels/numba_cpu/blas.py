"""The BLAS the Numba kernels call for their large products: NumPy's own OpenBLAS.

np.dot inside njit calls SciPy's OpenBLAS (scipy.linalg.cython_blas, LP64), a second
OpenBLAS with its own busy-waiting thread pool beside NumPy's (scipy-openblas64, ILP64,
which NumPy, the reference and the Cython backend use). With 2 threads on 2 cores the two
pools fight (bench/results/threads.md). So the kernels call NumPy's cblas_sgemm/cblas_dgemm directly: `gemm_address(dtype)` finds the
function once (ctypes on NumPy's core extension, whose dependencies dlsym searches) and
checks it on a small product; the compiled code gets the address as an int64 ARGUMENT
(in the step plan, or passed to the kernels) and calls it through `_cblas_gemm`, an
intrinsic that casts it to a function pointer. An address held as a global would make
every caller uncacheable ("dynamic globals"); an argument keeps cache=True working.

When no usable symbol is found (another NumPy build, FASTBP_NUMBA_BLAS=scipy), the address
is 0 and `gemm` reports False: the kernels fall back to np.dot (SciPy's BLAS).
"""
import ctypes
import os

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112       # OpenBLAS cblas.h: CBLAS_ORDER, CBLAS_TRANSPOSE
# gemm's trans_a, trans_b for the compiled callers, as NumPy bools: Numba types a Python bool
# constant argument as a literal, and would compile gemm and gemm_into once per combination
PLAIN, TRANSPOSED = np.bool_(False), np.bool_(True)

# (sgemm, dgemm) cblas names with 64-bit integers (blasint = int64): scipy-openblas64
# prefixes "scipy_" and suffixes "64_"; a plain OpenBLAS INTERFACE64 build suffixes "64_".
_SYMBOLS = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"), ("cblas_sgemm64_", "cblas_dgemm64_"))

_found = None        # (description, {dtype: address}) once looked for


@intrinsic
def _cblas_gemm(typingctx, addr, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc):
    """cblas_?gemm(RowMajor, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
    through the function at `addr` (64-bit integers; alpha, beta: any floats, passed in C's
    dtype). A, B, C: arrays of one float dtype."""
    arrays = (A, B, C)
    if not all(isinstance(a, types.Array) for a in arrays):
        return None
    dtype = C.dtype
    if dtype not in (types.float32, types.float64) or A.dtype != dtype or B.dtype != dtype:
        return None
    i64 = types.int64
    if not (isinstance(alpha, types.Float) and isinstance(beta, types.Float)):
        return None
    sig = types.void(i64, i64, i64, i64, i64, i64, alpha, A, i64, B, i64, beta, C, i64)

    def codegen(context, builder, signature, args):
        addr_v, ta, tb, m, n, k, alpha_v, a, lda_v, b, ldb_v, beta_v, c, ldc_v = args
        real = context.get_value_type(dtype)
        ptr = real.as_pointer()
        l32, l64 = ir.IntType(32), ir.IntType(64)
        fnty = ir.FunctionType(ir.VoidType(), [l32, l32, l32, l64, l64, l64, real, ptr, l64, ptr, l64,
                                               real, ptr, l64])
        fn = builder.inttoptr(addr_v, fnty.as_pointer())

        def data(aty, val):
            return builder.bitcast(context.make_array(aty)(context, builder, val).data, ptr)

        def scalar(v, ty):
            return context.cast(builder, v, ty, dtype)

        builder.call(fn, [ir.Constant(l32, ROW_MAJOR), builder.trunc(ta, l32), builder.trunc(tb, l32), m, n, k,
                          scalar(alpha_v, alpha), data(A, a), lda_v, data(B, b), ldb_v,
                          scalar(beta_v, beta), data(C, c), ldc_v])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _leading(A):
    """A's row stride in elements as BLAS takes it, or -1 when BLAS cannot read A as it is
    (elements of a row not adjacent, rows not a whole number of elements apart)."""
    rows, cols = A.shape
    item = A.itemsize
    if cols > 1 and A.strides[1] != item:
        return -1
    if rows <= 1:
        return max(cols, 1)
    s = A.strides[0]
    if s <= 0 or s % item:
        return -1
    ld = s // item
    return ld if ld >= cols else -1


@njit(cache=True, nogil=True)
def gemm(addr, trans_a, trans_b, A, B, C):
    """C = op(A) @ op(B) (op(X) = X.T when trans_x) through the cblas gemm at `addr`
    (gemm_address). -> False, C untouched, when addr is 0 or an operand's layout does not
    suit BLAS: the caller then computes C itself."""
    return gemm_into(addr, trans_a, trans_b, 1.0, A, B, 0.0, C)


@njit(cache=True, nogil=True)
def gemm_into(addr, trans_a, trans_b, alpha, A, B, beta, C):
    """C = alpha * op(A) @ op(B) + beta * C (beta 0: C is only written), as `gemm`."""
    if addr == 0:
        return False
    M, N = C.shape
    K = A.shape[0] if trans_a else A.shape[1]
    lda, ldb, ldc = _leading(A), _leading(B), _leading(C)
    if lda < 0 or ldb < 0 or ldc < 0 or M == 0 or N == 0 or K == 0:
        return False
    _cblas_gemm(addr, TRANS if trans_a else NO_TRANS, TRANS if trans_b else NO_TRANS,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
    return True


def _self_test(s_addr, d_addr):
    """A 2x3 @ 3x2 product, plain and with both operands transposed, through ctypes."""
    i32, i64 = ctypes.c_int32, ctypes.c_int64
    for addr, real, dtype in ((s_addr, ctypes.c_float, np.float32), (d_addr, ctypes.c_double, np.float64)):
        proto = ctypes.CFUNCTYPE(None, i32, i32, i32, i64, i64, i64, real, ctypes.c_void_p, i64,
                                 ctypes.c_void_p, i64, real, ctypes.c_void_p, i64)
        fn = proto(addr)
        A = np.arange(6, dtype=dtype).reshape(2, 3)
        B = (np.arange(6, dtype=dtype) - 2).reshape(3, 2)
        C = np.full((2, 2), np.nan, dtype)
        fn(ROW_MAJOR, NO_TRANS, NO_TRANS, 2, 2, 3, 1.0, A.ctypes.data, 3, B.ctypes.data, 2, 0.0, C.ctypes.data, 2)
        if not np.array_equal(C, A @ B):
            return False
        At, Bt = np.ascontiguousarray(A.T), np.ascontiguousarray(B.T)
        fn(ROW_MAJOR, TRANS, TRANS, 2, 2, 3, 1.0, At.ctypes.data, 2, Bt.ctypes.data, 3, 0.0, C.ctypes.data, 2)
        if not np.array_equal(C, A @ B):
            return False
    return True


def _find():
    if os.environ.get("FASTBP_NUMBA_BLAS", "").strip().lower() == "scipy":
        return "SciPy's BLAS (np.dot in njit; FASTBP_NUMBA_BLAS=scipy)", {}
    try:
        from numpy._core import _multiarray_umath as core
    except ImportError:                      # NumPy 1.x
        from numpy.core import _multiarray_umath as core
    try:
        lib = ctypes.CDLL(core.__file__)     # already loaded: dlsym searches its dependencies too
    except OSError as e:
        return f"SciPy's BLAS (np.dot in njit; NumPy's could not be opened: {e})", {}
    for s_name, d_name in _SYMBOLS:
        try:
            s_addr = ctypes.cast(getattr(lib, s_name), ctypes.c_void_p).value
            d_addr = ctypes.cast(getattr(lib, d_name), ctypes.c_void_p).value
        except AttributeError:
            continue
        if s_addr and d_addr and _self_test(s_addr, d_addr):
            return (f"NumPy's BLAS ({s_name}, ILP64)",
                    {np.dtype(np.float32): s_addr, np.dtype(np.float64): d_addr})
    return "SciPy's BLAS (np.dot in njit; no 64-bit cblas gemm found in NumPy's)", {}


def _lookup():
    global _found
    if _found is None:
        _found = _find()
    return _found


def gemm_address(dtype):
    """The address of NumPy's cblas gemm for `dtype` (float32/float64), 0 when there is none."""
    return _lookup()[1].get(np.dtype(dtype), 0)


def provider():
    """Which BLAS the Numba kernels call, in words."""
    return _lookup()[0]
