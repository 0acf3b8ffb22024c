#!/usr/bin/env bash
# Everything a lent GPU machine should run, in one command, results to $OUT:
#   versions  nvidia-smi, numba / numba-cuda / CuPy / PyTorch versions     -> versions.txt
#   build     the Cython kernels in place (PYTHONPATH=src, no install)
#   tests     the CUDA tests on the device: tests/test_cuda.py (real sizes too), the cuda cases
#             of the shared tests, tests/test_cuda_ptx.py                 -> pytest-cuda.xml
#   bench     bench/cuda_vs_torch.py --compile (float32, TF32 off)        -> cuda_vs_torch.json
#   gemm      bench/cuda_gemm_vs_cublas.py (tiled kernels vs cuBLAS)      -> gemm_vs_cublas.json
# plus session.log (every stage's output) and stages.txt (each stage's exit code and seconds).
# Each stage has its own time limit, all of them inside BUDGET seconds (default 480), so a
# hang in one stage still leaves the others' results. The script's exit code is the number
# of stages that failed. STAGES="bench gemm" runs only those (a rerun on what time is left).
#
#   bash bench/gpu_session.sh             # on the GPU machine (bench/results/CUDA.md: the call)
#   bash bench/gpu_session.sh --dry-run   # here: numba's CUDA simulator, tiny shapes, a test
#                                         # selection (tests/test_gpu_session.py runs this)
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-/tmp/fastbp-gpu-session}
BUDGET=${BUDGET:-480}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
LOG=$OUT/session.log
: >"$LOG"
: >"$OUT/stages.txt"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/fastbp-gpu-session-numba}   # shared by the stages
if [ $DRY = 1 ]; then
    export NUMBA_ENABLE_CUDASIM=1
    TESTS=(tests/test_cuda.py -k "train_steps_match_the_reference")
    BENCH=(--tiny --repeats 1)
    GEMM=(--tiny --repeats 1 --inner 1)
else
    unset NUMBA_ENABLE_CUDASIM
    TESTS=(tests/test_cuda.py tests/test_cuda_ptx.py tests/test_worked_examples.py tests/test_kernels.py
           tests/test_bad_input.py -k cuda)
    BENCH=(--repeats 30 --compile)
    GEMM=(--repeats 20)
fi
started=$SECONDS
failed=0

# stage NAME LIMIT CMD...: runs CMD with at most LIMIT seconds (less if the budget is nearly spent)
stage() {
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    if [ -n "${STAGES:-}" ] && [[ " $STAGES " != *" $name "* ]]; then
        echo "$name rc=not-selected 0s" >>"$OUT/stages.txt"
        return
    fi
    local left=$((BUDGET - (SECONDS - started)))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
        echo "$name rc=skipped (budget spent) 0s" >>"$OUT/stages.txt"
        failed=$((failed + 1))
        return
    fi
    echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
    timeout -k 10 "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    [ $rc = 124 ] && echo "=== $name: stopped at its ${limit}s limit" | tee -a "$LOG"
    echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$OUT/stages.txt"
    [ $rc = 0 ] || failed=$((failed + 1))
}

# the machine and the versions the numbers below belong to
versions() {
    date -u
    nvidia-smi || echo "nvidia-smi: not available"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv \
        2>/dev/null || true
    command -v nvcc >/dev/null && nvcc --version | tail -2
    command -v ptxas >/dev/null && ptxas --version | tail -1
    "$PY" - <<'EOF_PY'
import platform, sys
from importlib import metadata
print("python", sys.version.split()[0], platform.machine())
for dist in ("numpy", "numba", "numba-cuda", "cuda-bindings", "cupy-cuda13x", "cupy-cuda12x", "torch", "triton",
             "Cython", "scipy", "pytest"):
    try:
        print(dist, metadata.version(dist))
    except metadata.PackageNotFoundError:
        pass
from numba import cuda
try:
    d = cuda.get_current_device()
    print("device:", d.name, "compute capability", d.compute_capability)
except Exception as e:          # no GPU (or the simulator's fake one): say so, go on
    print("device: none", type(e).__name__, e)
EOF_PY
}
# the Cython kernels in place (the CUDA tests do not need them; "auto" and the CPU backends do)
build() {
    if [ "$DRY" = 1 ] && ! "$PY" -c "import Cython" 2>/dev/null; then
        echo "dry run: no Cython in this environment (pip builds fastbp in isolation); the GPU image has it"
        return 0
    fi
    "$PY" setup.py build_ext --inplace -j 8
}
export -f versions build
export PY OUT DRY

stage versions 20 bash -c 'versions | tee "$OUT/versions.txt"'
stage build 100 bash -c build
have_timeout_plugin=$("$PY" -c "import pytest_timeout" 2>/dev/null && echo --timeout=150)
# one process (-p no:xdist): one CUDA context, and the test output in order
stage tests 170 "$PY" -m pytest -q -p no:cacheprovider -p no:xdist -rfEs $have_timeout_plugin \
    --junitxml="$OUT/pytest-cuda.xml" "${TESTS[@]}"
stage bench 130 "$PY" bench/cuda_vs_torch.py "${BENCH[@]}" --json "$OUT/cuda_vs_torch.json"
stage gemm 60 "$PY" bench/cuda_gemm_vs_cublas.py "${GEMM[@]}" --json "$OUT/gemm_vs_cublas.json"

echo "=== done in $((SECONDS - started))s, $failed stage(s) failed; results in $OUT" | tee -a "$LOG"
cat "$OUT/stages.txt"
grep -hE "^(small|wide|  |GEMM|checks)" "$LOG" | tail -30
exit $failed
