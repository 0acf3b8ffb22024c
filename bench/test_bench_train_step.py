"""One whole float32 SGD training step (forward + backward + update, the workload's loss)
per implementation: each fastbp backend through the public net.train_step, backend="auto",
and the peers of fastbp.benchmark.peers (skipped, with the reason, where not installed).
Each implementation's first two losses are checked against the NumPy reference first."""
import numpy as np
import pytest

import fastbp as fb
from fastbp.benchmark import guard, peers
from fastbp.benchmark.workloads import make_batch, make_net

DTYPE = np.float32     # the benchmarks' dtype (bench/conftest.py)


def build_step(implementation, workload, X, y, ref):
    kind, name = implementation.split(":")
    if kind == "fastbp":
        net = make_net(workload, DTYPE, name)
        net.set_params(ref["weights"], ref["biases"])
        optimizer = fb.SGD(guard.LR)
        return lambda: net.train_step(X, y, optimizer)
    peer = peers.PEERS[name]
    usable, why = peer.available()
    if not usable:
        pytest.skip(f"peer {name} absent: {why}")
    supported, why = peer.supports(workload)
    if not supported:
        pytest.skip(f"peer {name} does not support {workload.name}: {why}")
    return peer.build(workload, ref["weights"], ref["biases"], X, y, guard.LR)


def test_train_step(run_benchmark, workload, implementation):
    X, y = make_batch(workload, DTYPE)
    ref = guard.reference(workload, DTYPE, X, y)
    step = build_step(implementation, workload, X, y, ref)
    losses = [step() for _ in range(guard.STEPS)]
    guard.check_losses(implementation, workload, DTYPE, losses, ref)     # raises GuardError
    assert np.isfinite(run_benchmark(step))
