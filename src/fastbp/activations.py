"""The activations: one table, and each formula f(z), f'(z, a) written once.

Every compiled backend is built from this file. The formulas below are plain Python on one
scalar of one float type; each target compiles the same functions with its own primitives
(`exp`, `expm1`, `log1p`, `tanh`, `sigmoid`) and its own typing of the constants: Numba CPU
(`_kernels/numba_cpu/activations.py`, with its fast float32 exp/tanh/sigmoid), numba.cuda
(`_kernels/cuda/activations.py`) and Cython (`_kernels/cython_cpu/activations.pxd`,
generated from these functions by `python -m fastbp._kernels.cython_cpu.generate`). The
NumPy reference (`_kernels/reference.py`) is written by hand: it is the oracle they are
all tested against.

Rules for a formula (the Cython generator rejects anything else): statements are
assignments to local names and one final `return`; expressions use + - * /, comparisons,
`x if c else y`, `abs`, the primitives, the constants below (no bare numbers: a Python
number would promote float32 arithmetic in Numba) and earlier formulas.

Adding an activation: a formula pair and a table entry here, its NumPy form in
reference.py, its torch form in tests/test_autograd.py and its exact form in
tests/test_numerics.py; then regenerate the Cython file. The codes are the kernel ABI:
entries are appended, never reordered.
"""
import math
from dataclasses import dataclass

# ---- constants (exactly representable in float32 and float64 unless noted) ----
ZERO, HALF, ONE, TWO, THREE = 0.0, 0.5, 1.0, 2.0, 3.0
LEAKY_SLOPE = 0.01                  # leaky_relu's slope for z <= 0 (torch's default; inexact)
ELU_ALPHA = 1.0
GELU_C = 0.7978845608028654         # sqrt(2 / pi), the tanh approximation's constant (inexact)
GELU_K = 0.044715                   # (inexact)
GELU_CLIP = 100.0                   # gelu': 1 - t*t is exactly 0 beyond; clipping keeps z*z finite
SELU_ALPHA = 1.6732632423543772848170429916717     # torch.nn.functional.selu's (inexact)
SELU_SCALE = 1.0507009873554804934193349852946     # (inexact)

CONSTANTS = dict(ZERO=ZERO, HALF=HALF, ONE=ONE, TWO=TWO, THREE=THREE, LEAKY_SLOPE=LEAKY_SLOPE,
                 ELU_ALPHA=ELU_ALPHA, GELU_C=GELU_C, GELU_K=GELU_K, GELU_CLIP=GELU_CLIP,
                 SELU_ALPHA=SELU_ALPHA, SELU_SCALE=SELU_SCALE)

# ---- primitives: plain Python's here; each target injects its own ----
exp, expm1, log1p, tanh = math.exp, math.expm1, math.log1p, math.tanh
PRIMITIVES = ("exp", "expm1", "log1p", "tanh", "sigmoid")


def sigmoid(z):
    """A primitive with a formula: the targets without a faster form of their own use this one."""
    e = exp(-abs(z))                # never overflows
    return ONE / (ONE + e) if z >= ZERO else e / (ONE + e)


# ---- the formulas: f_<name>(z), and df_<name>(z, a) = f'(z) given a = f(z) ----

def f_identity(z):
    return z


def df_identity(z, a):
    return ONE


def f_sigmoid(z):
    return sigmoid(z)


def df_sigmoid(z, a):
    return a * (ONE - a)


def f_tanh(z):
    return tanh(z)


def df_tanh(z, a):
    return ONE - a * a


def f_relu(z):
    return ZERO if z < ZERO else z              # NaN stays NaN


def df_relu(z, a):
    return ONE if z > ZERO else ZERO            # 0 at 0


def f_leaky_relu(z):
    return z if z > ZERO else LEAKY_SLOPE * z


def df_leaky_relu(z, a):
    return ONE if z > ZERO else LEAKY_SLOPE


def f_elu(z):
    return z if z > ZERO else ELU_ALPHA * expm1(z)


def df_elu(z, a):
    return ONE if z > ZERO else ELU_ALPHA * exp(z)


def f_softplus(z):
    return (z if z > ZERO else ZERO) + log1p(exp(-abs(z)))      # log(1 + exp(z)), never overflows


def df_softplus(z, a):
    return sigmoid(z)


def f_gelu(z):
    return HALF * z * (ONE + tanh(GELU_C * (z + GELU_K * z * z * z)))


def df_gelu(z, a):
    t = tanh(GELU_C * (z + GELU_K * z * z * z))
    zc = GELU_CLIP if z > GELU_CLIP else (-GELU_CLIP if z < -GELU_CLIP else z)
    return HALF * (ONE + t) + HALF * zc * (ONE - t * t) * GELU_C * (ONE + THREE * GELU_K * zc * zc)


def f_silu(z):
    return z * sigmoid(z)


def df_silu(z, a):
    s = sigmoid(z)
    return s * (ONE + z * (ONE - s))


def f_selu(z):
    return SELU_SCALE * z if z > ZERO else SELU_SCALE * (SELU_ALPHA * expm1(z))


def df_selu(z, a):
    return SELU_SCALE if z > ZERO else SELU_SCALE * (SELU_ALPHA * exp(z))


def f_mish(z):
    return z * tanh(f_softplus(z))


def df_mish(z, a):
    t = tanh(f_softplus(z))
    return t + z * sigmoid(z) * (ONE - t * t)


@dataclass(frozen=True)
class Activation:
    name: str
    f: object                       # f(z)
    df: object                      # f'(z, a), a = f(z)
    from_output: bool = False       # f' reads only a (z > 0 tests read a > 0 the same): A may overwrite Z
    relu_like: bool = False         # (nearly) zero on half the line: He initialisation
    transcendental: bool = False    # calls a primitive (exp, tanh, ...)


TABLE = (
    Activation("identity", f_identity, df_identity, from_output=True),
    Activation("sigmoid", f_sigmoid, df_sigmoid, from_output=True, transcendental=True),
    Activation("tanh", f_tanh, df_tanh, from_output=True, transcendental=True),
    Activation("relu", f_relu, df_relu, from_output=True, relu_like=True),
    Activation("leaky_relu", f_leaky_relu, df_leaky_relu, from_output=True, relu_like=True),
    Activation("elu", f_elu, df_elu, relu_like=True, transcendental=True),
    Activation("softplus", f_softplus, df_softplus, transcendental=True),
    Activation("gelu", f_gelu, df_gelu, relu_like=True, transcendental=True),
    Activation("silu", f_silu, df_silu, relu_like=True, transcendental=True),
    Activation("selu", f_selu, df_selu, transcendental=True),
    Activation("mish", f_mish, df_mish, relu_like=True, transcendental=True),
)

NAMES = tuple(a.name for a in TABLE)
CODES = {name: code for code, name in enumerate(NAMES)}
# the codes the code itself names (the others are reached through the table)
IDENTITY, SIGMOID, TANH, RELU = CODES["identity"], CODES["sigmoid"], CODES["tanh"], CODES["relu"]
LEAKY_RELU, ELU, SOFTPLUS, GELU, SILU = (CODES[n] for n in ("leaky_relu", "elu", "softplus", "gelu", "silu"))

RELU_LIKE = frozenset(code for code, a in enumerate(TABLE) if a.relu_like)


def code(name, argument="activation"):
    """The code for an activation name; a clear ValueError/TypeError otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a string, one of {list(NAMES)}; got {type(name).__name__}")
    try:
        return CODES[name]
    except KeyError:
        raise ValueError(f"unknown {argument} {name!r}; expected one of {list(NAMES)}") from None
