"""Before and after a change, from `fastbp bench --json` records of the two trees taken in
alternating processes (before run i and after run i back to back): per workload, each
implementation's step time (median over runs of the run medians) in both trees, the
speed-up after/before (median of the per-pair ratios), and inside each run of the after
tree Cython's time over Numba's and auto's over the faster compiled backend's (medians of
the per-run ratios, which the machine's load moves less than the times).

    python bench/before_after.py --before B1.json B2.json B3.json --after A1.json A2.json A3.json

Prints markdown tables.
"""
import argparse
import json
import statistics


def times(path):
    """{workload: {implementation: median us}, "_auto": {workload: backend}} of one record;
    auto's row is named fastbp:auto whatever it chose."""
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    out, chosen = {}, {}
    for w in record["workloads"]:
        rows = {}
        for r in w["results"]:
            if r.get("status", "ok") != "ok":
                continue
            name = "fastbp:auto" if r.get("auto") else r["name"]
            rows[name] = r["median_us"]
            if r.get("auto"):
                chosen[w["name"]] = r["backend"]
        out[w["name"]] = rows
    return out, chosen, record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", nargs="+", required=True)
    parser.add_argument("--after", nargs="+", required=True)
    args = parser.parse_args(argv)
    if len(args.before) != len(args.after):
        parser.error("--before and --after take one record per run each, as many of both")
    before = [times(p) for p in args.before]
    after = [times(p) for p in args.after]
    print(f"{len(after)} alternating pairs of runs; after: `{after[0][2]['command']}`")
    for _, _, record in before + after:
        if record.get("note"):
            print(f"- {record['note']}")
    print("\n| workload | implementation | before us | after us | after speed-up | auto before -> after |")
    print("|---|---|---|---|---|---|")
    for workload in after[0][0]:
        names = [n for n in after[0][0][workload] if all(n in b[0][workload] for b in before)]
        for name in names:
            b = statistics.median(run[0][workload][name] for run in before)
            a = statistics.median(run[0][workload][name] for run in after)
            pair = statistics.median(bb[0][workload][name] / aa[0][workload][name] for bb, aa in zip(before, after))
            auto = (f"{before[0][1][workload]} -> {after[0][1][workload]}" if name == "fastbp:auto" else "")
            print(f"| {workload} | {name} | {b:,.1f} | {a:,.1f} | {pair:.2f}x | {auto} |")
    print("\n| workload | cython / numba, after | before | auto / faster compiled, after | before |")
    print("|---|---|---|---|---|")
    for workload in after[0][0]:
        cells = []
        for runs in (after, before):
            cells.append(statistics.median(r[0][workload]["fastbp:cython"] / r[0][workload]["fastbp:numba"]
                                           for r in runs))
        for runs in (after, before):
            cells.append(statistics.median(
                r[0][workload]["fastbp:auto"] / min(r[0][workload]["fastbp:cython"], r[0][workload]["fastbp:numba"])
                for r in runs))
        print(f"| {workload} | {cells[0]:.3f} | {cells[1]:.3f} | {cells[2]:.3f} | {cells[3]:.3f} |")


if __name__ == "__main__":
    main()
