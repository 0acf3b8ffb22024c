"""The `fastbp` command: every subcommand runs (as a subprocess, `python -m fastbp ...`),
and bad arguments exit nonzero with one line and no traceback."""
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest

import fastbp as fb


def fastbp(*args, cwd=None, timeout=120):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "fastbp", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def test_train_with_no_arguments_is_the_main_job():
    r = fastbp("train")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "built-in 8x8 digits" in out and "1,797 samples" in out
    assert "validation" in out
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 20 and all("val_accuracy" in line and "samples/s" in line for line in epochs)
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy >= 0.95
    assert "throughput" in out
    assert r.stderr == "", "no progress bar when stdout/stderr are not a terminal"


def test_train_save_resume_equals_one_run_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    common = ["--epochs", "4", "--layers", "32", "--backend", "numpy", "--quiet"]
    whole = fastbp("train", *common, "--save", tmp_path / "whole.npz")
    assert whole.returncode == 0, whole.stderr
    first = fastbp("train", "--epochs", "2", "--layers", "32", "--backend", "numpy", "--quiet",
                   "--save", tmp_path / "part.npz")
    assert first.returncode == 0, first.stderr
    rest = fastbp("train", *common, "--resume", tmp_path / "part.npz", "--save", tmp_path / "part.npz",
                  "--plot", tmp_path / "curves.png")
    assert rest.returncode == 0, rest.stderr
    assert "resuming from" in rest.stdout and "after epoch 2" in rest.stdout
    np.testing.assert_array_equal(fb.MLP.load(tmp_path / "part.npz").get_flat_params(),
                                  fb.MLP.load(tmp_path / "whole.npz").get_flat_params())
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "gradient norms (last epoch): layer 1" in rest.stdout


def test_train_on_user_csv_regression(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.01 * rng.normal(size=200)
    np.savetxt(tmp_path / "reg.csv", np.column_stack([X, y]), delimiter=",", header="a,b,c,target", comments="")
    r = fastbp("train", "--data", tmp_path / "reg.csv", "--epochs", "30", "--lr", "1e-2", "--dtype", "float64")
    assert r.returncode == 0, r.stderr
    assert "loss='mse'" in r.stdout
    r2 = float(r.stdout.split("test R^2 ")[1].split()[0])
    assert r2 > 0.9


def test_gradcheck_all_backends_passes():
    r = fastbp("gradcheck", "--backend", "all")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line for line in r.stdout.splitlines()[1:-1]]
    assert {row.split()[0] for row in rows} == set(fb.available_backends())
    assert all(row.endswith("ok") for row in rows)
    assert f"{len(rows)}/{len(rows)} passed" in r.stdout


def test_gradcheck_exits_nonzero_when_backprop_is_wrong(monkeypatch, capsys):
    from fastbp import activations, cli
    from fastbp._kernels import reference
    right = reference.DERIVATIVES[activations.TANH]
    monkeypatch.setitem(reference.DERIVATIVES, activations.TANH, lambda z, a: 1.1 * right(z, a))   # a planted bug
    assert cli.main(["gradcheck", "--backend", "numpy"]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.endswith("FAILED")]
    assert failed and all("tanh" in line for line in failed)
    assert len(failed) == 2 and "6/8 passed" in out        # tanh hidden, and tanh output


def test_explain_default_is_the_real_2_2_2_computation():
    r = fastbp("explain", "--backend", "numpy")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Z1 = A0 @ W1 + b1" in out and "[[1.6, 2.2]]" in out
    sig = 1 / (1 + np.exp(-np.array([1.6, 2.2])))
    assert f"{sig[0]:.6f}" in out and "not 0.9" in out and "not 0.95" in out
    assert "[[ 0.18 , -0.27 ], [ 0.19 , -0.285]]" in out            # textbook dW2 from its assumed values
    assert "[[-0.02, -0.04], [-0.03, -0.06]]" in out               # textbook dW1 from its assumed delta1
    assert "textbook assumes delta2" in out and "textbook assumes delta1" in out
    assert "same gradients (max difference 0.0e+00)" in out and "passed" in out


def test_explain_a_user_network(tmp_path):
    r = fastbp("explain", "--layers", "3,4,2", "--activation", "tanh", "--loss", "cross_entropy",
               "--input", "0.5,-1,2", "--target", "1")
    assert r.returncode == 0, r.stderr
    assert "delta1 = (delta2 @ W2.T) * tanh'(Z1)" in r.stdout and "passed" in r.stdout
    net = fb.MLP([2, 3, 1], activation="sigmoid", backend="numpy", seed=0)
    net.save(tmp_path / "n.npz")
    r = fastbp("explain", "--network", tmp_path / "n.npz", "--input", "1,2", "--target", "0.5")
    assert r.returncode == 0, r.stderr
    assert "network [2, 3, 1]" in r.stdout


