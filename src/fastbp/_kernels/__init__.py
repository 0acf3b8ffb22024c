"""The backend registry: name -> module holding one `Ops` instance named `ops`.

A backend module is imported only when it is asked for, so `import fastbp` and a network
on one backend never pay for another backend's imports (Numba's, say).
"""
import importlib

MODULES = {
    "numpy": "fastbp._kernels.reference",
    "numba": "fastbp._kernels.numba_cpu.ops",
    "cython": "fastbp._kernels.cython_cpu.ops",
    "cuda": "fastbp._kernels.cuda.ops",
}

_status = {}   # name -> (usable, why not)


def _probe(name):
    if name not in _status:
        try:
            module = importlib.import_module(MODULES[name])
            _status[name] = module.available()
        except ImportError as e:
            _status[name] = (False, f"{type(e).__name__}: {e}")
    return _status[name]


def available_backends():
    """The backends usable on this machine, in MODULES order."""
    return tuple(name for name in MODULES if _probe(name)[0])


def unavailable_reasons():
    """{backend: why it is not usable} for each backend that is not."""
    return {name: _probe(name)[1] for name in MODULES if not _probe(name)[0]}


def resolve(name, arch=None):
    """A backend name, or "auto" -> a usable backend name; ValueError listing the usable ones.
    For "auto", `arch` (a layout.Architecture) lets the choice follow the network's shape."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string; got {type(name).__name__}")
    if name == "auto":
        return next(n for n in auto_order(arch) if _probe(n)[0])
    if name not in MODULES:
        raise ValueError(f"unknown backend {name!r}; available: {list(available_backends())} (or 'auto')")
    usable, why = _probe(name)
    if not usable:
        raise ValueError(f"backend {name!r} is not usable here ({why}); available: {list(available_backends())}")
    return name


# "auto" takes the first usable backend of auto_order(arch): AUTO_PREFERENCE, reordered for
# the network's shape by the rule below. With no architecture (fastbp.kernels.*, or a
# caller that does not say) it is AUTO_PREFERENCE as written: Cython first, as it is compiled
# at install time (no JIT latency, no Numba import).
AUTO_PREFERENCE = ("cython", "numba", "numpy")

# The rule: Numba for networks of at least TINY_NETWORK_PARAMS parameters with a
# transcendental activation, where its float32-lane exp/tanh beat Cython's libm-accurate
# forms; Cython elsewhere (the same BLAS, lower call overhead, no JIT latency). The
# measurements and the command that takes them: bench/results/auto-rule.md.
TINY_NETWORK_PARAMS = 1000          # below this, per-call overhead decides: Cython's is lower


def prefers_numba(arch):
    """The rule above, for a network `arch` (a layout.Architecture)."""
    from .. import activations
    return (arch.n_params >= TINY_NETWORK_PARAMS
            and any(code in activations.TRANSCENDENTAL for code in arch.activations))


def auto_order(arch=None):
    """The backends "auto" tries, best first, for a network `arch` (None: shape unknown)."""
    if arch is None or "numba" not in AUTO_PREFERENCE or "cython" not in AUTO_PREFERENCE:
        return AUTO_PREFERENCE
    first = "numba" if prefers_numba(arch) else "cython"
    return (first,) + tuple(n for n in AUTO_PREFERENCE if n != first)


def get_ops(name, arch=None):
    """The `Ops` instance of a backend name or "auto" (for the network `arch`, when given)."""
    return importlib.import_module(MODULES[resolve(name, arch)]).ops
