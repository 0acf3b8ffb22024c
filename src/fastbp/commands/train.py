"""fastbp train: the main job. With no arguments, trains a classifier on the built-in 8x8
digits with a validation split, and prints per-epoch loss/accuracy, the final test accuracy
and the throughput (a progress bar on a terminal)."""
import contextlib
import os
import sys
import time

import numpy as np

from fastbp import files

from . import options

HELP = "train a network (default: a classifier on the built-in 8x8 digits) and report test accuracy"

# the values of the options a checkpoint records, when neither the command line nor --resume gives them
DEFAULTS = dict(layers="64", activation="relu", dtype="float32", optimizer="adam", lr=3e-3, momentum=0.9, seed=0)


def add_arguments(parser):
    from fastbp import activations
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="PATH", help="a .npz (arrays X, y) or .csv (features + label column) "
                      "file; default: the built-in 8x8 digits")
    data.add_argument("--label-column", type=int, default=-1, metavar="N", help="label column of a .csv (default: last)")
    data.add_argument("--val-fraction", type=float, default=0.1, metavar="F", help="validation share (default 0.1)")
    data.add_argument("--test-fraction", type=float, default=0.2, metavar="F", help="test share (default 0.2)")
    model = parser.add_argument_group("network (with --resume: left out, the checkpoint's; given, must match it)")
    model.add_argument("--layers", default=None, metavar="N,N,...",
                       help=f"hidden layer sizes, comma-separated (default {DEFAULTS['layers']}; '' for none)")
    model.add_argument("--activation", default=None, choices=activations.NAMES, metavar="NAME",
                       help=f"hidden activation: {', '.join(activations.NAMES)} (default {DEFAULTS['activation']})")
    model.add_argument("--loss", default=None, choices=("auto", "cross_entropy", "mse", "bce"),
                       help="auto (default): cross_entropy for integer labels, else mse")
    model.add_argument("--backend", default="auto", help="numpy, numba, cython, cuda or auto (default)")
    model.add_argument("--dtype", default=None, choices=("float32", "float64"),
                       help=f"default {DEFAULTS['dtype']}")
    opt = parser.add_argument_group("training (with --resume: left out, the checkpoint's; given, must match it)")
    opt.add_argument("--optimizer", default=None, choices=("adam", "sgd"), help=f"default {DEFAULTS['optimizer']}")
    opt.add_argument("--lr", type=options.positive_float, default=None,
                     help=f"learning rate (default {DEFAULTS['lr']:g})")
    opt.add_argument("--momentum", type=options.unit_interval, default=None,
                     help=f"SGD momentum (default {DEFAULTS['momentum']:g})")
    opt.add_argument("--epochs", type=options.positive_int, default=20, help="default 20")
    opt.add_argument("--batch-size", type=options.positive_int, default=32, help="default 32")
    opt.add_argument("--seed", type=options.non_negative_int, default=None,
                     help="seeds the split, the weights and the shuffling (default 0)")
    opt.add_argument("--threads", type=options.positive_int, default=None, metavar="N",
                     help="pin the process to N CPUs and limit every thread pool to N "
                          "(default: each library's own default)")
    files = parser.add_argument_group("files")
    files.add_argument("--save", metavar="PATH", help="checkpoint written atomically after every epoch")
    files.add_argument("--resume", metavar="PATH", help="continue a run from its checkpoint (same data); the "
                       "network, the optimizer and the seed come from the checkpoint")
    files.add_argument("--plot", metavar="PNG", help="plot loss/accuracy per epoch and per-layer gradient norms "
                       "(needs matplotlib)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no per-epoch lines")


def run(args):
    from fastbp import distributed
    comm = distributed.launcher_comm()     # started by `mpiexec -n N`: data-parallel training over N ranks
    if comm is None:
        return train(args)
    with open(os.devnull, "w") as devnull, \
            contextlib.redirect_stdout(sys.stdout if distributed.is_root(comm) else devnull):   # rank 0 prints
        return distributed.run_on_every_rank(comm, train, args, comm)


def train(args, comm=None):
    from fastbp.benchmark import threads
    limits = {}                 # what --threads changed, undone at the end (tests run this in-process)
    if args.threads is not None:
        threads.check(args.threads)
        limits["before"] = threads.before_imports(args.threads)   # before any backend (Numba) is imported
    try:
        return _train(args, comm, limits)
    finally:
        threads.restore(limits.get("before"), limits.get("after"))


