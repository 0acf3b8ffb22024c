"""The measurements behind backend="auto"'s rule (fastbp/_kernels/__init__.py): one float32
SGD net.train_step per shape, numba vs cython, interleaved, median of rounds.

    CPU_CLOCK=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python bench/cython_auto_rule.py 21
    SMALL=1 ... (the small shapes only)
    OPTIMIZER=adam ... (fb.Adam(1e-3) instead of fb.SGD(1e-3))

CPU_CLOCK=1 times thread CPU time, which on a shared, loaded machine measures the work
done rather than the scheduler's mood (meaningful single-threaded only).
"""
import sys, time, numpy as np, fastbp as fb
CASES_ALL = [((2,2,2),1,"sigmoid"), ((64,64,64,1),32,"tanh"), ((784,128,64,10),64,"sigmoid"), ((256,256,256,10),32,"relu"),
         ((784,256,256,10),256,"relu"), ((128,128,128,10),256,"relu"), ((512,512,512,10),64,"relu"), ((1024,1024,1024,1024),256,"relu")]
import os
CLOCK = time.thread_time if os.environ.get("CPU_CLOCK") else time.perf_counter
SMALL = [((2,2,2),1,"sigmoid"), ((64,64,64,1),32,"tanh"), ((64,64,64,1),32,"relu"), ((32,32,32,1),256,"tanh"), ((128,128,10),16,"relu"), ((784,128,64,10),64,"sigmoid"), ((784,128,64,10),64,"relu")]
CASES = SMALL if os.environ.get("SMALL") else CASES_ALL
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
rng = np.random.default_rng(0)
for sizes, n, act in CASES:
    fns = {}
    for b in ("numba", "cython"):
        net = fb.MLP(sizes, activation=act, backend=b, seed=0)
        opt = fb.Adam(1e-3) if os.environ.get("OPTIMIZER") == "adam" else fb.SGD(1e-3)
        X = rng.normal(size=(n, sizes[0])).astype(np.float32); y = rng.normal(size=(n, sizes[-1])).astype(np.float32)
        fns[b] = (lambda net=net, opt=opt, X=X, y=y: net.train_step(X, y, opt))
        for _ in range(3): fns[b]()
    work = n * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    inner = max(1, int(2e7 // (work + 1e4)))
    ts = {b: [] for b in fns}
    for r in range(rounds):
        for b, f in fns.items():
            t0 = CLOCK()
            for _ in range(inner): f()
            ts[b].append((CLOCK() - t0) / inner)
    med = {b: np.median(v) * 1e6 for b, v in ts.items()}
    print(f"{'-'.join(map(str,sizes)):22s} b{n:<4d} {act:8s} work/step={work:>11,d}  numba {med['numba']:10.1f}us  cython {med['cython']:10.1f}us  numba/cython {med['numba']/med['cython']:.2f}", flush=True)
