"""The loaders behind fastbp.datasets (see its docstring)."""
import gzip
import numbers
import os
import re
import warnings
import zipfile
from importlib import resources

import numpy as np

DIGITS = "digits.csv.gz"     # in fastbp/data/, with its attribution in fastbp/data/README.md


def load_digits(scale=True):
    """The 8x8 handwritten digits: -> (X, y), X (1797, 64) float64, y (1797,) int labels 0..9.

    scale=True divides the pixel counts (0..16) by 16, so X lies in [0, 1].
    UCI ML hand-written digits (Alpaydin & Kaynak, 1998), CC BY 4.0; see fastbp/data/README.md.
    """
    with resources.files("fastbp").joinpath("data", DIGITS).open("rb") as raw, gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    X = table[:, :-1].astype(np.float64)
    if scale:
        X /= 16.0
    return X, table[:, -1].astype(np.intp)


def load_npz(path, x_key="X", y_key="y"):
    """(X, y) from arrays `x_key` and `y_key` of a .npz file (no pickled objects)."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("not an .npz archive (a single .npy array?)")
            missing = [k for k in (x_key, y_key) if k not in data.files]
            if missing:
                raise ValueError(f"has no array named {missing[0]!r}; it holds {sorted(data.files)}")
            X, y = np.array(data[x_key]), np.array(data[y_key])
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read the data set ({_in_our_words(e)})") from None
    if X.ndim == 1:
        X = X[:, None]
    return _checked(X, y, path)


def load_csv(path, label_column=-1, delimiter=",", skip_header="auto"):
    """(X, y) from a numeric text table: every column but `label_column` is a feature.

    skip_header: True, False, or "auto" (skip the first line when it is not numeric).
    Integer-valued labels come back as integers (classification), others as floats.
    """
    path = os.fspath(path)
    if isinstance(label_column, bool) or not isinstance(label_column, numbers.Integral):
        raise TypeError(f"label_column must be an integer column index; got {label_column!r}")
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            lines = f.read().splitlines()
        if skip_header == "auto":
            skip_header = bool(lines) and not _numeric_line(lines[0], delimiter)
        with warnings.catch_warnings():     # NumPy's "input contained no data": the check below says it
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(lines[1 if skip_header else 0:], delimiter=delimiter, dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read a numeric table ({_in_our_words(e)})") from None
    if table.shape[0] == 0:
        raise ValueError(f"{path}: no rows of data")
    n_cols = table.shape[1]
    if not -n_cols <= label_column < n_cols or n_cols < 2:
        raise ValueError(f"{path}: label_column {label_column} is out of range for {n_cols} columns "
                         f"(need a label column and at least one feature)")
    label_column %= n_cols
    y = table[:, label_column]
    X = np.delete(table, label_column, axis=1)
    if np.all(np.isfinite(y)) and np.array_equal(y, np.round(y)):
        y = y.astype(np.intp)
    return _checked(X, y, path)


def load_data(path, **options):
    """load_npz for .npz files, load_csv otherwise."""
    if os.fspath(path).endswith(".npz"):
        return load_npz(path, **options)
    return load_csv(path, **options)


def train_test_split(X, y, test_fraction=0.2, seed=0):
    """A seeded random split -> (X_train, X_test, y_train, y_test)."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be a number in (0, 1); got {test_fraction!r}")
    X, y = np.asarray(X), np.asarray(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X and y must have the same number of rows; got {n} and {len(y)}")
    n_test = int(round(n * test_fraction))
    if not 0 < n_test < n:
        raise ValueError(f"test_fraction {test_fraction} leaves an empty part of {n} rows")
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def _in_our_words(error):
    """NumPy's reading errors without its advice to the programmer (`usecols`, `allow_pickle`),
    which a user of fastbp cannot follow."""
    text = str(error)
    ragged = re.search(r"number of columns changed from (\d+) to (\d+) at row (\d+)", text)
    if ragged:
        return f"rows of different lengths: {ragged[1]} columns, then {ragged[2]} at row {ragged[3]}"
    if "allow_pickle" in text or "pickled" in text:
        return "it holds pickled Python objects, which fastbp never loads; save plain numeric arrays"
    if isinstance(error, UnicodeDecodeError):
        return "not a text file"
    return text


def _numeric_line(line, delimiter):
    try:
        [float(v) for v in line.split(delimiter)]
        return True
    except ValueError:
        return False


def _checked(X, y, path):
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise ValueError(f"{path}: X and y must be numeric; got {X.dtype} and {y.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{path}: X must be 2-D (samples, features); got shape {X.shape}")
    if len(y) != len(X):
        raise ValueError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    return X, y
