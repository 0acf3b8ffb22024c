"""Data-parallel training over MPI (fastbp.distributed).

The 2-rank checks run in tests/mpi_scripts/check_data_parallel.py under `mpiexec -n 2`,
launched here with a timeout, so a rank left waiting in a collective fails the test instead
of blocking the suite. They need mpi4py and an `mpiexec` (the `mpich` wheel: both are in
the test extras); without them those tests are skipped, saying which is missing.
"""
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastbp as fb
import fuzz_report
from fastbp.distributed import fingerprint, shard_bounds

HERE = Path(__file__).parent
SCRIPT = HERE / "mpi_scripts" / "check_data_parallel.py"
TIMEOUT_S = 120          # the whole 2-rank run takes a few seconds; a hang is what this catches
RANKS = 2


def find_mpiexec():
    """The mpiexec beside this Python (the mpich wheel's: the MPI mpi4py loads), else PATH's."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def why_no_mpi():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install mpi4py mpich)"
    if find_mpiexec() is None:
        return "no mpiexec found (pip install mpich)"
    return None


needs_mpi = pytest.mark.skipif(why_no_mpi() is not None, reason=str(why_no_mpi()))


def run_mpi(args, timeout=TIMEOUT_S, n=RANKS):
    """mpiexec -n RANKS ARGS, killed (the whole process group) after `timeout` seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    proc = subprocess.Popen([find_mpiexec(), "-n", str(n)] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {' '.join(map(str, args))} still running after {timeout} s "
                    f"(a rank hanging in a collective?); output so far:\n{out}")
    return proc.returncode, out


@pytest.fixture(scope="module")
def two_rank_run():
    """Every check of the MPI script, in one 2-rank run -> {check name: "PASS" or the failure}."""
    code, out = run_mpi([sys.executable, str(SCRIPT)])
    results = {}
    for line in out.splitlines():
        verdict, _, rest = line.partition(" ")
        if verdict in ("PASS", "FAIL"):
            name, _, why = rest.partition(": ")
            results[name] = "PASS" if verdict == "PASS" else why
    return code, out, results


# ranks that built different networks or resumed different states: a ValueError on every rank, never a hang
NETWORK_CHECKS = ["different_hidden_sizes", "different_activation", "different_output_activation",
                  "different_loss", "different_reduction", "different_l2", "different_dtype",
                  "different_optimizer",
                  "different_learning_rate", "resumed_different_rng_state", "resumed_different_checkpoints"]
MPI_CHECKS = ["sgd_mse_uneven_batches", "l2_penalty_mean_and_sum", "adam_cross_entropy_sum_tiny_batches",
              "bce_mean_relu_validation",
              "shuffle_same_seed", "shuffle_no_seed_replicas_agree", "nan_on_one_rank",
              "different_data_on_ranks", "non_finite_loss_on_one_shard",
              "root_writes_checkpoints_and_callback_stops_all", "bad_comm", *NETWORK_CHECKS]


@needs_mpi
@pytest.mark.parametrize("check", MPI_CHECKS)
def test_two_ranks(two_rank_run, check):
    code, out, results = two_rank_run
    with fuzz_report.hostile_case("MPI and limits") if check in NETWORK_CHECKS else contextlib.nullcontext():
        assert check in results, f"check {check!r} did not report (exit code {code}); output:\n{out}"
        assert results[check] == "PASS", f"{check}: {results[check]}"


@needs_mpi
def test_two_rank_script_ran_every_check(two_rank_run):
    code, out, results = two_rank_run
    assert sorted(results) == sorted(MPI_CHECKS), out
    assert code == 0, out


@needs_mpi
def test_fastbp_train_under_mpiexec(tmp_path):
    """`mpiexec -n 2 fastbp train ...`: trains, rank 0 alone prints and writes the checkpoint."""
    save = tmp_path / "net.npz"
    code, out = run_mpi([sys.executable, "-m", "fastbp", "train", "--epochs", "2", "--backend", "numpy",
                         "--save", str(save)])
    assert code == 0, out
    assert save.exists(), out
    assert "data-parallel over 2 MPI ranks" in out, out
    epoch_lines = [line for line in out.splitlines() if re.match(r"epoch\s+1/2\b", line)]
    assert len(epoch_lines) == 1, f"expected rank 0 alone to print epoch 1, got:\n{out}"
    assert len(re.findall(r"^test accuracy", out, flags=re.M)) == 1, out
    fb.MLP.load(save)


@needs_mpi
def test_fastbp_train_error_on_every_rank_exits_cleanly(tmp_path):
    """Bad input under mpiexec: one clear error line (from rank 0), nonzero exit, no hang."""
    code, out = run_mpi([sys.executable, "-m", "fastbp", "train", "--epochs", "1", "--backend", "numpy",
                         "--save", str(tmp_path / "missing-folder" / "net.npz")], timeout=60)
    assert code != 0, out
    errors = [line for line in out.splitlines() if line.startswith("fastbp train: error:")]
    assert len(errors) == 1 and "--save: cannot write" in errors[0], out


# ---- without MPI ----

@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 25, 103])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 8])
def test_shards_cover_every_row_once(n, size):
    bounds = [shard_bounds(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    for (a, b), (c, _) in zip(bounds, bounds[1:]):
        assert b == c                                  # contiguous, in rank order
    counts = [b - a for a, b in bounds]
    assert max(counts) - min(counts) <= 1 and min(counts) >= 0
    assert counts == sorted(counts, reverse=True)     # the extra rows go to the first ranks


def test_fingerprint_tells_arrays_apart():
    a = np.arange(12.0).reshape(3, 4)
    b = a.copy()
    assert fingerprint(a) == fingerprint(b) == fingerprint(np.asfortranarray(a))
    b[2, 3] += 1e-12
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) != fingerprint(a.astype(np.float32))
    assert fingerprint(a) != fingerprint(a.reshape(4, 3))


def test_import_and_fit_never_import_mpi4py():
    code = ("import sys, numpy as np, fastbp as fb\n"
            "net = fb.MLP([2, 3, 1], backend='numpy', seed=0)\n"
            "net.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=1, batch_size=4, progress=False)\n"
            "assert 'mpi4py' not in sys.modules, 'fastbp imported mpi4py'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@needs_mpi
def test_error_on_one_rank_alone_aborts_the_job_instead_of_hanging():
    """run_on_every_rank: a rank failing alone (the others waiting in a collective) aborts the job."""
    code = ("import sys\n"
            "from mpi4py import MPI\n"
            "from fastbp.distributed import run_on_every_rank\n"
            "comm = MPI.COMM_WORLD\n"
            "def body():\n"
            "    if comm.Get_rank() == 1:\n"
            "        raise ValueError('data file missing on this machine')\n"
            "    comm.Barrier()\n"
            "run_on_every_rank(comm, body, grace_s=1.0)\n")
    status, out = run_mpi([sys.executable, "-c", code], timeout=60)
    assert status != 0, out
    assert "rank 1 of 2 failed alone (ValueError: data file missing on this machine)" in out, out