def _train(args, comm, limits):
    import fastbp as fb
    from fastbp import checkpoint, datasets
    from fastbp._kernels import get_ops
    from fastbp.training import epoch_summary, progress_shown

    # every option and file is checked before any work: a long run never fails at its end
    _check_fractions(args)
    saved = None
    if args.resume:
        options.input_file(args.resume, "--resume")
        saved = checkpoint.read(args.resume)
        _settle_from_checkpoint(args, saved)
    for option, value in DEFAULTS.items():
        if getattr(args, option) is None:
            setattr(args, option, value)
    hidden = options.layer_list(args.layers, "--layers", allow_empty=True)
    if args.data is not None:
        options.input_file(args.data, "--data")
    _check_outputs(args)
    if args.plot:
        _require_matplotlib()
    X, y, data_name = _load(args)
    loss = args.loss or "auto"
    if loss == "auto":
        loss = "cross_entropy" if y.ndim == 1 and y.dtype.kind in "iub" else "mse"
    classes = None
    if loss == "cross_entropy":
        if y.ndim != 1 or y.dtype.kind not in "iub":
            raise ValueError("--loss cross_entropy needs integer class labels")
        classes, y = np.unique(y, return_inverse=True)
    if loss == "bce" and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"--loss bce needs targets in [0, 1] (binary labels or probabilities); {data_name} has "
                         f"values in [{y.min():g}, {y.max():g}] (for classes: --loss cross_entropy)")
    X_rest, X_test, y_rest, y_test = datasets.train_test_split(X, y, args.test_fraction, seed=args.seed)
    X_train, X_val, y_train, y_val = datasets.train_test_split(X_rest, y_rest, args.val_fraction, seed=args.seed + 1)

    if saved is not None:
        net = fb.MLP.from_checkpoint(saved, args.backend)
        started_at = (saved.training or {}).get("epoch", 0)
        optimizer = None                                    # rebuilt from the checkpoint by fit
    else:
        n_out = len(classes) if classes is not None else (1 if y.ndim == 1 else y.shape[1])
        net = fb.MLP([X.shape[1], *hidden, n_out], activation=args.activation, loss=loss,
                     dtype=args.dtype, backend=args.backend, seed=args.seed)
        optimizer = (fb.Adam(lr=args.lr) if args.optimizer == "adam"
                     else fb.SGD(lr=args.lr, momentum=args.momentum))
    if args.threads is not None:                            # the backend's libraries are loaded now
        from fastbp.benchmark import threads
        limits["after"] = threads.after_imports(args.threads)
    what = f"{len(classes)} classes" if classes is not None else f"{1 if y.ndim == 1 else y.shape[1]} target(s)"
    print(f"data: {data_name}: {len(X):,} samples, {X.shape[1]} features, {what}; "
          f"{len(X_train):,} train / {len(X_val):,} validation / {len(X_test):,} test (split seed {args.seed})")
    print(f"network: {net}, {net.n_params:,} parameters")
    if comm is not None:
        print(f"data-parallel over {comm.Get_size()} MPI ranks: each batch of {args.batch_size} is split across them")

    show_bar = not args.quiet and progress_shown(True)
    print_lines = not args.quiet and not show_bar
    note = get_ops(net.backend).first_step_note
    note = f"; the first step waits: {note}" if note and not show_bar else ""    # a bar shows it itself
    if saved is not None:
        print(f"resuming from {args.resume} after epoch {started_at} of {args.epochs} "
              f"(optimizer state from the checkpoint){note}", flush=True)
    else:
        print(f"training: {optimizer}, {_count(args.epochs, 'epoch')} of batch {args.batch_size}{note}", flush=True)

    def report(epoch, history):
        if print_lines:
            print(f"epoch {epoch:>3}/{args.epochs}  {epoch_summary(history)}", flush=True)

    started = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
                      validation_data=(X_val, y_val), seed=args.seed, progress=show_bar,
                      checkpoint=args.save, resume=args.resume, grad_norms=bool(args.plot), callback=report,
                      comm=comm)
    seconds = time.perf_counter() - started

    test_score = net.score(X_test, y_test)
    metric = "accuracy" if net.loss != "mse" else "R^2"
    extra = f" ({int(round(test_score * len(X_test)))}/{len(X_test)})" if metric == "accuracy" else ""
    rates = [r for r in history["samples_per_s"][started_at if saved is not None else 0:] if r is not None]
    rate = f"{np.median(rates):,.0f} samples/s (median over epochs)" if rates else "no epochs run"
    print(f"test {metric} {test_score:.4f}{extra}")
    print(f"throughput {rate}; {seconds:.2f} s in fit on backend {net.backend!r}")
    if history.get("grad_norms"):
        last = history["grad_norms"][-1]
        print("gradient norms (last epoch): " + ", ".join(f"layer {l + 1} {g:.3g}" for l, g in enumerate(last)))
    if args.save:
        print(f"checkpoint: {args.save}")
    if args.plot and (comm is None or comm.Get_rank() == 0):
        plot_history(history, net, args.plot)
        print(f"plot: {args.plot}")
    return 0


