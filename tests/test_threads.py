"""Two threads training two different networks at once give the results of training them one
after the other, bit for bit, on every CPU backend.

The threads run in a child process: a backend whose thread pool is not safe for concurrent
callers (Numba's workqueue layer, for one) aborts the process, and the test must report that
rather than die with it. What is not thread-safe is documented in README.md ("Reliability").
"""
import json
import os
import signal
import subprocess
import sys

import pytest

import fuzz_report
from conftest import CPU_BACKENDS, FULL

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r'''
import json, sys, threading
import numpy as np
import fastbp as fb

backend, steps, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def job(kind):
    """A network, its data and optimizer; the two kinds differ in every respect."""
    rng = np.random.default_rng(kind)
    if kind == 0:
        net = fb.MLP([12, 32, 3], activation="tanh", loss="cross_entropy", dtype=np.float64, backend=backend, seed=1)
        X, y, opt = rng.standard_normal((48, 12)), rng.integers(0, 3, 48), fb.Adam(1e-2)
    else:
        net = fb.MLP([5, 16, 16, 2], activation="relu", loss="mse", dtype=np.float32, backend=backend, seed=2)
        X = rng.standard_normal((64, 5)).astype(np.float32)
        y, opt = rng.standard_normal((64, 2)).astype(np.float32), fb.SGD(0.01, momentum=0.9)
    return net, X, y, opt

def train(kind, barrier=None, out=None):
    net, X, y, opt = job(kind)
    if barrier is not None:
        barrier.wait()
    losses = [net.train_step(X, y, opt) for _ in range(steps)]
    hist = net.fit(X, y, epochs=2, batch_size=16, optimizer=opt, shuffle=True, seed=kind)
    result = (net.get_flat_params().tobytes().hex(), repr(losses), repr(hist["loss"]))
    if out is not None:
        out[kind] = result
    return result

sequential = {kind: train(kind) for kind in (0, 1)}
mismatches = 0
for _ in range(rounds):
    out, barrier = {}, threading.Barrier(2)
    threads = [threading.Thread(target=train, args=(kind, barrier, out)) for kind in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mismatches += sum(out.get(kind) != sequential[kind] for kind in (0, 1))
print("THREADS " + json.dumps({"rounds": rounds, "mismatches": mismatches}))
'''


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_two_threads_two_networks_equal_sequential(backend):
    steps, rounds = (300, 10) if FULL else (60, 3)
    proc = subprocess.run([sys.executable, "-c", CHILD, backend, str(steps), str(rounds)], cwd=HERE,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode < 0:
        fuzz_report.crashes.append(f"threads on {backend}: killed by {signal.Signals(-proc.returncode).name}")
    assert proc.returncode == 0, f"child exit {proc.returncode}\n{proc.stderr[-3000:]}"
    line = next(l for l in proc.stdout.splitlines() if l.startswith("THREADS "))
    result = json.loads(line[len("THREADS "):])
    fuzz_report.threads[backend] = (f"{result['rounds']} rounds of 2 threads x ({steps} train_step + 2-epoch fit): "
                                    f"{result['mismatches']} results differing from sequential")
    assert result["mismatches"] == 0, f"{backend}: {result['mismatches']} threaded results differ from sequential"
