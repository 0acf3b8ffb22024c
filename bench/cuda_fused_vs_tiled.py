"""The sweep behind the CUDA backend's path choice (cuda/narrow.py's eligible: every layer
<= MAX_WIDTH = 128 takes the fully fused kernels, wider networks the tiled GEMMs): the same
float32 SGD train_step on both paths (CudaOps.fused forced True / False), for widths up to
the cut-off and batches from 32 to 65,536; median wall time of rounds, synchronized.

    python bench/cuda_fused_vs_tiled.py [--rounds 21]          (on a machine with a GPU)

Prints ms per step for each path and tiled / fused: above 1, the fused path is faster. The
cut-off was chosen by design (no GPU was available when it was written); this is the
measurement that should confirm or move it. Under NUMBA_ENABLE_CUDASIM=1 it only smoke-runs
(one tiny shape).
"""
import argparse
import statistics
import time

import numpy as np

import fastbp as fb
from fastbp._kernels.cuda import ops as cuda_ops
from fastbp._kernels.cuda.device import SIMULATED

SHAPES = [((64, 64, 64, 1), 32), ((128, 128, 128, 10), 256), ((32,) * 9 + (1,), 1024),
          ((128, 128, 128, 10), 65536), ((100, 128, 64, 1), 4096)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    from numba import cuda
    shapes = [((3, 5, 2), 4)] if SIMULATED else SHAPES
    rounds = 1 if SIMULATED else args.rounds
    rng = np.random.default_rng(0)
    for sizes, batch in shapes:
        X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
        y = rng.normal(size=(batch, sizes[-1])).astype(np.float32)
        times = {}
        for fused in (True, False):
            cuda_ops.ops.fused = fused
            net, opt = fb.MLP(list(sizes), activation="tanh", backend="cuda", seed=0), fb.SGD(1e-3)
            Xd, yd = cuda.to_device(X), cuda.to_device(y)
            net.train_step(Xd, yd, opt)                     # compile
            samples = []
            for _ in range(rounds):
                cuda.synchronize()
                t0 = time.perf_counter()
                net.train_step(Xd, yd, opt)
                cuda.synchronize()
                samples.append(time.perf_counter() - t0)
            times[fused] = statistics.median(samples)
        cuda_ops.ops.fused = None
        print(f"{'-'.join(map(str, sizes)):>22} b{batch:<6} fused {times[True] * 1e3:8.3f} ms  "
              f"tiled {times[False] * 1e3:8.3f} ms  tiled/fused {times[False] / times[True]:5.2f}")


if __name__ == "__main__":
    main()
