"""The record of a comparison as a table (text), as JSON, and as a bar chart."""
import json
import math
import os

from .. import files


def _num(x, fmt):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _fixed(x, width):
    """About 3 significant digits, never in exponent notation."""
    if x >= 100:
        text = f"{x:,.0f}"
    elif x >= 0.01:
        text = f"{x:.3g}"
    else:
        text = "<0.01"
    return f"{text:>{width}}"


def _flops(n):
    return f"{n / 1e6:,.2f} MFLOP" if n >= 1e5 else f"{n:,} FLOP"


def _optimizer_label(o):
    """'adam (lr 0.001, betas 0.9/0.999, eps 1e-08)' from a record's optimizer dict."""
    parts = [f"lr {o['lr']:g}"]
    if "betas" in o:
        parts += [f"betas {o['betas'][0]:g}/{o['betas'][1]:g}", f"eps {o['eps']:g}"]
    elif o.get("momentum"):
        parts.append(f"momentum {o['momentum']:g}")
    return f"{o['name']} ({', '.join(parts)})"


def table(record):
    """The text table: per workload and optimizer, one row per candidate, then the
    speed-ups; with several optimizers, a summary of the speed-ups at the end."""
    dt = record["dtype"]
    gemm = record["gemm"]
    optimizers = record.get("optimizers") or [dict(name="sgd", lr=record.get("learning_rate", 0.01))]
    names = [o["name"] for o in optimizers]
    lines = [
        f"fastbp bench: one {dt} training step (forward + backward + update: "
        f"{'; '.join(_optimizer_label(o) for o in optimizers)}), median of "
        f"{record['settings']['repeats']} interleaved rounds, warm-up excluded",
        f"machine: {record['machine']['processor']}, {len(record['threads']['affinity'])} CPUs usable, "
        f"threads: {record.get('thread_limit') or 'library defaults'}; "
        f"{'s' if dt == 'float32' else 'd'}gemm peak in this run: {gemm['peak_gflops']:.1f} GFLOP/s "
        f"({gemm['n']}x{gemm['n']}; {gemm['gflops_before']:.1f} before, {gemm['gflops_after']:.1f} after)",
        "GFLOP/s counts the matrix products only: 6*B*sum(n_in*n_out) - 2*B*n0*n1 per step",
    ]
    with_sgd = "sgd" in names and len(names) > 1
    if with_sgd:
        lines.append("x sgd: this step's time over the same implementation's sgd step, in the same rounds")
    if record["absent_peers"]:
        lines.append("absent peers: " + "; ".join(f"{k} ({v})" for k, v in record["absent_peers"].items()))
    if record["unavailable_backends"]:
        lines.append("fastbp backends not usable here: "
                     + "; ".join(f"{k} ({v})" for k, v in record["unavailable_backends"].items()))
    header = f"  {'implementation':<22}{'us/step':>12}{'IQR %':>8}{'GFLOP/s':>10}{'% peak':>8}{'vs best peer':>14}"
    if with_sgd:
        header += f"{'x sgd':>8}"
    for w in record["workloads"]:
        optimizer = w.get("optimizer") or optimizers[0]
        lines += ["", f"{w['name']}: {'-'.join(map(str, w['sizes']))}, batch {w['batch']}, {w['activation']}, "
                  f"{w['loss']}; {w['n_params']:,} params, {_flops(w['flops'])}/step; {_optimizer_label(optimizer)}",
                  header]
        peer_best = next((r for r in w["results"] if r["name"] == w["best_peer"]), None)
        for r in w["results"]:
            if r["status"] != "ok":
                lines.append(f"  {r['name']:<22}{r['status']:>12}  ({r['reason']})")
                continue
            spread = 100 * (r["q3_us"] - r["q1_us"]) / r["median_us"]
            ratio = peer_best["median_us"] / r["median_us"] if peer_best else None
            mark = "  <- best peer" if r["name"] == w["best_peer"] else ""
            vs_sgd = ""
            if with_sgd:
                vs_sgd = f"{'1.00' if optimizer['name'] == 'sgd' else _num(r.get('time_vs_sgd'), '.2f'):>8}"
            lines.append(f"  {r['name']:<22}{r['median_us']:>12,.1f}{spread:>8.0f}{_fixed(r['gflops'], 10)}"
                         f"{_fixed(r['pct_peak'], 8)}{_num(ratio, '>13.2f')}x{vs_sgd}{mark}")
        if w["speedup_best"] is not None:
            lines.append(f"  speed-up over the best peer ({w['best_peer']}): fastbp best ({w['best_fastbp']}) "
                         f"{w['speedup_best']:.2f}x, auto {_num(w['speedup_auto'], '.2f')}x")
        else:
            lines.append("  speed-up: no peer timed")
    if len(names) > 1:
        lines += ["", "speed-up of fastbp's best backend over the best peer, per optimizer (same run):",
                  f"  {'workload':<14}" + "".join(f"{n:>28}" for n in names)]
        by_workload = {}
        for w in record["workloads"]:
            by_workload.setdefault(w["name"], {})[w["optimizer"]["name"]] = w
        for workload, cells in by_workload.items():
            text = []
            for n in names:
                w = cells.get(n)
                if not w or w["speedup_best"] is None:
                    text.append(f"{'-':>28}")
                    continue
                cell = (f"{w['speedup_best']:.2f}x ({w['best_fastbp'].split(':', 1)[1]} "
                        f"over {w['best_peer'].split(':', 1)[1]})")
                text.append(f"{cell:>28}")
            lines.append(f"  {workload:<14}" + "".join(text))
    return "\n".join(lines)


