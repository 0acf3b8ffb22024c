"""Data files fastbp did not write (fastbp.datasets.load_csv / load_npz / load_data and
`fastbp train --data`):

- a FIFO, /dev/zero, a folder, a link to one: a ValueError naming it, at once (in a child
  process with a timeout and an address-space limit: a hang or a read until memory runs
  out fails the test instead of the machine);
- a UTF-8 byte-order mark is read as nothing; row 1 is a header only when every cell is
  text, data when every cell is a number, and otherwise an error naming row 1 and the cell
  (a typo or a hex value is never dropped silently); a bad cell later names its line;
- a label beyond 2**53 is refused (no wrap to int64's minimum);
- a .gz that inflates beyond a quarter of the memory available is refused;
- hostile .npz data (declared sizes, encryption, methods, dtypes) as for checkpoints;
- loading peaks at about twice the size of the arrays it returns (traced).
"""
import gzip
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

import fuzz_report
from conftest import FULL
from fastbp import datasets
from hostile_files import child_json, npy_bytes, patch_zip, refused_by_all, run_child, write_zip

FAMILY = "data loaders"
MB = 1 << 20


def write(path, text, bom=False, gz=False):
    data = (("\ufeff" if bom else "") + text).encode()
    open(path, "wb").write(gzip.compress(data) if gz else data)
    return str(path)


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
@pytest.mark.parametrize("bom", [False, True], ids=["", "BOM"])
@pytest.mark.parametrize("header", [False, True], ids=["no header", "header"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_bom_header_and_line_endings(tmp_path, gz, bom, header, newline):
    rows = [[1.5, 2, 0], [3, 4.25, 1], [5, 6, 2]]
    text = newline.join(([] if not header else ["x1,x2,label"]) + [",".join(map(str, r)) for r in rows]) + newline
    path = write(tmp_path / ("d.csv.gz" if gz else "d.csv"), text, bom=bom, gz=gz)
    with fuzz_report.hostile_case(FAMILY):
        X, y = datasets.load_csv(path)
        np.testing.assert_array_equal(X, np.array(rows)[:, :2])
        assert y.tolist() == [0, 1, 2] and y.dtype.kind == "i"


ROW_ONE = {   # first line -> None (it is data: 3 rows load) or the column an error must name
    "1,2,0": None,
    " 1 , 2 , 0 ": None,
    "nan,2,0": None,
    "1,O.5,0": 2,                  # a typo
    "0x1A,2,0": 1,                 # hex
    "1,,0": 2,                     # an empty cell
    "1,2,zero": 3,
    "1_000,2,0": 1,                # Python's float takes it; NumPy's reader does not
    "x1,7,label": 1,               # "a header" with one numeric name: the first text cell is named
}


@pytest.mark.parametrize("first", ROW_ONE)
def test_row_one_is_a_header_only_when_every_cell_is_text(tmp_path, first):
    path = write(tmp_path / "r.csv", first + "\n3,4,1\n5,6,0\n")
    column = ROW_ONE[first]
    with fuzz_report.hostile_case(FAMILY):
        if column is None:
            X, y = datasets.load_csv(path)
            assert len(X) == 3, "row 1 was dropped"
        else:
            with pytest.raises(ValueError, match=f"row 1, column {column}") as info:
                datasets.load_csv(path)
            assert path in str(info.value)


LATER_ROWS = {
    "1,2,0\n3,x,1\n": "line 2, column 2",
    "a,b,c\n1,2,0\n3,4\n": "line 3 has 2 columns",
    "a,b,c\n1,2,0\n\n# note\n3,4,1\n5,0x10,0\n": "line 6, column 2",
    "1,2,0\n" * 3 + "1,2,0,9\n": "line 4",
}


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
@pytest.mark.parametrize("text", LATER_ROWS, ids=range(len(LATER_ROWS)))
def test_a_bad_cell_later_names_its_line(tmp_path, text, gz):
    path = write(tmp_path / ("b.csv.gz" if gz else "b.csv"), text, gz=gz)
    with fuzz_report.hostile_case(FAMILY):
        with pytest.raises(ValueError, match=LATER_ROWS[text]) as info:
            datasets.load_csv(path)
        assert path in str(info.value)


@pytest.mark.parametrize("label,error", [("1e19", True), ("-1e19", True), (str(2 ** 53 + 2), True),
                                         ("1e300", True), (str(2 ** 53), False), ("2.5", False)])
def test_labels_beyond_2_53_are_refused_not_wrapped(tmp_path, label, error):
    path = write(tmp_path / "l.csv", f"1,2,0\n3,4,{label}\n")
    with fuzz_report.hostile_case(FAMILY):
        if error:
            with pytest.raises(ValueError, match=r"2\*\*53") as info:
                datasets.load_csv(path)
            assert path in str(info.value) and "row 2" in str(info.value)
        else:
            _, y = datasets.load_csv(path)
            assert y[1] == float(label) and (y.dtype.kind == "i") == ("." not in label)


@pytest.mark.parametrize("kwargs,name", [(dict(skip_header=1), "skip_header"), (dict(skip_header="yes"), "skip_header"),
                                         (dict(delimiter=";;"), "delimiter"), (dict(delimiter="\n"), "delimiter"),
                                         (dict(label_column=1.0), "label_column")])
def test_bad_options_are_named(tmp_path, kwargs, name):
    path = write(tmp_path / "o.csv", "1,2,0\n")
    with fuzz_report.hostile_case(FAMILY):
        with pytest.raises((ValueError, TypeError), match=name):
            datasets.load_csv(path, **kwargs)


def header(descr="<f8", shape=(4, 2)):
    return {"descr": descr, "fortran_order": False, "shape": shape}


def data_npz(path, X=None, y=None, method=zipfile.ZIP_STORED):
    X = npy_bytes(np.ones((4, 2))) if X is None else X
    y = npy_bytes(np.arange(4)) if y is None else y
    return write_zip(str(path), [("X.npy", X), ("y.npy", y)], method)


HOSTILE_NPZ = {
    "X declares 8 GiB": lambda p: data_npz(p, X=npy_bytes(header=header(shape=(2 ** 30, 1)))),
    "X declares 4 TiB": lambda p: data_npz(p, X=npy_bytes(header=header(shape=(2 ** 39, 1)))),
    "y declares a negative size": lambda p: data_npz(p, y=npy_bytes(header=header(shape=(-4,)))),
    "X object": lambda p: data_npz(p, X=npy_bytes(header=header("|O"))),
    "X strings": lambda p: data_npz(p, X=npy_bytes(np.array([["1", "2"]] * 4))),
    "X records": lambda p: data_npz(p, X=npy_bytes(np.zeros(4, dtype=[("a", "<f8"), ("b", "<f8")]))),
    "X complex": lambda p: data_npz(p, X=npy_bytes(np.ones((4, 2), complex))),
    "X missing": lambda p: write_zip(str(p), [("y.npy", npy_bytes(np.arange(4)))]),
    "encrypted": lambda p: patch_zip(data_npz(p), "X.npy", flag=lambda f: f | 1),
    "bzip2": lambda p: data_npz(p, method=zipfile.ZIP_BZIP2),
    "LZMA": lambda p: data_npz(p, method=zipfile.ZIP_LZMA),
    "claims more than deflate can": lambda p: patch_zip(data_npz(p, method=zipfile.ZIP_DEFLATED), "X.npy",
                                                        file_size=2 ** 31),
    "member beyond the file": lambda p: patch_zip(data_npz(p), "X.npy", compress_size=2 ** 31, file_size=2 ** 31),
    ".npy as .npz": lambda p: np.save(open(p, "wb"), np.ones((4, 2))) or str(p),
    "rows differ": lambda p: data_npz(p, y=npy_bytes(np.arange(5))),
    "empty file": lambda p: open(p, "wb").close() or str(p),
}


@pytest.mark.parametrize("name", HOSTILE_NPZ)
def test_hostile_npz_data_is_a_value_error_naming_it(tmp_path, name):
    path = HOSTILE_NPZ[name](tmp_path / "h.npz")
    with fuzz_report.hostile_case(FAMILY):
        peak = refused_by_all((datasets.load_npz, datasets.load_data), path, name)
        assert peak < 8 * MB, f"{name}: {peak / MB:.0f} MiB traced"


def test_npz_data_in_any_byte_order_and_memory_order_loads(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    path = write_zip(str(tmp_path / "ok.npz"), [("X.npy", npy_bytes(np.asfortranarray(X).astype(">f4"))),
                                                ("y.npy", npy_bytes(np.arange(4, dtype=">i2")))])
    Xl, yl = datasets.load_npz(path)
    np.testing.assert_array_equal(Xl, X)
    assert yl.tolist() == [0, 1, 2, 3]


CHILD = """
import json
import fastbp.cli
from fastbp import datasets
limit_address_space(256 << 20)      # after the imports: their reservations (BLAS threads) are not the point
out = {}
for name, path in CASES.items():
    for load in (datasets.load_csv, datasets.load_npz, datasets.load_data):
        try:
            load(path)
            out[f"{load.__name__} {name}"] = "loaded"
        except ValueError as e:
            out[f"{load.__name__} {name}"] = "refused" if path in str(e) else f"ValueError without the path: {e}"
        except BaseException as e:
            out[f"{load.__name__} {name}"] = f"{type(e).__name__}: {e}"
    code, err = cli(["train", "--data", path, "--epochs", "1", "--backend", "numpy", "--quiet"])
    lines = err.strip().splitlines()
    out[f"fastbp train --data {name}"] = ("refused" if code == 1 and len(lines) == 1 and path in lines[0]
                                          else f"exit {code}: {err!r}")
print("RESULT " + json.dumps(out))
"""


def test_special_files_do_not_hang_or_read_forever(tmp_path):
    """In a child with RLIMIT_AS = its size + 256 MiB and a 120 s timeout: FIFOs (named .csv
    and .npz), /dev/zero, links to them, a folder, a gzip bomb inflating to 256 MiB (two
    under FASTBP_FULL=1) -> ValueError naming the file from every loader and from the CLI."""
    cases = {}
    for name in ("fifo.csv", "fifo.npz"):
        os.mkfifo(tmp_path / name)
        cases[name] = str(tmp_path / name)
    os.symlink("/dev/zero", tmp_path / "zero.csv")
    os.symlink(tmp_path / "fifo.csv", tmp_path / "link-to-fifo.csv")
    cases.update({"/dev/zero": "/dev/zero", "link to /dev/zero": str(tmp_path / "zero.csv"),
                  "link to a FIFO": str(tmp_path / "link-to-fifo.csv"), "folder": str(tmp_path)})
    for name, row, mib in (("gzip bomb, one line", b"0" * 1024, 256), ("gzip bomb, 1 KiB lines", ("0," * 511 + "0\n").encode(), 256)):
        if "lines" in name and not FULL:
            continue                                            # (NumPy parses it at ~3 M cells/s: long mode only)
        with gzip.open(tmp_path / f"{name[-4:]}.csv.gz", "wb", compresslevel=1) as f:
            for _ in range(mib):
                f.write(row * 1024)
        cases[name] = str(tmp_path / f"{name[-4:]}.csv.gz")
    proc = run_child(f"CASES = {cases!r}\n" + CHILD, timeout=120)
    results = child_json(proc)
    for key, outcome in results.items():
        with fuzz_report.hostile_case(FAMILY):
            # (load_csv on an .npz FIFO and load_npz on a CSV path are asked to read the same special file)
            assert outcome == "refused", f"{key}: {outcome}"


def peak_ratio(load, path):
    tracemalloc.start()
    try:
        X, y = load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / (X.nbytes + y.nbytes), X.shape


def test_loading_peaks_at_about_twice_the_arrays_it_returns(tmp_path):
    rng = np.random.default_rng(0)
    wide = rng.normal(size=(20_000, 20))
    labels = rng.integers(0, 10, 20_000)
    lines = ["".join(f"{v:.5g}," for v in row) + f"{k}" for row, k in zip(wide, labels)]
    files = {"csv, 20 float columns": write(tmp_path / "w.csv", "\n".join(lines) + "\n"),
             "csv.gz, 20 float columns": write(tmp_path / "w.csv.gz", "\n".join(lines) + "\n", gz=True),
             "csv, 2 one-digit columns": write(tmp_path / "n.csv", "1,0\n0,1\n" * 100_000)}
    np.savez(tmp_path / "w.npz", X=wide, y=labels)
    files["npz"] = str(tmp_path / "w.npz")
    worst = {}
    for name, path in files.items():
        with fuzz_report.hostile_case(FAMILY):
            ratio, shape = peak_ratio(datasets.load_data, path)
            worst[name] = ratio
            assert ratio < 3.0, f"{name}: loading peaked at {ratio:.1f}x the returned arrays {shape}"
    fuzz_report.hostile_notes[FAMILY].append(
        "loading peaks at " + ", ".join(f"{r:.2f}x ({n})" for n, r in worst.items()) + " the arrays returned")
