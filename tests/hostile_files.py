"""Building hostile files (crafted .npz / .npy / zip archives) and running code in a child
process under a timeout and an address-space limit, for the hostile-input suites
(tests/test_hostile_*.py)."""
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")

GOOD_META = dict(format="fastbp-mlp", version=1, layer_sizes=[3, 4, 2], activation="relu",
                 output_activation="identity", loss="mse", reduction="mean", dtype="float32")
N_PARAMS = 3 * 4 + 4 + 4 * 2 + 2            # of GOOD_META's network


def npy_bytes(array=None, header=None, data=b"", version=1):
    """A .npy stream: np.save of `array`, or a hand-written `header` (dict, or raw text) + `data`."""
    if array is not None:
        out = io.BytesIO()
        np.save(out, array, allow_pickle=False)
        return out.getvalue()
    text = (header if isinstance(header, str) else repr(header)).encode("latin1")
    size_format = "<H" if version == 1 else "<I"
    pad = -(len(text) + 6 + 2 + struct.calcsize(size_format) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack(size_format, len(text)) + text + data


def meta_npy(meta=None, raw=None):
    text = raw if raw is not None else json.dumps(GOOD_META if meta is None else meta).encode()
    return npy_bytes(np.frombuffer(text, dtype=np.uint8))


def params_npy(n=N_PARAMS, dtype=np.float32, fill=0.5):
    return npy_bytes(np.full(n, fill, dtype=dtype))


def write_zip(path, members, method=zipfile.ZIP_STORED):
    """members: [(name, bytes)] (a list, so a name may repeat)."""
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members:
            if name in z.NameToInfo:
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    z.writestr(name, data)
            else:
                z.writestr(name, data)
    return path


def checkpoint_members(meta=None, params=None, extra=()):
    return [("meta.npy", meta_npy(meta)), ("params.npy", params_npy() if params is None else params), *extra]


def patch_zip(path, name, *, flag=None, method=None, compress_size=None, file_size=None):
    """Rewrite fields of member `name` in its local header and central directory entry."""
    data = bytearray(open(path, "rb").read())
    encoded = name.encode()
    for signature, offsets in ((b"PK\x03\x04", dict(flag=6, method=8, compress_size=18, file_size=22, name_len=26,
                                                    name_at=30)),
                               (b"PK\x01\x02", dict(flag=8, method=10, compress_size=20, file_size=24, name_len=28,
                                                    name_at=46))):
        at = data.find(signature)
        while at >= 0:
            n = struct.unpack_from("<H", data, at + offsets["name_len"])[0]
            if bytes(data[at + offsets["name_at"]:at + offsets["name_at"] + n]) == encoded:
                for field, value, fmt in (("flag", flag, "<H"), ("method", method, "<H"),
                                          ("compress_size", compress_size, "<I"), ("file_size", file_size, "<I")):
                    if value is not None:
                        current = struct.unpack_from(fmt, data, at + offsets[field])[0]
                        struct.pack_into(fmt, data, at + offsets[field], value(current) if callable(value) else value)
            at = data.find(signature, at + 4)
    open(path, "wb").write(bytes(data))
    return path


def deflated_zeros_member(z, name, header, n_bytes):
    """Write .npy `header` followed by n_bytes of zeros as a deflated member (a zip bomb),
    compressing one zero chunk at a time."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with z.open(info, "w", force_zip64=True) as f:
        f.write(npy_bytes(header=header))
        chunk = bytes(1 << 22)
        for _ in range(n_bytes // len(chunk)):
            f.write(chunk)
        f.write(bytes(n_bytes % len(chunk)))


def rewrite_checkpoint(good, out, meta_edit=None, arrays_edit=None):
    """A copy of checkpoint `good` with its JSON description and/or arrays edited
    (meta_edit(meta) and arrays_edit(arrays) change them in place), written with np.savez."""
    with np.load(good, allow_pickle=False) as data:
        arrays = {k: np.array(data[k]) for k in data.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    if meta_edit is not None:
        meta_edit(meta)
    if arrays_edit is not None:
        arrays_edit(arrays)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(out, "wb") as f:
        np.savez(f, **arrays)
    return out


# ---- child processes ----

CHILD_PRELUDE = """
import contextlib, io, resource

def limit_address_space(extra_bytes):
    '''RLIMIT_AS = this process's current virtual size + extra_bytes (a memory limit without a real OOM).'''
    with open('/proc/self/status') as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmSize:'))
    resource.setrlimit(resource.RLIMIT_AS, (size + extra_bytes, resource.getrlimit(resource.RLIMIT_AS)[1]))

def cli(argv):
    '''`fastbp ARGV` in this process -> (exit status, or the exception the CLI let through; its stderr).'''
    from fastbp.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except BaseException as e:
            code = f"{type(e).__name__}: {e}"
    return code, err.getvalue()
"""


def run_child(code, timeout=120, env=None):
    """Run `code` in a fresh interpreter (tests/ on the path) -> CompletedProcess; a hang is a
    TimeoutExpired, so a test fails instead of blocking."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, HERE, os.environ.get("PYTHONPATH", "")]),
                "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=HERE)


def child_json(proc, marker="RESULT "):
    """The JSON a child printed after `marker`."""
    line = next((l for l in proc.stdout.splitlines() if l.startswith(marker)), None)
    assert line is not None, f"child exited {proc.returncode} without a result:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(line[len(marker):])


def crc32(path):
    return zlib.crc32(open(path, "rb").read())


def refused_by_all(loads, path, name):
    """Each load(path) raises a ValueError naming `path` -> the peak of traced memory meanwhile."""
    import tracemalloc

    import pytest
    tracemalloc.start()
    try:
        for load in loads:
            with pytest.raises(ValueError) as info:
                load(path)
            assert path in str(info.value), f"{name}: {load.__name__}: {info.value}"
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
