"""fastbp backend="cuda" against PyTorch CUDA, one training step (forward, backward, SGD
update), float32, TF32 off, on two workloads:

    small   64-64-64-64-64-1, batch 65,536, relu, mse   (fused narrow path; also forced tiled)
    wide    1024-1024-1024-1024, batch 4,096, relu, mse (tiled path)

against PyTorch eager and, with --compile, torch.compile(mode="reduce-overhead").

usage (on a machine with an NVIDIA GPU):  python bench/cuda_vs_torch.py [--repeats 50] [--compile] [--json F]
          smoke run under the simulator:  NUMBA_ENABLE_CUDASIM=1 python bench/cuda_vs_torch.py --tiny
Timing: interleaved rounds, each step synchronised (a fastbp step reads its loss back;
torch.cuda.synchronize); medians. The JSON file is rewritten after each workload, so a run
stopped part-way keeps what it measured.
"""
import argparse
import json
import statistics
import time

import numpy as np

import fastbp as fb

WORKLOADS = {"small": ((64, 64, 64, 64, 64, 1), 65536), "wide": ((1024, 1024, 1024, 1024), 4096)}
TINY = {"small": ((4, 4, 1), 8), "wide": ((130, 3, 2), 4)}     # wide: > 128, the tiled path
LR = 1e-3


def fastbp_step(net, X, y, fused=None):
    """One fastbp training step on device copies of X, y; `fused` forces a path (None: automatic)."""
    ops, state, opt = net._ops, net._state, fb.SGD(LR)
    Xd, yd = ops.from_host(X), ops.from_host(y)

    def step():
        saved, ops.fused = ops.fused, fused
        try:
            return ops.train_step(state, Xd, yd, opt)       # reads the loss back: synchronised
        finally:
            ops.fused = saved
    return step


def torch_step(net, X, y, compiled=False):
    """The same network (same initial weights) in PyTorch, one SGD step per call."""
    import torch
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    layers = []
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        lin = torch.nn.Linear(*W.shape).to(dev)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin] + ([torch.nn.ReLU()] if l < len(net.weights) - 1 else [])
    model = torch.nn.Sequential(*layers)
    forward = torch.compile(model, mode="reduce-overhead") if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=LR, foreach=True)
    Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)

    def step():
        if compiled:
            torch.compiler.cudagraph_mark_step_begin()       # a new iteration: graph outputs may be reused
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(forward(Xt), yt)
        loss.backward()
        opt.step()
        if dev == "cuda":
            torch.cuda.synchronize()
        return float(loss.detach())
    return step


def versions():
    import numba
    out = {"numpy": np.__version__, "numba": numba.__version__}
    try:
        import torch
        out.update(torch=torch.__version__, torch_cuda=torch.version.cuda)
    except ImportError:
        pass
    try:
        from importlib import metadata
        out["numba-cuda"] = metadata.version("numba-cuda")
    except Exception:       # noqa: BLE001 - a version we cannot read is left out
        pass
    return out


def measure(name, sizes, batch, repeats, labels):
    """Median ms per step of each of `labels` (interleaved rounds), with first losses and warm-up times."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    y = rng.normal(size=(batch, sizes[-1])).astype(np.float32)
    net = fb.MLP(sizes, activation="relu", dtype=np.float32, backend="cuda", seed=0)
    make = {"fastbp-cuda": lambda: fastbp_step(net, X, y),
            "fastbp-cuda-tiled": lambda: fastbp_step(fb.MLP(sizes, activation="relu", dtype=np.float32,
                                                            backend="cuda", seed=0), X, y, fused=False),
            "torch-eager": lambda: torch_step(net, X, y),
            "torch-compile": lambda: torch_step(net, X, y, compiled=True)}
    result = dict(sizes=list(sizes), batch=batch, path="fused" if net._ops.uses_fused(net.arch) else "tiled",
                  first_loss={}, warmup_s={}, errors={})
    steps = {}
    for label in labels:                                  # all from the same initial weights, before any step
        try:
            steps[label] = make[label]()
        except Exception as e:  # noqa: BLE001 - reported with the results
            result["errors"][label] = f"{type(e).__name__}: {str(e)[:500]}"
    for label, step in list(steps.items()):               # warm-up: JIT compiles, CUDA graph capture
        started = time.perf_counter()
        try:
            result["first_loss"][label] = step()
            for _ in range(2):
                step()
        except Exception as e:  # noqa: BLE001 - torch.compile may not work offline: say so, time the rest
            result["errors"][label] = f"{type(e).__name__}: {str(e)[:500]}"
            del steps[label]
        result["warmup_s"][label] = round(time.perf_counter() - started, 2)
    times = {label: [] for label in steps}
    for _ in range(repeats):
        for label, step in steps.items():
            started = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - started)
    result["median_ms"] = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    eager = result["median_ms"].get("torch-eager")
    result["speedup_vs_torch_eager"] = {k: eager / v for k, v in result["median_ms"].items() if eager}
    return result


def show(name, r):
    losses = ", ".join(f"{k} {v:.6g}" for k, v in r["first_loss"].items())
    times = ", ".join(f"{k} {v:.3f}" for k, v in r["median_ms"].items())
    ratios = ", ".join(f"{k} {v:.2f}x" for k, v in r["speedup_vs_torch_eager"].items() if k != "torch-eager")
    print(f"{name} {tuple(r['sizes'])} batch {r['batch']} ({r['path']}): first losses {losses}; median ms {times}; "
          f"vs torch eager: {ratios}" + (f"; errors {r['errors']}" if r["errors"] else ""))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--compile", action="store_true", help='also torch.compile(mode="reduce-overhead")')
    p.add_argument("--json", help="write the results here (rewritten after each workload)")
    p.add_argument("--tiny", action="store_true", help="tiny shapes: a smoke run (simulator), not a measurement")
    args = p.parse_args()
    from numba import cuda
    device = None if args.tiny else cuda.get_current_device().name
    report = dict(versions=versions(), tf32=False, repeats=args.repeats, tiny=args.tiny,
                  device=device.decode() if isinstance(device, bytes) else device)
    print("device:", report["device"], "| versions:", report["versions"])
    workloads = TINY if args.tiny else WORKLOADS
    passes = [("workloads", ["fastbp-cuda", "fastbp-cuda-tiled", "torch-eager"])]
    if args.compile:        # a pass of its own, after the rest is saved: its compile time is unknown
        passes.append(("torch_compile", ["torch-eager", "torch-compile"]))
    for key, labels in passes:
        for name, (sizes, batch) in workloads.items():
            labels_here = [l for l in labels if l != "fastbp-cuda-tiled" or name == "small"]   # wide is tiled anyway
            r = report.setdefault(key, {})[name] = measure(name, sizes, batch, args.repeats, labels_here)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(report, f, indent=1)
            show(name, r)

if __name__ == "__main__":
    main()
