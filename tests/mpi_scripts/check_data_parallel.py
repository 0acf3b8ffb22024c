"""Data-parallel fit over MPI against one-process fit; run under `mpiexec -n 2` (any n >= 2 works).

    mpiexec -n 2 python tests/mpi_scripts/check_data_parallel.py [CHECK ...]

Every rank runs every check (the single-process reference too, locally). Each check's
outcome is gathered on rank 0, which prints one line per check, "PASS name" or
"FAIL name: why" (the first failing rank's reason), and the script exits 1 if any failed.
tests/test_distributed.py launches it with a timeout: a rank hanging in a collective fails
the test instead of blocking.
"""
import sys
import traceback

import numpy as np
from mpi4py import MPI

import fastbp as fb
import fastbp.checkpoint
import fastbp.training
from fastbp.distributed import shard_bounds

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
RTOL = 1e-10


def data(n, n_in, n_out, loss, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, size=n)
    elif loss == "bce":
        y = (rng.uniform(size=(n, n_out)) > 0.5).astype(np.float64)
    else:
        y = rng.normal(size=(n, n_out))
    return X, y


def make(sizes, loss, reduction="mean", activation="tanh", seed=1, l2=0.0):
    return fb.MLP(sizes, activation=activation, loss=loss, reduction=reduction, dtype=np.float64,
                  backend="numpy", seed=seed, l2=l2)


def assert_close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.abs(b).max(), 1e-300)
    err = np.abs(a - b).max() / scale
    assert err <= RTOL, f"{what}: max |difference| / max |value| = {err:.3g} > {RTOL}"


def assert_same_on_every_rank(flat, what):
    flats = comm.allgather(flat)
    for r, other in enumerate(flats):
        assert np.array_equal(other, flats[0]), f"{what}: rank {r} differs from rank 0 (bitwise)"


def equivalence(sizes, loss, reduction, optimizer, n, batch_size, epochs=3, activation="tanh", l2=0.0, **fit_args):
    """fit with comm gives the weights and the history of fit without it (shuffle=False unless given)."""
    fit_args.setdefault("shuffle", False)
    X, y = data(n, sizes[0], sizes[-1], loss)
    one, many = make(sizes, loss, reduction, activation, l2=l2), make(sizes, loss, reduction, activation, l2=l2)
    h1 = one.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer(), progress=False, **fit_args)
    h2 = many.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer(), progress=False,
                  comm=comm, **fit_args)
    assert_close(many.get_flat_params(), one.get_flat_params(), "weights vs one process")
    assert_close(h2["loss"], h1["loss"], "per-epoch loss vs one process")
    assert_same_on_every_rank(many.get_flat_params(), "weights")
    assert not np.array_equal(many.get_flat_params(), make(sizes, loss, reduction, activation).get_flat_params()), \
        "training changed nothing"


# ---- the checks ----

def check_sgd_mse_uneven_batches():
    # 103 rows in batches of 25: each global batch splits unevenly over 2 ranks (13 + 12), and
    # the last batch of 3 rows too (2 + 1)
    assert 25 % size and 103 % 25
    equivalence([5, 16, 8, 3], "mse", "mean", lambda: fb.SGD(lr=0.05, momentum=0.9), n=103, batch_size=25)


def check_l2_penalty_mean_and_sum():
    # the L2 term held once per global batch, uneven shards and (batch 1) ranks without rows
    equivalence([5, 16, 3], "mse", "mean", lambda: fb.SGD(lr=0.05, momentum=0.9), n=103, batch_size=25, l2=0.5)
    equivalence([4, 12, 5], "cross_entropy", "sum", lambda: fb.Adam(lr=1e-2), n=9, batch_size=1, epochs=2, l2=0.3)


def check_adam_cross_entropy_sum_tiny_batches():
    # batch 1 (and a last batch of 1 with batch 7): some ranks get no rows at all
    equivalence([4, 12, 5], "cross_entropy", "sum", lambda: fb.Adam(lr=1e-2), n=50, batch_size=7)
    equivalence([4, 12, 5], "cross_entropy", "sum", lambda: fb.Adam(lr=1e-3), n=9, batch_size=1, epochs=2)


def check_bce_mean_relu_validation():
    X_val, y_val = data(20, 6, 2, "bce", seed=5)
    equivalence([6, 10, 10, 2], "bce", "mean", lambda: fb.Adam(lr=1e-2), n=61, batch_size=16,
                activation="relu", validation_data=(X_val, y_val))


def check_shuffle_same_seed():
    equivalence([5, 16, 3], "mse", "mean", lambda: fb.SGD(lr=0.05), n=70, batch_size=9, shuffle=True, seed=3)


