"""Activation names and the integer codes every backend uses for them.

The codes are part of the kernel ABI: compiled backends switch on them, so the order
below never changes (new activations are appended).
"""

NAMES = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "silu")
CODES = {name: code for code, name in enumerate(NAMES)}

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU, SILU = range(len(NAMES))

LEAKY_SLOPE = 0.01       # leaky_relu's slope for z <= 0 (torch's default)
ELU_ALPHA = 1.0
GELU_C = 0.7978845608028654   # sqrt(2 / pi), the tanh approximation's constant
GELU_K = 0.044715

# He initialisation suits activations that are (close to) zero on half the line.
RELU_LIKE = frozenset({RELU, LEAKY_RELU, ELU, GELU, SILU})


def code(name, argument="activation"):
    """The code for an activation name; a clear ValueError/TypeError otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a string, one of {list(NAMES)}; got {type(name).__name__}")
    try:
        return CODES[name]
    except KeyError:
        raise ValueError(f"unknown {argument} {name!r}; expected one of {list(NAMES)}") from None