def _count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _recorded(saved):
    """The options a checkpoint records, as the command line spells them: {option: value}."""
    arch = saved.architecture
    recorded = dict(layers=",".join(str(n) for n in arch["layer_sizes"][1:-1]), activation=arch["activation"],
                    loss=arch["loss"], dtype=arch["dtype"])
    if isinstance(saved.optimizer, dict):
        kind = str(saved.optimizer.get("type", "")).lower()
        hyper = saved.optimizer.get("hyperparameters") or {}
        recorded.update(optimizer=kind, lr=hyper.get("lr"))
        if kind == "sgd":
            recorded["momentum"] = hyper.get("momentum")
    seed = (saved.training or {}).get("seed")
    if seed is not None:
        recorded["seed"] = seed
    return {k: v for k, v in recorded.items() if v is not None}


def _settle_from_checkpoint(args, saved):
    """With --resume: an option left out takes the checkpoint's value; one given must equal it
    (a different --seed would move training rows into the test split). One line names a mismatch."""
    for option, value in _recorded(saved).items():
        given = getattr(args, option)
        if given is None or (option == "loss" and given == "auto"):
            setattr(args, option, value)
            continue
        same = (options.layer_list(given, "--layers", allow_empty=True) == options.layer_list(value, "layers", True)
                if option == "layers" else given == value)
        if not same:
            flag = "--" + option.replace("_", "-")
            raise ValueError(f"--resume: {args.resume} was trained with {flag} {value}; this run has {flag} {given} "
                             f"(leave {flag} out to continue with the checkpoint's)")


def plot_history(history, net, path):
    """Loss and metric per epoch beside the per-layer gradient norms (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastbp.diagnostics import layer_names
    files.check_target(path, "--plot")          # before drawing a figure that could not be written
    epochs = history["epoch"]
    metric = "accuracy" if "accuracy" in history else "r2"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(epochs, history["loss"], label="train")
    if "val_loss" in history:
        axes[0].plot(epochs, history["val_loss"], label="validation")
    axes[0].set(title="loss", xlabel="epoch", yscale="log")
    axes[1].plot(epochs, history[metric], label="train")
    if "val_" + metric in history:
        axes[1].plot(epochs, history["val_" + metric], label="validation")
    axes[1].set(title=metric, xlabel="epoch")
    norms = [row for row in history.get("grad_norms", []) if row is not None]
    if norms:
        norms = np.array(norms)
        ep = [e for e, row in zip(epochs, history["grad_norms"]) if row is not None]
        for l, name in enumerate(layer_names(net.arch)):
            axes[2].plot(ep, norms[:, l], label=name)
    axes[2].set(title="gradient norm per layer (||dW||, epoch mean)", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(str(net), fontsize=9)
    fig.tight_layout()
    image_format = os.path.splitext(path)[1][1:].lower() or "png"
    files.write_atomically(path, lambda f: fig.savefig(f, format=image_format, dpi=100), what="--plot")
    plt.close(fig)


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("--plot needs matplotlib, which is not installed (pip install matplotlib)") from None


def _check_outputs(args):
    """--save and --plot must be writable regular files (tried with a temporary file in their
    folder, before any work), and neither the data nor each other."""
    if args.save:
        options.output_file(args.save, "--save", inputs=[args.data])
    if args.plot:
        options.output_file(args.plot, "--plot", inputs=[args.data, args.save, args.resume])


def _check_fractions(args):
    for name in ("val_fraction", "test_fraction"):
        if not 0 < getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must lie in (0, 1); got {getattr(args, name)}")


def _load(args):
    from fastbp import datasets
    if args.data is None:
        X, y = datasets.load_digits()
        return X, y, "built-in 8x8 digits (UCI, CC BY 4.0)"
    if args.data.endswith(".npz"):
        X, y = datasets.load_npz(args.data)
    else:
        X, y = datasets.load_csv(args.data, label_column=args.label_column)
    return X, y, args.data
