"""The benchmark workloads: one training step (forward + backward + update, with the rule
of optimizers.py) of an MLP on one fixed batch.

The five STANDARD workloads are the ones `fastbp bench` has compared from the start; their
names and shapes never change, so results stay comparable over time. EXTRAS add other
regimes (deep and narrow, a large batch, cross-entropy).

Flop count (`train_step_flops`): only the matrix products are counted, as the usual
"6 x params x batch" rule does, but exactly:

    forward          2 * B * n_in * n_out   per layer      (Z = A_prev @ W)
    weight gradient  2 * B * n_in * n_out   per layer      (dW = A_prev.T @ delta)
    delta propagate  2 * B * n_in * n_out   per layer but the first
                                            (the input's delta is never needed)

so flops = 6 * B * sum(n_in * n_out) - 2 * B * n_0 * n_1. Bias adds, activations and
their derivatives, the loss, db sums and the update are O(B * n) or O(params) and
left out (under 1% on every standard workload but seed-2x2, where nothing is compute).
"""
from dataclasses import dataclass

import numpy as np

from .choices import pick


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple                 # (n_0, ..., n_L)
    batch: int
    activation: str              # hidden layers
    output_activation: str = "identity"
    loss: str = "mse"
    description: str = ""

    @property
    def shapes(self):
        return [(self.sizes[l], self.sizes[l + 1]) for l in range(len(self.sizes) - 1)]

    @property
    def n_params(self):
        return sum(n_in * n_out + n_out for n_in, n_out in self.shapes)

    @property
    def flops(self):
        return train_step_flops(self.sizes, self.batch)

    def label(self):
        return f"{'-'.join(map(str, self.sizes))} b{self.batch} {self.activation} {self.loss}"


def train_step_flops(sizes, batch):
    """Floating-point operations of the matrix products of one training step (see above)."""
    products = [n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    return 6 * batch * sum(products) - 2 * batch * products[0]


STANDARD = (
    Workload("seed-2x2", (2, 2, 2), 1, "sigmoid", description="the worked example's network, one sample"),
    Workload("tiny-64", (64, 64, 64, 1), 32, "tanh", description="small regression net"),
    Workload("mnist", (784, 128, 64, 10), 64, "sigmoid", description="classic MNIST MLP"),
    Workload("mnist-b256", (784, 256, 256, 10), 256, "relu", description="bigger MNIST MLP, batch 256"),
    Workload("wide-1024", (1024, 1024, 1024, 1024), 256, "relu", description="compute bound"),
)

EXTRAS = (
    Workload("deep-narrow", (32,) + (32,) * 8 + (1,), 16, "tanh",
             description="ten layers of width 32: per-layer overhead"),
    Workload("large-batch", (784, 128, 64, 10), 4096, "relu", description="mnist shapes, batch 4096"),
    Workload("mnist-ce", (784, 128, 64, 10), 64, "relu", loss="cross_entropy",
             description="mnist shapes, softmax cross-entropy"),
)

ALL = {w.name: w for w in STANDARD + EXTRAS}


def select(spec):
    """'a,b,c' | 'standard' | 'all' -> [Workload]; ValueError naming an unknown one."""
    return pick(spec, ALL, "--workloads", {"standard": STANDARD, "all": ALL.values()})


def make_batch(workload, dtype, seed=0):
    """One fixed batch (X, y): standard-normal inputs; MSE targets standard normal,
    cross-entropy targets integer labels."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((workload.batch, workload.sizes[0])).astype(dtype)
    if workload.loss == "cross_entropy":
        y = rng.integers(0, workload.sizes[-1], workload.batch).astype(np.intp)
    else:
        y = rng.standard_normal((workload.batch, workload.sizes[-1])).astype(dtype)
    return X, y


def make_net(workload, dtype, backend, seed=0):
    import fastbp as fb
    return fb.MLP(workload.sizes, activation=workload.activation,
                  output_activation=workload.output_activation, loss=workload.loss,
                  dtype=dtype, backend=backend, seed=seed)
