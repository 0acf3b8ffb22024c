"""Numba compile options shared by the backend's kernels.

fastmath allows reassociation and FMA contraction (rounding-level differences only) but NOT
the no-NaN/no-inf assumptions: the non-finite checks rely on NaN and inf behaving as IEEE says.
Every kernel is cached on disk (cache=True) and compiles on first use, never at import.
"""
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}    # no 'nnan'/'ninf': NaN checks must work
JIT = dict(cache=True, error_model="numpy", fastmath=FASTMATH, nogil=True)
