"""fastbp info: version, backends (and why one is missing), BLAS and thread settings, GPU."""
import os
import platform

HELP = "show the version, the usable backends and why others are missing, BLAS/threads, GPU"

# what changes the threads, the kernels a BLAS picks (OPENBLAS_CORETYPE=Haswell holds OpenBLAS
# to its AVX2 GEMMs on an AVX-512 CPU: bench/results/adam.md) or the devices
ENVIRONMENT_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                         "NUMBA_THREADING_LAYER", "OPENBLAS_CORETYPE", "NUMBA_ENABLE_CUDASIM", "CUDA_VISIBLE_DEVICES")


def add_arguments(parser):
    pass


def run(args):
    import numpy as np

    import fastbp
    from fastbp._kernels import AUTO_PREFERENCE, available_backends, resolve, unavailable_reasons
    print(f"fastbp {fastbp.__version__}  (Python {platform.python_version()}, NumPy {np.__version__}, "
          f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs)")
    usable = available_backends()
    print(f"backends: {', '.join(usable)}   (auto picks {resolve('auto')!r}; preference "
          f"{', '.join(AUTO_PREFERENCE)})")
    for name, why in unavailable_reasons().items():
        print(f"  {name}: not usable: {why}")

    print("BLAS / OpenMP (threadpoolctl):")
    for line in _threadpools():
        print(f"  {line}")
    if "numba" in usable or "cuda" in usable:
        import numba
        print(f"Numba {numba.__version__}: {numba.config.NUMBA_NUM_THREADS} threads, "
              f"threading layer {numba.config.THREADING_LAYER!r}")
        if "numba" in usable:
            from fastbp._kernels.numba_cpu.blas import provider
            print(f"Numba kernels' BLAS: {provider()}")
    if "cython" in usable:
        from fastbp._kernels.cython_cpu.ops import activation_info, build_info
        print(f"Cython kernels: {build_info()}")
        print(f"Cython activations: {activation_info()}")
    set_vars = [f"{v}={os.environ[v]}" for v in ENVIRONMENT_VARIABLES if v in os.environ]
    print(f"environment: {' '.join(set_vars) if set_vars else '(no thread, BLAS-kernel or CUDA variables set)'}")
    print(f"GPU: {_gpu(usable)}")
    return 0


def _threadpools():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl is not installed (pip install threadpoolctl)"]
    pools = threadpool_info()
    if not pools:
        return ["no BLAS or OpenMP library loaded"]
    return [f"{p.get('internal_api')} {p.get('version')} ({p.get('user_api')}, {p.get('num_threads')} threads"
            + (f", {p['threading_layer']} threading" if p.get("threading_layer") else "")
            + (f", {p['architecture']}" if p.get("architecture") else "") + f"): {p.get('filepath')}"
            for p in pools]


def _gpu(usable):
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): kernels run on the CPU, slowly"
    if "cuda" not in usable:
        from fastbp._kernels import unavailable_reasons
        return f"none usable ({unavailable_reasons().get('cuda', 'no cuda backend')})"
    try:
        from numba import cuda
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
        free, total = cuda.current_context().get_memory_info()
        return f"{name}, compute capability {'.'.join(map(str, dev.compute_capability))}, " \
               f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)"
    except Exception as e:  # noqa: BLE001 -- info reports whatever went wrong, in one line
        return f"cuda backend listed but the device query failed: {type(e).__name__}: {e}"
