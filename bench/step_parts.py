"""Where a compiled backend's float32 step goes: forward only, forward + loss, loss and
gradients, and the whole train_step, for Numba and Cython, interleaved in one process
(medians of rounds, microseconds). The differences are the parts: loss - forward is the
loss pass, train - gradient the update, and so on.

    python bench/step_parts.py [--threads N] [--workloads mnist,wide-1024] [--activation tanh] [--repeats 9]
                               [--optimizer sgd,momentum,adam]

--activation replaces the workload's hidden activation (e.g. to see what sigmoid or tanh
costs against relu on the same shapes).

--optimizer (default sgd) times train_step with each rule of fastbp.benchmark.optimizers.
For a rule with state (momentum, adam) it also times the passes the step makes after the
stored gradient, each alone on copies of the buffers: the finiteness scan of the gradient
(ops.all_finite) and the update over the flat buffers (ops.sgd_update / ops.adam_update);
then `gradient + scan + update` is the step as the parts add up, to set beside the step.
Plain SGD updates each W inside its weight-gradient GEMM instead (no stored gradient, no
scan, no pass).
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
    parser.add_argument("--optimizer", default="sgd")
    args = parser.parse_args(argv)

    from fastbp.benchmark import threads
    fb = threads.for_script(args.threads)
    from fastbp.benchmark import optimizers, timing, workloads
    rules = optimizers.select(args.optimizer)
    backends = [b for b in ("numba", "cython") if b in fb.available_backends()]
    for w in workloads.select(args.workloads):
        if args.activation:
            w = dataclasses.replace(w, activation=args.activation)
        X, y = workloads.make_batch(w, np.float32)
        steps, sums = {}, {}
        for name in backends:
            net = workloads.make_net(w, np.float32, name)
            ops, state = net._ops, net._state
            steps[f"{name} forward"] = lambda ops=ops, state=state: ops.forward(state, X)
            steps[f"{name} loss"] = lambda ops=ops, state=state: ops.loss(state, X, y)
            steps[f"{name} gradient"] = lambda ops=ops, state=state: ops.loss_and_grad(state, X, y)
            for rule in rules:
                trained, opt = workloads.make_net(w, np.float32, name), rule.fastbp()
                steps[f"{name} {rule.name} train_step"] = lambda net=trained, opt=opt: net.train_step(X, y, opt)
                if rule.name != "sgd":
                    steps.update(update_parts(name, rule, ops, state, X, y))
                    sums[f"{name} {rule.name}"] = [f"{name} gradient", f"{name} finite scan",
                                                   f"{name} {rule.name} update"]
        t = timing.interleaved(steps, args.repeats, progress=lambda s: print(s, end="\r", file=sys.stderr))
        print(" " * 40, end="\r", file=sys.stderr)
        print(f"{w.name}: {w.label()}, {w.n_params:,} params, threads {args.threads or 'default'}")
        for label, tm in t.items():
            print(f"  {label:28s} {tm.median_s * 1e6:10.1f} us   IQR {tm.spread:.0%}")
        for label, parts in sums.items():
            added = sum(t[p].median_s for p in parts)
            step = t[f"{label} train_step"].median_s
            print(f"  {label + ' gradient + scan + update':42s} {added * 1e6:10.1f} us   "
                  f"(the step: {step * 1e6:.1f} us)")
        for name in backends:
            if f"{name} sgd train_step" in t:
                base = t[f"{name} sgd train_step"].median_s
                for rule in rules:
                    if rule.name != "sgd":
                        other = t[f"{name} {rule.name} train_step"].median_s
                        print(f"  {name} {rule.name} - sgd train_step: {(other - base) * 1e6:10.1f} us "
                              f"({other / base:.2f}x)")


def update_parts(name, rule, ops, state, X, y):
    """{label: fn}: the finiteness scan and the update pass alone, on copies of the
    network's flat buffers holding a real gradient (so the update sees real magnitudes)."""
    ops.loss_and_grad(state, X, y)
    params, grads = state.params.flat.copy(), state.grads.flat.copy()
    s1, s2 = np.zeros_like(params), np.zeros_like(params)
    parts = {f"{name} finite scan": lambda: ops.all_finite(grads)}
    if rule.is_adam:
        b1, b2 = rule.betas
        parts[f"{name} {rule.name} update"] = lambda: ops.adam_update(params, grads, s1, s2, 10, rule.lr, b1, b2,
                                                                      rule.eps, 0.0)
    else:
        parts[f"{name} {rule.name} update"] = lambda: ops.sgd_update(params, grads, s1, rule.lr, rule.momentum,
                                                                     0.0, False)
    return parts


if __name__ == "__main__":
    main()
