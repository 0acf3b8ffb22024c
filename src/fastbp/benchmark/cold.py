"""First-call latency: in a fresh Python process, how long until `import fastbp` is done,
until the backend (or peer library) is imported, and until the first training step has
finished. What a user waits for when a script starts.

Each measurement is one new interpreter (`python -c PROBE`). For Numba, "cold" runs with
an empty temporary NUMBA_CACHE_DIR (every kernel is compiled), "warm" with the same
directory again (kernels loaded from the cache written by the cold run). Backends without
a JIT are measured the same way, so the two columns show the run-to-run noise too.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROBE = r"""
import json, sys, time
t0, cpu0 = time.perf_counter(), time.process_time()
import numpy as np
import fastbp as fb
t1 = time.perf_counter()
kind, name, workload, dtype, optimizer = sys.argv[1:6]
from fastbp.benchmark.workloads import ALL, make_batch, make_net
from fastbp.benchmark import optimizers, peers
w, spec = ALL[workload], optimizers.ALL[optimizer]
X, y = make_batch(w, np.dtype(dtype))
if kind == "fastbp":
    from fastbp._kernels import get_ops
    get_ops(name)                                   # imports the backend (and Numba, say)
    t2 = time.perf_counter()
    net = make_net(w, np.dtype(dtype), name)
    loss = net.train_step(X, y, spec.fastbp())
    name = net.backend                              # what "auto" chose
else:
    for module in peers.PEERS[name].libraries(spec):
        __import__(module)
    t2 = time.perf_counter()
    ref = make_net(w, np.dtype(dtype), "numpy")
    loss = peers.PEERS[name].build(w, ref.weights, ref.biases, X, y, spec).step()
t3, cpu3 = time.perf_counter(), time.process_time()
print(json.dumps(dict(import_fastbp_s=t1 - t0, import_backend_s=t2 - t1, first_step_s=t3 - t2,
                      to_first_step_s=t3 - t0, to_first_step_cpu_s=cpu3 - cpu0, loss=float(loss), ran_on=name)))
"""


def probe(kind, name, workload, dtype, env, optimizer="sgd"):
    """One fresh process -> its timings, plus the wall time of the whole process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, kind, name, workload, dtype, optimizer],
                          env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"cold-start probe for {kind} {name} failed: {last}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_s"] = wall
    return out


def measure(candidates, workload, dtype, warm_runs=3, progress=None, optimizer="sgd"):
    """candidates: [(kind, name)], kind "fastbp" (a backend) or "peer"; optimizer: a name
    of optimizers.ALL.
    -> [{kind, name, cold: {...}, warm: {... medians over warm_runs}}]."""
    rows = []
    for i, (kind, name) in enumerate(candidates):
        with tempfile.TemporaryDirectory(prefix="fastbp-cold-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            if progress:
                progress(f"[{i + 1}/{len(candidates)}] {kind} {name}: cold JIT cache")
            cold = probe(kind, name, workload, dtype, env, optimizer)
            warm_samples = []
            for r in range(warm_runs):
                if progress:
                    progress(f"[{i + 1}/{len(candidates)}] {kind} {name}: warm JIT cache, run {r + 1}/{warm_runs}")
                warm_samples.append(probe(kind, name, workload, dtype, env, optimizer))
        warm = {k: statistics.median(s[k] for s in warm_samples) for k in cold if k not in ("loss", "ran_on")}
        warm["ran_on"] = cold["ran_on"]
        rows.append(dict(kind=kind, name=name, cold=cold, warm=warm, warm_runs=warm_runs))
    return rows


def table(rows, workload, dtype, optimizer="sgd"):
    lines = [f"fastbp bench --cold: fresh processes, one {dtype} {optimizer} training step of {workload}; "
             "milliseconds",
             "cold = empty NUMBA_CACHE_DIR (JIT compiles everything), warm = the cache the cold run wrote "
             "(median of the warm runs); for peers, 'import fastbp' is the harness's own import; "
             "(CPU): the process's CPU time to the first step's end, every thread's (on a loaded machine "
             "the wall time waits for a core too)",
             f"  {'implementation':<20}{'import fastbp':>15}{'import backend':>16}{'first step':>12}"
             f"{'to 1st step':>13}{'(CPU)':>8}{'process':>10}"]
    for r in rows:
        for which in ("cold", "warm"):
            m = r[which]
            label = r["kind"] + ":" + r["name"] + (f"={m['ran_on']}" if r["name"] == "auto" else "")
            lines.append(f"  {label:<20}"
                         + "".join(f"{1e3 * m[k]:>{w},.0f}" for k, w in (
                             ("import_fastbp_s", 15), ("import_backend_s", 16), ("first_step_s", 12),
                             ("to_first_step_s", 13), ("to_first_step_cpu_s", 8), ("process_s", 10)))
                         + f"  {which}")
    return "\n".join(lines)
