"""fastbp train: the main job. With no arguments, trains a classifier on the built-in 8x8
digits with a validation split, and prints per-epoch loss/accuracy, the final test accuracy
and the throughput (a progress bar on a terminal)."""
import contextlib
import os
import sys
import time

import numpy as np

HELP = "train a network (default: a classifier on the built-in 8x8 digits) and report test accuracy"


def add_arguments(parser):
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="PATH", help="a .npz (arrays X, y) or .csv (features + label column) "
                      "file; default: the built-in 8x8 digits")
    data.add_argument("--label-column", type=int, default=-1, metavar="N", help="label column of a .csv (default: last)")
    data.add_argument("--val-fraction", type=float, default=0.1, metavar="F", help="validation share (default 0.1)")
    data.add_argument("--test-fraction", type=float, default=0.2, metavar="F", help="test share (default 0.2)")
    model = parser.add_argument_group("network")
    model.add_argument("--layers", default="64", metavar="N,N,...",
                       help="hidden layer sizes, comma-separated (default 64; '' for none)")
    model.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    model.add_argument("--loss", default="auto", choices=("auto", "cross_entropy", "mse", "bce"),
                       help="auto: cross_entropy for integer labels, else mse")
    model.add_argument("--backend", default="auto", help="numpy, numba, cython, cuda or auto (default)")
    model.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    opt = parser.add_argument_group("training")
    opt.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    opt.add_argument("--lr", type=float, default=3e-3, help="learning rate (default 3e-3)")
    opt.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    opt.add_argument("--epochs", type=int, default=20, help="default 20")
    opt.add_argument("--batch-size", type=int, default=32, help="default 32")
    opt.add_argument("--seed", type=int, default=0, help="seeds the split, the weights and the shuffling")
    files = parser.add_argument_group("files")
    files.add_argument("--save", metavar="PATH", help="checkpoint written atomically after every epoch")
    files.add_argument("--resume", metavar="PATH", help="continue a run from its checkpoint (same data and "
                       "--seed); the network comes from the checkpoint")
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
    import fastbp as fb
    from fastbp import checkpoint, datasets
    from fastbp.training import epoch_summary, progress_shown

    _check_numbers(args)
    if args.plot:
        _require_matplotlib()
    X, y, data_name = _load(args)
    loss = args.loss
    if loss == "auto":
        loss = "cross_entropy" if y.ndim == 1 and y.dtype.kind in "iub" else "mse"
    classes = None
    if loss == "cross_entropy":
        if y.ndim != 1 or y.dtype.kind not in "iub":
            raise ValueError("--loss cross_entropy needs integer class labels")
        classes, y = np.unique(y, return_inverse=True)
    X_rest, X_test, y_rest, y_test = datasets.train_test_split(X, y, args.test_fraction, seed=args.seed)
    X_train, X_val, y_train, y_val = datasets.train_test_split(X_rest, y_rest, args.val_fraction, seed=args.seed + 1)

    if args.resume:
        saved = checkpoint.read(args.resume)
        net = fb.MLP.from_checkpoint(saved, args.backend)
        started_at = (saved.training or {}).get("epoch", 0)
    else:
        n_out = len(classes) if classes is not None else (1 if y.ndim == 1 else y.shape[1])
        net = fb.MLP([X.shape[1], *_hidden(args.layers), n_out], activation=args.activation, loss=loss,
                     dtype=args.dtype, backend=args.backend, seed=args.seed)
    optimizer = None if args.resume else (fb.Adam(lr=args.lr) if args.optimizer == "adam"
                                          else fb.SGD(lr=args.lr, momentum=args.momentum))
    what = f"{len(classes)} classes" if classes is not None else f"{1 if y.ndim == 1 else y.shape[1]} target(s)"
    print(f"data: {data_name}: {len(X):,} samples, {X.shape[1]} features, {what}; "
          f"{len(X_train):,} train / {len(X_val):,} validation / {len(X_test):,} test (split seed {args.seed})")
    print(f"network: {net}, {net.n_params:,} parameters")
    if comm is not None:
        print(f"data-parallel over {comm.Get_size()} MPI ranks: each batch of {args.batch_size} is split across them")
    if args.resume:
        print(f"resuming from {args.resume} after epoch {started_at} (optimizer state from the checkpoint)")
    else:
        print(f"training: {optimizer}, {args.epochs} epochs of batch {args.batch_size}")

    show_bar = not args.quiet and progress_shown(True)
    print_lines = not args.quiet and not show_bar

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
    rates = [r for r in history["samples_per_s"][started_at if args.resume else 0:] if r is not None]
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


def plot_history(history, net, path):
    """Loss and metric per epoch beside the per-layer gradient norms (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastbp.diagnostics import layer_names
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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("--plot needs matplotlib, which is not installed (pip install 'fastbp[plot]')") from None


def _check_numbers(args):
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    for name in ("val_fraction", "test_fraction"):
        if not 0 < getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must lie in (0, 1); got {getattr(args, name)}")
    if args.resume and not os.path.exists(args.resume):
        raise ValueError(f"--resume: {args.resume} does not exist")


def _hidden(text):
    if not text.strip():
        return []
    try:
        sizes = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--layers must be comma-separated integers like 64,32; got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"--layers sizes must be >= 1; got {text!r}")
    return sizes


def _load(args):
    from fastbp import datasets
    if args.data is None:
        X, y = datasets.load_digits()
        return X, y, "built-in 8x8 digits (UCI, CC BY 4.0)"
    if not os.path.exists(args.data):
        raise ValueError(f"--data: {args.data} does not exist")
    if args.data.endswith(".npz"):
        X, y = datasets.load_npz(args.data)
    else:
        X, y = datasets.load_csv(args.data, label_column=args.label_column)
    return X, y, args.data
