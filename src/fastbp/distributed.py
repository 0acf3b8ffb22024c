"""Synchronous data-parallel training over MPI (mpi4py): one full replica of the network per rank.

Every rank calls `fit` with the same full X, y and the same arguments plus `comm=`. Each
step, rank r takes its contiguous share of the global batch's rows (`shard`), computes the
gradient of its share, weights it by its share of the rows (n_r / n for a "mean" loss, 1
for "sum"), and ONE in-place Allreduce (sum) over the contiguous gradient buffer gives
every rank the gradient of the whole global batch; every rank then applies the same
update, so the replicas stay identical. A second, three-number Allreduce carries the
global loss and the step's status, so every rank takes the same decision:

    gradient of the global batch   = sum over ranks of (n_r / n) * gradient of shard r
    loss of the global batch       = sum over ranks of (n_r / n) * loss of shard r

Faults never leave a rank waiting in a collective: every rank runs the same collectives
in the same order whatever happens locally. A rank whose shard gives a non-finite loss or
gradient, or whose computation raises, still joins both Allreduces; the status then
tells every rank to raise (FloatingPointError for non-finite values, before any update,
as the single-process step does). Before training, `collective` runs the input checks on
every rank and raises on all of them if any rank failed.

mpi4py is imported only here, and only when a communicator is given: `import fastbp`
never needs it (it is the optional extra "mpi": `pip install ".[mpi]"` from a checkout).
"""
import contextlib
import math
import os
import sys
import time
import zlib

import numpy as np

# the status vector that travels with every step: [weighted loss, ranks that raised, ranks with non-finite values]
_LOSS, _RAISED, _NONFINITE = 0, 1, 2

# exception types raised as themselves on every rank; anything else is a RuntimeError on the others
_PASSED_ON = {cls.__name__: cls for cls in (ValueError, TypeError, FloatingPointError, MemoryError)}


def _mpi():
    from mpi4py import MPI       # only reached with a communicator in hand
    return MPI


def check_comm(comm):
    """An mpi4py intra-communicator (e.g. MPI.COMM_WORLD) -> itself; else TypeError/ValueError."""
    try:
        MPI = _mpi()
    except ImportError:
        raise TypeError(f"comm must be an mpi4py communicator, but mpi4py is not installed "
                        f"(pip install mpi4py mpich); got {type(comm).__name__}") from None
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"comm must be an mpi4py intra-communicator such as MPI.COMM_WORLD; "
                        f"got {type(comm).__name__}")
    if comm == MPI.COMM_NULL:
        raise ValueError("comm is MPI.COMM_NULL; pass a communicator this process belongs to")
    return comm


def is_root(comm):
    """True on the rank that prints, logs and writes checkpoints (rank 0), and without MPI."""
    return comm is None or comm.Get_rank() == 0


# what MPI launchers put in each process's environment: the number of processes of the job
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_size():
    """How many processes the MPI launcher started with this one (1 when not under mpiexec)."""
    for name in LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def launcher_comm():
    """MPI.COMM_WORLD when this process is one of several started by mpiexec, else None.
    Under mpiexec without mpi4py: an ImportError (each process would train alone)."""
    n = launched_size()
    if n <= 1:
        return None
    try:
        MPI = _mpi()
    except ImportError:
        raise ImportError(f"started by mpiexec as one of {n} processes, but mpi4py is not installed, so "
                          f"they cannot train together: pip install mpi4py mpich") from None
    return MPI.COMM_WORLD


def run_on_every_rank(comm, fn, *args, grace_s=10.0):
    """fn(*args) on every rank of `comm` (e.g. a command's body) -> its result, such that an
    exception never leaves another rank waiting forever in a collective.

    Errors that fastbp raised on every rank together (bad input, a non-finite loss: see
    DataParallel.agreement) propagate, on rank 0 as they are, on the other ranks as
    SystemExit(1) (rank 0's message already names the failing rank). An error on some
    ranks only (a bug, a file missing on one machine) aborts the whole MPI job after
    `grace_s` seconds, rather than leaving the others blocked.
    """
    guard = comm.Dup()                  # its own communicator: never mixed up with fit's collectives
    try:
        return fn(*args)
    except Exception as e:              # noqa: BLE001 -- re-raised below, or the job is aborted
        request, deadline = guard.Ibarrier(), time.monotonic() + grace_s
        while not request.Test():
            if time.monotonic() > deadline:
                print(f"fastbp: rank {comm.Get_rank()} of {comm.Get_size()} failed alone "
                      f"({type(e).__name__}: {e}); aborting the MPI job", file=sys.stderr, flush=True)
                time.sleep(0.5)         # Abort kills mpiexec's output forwarding: let it send that line first
                comm.Abort(1)
            time.sleep(0.005)
        if comm.Get_rank() == 0:
            raise
        raise SystemExit(1) from None
    finally:
        guard.Free()


