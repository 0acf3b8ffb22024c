"""Where a first Numba training step's compile time goes: one float32 train_step in this
process, with Numba's compile events recorded per function (exclusive of the functions it
calls). Run it with an empty cache to see a cold start:

    rm -rf /tmp/nbc && NUMBA_CACHE_DIR=/tmp/nbc python bench/numba_compile_profile.py --sizes 784-128-64-10
"""
import argparse
import time
from collections import defaultdict

import numpy as np
from numba.core import event

import fastbp as fb


class CompileTimes(event.Listener):
    """Seconds per compiled function, exclusive of the compiles nested inside it."""

    def __init__(self):
        self.open = []                          # [name, start, seconds spent in nested compiles]
        self.seconds = defaultdict(float)
        self.count = defaultdict(int)
        self.signatures = defaultdict(list)

    def on_start(self, ev):
        name = ev.data["dispatcher"].py_func.__qualname__
        self.signatures[name].append(", ".join(map(str, ev.data["args"])))
        self.open.append([name, time.perf_counter(), 0.0])

    def on_end(self, ev):
        name, start, nested = self.open.pop()
        took = time.perf_counter() - start
        if self.open:
            self.open[-1][2] += took
        self.seconds[name] += took - nested
        self.count[name] += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="784-128-64-10", help="layer sizes, e.g. 2-2-2")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--activation", default="sigmoid")
    parser.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (0: plain SGD)")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument("--signatures", action="store_true", help="list the argument types of each compile")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split("-")]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.batch, sizes[0])).astype(np.float32)
    y = rng.standard_normal((args.batch, sizes[-1])).astype(np.float32)
    net = fb.MLP(sizes, activation=args.activation, backend="numba", seed=0)
    times = CompileTimes()
    started = time.perf_counter()
    with event.install_listener("numba:compile", times):
        net.train_step(X, y, fb.SGD(0.01, momentum=args.momentum))
    total = time.perf_counter() - started
    ranked = sorted(times.seconds.items(), key=lambda kv: -kv[1])
    for name, seconds in ranked[:args.top]:
        print(f"  {seconds:6.2f} s  {name}" + (f"  ({times.count[name]} signatures)" if times.count[name] > 1 else ""))
        if args.signatures:
            for signature in times.signatures[name]:
                print(f"            ({signature})")
    print(f"first train_step {total:.1f} s: {sum(times.count.values())} compiles of {len(ranked)} functions, "
          f"{sum(times.seconds.values()):.1f} s compiling")


if __name__ == "__main__":
    main()
