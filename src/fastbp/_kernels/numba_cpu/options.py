"""Numba compile options shared by the backend's kernels.

fastmath allows reassociation and FMA contraction (rounding-level differences only) but NOT
the no-NaN/no-inf assumptions: the non-finite checks rely on NaN and inf behaving as IEEE says.
Every kernel is cached on disk (cache=True) and compiles on first use, never at import.

INLINE: for the passes' middle layers that a compiled step calls from one place (step.py's
_forward, _deltas, _sgd_pass, ...; layers.py's linear_forward_into, delta_propagate_into):
Numba inlines them into its IR, so they are not compiled on their own. A compiled function
is its own LLVM module, which every caller links in and optimizes again, callees and all: a
deep chain of them re-optimizes the same kernels once per level (most of a first mnist step's
compile time). The small helpers called from many places (_rows, gemm, matmul_*) and the
large leaves (the activation and loss switches) stay compiled: inlining them costs Numba a
typing of the whole body at every call, more than it saves (bench/results/numba-compile.md).
"""
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}    # no 'nnan'/'ninf': NaN checks must work
JIT = dict(cache=True, error_model="numpy", fastmath=FASTMATH, nogil=True)
INLINE = dict(JIT, inline="always")
