"""fastbp bench: time one training step of each fastbp backend beside the libraries a user
would pick instead (NumPy, PyTorch, JAX, scikit-learn), in one process, interleaved.

How to read the output: bench/README.md. The machinery: fastbp.benchmark.
"""
import sys

from . import options

HELP = "time fastbp's backends beside NumPy, PyTorch, JAX and scikit-learn on standard workloads"


def add_arguments(parser):
    parser.add_argument("--workloads", default=None, metavar="NAMES",
                        help="comma-separated workload names, 'standard' (default) or 'all'; "
                             "standard: seed-2x2, tiny-64, mnist, mnist-b256, wide-1024; "
                             "extras: deep-narrow, large-batch, mnist-ce")
    parser.add_argument("--backends", default=None, metavar="NAMES",
                        help="fastbp backends to time (default: every available one); the table always has "
                             "'auto' too, --cold only where named")
    parser.add_argument("--peers", default="all", metavar="NAMES",
                        help="peers to time: numpy, torch, jax, sklearn, 'all' (default) or 'none'")
    parser.add_argument("--optimizer", default="sgd", metavar="NAMES",
                        help="the update each step makes, every implementation with its own optimizer: "
                             "sgd (default: lr 0.01), momentum (lr 0.01, momentum 0.9), adam (lr 1e-3, "
                             "betas 0.9/0.999, eps 1e-8), comma-separated, or 'all'")
    parser.add_argument("--threads", type=options.positive_int, default=None, metavar="N",
                        help="pin the process to N CPUs and limit every thread pool to N "
                             "(default: each library's own default)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=options.positive_int, default=None, metavar="N",
                        help="interleaved timing rounds (default 15; 3 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="few short rounds and a small GEMM: a smoke run, not a measurement")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the full record as JSON")
    parser.add_argument("--plot", default=None, metavar="PATH", help="also draw a bar chart (PNG; needs matplotlib)")
    parser.add_argument("--cold", action="store_true",
                        help="measure first-call latency in fresh processes instead (import, first step; "
                             "cold and warm JIT cache), one table per workload; default workload: mnist")
    parser.add_argument("--note", default="", help="free text stored in the JSON record (e.g. the machine's load)")


class Progress:
    """One line on stderr, rewritten in place on a terminal; one line per message otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.width = 0

    def __call__(self, message):
        if self.tty:
            text = f"\r{message[:119]:<{self.width}}"
            self.width = len(message[:119])
            self.stream.write(text)
        else:
            self.stream.write(f"fastbp bench: {message}\n")
        self.stream.flush()

    def done(self):
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def _backends(spec):
    import fastbp as fb
    usable = fb.available_backends()
    if spec in (None, "", "all"):
        return list(usable)
    chosen = []
    for name in (s.strip() for s in spec.split(",")):
        if name not in usable and name != "auto":
            raise ValueError(f"--backends: {name!r} is not a usable backend here; usable: {list(usable)} "
                             "(or 'auto')")
        if name not in chosen:
            chosen.append(name)
    return chosen


def run(args):
    from fastbp.benchmark import compare, guard, optimizers, peers, report, threads, workloads

    # every argument is checked before anything is measured
    chosen_workloads = workloads.select(args.workloads if (args.workloads or not args.cold) else "mnist")
    chosen_peers = peers.select(args.peers)
    chosen_optimizers = optimizers.select(args.optimizer)
    if args.cold and len(chosen_optimizers) > 1:
        raise ValueError(f"--cold measures one optimizer's first step; got --optimizer {args.optimizer}")
    if args.threads is not None:
        threads.check(args.threads)
    if args.json:
        options.output_file(args.json, "--json")
    if args.plot:
        options.output_file(args.plot, "--plot", inputs=[args.json])
        if args.cold:
            raise ValueError("--plot draws the timing table; it does not apply to --cold")
        why = report.check_plot_available()
        if why:
            raise ValueError(why)

    before = after = None
    try:
        if args.threads is not None:
            before = threads.before_imports(args.threads)
        backends = _backends(args.backends)        # imports the backends (Numba, ...)
        for peer in chosen_peers:
            peer.available()                        # imports the peers, so their pools exist
        if args.threads is not None:
            after = threads.after_imports(args.threads)
        progress = Progress()
        command = "fastbp bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else None
        if args.cold:
            return _run_cold(args, backends, chosen_peers, chosen_workloads, chosen_optimizers[0], progress)
        settings = dict(compare.SETTINGS["quick" if args.quick else "default"])
        if args.repeats:
            settings["repeats"] = args.repeats
        try:
            timed = [b for b in backends if b != "auto"]            # compare.run times "auto" always
            record = compare.run(chosen_workloads, args.dtype, timed, chosen_peers, settings,
                                 progress, command=command, note=args.note, thread_limit=args.threads,
                                 optimizers=chosen_optimizers)
        except guard.GuardError as e:
            progress.done()
            print(f"fastbp bench: error: correctness guard: {e}", file=sys.stderr)
            return 3
        progress.done()
        print(report.table(record))
        if args.json:
            report.write_json(record, args.json)
            print(f"\nrecord written to {args.json}")
        if args.plot:
            report.plot(record, args.plot)
            print(f"bar chart written to {args.plot}")
        return 0
    finally:
        threads.restore(before, after)


def _run_cold(args, backends, chosen_peers, chosen_workloads, optimizer, progress):
    """One table per workload; the JSON record's results: every workload's rows, each with its
    "workload"."""
    from fastbp.benchmark import cold, report
    warm_runs = 1 if args.quick else (args.repeats or 3)
    absent = {p.name: p.available(optimizer)[1] for p in chosen_peers if not p.available(optimizer)[0]}
    rows = []
    for w in chosen_workloads:
        candidates = [("fastbp", b) for b in backends] + [
            ("peer", p.name) for p in chosen_peers if p.name not in absent and p.supports(w)[0]]
        measured = cold.measure(candidates, w.name, args.dtype, warm_runs, progress, optimizer.name)
        progress.done()
        print(cold.table(measured, w.name, args.dtype, optimizer.name))
        rows += [dict(row, workload=w.name) for row in measured]
    for name, why in absent.items():
        print(f"  peer:{name:<11} absent ({why})")
    if args.json:
        from fastbp.benchmark.compare import machine
        report.write_json(dict(kind="cold", workloads=[w.name for w in chosen_workloads], dtype=args.dtype,
                               optimizer=optimizer.name, machine=machine(),
                               absent_peers=absent, results=rows, note=args.note), args.json)
        print(f"\nrecord written to {args.json}")
    return 0
