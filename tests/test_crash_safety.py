"""Kill a process (SIGKILL) while it saves checkpoints in a loop, many times, at random moments:
the checkpoint on disk always loads and holds either the old or the new state, bit for bit.

The saver is a forked child that does nothing but save (so most kills land mid-save); it
numbers the states it writes (parameters = base + k) and publishes, in shared memory, which
state it started and which it finished saving. After the kill, the file must hold one of the
two, exactly.
"""
import glob
import mmap
import os
import signal
import time

import numpy as np
import pytest

import fastbp as fb
import fuzz_report
from conftest import FULL

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

TRIALS = 300 if FULL else 40
SIZES = [128, 256, 64]            # ~50k parameters: a save takes a few ms, long enough to be hit


def base_params(n):
    return np.random.default_rng(0).standard_normal(n)


def state(base, k, dtype):
    return (base + k).astype(dtype)


def naive_write(path, arrays):
    """A writer without the temporary file and rename: what the test must catch."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def saver(path, base, dtype, progress, naive):
    """The child: save states k = started+1, started+2, ... forever; publish progress."""
    try:
        if naive:
            import fastbp.checkpoint
            fastbp.checkpoint.write_atomically = naive_write
        net = fb.MLP(SIZES, dtype=dtype, backend="numpy", seed=0)
        opt = fb.SGD(0.1, momentum=0.9)
        k = int(progress[0])
        while True:
            k += 1
            net.set_flat_params(state(base, k, dtype))
            progress[0] = k                 # started k
            net.save(path, opt)
            progress[1] = k                 # finished k
    finally:
        os._exit(0)


def time_one_save(net, path, naive):
    """Seconds one save takes with the writer under test (the fastest of five)."""
    import fastbp.checkpoint
    atomic = fastbp.checkpoint.write_atomically
    if naive:
        fastbp.checkpoint.write_atomically = naive_write
    try:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            net.save(path, fb.SGD(0.1, momentum=0.9))
            times.append(time.perf_counter() - started)
    finally:
        fastbp.checkpoint.write_atomically = atomic
    return max(min(times), 1e-4)


def kill_trials(folder, trials, naive=False, dtype=np.float32, stop_at_first_failure=False):
    """-> (survived, killed mid-save, failure messages)."""
    path = str(folder / "model.npz")
    net = fb.MLP(SIZES, dtype=dtype, backend="numpy", seed=0)
    base = base_params(net.n_params)
    net.set_flat_params(state(base, 0, dtype))
    save_s = time_one_save(net, path, naive)
    net.save(path)
    shared = mmap.mmap(-1, 16)                              # survives fork: [started k, finished k]
    progress = np.frombuffer(shared, dtype=np.int64)
    progress[:] = 0
    rng = np.random.default_rng(2026)
    survived, mid_save, failures = 0, 0, []
    for trial in range(trials):
        pid = os.fork()
        if pid == 0:
            saver(path, base, dtype, progress, naive)
        # the clock starts when the child starts its first save, not at fork: on a loaded
        # machine the child's start-up alone can outlast a few saves' time
        first_save, waited_until = int(progress[0]) + 1, time.perf_counter() + 30
        while int(progress[0]) < first_save and time.perf_counter() < waited_until:
            pass
        assert int(progress[0]) >= first_save, "the saver child never started a save in 30 s"
        deadline = time.perf_counter() + rng.uniform(0.0, 3.0) * save_s
        while time.perf_counter() < deadline:
            pass
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        k_started, k_done = int(progress[0]), int(progress[1])
        mid_save += k_started != k_done
        try:
            loaded = fb.MLP.load(path, backend="numpy")
        except ValueError as e:
            failures.append(f"trial {trial}: the checkpoint does not load: {e}")
            if stop_at_first_failure:
                break
            net.save(path)                  # start the next trial from a good file
            progress[:] = 0
            continue
        assert list(loaded.layer_sizes) == SIZES and loaded.dtype == dtype
        params = loaded.get_flat_params()
        k = int(round(float(params[0]) - base[0]))
        if k not in (k_done, k_started) or params.tobytes() != state(base, k, dtype).tobytes():
            failures.append(f"trial {trial}: the checkpoint holds state {k} (bit-exact: "
                            f"{params.tobytes() == state(base, k, dtype).tobytes()}); the saver had "
                            f"finished {k_done} and started {k_started}")
            if stop_at_first_failure:
                break
        else:
            survived += 1
        progress[1] = k                     # the state on disk is the "finished" one of the next trial
    return survived, mid_save, failures


def test_sigkill_during_save_leaves_old_or_new_checkpoint(tmp_path):
    survived, mid_save, failures = kill_trials(tmp_path, TRIALS)
    leftovers = glob.glob(str(tmp_path / ".fastbp-*"))
    fuzz_report.kill_trials["trials"] += TRIALS
    fuzz_report.kill_trials["survived"] += survived
    fuzz_report.kill_trials["mid_save"] += mid_save
    fuzz_report.kill_trials["leftover_temp_files"] += len(leftovers)
    assert not failures, "\n".join(failures[:10])
    assert survived == TRIALS
    assert mid_save >= TRIALS // 4, f"only {mid_save} of {TRIALS} kills landed during a save: the test lost its point"
    # the folder holds the checkpoint and at most the temporary files of killed saves
    assert set(os.listdir(tmp_path)) <= {"model.npz"} | {os.path.basename(p) for p in leftovers}


def test_the_trials_catch_a_non_atomic_writer(tmp_path):
    """Control: the same trials against a writer that overwrites the file in place fail
    (up to 100 kills; most kills of the naive writer land inside its write, so the first
    failure comes within a few)."""
    survived, mid_save, failures = kill_trials(tmp_path, 100, naive=True, stop_at_first_failure=True)
    assert failures, f"100 kills of a non-atomic writer went unnoticed ({mid_save} mid-save)"
