"""A measurement prototype, not fastbp code: momentum SGD and Adam fused into the Numba
backend's gradient pass, timed beside the shipped steps, to size the gain before the
kernels get it (results/adam.md). Written against the internals of
fastbp._kernels.numba_cpu.step (its forward, delta and bound pieces); it stops running when
those move, and then has done its job.

    python bench/fused_update_prototype.py [--threads N] [--workloads mnist,mnist-b256,wide-1024] [--repeats 15]

Both fused steps start as the plain-SGD step does (step._sgd_pass): forward + loss, every
delta with the old weights, then the bound sum|A_prev| * sum|delta| that shows every
weight-gradient product finite before anything is written (a failed bound would take
the stored-gradient path; the prototype just reports it). Then, layer by layer:

  momentum  V = mu * V + A_prev.T @ delta as ONE GEMM (beta = mu) into the velocity
            itself, then W -= lr * V: the gradient is never stored, scanned or re-read.
  adam      dW = A_prev.T @ delta into that layer's slice of the gradient buffer, then
            Adam over the same slice at once, while it is in cache; no scan of the whole
            gradient (the bound stood in for it) and no second pass over it.
  sgd       the shipped step, for reference: W = W - lr * A_prev.T @ delta in the GEMM.

Each prototype's parameters after two steps are checked against the shipped Numba step
with the same optimizer (the guard's rule) before anything is timed.
"""
import argparse
import math
import sys

import numpy as np


