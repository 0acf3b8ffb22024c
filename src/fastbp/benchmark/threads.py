"""One thread limit for every pool in the process, so `--threads N` means N for everyone.

Libraries read their thread settings at different moments, so the limit is applied in
two halves:

before_imports(n)  environment variables read when a library first loads (OpenMP,
                   OpenBLAS, MKL, Numba, XLA), and the process's CPU affinity, pinned to
                   n of the CPUs it may use. JAX/XLA ignores the usual variables and has
                   no general thread-count flag, so for it the affinity is what binds
                   (plus XLA's single-thread flags when n == 1).
after_imports(n)   threadpoolctl's limit on every BLAS and OpenMP pool already loaded
                   (NumPy's OpenBLAS, torch's OpenMP and MKL, ...), numba.set_num_threads,
                   torch.set_num_threads.

Each returns what it changed, so `restore(...)` can undo it (the tests need that).
"""
import os
import sys

_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")
_XLA_SINGLE = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def usable_cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        return list(range(os.cpu_count() or 1))


def check(n):
    """ValueError unless 1 <= n <= the CPUs this process may use."""
    cpus = usable_cpus()
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(cpus):
        raise ValueError(f"--threads must be an integer from 1 to {len(cpus)} "
                         f"(the CPUs this process may use); got {n!r}")


def before_imports(n):
    check(n)
    saved = {"env": {k: os.environ.get(k) for k in _ENV + ("XLA_FLAGS",)}, "affinity": None}
    for key in _ENV:
        if key == "NUMBA_NUM_THREADS" and "numba" in sys.modules:
            continue                 # too late for the env var; after_imports uses set_num_threads
        os.environ[key] = str(n)
    if n == 1 and "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _XLA_SINGLE).strip()
    if hasattr(os, "sched_setaffinity"):
        saved["affinity"] = set(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(usable_cpus()[:n]))
    return saved


def after_imports(n):
    """-> the threadpoolctl limiter (its restore_original_limits() undoes it) and the
    previous numba/torch settings."""
    from threadpoolctl import threadpool_limits
    saved = {"limiter": threadpool_limits(limits=n)}
    if "numba" in sys.modules:
        import numba
        saved["numba"] = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:
        import torch
        saved["torch"] = torch.get_num_threads()
        torch.set_num_threads(n)
    return saved


def restore(before, after):
    if after:
        after["limiter"].restore_original_limits()
        if "numba" in after:
            import numba
            numba.set_num_threads(after["numba"])
        if "torch" in after:
            import torch
            torch.set_num_threads(after["torch"])
    if before:
        for key, value in before["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if before["affinity"] is not None:
            os.sched_setaffinity(0, before["affinity"])


def for_script(n):
    """For the scripts in bench/: with n (not None), before_imports(n), then fastbp and its
    backends imported, after_imports(n) and fastbp's own pool limit. -> the fastbp module."""
    if n:
        before_imports(n)
    import fastbp
    fastbp.available_backends()                 # loads the backends, so their pools exist
    if n:
        after_imports(n)
        fastbp.set_num_threads(n)
    return fastbp


def describe():
    """The thread pools as they stand (for the JSON record)."""
    from threadpoolctl import threadpool_info
    pools = [dict(library=p.get("internal_api"), prefix=p.get("prefix"), threads=p.get("num_threads"))
             for p in threadpool_info()]
    info = {"affinity": usable_cpus(), "pools": pools}
    if "numba" in sys.modules:
        import numba
        info["numba_threads"] = numba.get_num_threads()
    if "torch" in sys.modules:
        import torch
        info["torch_threads"] = torch.get_num_threads()
    return info
