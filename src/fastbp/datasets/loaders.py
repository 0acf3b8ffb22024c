"""The loaders behind fastbp.datasets (see its docstring)."""
import gzip
import io
import numbers
import os
import warnings
import zlib
from importlib import resources

import numpy as np

from .. import memory
from ..files import open_regular
from ..npzfile import Archive

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
    """(X, y) from arrays `x_key` and `y_key` of a .npz file (no pickled objects; each
    array's declared size checked against the file before it is read: fastbp.npzfile)."""
    path = os.fspath(path)
    try:
        with Archive(path) as archive:
            X, y = (archive.member(key).read() for key in (x_key, y_key))
    except FileNotFoundError:
        raise
    except ValueError as e:
        raise ValueError(f"{path}: cannot read the data set ({e})") from None
    if X.ndim == 1:
        X = X[:, None]
    return _checked(X, y, path)


def load_csv(path, label_column=-1, delimiter=",", skip_header="auto"):
    """(X, y) from a numeric text table (UTF-8, a byte-order mark allowed; gzip when the name
    ends in .gz): every column but `label_column` is a feature.

    skip_header: True, False, or "auto": row 1 is a header when every cell is text, data when
    every cell is a number, and an error naming the cell otherwise (a typo in the first row
    of data is not silently dropped as a "header").
    Integer-valued labels come back as integers (classification), others as floats; an
    integer-valued label beyond 2**53 in magnitude is an error (no integer type holds it
    exactly). Only regular files are read (a FIFO or a device is a ValueError).
    """
    path = os.fspath(path)
    if isinstance(label_column, bool) or not isinstance(label_column, numbers.Integral):
        raise TypeError(f"label_column must be an integer column index; got {label_column!r}")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "#\n\r\"":
        raise ValueError(f"delimiter must be one character (not #, a quote or a line break); got {delimiter!r}")
    if not (isinstance(skip_header, bool) or isinstance(skip_header, str) and skip_header == "auto"):
        raise ValueError(f"skip_header must be True, False or 'auto'; got {skip_header!r}")
    try:
        raw, size = open_regular(path)
    except ValueError as e:
        raise ValueError(f"{path}: cannot read a numeric table ({e})") from None
    try:
        table, header = _read_table(raw, size, path, delimiter, skip_header)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: cannot read a numeric table (not a text file: it holds bytes that are "
                         f"not UTF-8)") from None
    except (ValueError, OSError, EOFError, MemoryError, zlib.error) as e:
        raise ValueError(f"{path}: cannot read a numeric table ({e})") from None
    finally:
        raw.close()
    if table.shape[0] == 0:
        raise ValueError(f"{path}: no rows of data")
    n_cols = table.shape[1]
    if not -n_cols <= label_column < n_cols or n_cols < 2:
        raise ValueError(f"{path}: label_column {label_column} is out of range for {n_cols} columns "
                         f"(need a label column and at least one feature)")
    label_column %= n_cols
    y = table[:, label_column]
    X = np.delete(table, label_column, axis=1)
    del table
    if np.all(np.isfinite(y)) and np.array_equal(y, np.round(y)):
        beyond = np.flatnonzero(np.abs(y) > MAX_EXACT_INTEGER)
        if beyond.size:
            raise ValueError(f"{path}: the label {y[beyond[0]]:g} of data row {beyond[0] + 1} (line "
                             f"{beyond[0] + 1 + header}, if no line is blank or a comment) is an integer beyond 2**53 "
                             f"in magnitude, which no label type holds exactly")
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


MAX_EXACT_INTEGER = 2 ** 53      # float64 holds every integer up to here, and no integer type is needed beyond
MAX_LINE = 64 << 20              # characters of row 1 read to decide whether it is a header


class _Limited(io.RawIOBase):
    """A decompressed stream that stops with a ValueError after `limit` bytes (a gzip bomb
    would otherwise inflate until memory runs out)."""

    def __init__(self, stream, limit):
        self.stream, self.left, self.limit = stream, limit, limit

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self.stream.read(min(len(buffer), self.left + 1))
        if len(data) > self.left:
            raise ValueError(f"it inflates to more than {memory.size_text(self.limit)}, the most that fits "
                             f"in the memory available")
        self.left -= len(data)
        buffer[:len(data)] = data
        return len(data)


