"""Where a compiled backend's float32 step goes: forward only, forward + loss, loss and
gradients, and the whole SGD train_step, for Numba and Cython, interleaved in one process
(medians of rounds, microseconds). The differences are the parts: loss - forward is the
loss pass, train - gradient the update, and so on.

    python bench/step_parts.py [--threads N] [--workloads mnist,wide-1024] [--activation tanh] [--repeats 9]

--activation replaces the workload's hidden activation (e.g. to see what sigmoid or tanh
costs against relu on the same shapes).
"""
import argparse
import dataclasses
import sys

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workloads", default="mnist,wide-1024")
    parser.add_argument("--activation", default=None)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)

    from fastbp.benchmark import threads
    if args.threads:
        threads.before_imports(args.threads)
    import fastbp as fb
    from fastbp.benchmark import timing, workloads
    if args.threads:
        threads.after_imports(args.threads)
        fb.set_num_threads(args.threads)
    backends = [b for b in ("numba", "cython") if b in fb.available_backends()]
    for w in workloads.select(args.workloads):
        if args.activation:
            w = dataclasses.replace(w, activation=args.activation)
        X, y = workloads.make_batch(w, np.float32)
        steps = {}
        for name in backends:
            net, opt = workloads.make_net(w, np.float32, name), fb.SGD(0.01)
            ops, state = net._ops, net._state
            steps[f"{name} forward"] = lambda ops=ops, state=state: ops.forward(state, X)
            steps[f"{name} loss"] = lambda ops=ops, state=state: ops.loss(state, X, y)
            steps[f"{name} gradient"] = lambda ops=ops, state=state: ops.loss_and_grad(state, X, y)
            steps[f"{name} train_step"] = lambda net=net, opt=opt: net.train_step(X, y, opt)
        t = timing.interleaved(steps, args.repeats, progress=lambda s: print(s, end="\r", file=sys.stderr))
        print(" " * 40, end="\r", file=sys.stderr)
        print(f"{w.name}: {w.label()}, threads {args.threads or 'default'}")
        for label, tm in t.items():
            print(f"  {label:20s} {tm.median_s * 1e6:10.1f} us   IQR {tm.spread:.0%}")


if __name__ == "__main__":
    main()
