"""The BLAS floor of a training step: how fast could any implementation that calls this
BLAS be, and so what speed-up over the NumPy peer (same BLAS) is possible at all?

A float32 SGD step of an L-layer MLP needs 3L - 1 matrix products (forward Z = A @ W per
layer, delta @ W.T for every layer but the first, A.T @ delta per layer). This times each
product alone, on the workload's shapes and operand layouts, with NumPy's matmul (the
OpenBLAS sgemm that fastbp's backends and the NumPy peer call), interleaved with the
NumPy peer's whole step and fastbp's best backend, in one process:

    python bench/gemm_floor.py [--threads N] [--workloads mnist-b256,wide-1024] [--repeats 15]

"floor" is the sum of the products' medians: a step with no elementwise work at all.
"ceiling" = peer / floor is the largest speed-up over the peer such a step could show.
Products alone run with warm caches, so the floor is, if anything, optimistic.
"""
import argparse
import sys

import numpy as np


def products(workload, X, weights):
    """[(label, callable)] for the 3L - 1 products of one step, on preallocated outputs."""
    rng = np.random.default_rng(1)
    B = X.shape[0]
    acts = [X] + [rng.standard_normal((B, n)).astype(np.float32) for n in workload.sizes[1:-1]]
    deltas = [rng.standard_normal((B, n)).astype(np.float32) for n in workload.sizes[1:]]
    out = []
    for l, W in enumerate(weights):
        n_in, n_out = W.shape
        A, D = acts[l], deltas[l]
        Z, dW = np.empty((B, n_out), np.float32), np.empty((n_in, n_out), np.float32)
        out.append((f"A{l} @ W{l}      {B}x{n_in} @ {n_in}x{n_out}", lambda A=A, W=W, Z=Z: np.matmul(A, W, out=Z)))
        out.append((f"A{l}.T @ D{l}    {n_in}x{B} @ {B}x{n_out}", lambda A=A, D=D, dW=dW: np.matmul(A.T, D, out=dW)))
        if l > 0:
            P = np.empty((B, n_in), np.float32)
            out.append((f"D{l} @ W{l}.T    {B}x{n_out} @ {n_out}x{n_in}",
                        lambda D=D, W=W, P=P: np.matmul(D, W.T, out=P)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workloads", default="mnist-b256,wide-1024")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)

    from fastbp.benchmark import threads
    fb = threads.for_script(args.threads)
    from fastbp.benchmark import optimizers, peers, timing, workloads
    print(f"threads: {args.threads or 'default'}; {threads.describe()}")
    backends = [b for b in ("numba", "cython") if b in fb.available_backends()]
    for w in workloads.select(args.workloads):
        X, y = workloads.make_batch(w, np.float32)
        nets = {b: workloads.make_net(w, np.float32, b) for b in backends}
        first = next(iter(nets.values()))
        weights, biases = [W.copy() for W in first.weights], [b.copy() for b in first.biases]
        steps = {"peer:numpy": peers.NumpyPeer().build(w, weights, biases, X, y, optimizers.SGD).step}
        for name, net in nets.items():
            opt = fb.SGD(0.01)
            steps[f"fastbp:{name}"] = lambda net=net, opt=opt: net.train_step(X, y, opt)
        prods = products(w, X, weights)
        steps.update(prods)
        t = timing.interleaved(steps, args.repeats, progress=lambda s: print(s, end="\r", file=sys.stderr))
        print(" " * 40, end="\r", file=sys.stderr)
        floor = sum(t[label].median_s for label, _ in prods)
        peer = t["peer:numpy"].median_s
        print(f"\n{w.name}: {w.label()}")
        for label, _ in prods:
            print(f"  {label:44s} {t[label].median_s * 1e6:10.1f} us")
        print(f"  {'floor: the products alone':44s} {floor * 1e6:10.1f} us")
        print(f"  {'peer:numpy whole step':44s} {peer * 1e6:10.1f} us")
        for name in nets:
            s = t[f"fastbp:{name}"].median_s
            print(f"  {'fastbp:' + name + ' whole step':44s} {s * 1e6:10.1f} us   {peer / s:.2f}x the peer, "
                  f"{floor / s:.0%} of its time in the products")
        print(f"  ceiling: peer / floor = {peer / floor:.2f}x (the most any step calling this BLAS can show)")


if __name__ == "__main__":
    main()
