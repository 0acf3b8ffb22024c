"""The side-by-side comparison: per workload and optimizer, every fastbp backend,
backend="auto" and every installed peer, checked (guard.py), then timed interleaved in this
process (timing.py), all optimizers of a workload in the same rounds so that their ratios
are same-run ratios. -> one plain dict, the record that report.py prints and saves.
"""
import platform
import sys
import time
from datetime import datetime, timezone

import numpy as np

from . import guard, optimizers as optimizer_specs, timing
from .workloads import make_batch, make_net

SETTINGS = {       # repeats, block length, warm-up per candidate, GEMM size
    "default": dict(repeats=15, block_s=0.01, warmup_s=0.2, gemm_n=2048),
    "quick": dict(repeats=3, block_s=0.002, warmup_s=0.02, gemm_n=512),
}


def fastbp_candidates(workload, dtype, backends, optimizer, X, y, ref):
    """{label: step} for each backend and "auto", each checked against the reference."""
    steps, rows = {}, []
    for backend in list(backends) + ["auto"]:
        net = make_net(workload, dtype, backend)
        net.set_params(ref["weights"], ref["biases"])
        rule = optimizer.fastbp()

        def step(net=net, rule=rule):
            return net.train_step(X, y, rule)
        label = f"fastbp:{backend}" if backend != "auto" else f"fastbp:auto={net.backend}"
        loss_error, param_check = guard.run_steps(label, workload, dtype, step,
                                                  lambda net=net: (net.weights, net.biases), ref)
        steps[label] = step
        rows.append(dict(name=label, kind="fastbp", backend=net.backend, auto=backend == "auto",
                         status="ok", check_error=loss_error, param_check=param_check))
    return steps, rows


def peer_candidates(workload, dtype, peers, optimizer, absent, X, y, ref):
    steps, rows = {}, []
    for peer in peers:
        label = f"peer:{peer.name}"
        usable, why = (False, absent[peer.name]) if peer.name in absent else peer.available(optimizer)
        if not usable:
            rows.append(dict(name=label, kind="peer", status="absent", reason=why))
            continue
        ok, why = peer.supports(workload)
        if not ok:
            rows.append(dict(name=label, kind="peer", status="unsupported", reason=why))
            continue
        stepper = peer.build(workload, ref["weights"], ref["biases"], X, y, optimizer)
        loss_error, param_check = guard.run_steps(label, workload, dtype, stepper.step, stepper.params, ref)
        steps[label] = stepper.step
        rows.append(dict(name=label, kind="peer", status="ok", check_error=loss_error, param_check=param_check))
    return steps, rows


def run_workload(workload, dtype, backends, peers, absent, settings, peak_gflops, progress=None,
                 optimizers=(optimizer_specs.SGD,)):
    """-> one record per optimizer, in the order given."""
    X, y = make_batch(workload, dtype)
    ref = guard.reference(workload, dtype, X, y, optimizers[0])
    auto_backend = make_net(workload, dtype, "auto").backend          # auto's choice for this net
    gradient_errors = {}
    for backend in dict.fromkeys(list(backends) + [auto_backend]):
        if backend != "numpy":                    # numpy is the reference itself
            if progress:
                progress(f"checking {backend} against the reference")
            gradient_errors[backend] = guard.check_gradients(workload, dtype, X, y, backend, ref)
    all_steps, all_rows = {}, {}
    for optimizer in optimizers:
        if progress:
            progress(f"checking every {optimizer.name} step against the reference")
        if ref["optimizer"] != optimizer:
            ref = guard.reference(workload, dtype, X, y, optimizer)
        f_steps, f_rows = fastbp_candidates(workload, dtype, backends, optimizer, X, y, ref)
        p_steps, p_rows = peer_candidates(workload, dtype, peers, optimizer, absent, X, y, ref)
        all_rows[optimizer.name] = f_rows + p_rows
        all_steps.update({_key(optimizer, label): step for label, step in {**f_steps, **p_steps}.items()})
    timings = timing.interleaved(all_steps, settings["repeats"], settings["block_s"], settings["warmup_s"],
                                 progress)
    for optimizer in optimizers:
        for row in all_rows[optimizer.name]:
            t = timings.get(_key(optimizer, row["name"]))
            if t is None:
                continue
            row.update(median_us=t.median_s * 1e6, q1_us=t.q1_s * 1e6, q3_us=t.q3_s * 1e6,
                       rounds=t.rounds, calls_per_round=t.calls_per_round,
                       gflops=workload.flops / t.median_s / 1e9)
            row["pct_peak"] = 100.0 * row["gflops"] / peak_gflops
    sgd_times = {r["name"]: r["median_us"] for r in all_rows.get("sgd", ()) if r["status"] == "ok"}
    records = []
    for optimizer in optimizers:
        rows = all_rows[optimizer.name]
        for row in rows:
            if optimizer.name != "sgd" and row.get("name") in sgd_times and "median_us" in row:
                row["time_vs_sgd"] = row["median_us"] / sgd_times[row["name"]]
        records.append(_summary(workload, optimizer, rows, gradient_errors, dtype))
    return records


