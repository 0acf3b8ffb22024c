"""Checkpoint files fastbp did not write, and resumes from sections it did not write.

Loading: every crafted file is a ValueError naming it, raised before any network is built
and with memory bounded by the file's real size (traced in-process; under an address-space
limit in a child process for the files whose declared sizes are huge); through
`MLP.load`, `checkpoint.read`, `fit(resume=...)`, `fastbp train --resume` and
`fastbp explain --network` (one line, exit status 1).

Resuming: every malformed section (RNG state, history, epoch, optimizer hyper-parameters,
step count and state buffers) is a ValueError naming the file, and the rejected resume
changes nothing: the network, the optimizer and the checkpoint fit would write stay bit
for bit as they were.
"""
import json
import os
import stat
import zipfile

import numpy as np
import pytest

import fastbp as fb
import fuzz_report
from conftest import FULL
from fastbp import checkpoint, network
from hostile_files import (GOOD_META, N_PARAMS, checkpoint_members, child_json, crc32, deflated_zeros_member,
                           meta_npy, npy_bytes, params_npy, patch_zip, refused_by_all, rewrite_checkpoint, run_child,
                           write_zip)

FAMILY = "checkpoint load"
MB = 1 << 20


def header(descr="<f4", shape=(N_PARAMS,), fortran_order=False):
    return {"descr": descr, "fortran_order": fortran_order, "shape": shape}


def with_meta(**changes):
    return lambda p: write_zip(p, checkpoint_members(meta=GOOD_META | changes))


def stored_then(patch):
    def build(p):
        write_zip(p, checkpoint_members())
        return patch(p)
    return build


def deflated_then(patch):
    def build(p):
        write_zip(p, checkpoint_members(), method=zipfile.ZIP_DEFLATED)
        return patch(p)
    return build


