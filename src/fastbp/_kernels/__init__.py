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


def resolve(name):
    """A backend name, or "auto" -> a usable backend name; ValueError listing the usable ones."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string; got {type(name).__name__}")
    if name == "auto":
        return next(n for n in AUTO_PREFERENCE if _probe(n)[0])
    if name not in MODULES:
        raise ValueError(f"unknown backend {name!r}; available: {list(available_backends())} (or 'auto')")
    usable, why = _probe(name)
    if not usable:
        raise ValueError(f"backend {name!r} is not usable here ({why}); available: {list(available_backends())}")
    return name


# "auto" takes the first usable of these: Cython, compiled at install time (no JIT wait, no
# Numba import) and as fast as Numba or faster on every network measured
# (bench/results/auto-rule.md); Numba where Cython is not built; NumPy last.
AUTO_PREFERENCE = ("cython", "numba", "numpy")


def get_ops(name):
    """The `Ops` instance of a backend name or "auto"."""
    return importlib.import_module(MODULES[resolve(name)]).ops
