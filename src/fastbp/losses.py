"""Loss and reduction names and codes (torch.nn.functional semantics).

mse            mean (or sum) of (out - y)**2 over all elements
cross_entropy  out are logits (batch, classes), y integer labels (batch,); mean over the batch
bce            out are logits, y targets in [0, 1] of out's shape; mean over all elements
poisson        out are log-rates z (the rate is exp(z)), y counts >= 0 of out's shape: half the
               Poisson deviance, y log(y / exp(z)) - y + exp(z) (scikit-learn's MLPRegressor
               loss='poisson'; torch's poisson_nll_loss(log_input=True) plus y log y - y, a
               constant); dLoss/dz = exp(z) - y; mean over all elements

Sample weights w (one per row, >= 0): every row's loss and gradient are multiplied by its
weight, and "mean" divides by sum(w) (times the outputs, for the elementwise losses) instead
of the rows: sum_i w_i l_i / sum_i w_i, scikit-learn's np.average; "sum" is sum_i w_i l_i. A
batch whose weights are all zero has loss 0 and gradient 0 (it carries no weight).
"""

NAMES = ("mse", "cross_entropy", "bce", "poisson")
CODES = {name: code for code, name in enumerate(NAMES)}
MSE, CROSS_ENTROPY, BCE, POISSON = range(len(NAMES))

REDUCTIONS = ("mean", "sum")
REDUCTION_CODES = {name: code for code, name in enumerate(REDUCTIONS)}
MEAN, SUM = range(len(REDUCTIONS))


def code(name):
    return _lookup(name, CODES, NAMES, "loss")


def reduction_code(name):
    return _lookup(name, REDUCTION_CODES, REDUCTIONS, "reduction")


def _lookup(name, codes, names, argument):
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a string, one of {list(names)}; got {type(name).__name__}")
    try:
        return codes[name]
    except KeyError:
        raise ValueError(f"unknown {argument} {name!r}; expected one of {list(names)}") from None
