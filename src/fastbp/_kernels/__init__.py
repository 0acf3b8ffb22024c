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
# at install time (no JIT latency, no Numba import) and was the faster CPU backend on most
# shapes measured.
AUTO_PREFERENCE = ("cython", "numba", "numpy")

# The rule, from measurements of one float32 SGD train_step per shape, numba time over
# cython time (> 1: Cython faster), one thread, idle 2-core AMD EPYC, 2026-11-23, after both
# backends took plain SGD into the weight-gradient GEMM and Cython's float32 tanh became
# vectorized (sigmoid measured with a vectorized form since dropped for libm's, which was as
# fast or faster; `OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python
# bench/cython_auto_rule.py 11`, and with SMALL=1):
#     relu nets: 64-64-64-1 b32 1.11, 128-128-10 b16 1.12, 784-128-64-10 b64 1.03,
#         256-256-256-10 b32 1.02, 512-512-512-10 b64 1.00, 784-256-256-10 b256 1.00,
#         1024x4 b256 0.99 (within 1% either way from mnist size up)
#     tanh / sigmoid nets: 784-128-64-10 b64 sigmoid 0.82-0.84, 64-64-64-1 b32 0.53,
#         32-32-32-1 b256 0.39
#     2-2-2 b1 sigmoid: 1.44 (per-call overhead; Cython's is lower)
# Numba wins wherever a transcendental activation is computed: its float32-lane
# approximations (8 AVX2 lanes) against Cython's libm-accurate forms (libm's expf for
# sigmoid, a double form on 2 SSE2 lanes for tanh).
# Elsewhere the two run the same BLAS and Cython's lower call overhead and zero JIT latency
# decide.
TINY_NETWORK_PARAMS = 1000          # below this, per-call overhead decides: Cython's is lower


def prefers_numba(arch):
    """The measured rule above: numba for not-tiny networks with a transcendental activation
    (anything but identity/relu/leaky_relu)."""
    from .. import activations
    cheap = {activations.IDENTITY, activations.RELU, activations.LEAKY_RELU}
    return arch.n_params >= TINY_NETWORK_PARAMS and any(code not in cheap for code in arch.activations)


def auto_order(arch=None):
    """The backends "auto" tries, best first, for a network `arch` (None: shape unknown)."""
    if arch is None or "numba" not in AUTO_PREFERENCE or "cython" not in AUTO_PREFERENCE:
        return AUTO_PREFERENCE
    first = "numba" if prefers_numba(arch) else "cython"
    return (first,) + tuple(n for n in AUTO_PREFERENCE if n != first)


def get_ops(name, arch=None):
    """The `Ops` instance of a backend name or "auto" (for the network `arch`, when given)."""
    return importlib.import_module(MODULES[resolve(name, arch)]).ops
