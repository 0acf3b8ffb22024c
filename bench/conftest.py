"""The pytest-benchmark suite: every kernel and the whole training step, per backend and
per workload (the train step also per optimizer: sgd, momentum, adam), so that

    pytest bench/ --benchmark-only --benchmark-group-by=param:workload

shows the backends side by side (see bench/README.md).

Modes
  quick    FASTBP_BENCH_QUICK=1, or --benchmark-disable: workloads seed-2x2 and tiny-64,
           3 rounds each (CI runs this so the suite cannot rot; well under 2 minutes)
  default  the five standard workloads, pytest-benchmark's own calibration
  full     FASTBP_FULL=1: every workload, extras included

Every benchmark first checks its result against the NumPy reference, so a fast wrong
kernel fails instead of being timed.
"""
import os

import pytest

import fastbp as fb
from fastbp.benchmark import optimizers, peers, workloads

QUICK_WORKLOADS = ("seed-2x2", "tiny-64")


def quick_mode(config):
    return os.environ.get("FASTBP_BENCH_QUICK") == "1" or bool(config.getoption("benchmark_disable", False))


def chosen_workloads(config):
    if quick_mode(config):
        return [workloads.ALL[name] for name in QUICK_WORKLOADS]
    if os.environ.get("FASTBP_FULL") == "1":
        return list(workloads.ALL.values())
    return list(workloads.STANDARD)


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    if "workload" in names:
        chosen = chosen_workloads(metafunc.config)
        # by name (indirect), so that --benchmark-group-by=param:workload groups by the name
        metafunc.parametrize("workload", [w.name for w in chosen], indirect=True)
    if "backend" in names:
        metafunc.parametrize("backend", fb.available_backends())
    if "optimizer" in names:
        metafunc.parametrize("optimizer", list(optimizers.ALL), indirect=True)
    if "implementation" in names:      # the train step: fastbp backends, auto, and the peers
        impls = [f"fastbp:{b}" for b in fb.available_backends()] + ["fastbp:auto"] + \
                [f"peer:{p}" for p in peers.PEERS]
        metafunc.parametrize("implementation", impls)


@pytest.fixture
def workload(request):
    return workloads.ALL[request.param]


@pytest.fixture
def optimizer(request):
    return optimizers.ALL[request.param]


@pytest.fixture
def run_benchmark(benchmark, request):
    """benchmark(fn), or in quick mode a fixed 3 rounds after 1 warm-up round."""
    def run(fn):
        if quick_mode(request.config):
            return benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
        return benchmark(fn)
    return run
