"""fastbp gradcheck: finite differences against backprop on random networks, on every
available backend (or one), as a table of worst errors; exit 1 if any check fails."""
import time

import numpy as np

HELP = "check backprop against finite differences on random networks, per backend"

# (hidden activation, output activation, loss, reduction): together every activation and loss
NETWORKS = (
    ("sigmoid", "identity", "mse", "mean"),
    ("tanh", "identity", "cross_entropy", "mean"),
    ("relu", "identity", "bce", "mean"),
    ("leaky_relu", "tanh", "mse", "sum"),
    ("elu", "identity", "cross_entropy", "sum"),
    ("softplus", "sigmoid", "mse", "mean"),
    ("gelu", "identity", "bce", "sum"),
    ("silu", "softplus", "mse", "mean"),
)


def add_arguments(parser):
    parser.add_argument("--backend", default="all", help="a backend name, 'auto', or 'all' (default)")
    parser.add_argument("--sizes", default="4,6,5,3", metavar="N,N,...", help="layer sizes (default 4,6,5,3)")
    parser.add_argument("--batch", type=int, default=5, help="rows in the random batch (default 5)")
    parser.add_argument("--seed", type=int, default=0)


def run(args):
    import fastbp as fb
    from fastbp._kernels import resolve

    backends = fb.available_backends() if args.backend == "all" else (resolve(args.backend),)
    try:
        sizes = [int(v) for v in args.sizes.split(",")]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated integers like 4,6,3; got {args.sizes!r}") from None
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1; got {args.batch}")
    print(f"{'backend':<8} {'network':<46} {'params':>6} {'max abs err':>12} {'max rel err':>12}  result")
    failed = 0
    started = time.perf_counter()
    for backend in backends:
        for k, (act, out_act, loss, reduction) in enumerate(NETWORKS):
            net = fb.MLP(sizes, activation=act, output_activation=out_act, loss=loss, reduction=reduction,
                         dtype=np.float64, backend=backend, seed=args.seed + k)
            rng = np.random.default_rng([args.seed, k])          # the same data on every backend
            # random biases too: with zero biases a row whose relu units are all off puts the next
            # layer exactly on relu's kink (Z = b = 0), where finite differences see slope 1/2
            net.set_params(net.weights, [rng.normal(0, 0.5, size=b.shape) for b in net.biases])
            X = rng.normal(size=(args.batch, sizes[0]))
            if loss == "cross_entropy":
                y = rng.integers(0, sizes[-1], size=args.batch)
            elif loss == "bce":
                y = rng.uniform(size=(args.batch, sizes[-1]))
            else:
                y = rng.normal(size=(args.batch, sizes[-1]))
            report = fb.gradcheck(net, X, y, seed=args.seed)
            failed += not report.passed
            name = f"{act}->{out_act}, {loss} ({reduction})"
            print(f"{backend:<8} {name:<46} {net.n_params:>6} {report.max_abs:>12.2e} {report.max_rel:>12.2e}  "
                  f"{'ok' if report.passed else 'FAILED'}")
    total = len(backends) * len(NETWORKS)
    print(f"{total - failed}/{total} passed on {', '.join(backends)} "
          f"(layer sizes {sizes}, batch {args.batch}, float64, {time.perf_counter() - started:.1f} s)")
    return 1 if failed else 0
