"""Every file fastbp writes (checkpoints, `fastbp bench --json`, plots) goes through one
atomic writer (fastbp.files.write_atomically), which trusts nothing about the target path:

- the temporary file has an unpredictable name, is created with O_EXCL | O_NOFOLLOW: a
  symlink planted at the old predictable name, or at the very name it draws, is not followed;
- a FIFO, a device, a socket, a folder, or a link to one of them is refused (ValueError
  naming it) and left as it was; a link to a regular file is replaced, never written through;
- the input file of the same command (`--data D --save D`) is refused;
- re-saving keeps the file's permission bits (a 0600 checkpoint stays 0600);
- a folder that is missing or refuses files is an error naming the user's path, never the
  temporary file, raised before training;
- a write that fails midway leaves the old file and no temporary file.
(A kill during a save: tests/test_crash_safety.py.)
"""
import json
import os
import socket
import stat

import numpy as np
import pytest

import fastbp as fb
import fuzz_report
from fastbp import files
from fastbp.benchmark import report
from fastbp.commands import train as train_command
from hostile_files import child_json, run_child

FAMILY = "writing files"
RECORD = {"kind": "test", "value": 1}


def tiny_history():
    net = fb.MLP([2, 3, 1], backend="numpy", seed=0)
    history = net.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, progress=False, grad_norms=True)
    return net, history


def bench_record():
    return {"dtype": "float32", "workloads": [{"name": "w", "sizes": [2, 2], "batch": 1, "results": [
        {"name": "fastbp:numpy", "status": "ok", "median_us": 10.0, "q1_us": 9.0, "q3_us": 11.0, "kind": "fastbp"}]}]}


def writers():
    """name -> write(path): each of fastbp's writers, called as the library or the CLI does."""
    net, history = tiny_history()
    opt = fb.SGD(0.1)
    net.train_step(np.ones((2, 2)), np.ones((2, 1)), opt)
    out = {
        "MLP.save": lambda p: net.save(p, opt),
        "fit(checkpoint=)": lambda p: net.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, checkpoint=p, progress=False),
        "bench --json": lambda p: report.write_json(RECORD, p),
    }
    try:
        import matplotlib  # noqa: F401
        out["train --plot"] = lambda p: train_command.plot_history(history, net, p)
        out["bench --plot"] = lambda p: report.plot(bench_record(), p)
    except ImportError:
        pass
    return out


WRITERS = list(writers())


@pytest.fixture(scope="module")
def write():
    return writers()


def test_every_writer_goes_through_the_one_atomic_writer(write, tmp_path, monkeypatch):
    seen = []
    real = files.write_atomically

    def recording(path, *args, **kwargs):
        seen.append(os.fspath(path))
        return real(path, *args, **kwargs)
    monkeypatch.setattr(files, "write_atomically", recording)
    for name, w in write.items():
        target = str(tmp_path / f"{name.replace(' ', '_').replace('/', '')}.png")
        w(target)
        assert target in seen, f"{name} wrote {target} without fastbp.files.write_atomically"
        assert os.path.isfile(target)


