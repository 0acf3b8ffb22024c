"""Every kernel the CUDA backend can launch, compiled to PTX for sm_80 and sm_90 and assembled
with ptxas: registers, shared memory, stack frame and spills per kernel, float32 and float64.

No GPU needed: `numba.cuda.compile_ptx` lowers through NVVM (the nvidia-cuda-nvcc-cu12 wheel)
and NVRTC (nvidia-cuda-nvrtc-cu12); ptxas comes from the same nvcc wheel, else PATH or
CUDA_HOME. `pip install ".[cuda-ptx]"` brings all three; nvdisasm (nvidia-cuda-nvdisasm), where
present, adds the count of local-memory instructions in the machine code.

    python bench/cuda_resources.py                      # -> bench/results/cuda-resources.md
    python bench/cuda_resources.py --tiles 8,32 --out -   # also the GEMM kernels at tiles 8, 32; to stdout

tests/test_cuda_ptx.py runs the same sweep (fails on a compile error, a spill in the fused
kernels, a kernel that does not fit its launch) and checks, where kernels can be launched
(a GPU or the simulator), that the argument types below are those the backend passes.
"""
import argparse
import collections
import concurrent.futures
import contextlib
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types as pytypes

import numpy as np

ARCHS = ((8, 0), (9, 0))
DTYPES = (np.float32, np.float64)
REGISTERS_PER_BLOCK = 65536     # sm_80 and sm_90
STATIC_SMEM_LIMIT = 48 * 1024   # bytes of static shared memory a block may declare

Kernel = collections.namedtuple("Kernel", "factory name case dtype tile dispatcher argtypes threads")


def launchable_kernels(tiles=()):
    """Every kernel the backend's launch helpers can launch, each with the argument types of its
    launches: one entry per distinct signature (e.g. copy_2d takes a strided or an F-order
    source). Enumerated from each kernel module's own `kernels(dtype)` dict (products:
    `kernels(dtype, tile)`), so a kernel added to a module without a signature here raises
    KeyError. `tiles`: GEMM tiles besides the default products.TILE.

    The activation code, the loss (mse/bce), the reduction scale, `nesterov` and `store_all`
    are run-time arguments: one compiled kernel holds every activation's branch. The dtype and
    the GEMM tile are the compile-time choices."""
    import numba
    from numba import types as nt
    m = kernel_modules()

    i64, f64, flag = nt.int64, nt.float64, nt.boolean
    ivec, imat = nt.int64[::1], nt.int64[:, ::1]          # the plan, labels, rows; the tile table
    out = []

    def add(factory, kernels, signatures, dtype, threads, tile=None):
        for name, dispatcher in kernels.items():
            for case, argtypes in signatures[name]:
                out.append(Kernel(factory, name, case, dtype, tile, dispatcher, argtypes, threads[name]))

    for dtype in map(np.dtype, DTYPES):      # as the launch helpers pass it (a.dtype): the factories' cache key
        T = numba.from_dtype(dtype)
        vec, mat = T[::1], T[:, ::1]
        name = dtype.name

        def sig(*argtypes):
            return [("", argtypes)]
        one_d = collections.defaultdict(lambda: m.elementwise.THREADS, set_value=1)
        add("activations", m.activations.kernels(dtype), {"activation_backward": sig(mat, mat, mat, i64, mat)},
            name, one_d)
        add("losses", m.losses.kernels(dtype), {
            "weight_norm": sig(vec, i64, flag, vec),
            # the sample weights (or the norm factor) arrive contiguous, or as a batch's slice
            "elementwise": [("", (i64, mat, mat, vec, mat, i64, f64, vec, mat, vec)),
                            ("weight slice", (i64, mat, mat, T[:], mat, i64, f64, vec, mat, vec))],
            "cross_entropy": [("", (mat, ivec, vec, mat, i64, f64, vec, mat, vec)),
                              ("weight slice", (mat, ivec, T[:], mat, i64, f64, vec, mat, vec))],
            # the L2 term: the weighted mean's scale from a batch's weights, then the weights' pass
            "penalty_scale": [("", (vec, f64, vec)), ("weight slice", (T[:], f64, vec))],
            # c: the device scale (weighted mean), or the empty array (typed layout A) for none
            "weight_penalty": [("", (vec, vec, ivec, i64, f64, vec, flag, vec)),
                               ("no device scale", (vec, vec, ivec, i64, f64, T[:], flag, vec))],
            "add_penalty": [("", (vec, i64, f64, vec, vec)), ("no device scale", (vec, i64, f64, T[:], vec))],
        }, name, one_d)
        add("optimizers", m.optimizers.kernels(dtype), {
            "sgd": sig(vec, vec, vec, f64, f64, f64, flag, vec, flag),
            "adam": sig(vec, vec, vec, vec, f64, f64, f64, f64, f64, f64, vec, flag),
        }, name, one_d)
        add("elementwise", m.elementwise.kernels(dtype), {
            "finish_sum": [("", (vec, i64, f64, vec, vec)), ("factor slice", (vec, i64, f64, T[:], vec))],
            "flag_nonfinite": sig(vec, vec, i64),
            "set_value": sig(vec, i64, f64),
            "fill": sig(vec, f64),
            "copy_1d": sig(T[:], vec),                       # only strided sources are copied
            "copy_2d": [("strided src", (T[:, :], mat)), ("F-order src", (T[::1, :], mat))],
            "gather_rows": sig(mat, ivec, mat),
        }, name, one_d)
        for tile in (m.products.TILE,) + tuple(t for t in tiles if t != m.products.TILE):
            g = {
                "linear_forward": sig(mat, mat, vec, i64, mat, mat),
                "delta_propagate": sig(mat, mat, mat, mat, i64, mat),
                "weight_gradients": sig(mat, vec, ivec, imat, i64, mat),
                "sum_splits": sig(mat, vec),
            }
            threads = collections.defaultdict(lambda: tile * tile, sum_splits=m.elementwise.THREADS)
            add("products", m.products.kernels(dtype, tile), g, name, threads, tile)
        widest = collections.defaultdict(lambda: m.narrow.threads_per_block([m.narrow.MAX_WIDTH]))
        add("narrow", m.narrow.kernels(dtype), {
            "forward": sig(mat, vec, ivec, vec, flag),
            "backward": sig(vec, ivec, vec, i64),
        }, name, widest)
    gathered = [(f"{t} values", (v, ivec, v)) for t, v in (("float32", nt.float32[::1]), ("float64", nt.float64[::1]))]
    add("elementwise", m.elementwise.index_kernels(), {"gather_1d": [("", (ivec, ivec, ivec))] + gathered}, "int64",
        collections.defaultdict(lambda: m.elementwise.THREADS))
    return out


