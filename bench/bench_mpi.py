"""Data-parallel scaling over MPI: one process vs two ranks on the same global batch.

    python bench/bench_mpi.py                       # launches `mpiexec -n 2` on itself
    python bench/bench_mpi.py --workloads wide-1024 --rounds 9 --json bench/results/mpi.json

Strong scaling: the global batch is the same in both arms; one float32 training step =
forward + backward + SGD update, MSE loss (the standard workloads of the benchmark suite).
Each rank runs single-threaded (BLAS and Numba threads = 1), so one rank = one core.

Arms, interleaved round by round inside ONE `mpiexec -n 2` job (median of the rounds):
  1 process  rank 0 runs the single-process step (`Ops.train_step`) on the whole batch while
             rank 1 sleeps (a polled, non-spinning barrier, so it leaves its core free);
  2 ranks    both ranks run `DataParallel.train_step`: half the rows each, one Allreduce of
             the gradient buffer plus the 3-number status Allreduce;
  ceiling    both ranks run the single-process step on their half of the rows at the same
             time, with no communication: what this machine gives two concurrent processes
             (cores shared with other work, memory bandwidth, clock), the bound for "2 ranks".
Reported: time per step in each arm, speed-up and parallel efficiency (speed-up / 2), the
fraction of the 2-rank step spent inside the Allreduce calls (including waiting for the
slower rank), and the Allreduce of the same buffer alone after a barrier (pure transfer).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORKLOADS = {   # name: (layer sizes, global batch, activation) -- the benchmark suite's workloads
    "mnist": ((784, 128, 64, 10), 64, "sigmoid"),
    "mnist-b256": ((784, 256, 256, 10), 256, "relu"),
    "wide-1024": ((1024, 1024, 1024, 1024), 256, "relu"),
}
SINGLE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                  "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workloads", default="wide-1024,mnist-b256,mnist")
    p.add_argument("--backend", default="auto")
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median taken)")
    p.add_argument("--steps", type=int, default=0, help="steps per arm per round (0: about 0.3 s worth)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def mpiexec():
    here = Path(sys.executable).parent / "mpiexec"      # the mpich wheel's, beside this Python
    return str(here) if here.exists() else "mpiexec"


def launch(args):
    env = dict(os.environ, **SINGLE_THREAD)
    cmd = [mpiexec(), "-n", "2", sys.executable, os.path.abspath(__file__), "--worker",
           "--workloads", args.workloads, "--backend", args.backend, "--rounds", str(args.rounds),
           "--steps", str(args.steps)] + (["--json", args.json] if args.json else [])
    return subprocess.call(cmd, env=env)


class TimedComm:
    """Forwards to the communicator, adding up the seconds spent in Allreduce."""

    def __init__(self, comm):
        self._comm, self.seconds = comm, 0.0

    def Allreduce(self, *a, **k):
        t = time.perf_counter()
        self._comm.Allreduce(*a, **k)
        self.seconds += time.perf_counter() - t

    def __getattr__(self, name):
        return getattr(self._comm, name)


def idle_wait(comm):
    """Wait for the other ranks without spinning on a core (MPICH's Barrier busy-polls)."""
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.0005)