def _read_table(raw, size, path, delimiter, skip_header):
    """-> (the float64 table of an open regular file, 1 if row 1 was a header else 0): row 1
    decided on, then NumPy's C reader for the rest: straight from the file (a path to the
    open file itself) when it is not compressed, else in chunks of about a megabyte of lines.
    A cell NumPy refuses is reported by line and column."""
    compressed = path.endswith(".gz")
    if compressed:
        opened = lambda: io.TextIOWrapper(io.BufferedReader(_Limited(gzip.GzipFile(fileobj=raw), budget)),  # noqa
                                          encoding="utf-8-sig")
        budget = (memory.available()[0] or 2 ** 62) // 8   # text of one-digit cells becomes 4x its size in floats
    else:
        memory.require(2 * size, f"reading {path} ({memory.size_text(size)} of text) would")
        opened = lambda: io.TextIOWrapper(raw, encoding="utf-8-sig")      # noqa: E731
    text = opened()
    first = text.readline(MAX_LINE)
    if len(first) == MAX_LINE and not first.endswith("\n"):
        raise ValueError(f"row 1 is longer than {MAX_LINE:,} characters")
    header = int(_is_header(first, delimiter) if skip_header == "auto" else skip_header)
    options = dict(delimiter=delimiter, dtype=np.float64, ndmin=2, encoding="utf-8-sig")
    try:
        reopened = None if compressed else _reopenable(raw.fileno())
        if reopened is not None:            # NumPy reads a path in C chunks: 4x faster than lines, and no line list
            raw.seek(0)                     # (where /dev/fd/N duplicates the descriptor, its offset is shared)
            with warnings.catch_warnings():     # an empty file: "no rows of data" says it, not NumPy's warning
                warnings.filterwarnings("ignore", message=".*input contained no data")
                return np.loadtxt(reopened, skiprows=header, **options), header
        return _chunked(text, [] if header else [first], options), header
    except ValueError as e:
        raw.seek(0)
        where = _first_bad_cell(opened(), delimiter, header)
        raise ValueError(where or str(e)) from None


def _chunked(text, lines, options):
    """np.loadtxt over about a megabyte of lines at a time (a list iterates faster than a file)."""
    pieces = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input contained no data")     # a chunk of comments
        while True:
            lines += text.readlines(1 << 20)
            if not lines:
                break
            piece = np.loadtxt(lines, **options)
            if piece.size:
                pieces.append(piece)
            lines = []
    if len({p.shape[1] for p in pieces}) > 1:
        raise ValueError("the number of columns changes")
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0] if pieces else np.empty((0, 1))


def _reopenable(fd):
    """A path naming the open file `fd` itself (not its name, which could be replaced), or None."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        candidate = f"{folder}/{fd}"
        if os.path.exists(candidate):
            return candidate
    return None


def _is_number(cell):
    """What NumPy's reader takes as a float (Python's float also takes '1_000')."""
    try:
        float(cell)
    except ValueError:
        return False
    return "_" not in cell


def _is_header(line, delimiter):
    """Row 1 is a header when every cell is text, data when every cell is a number; a row
    of both is an error naming the first cell that is not a number."""
    cells = line.rstrip("\r\n").split(delimiter)
    numeric = [_is_number(c) for c in cells]
    if all(numeric) or not line.strip():
        return False
    if not any(numeric):
        return True
    col = numeric.index(False)
    raise ValueError(f"row 1, column {col + 1}: {cells[col].strip()!r} is not a number, but other cells of row 1 "
                     f"are, so row 1 is neither a header (every cell text) nor a row of data")


def _first_bad_cell(lines, delimiter, skipped):
    """-> 'line N, column C: ...' for the first cell NumPy's reader refuses, or None."""
    n_cols = None
    for number, line in enumerate(lines, 1):
        content = line.split("#", 1)[0].rstrip("\r\n")
        if number <= skipped or not content.strip():
            continue
        cells = content.split(delimiter)
        for col, cell in enumerate(cells, 1):
            if not _is_number(cell):
                return f"line {number}, column {col}: {cell.strip()!r} is not a number"
        if n_cols is not None and len(cells) != n_cols:
            return f"line {number} has {len(cells)} columns; the lines before it have {n_cols}"
        n_cols = len(cells)
    return None


def _checked(X, y, path):
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise ValueError(f"{path}: X and y must be numeric; got {X.dtype} and {y.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{path}: X must be 2-D (samples, features); got shape {X.shape}")
    if len(y) != len(X):
        raise ValueError(f"{path}: X has {len(X)} rows but y has {len(y)}")
    return X, y
