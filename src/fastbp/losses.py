"""Loss and reduction names and codes (torch.nn.functional semantics).

mse            mean (or sum) of (out - y)**2 over all elements
cross_entropy  out are logits (batch, classes), y integer labels (batch,); mean over the batch
bce            out are logits, y targets in [0, 1] of out's shape; mean over all elements
"""

NAMES = ("mse", "cross_entropy", "bce")
CODES = {name: code for code, name in enumerate(NAMES)}
MSE, CROSS_ENTROPY, BCE = range(len(NAMES))

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
