"""fastbp's tiled numba.cuda GEMM kernels against cuBLAS (through CuPy and PyTorch) on the
wide net's shapes (1024-wide layers, batch 4,096), float32, TF32 off, on the same device
buffers: CuPy and PyTorch view fastbp's numba device arrays through __cuda_array_interface__
(zero copy, checked), so the numbers say what a cuBLAS path for wide layers would gain.

    forward   Z = X @ W + b, A = relu(Z)          (fastbp: one kernel with the epilogue)
    delta     out = (D @ W.T) * relu'(Zp)         (Zp, Ap: the layer below's Z and A)
    wgrad     dW = Ap.T @ D, db = D.sum(0)

cuBLAS is timed bare (the matrix product alone) and with the same epilogue as separate
element-wise passes, as a cuBLAS path without fused epilogues would run it.

usage (GPU):        python bench/cuda_gemm_vs_cublas.py [--repeats 20] [--json F]
smoke (simulator):  NUMBA_ENABLE_CUDASIM=1 python bench/cuda_gemm_vs_cublas.py --tiny
Timing: each variant run `--inner` times back to back, then synchronised; the median over
`--repeats` rounds, interleaved, per call.
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("CUPY_TF32", "0")         # CuPy's float32 GEMMs: full float32, as PyTorch's below

import numpy as np                               # noqa: E402

M, K, N = 4096, 1024, 1024
TINY = (8, 6, 5)
NAMES = "X W b Z A Zp Ap D out dW db".split()


def flops(m, k, n):
    return 2.0 * m * k * n


def fastbp_ops(bufs):
    from fastbp import activations
    from fastbp._kernels.cuda import products
    X, W, b, Z, A, Zp, Ap, D, out, dW, db = (bufs[k] for k in NAMES)
    G = bufs["G"]                                    # dW and db are views of it
    scratch = {}

    def workspace(name, shape):
        from numba import cuda
        if (name, shape) not in scratch:
            scratch[(name, shape)] = cuda.device_array(shape, dtype=X.dtype)
        return scratch[(name, shape)]
    return {
        "forward": lambda: products.linear_forward(X, W, b, activations.RELU, Z, A),
        "delta": lambda: products.delta_propagate(D, W, Zp, Ap, activations.RELU, out),
        "wgrad": lambda: products.weight_gradient(Ap, D, G, workspace),
    }


def cupy_ops(bufs):
    import cupy as cp
    v = {k: cp.asarray(a) for k, a in bufs.items()}
    for k, a in bufs.items():                        # zero copy: the same device memory
        assert v[k].data.ptr == a.__cuda_array_interface__["data"][0], k
    X, W, b, Z, A, Zp, Ap, D, out, dW, db = (v[k] for k in NAMES)
    return {
        "forward (bare)": lambda: cp.matmul(X, W, out=Z),
        "forward": lambda: (cp.matmul(X, W, out=Z), cp.add(Z, b, out=Z), cp.maximum(Z, 0, out=A)),
        "delta (bare)": lambda: cp.matmul(D, W.T, out=out),
        "delta": lambda: (cp.matmul(D, W.T, out=out), cp.multiply(out, Zp > 0, out=out)),
        "wgrad (bare)": lambda: cp.matmul(Ap.T, D, out=dW),
        "wgrad": lambda: (cp.matmul(Ap.T, D, out=dW), cp.sum(D, axis=0, out=db)),
    }, cp.cuda.Device().synchronize


def torch_ops(bufs):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    v = {k: torch.as_tensor(a, device="cuda") for k, a in bufs.items()}
    for k, a in bufs.items():
        assert v[k].data_ptr() == a.__cuda_array_interface__["data"][0], k
    X, W, b, Z, A, Zp, Ap, D, out, dW, db = (v[k] for k in NAMES)
    return {
        "forward (bare)": lambda: torch.matmul(X, W, out=Z),
        "forward": lambda: (torch.addmm(b, X, W, out=Z), torch.clamp(Z, min=0, out=A)),
        "delta (bare)": lambda: torch.matmul(D, W.T, out=out),
        "delta": lambda: (torch.matmul(D, W.T, out=out), out.mul_(Zp > 0)),
        "wgrad (bare)": lambda: torch.matmul(Ap.T, D, out=dW),
        "wgrad": lambda: (torch.matmul(Ap.T, D, out=dW), torch.sum(D, 0, out=db)),
    }, torch.cuda.synchronize


def time_all(variants, sync, repeats, inner):
    """variants: label -> callable. Interleaved rounds; per-call medians in ms."""
    times = {k: [] for k in variants}
    for f in variants.values():                      # warm-up: JIT compile, cuBLAS handles
        f()
    sync()
    for _ in range(repeats):
        for label, f in variants.items():
            started = time.perf_counter()
            for _ in range(inner):
                f()
            sync()
            times[label].append((time.perf_counter() - started) / inner)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def relative_error(got, ref):
    return float(np.linalg.norm(got.astype(np.float64) - ref) / np.linalg.norm(ref))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--inner", type=int, default=10)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--tiny", action="store_true", help="tiny shapes: a smoke run (simulator), not a measurement")
    args = p.parse_args()
    import numba
    from numba import cuda
    m, k, n = TINY if args.tiny else (M, K, N)
    rng = np.random.default_rng(0)
    Zp = rng.normal(size=(m, k))
    host = dict(X=rng.normal(size=(m, k)), W=rng.normal(size=(k, n)) / np.sqrt(k), b=rng.normal(size=n),
                D=rng.normal(size=(m, n)), Zp=Zp, Ap=np.maximum(Zp, 0))
    bufs = {name: cuda.to_device(a.astype(np.float32)) for name, a in host.items()}
    G = cuda.device_array(k * n + n, np.float32)     # the weight gradient as fastbp writes it: dW, then db
    bufs.update(Z=cuda.device_array((m, n), np.float32), A=cuda.device_array((m, n), np.float32),
                out=cuda.device_array((m, k), np.float32), G=G, dW=G[:k * n].reshape(k, n), db=G[k * n:])
    report = dict(shapes=dict(M=m, K=k, N=n), dtype="float32", tf32=False, repeats=args.repeats, inner=args.inner,
                  gflop_per_call=flops(m, k, n) / 1e9, median_ms={}, errors={}, check={})
    fast = fastbp_ops(bufs)
    report["median_ms"]["fastbp"] = time_all(fast, cuda.synchronize, args.repeats, args.inner)
    X, W, b, D, Zp = (host[k].astype(np.float32).astype(np.float64) for k in ("X", "W", "b", "D", "Zp"))
    Zr = X @ W + b
    expected = dict(A=np.maximum(Zr, 0), out=(D @ W.T) * (Zp > 0), dW=np.maximum(Zp, 0).T @ D)
    for name, ref in expected.items():
        report["check"][f"fastbp {name}"] = relative_error(bufs[name].copy_to_host(), ref)
    for name, make in (("cupy", cupy_ops), ("torch", torch_ops)):
        if numba.config.ENABLE_CUDASIM:
            report["errors"][name] = "skipped: simulator arrays are host memory"
            continue
        try:
            variants, sync = make(bufs)
            report["median_ms"][name] = time_all(variants, sync, args.repeats, args.inner)
            for op in ("forward", "delta", "wgrad"):
                variants[op]()
            sync()
            for buf, ref in expected.items():
                report["check"][f"{name} {buf}"] = relative_error(bufs[buf].copy_to_host(), ref)
        except Exception as e:  # noqa: BLE001 - a library missing or failing is reported, the rest still runs
            report["errors"][name] = f"{type(e).__name__}: {str(e)[:500]}"
    gflop = report["gflop_per_call"]
    report["tflops"] = {lib: {op: gflop / ms for op, ms in ops.items()} for lib, ops in report["median_ms"].items()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print(f"GEMM {m}x{k}x{n} float32, TF32 off: median ms per call (TFLOP/s)")
    for lib, ops in report["median_ms"].items():
        print(f"  {lib:7s} " + "; ".join(f"{op} {ms:.3f} ({report['tflops'][lib][op]:.1f})" for op, ms in ops.items()))
    for op in ("forward", "delta", "wgrad"):
        ref = report["median_ms"]["fastbp"][op]
        for lib in ("cupy", "torch"):
            for variant in (op, f"{op} (bare)"):
                if variant in report["median_ms"].get(lib, {}):
                    print(f"  {variant:15s} fastbp / {lib}: {ref / report['median_ms'][lib][variant]:.2f}x slower")
    print("checks (relative error vs float64):", report["check"], "| errors:", report["errors"] or "none")


if __name__ == "__main__":
    main()
