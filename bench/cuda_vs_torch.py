"""fastbp backend="cuda" against PyTorch CUDA eager, one training step (forward, backward,
SGD update), float32, TF32 off, on two workloads:

    small   64-64-64-64-64-1, batch 65,536, relu, mse   (fused narrow path)
    wide    1024-1024-1024-1024, batch 4,096, relu, mse (tiled path)

usage (on a machine with an NVIDIA GPU):  python bench/cuda_vs_torch.py [--repeats 50]
          smoke run under the simulator:  NUMBA_ENABLE_CUDASIM=1 python bench/cuda_vs_torch.py --tiny
Timing: interleaved rounds, each synchronised (cuda.synchronize / torch.cuda.synchronize); medians.
"""
import argparse
import statistics
import time

import numpy as np

import fastbp as fb

WORKLOADS = {"small": ((64, 64, 64, 64, 64, 1), 65536), "wide": ((1024, 1024, 1024, 1024), 4096)}
TINY = {"small": ((4, 4, 1), 8), "wide": ((5, 6, 3), 8)}


def torch_step(sizes, net, X, y, lr):
    import torch
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    layers = []
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        lin = torch.nn.Linear(*W.shape).to(dev)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin] + ([torch.nn.ReLU()] if l < len(sizes) - 2 else [])
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr, foreach=True)
    Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(Xt), yt)
        loss.backward()
        opt.step()
        if dev == "cuda":
            torch.cuda.synchronize()
        return float(loss.detach())
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--tiny", action="store_true", help="tiny shapes: a smoke run (simulator), not a measurement")
    args = p.parse_args()
    from numba import cuda
    for name, (sizes, batch) in (TINY if args.tiny else WORKLOADS).items():
        rng = np.random.default_rng(0)
        X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
        y = rng.normal(size=(batch, sizes[-1])).astype(np.float32)
        net = fb.MLP(sizes, activation="relu", dtype=np.float32, backend="cuda", seed=0)
        t_step = torch_step(sizes, net, X, y, 1e-3)
        opt, ops, state = fb.SGD(1e-3), net._ops, net._state
        Xd, yd = ops.from_host(X), ops.from_host(y)

        def f_step():
            loss = ops.train_step(state, Xd, yd, opt)
            cuda.synchronize()
            return loss
        losses = (f_step(), t_step())                       # warm-up (JIT compile), first losses agree
        times = {"fastbp-cuda": [], "torch": []}
        for _ in range(args.repeats):
            for label, step in (("fastbp-cuda", f_step), ("torch", t_step)):
                started = time.perf_counter()
                step()
                times[label].append(time.perf_counter() - started)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        path = "fused" if ops.uses_fused(net.arch) else "tiled"
        print(f"{name} {sizes} batch {batch} ({path}): first losses {losses[0]:.6g} vs {losses[1]:.6g}; "
              f"median ms fastbp-cuda {med['fastbp-cuda']:.3f}, torch {med['torch']:.3f}; "
              f"speed-up {med['torch'] / med['fastbp-cuda']:.2f}x")
    if not args.tiny:
        print("device:", cuda.get_current_device().name)


if __name__ == "__main__":
    main()