def check_shuffle_no_seed_replicas_agree():
    X, y = data(64, 5, 3, "mse")
    net = make([5, 8, 3], "mse", seed=rank)         # different starting weights on purpose:
    net.fit(X, y, epochs=2, batch_size=10, optimizer=fb.Adam(lr=1e-2), shuffle=True, seed=None,
            progress=False, comm=comm)              # rank 0's are broadcast, the shuffle seed too
    assert_same_on_every_rank(net.get_flat_params(), "weights after an unseeded shuffled fit")


def check_nan_on_one_rank():
    X, y = data(40, 5, 3, "mse")
    if rank == size - 1:
        X = X.copy()
        X[7, 2] = np.nan
    net = make([5, 8, 3], "mse")
    before = net.get_flat_params()
    try:
        net.fit(X, y, epochs=2, batch_size=8, optimizer=fb.SGD(lr=0.1), progress=False, comm=comm)
    except ValueError as e:
        assert "NaN" in str(e), f"the error does not say what is wrong: {e}"
        if rank != size - 1:
            assert f"rank {size - 1}" in str(e), f"the error does not name the failing rank: {e}"
    else:
        raise AssertionError("fit accepted NaN on one rank")
    assert np.array_equal(net.get_flat_params(), before), "a rejected fit changed the weights"


def check_different_data_on_ranks():
    X, y = data(40, 5, 3, "mse")
    if rank == size - 1:
        X = X.copy()
        X[0, 0] += 1.0
    net = make([5, 8, 3], "mse")
    try:
        net.fit(X, y, epochs=1, batch_size=8, optimizer=fb.SGD(lr=0.1), progress=False, comm=comm)
    except ValueError as e:
        assert "same on every rank" in str(e), f"unclear error: {e}"
    else:
        raise AssertionError("fit accepted different data on different ranks")


def check_non_finite_loss_on_one_shard():
    # finite data (so it passes the input checks) that overflows the loss: in batch 2 only the
    # rows of the last rank's shard are huge, so only that rank sees inf; every rank must stop
    n, batch_size = 40, 8
    X, y = data(n, 5, 3, "mse")
    start, stop = shard_bounds(batch_size, size - 1, size)
    X[batch_size + start:batch_size + stop] *= 1e200
    outcomes = []
    for kwargs in ({}, {"comm": comm}):
        net = make([5, 8, 3], "mse", activation="relu")
        try:
            with np.errstate(over="ignore", invalid="ignore"):     # the overflow is the point here
                net.fit(X, y, epochs=2, batch_size=batch_size, optimizer=fb.SGD(lr=0.01), shuffle=False,
                        progress=False, **kwargs)
        except FloatingPointError as e:
            outcomes.append((str(e), net.get_flat_params()))
        else:
            raise AssertionError(f"no FloatingPointError ({'with' if kwargs else 'without'} comm)")
    (msg1, p1), (msg2, p2) = outcomes
    assert "epoch 1, batch 2" in msg2, f"the error does not name the epoch and batch: {msg2}"
    assert np.isfinite(p2).all(), "non-finite weights after the error"
    assert_close(p2, p1, "weights left by the error vs one process")


def check_root_writes_checkpoints_and_callback_stops_all(tmp="/tmp"):
    import os
    import tempfile
    path = comm.bcast(os.path.join(tempfile.mkdtemp(dir=tmp), "ckpt.npz") if rank == 0 else None, root=0)
    calls = []
    real_save = fastbp.checkpoint.save

    def counting_save(*a, **k):
        calls.append(a[1])
        return real_save(*a, **k)
    fastbp.checkpoint.save = counting_save
    try:
        X, y = data(30, 5, 3, "mse")
        net = make([5, 8, 3], "mse")
        # only rank 0's callback asks to stop, after epoch 2 of 5: every rank must stop there
        h = net.fit(X, y, epochs=5, batch_size=8, optimizer=fb.SGD(lr=0.05), progress=False, checkpoint=path,
                    callback=lambda epoch, history: rank == 0 and epoch == 2, comm=comm)
    finally:
        fastbp.checkpoint.save = real_save
    assert h["epoch"] == [1, 2], f"epochs run: {h['epoch']}"
    expected = [path, path] if rank == 0 else []
    assert calls == expected, f"rank {rank} wrote checkpoints {calls}; expected {expected}"
    comm.Barrier()
    loaded = fb.MLP.load(path, backend="numpy")
    assert_close(loaded.get_flat_params(), net.get_flat_params(), "checkpoint vs trained weights")


def check_bad_comm():
    net = make([2, 2], "mse")
    try:
        net.fit(np.ones((4, 2)), np.ones((4, 2)), epochs=1, progress=False, comm="world")
    except TypeError as e:
        assert "comm" in str(e)
    else:
        raise AssertionError("comm='world' accepted")