def write_json(record, path):
    """Write the record atomically (fastbp.files: a temporary file renamed into place)."""
    text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    files.write_atomically(path, lambda f: f.write(text.encode()), what="--json")


def check_plot_available():
    """-> None, or the reason a plot cannot be drawn (matplotlib missing)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib, which is not installed (pip install matplotlib)"
    return None


def plot(record, path):
    """Bars of microseconds per step, one panel per workload (log scale), fastbp in blue,
    peers in grey."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    files.check_target(path, "--plot")          # before drawing a figure that could not be written
    workloads = record["workloads"]
    fig, axes = plt.subplots(len(workloads), 1, figsize=(8, 1.2 + 0.45 * sum(
        1 + sum(r["status"] == "ok" for r in w["results"]) for w in workloads)), squeeze=False)
    for ax, w in zip(axes[:, 0], workloads):
        rows = [r for r in w["results"] if r["status"] == "ok"]
        names = [r["name"] for r in rows]
        values = [r["median_us"] for r in rows]
        errors = [[r["median_us"] - r["q1_us"] for r in rows], [r["q3_us"] - r["median_us"] for r in rows]]
        colors = ["tab:blue" if r["kind"] == "fastbp" else "tab:gray" for r in rows]
        ax.barh(names, values, xerr=errors, color=colors)
        ax.set_xscale("log")
        ax.set_xlim(left=min(values) / 3, right=max(values) * 3)
        ax.invert_yaxis()
        optimizer = w.get("optimizer", {}).get("name", "sgd")
        ax.set_title(f"{w['name']} ({'-'.join(map(str, w['sizes']))}, batch {w['batch']}; {optimizer})", fontsize=9)
        ax.tick_params(labelsize=8)
        for y, r in enumerate(rows):              # the label right of the error bar
            ax.text(r["q3_us"] * 1.02, y, f" {r['median_us']:,.0f}", va="center", fontsize=7)
    axes[-1, 0].set_xlabel(f"microseconds per {record['dtype']} training step (median; log scale; lower is better)")
    fig.tight_layout()
    image_format = os.path.splitext(path)[1][1:].lower() or "png"
    files.write_atomically(path, lambda f: fig.savefig(f, format=image_format, dpi=120), what="--plot")
    plt.close(fig)