def bench_workload(name, args, comm):
    import fastbp as fb
    from fastbp.distributed import DataParallel
    from mpi4py import MPI
    sizes, batch, act = WORKLOADS[name]
    rank = comm.Get_rank()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    y = rng.normal(size=(batch, sizes[-1])).astype(np.float32)
    single = fb.MLP(sizes, activation=act, dtype=np.float32, backend=args.backend, seed=0)
    local = fb.MLP(sizes, activation=act, dtype=np.float32, backend=args.backend, seed=0)
    parallel = fb.MLP(sizes, activation=act, dtype=np.float32, backend=args.backend, seed=0)
    opt1, opt2, opt3 = fb.SGD(lr=1e-4), fb.SGD(lr=1e-4), fb.SGD(lr=1e-4)
    ops = single._ops
    dp = DataParallel(comm, parallel)
    timed = TimedComm(comm)
    dp.comm = timed
    dp.broadcast_parameters(parallel._state, opt2)

    # warm-up (JIT compilation, first-touch allocation), and a step count worth ~0.3 s per arm
    t = time.perf_counter()
    for _ in range(2):
        ops.train_step(single._state, X, y, opt1)
        dp.train_step(parallel._state, X, y, opt2)
    per_step = (time.perf_counter() - t) / 2
    steps = args.steps or int(comm.bcast(max(3, min(200, round(0.3 / max(per_step, 1e-6)))), root=0))

    mine = dp.shard(batch)
    X_half, y_half = X[mine], y[mine]
    buffer = np.zeros(parallel.n_params, dtype=np.float32)
    rows = []
    for _ in range(args.rounds):
        comm.Barrier()
        t1 = None
        if rank == 0:
            t = time.perf_counter()
            for _ in range(steps):
                ops.train_step(single._state, X, y, opt1)
            t1 = (time.perf_counter() - t) / steps
        idle_wait(comm)
        comm.Barrier()
        timed.seconds = 0.0
        t = time.perf_counter()
        for _ in range(steps):
            dp.train_step(parallel._state, X, y, opt2)
        t2 = (time.perf_counter() - t) / steps
        in_allreduce = timed.seconds / steps
        comm.Barrier()
        t = time.perf_counter()
        for _ in range(steps):
            ops.train_step(local._state, X_half, y_half, opt3)
        t3 = (time.perf_counter() - t) / steps
        pure = []
        for _ in range(5):
            comm.Barrier()
            t = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            pure.append(time.perf_counter() - t)
        rows.append((t1, t2, in_allreduce, float(np.median(pure)), t3))
    gathered = comm.gather(rows, root=0)
    if rank != 0:
        return None
    t1 = np.array([r[0] for r in gathered[0]])
    t2 = np.array([max(g[i][1] for g in gathered) for i in range(args.rounds)])
    frac = np.array([np.mean([g[i][2] / g[i][1] for g in gathered]) for i in range(args.rounds)])
    pure = np.array([max(g[i][3] for g in gathered) for i in range(args.rounds)])
    t3 = np.array([max(g[i][4] for g in gathered) for i in range(args.rounds)])
    speedup = float(np.median(t1 / t2))
    return dict(workload=name, sizes=list(sizes), batch=batch, n_params=parallel.n_params,
                bytes_per_step=parallel.n_params * 4, backend=single.backend, steps=steps,
                rounds=args.rounds, t_1proc_ms=float(np.median(t1)) * 1e3, t_2ranks_ms=float(np.median(t2)) * 1e3,
                speedup=speedup, efficiency=speedup / 2, t_ceiling_ms=float(np.median(t3)) * 1e3,
                ceiling_speedup=float(np.median(t1 / t3)), of_ceiling=float(np.median(t3 / t2)), allreduce_fraction=float(np.median(frac)),
                allreduce_alone_ms=float(np.median(pure)) * 1e3)


def worker(args):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    results = [bench_workload(name, args, comm) for name in args.workloads.split(",")]
    if comm.Get_rank() != 0:
        return 0
    print(f"data-parallel scaling, {comm.Get_size()} ranks vs 1 process, float32, SGD, MSE, "
          f"1 thread per rank, median of {args.rounds} interleaved rounds")
    head = ("workload", "params", "backend", "1 proc ms", "2 ranks ms", "speed-up", "effic.",
            "ceiling", "of ceiling", "in allreduce", "allreduce alone ms")
    print("{:<11} {:>9} {:>8} {:>10} {:>10} {:>8} {:>7} {:>8} {:>10} {:>12} {:>18}".format(*head))
    for r in results:
        print(f"{r['workload']:<11} {r['n_params']:>9,} {r['backend']:>8} {r['t_1proc_ms']:>10.3f} "
              f"{r['t_2ranks_ms']:>10.3f} {r['speedup']:>8.2f} {r['efficiency']:>7.0%} "
              f"{r['ceiling_speedup']:>8.2f} {r['of_ceiling']:>10.0%} "
              f"{r['allreduce_fraction']:>12.1%} {r['allreduce_alone_ms']:>18.3f}")
    print("ceiling: speed-up of two concurrent single-process steps on half the rows each, no "
          "communication;\nof ceiling: that time / the 2-rank step time; in allreduce: share of the "
          "2-rank step inside Allreduce (incl. waiting for the slower rank)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    a = parse()
    sys.exit(worker(a) if a.worker else launch(a))
