"""Argument checks at the API boundary (docs/design.md, "Bad input").

Everything is checked before anything is changed, so a rejected call leaves the network
and the optimizer exactly as they were, and compiled kernels only ever see shapes and
dtypes that were checked here.
"""
import numbers

import numpy as np

from . import losses

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(dtype, argument="dtype"):
    if dtype is None:       # np.dtype(None) would quietly mean float64
        raise TypeError(f"{argument} must be float32 or float64; got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{argument} must be float32 or float64; got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{argument} must be float32 or float64; got {dt}")
    return dt


def random_generator(seed, argument="seed"):
    """np.random.default_rng(seed), its errors naming the argument; a RandomState is
    returned as it is (it draws with the same method names)."""
    if isinstance(seed, np.random.RandomState):
        return seed
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{argument} must be None or a non-negative integer; got {seed!r} ({e})") from None


def random_state(seed, argument="seed"):
    """np.random.RandomState(seed) (a RandomState or Generator is returned as it is), its
    errors naming the argument."""
    if isinstance(seed, (np.random.RandomState, np.random.Generator)):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not (seed is None or isinstance(seed, numbers.Integral)):
        raise TypeError(f"{argument} must be None, a non-negative integer or a numpy RandomState; got {seed!r}")
    try:
        return np.random.RandomState(seed)
    except ValueError as e:
        raise ValueError(f"{argument} must be None or an integer in [0, 2**32); got {seed!r} ({e})") from None


def l2_penalty(value, argument="l2"):
    """The L2 penalty's strength -> a float >= 0 (TypeError for a non-number, ValueError for a
    negative or non-finite one)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a real number >= 0; got {value!r}")
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{argument} must be a finite real number >= 0; got {value!r}")
    return value


def sequence_of(value, n, argument):
    """A list of n items from a sequence (list, tuple, ...); TypeError/ValueError naming the argument."""
    if isinstance(value, (str, bytes, np.ndarray)) or not hasattr(value, "__len__"):
        raise TypeError(f"{argument} must be a sequence of {n} arrays (one per layer); got {type(value).__name__}")
    if len(value) != n:
        raise ValueError(f"{argument} must hold {n} arrays (one per layer); got {len(value)}")
    return list(value)


def layer_sizes(sizes):
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"layer_sizes must be a sequence of positive integers; got {sizes!r}")
    if len(sizes) < 2:
        raise ValueError(f"layer_sizes needs at least 2 entries (inputs and outputs); got {list(sizes)}")
    out = []
    for i, n in enumerate(sizes):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
            raise TypeError(f"layer_sizes[{i}] must be an integer; got {n!r}")
        if n < 1:
            raise ValueError(f"layer_sizes[{i}] must be >= 1; got {n}")
        out.append(int(n))
    return tuple(out)


def _real_array(a, name):
    """Any array-like of real numbers (bool, int, float) -> ndarray, without copying when possible."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name} is not a rectangular array of numbers: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool, int or float); got dtype {arr.dtype}")
    return arr


def _c_array(arr, dtype=None):
    """C-contiguous and aligned (compiled kernels assume both; an array cut from a byte buffer
    may be neither), as a base ndarray: a copy only when needed."""
    arr = np.ascontiguousarray(arr, dtype=dtype)
    return arr if arr.base is None or arr.flags.aligned else arr.copy()   # NumPy allocates aligned


def _check_finite(arr, name, original=None):
    """ValueError unless arr is all finite; `original`: what arr was converted from, to tell
    NaN/inf from values that only overflowed the conversion (1e39 -> float32)."""
    if not np.isfinite(arr).all():
        if original is not None and original.dtype.kind == "f" and np.isfinite(original).all():
            raise ValueError(f"{name} has values beyond the range of {arr.dtype} "
                             f"(|value| > {np.finfo(arr.dtype).max:.4g})")
        raise ValueError(f"{name} contains NaN or inf")


def _converted(arr, dtype):
    with np.errstate(over="ignore"):        # out-of-range values become inf: _check_finite names them
        return _c_array(arr, dtype)