@pytest.mark.parametrize("name", WRITERS)
def test_a_symlink_planted_at_a_temporary_name_is_not_followed(write, name, tmp_path, monkeypatch):
    """At the old predictable name ({path}.tmp{pid}) and at the exact name the writer draws
    (its random part forced for one draw): the victim file stays as it was."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "out.png"
    os.symlink(victim, f"{target}.tmp{os.getpid()}")
    drawn = iter(["0" * 16])
    real = files.secrets.token_hex
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(drawn, None) or real(n))
    planted = tmp_path / f"{files._TMP_PREFIX}{os.getpid()}-{'0' * 16}.tmp"
    os.symlink(victim, planted)
    with fuzz_report.hostile_case(FAMILY):
        write[name](str(target))
        assert victim.read_text() == "precious", f"{name} wrote through a planted symlink"
        assert os.path.islink(planted) and os.path.isfile(target) and not os.path.islink(target)


def special_targets(folder):
    """kind -> a path that is not a regular file (or a link to one), created in `folder`."""
    out = {}
    os.mkfifo(folder / "fifo")
    out["FIFO"] = folder / "fifo"
    (folder / "dir").mkdir()
    out["folder"] = folder / "dir"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock"))
    sock.close()
    out["socket"] = folder / "sock"
    try:
        os.mknod(folder / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))      # a /dev/null of our own
        out["character device"] = folder / "null"
    except (PermissionError, AttributeError, OSError):
        pass
    os.symlink(folder / "fifo", folder / "link-to-fifo")
    out["link to a FIFO"] = folder / "link-to-fifo"
    os.symlink("/dev/null", folder / "link-to-dev-null")
    out["link to /dev/null"] = folder / "link-to-dev-null"
    return out


def kind_of(path):
    info = os.lstat(path)
    return stat.S_IFMT(info.st_mode), (os.readlink(path) if stat.S_ISLNK(info.st_mode) else None)


@pytest.mark.parametrize("name", WRITERS)
def test_non_regular_targets_are_refused_and_left_as_they_were(write, name, tmp_path):
    for kind, target in special_targets(tmp_path).items():
        before = kind_of(target)
        with fuzz_report.hostile_case(FAMILY):
            with pytest.raises(ValueError) as info:
                write[name](str(target))
            assert str(target) in str(info.value), f"{name} -> {kind}: {info.value}"
            assert kind_of(target) == before, f"{name} replaced a {kind}"
        assert not [n for n in os.listdir(tmp_path) if n.startswith(".fastbp-")], "a temporary file was left"


@pytest.mark.parametrize("name", WRITERS)
def test_a_link_to_a_regular_file_is_replaced_not_written_through(write, name, tmp_path):
    linked = tmp_path / "linked.txt"
    linked.write_text("elsewhere")
    for label, link in (("link", tmp_path / "link.png"), ("dangling link", tmp_path / "dangling.png")):
        os.symlink(linked if label == "link" else tmp_path / "nowhere", link)
        with fuzz_report.hostile_case(FAMILY):
            write[name](str(link))
            assert linked.read_text() == "elsewhere" and os.path.isfile(link) and not os.path.islink(link), label


@pytest.mark.parametrize("name", WRITERS)
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_rewriting_keeps_the_files_mode(write, name, mode, tmp_path):
    target = tmp_path / "kept.png"
    write[name](str(target))
    os.chmod(target, mode)
    with fuzz_report.hostile_case(FAMILY):
        write[name](str(target))
        assert stat.S_IMODE(os.stat(target).st_mode) == mode


def test_a_new_file_gets_the_umasks_mode(tmp_path):
    old = os.umask(0o027)
    try:
        with fuzz_report.hostile_case(FAMILY):
            files.write_atomically(tmp_path / "new.bin", lambda f: f.write(b"x"))
            assert stat.S_IMODE(os.stat(tmp_path / "new.bin").st_mode) == 0o640
    finally:
        os.umask(old)


def unwritable_folders(tmp_path):
    out = [tmp_path / "missing" / "x.png"]
    out += [p for p in ("/sys/fastbp-test.png", "/proc/fastbp-test.png") if os.path.isdir(os.path.dirname(p))]
    return out


@pytest.mark.parametrize("name", WRITERS)
def test_an_unwritable_folder_is_an_error_naming_the_users_path(write, name, tmp_path):
    for target in unwritable_folders(tmp_path):
        with fuzz_report.hostile_case(FAMILY):
            with pytest.raises((ValueError, OSError)) as info:
                write[name](str(target))
            message = str(info.value)
            assert str(target) in message and ".fastbp-" not in message and ".tmp" not in message, message


def test_a_write_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "record.json"
    report.write_json(RECORD, target)
    before = target.read_bytes()

    def half_then_fail(f):
        f.write(b'{"half": ')
        raise OSError("disk full")
    with fuzz_report.hostile_case(FAMILY):
        with pytest.raises(OSError, match="disk full"):
            files.write_atomically(target, half_then_fail)
        with pytest.raises(ValueError):                      # NaN is not JSON: refused before writing
            report.write_json({"x": float("nan")}, target)
        assert target.read_bytes() == before and os.listdir(tmp_path) == ["record.json"]


CLI_RUNS = """
import json
print("RESULT " + json.dumps([[argv, *cli(argv)] for argv in RUNS]))
"""


def test_the_cli_refuses_to_overwrite_its_input_or_a_special_file_before_training(tmp_path):
    data = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    data.write_text("\n".join(",".join(f"{v:.3f}" for v in row) + f",{i % 2}" for i, row in
                              enumerate(rng.normal(size=(40, 3)))) + "\n")
    os.link(data, tmp_path / "hardlink.csv")
    os.symlink(data, tmp_path / "symlink.csv")
    os.mkfifo(tmp_path / "fifo.npz")
    common = ["--epochs", "50", "--backend", "numpy", "--quiet"]
    runs = {
        "--save D with --data D": ["train", "--data", str(data), "--save", str(data)] + common,
        "--save a hard link of D": ["train", "--data", str(data), "--save", str(tmp_path / "hardlink.csv")] + common,
        "--save a symlink to D": ["train", "--data", str(data), "--save", str(tmp_path / "symlink.csv")] + common,
        "--plot D": ["train", "--data", str(data), "--plot", str(data)] + common,
        "--plot the --save file": ["train", "--data", str(data), "--save", str(tmp_path / "n.npz"), "--plot",
                                   str(tmp_path / "n.npz")] + common,
        "--save a FIFO": ["train", "--data", str(data), "--save", str(tmp_path / "fifo.npz")] + common,
        "--save in a missing folder": ["train", "--data", str(data), "--save", str(tmp_path / "no" / "n.npz")] + common,
        "--save /sys/...": ["train", "--data", str(data), "--save", "/sys/fastbp-test.npz"] + common,
        "bench --json a FIFO": ["bench", "--quick", "--workloads", "seed-2x2", "--backends", "numpy", "--peers",
                                "none", "--json", str(tmp_path / "fifo.npz")],
        "bench --json in a missing folder": ["bench", "--quick", "--workloads", "seed-2x2", "--backends", "numpy",
                                             "--peers", "none", "--json", str(tmp_path / "no" / "r.json")],
    }
    before = data.read_bytes()
    proc = run_child(f"RUNS = {json.dumps(list(runs.values()))}\n" + CLI_RUNS, timeout=300)
    results = child_json(proc)
    for (name, argv), (_, code, err) in zip(runs.items(), results):
        with fuzz_report.hostile_case(FAMILY):
            lines = err.strip().splitlines()
            target = argv[argv.index("--plot") + 1] if name.startswith("--plot") else \
                argv[argv.index("--json" if "--json" in argv else "--save") + 1]
            assert code == 1 and len(lines) == 1 and target in lines[0] and ".fastbp-" not in err, \
                f"{name}: exit {code!r}, stderr {err!r}"
    assert data.read_bytes() == before and stat.S_ISFIFO(os.stat(tmp_path / "fifo.npz").st_mode)
    assert not (tmp_path / "n.npz").exists(), "training ran although its outputs were refused"