def kernel_modules():
    """The CUDA backend's kernel modules, by name: the one place this file imports them."""
    from fastbp._kernels.cuda import activations, elementwise, losses, narrow, optimizers, products
    return pytypes.SimpleNamespace(activations=activations, elementwise=elementwise, losses=losses,
                                   narrow=narrow, optimizers=optimizers, products=products)


def fused_max_width():
    """narrow.py's eligibility limit: the widest layer the fused kernels take."""
    return kernel_modules().narrow.MAX_WIDTH


# ---- the tools ----

class ToolsMissing(RuntimeError):
    """NVVM, NVRTC or ptxas cannot be found: the sweep cannot run here."""


def _wheel_binary(package, name):
    try:
        module = __import__(package, fromlist=["__path__"])
    except ImportError:
        return None
    for root in getattr(module, "__path__", []):
        path = os.path.join(root, "bin", name)
        if os.access(path, os.X_OK):
            return path
    return None


def find_binary(name, wheel_package):
    """A CUDA tool from its pip wheel, else PATH, else $CUDA_HOME/bin."""
    found = _wheel_binary(wheel_package, name) or shutil.which(name)
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    path = os.path.join(home, "bin", name) if home else None
    return path if path and os.access(path, os.X_OK) else None


Toolchain = collections.namedtuple("Toolchain", "ptxas nvdisasm nvvm ptxas_version")   # nvvm: the library's path


def toolchain():
    """The tools the sweep needs, or ToolsMissing saying which is absent and how to get it."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        raise ToolsMissing("NUMBA_ENABLE_CUDASIM=1: numba's simulator has no compile_ptx")
    hint = 'pip install ".[cuda-ptx]" (the nvidia-cuda-nvcc-cu12 and nvidia-cuda-nvrtc-cu12 wheels)'
    try:
        from numba.cuda import cuda_paths
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()                                      # loads libnvvm, or raises
        paths = cuda_paths.get_cuda_paths()               # raises when libnvrtc cannot be found
        nvvm_path = paths["nvvm"].info
    except Exception as e:      # noqa: BLE001 - any failure to load NVVM/NVRTC means "absent here"
        raise ToolsMissing(f"numba-cuda cannot load NVVM/NVRTC ({type(e).__name__}: {str(e)[:200]}); {hint}") from None
    ptxas = find_binary("ptxas", "nvidia.cuda_nvcc")
    if ptxas is None:
        raise ToolsMissing(f"no ptxas (not in the nvcc wheel, on PATH or in $CUDA_HOME/bin); {hint}")
    version = subprocess.run([ptxas, "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    return Toolchain(ptxas, find_binary("nvdisasm", "nvidia.cu13") or find_binary("nvdisasm", "nvidia.cuda_nvdisasm"),
                     nvvm_path, version[-1] if version else "?")


# ---- one kernel: Python -> PTX -> ptxas report ----

@contextlib.contextmanager
def _device_functions_compiled_for(cc):
    """numba-cuda compiles each @cuda.jit(device=True) function a kernel calls for the *current
    device*; there is none here, so name the target instead. The device function's IR is linked
    into the kernel, whose PTX is generated for the kernel's own `cc` either way."""
    from numba.cuda import dispatcher
    saved = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: pytypes.SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