def kernel_array(a, name, ndim, dtype=None):
    """A kernel input: a float32/float64 ndarray (never converted), finite, non-empty,
    of `ndim` dimensions and of `dtype` when given -> a C-contiguous array (a copy only
    for other memory layouts: the numbers are the same)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a float32 or float64 numpy array; got {type(a).__name__}")
    kernel_array_kind(a, name, ndim, dtype)
    _check_finite(a, name)
    return _c_array(a)


def kernel_array_kind(a, name, ndim, dtype=None):
    """The kernel-input checks that need only dtype and shape, for host and device arrays alike."""
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64 (kernels never convert); got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name} is {a.dtype} but the other arrays are {dtype}: all must share one dtype")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {a.shape}")


def vector(a, n, dtype, name):
    """A 1-D real array of length n -> contiguous array of dtype, finite."""
    arr = _real_array(a, name)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},); got {arr.shape}")
    arr = _c_array(arr, dtype)
    _check_finite(arr, name)
    return arr


def _ready(a, dtype, ndim):
    """a is exactly what a kernel takes already: a base ndarray of dtype, ndim, C-contiguous
    and aligned (then _real_array and _c_array would return it unchanged)."""
    if type(a) is not np.ndarray or a.dtype != dtype or a.ndim != ndim:
        return False
    flags = a.flags
    return flags.c_contiguous and flags.aligned


def ready_pair(X, y, dtype, n_features, n_out):
    """True when X (batch, n_features) and y (batch, n_out) already are exactly what the
    kernels take: base ndarrays of `dtype` (the very dtype object), C-contiguous, aligned
    and writeable, batch >= 1. Attribute look-ups only (the per-step case of train_step);
    False sends them through features/targets, which accept and check everything else.
    Nothing here looks at the values: the NaN/inf pass is the caller's (Ops.checks_finite)."""
    if type(X) is not np.ndarray or type(y) is not np.ndarray or X.dtype is not dtype or y.dtype is not dtype:
        return False
    if X.ndim != 2 or y.ndim != 2 or not (X.flags.carray and y.flags.carray):
        return False
    batch, n = X.shape
    return batch > 0 and n == n_features and y.shape == (batch, n_out)


def features(X, dtype, n_features, name="X", check_finite=True):
    """Model input -> C-contiguous (batch, n_features) array of the network's dtype.
    check_finite=False leaves the NaN/inf pass to the caller (a backend whose compiled call
    checks before it writes anything: Ops.checks_finite)."""
    if _ready(X, dtype, 2) and X.shape[0] > 0 and X.shape[1] == n_features:
        arr = X     # already what the kernels take (the per-step case): the same checks, fewer calls
        if check_finite:
            _check_finite(arr, name)
        return arr
    arr = _real_array(X, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, {n_features}); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {arr.shape}); need at least one row")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} features (columns); got shape {arr.shape}")
    original, arr = arr, _converted(arr, dtype)
    if check_finite:
        _check_finite(arr, name, original)
    return arr


def targets(y, loss, dtype, batch, n_out, name="y", check_finite=True):
    """Targets for `loss` -> the array the kernels take: integer labels (batch,) for
    cross_entropy, else a (batch, n_out) array of the network's dtype."""
    if loss != losses.CROSS_ENTROPY and _ready(y, dtype, 2) and y.shape == (batch, n_out):
        if check_finite:    # already what the kernels take (the per-step case)
            _check_finite(y, name)
        _check_target_range(y, loss, name)
        return y
    arr = _real_array(y, name)
    if arr.ndim == 0 or arr.shape[0] != batch:
        raise ValueError(f"{name} must have one row per sample ({batch}); got shape {arr.shape}")
    if loss == losses.CROSS_ENTROPY:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"{name} must be integer class labels of shape ({batch},) for cross_entropy; "
                             f"got shape {arr.shape}")
        _check_finite(arr, name)
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels for cross_entropy; got non-integer values")
        if arr.min() < 0 or arr.max() >= n_out:      # checked before the cast, which could wrap
            raise ValueError(f"{name} labels must lie in [0, {n_out}) for {n_out} outputs; "
                             f"got values in [{arr.min()}, {arr.max()}]")
        return _c_array(arr, np.intp)          # no copy when they already are C-contiguous intp
    if arr.ndim == 1 and n_out == 1:
        arr = arr[:, None]
    if arr.shape != (batch, n_out):
        raise ValueError(f"{name} must have shape ({batch}, {n_out}); got {arr.shape}")
    original, arr = arr, _converted(arr, dtype)
    if check_finite:        # (cross_entropy labels above are always checked: they index memory)
        _check_finite(arr, name, original)
    _check_target_range(arr, loss, name)
    return arr


def sample_weight(sw, n, dtype, name="sample_weight"):
    """Per-row weights -> None (none given) or a (n,) array of dtype: finite, >= 0, not all 0."""
    if sw is None:
        return None
    arr = _real_array(sw, name)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one weight per row, shape ({n},); got shape {arr.shape}")
    original, arr = arr, _converted(arr, dtype)
    _check_finite(arr, name, original)
    if arr.min() < 0:
        raise ValueError(f"{name} must be >= 0; got a minimum of {arr.min():g}")
    if not arr.any():
        raise ValueError(f"{name} must not be all zero (the weighted mean would be undefined)")
    return arr


def _check_target_range(y, loss, name):
    if loss == losses.BCE:
        _check_probabilities(y, name)
    elif loss == losses.POISSON:
        low = y.min()
        if np.isfinite(low) and low < 0:
            raise ValueError(f"{name} must hold counts or rates >= 0 for poisson; got a minimum of {low:g}")


def _check_probabilities(y, name):
    """BCE targets are probabilities: ValueError unless every finite value lies in [0, 1].
    (NaN and inf are left to the finite check, here or in the backend's compiled call.)"""
    low, high = y.min(), y.max()
    if np.isfinite(low) and np.isfinite(high) and (low < 0 or high > 1):
        raise ValueError(f"{name} must hold targets in [0, 1] for bce (binary labels or probabilities); "
                         f"got values in [{low:g}, {high:g}]")
