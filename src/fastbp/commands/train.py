"""fastbp train: the main job, a real training run with the loss printed as it falls."""
import time

import numpy as np

HELP = "train a network and print the loss per epoch"


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--seed", type=int, default=0)


def two_spirals(n, seed):
    """A small classification problem generated on the spot (no download)."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
    label = rng.integers(0, 2, n)
    sign = np.where(label == 0, 1.0, -1.0)
    X = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / (3 * np.pi)
    return X + rng.normal(0, 0.02, X.shape), label


def run(args):
    import fastbp as fb
    X, y = two_spirals(2000, args.seed)
    net = fb.MLP([2, 64, 64, 2], activation="tanh", loss="cross_entropy", backend=args.backend, seed=args.seed)
    print(f"training {net} on 2,000 two-spiral points")
    started = time.perf_counter()
    net.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, optimizer=fb.Adam(lr=args.lr),
            seed=args.seed, progress=True)
    accuracy = float(np.mean(net.forward(X).argmax(axis=1) == y))
    print(f"training accuracy {accuracy:.3f} in {time.perf_counter() - started:.2f} s")
    return 0