def agreement(dp, what):
    """`dp.agreement(what)` with a DataParallel, nothing without one (single process)."""
    return contextlib.nullcontext() if dp is None else dp.agreement(what)


def shard_bounds(n, rank, size):
    """Rows [start, stop) of a batch of n rows that rank `rank` of `size` takes: contiguous,
    in rank order, the first n % size ranks one row more (a rank may get none)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def fingerprint(a):
    """A cheap exact summary of an array (shape, dtype, CRC-32 of its bytes) to check that
    every rank was given the same data."""
    a = np.ascontiguousarray(a)
    return (a.shape, a.dtype.str, zlib.crc32(a.view(np.uint8).reshape(-1)) if a.size else 0)


def network_fingerprint(net, optimizer, resumed=None):
    """{field: short value} that every rank of a data-parallel fit must share (see
    DataParallel.check_same_network); arrays and the RNG state enter as CRC-32s."""
    arch = net.arch
    fields = dict(layer_sizes=list(arch.sizes), activations=list(arch.activations), loss=arch.loss,
                  reduction=arch.reduction, dtype=arch.dtype.name, l2=net.l2,
                  optimizer=(type(optimizer).__name__, sorted(optimizer.hyperparameters().items()),
                             optimizer.step_count, sorted(optimizer.state)))
    if resumed is not None:
        training = resumed.training
        fields["resumed epoch"] = training["epoch"]
        fields["resumed RNG state"] = zlib.crc32(repr(sorted(training["rng"].items())).encode())
        fields["resumed parameters"] = fingerprint(resumed.params)
        fields["resumed optimizer state"] = [(k, fingerprint(v)) for k, v in sorted(resumed.optimizer_arrays.items())]
    return fields


class DataParallel:
    """The data-parallel machinery for one network on one communicator.

    `train_step(state, X, y, optimizer)` has the call signature of the single-process
    step (`Ops.train_step`) with X, y the *global* batch as host arrays: every rank passes
    the same rows and gets the same global loss back.
    """

    def __init__(self, comm, net):
        self.comm = check_comm(comm)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._ops = net._ops
        self._mean = net.reduction == "mean"
        self._status = np.zeros(3, dtype=np.float64)
        self._MPI = _mpi()

    @property
    def is_root(self):
        return self.rank == 0

    def shard(self, n):
        """This rank's rows of a global batch of n rows, as a slice."""
        return slice(*shard_bounds(n, self.rank, self.size))

    # ---- collective agreement ----
    @contextlib.contextmanager
    def agreement(self, what):
        """`with dp.agreement("checking fit's arguments"): ...` -- every rank leaves the block
        together: if it raised on any rank, it raises on every rank (the original exception
        where it happened; the same type, naming that rank and its message, on the others)."""
        try:
            yield
        except Exception as e:        # noqa: BLE001 -- re-raised after telling the other ranks
            self._agree(what, e)
            raise
        self._agree(what, None)

    def collective(self, what, fn, *args, **kwargs):
        """fn(*args, **kwargs) on every rank, under `agreement(what)` -> fn's result here."""
        with self.agreement(what):
            return fn(*args, **kwargs)

    def _agree(self, what, error):
        """One allgather of (this rank's error or None); raise here if another rank failed."""
        reports = self.comm.allgather(None if error is None else (type(error).__name__, str(error)))
        if error is None:
            failed = [(r, rep) for r, rep in enumerate(reports) if rep is not None]
            if failed:
                r, (kind, message) = failed[0]
                raise _PASSED_ON.get(kind, RuntimeError)(
                    f"{what} failed on rank {r} of {self.size} ({kind}): {message}")

    def any_rank(self, flag):
        """True on every rank if `flag` is true on any rank (e.g. a callback asking to stop)."""
        return bool(self.comm.allreduce(bool(flag), op=self._MPI.LOR))

    def check_same(self, what, value):
        """ValueError on every rank unless `value` (anything comparable with ==) is the same on
        every rank, e.g. the data fingerprint or the fit arguments."""
        values = self.comm.allgather(value)
        differ = [r for r, v in enumerate(values) if v != values[0]]
        if differ:
            raise ValueError(f"{what} must be the same on every rank (every rank calls fit with the "
                             f"same data and arguments); rank {differ[0]} differs from rank 0: "
                             f"{values[differ[0]]!r} vs {values[0]!r}")

    def check_same_network(self, net, optimizer, resumed=None):
        """ValueError on every rank unless every rank built the same network (architecture,
        dtype, loss, reduction), the same optimizer (kind, hyper-parameters, step count, state
        buffers present) and, resuming, read the same checkpoint state (parameters, optimizer
        state, epoch, RNG state): one allgather of a fingerprint, before any collective whose
        buffer sizes depend on the network (a rank with other layer sizes would otherwise wait
        for ever in the first Bcast), and before any step (other activations would train
        silently into a result no single process gives). The starting weights of a fresh
        network may differ: rank 0's are broadcast."""
        fields = network_fingerprint(net, optimizer, resumed)
        reports = self.comm.allgather(fields)
        for r, other in enumerate(reports):
            differ = [k for k in fields if other.get(k) != reports[0].get(k)]
            if differ:
                shown = "; ".join(f"{k}: {other.get(k)!r} on rank {r}, {reports[0].get(k)!r} on rank 0"
                                  for k in differ)
                raise ValueError(f"every rank must build the same network and training state (fit with comm); "
                                 f"rank {r} of {self.size} differs from rank 0 in {shown}")

    def check_same_inputs(self, X, y, validation=None, **settings):
        """ValueError on every rank unless every rank has the same checked data (compared by
        fingerprint) and the same settings (epochs, batch_size, ...)."""
        arrays = [X, y] + ([a for a in validation if a is not None] if validation is not None else [])
        self.check_same("the data (X, y, validation_data)", [fingerprint(a) for a in arrays])
        self.check_same("fit's arguments", sorted(settings.items()))

    def common_seed(self, seed):
        """The root's seed on every rank (a fresh one drawn on the root when seed is None), so
        every rank shuffles the same way."""
        if seed is None and self.is_root:
            seed = int(np.random.SeedSequence().entropy % (2 ** 63))
        return self.comm.bcast(seed, root=0)

    # ---- replicas ----
    def broadcast_parameters(self, state, optimizer=None):
        """Copy the root's parameters (and the optimizer's state, if it has any) to every rank."""
        ops = self._ops
        buffers = [state.params.flat]
        if optimizer is not None:
            self.check_same("the optimizer", (type(optimizer).__name__, optimizer.hyperparameters(),
                                              sorted(optimizer.state), optimizer.step_count))
            buffers += [optimizer.state[name] for name in sorted(optimizer.state)]
        for buf in buffers:
            host = ops.to_host(buf)          # the buffer itself on CPU backends
            if not host.flags.writeable or not host.flags.c_contiguous:
                host = np.array(host)
            self.comm.Bcast(host, root=0)
            if host is not buf:
                ops.copy_into(buf, host)

    # ---- one step ----
    def make_step(self, net, optimizer):
        """-> step(X_batch, y_batch) -> global loss, like training.make_step; the global
        gradient is left in the network's gradient buffer (for the diagnostics)."""
        state = net._state

        def step(X, y, sw):         # (fit refuses sample weights with comm: sw is None)
            return self.train_step(state, X, y, optimizer)
        return step

    def train_step(self, state, X, y, optimizer):
        """Forward and backward on this rank's shard of the global batch (X, y: host arrays,
        the same on every rank), one Allreduce of the weighted gradients, the same update on
        every rank; -> the loss of the global batch. A non-finite loss or gradient on any
        rank raises FloatingPointError on every rank before anything is updated."""
        ops, MPI = self._ops, self._MPI
        grads = state.grads.flat
        n = X.shape[0]
        rows = self.shard(n)
        n_local = rows.stop - rows.start
        status = self._status
        status[:] = 0.0
        host = None
        l2 = state.l2
        try:
            if n_local:
                # each of the ranks with rows carries an equal share of the L2 term: the sum
                # over ranks (of shards weighted n_local / n for the mean) holds it once, over n
                state.l2 = l2 / min(n, self.size)
                try:
                    local_loss = ops.loss_and_grad(state, ops.from_host(X[rows]), ops.from_host(y[rows]))
                finally:
                    state.l2 = l2
                weight = n_local / n if self._mean else 1.0
                host = ops.to_host(grads)               # the buffer itself on CPU backends
                if weight != 1.0:
                    host *= weight
                status[_LOSS] = local_loss * weight
            else:                                       # more ranks than rows: contribute nothing
                host = ops.to_host(grads)
                host[...] = 0
        except Exception as e:          # noqa: BLE001 -- every rank raises below, after the collectives
            error = e
            status[_RAISED] = 1.0
            host = np.zeros(grads.shape, dtype=grads.dtype)
        else:
            error = None
        self.comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)      # THE gradient exchange
        if not np.isfinite(host).all():  # NaN/inf on any rank (or an overflowing sum) poisons the sum
            status[_NONFINITE] = 1.0
        self.comm.Allreduce(MPI.IN_PLACE, status, op=MPI.SUM)    # loss + status: 3 numbers
        loss = float(status[_LOSS])
        if status[_RAISED]:
            self._raise_failure("the training step", error)
        if status[_NONFINITE] or not math.isfinite(loss):
            raise FloatingPointError(f"non-finite loss ({loss}) or gradient on a shard of the global batch "
                                     f"({self.size} ranks); parameters left unchanged")
        if host is not grads:
            ops.copy_into(grads, host)
        optimizer.update(ops, state.params.flat, grads)
        return loss

    def _raise_failure(self, what, error):
        """Every rank is here together (the status said so): each learns who failed and why."""
        self._agree(what, error)
        raise error
