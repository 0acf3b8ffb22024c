"""fastbp.set_num_threads: one limit for the thread pools fastbp's kernels use.

The NumPy, Cython and Numba backends call NumPy's BLAS (Numba falls back to SciPy's, through
np.dot, where NumPy's cannot be reached: fastbp._kernels.numba_cpu.blas), and Numba's own
parallel pool serves any prange loop. `set_num_threads(n)` limits all of them, in this
process, from now on: threadpoolctl for every BLAS/OpenMP library loaded (SciPy's BLAS is
loaded first, so the fallback is among them), numba.set_num_threads for Numba's pool
(capped at the pool's size, NUMBA_NUM_THREADS, fixed when Numba loads).
"""
import numbers
import os

_limit = None


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        return os.cpu_count() or 1


def set_num_threads(n):
    """Use at most n threads in fastbp's kernels (BLAS, OpenMP and Numba pools). -> n."""
    global _limit
    if isinstance(n, (bool, float)) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be a positive integer; got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    n = int(n)
    from threadpoolctl import threadpool_limits
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS Numba calls, so it is limited too)
    except ImportError:                  # pragma: no cover - scipy is a dependency
        pass
    try:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))   # (loads its OpenMP/TBB layer)
    except ImportError:                  # pragma: no cover - numba is a dependency
        pass
    threadpool_limits(limits=n)          # every BLAS/OpenMP pool loaded by now
    _limit = n
    return n


def get_num_threads():
    """The limit set by set_num_threads, or the number of CPUs this process may use."""
    return _limit if _limit is not None else _cpus()