def test_info():
    r = fastbp("info")
    assert r.returncode == 0, r.stderr
    assert f"fastbp {fb.__version__}" in r.stdout
    assert "backends: " + ", ".join(fb.available_backends()) in r.stdout
    assert "BLAS / OpenMP" in r.stdout and "threads" in r.stdout and "GPU:" in r.stdout


def test_info_names_a_forced_openblas_core(monkeypatch):
    """OPENBLAS_CORETYPE picks OpenBLAS's GEMM kernels whatever the CPU runs: info says so."""
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    r = fastbp("info")
    assert r.returncode == 0, r.stderr
    assert "OPENBLAS_CORETYPE=Haswell" in [line for line in r.stdout.splitlines() if line.startswith("environment:")][0]


@pytest.mark.parametrize("args, names", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "many"], "--epochs"),
    (["train", "--layers", "64,x"], "--layers"),
    (["train", "--activation", "swish9"], "activation"),
    (["train", "--backend", "tpu"], "backend"),
    (["train", "--data", "/no/such/file.csv"], "/no/such/file.csv"),
    (["train", "--resume", "/no/such/ckpt.npz"], "/no/such/ckpt.npz"),
    (["train", "--lr", "-1", "--epochs", "1"], "lr"),
    (["train", "--save", "/no/such/folder/x.npz", "--epochs", "1"], "--save: cannot write /no/such/folder/x.npz"),
    (["train", "--plot", "/no/such/folder/x.png"], "--plot: cannot write /no/such/folder/x.png"),
    (["train", "--seed", "-3"], "--seed"),
    (["train", "--threads", "0"], "--threads"),
    (["train", "--momentum", "1.5", "--optimizer", "sgd"], "--momentum"),
    (["train", "--val-fraction", "1.5"], "--val-fraction"),
    (["train", "--bogus"], "--bogus"),
    (["gradcheck", "--backend", "tpu"], "backend"),
    (["gradcheck", "--sizes", "4,x"], "--sizes"),
    (["explain", "--input", "1,2,3"], "--input"),
    (["explain", "--layers", "2,0,1"], "--layers"),
    (["explain", "--layers", "3"], "--layers"),
    (["explain", "--seed", "-1"], "--seed"),
    (["explain", "--activation", "swish9"], "--activation"),
    (["explain", "--network", "/no/such.npz"], "/no/such.npz"),
    (["nosuchcommand"], "nosuchcommand"),
])
def test_bad_arguments_exit_nonzero_with_one_line(args, names, tmp_path):
    r = fastbp(*args, cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert names in lines[0]


def test_corrupt_resume_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    r = fastbp("train", "--resume", bad)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "bad.npz" in r.stderr


def test_version():
    r = fastbp("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"fastbp {fb.__version__}"


def test_bce_on_class_labels_is_refused_before_training():
    r = fastbp("train", "--loss", "bce")             # the digits' labels are 0..9
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "--loss bce" in r.stderr and "[0, 1]" in r.stderr and "[0, 9]" in r.stderr
    assert "epoch" not in r.stdout


def test_every_output_path_is_checked_before_training(tmp_path):
    pytest.importorskip("matplotlib")
    r = fastbp("train", "--save", tmp_path / "ok.npz", "--plot", tmp_path / "missing" / "curves.png")
    assert r.returncode == 1 and r.stdout == "", "nothing may run before the paths are checked"
    assert r.stderr.strip() == (f"fastbp train: error: --plot: cannot write {tmp_path / 'missing' / 'curves.png'}: "
                                f"the folder {tmp_path / 'missing'} does not exist")
    assert not (tmp_path / "ok.npz").exists()


@pytest.mark.skipif(not os.path.isdir("/sys") or os.access("/sys", os.W_OK) and os.geteuid() != 0,
                    reason="needs a folder no one may create files in (Linux's /sys)")
def test_an_unwritable_save_folder_names_the_option_and_the_folder(tmp_path):
    r = fastbp("train", "--save", "/sys/m.npz", "--epochs", "1")
    assert r.returncode == 1 and r.stdout == ""
    line = r.stderr.strip()
    assert line.startswith("fastbp train: error: --save: cannot write /sys/m.npz") and ".tmp" not in line


@pytest.fixture(scope="module")
def checkpoint_of_one_epoch(tmp_path_factory):
    path = tmp_path_factory.mktemp("resume") / "run.npz"
    r = fastbp("train", "--epochs", "1", "--seed", "3", "--layers", "16", "--lr", "0.01", "--backend", "numpy",
               "--quiet", "--save", path)
    assert r.returncode == 0, r.stderr
    return path


@pytest.mark.parametrize("option, value, recorded", [
    ("--seed", "4", "3"), ("--layers", "32", "16"), ("--optimizer", "sgd", "adam"), ("--lr", "0.1", "0.01"),
    ("--activation", "tanh", "relu"), ("--dtype", "float64", "float32"), ("--loss", "mse", "cross_entropy"),
])
def test_resume_refuses_options_other_than_the_checkpoints(checkpoint_of_one_epoch, option, value, recorded, capsys):
    from fastbp import cli
    assert cli.main(["train", "--epochs", "2", "--resume", str(checkpoint_of_one_epoch), option, value]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip() == (f"fastbp train: error: --resume: {checkpoint_of_one_epoch} was trained with "
                           f"{option} {recorded}; this run has {option} {value} "
                           f"(leave {option} out to continue with the checkpoint's)")


def test_resume_takes_the_checkpoints_options_and_accepts_the_same_ones(checkpoint_of_one_epoch, tmp_path):
    import shutil
    common = ["--epochs", "2", "--backend", "numpy", "--quiet"]
    left_out, given = tmp_path / "left_out.npz", tmp_path / "given.npz"
    shutil.copy(checkpoint_of_one_epoch, left_out)
    shutil.copy(checkpoint_of_one_epoch, given)
    r = fastbp("train", *common, "--resume", left_out, "--save", left_out)
    assert r.returncode == 0, r.stderr
    assert "split seed 3" in r.stdout and "after epoch 1 of 2" in r.stdout
    r = fastbp("train", *common, "--seed", "3", "--layers", "16", "--lr", "0.01", "--optimizer", "adam",
               "--resume", given, "--save", given)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(fb.MLP.load(left_out).get_flat_params(), fb.MLP.load(given).get_flat_params())


def test_output_into_a_closed_pipe_ends_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)                      # the reader is gone before anything is written
    try:
        r = subprocess.run([sys.executable, "-m", "fastbp", "info"], stdout=write_end, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    finally:
        os.close(write_end)
    assert r.stderr == ""
    assert r.returncode == 128 + 13         # as a Unix tool ended by SIGPIPE
    r = subprocess.run(f"set -o pipefail; {shlex.quote(sys.executable)} -m fastbp info | head -1", shell=True,
                       executable="/bin/bash", capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("fastbp ") and len(r.stdout.splitlines()) == 1
    assert r.stderr == "" and r.returncode in (0, 141)     # 0 when all was written before head left


@pytest.mark.parametrize("name, content, hint", [
    ("empty.csv", b"", "no rows of data"),
    ("ragged.csv", b"1,2,3\n4,5\n", "line 2 has 2 columns; the lines before it have 3"),
    ("binary.csv", b"\x93NUMPY\x01\x00", "not a text file"),
    ("objects.npz", None, "is not a plain numeric dtype"),
])
def test_data_errors_are_ours_not_numpys(tmp_path, name, content, hint):
    path = tmp_path / name
    if content is None:
        np.savez(path, X=np.array([[1, 2]], dtype=object), y=np.array([1]))
    else:
        path.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", "fastbp", "train", "--data", str(path)], capture_output=True,
                       text=True, timeout=120)          # NumPy's warnings are not silenced here
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"fastbp train: error: {path}: " + r.stderr.split(f"{path}: ", 1)[1].strip()]
    assert hint in r.stderr
    for numpys in ("usecols", "allow_pickle", "Warning", "loadtxt"):
        assert numpys not in r.stderr


def test_train_threads_limits_the_pools_and_restores_them(monkeypatch, capsys):
    from fastbp import cli
    from fastbp.benchmark import threads
    calls = []
    for name in ("before_imports", "after_imports", "restore"):
        real = getattr(threads, name)
        monkeypatch.setattr(threads, name, lambda *a, _real=real, _name=name: calls.append((_name, a)) or _real(*a))
    assert cli.main(["train", "--threads", "1", "--epochs", "1", "--backend", "numpy", "--quiet"]) == 0
    assert [c[0] for c in calls] == ["before_imports", "after_imports", "restore"]
    assert calls[0][1] == (1,) and calls[1][1] == (1,)
    assert "1 epoch of batch 32" in capsys.readouterr().out


@pytest.mark.skipif("numba" not in fb.available_backends(), reason="numba is not usable here")
def test_a_log_says_once_that_the_first_step_compiles():
    r = fastbp("train", "--backend", "numba", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("the first step waits: compiling the Numba kernels") == 1
    r = fastbp("train", "--backend", "numpy", "--epochs", "2")
    assert "first step" not in r.stdout


def test_activation_choices_are_listed(capsys):
    from fastbp import cli
    for command in ("train", "explain"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "identity, sigmoid, tanh, relu, leaky_relu, elu, softplus, gelu, silu" in " ".join(
            capsys.readouterr().out.split())
        with pytest.raises(SystemExit):
            cli.main([command, "--activation", "swish9"])
        err = capsys.readouterr().err
        assert "argument --activation: invalid choice: 'swish9'" in err and "'gelu'" in err


def test_explain_on_a_large_network_prints_a_bounded_summary():
    r = fastbp("explain", "--layers", "300,400,200", "--backend", "numpy")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) < 10_000, len(r.stdout)
    assert "... (300 products)" in r.stdout and "... (400 units)" in r.stdout and "passed" in r.stdout
