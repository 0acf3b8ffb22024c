""".npz archives read as a careful archive tool reads a file it did not write: nothing in
it is trusted, and nothing is allocated before the size it claims is checked against the
size it really has.

An archive is a zip of .npy members. On opening, every member must be stored or deflated
(no encryption, no other method), appear once, and fit inside the file; a deflated member
may not claim more than deflate can produce from its compressed bytes. A member's .npy
header is parsed here (bounded: at most MAX_HEADER bytes), its dtype must be plain numbers,
and its shape times its item size must equal the member's declared size, all before its
data is read. The data is then read in chunks into one array of exactly that size; the
zip's CRC-32 is checked at the end. Every failure is a ValueError; callers add the path.
"""
import ast
import contextlib
import math
import struct
import zipfile
import zlib

import numpy as np

from . import memory
from .files import open_regular

MAX_HEADER = 10_000             # bytes of a .npy header (NumPy's own limit for untrusted files)
DEFLATE_MAX_RATIO = 1032        # deflate's largest expansion, uncompressed bytes per compressed byte
_CHUNK = 1 << 20
_NPY_MAGIC = b"\x93NUMPY"
_LOCAL_HEADER = 30              # bytes of a zip local file header before its name and extra field
# what zipfile, zlib and struct raise on a malformed archive (FileNotFoundError is raised before)
_MALFORMED = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, struct.error, OSError, OverflowError,
              NotImplementedError, RuntimeError, UnicodeDecodeError, KeyError, IndexError)


@contextlib.contextmanager
def _malformed_is_value_error():
    try:
        yield
    except _MALFORMED as e:
        raise ValueError(f"a malformed archive ({type(e).__name__}: {e})") from None


class Member:
    """One array of the archive, its header checked, its data not yet read."""

    def __init__(self, archive, info, shape, dtype, fortran_order, data_offset):
        self.archive, self.info = archive, info
        self.shape, self.dtype, self.fortran_order, self.data_offset = shape, dtype, fortran_order, data_offset

    @property
    def nbytes(self):
        return math.prod(self.shape) * self.dtype.itemsize

    def read(self):
        """-> the array (native byte order, C order unless the file says Fortran order)."""
        count = math.prod(self.shape)
        try:
            memory.require(self.nbytes, f"array {self.info.filename[:-4]!r} ({self.dtype} {self.shape}) would")
        except MemoryError as e:
            raise ValueError(str(e)) from None
        try:
            flat = np.empty(count, dtype=self.dtype)
        except MemoryError:                  # what was available a moment ago is gone
            raise ValueError(f"array {self.info.filename[:-4]!r}: no memory for {memory.size_text(self.nbytes)}") \
                from None
        with _malformed_is_value_error():
            flat = self._read_into(flat)
        if not self.dtype.isnative:
            flat = flat.astype(self.dtype.newbyteorder("="))
        if self.fortran_order:
            return flat.reshape(self.shape[::-1]).T
        return flat.reshape(self.shape)

    def _read_into(self, flat):
        count = flat.size
        view = memoryview(flat.view(np.uint8).reshape(-1)) if count else memoryview(b"")
        with self.archive.zip.open(self.info) as f:
            f.read(self.data_offset)
            at = 0
            while at < len(view):
                got = f.readinto(view[at:at + _CHUNK])
                if not got:
                    raise ValueError(f"member {self.info.filename!r} ends after {at} of {len(view)} data bytes")
                at += got
            if f.read(1):                               # also where zipfile checks the CRC-32
                raise ValueError(f"member {self.info.filename!r} holds more than its header declares")
        return flat


