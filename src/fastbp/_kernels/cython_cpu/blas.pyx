# cython: language_level=3
"""Which BLAS the Cython kernels call, and the row-major GEMM wrappers they call it through.

Two OpenBLAS builds are in every fastbp process: NumPy's (scipy-openblas64, ILP64, loaded
with NumPy) and SciPy's (scipy-openblas32, reached through scipy.linalg.cython_blas). The
kernels take NumPy's when its symbols can be found, because it is already loaded (importing
scipy.linalg would slow a first step) and it was
measured at least as fast on the shapes fastbp runs (bench/results/cython-blas.md). SciPy's
is the fallback, and either can be chosen with FASTBP_CYTHON_BLAS=numpy|scipy or use().

Both are called through their Fortran interfaces. A row-major C = op(A) op(B) is the
column-major C^T = op(B)^T op(A)^T, so the wrappers swap the operands, never copy.
"""
import os

from libc.stdint cimport int64_t
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_GetName

cdef extern from *:
    """
    #if defined(_WIN32)   /* no dlopen: NumPy's BLAS is not looked for, SciPy's is used */
    static void* fastbp_dlopen(const char* path, int flags) { (void)path; (void)flags; return 0; }
    static void* fastbp_dlsym(void* handle, const char* name) { (void)handle; (void)name; return 0; }
    #define FASTBP_RTLD_FLAGS 0
    #else
    #include <dlfcn.h>
    #define fastbp_dlopen dlopen
    #define fastbp_dlsym dlsym
    #define FASTBP_RTLD_FLAGS (RTLD_LAZY | RTLD_NOLOAD)
    #endif
    """
    void* dlopen "fastbp_dlopen"(const char* path, int flags) nogil
    void* dlsym "fastbp_dlsym"(void* handle, const char* name) nogil
    const int RTLD_FLAGS "FASTBP_RTLD_FLAGS"

# Fortran ?gemm with 32- or 64-bit integers. sgemm and dgemm take the same arguments but for
# the element type, so their pointers are held with untyped scalars and arrays and one
# wrapper (gemm_rm) calls either.
ctypedef void (*gemm32_t)(const char*, const char*, const int*, const int*, const int*,
                          const void*, const void*, const int*, const void*, const int*,
                          const void*, void*, const int*) noexcept nogil
ctypedef void (*gemm64_t)(const char*, const char*, const int64_t*, const int64_t*, const int64_t*,
                          const void*, const void*, const int64_t*, const void*, const int64_t*,
                          const void*, void*, const int64_t*) noexcept nogil

# the active provider: exactly one pair is set
cdef gemm32_t _s32 = NULL
cdef gemm32_t _d32 = NULL
cdef gemm64_t _s64 = NULL
cdef gemm64_t _d64 = NULL

# NumPy's OpenBLAS symbol names whose integer width is known from the name
# (scipy-openblas64 prefixes "scipy_" and suffixes "64_"; plain OpenBLAS INTERFACE64 uses "64_").
_NUMPY_SYMBOLS = ((b"scipy_sgemm_64_", b"scipy_dgemm_64_", 64),
                  (b"sgemm_64_", b"dgemm_64_", 64),
                  (b"scipy_sgemm_", b"scipy_dgemm_", 32))

_providers = {}     # name -> (description, s, d, width) once found
_active = None


cdef void gemm_rm(bint single, char trans_a, char trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                  const void* alpha, const void* A, Py_ssize_t lda, const void* B, Py_ssize_t ldb,
                  const void* beta, void* C, Py_ssize_t ldc) noexcept nogil:
    cdef int64_t m64 = N, n64 = M, k64 = K, la64 = ldb, lb64 = lda, lc64 = ldc
    cdef int m32 = <int>N, n32 = <int>M, k32 = <int>K, la32 = <int>ldb, lb32 = <int>lda, lc32 = <int>ldc
    cdef gemm64_t g64 = _s64 if single else _d64
    if g64 != NULL:
        g64(&trans_b, &trans_a, &m64, &n64, &k64, alpha, B, &la64, A, &lb64, beta, C, &lc64)
    else:
        (_s32 if single else _d32)(&trans_b, &trans_a, &m32, &n32, &k32, alpha, B, &la32, A, &lb32, beta, C, &lc32)


def _find_numpy():
    """NumPy's BLAS: dlsym on NumPy's core extension (already loaded) searches its dependencies."""
    try:
        from numpy._core import _multiarray_umath as core
    except ImportError:                      # NumPy 1.x
        from numpy.core import _multiarray_umath as core
    cdef void* handle = dlopen(os.fsencode(core.__file__), RTLD_FLAGS)
    if handle == NULL:
        return None
    cdef void* s
    cdef void* d
    for s_name, d_name, width in _NUMPY_SYMBOLS:
        s = dlsym(handle, s_name)
        d = dlsym(handle, d_name)
        if s != NULL and d != NULL:
            return (f"NumPy's BLAS ({s_name.decode()}, {'ILP64' if width == 64 else 'LP64'})",
                    <size_t>s, <size_t>d, width)
    return None