def compile_kernel(kernel, cc):
    from numba import cuda
    with _device_functions_compiled_for(cc):
        ptx, _ = cuda.compile_ptx(kernel.dispatcher.py_func, kernel.argtypes, cc=cc)
    return ptx


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas_report(text):
    """ptxas -v's report of a module with one entry -> registers, smem, stack frame, spills
    (spills summed over the entry and any functions it calls that were not inlined)."""
    entry = _ENTRY.search(text)
    if entry is None:
        raise ValueError(f"no entry function in the ptxas report:\n{text}")
    after = text[entry.end():]
    frames = _FRAME.findall(after)
    own = re.search(r"Function properties for " + re.escape(entry.group(1)) + r"\s*\n\s*" + _FRAME.pattern, after)
    used = _USED.search(after)
    smem = _SMEM.search(used.string[used.start():].splitlines()[0]) if used else None
    return dict(registers=int(used.group(1)) if used else 0,
                smem=int(smem.group(1)) if smem else 0,
                stack=int(own.group(1)) if own else 0,
                spill_stores=sum(int(s) for _, s, _ in frames),
                spill_loads=sum(int(s) for _, _, s in frames))


def assemble(ptx, cc, tools, sass=True):
    """ptxas -v on the PTX -> parse_ptxas_report's dict, plus the number of local-memory
    instructions (LDL/STL) in the machine code if `sass` and nvdisasm is present (else None)."""
    arch = f"sm_{cc[0]}{cc[1]}"
    with tempfile.TemporaryDirectory(prefix="fastbp-ptx-") as tmp:
        src, cubin = os.path.join(tmp, "k.ptx"), os.path.join(tmp, "k.cubin")
        with open(src, "w") as f:
            f.write(ptx)
        done = subprocess.run([tools.ptxas, "-v", f"-arch={arch}", "-o", cubin, src],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"ptxas -arch={arch} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        report = parse_ptxas_report(done.stdout + done.stderr)
        report["local_instructions"] = None
        if sass and tools.nvdisasm:
            sass = subprocess.run([tools.nvdisasm, "-c", cubin], capture_output=True, text=True, timeout=300)
            if sass.returncode == 0:
                report["local_instructions"] = len(re.findall(r"\b(?:LDL|STL)\b", sass.stdout))
    return report


# ---- the sweep (worker processes: each compiles with its own numba) ----

def _task_key(kernel):
    return (kernel.factory, kernel.name, kernel.case, kernel.dtype, kernel.tile)


def _measure(task):
    """(tiles, kernel key, cc, sass) -> a row dict; a compile or ptxas error is recorded, not raised."""
    tiles, key, cc, sass = task
    kernel = next(k for k in _kernels(tiles) if _task_key(k) == key)
    row = dict(factory=kernel.factory, kernel=kernel.name, case=kernel.case, dtype=kernel.dtype, tile=kernel.tile,
               arch=f"sm_{cc[0]}{cc[1]}", threads=kernel.threads, error=None)
    started = time.perf_counter()
    try:
        row.update(assemble(compile_kernel(kernel, cc), cc, _tools(), sass))
    except Exception as e:      # noqa: BLE001 - reported per kernel, so that one run shows every failure
        row["error"] = f"{type(e).__name__}: {str(e)[-3000:]}"
    row["seconds"] = round(time.perf_counter() - started, 2)
    return row


_cache = {}


def _kernels(tiles):
    if tiles not in _cache:
        _cache[tiles] = launchable_kernels(tiles)
    return _cache[tiles]


def _tools():
    if "tools" not in _cache:
        _cache["tools"] = toolchain()
    return _cache["tools"]


def sweep(tiles=(), jobs=None, archs=ARCHS, sass=False):
    """Compile and assemble every launchable kernel for every arch -> a list of row dicts.
    `tiles`: GEMM tiles the launch helpers accept (tile=) besides the default products.TILE.
    Raises ToolsMissing where the tools are absent. `sass`: also count local-memory
    instructions (nvdisasm: about 3x the time of ptxas). Worker processes are spawned (not
    forked: the caller may hold a CUDA context); `jobs` defaults to the CPU count."""
    toolchain()
    tiles = tuple(tiles)
    tasks = [(tiles, _task_key(k), cc, sass) for k in launchable_kernels(tiles) for cc in archs]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    if jobs == 1:
        return [_measure(t) for t in tasks]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        return list(pool.map(_measure, tasks, chunksize=max(1, len(tasks) // (4 * jobs))))


# ---- the table ----

def markdown(rows, command, tools, seconds):
    archs = sorted({r["arch"] for r in rows})
    lines = [
        "# CUDA kernels: registers, shared memory, spills (ptxas -v, no GPU)",
        "",
        f"Made by `{command}` in {seconds:.0f} s ({os.cpu_count()} CPUs): every kernel the backend can",
        "launch (bench/cuda_resources.py), compiled by numba.cuda.compile_ptx and assembled by ptxas.",
        f"numba-cuda {_version('numba-cuda')}; NVVM {tools.nvvm.split('site-packages/')[-1]};",
        f"ptxas {tools.ptxas.split('site-packages/')[-1]} ({tools.ptxas_version}).",
        "",
        "regs: registers per thread; smem: static shared memory per block (bytes); stack: stack",
        "frame per thread (bytes of local memory, spills included); spill: spill stores / loads",
        "(bytes); LDL/STL: local-memory instructions in the machine code (static count, nvdisasm;",
        "'-' without it); threads: the most threads per block a launch uses (the fused kernels at",
        f"their widest layer, {fused_max_width()}); fits: regs x threads <= {REGISTERS_PER_BLOCK} and "
        f"smem <= {STATIC_SMEM_LIMIT}.",
        "Activation codes are run-time arguments: each kernel holds every activation's branch.",
        "",
    ]
    head = "| kernel | dtype | threads | " + " | ".join(f"{a} regs | smem | stack | spill | LDL/STL" for a in archs)
    head += " | fits |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    by_kernel = collections.OrderedDict()
    for r in rows:
        by_kernel.setdefault((r["factory"], r["kernel"], r["case"], r["dtype"], r["tile"]), {})[r["arch"]] = r
    for (factory, name, case, dtype, tile), per_arch in by_kernel.items():
        label = f"{factory}.{name}" + (f" (tile {tile})" if tile else "") + (f" [{case}]" if case else "")
        cells, fits = [], True
        for a in archs:
            r = per_arch.get(a)
            if r is None or r["error"]:
                cells.append("ERROR | | | |")
                fits = False
                continue
            local = "-" if r["local_instructions"] is None else r["local_instructions"]
            cells.append(f"{r['registers']} | {r['smem']} | {r['stack']} | {r['spill_stores']}/{r['spill_loads']} | {local}")
            fits &= fits_launch(r)
        threads = next(iter(per_arch.values()))["threads"]
        lines.append(f"| {label} | {dtype} | {threads} | " + " | ".join(cells) + f" | {'yes' if fits else 'NO'} |")
    ok = [r for r in rows if not r["error"]]
    errors = [r for r in rows if r["error"]]
    lines += ["", f"{len(by_kernel)} kernels x {len(archs)} archs = {len(rows)} compiles, {len(errors)} failed; "
              f"most registers {max((r['registers'] for r in ok), default=0)}; "
              f"spilling: {', '.join(sorted({r['factory'] + '.' + r['kernel'] for r in ok if r['spill_stores'] or r['spill_loads']})) or 'none'}; "
              f"with a stack frame: {', '.join(sorted({r['factory'] + '.' + r['kernel'] for r in ok if r['stack']})) or 'none'}."]
    for r in errors:
        lines += ["", f"ERROR {r['factory']}.{r['kernel']} {r['dtype']} {r['arch']}:", "", "    " + r["error"][-1500:]]
    return "\n".join(lines) + "\n"


def fits_launch(row):
    return row["registers"] * row["threads"] <= REGISTERS_PER_BLOCK and row["smem"] <= STATIC_SMEM_LIMIT


def _version(dist):
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", default="", help="also the GEMM kernels at these tiles (comma-separated, e.g. 8,32)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: the CPU count)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "cuda-resources.md"), help="the Markdown table ('-': stdout)")
    args = p.parse_args(argv)
    try:
        tools = toolchain()
    except ToolsMissing as e:
        print(f"cuda_resources: {e}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    tiles = tuple(int(t) for t in args.tiles.split(",") if t)
    rows = sweep(tiles=tiles, jobs=args.jobs, sass=True)
    command = "python bench/cuda_resources.py" + (f" --tiles {args.tiles}" if tiles else "")
    text = markdown(rows, command, tools, time.perf_counter() - started)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as f:
            f.write(text)
        print(text.strip().splitlines()[-1] if not any(r["error"] for r in rows) else text)
        print(f"wrote {args.out}")
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