def build():
    from numba import njit

    from fastbp._kernels import plan as P
    from fastbp._kernels.numba_cpu import step as F
    from fastbp._kernels.numba_cpu.checks import abs_sum
    from fastbp._kernels.numba_cpu.optimizers import adam_update
    from fastbp._kernels.numba_cpu.options import JIT
    from fastbp._kernels.numba_cpu.products import matmul_tn, matmul_tn_into

    @njit(**JIT)
    def prologue(X, y, labels, params, ws, plan):
        """-> (ok, loss): forward, loss, deltas and the finiteness bound, nothing written."""
        x_abs = abs_sum(X)
        total = F._forward_loss(X, y, labels, params, ws, plan)
        if not math.isfinite(total):
            return False, total
        F._deltas(params, ws, plan, X.shape[0])
        return F._products_bounded(x_abs, ws, plan, X.shape[0]), total

    @njit(**JIT)
    def fused_momentum(X, y, labels, params, grads, ws, plan, velocity, lr, mu):
        ok, total = prologue(X, y, labels, params, ws, plan)
        if not ok:
            return P.NONFINITE, total
        T = ws.dtype.type
        lr_, mu_ = T(lr), T(mu)
        acc, m = ws[plan[P.ACC_AT]:].view(np.float64), X.shape[0]
        for l in range(plan[P.N_LAYERS]):
            A_prev = X if l == 0 else F._rows(ws, plan, l - 1, P.A_AT, m)
            delta, db = F._rows(ws, plan, l, P.D_AT, m), F._b(grads, plan, l)
            F._bias_gradient(delta, db, acc)
            pb, vb = F._b(params, plan, l), F._b(velocity, plan, l)
            for j in range(pb.size):
                vj = mu_ * vb[j] + db[j]
                vb[j] = vj
                pb[j] -= lr_ * vj
            V, W = F._W(velocity, plan, l), F._W(params, plan, l)
            if not matmul_tn_into(T(1), A_prev, delta, mu_, V, plan[P.BLAS]):
                g = F._W(grads, plan, l)               # below the BLAS threshold: loops, then the rule
                matmul_tn(A_prev, delta, g, plan[P.BLAS])
                V *= mu_
                V += g
            v, p = V.ravel(), W.ravel()
            for i in range(p.size):
                p[i] -= lr_ * v[i]
        return P.OK, total

    @njit(**JIT)
    def fused_adam(X, y, labels, params, grads, ws, plan, mom, vel, step, lr, beta1, beta2, eps):
        ok, total = prologue(X, y, labels, params, ws, plan)
        if not ok:
            return P.NONFINITE, total
        acc, m = ws[plan[P.ACC_AT]:].view(np.float64), X.shape[0]
        for l in range(plan[P.N_LAYERS]):
            A_prev = X if l == 0 else F._rows(ws, plan, l - 1, P.A_AT, m)
            delta, db = F._rows(ws, plan, l, P.D_AT, m), F._b(grads, plan, l)
            F._bias_gradient(delta, db, acc)
            adam_update(F._b(params, plan, l), db, F._b(mom, plan, l), F._b(vel, plan, l), step, lr, beta1, beta2,
                        eps, 0.0)
            g = F._W(grads, plan, l)
            matmul_tn(A_prev, delta, g, plan[P.BLAS])
            adam_update(F._W(params, plan, l).ravel(), g.ravel(), F._W(mom, plan, l).ravel(),
                        F._W(vel, plan, l).ravel(), step, lr, beta1, beta2, eps, 0.0)
        return P.OK, total

    return fused_momentum, fused_adam


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workloads", default="mnist,mnist-b256,wide-1024")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)

    from fastbp.benchmark import threads
    threads.for_script(args.threads)
    from fastbp.benchmark import guard, optimizers, timing, workloads
    fused_momentum, fused_adam = build()
    no_labels = np.zeros(0, np.intp)
    for w in workloads.select(args.workloads):
        X, y = workloads.make_batch(w, np.float32)
        steps = {}
        for rule in optimizers.ALL.values():
            net, opt = workloads.make_net(w, np.float32, "numba"), rule.fastbp()
            steps[f"shipped {rule.name}"] = lambda net=net, opt=opt: net.train_step(X, y, opt)
        for rule in (optimizers.MOMENTUM, optimizers.ADAM):
            proto = prototype_step(rule, workloads.make_net(w, np.float32, "numba"), X, y, no_labels,
                                   fused_momentum, fused_adam)
            ref = guard.reference(w, np.float32, X, y, rule)
            check = workloads.make_net(w, np.float32, "numba")
            check.set_params(ref["weights"], ref["biases"])
            checked = prototype_step(rule, check, X, y, no_labels, fused_momentum, fused_adam)
            guard.run_steps(f"prototype {rule.name}", w, np.float32, checked,
                            lambda check=check: (check.weights, check.biases), ref)
            steps[f"fused {rule.name}"] = proto
        t = timing.interleaved(steps, args.repeats, progress=lambda s: print(s, end="\r", file=sys.stderr))
        print(" " * 40, end="\r", file=sys.stderr)
        sgd = t["shipped sgd"].median_s
        print(f"{w.name}: {w.label()}, {w.n_params:,} params, numba, threads {args.threads or 'default'}")
        for label, tm in t.items():
            print(f"  {label:18s} {tm.median_s * 1e6:10.1f} us   IQR {tm.spread:4.0%}   {tm.median_s / sgd:.2f}x sgd")
        for name in ("momentum", "adam"):
            shipped, fused = t[f"shipped {name}"].median_s, t[f"fused {name}"].median_s
            print(f"  {name}: fused saves {(shipped - fused) * 1e6:.1f} us of {shipped * 1e6:.1f} "
                  f"({1 - fused / shipped:.0%}); the update costs {(fused - sgd) * 1e6:.1f} us over sgd "
                  f"(shipped: {(shipped - sgd) * 1e6:.1f} us)")


def prototype_step(rule, net, X, y, labels, fused_momentum, fused_adam):
    """-> step(): one fused step of `rule` on `net`'s buffers (its own state arrays); loss."""
    ops, state = net._ops, net._state
    workspace = ops.prepared(state, X.shape[0]).workspace
    ws, plan = workspace.buffer, workspace.plan
    params, grads = state.params.flat, state.grads.flat
    s1, s2 = np.zeros_like(params), np.zeros_like(params)
    count = [0]

    def step():
        count[0] += 1
        if rule.is_adam:
            status, loss = fused_adam(X, y, labels, params, grads, ws, plan, s1, s2, count[0], rule.lr,
                                      rule.betas[0], rule.betas[1], rule.eps)
        else:
            status, loss = fused_momentum(X, y, labels, params, grads, ws, plan, s1, rule.lr,
                                          rule.momentum)
        if status:
            raise FloatingPointError(f"prototype {rule.name}: the bound failed (status {status})")
        return loss
    return step


if __name__ == "__main__":
    main()
