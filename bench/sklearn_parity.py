"""fastbp.sklearn beside scikit-learn's MLP and a plain PyTorch loop: test scores over seeds and
fit times, in one run (fastbp.benchmark.estimators has the data sets and the settings).

usage:  python bench/sklearn_parity.py [--seeds 3] [--threads 1] [--datasets all|quick|a,b]
                                       [--out bench/results/sklearn-parity.md]

Per data set and seed the libraries fit in turn on the same split, their order rotating
from seed to seed (same-run interleaving); the table gives mean +- sd of the test score
and median fit seconds over the seeds, and the ratios of the medians. "fastbp alpha=0" is
fastbp's training step without the L2 term, timed for the cost of that term.
"""
import argparse
import os
import platform
import statistics
import sys

from fastbp.benchmark import threads as thread_limits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--datasets", default="all", help="all | quick (the bundled ones) | comma-separated names")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "sklearn-parity.md"))
    args = parser.parse_args(argv)
    thread_limits.before_imports(args.threads)
    import numpy as np
    import torch  # noqa: F401  (loaded before the limit, so that it applies to torch too)

    import fastbp
    from fastbp.benchmark import estimators
    thread_limits.after_imports(args.threads)
    names = {"all": estimators.ALL, "quick": estimators.BUNDLED}.get(args.datasets) or args.datasets.split(",")

    runs = ("sklearn", "fastbp", "torch", "fastbp alpha=0")
    load_before = os.getloadavg()[0]
    rows = []
    for name in names:
        X, y = estimators.load(name)
        results = {run: [] for run in runs}
        for seed in range(args.seeds):
            data = estimators.split(X, y, name in estimators.REGRESSION, seed)
            order = ["sklearn", "fastbp"][::1 if seed % 2 == 0 else -1]
            for library in order:
                results[library].append(estimators.run(library, name, seed, data=data))
            epochs = results["fastbp"][-1]["epochs"]
            results["torch"].append(estimators.run("torch", name, seed, data=data, epochs=epochs))
            results["fastbp alpha=0"].append(estimators.run("fastbp", name, seed, data=data, alpha=0.0))
            print(name, seed, {run: round(results[run][-1]["seconds"], 3) for run in runs}, file=sys.stderr)
        rows.append((name, X.shape, results))

    def cell(values):
        return f"{np.mean(values):.4f} +- {np.std(values):.4f}"

    def median(results, run):
        return statistics.median(r["seconds"] for r in results[run])

    lines = ["# fastbp.sklearn beside scikit-learn's MLP and PyTorch", "",
             f"Command: `python bench/sklearn_parity.py --seeds {args.seeds} --threads {args.threads} "
             f"--datasets {args.datasets}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs visible, {args.threads} thread(s) per library; "
             f"fastbp {fastbp.__version__} (backend auto), scikit-learn {__import__('sklearn').__version__}, "
             f"torch {torch.__version__}, numpy {np.__version__}; load average {load_before:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end (other jobs on the machine: read the ratios).", "",
             "Settings: scikit-learn's defaults (hidden (100,), relu, Adam 1e-3, alpha 1e-4, batches of "
             "min(200, n), up to 200 epochs, tol 1e-4), the same random_state for both; 75/25 split by "
             "the seed, standardised. PyTorch: the epochs fastbp ran, same batches, torch.optim.Adam.", "",
             "| data set | rows x features | score sklearn | score fastbp | score torch | epochs (sklearn / fastbp) "
             "| fit s sklearn | fit s fastbp | fit s torch | fit s fastbp alpha=0 | sklearn / fastbp | "
             "torch / fastbp |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, shape, results in rows:
        score = {run: [r["score"] for r in results[run]] for run in runs}
        epochs = "/".join(str(round(statistics.median(r["epochs"] for r in results[lib]))) for lib in ("sklearn", "fastbp"))
        t = {run: median(results, run) for run in runs}
        lines.append(f"| {name} | {shape[0]} x {shape[1]} | {cell(score['sklearn'])} | {cell(score['fastbp'])} | "
                     f"{cell(score['torch'])} | {epochs} | {t['sklearn']:.3f} | {t['fastbp']:.3f} | {t['torch']:.3f} | "
                     f"{t['fastbp alpha=0']:.3f} | {t['sklearn'] / t['fastbp']:.2f} | {t['torch'] / t['fastbp']:.2f} |")
    lines += ["", "Scores are accuracy (classification) or R^2 (regression) on the held-out quarter, mean +- sd "
              "over the seeds; times are medians over the seeds, ratios > 1: fastbp faster."]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