class Archive:
    """with Archive(path) as a: a.names (member names without ".npy"), a.member(name) -> Member."""

    def __init__(self, path):
        self.path = path
        self._file, self.size = open_regular(path)
        try:
            head = self._file.read(len(_NPY_MAGIC))
            self._file.seek(0)
            if head == _NPY_MAGIC:
                raise ValueError("a single .npy array, not an .npz archive")
            if not head.startswith(b"PK"):
                raise ValueError("not an .npz (zip) archive")
            with _malformed_is_value_error():
                self.zip = zipfile.ZipFile(self._file)
                self._infos = self._checked_members()
        except BaseException:
            self._file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            if hasattr(self, "zip"):
                self.zip.close()
        finally:
            self._file.close()

    @property
    def names(self):
        return list(self._infos)

    def _checked_members(self):
        infos = {}
        for info in self.zip.infolist():
            name = info.filename
            if not name.endswith(".npy") or name[:-4] in infos:
                raise ValueError(f"member {name!r} is not one .npy array (a duplicate, or another kind of file)")
            if info.flag_bits & 0x1:
                raise ValueError(f"member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"member {name!r} is compressed with zip method {info.compress_type}; "
                                 "only stored and deflated members are read")
            end = info.header_offset + _LOCAL_HEADER + len(info.orig_filename.encode("utf-8", "replace")) \
                + info.compress_size
            if end > self.size:
                raise ValueError(f"member {name!r} claims {info.compress_size:,} bytes at offset "
                                 f"{info.header_offset:,}: beyond the end of the {self.size:,}-byte file")
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise ValueError(f"stored member {name!r} claims {info.file_size:,} bytes but holds "
                                 f"{info.compress_size:,}")
            if info.file_size > DEFLATE_MAX_RATIO * info.compress_size + 64:
                raise ValueError(f"member {name!r} claims to inflate {info.compress_size:,} bytes to "
                                 f"{info.file_size:,}, more than deflate can")
            infos[name[:-4]] = info
        return infos

    def member(self, name):
        """-> Member for array `name`, its .npy header read and checked against its size."""
        info = self._infos.get(name)
        if info is None:
            raise ValueError(f"has no array named {name!r}; it holds {sorted(self._infos)}")
        with _malformed_is_value_error(), self.zip.open(info) as f:
            shape, dtype, fortran_order, data_offset = _read_npy_header(f, name)
        declared = math.prod(shape) * dtype.itemsize
        if data_offset + declared != info.file_size:
            raise ValueError(f"array {name!r}: its header declares {dtype} {shape} ({declared:,} bytes) but the "
                             f"member holds {info.file_size - data_offset:,} data bytes")
        return Member(self, info, shape, dtype, fortran_order, data_offset)


def _read_npy_header(f, name):
    """-> (shape, dtype, fortran_order, offset of the data) of a .npy stream, reading at most
    MAX_HEADER + 12 bytes. Plain numeric dtypes only (no objects, records or sub-arrays)."""
    magic = f.read(8)
    if len(magic) != 8 or magic[:6] != _NPY_MAGIC:
        raise ValueError(f"member {name!r} is not a .npy array")
    major = magic[6]
    if major not in (1, 2, 3):
        raise ValueError(f"array {name!r}: .npy format version {major} is unknown")
    size_format = "<H" if major == 1 else "<I"
    raw = f.read(struct.calcsize(size_format))
    if len(raw) != struct.calcsize(size_format):
        raise ValueError(f"array {name!r}: truncated header")
    length = struct.unpack(size_format, raw)[0]
    if length > MAX_HEADER:
        raise ValueError(f"array {name!r}: a header of {length:,} bytes (at most {MAX_HEADER:,} are read)")
    text = f.read(length)
    if len(text) != length:
        raise ValueError(f"array {name!r}: truncated header")
    try:
        header = ast.literal_eval(text.decode("utf-8" if major == 3 else "latin1"))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, UnicodeDecodeError):
        raise ValueError(f"array {name!r}: its header is not a Python literal") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"array {name!r}: its header lacks descr/fortran_order/shape")
    shape, fortran_order, descr = header["shape"], header["fortran_order"], header["descr"]
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"array {name!r}: shape {shape!r} is not a tuple of non-negative integers")
    if not isinstance(fortran_order, bool):
        raise ValueError(f"array {name!r}: fortran_order {fortran_order!r} is not a bool")
    if not isinstance(descr, str):
        raise ValueError(f"array {name!r}: dtype {descr!r} is not a plain numeric dtype")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise ValueError(f"array {name!r}: dtype {descr!r} is not a dtype") from None
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"array {name!r}: dtype {dtype} is not a plain numeric dtype")
    return shape, dtype, fortran_order, 6 + 2 + len(raw) + length