def _key(optimizer, label):
    return f"{label} {optimizer.name}"


def _summary(workload, optimizer, rows, gradient_errors, dtype):
    timed = [r for r in rows if r["status"] == "ok"]
    best = lambda rs: min(rs, key=lambda r: r["median_us"]) if rs else None   # noqa: E731
    best_fastbp = best([r for r in timed if r["kind"] == "fastbp" and not r["auto"]])
    auto = next((r for r in timed if r.get("auto")), None)
    best_peer = best([r for r in timed if r["kind"] == "peer"])
    speedup = lambda r: best_peer["median_us"] / r["median_us"] if (r and best_peer) else None  # noqa: E731
    return dict(name=workload.name, sizes=list(workload.sizes), batch=workload.batch,
                activation=workload.activation, output_activation=workload.output_activation,
                loss=workload.loss, n_params=workload.n_params, flops=workload.flops,
                optimizer=dict(name=optimizer.name, **optimizer.hyperparameters()),
                gradient_errors=gradient_errors, tolerance=guard.tolerance(workload, dtype),
                results=rows,
                best_fastbp=best_fastbp and best_fastbp["name"], best_peer=best_peer and best_peer["name"],
                speedup_best=speedup(best_fastbp), speedup_auto=speedup(auto))


def machine():
    import os

    import fastbp
    info = dict(platform=platform.platform(), python=platform.python_version(),
                processor=_cpu_model(), cpu_count=os.cpu_count(), fastbp=fastbp.__version__,
                numpy=np.__version__)
    for module in ("numba", "torch", "jax", "sklearn", "scipy"):
        if module in sys.modules:
            info[module] = getattr(sys.modules[module], "__version__", "?")
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(workloads, dtype, backends, peers, settings, progress=None, command=None, note="", thread_limit=None,
        optimizers=(optimizer_specs.SGD,)):
    """The whole comparison -> the record (a JSON-ready dict): `workloads` holds one entry
    per workload and optimizer, the optimizers of a workload side by side."""
    from . import threads
    absent = {}
    for peer in peers:
        ok, why = peer.available()
        if not ok:
            absent[peer.name] = why
    dtype = np.dtype(dtype)
    if progress:
        progress("measuring the GEMM peak")
    started = time.perf_counter()
    peak_before = timing.gemm_peak(settings["gemm_n"], dtype=dtype)
    records = []
    for i, workload in enumerate(workloads):
        say = (lambda m, i=i, w=workload: progress(f"[{i + 1}/{len(workloads)} {w.name}] {m}")) if progress else None
        records += run_workload(workload, dtype, backends, peers, absent, settings, peak_before, say, optimizers)
    if progress:
        progress("measuring the GEMM peak again")
    peak_after = timing.gemm_peak(settings["gemm_n"], dtype=dtype)
    peak = max(peak_before, peak_after)
    for record in records:                         # percentages against the better of the two
        for row in record["results"]:
            if "gflops" in row:
                row["pct_peak"] = 100.0 * row["gflops"] / peak
    from fastbp._kernels import unavailable_reasons
    return dict(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=command,
        note=note, machine=machine(), thread_limit=thread_limit, threads=threads.describe(), dtype=dtype.name,
        settings=dict(settings),
        optimizers=[dict(name=o.name, **o.hyperparameters()) for o in optimizers],
        gemm=dict(dtype=dtype.name, n=settings["gemm_n"], gflops_before=peak_before,
                  gflops_after=peak_after, peak_gflops=peak),
        backends=list(backends), unavailable_backends=unavailable_reasons(),
        peers=[p.name for p in peers], absent_peers=absent,
        workloads=records, seconds=time.perf_counter() - started,
        flop_count="6*B*sum(n_in*n_out) - 2*B*n_0*n_1 (matrix products only; see fastbp.benchmark.workloads)",
    )
