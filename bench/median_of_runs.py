"""Medians over several `fastbp bench --json` records of the same command: on a loaded
machine one run's ratios move by tens of percent, the median of a few runs' ratios much
less. Every ratio is taken inside one run first (interleaved rounds), then the median over
runs.

    python bench/median_of_runs.py RUN1.json RUN2.json RUN3.json [...]

Prints, per workload and optimizer: fastbp's best backend's speed-up over the best peer
(and which they were, in how many runs), backend auto's, each implementation's step time (median over runs
of the run medians), and each implementation's time over its own sgd step (x sgd).
"""
import argparse
import json
import statistics
from collections import Counter, defaultdict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+")
    args = parser.parse_args(argv)
    runs = []
    for path in args.records:
        with open(path, encoding="utf-8") as f:
            runs.append(json.load(f))
    speedups, best, times, vs_sgd = defaultdict(list), defaultdict(Counter), defaultdict(list), defaultdict(list)
    speedups_auto = defaultdict(list)
    order = []
    for record in runs:
        for w in record["workloads"]:
            key = (w["name"], (w.get("optimizer") or {}).get("name", "sgd"))
            if key not in order:
                order.append(key)
            if w["speedup_best"] is not None:
                speedups[key].append(w["speedup_best"])
                best[key][f"{w['best_fastbp']} over {w['best_peer']}"] += 1
            if w.get("speedup_auto") is not None:
                speedups_auto[key].append(w["speedup_auto"])
            for r in w["results"]:
                if r["status"] == "ok":
                    times[key + (r["name"],)].append(r["median_us"])
                    if "time_vs_sgd" in r:
                        vs_sgd[key + (r["name"],)].append(r["time_vs_sgd"])
    loads = [r.get("note", "") for r in runs]
    print(f"{len(runs)} runs: {runs[0].get('command')}")
    for note in loads:
        print(f"  note: {note}")
    for key in order:
        name, optimizer = key
        s = speedups.get(key)
        summary = (f"{statistics.median(s):.2f}x (runs: {', '.join(f'{x:.2f}' for x in s)}; "
                   f"{'; '.join(f'{k} {n}x' for k, n in best[key].most_common())})") if s else "no peer timed"
        print(f"\n{name} / {optimizer}: fastbp best over best peer {summary}")
        s = speedups_auto.get(key)
        if s:
            print(f"  backend auto over best peer {statistics.median(s):.2f}x (runs: {', '.join(f'{x:.2f}' for x in s)})")
        print(f"  {'implementation':<22}{'us/step':>12}{'x sgd':>8}   per run (us)")
        for (n, o, impl), values in times.items():
            if (n, o) != key:
                continue
            ratio = vs_sgd.get((n, o, impl))
            ratio_text = f"{statistics.median(ratio):.2f}" if ratio else ("1.00" if o == "sgd" else "-")
            print(f"  {impl:<22}{statistics.median(values):>12,.1f}{ratio_text:>8}   "
                  + ", ".join(f"{v:,.0f}" for v in values))


if __name__ == "__main__":
    main()
