"""One whole float32 training step (forward + backward + update, the workload's loss) per
implementation and optimizer (plain SGD, momentum SGD, Adam; fastbp.benchmark.optimizers):
each fastbp backend through the public net.train_step, backend="auto", and the peers of
fastbp.benchmark.peers with their own optimizers (skipped, with the reason, where not
installed). Each implementation's first two losses and its parameters after them are
checked against the NumPy reference first."""
import numpy as np
import pytest

from fastbp.benchmark import guard, peers
from fastbp.benchmark.workloads import make_batch, make_net

DTYPE = np.float32     # the benchmarks' dtype (bench/conftest.py)


def build_stepper(implementation, workload, optimizer, X, y, ref):
    kind, name = implementation.split(":")
    if kind == "fastbp":
        net = make_net(workload, DTYPE, name)
        net.set_params(ref["weights"], ref["biases"])
        rule = optimizer.fastbp()
        return peers.Stepper(lambda: net.train_step(X, y, rule), lambda: (net.weights, net.biases))
    peer = peers.PEERS[name]
    usable, why = peer.available(optimizer)
    if not usable:
        pytest.skip(f"peer {name} absent: {why}")
    supported, why = peer.supports(workload)
    if not supported:
        pytest.skip(f"peer {name} does not support {workload.name}: {why}")
    return peer.build(workload, ref["weights"], ref["biases"], X, y, optimizer)


def test_train_step(run_benchmark, workload, optimizer, implementation):
    X, y = make_batch(workload, DTYPE)
    ref = guard.reference(workload, DTYPE, X, y, optimizer)
    stepper = build_stepper(implementation, workload, optimizer, X, y, ref)
    guard.run_steps(implementation, workload, DTYPE, stepper.step, stepper.params, ref)   # raises GuardError
    assert np.isfinite(run_benchmark(stepper.step))