def bomb(p, n_bytes=64 * MB):
    """A deflated params member whose header is consistent with its inflated size but not
    with the architecture: refused from the header, before inflating anything."""
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("meta.npy", meta_npy())
        deflated_zeros_member(z, "params.npy", header(shape=(n_bytes // 4,)), n_bytes)
    return p


def npy_as_npz(p):
    np.save(open(p, "wb"), np.zeros(N_PARAMS, np.float32))
    return p


def nested_json(depth, opening=b"[", closing=b"]"):
    return lambda p: write_zip(p, [("meta.npy", meta_npy(raw=opening * depth + closing * depth)),
                                   ("params.npy", params_npy())])


# name -> builder(path) -> path; every file must be refused with a ValueError naming it
HOSTILE = {
    # sizes declared far beyond what the file holds (the architecture or a member's header)
    "huge declared layer sizes": with_meta(layer_sizes=[100_000, 100_000, 100_000]),
    "layer sizes 10**40": with_meta(layer_sizes=[10 ** 40, 2]),
    "header declares 8 GiB": lambda p: write_zip(p, checkpoint_members(params=npy_bytes(header=header(shape=(2 ** 31,))))),
    "header declares 4 TiB": lambda p: write_zip(p, checkpoint_members(params=npy_bytes(header=header(shape=(2 ** 40,))))),
    "header declares 2-D params": lambda p: write_zip(p, checkpoint_members(
        params=npy_bytes(header=header(shape=(N_PARAMS // 2, 2)), data=bytes(4 * N_PARAMS)))),
    "header declares fewer bytes than held": lambda p: write_zip(p, checkpoint_members(
        params=npy_bytes(header=header(shape=(N_PARAMS - 1,)), data=bytes(4 * N_PARAMS)))),
    "header declares a negative size": lambda p: write_zip(p, checkpoint_members(params=npy_bytes(header=header(shape=(-1,))))),
    "header of 4 GB (version 2)": lambda p: write_zip(p, checkpoint_members(
        params=b"\x93NUMPY\x02\x00" + (2 ** 32 - 1).to_bytes(4, "little") + b"{"),),
    "header of 60 kB": lambda p: write_zip(p, checkpoint_members(params=npy_bytes(header="{" + " " * 60_000 + "}"))),
    "header nested 5,000 deep": lambda p: write_zip(p, checkpoint_members(params=npy_bytes(header="(" * 5000 + ")" * 5000))),
    "header not a dict": lambda p: write_zip(p, checkpoint_members(params=npy_bytes(header="[1, 2]"))),
    "header dtype object": lambda p: write_zip(p, checkpoint_members(params=npy_bytes(header=header("|O")))),
    "header dtype record": lambda p: write_zip(p, checkpoint_members(
        params=npy_bytes(header=header([("a", "<f4")]), data=bytes(4 * N_PARAMS)))),
    "header dtype complex": lambda p: write_zip(p, checkpoint_members(
        params=npy_bytes(header=header("<c8"), data=bytes(8 * N_PARAMS)))),
    "header dtype sub-array": lambda p: write_zip(p, checkpoint_members(
        params=npy_bytes(header=header("(2,)<f4", shape=(N_PARAMS // 2,)), data=bytes(4 * N_PARAMS)))),
    "params float64 for a float32 net": lambda p: write_zip(p, checkpoint_members(params=params_npy(dtype=np.float64))),
    "params int32": lambda p: write_zip(p, checkpoint_members(params=npy_bytes(np.zeros(N_PARAMS, np.int32)))),
    "params NaN": lambda p: write_zip(p, checkpoint_members(params=params_npy(fill=np.nan))),
    "params inf": lambda p: write_zip(p, checkpoint_members(params=params_npy(fill=np.inf))),
    "params missing": lambda p: write_zip(p, [("meta.npy", meta_npy())]),
    "unknown member": lambda p: write_zip(p, checkpoint_members(extra=[("evil.npy", params_npy())])),
    "member not .npy": lambda p: write_zip(p, checkpoint_members(extra=[("readme.txt", b"hello")])),
    "duplicate member": lambda p: write_zip(p, checkpoint_members(extra=[("params.npy", params_npy(fill=1.0))])),
    "optimizer state without an optimizer": lambda p: write_zip(p, checkpoint_members(
        extra=[("optim_m.npy", params_npy()), ("optim_v.npy", params_npy())])),
    # the zip container itself
    "zip bomb, 64 MiB of zeros declared": bomb,
    "deflated member claims more than deflate can": deflated_then(
        lambda p: patch_zip(p, "params.npy", file_size=2 ** 31)),
    "stored member claims another size": stored_then(lambda p: patch_zip(p, "params.npy", file_size=2 ** 31)),
    "member claims bytes beyond the file": stored_then(
        lambda p: patch_zip(p, "params.npy", compress_size=2 ** 31, file_size=2 ** 31)),
    "encrypted member": stored_then(lambda p: patch_zip(p, "params.npy", flag=lambda f: f | 1)),
    "LZMA member": lambda p: write_zip(p, checkpoint_members(), method=zipfile.ZIP_LZMA),
    "bzip2 member": lambda p: write_zip(p, checkpoint_members(), method=zipfile.ZIP_BZIP2),
    "unknown compression method": stored_then(lambda p: patch_zip(p, "params.npy", method=99)),
    "corrupt deflate stream": deflated_then(lambda p: _flip_inside(p, "params.npy")),
    "bad CRC": stored_then(lambda p: _flip_inside(p, "params.npy")),
    ".npy given as .npz": npy_as_npz,
    "empty file": lambda p: open(p, "wb").close() or p,
    "zip of nothing": lambda p: write_zip(p, []),
    # the JSON description
    "JSON nested 100,000 deep (lists)": nested_json(100_000),
    "JSON nested 100,000 deep (objects)": nested_json(100_000, b'{"a":', b"}"),
    "description not UTF-8": lambda p: write_zip(p, [("meta.npy", meta_npy(raw=b"\xff\xfe{}")),
                                                   ("params.npy", params_npy())]),
    "description as float64": lambda p: write_zip(p, [("meta.npy", npy_bytes(np.zeros(3))), ("params.npy", params_npy())]),
    "description of 100 MB declared": lambda p: write_zip(p, [
        ("meta.npy", npy_bytes(header=header("|u1", shape=(100 * MB,)))), ("params.npy", params_npy())]),
    "description a list": lambda p: write_zip(p, [("meta.npy", meta_npy(raw=b"[1, 2]")), ("params.npy", params_npy())]),
    "integer of 5,000 digits": lambda p: write_zip(p, [
        ("meta.npy", meta_npy(raw=json.dumps(GOOD_META).replace('"version": 1', '"version": ' + "9" * 5000).encode())),
        ("params.npy", params_npy())]),
    "unknown description key": with_meta(evil=True),
    "layer sizes as strings": with_meta(layer_sizes=["3", "4", "2"]),
    "layer sizes as floats": with_meta(layer_sizes=[3.0, 4.0, 2.0]),
    "layer sizes negative": with_meta(layer_sizes=[3, -4, 2]),
    "layer sizes nested": with_meta(layer_sizes=[[3], [4], [2]]),
    "layer sizes true/false": with_meta(layer_sizes=[True, 4, 2]),
    "layer sizes a number": with_meta(layer_sizes=26),
    "activation unknown": with_meta(activation="swish9"),
    "activation a list": with_meta(activation=["relu"]),
    "dtype float16": with_meta(dtype="float16"),
    "dtype a mapping": with_meta(dtype={"names": ["a"], "formats": ["<f4"]}),
    "loss unknown": with_meta(loss="hinge"),
    "description lacks dtype": lambda p: write_zip(p, checkpoint_members(
        meta={k: v for k, v in GOOD_META.items() if k != "dtype"})),
}


def _flip_inside(path, name):
    data = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    at = info.header_offset + 30 + len(info.filename) + info.compress_size - 3
    data[at] ^= 0xFF
    open(path, "wb").write(bytes(data))
    return path


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return {name: str(build(str(folder / f"{i:02d}.npz"))) for i, (name, build) in enumerate(HOSTILE.items())}


@pytest.fixture
def no_network_built(monkeypatch):
    """Fails a test that builds a network (MLP._allocate) while loading."""
    def built(*args, **kwargs):
        raise AssertionError("a network was built before the file was fully validated")
    monkeypatch.setattr(network.MLP, "_allocate", built)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_checkpoint_is_a_value_error_naming_it_before_anything_is_built(hostile_files, name,
                                                                                no_network_built):
    path = hostile_files[name]
    with fuzz_report.hostile_case(FAMILY):
        peak = refused_by_all((fb.MLP.load, checkpoint.read, network.load_checkpoint), path, name)
        assert peak < 8 * MB, f"{name}: loading allocated {peak / MB:.1f} MiB for a {os.path.getsize(path):,}-byte file"


def test_hostile_checkpoint_given_to_resume_changes_nothing(hostile_files, tmp_path):
    net = fb.MLP(GOOD_META["layer_sizes"], backend="numpy", seed=0)
    opt = fb.Adam()
    X, y = np.ones((4, 3)), np.zeros((4, 2))
    before = net.get_flat_params().tobytes()
    for name, path in hostile_files.items():
        with fuzz_report.hostile_case(FAMILY):
            with pytest.raises(ValueError) as info:
                net.fit(X, y, epochs=1, resume=path, optimizer=opt, progress=False)
            assert path in str(info.value), f"{name}: {info.value}"
            assert net.get_flat_params().tobytes() == before and opt.step_count == 0 and not opt.state, name


CLI_PROBE = """
import json
out = {}
for path in json.loads(PATHS):
    for command in (["train", "--resume", path, "--epochs", "1", "--backend", "numpy", "--quiet"],
                    ["explain", "--network", path, "--backend", "numpy"]):
        out[command[0] + " " + path] = cli(command)
print("RESULT " + json.dumps(out))
"""


def test_hostile_checkpoint_through_the_cli_is_one_line(hostile_files):
    """`fastbp train --resume F` and `fastbp explain --network F`: exit status 1, one line
    naming F, no traceback (all the files in one child process)."""
    paths = list(hostile_files.values())
    proc = run_child(f"PATHS = {json.dumps(json.dumps(paths))}\n" + CLI_PROBE, timeout=300)
    results = child_json(proc)
    names = {p: n for n, p in hostile_files.items()}
    for key, (code, err) in results.items():
        command, path = key.split(" ", 1)
        with fuzz_report.hostile_case(FAMILY):
            lines = err.strip().splitlines()
            assert code == 1 and len(lines) == 1 and path in lines[0] and "Traceback" not in err, \
                f"fastbp {command} with {names[path]!r}: exit {code!r}, stderr {err!r}"


LIMITED_LOADS = """
import json
import fastbp as fb
limit_address_space(EXTRA)          # after the imports: their reservations (BLAS threads) are not the point
out = {}
for name, path in CASES.items():
    try:
        net = fb.MLP.load(path, backend="numpy")
        out[name] = ["loaded", net.n_params]
    except ValueError as e:
        out[name] = ["ValueError", str(e)]
    except BaseException as e:
        out[name] = [type(e).__name__, str(e)]
print("RESULT " + json.dumps(out))
"""


def test_declared_sizes_beyond_an_address_space_limit(tmp_path):
    """Under RLIMIT_AS = the child's size + 192 MiB: files declaring networks of 0.5-16 GiB
    (as layer sizes, as member headers, as a zip bomb consistent with its architecture, which
    really inflates to 512 MiB; 2 GiB under FASTBP_FULL=1) are each a ValueError naming the
    file, never a MemoryError, and nothing is inflated; a real checkpoint of 16 MiB still
    loads there (the limit is not what refuses them)."""
    cases = {}
    huge = GOOD_META | dict(layer_sizes=[1, 2 ** 28])              # 2**29 parameters: 2 GiB of float32
    cases["2 GiB architecture, stored params of 26"] = write_zip(str(tmp_path / "a.npz"), checkpoint_members(meta=huge))
    cases["16 GiB header"] = write_zip(str(tmp_path / "b.npz"), checkpoint_members(
        meta=GOOD_META | dict(layer_sizes=[1, 2 ** 31]), params=npy_bytes(header=header(shape=(2 ** 32,)))))
    cases["2 GiB header consistent with its architecture"] = write_zip(str(tmp_path / "c.npz"), checkpoint_members(
        meta=huge, params=npy_bytes(header=header(shape=(2 ** 29,)))))
    n = 2 ** 29 if FULL else 2 ** 27                               # parameters of the bomb's network
    p = cases[f"zip bomb inflating to {4 * n / 2 ** 30:g} GiB, consistent with its architecture"] = str(tmp_path / "d.npz")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("meta.npy", meta_npy(GOOD_META | dict(layer_sizes=[1, n // 2])))
        deflated_zeros_member(z, "params.npy", header(shape=(n,)), 4 * n)
    real = fb.MLP([64, 2048, 2048], backend="numpy", seed=0)    # 4.3 M parameters, 16 MiB
    real.save(tmp_path / "real.npz")
    cases["control: a real 16 MiB checkpoint"] = str(tmp_path / "real.npz")
    proc = run_child(f"EXTRA = {192 * MB}\nCASES = {cases!r}\n" + LIMITED_LOADS, timeout=300)
    results = child_json(proc)
    for name, (kind, message) in results.items():
        with fuzz_report.hostile_case(FAMILY):
            if name.startswith("control"):
                assert kind == "loaded" and message == real.n_params, f"{name}: {kind}: {message}"
            else:
                assert kind == "ValueError" and cases[name] in message, f"{name}: {kind}: {message}"
    fuzz_report.hostile_notes[FAMILY].append(
        f"{len(results) - 1} files declaring 2-16 GiB refused under RLIMIT_AS = size + 192 MiB; "
        f"a real 16 MiB checkpoint loads there")


def test_a_fifo_named_as_a_checkpoint_does_not_hang(tmp_path):
    fifo = tmp_path / "net.npz"
    os.mkfifo(fifo)
    code = f"""
    import fastbp as fb
    for path in ({str(fifo)!r}, "/dev/zero", {str(tmp_path)!r}):
        try:
            fb.MLP.load(path)
        except ValueError as e:
            assert path in str(e), e
            print("refused", path)
    """
    with fuzz_report.hostile_case(FAMILY):
        proc = run_child(code, timeout=60)
        assert proc.returncode == 0 and proc.stdout.count("refused") == 3, proc.stdout + proc.stderr
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_big_endian_checkpoint_written_by_hand_loads_with_the_same_values(tmp_path):
    """Not hostile: the careful reader still reads what is valid."""
    values = np.linspace(-1, 1, N_PARAMS).astype(">f4")
    path = write_zip(str(tmp_path / "be.npz"), checkpoint_members(params=npy_bytes(values)))
    net = fb.MLP.load(path, backend="numpy")
    np.testing.assert_array_equal(net.get_flat_params(), values.astype(np.float32))


# ---- resume: sections fastbp did not write ----

def trained_checkpoint(folder, optimizer):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 3)), rng.normal(size=(24, 2))
    net = fb.MLP([3, 5, 2], activation="tanh", dtype=np.float64, backend="numpy", seed=0)
    path = str(folder / f"good-{type(optimizer).__name__}.npz")
    net.fit(X, y, epochs=2, batch_size=8, optimizer=optimizer, seed=1, checkpoint=path, progress=False,
            grad_norms=True)
    return path, X, y


def set_in(*keys, value):
    def edit(meta):
        target = meta
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value(target[keys[-1]]) if callable(value) else value
    return edit


def delete(*keys):
    def edit(meta):
        target = meta
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]
    return edit


def array(name, change):
    def edit(arrays):
        arrays[name] = change(arrays[name].copy())
    return edit


def filled(value, at=-1):
    def change(a):
        a[at] = value
        return a
    return change


RESUME_META = {           # name -> (optimizer the checkpoint holds, edit of its JSON description)
    "rng missing": ("adam", delete("training", "rng")),
    "rng a string": ("adam", set_in("training", "rng", value="PCG64")),
    "rng other bit generator": ("adam", set_in("training", "rng", "bit_generator", value="MT19937")),
    "rng state a float": ("adam", set_in("training", "rng", "state", "state", value=1.5)),
    "rng state negative": ("adam", set_in("training", "rng", "state", "state", value=-1)),
    "rng state 2**200": ("adam", set_in("training", "rng", "state", "state", value=2 ** 200)),
    "rng increment even": ("adam", set_in("training", "rng", "state", "inc", value=2)),
    "rng has_uint32 5": ("adam", set_in("training", "rng", "has_uint32", value=5)),
    "rng extra key": ("adam", set_in("training", "rng", "evil", value=1)),
    "history missing": ("adam", delete("training", "history")),
    "history a list": ("adam", set_in("training", "history", value=[1, 2])),
    "history epochs skip one": ("adam", set_in("training", "history", "epoch", value=[1, 3])),
    "history loss too short": ("adam", set_in("training", "history", "loss", value=lambda v: v[:1])),
    "history loss a string": ("adam", set_in("training", "history", "loss", value=["low", "lower"])),
    "history loss nested": ("adam", set_in("training", "history", "loss", value=[[[1.0]], [[2.0]]])),
    "history grad_norms wrong width": ("adam", set_in("training", "history", "grad_norms", value=[[1.0], [2.0]])),
    "epoch -3": ("adam", set_in("training", "epoch", value=-3)),
    "epoch 1.5": ("adam", set_in("training", "epoch", value=1.5)),
    "epoch a string": ("adam", set_in("training", "epoch", value="2")),
    "epoch true": ("adam", set_in("training", "epoch", value=True)),
    "epoch beyond its epochs": ("adam", set_in("training", "epoch", value=7)),
    "batch_size 0": ("adam", set_in("training", "batch_size", value=0)),
    "n_samples -24": ("adam", set_in("training", "n_samples", value=-24)),
    "shuffle a string": ("adam", set_in("training", "shuffle", value="yes")),
    "training a list": ("adam", set_in("training", value=[1])),
    "training extra key": ("adam", set_in("training", "evil", value=1)),
    "optimizer a list": ("adam", set_in("optimizer", value=["Adam"])),
    "optimizer type Lion": ("adam", set_in("optimizer", "type", value="Lion")),
    "optimizer lr NaN": ("adam", set_in("optimizer", "hyperparameters", "lr", value=float("nan"))),
    "optimizer lr inf": ("adam", set_in("optimizer", "hyperparameters", "lr", value=float("inf"))),
    "optimizer lr -1": ("adam", set_in("optimizer", "hyperparameters", "lr", value=-1.0)),
    "optimizer lr a string": ("adam", set_in("optimizer", "hyperparameters", "lr", value="0.1")),
    "optimizer eps negative": ("adam", set_in("optimizer", "hyperparameters", "eps", value=-1e-8)),
    "optimizer betas of one": ("adam", set_in("optimizer", "hyperparameters", "betas", value=[0.9])),
    "optimizer beta 1.5": ("adam", set_in("optimizer", "hyperparameters", "betas", value=[1.5, 0.9])),
    "optimizer betas a mapping": ("adam", set_in("optimizer", "hyperparameters", "betas", value={"a": 1, "b": 2})),
    "optimizer weight_decay NaN": ("adam", set_in("optimizer", "hyperparameters", "weight_decay", value=float("nan"))),
    "optimizer hyper-parameter missing": ("adam", delete("optimizer", "hyperparameters", "eps")),
    "optimizer hyper-parameter unknown": ("adam", set_in("optimizer", "hyperparameters", "amsgrad", value=True)),
    "optimizer momentum negative": ("sgd", set_in("optimizer", "hyperparameters", "momentum", value=-0.5)),
    "optimizer nesterov a string": ("sgd", set_in("optimizer", "hyperparameters", "nesterov", value="yes")),
    "step_count -1": ("adam", set_in("optimizer", "step_count", value=-1)),
    "step_count 1.5": ("adam", set_in("optimizer", "step_count", value=1.5)),
    "step_count 2**64": ("adam", set_in("optimizer", "step_count", value=2 ** 64)),
    "step_count a string": ("adam", set_in("optimizer", "step_count", value="3")),
    "step_count 0 with state": ("adam", set_in("optimizer", "step_count", value=0)),
    "step_count missing": ("adam", delete("optimizer", "step_count")),
}

RESUME_ARRAYS = {         # name -> (optimizer, edit of the arrays)
    "Adam m NaN": ("adam", array("optim_m", filled(np.nan))),
    "Adam v negative": ("adam", array("optim_v", filled(-1.0, 0))),
    "Adam v inf": ("adam", array("optim_v", filled(np.inf))),
    "Adam m missing": ("adam", lambda arrays: arrays.pop("optim_m")),
    "Adam m float32": ("adam", array("optim_m", lambda a: a.astype(np.float32))),
    "Adam m one short": ("adam", array("optim_m", lambda a: a[:-1])),
    "SGD velocity -inf": ("sgd", array("optim_velocity", filled(-np.inf))),
    "SGD velocity 2-D": ("sgd", array("optim_velocity", lambda a: a.reshape(1, -1))),
    "SGD given Adam's state": ("sgd", lambda arrays: arrays.update(optim_m=arrays["optim_velocity"])),
    "params NaN": ("adam", array("params", filled(np.nan))),
}


def make_optimizer(kind):
    return fb.Adam(lr=1e-2) if kind == "adam" else fb.SGD(lr=0.05, momentum=0.9)


@pytest.fixture(scope="module")
def good_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    return {kind: trained_checkpoint(folder, make_optimizer(kind)) for kind in ("adam", "sgd")}


def resume_state(net, opt, out):
    return (net.get_flat_params().tobytes(), opt.step_count, {k: np.array(v).tobytes() for k, v in opt.state.items()},
            crc32(out))


@pytest.mark.parametrize("name", [*RESUME_META, *RESUME_ARRAYS])
@pytest.mark.parametrize("given_optimizer", [True, False], ids=["optimizer given", "optimizer from the file"])
def test_malformed_resume_section_is_refused_and_changes_nothing(good_checkpoints, tmp_path, name, given_optimizer):
    kind, edit = RESUME_META.get(name) or RESUME_ARRAYS[name]
    good, X, y = good_checkpoints[kind]
    bad = rewrite_checkpoint(good, str(tmp_path / "bad.npz"), **({"meta_edit": edit} if name in RESUME_META
                                                                else {"arrays_edit": edit}))
    net = fb.MLP([3, 5, 2], activation="tanh", dtype=np.float64, backend="numpy", seed=3)
    opt = make_optimizer(kind)
    net.train_step(X[:8], y[:8], opt)                     # non-trivial state that must survive
    out = str(tmp_path / "out.npz")
    net.save(out, opt)
    before = resume_state(net, opt, out)
    with fuzz_report.hostile_case("resume sections"):
        with pytest.raises(ValueError) as info:
            net.fit(X, y, epochs=4, batch_size=8, seed=1, progress=False, resume=bad, checkpoint=out,
                    optimizer=opt if given_optimizer else None)
        assert bad in str(info.value), f"{name}: {info.value}"
        assert resume_state(net, opt, out) == before, f"{name}: the rejected resume changed something"
        with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
            fb.MLP.load(bad)


def test_resume_beyond_the_calls_epochs_is_refused(good_checkpoints):
    good, X, y = good_checkpoints["adam"]
    net = fb.MLP([3, 5, 2], activation="tanh", dtype=np.float64, backend="numpy", seed=3)
    before = net.get_flat_params().tobytes()
    with fuzz_report.hostile_case("resume sections"):
        with pytest.raises(ValueError, match="2 epochs; epochs=1"):
            net.fit(X, y, epochs=1, batch_size=8, seed=1, progress=False, resume=good)
        assert net.get_flat_params().tobytes() == before


def test_the_good_checkpoints_do_resume(good_checkpoints):
    """Control: the unedited files resume (so the refusals above are the edits' doing)."""
    for kind, (good, X, y) in good_checkpoints.items():
        net = fb.MLP([3, 5, 2], activation="tanh", dtype=np.float64, backend="numpy", seed=3)
        history = net.fit(X, y, epochs=3, batch_size=8, seed=1, progress=False, resume=good, grad_norms=True)
        assert history["epoch"] == [1, 2, 3]


def test_a_malformed_resume_through_the_cli_is_one_line(good_checkpoints, tmp_path):
    """`fastbp train --resume` of a checkpoint with epoch -3: one line naming it, exit 1."""
    net = fb.MLP([64, 8, 10], loss="cross_entropy", backend="numpy", seed=0)
    good = str(tmp_path / "cli.npz")
    X, y = fb.datasets.load_digits()
    net.fit(X[:64], y[:64], epochs=1, checkpoint=good, progress=False)
    bad = rewrite_checkpoint(good, str(tmp_path / "cli-bad.npz"), meta_edit=set_in("training", "epoch", value=-3))
    proc = run_child(f"from fastbp.cli import main\nimport sys\nsys.exit(main(['train', '--resume', {bad!r}, "
                     f"'--epochs', '2', '--quiet', '--backend', 'numpy']))", timeout=120)
    with fuzz_report.hostile_case("resume sections"):
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and bad in lines[0] and "epoch" in lines[0], proc.stderr


def test_mutated_and_truncated_checkpoints_load_or_are_a_value_error(tmp_path):
    """A bit flipped in a byte (400 sampled and every byte of the zip's headers; under
    FASTBP_FULL=1 every byte) and truncations (29; every length) of a real checkpoint with
    optimizer and training state: it loads with the same description, or it is a ValueError
    naming the file; nothing else escapes."""
    good, _, _ = trained_checkpoint(tmp_path, fb.Adam(1e-2))
    data = open(good, "rb").read()
    rng = np.random.default_rng(16)
    headers = [i for i in range(len(data)) if data[i:i + 2] == b"PK"]
    sample = range(len(data)) if FULL else rng.choice(len(data), 400, replace=False).tolist()    # FULL: every byte
    offsets = sorted({*sample, *[h + k for h in headers for k in range(0, 46) if h + k < len(data)]})
    cuts = range(1, len(data)) if FULL else range(1, 200, 7)
    bad = str(tmp_path / "mutated.npz")
    outcomes = {"loaded": 0, "refused": 0}
    for i, at in enumerate(offsets + [-n for n in cuts]):
        mutated = bytearray(data)
        if at >= 0:
            mutated[at] ^= 1 << (i % 8)
        else:
            del mutated[at:]
        open(bad, "wb").write(bytes(mutated))
        with fuzz_report.hostile_case(FAMILY):
            try:
                loaded = checkpoint.read(bad)
                outcomes["loaded"] += 1
                assert loaded.architecture["layer_sizes"] == [3, 5, 2]
            except ValueError as e:
                outcomes["refused"] += 1
                assert bad in str(e), e
    assert outcomes["refused"] > len(offsets) // 2, outcomes
    fuzz_report.hostile_notes[FAMILY].append(
        f"{sum(outcomes.values())} bit-flipped or truncated copies of a real checkpoint: {outcomes['refused']} "
        f"refused (ValueError naming the file), {outcomes['loaded']} loaded (the flip hit a byte nothing checks)")