def _find_scipy():
    """SciPy's BLAS through scipy.linalg.cython_blas (LP64), imported only when asked for."""
    try:
        import scipy.linalg.cython_blas as cython_blas
    except ImportError:
        return None
    capi = cython_blas.__pyx_capi__
    s_cap, d_cap = capi["sgemm"], capi["dgemm"]
    cdef void* s = PyCapsule_GetPointer(s_cap, PyCapsule_GetName(s_cap))
    cdef void* d = PyCapsule_GetPointer(d_cap, PyCapsule_GetName(d_cap))
    return ("SciPy's BLAS (scipy.linalg.cython_blas, LP64)", <size_t>s, <size_t>d, 32)


_FINDERS = {"numpy": _find_numpy, "scipy": _find_scipy}


def _self_test():
    """A 2x3 @ 3x2 product and its transposed forms through the active provider."""
    import numpy as np
    cdef double[:, ::1] A = np.arange(6.0).reshape(2, 3)
    cdef double[:, ::1] B = np.arange(6.0).reshape(3, 2) - 2
    cdef double[:, ::1] C = np.zeros((2, 2))
    cdef float[:, ::1] Af = np.asarray(A, dtype=np.float32)
    cdef float[:, ::1] Bf = np.asarray(B, dtype=np.float32)
    cdef float[:, ::1] Cf = np.zeros((2, 2), dtype=np.float32)
    expected = np.asarray(A) @ np.asarray(B)
    cdef double one = 1, zero = 0
    cdef float one_f = 1, zero_f = 0
    gemm_rm(False, c'N', c'N', 2, 2, 3, &one, &A[0, 0], 3, &B[0, 0], 2, &zero, &C[0, 0], 2)
    gemm_rm(True, c'N', c'N', 2, 2, 3, &one_f, &Af[0, 0], 3, &Bf[0, 0], 2, &zero_f, &Cf[0, 0], 2)
    ok = np.array_equal(np.asarray(C), expected) and np.array_equal(np.asarray(Cf), expected)
    # C^T = B^T A^T with both operands transposed in place
    gemm_rm(False, c'T', c'T', 2, 2, 3, &one, &B[0, 0], 2, &A[0, 0], 3, &zero, &C[0, 0], 2)
    return ok and np.array_equal(np.asarray(C), expected.T)


def use(name):
    """Make `name` ("numpy" or "scipy") the BLAS the kernels call; -> its description.
    ValueError when it cannot be found or fails the self-test (the previous one stays)."""
    global _s32, _d32, _s64, _d64, _active
    if name not in _FINDERS:
        raise ValueError(f"unknown BLAS provider {name!r}; expected 'numpy' or 'scipy'")
    if name not in _providers:
        found = _FINDERS[name]()
        if found is None:
            raise ValueError(f"{name}'s BLAS could not be found from Cython")
        _providers[name] = found
    description, s, d, width = _providers[name]
    saved = (<size_t>_s32, <size_t>_d32, <size_t>_s64, <size_t>_d64, _active)
    if width == 64:
        _s64, _d64, _s32, _d32 = <gemm64_t><size_t>s, <gemm64_t><size_t>d, NULL, NULL
    else:
        _s32, _d32, _s64, _d64 = <gemm32_t><size_t>s, <gemm32_t><size_t>d, NULL, NULL
    _active = name
    if not _self_test():
        _s32, _d32 = <gemm32_t><size_t>saved[0], <gemm32_t><size_t>saved[1]
        _s64, _d64 = <gemm64_t><size_t>saved[2], <gemm64_t><size_t>saved[3]
        _active = saved[4]
        del _providers[name]
        raise ValueError(f"{description} gave wrong numbers in the self-test; not used")
    return description


def provider():
    """(name, description) of the BLAS in use, or (None, why) when none could be set up."""
    if _active is None:
        return None, _setup_error
    return _active, _providers[_active][0]


_setup_error = ""


def _initialise():
    global _setup_error
    wanted = os.environ.get("FASTBP_CYTHON_BLAS", "").strip().lower()
    order = [wanted] if wanted in _FINDERS else ["numpy", "scipy"]
    errors = []
    for name in order:
        try:
            use(name)
            return
        except (ValueError, ImportError) as e:
            errors.append(f"{name}: {e}")
    _setup_error = "; ".join(errors) or "no BLAS found"


_initialise()
