"""What the CUDA kernels need to know about where they run: simulated or not, the warp,
and numba types for dtypes."""
import numba
import numpy as np

SIMULATED = bool(getattr(numba.config, "ENABLE_CUDASIM", False))
# Thread counts are rounded to whole warps on a GPU; numba's simulator runs each thread as a
# Python thread (slow), so there they are rounded to 8 instead: same kernels.
WARP = 8 if SIMULATED else 32


def numba_type(dtype):
    return numba.from_dtype(np.dtype(dtype))