# ---- ranks that built different networks: a ValueError on every rank, before any step, never a hang ----

def expect_network_mismatch(field, make, optimizer=lambda: fb.SGD(lr=0.1), loss="mse", **fit_args):
    """make(rank) -> the network this rank builds (the last rank's differs); fit must raise
    a ValueError naming `field` on every rank, and change nothing."""
    X, y = data(40, 5, 3, "bce" if loss == "bce" else "mse")
    net = make(rank)
    before = net.get_flat_params()
    try:
        net.fit(X, y, epochs=2, batch_size=8, optimizer=optimizer(), progress=False, comm=comm, **fit_args)
    except ValueError as e:
        assert "same network" in str(e) and field in str(e), f"unclear error: {e}"
    else:
        raise AssertionError(f"fit trained although the ranks differ in {field}")
    assert np.array_equal(net.get_flat_params(), before), "a rejected fit changed the weights"


def last_rank(value, other):
    return value if rank == size - 1 else other


def check_different_hidden_sizes():       # without the check: rank 0 waits for ever in the first Bcast
    expect_network_mismatch("layer_sizes", lambda r: make([5, last_rank(9, 8), 3], "mse"))


def check_different_activation():
    expect_network_mismatch("activations", lambda r: make([5, 8, 3], "mse", activation=last_rank("relu", "tanh")))


def check_different_output_activation():
    expect_network_mismatch("activations", lambda r: fb.MLP(
        [5, 8, 3], activation="tanh", output_activation=last_rank("sigmoid", "identity"), dtype=np.float64,
        backend="numpy", seed=1))


def check_different_loss():
    expect_network_mismatch("loss", lambda r: make([5, 8, 3], last_rank("bce", "mse")), loss="bce")


def check_different_reduction():
    expect_network_mismatch("reduction", lambda r: make([5, 8, 3], "mse", reduction=last_rank("sum", "mean")))


def check_different_l2():
    expect_network_mismatch("l2", lambda r: make([5, 8, 3], "mse", l2=last_rank(0.1, 0.0)))


def check_different_dtype():
    expect_network_mismatch("dtype", lambda r: fb.MLP([5, 8, 3], activation="tanh", dtype=last_rank(
        np.float32, np.float64), backend="numpy", seed=1))


def check_different_optimizer():
    expect_network_mismatch("optimizer", lambda r: make([5, 8, 3], "mse"),
                            optimizer=lambda: last_rank(fb.Adam(lr=0.1), fb.SGD(lr=0.1)))


def check_different_learning_rate():
    expect_network_mismatch("optimizer", lambda r: make([5, 8, 3], "mse"),
                            optimizer=lambda: fb.SGD(lr=last_rank(0.2, 0.1)))


def rank_local_checkpoints(shuffle, seed):
    """Each rank trains alone and writes its own checkpoint (rank-local files) -> its path."""
    import os
    import tempfile
    X, y = data(40, 5, 3, "mse")
    path = os.path.join(tempfile.mkdtemp(), f"rank{rank}.npz")
    make([5, 8, 3], "mse").fit(X, y, epochs=1, batch_size=8, optimizer=fb.SGD(lr=0.1), shuffle=shuffle,
                               seed=seed, checkpoint=path, progress=False)
    return path


def check_resumed_different_rng_state():
    # shuffle=False: the same weights on every rank, only the saved RNG state differs
    path = rank_local_checkpoints(shuffle=False, seed=last_rank(7, 3))
    expect_network_mismatch("resumed RNG state", lambda r: make([5, 8, 3], "mse"), shuffle=False, resume=path,
                            seed=3)


def check_resumed_different_checkpoints():
    path = rank_local_checkpoints(shuffle=True, seed=last_rank(7, 3))
    expect_network_mismatch("resumed parameters", lambda r: make([5, 8, 3], "mse"), shuffle=True, resume=path,
                            seed=3)


CHECKS = {name[len("check_"):]: f for name, f in sorted(globals().items()) if name.startswith("check_")}


def main(names):
    failed = 0
    for name in names or CHECKS:
        try:
            CHECKS[name]()
            report = None
        except Exception as e:          # noqa: BLE001 -- reported, then the next check
            report = f"rank {rank}: {type(e).__name__}: {e}"
            if "-v" in sys.argv:
                traceback.print_exc()
        reports = [r for r in comm.allgather(report) if r]
        failed += bool(reports)
        if rank == 0:
            print(f"PASS {name}" if not reports else f"FAIL {name}: {reports[0]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main([a for a in sys.argv[1:] if not a.startswith("-")]))
