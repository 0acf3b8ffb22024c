"""Timing: interleaved rounds, warm-up excluded, medians; and the GEMM peak.

On a shared or throttling machine, the speed of the machine drifts during a run. Timing
candidate A for ten seconds and then B for ten seconds puts that drift into the A/B
ratio; timing them in alternation, round after round, puts it into the spread of each
instead. So every round times one block of calls of each candidate, in an order that
rotates from round to round, and the result is the median (and quartiles) over rounds.
"""
import math
import statistics
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    median_s: float            # per call
    q1_s: float
    q3_s: float
    rounds: int
    calls_per_round: int

    @property
    def spread(self):
        """(q3 - q1) / median: the relative interquartile range."""
        return (self.q3_s - self.q1_s) / self.median_s if self.median_s > 0 else float("nan")


def quartiles(values):
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def warm_up(step, seconds, min_calls=3):
    """Call `step` for about `seconds` (at least min_calls times): JIT compilation, caches
    and allocator pools settle here, and none of it is timed. -> seconds per call
    (the median of the calls after the first)."""
    times, start = [], time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
        if len(times) >= 10000:
            break
    return statistics.median(times[1:])


def interleaved(steps, repeats, block_s=0.005, warmup_s=0.1, progress=None):
    """Time each callable of {name: step} in `repeats` interleaved rounds.

    Each round runs a block of calls of every candidate; a block is sized from the
    warm-up so it lasts about block_s (at least one call). -> {name: Timing}."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    names = list(steps)
    calls = {}
    for i, name in enumerate(names):
        if progress:
            progress(f"warm-up {name} ({i + 1}/{len(names)})")
        per_call = warm_up(steps[name], warmup_s)
        calls[name] = max(1, min(100000, math.ceil(block_s / max(per_call, 1e-9))))
    samples = {name: [] for name in names}
    for r in range(repeats):
        if progress:
            progress(f"round {r + 1}/{repeats}")
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            step, n = steps[name], calls[name]
            t = time.perf_counter()
            for _ in range(n):
                step()
            samples[name].append((time.perf_counter() - t) / n)
    out = {}
    for name in names:
        q1, q2, q3 = quartiles(samples[name])
        out[name] = Timing(q2, q1, q3, repeats, calls[name])
    return out


def gemm_peak(n=2048, repeats=5, dtype=np.float32):
    """The machine's single-precision matrix-multiply rate in this process, under the
    thread limits in force: the best of `repeats` (n x n) @ (n x n) products through
    NumPy's BLAS (sgemm for float32), as GFLOP/s = 2 n^3 / seconds."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=c)                           # warm-up: threads started, pages touched
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9
