"""`fastbp bench`: argument errors, the JSON record, the correctness guard, thread limits,
--cold, --plot and --optimizer. Quick runs only (about 30 s in all)."""
import dataclasses
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from fastbp import _kernels, cli
from fastbp._kernels.reference import NumpyOps
from fastbp.benchmark import guard, optimizers, peers, timing, workloads

QUICK = ["bench", "--quick", "--repeats", "2"]


@pytest.fixture(autouse=True)
def auto_is_numpy(monkeypatch):
    """backend="auto" resolves to the reference here, so these tests of the command do not
    depend on the other backends (whose own tests cover them)."""
    monkeypatch.setattr(_kernels, "AUTO_PREFERENCE", ("numpy",))


def run_cli(argv, capsys):
    """-> (exit code, stdout, stderr) of `fastbp ARGV`, run in this process."""
    try:
        code = cli.main(argv)
    except SystemExit as e:         # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- the flop count
def test_flop_count_matches_the_products_counted_by_hand():
    # seed-2x2, batch 1: forward 2*(2*2 + 2*2), dW the same, delta only into layer 1: 2*2*2
    assert workloads.ALL["seed-2x2"].flops == 16 + 16 + 8
    mnist = workloads.ALL["mnist"]
    products = [784 * 128, 128 * 64, 64 * 10]
    forward = sum(2 * 64 * p for p in products)
    assert mnist.flops == forward + forward + 2 * 64 * (128 * 64 + 64 * 10)
    assert mnist.n_params == 784 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10


def test_standard_workloads_keep_their_names_and_shapes():
    shapes = {w.name: (w.sizes, w.batch, w.activation) for w in workloads.STANDARD}
    assert shapes == {"seed-2x2": ((2, 2, 2), 1, "sigmoid"), "tiny-64": ((64, 64, 64, 1), 32, "tanh"),
                      "mnist": ((784, 128, 64, 10), 64, "sigmoid"),
                      "mnist-b256": ((784, 256, 256, 10), 256, "relu"),
                      "wide-1024": ((1024, 1024, 1024, 1024), 256, "relu")}


# ---------------------------------------------------------------- argument errors
@pytest.mark.parametrize("argv", [
    ["--workloads", "nope"], ["--peers", "tensorflow"], ["--threads", "0"], ["--threads", "999"],
    ["--threads", "two"], ["--repeats", "0"], ["--dtype", "float16"], ["--backends", "no-such"],
    ["--json", "/no/such/dir/out.json"], ["--cold", "--plot", "x.png"], ["--optimizer", "rmsprop"],
    ["--optimizer", "sgd,"], ["--cold", "--optimizer", "all"],
])
def test_argument_errors_exit_nonzero_with_one_line(argv, capsys):
    code, out, err = run_cli(["bench", *argv], capsys)
    assert code not in (0, None)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], err
    assert out == ""


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # import matplotlib -> ImportError
    code, out, err = run_cli(QUICK + ["--workloads", "seed-2x2", "--plot", str(tmp_path / "b.png")], capsys)
    assert code == 1 and "matplotlib" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.png").exists()


# ---------------------------------------------------------------- a run and its record
def test_json_record_is_valid_and_consistent(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(peers.PEERS["jax"], "library", "fastbp_no_such_library")   # an absent peer
    path = tmp_path / "bench.json"
    plot = tmp_path / "bench.png"
    argv = QUICK + ["--workloads", "seed-2x2,tiny-64", "--peers", "numpy,jax", "--backends", "numpy",
                    "--json", str(path)]
    try:
        import matplotlib  # noqa: F401
        argv += ["--plot", str(plot)]
    except ImportError:
        plot = None
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    record = json.loads(path.read_text())
    assert [w["name"] for w in record["workloads"]] == ["seed-2x2", "tiny-64"]
    assert "fastbp_no_such_library" in record["absent_peers"]["jax"]
    assert record["gemm"]["peak_gflops"] > 0
    for w in record["workloads"]:
        rows = {r["name"]: r for r in w["results"]}
        assert set(rows) == {"fastbp:numpy", "fastbp:auto=numpy", "peer:numpy", "peer:jax"}
        assert rows["peer:jax"]["status"] == "absent"
        for name in ("fastbp:numpy", "fastbp:auto=numpy", "peer:numpy"):
            r = rows[name]
            assert 0 < r["q1_us"] <= r["median_us"] <= r["q3_us"]
            assert r["gflops"] == pytest.approx(w["flops"] / (r["median_us"] * 1e-6) / 1e9)
            assert r["pct_peak"] == pytest.approx(100 * r["gflops"] / record["gemm"]["peak_gflops"])
        assert w["best_peer"] == "peer:numpy" and w["best_fastbp"] == "fastbp:numpy"
        assert w["speedup_best"] == pytest.approx(rows["peer:numpy"]["median_us"] / rows["fastbp:numpy"]["median_us"])
        assert f"\n{w['name']}: " in out
    assert "peer:jax" in out and "absent" in out and "speed-up over the best peer" in out
    if plot:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_threads_limit_every_pool_in_a_fresh_process(tmp_path):
    path = tmp_path / "t.json"
    pin_auto = "import sys, fastbp._kernels as k, fastbp.cli as c; k.AUTO_PREFERENCE = ('numpy',); sys.exit(c.main())"
    done = subprocess.run([sys.executable, "-c", pin_auto, *QUICK, "--threads", "1", "--workloads", "seed-2x2",
                           "--peers", "numpy", "--backends", "numpy", "--json", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    threads = json.loads(path.read_text())["threads"]
    assert len(threads["affinity"]) == 1
    assert threads["pools"] and all(p["threads"] == 1 for p in threads["pools"])


def test_cold_start_runs_fresh_processes(tmp_path, capsys):
    path = tmp_path / "cold.json"
    code, out, err = run_cli(["bench", "--cold", "--quick", "--workloads", "seed-2x2", "--backends", "numpy,auto",
                              "--peers", "none", "--json", str(path)], capsys)
    assert code == 0, err
    record = json.loads(path.read_text())
    rows = record["results"]
    assert [(row["kind"], row["name"]) for row in rows] == [("fastbp", "numpy"), ("fastbp", "auto")]
    for row in rows:
        for which in ("cold", "warm"):
            m = row[which]
            assert 0 < m["import_fastbp_s"] < m["to_first_step_s"] <= m["process_s"]
            assert 0 < m["to_first_step_cpu_s"]
    chosen = subprocess.run([sys.executable, "-c", "from fastbp import _kernels; print(_kernels.resolve('auto'))"],
                            capture_output=True, text=True, timeout=120).stdout.strip()   # in a child: no fixture
    assert rows[0]["cold"]["ran_on"] == "numpy" and rows[1]["cold"]["ran_on"] == chosen
    assert "fastbp:numpy" in out and f"fastbp:auto={chosen}" in out
    assert record["workloads"] == ["seed-2x2"] and all(row["workload"] == "seed-2x2" for row in rows)


def test_cold_start_measures_every_workload(tmp_path, capsys):
    path = tmp_path / "cold.json"
    code, out, err = run_cli(["bench", "--cold", "--quick", "--workloads", "seed-2x2,tiny-64", "--backends", "numpy",
                              "--peers", "none", "--json", str(path)], capsys)
    assert code == 0, err
    record = json.loads(path.read_text())
    assert record["workloads"] == ["seed-2x2", "tiny-64"]
    assert [(row["workload"], row["name"]) for row in record["results"]] == [("seed-2x2", "numpy"),
                                                                             ("tiny-64", "numpy")]
    assert "training step of seed-2x2" in out and "training step of tiny-64" in out


# ---------------------------------------------------------------- the correctness guard
def planted_backend(monkeypatch, factor):
    """Register a backend "planted": the NumPy reference with dW scaled by `factor`."""
    class PlantedOps(NumpyOps):
        name = "planted"

        def weight_gradient(self, A_prev, delta, dW=None, db=None):
            dW, db = super().weight_gradient(A_prev, delta, dW, db)
            dW *= factor
            return dW, db
    module = types.ModuleType("fastbp_planted_backend")
    module.ops, module.available = PlantedOps(), lambda: (True, "")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(_kernels.MODULES, "planted", module.__name__)
    monkeypatch.setattr(_kernels, "_status", {})


def test_guard_aborts_on_a_planted_gradient_mismatch(monkeypatch, capsys):
    planted_backend(monkeypatch, 1.001)
    code, out, err = run_cli(QUICK + ["--workloads", "tiny-64", "--backends", "numpy,planted",
                                      "--peers", "none"], capsys)
    assert code == 3
    errors = [line for line in err.strip().splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1]    # after progress lines
    line = errors[0]
    assert "correctness guard" in line and "'planted'" in line and "dW" in line
    assert "us/step" not in out               # nothing was timed or printed


def test_guard_accepts_rounding_level_differences(monkeypatch, capsys):
    planted_backend(monkeypatch, 1 + 4 * np.finfo(np.float32).eps)
    code, out, err = run_cli(QUICK + ["--workloads", "tiny-64", "--backends", "planted",
                                      "--peers", "none"], capsys)
    assert code == 0, err
    assert "fastbp:planted" in out


def run_numpy_peer(w, X, y, ref, optimizer):
    stepper = peers.NumpyPeer().build(w, ref["weights"], ref["biases"], X, y, optimizer)
    return guard.run_steps("numpy-peer", w, np.float32, stepper.step, stepper.params, ref)


def test_guard_catches_a_peer_taking_a_different_step():
    w = workloads.ALL["mnist"]
    X, y = workloads.make_batch(w, np.float32)
    ref = guard.reference(w, np.float32, X, y)
    run_numpy_peer(w, X, y, ref, optimizers.SGD)
    with pytest.raises(guard.GuardError, match="step 2 loss"):
        run_numpy_peer(w, X, y, ref, dataclasses.replace(optimizers.SGD, lr=2 * optimizers.SGD.lr))


def test_guard_catches_an_update_the_losses_cannot_see():
    # momentum differs from plain SGD only from the second update on, after the last loss
    # the guard compares: the parameters must catch it
    w = workloads.ALL["tiny-64"]
    X, y = workloads.make_batch(w, np.float32)
    ref = guard.reference(w, np.float32, X, y, optimizers.MOMENTUM)
    loss_error, used = run_numpy_peer(w, X, y, ref, optimizers.MOMENTUM)
    assert loss_error <= guard.tolerance(w, np.float32) and 0 <= used <= 1
    stepper = peers.NumpyPeer().build(w, ref["weights"], ref["biases"], X, y, optimizers.SGD)
    losses = [stepper.step() for _ in range(guard.STEPS)]
    guard.check_losses("plain-sgd", w, np.float32, losses, ref)           # the losses agree...
    with pytest.raises(guard.GuardError, match=r"same momentum update .* W\[\d\]"):
        guard.check_params("plain-sgd", w, np.float32, stepper.params(), ref)   # ...the parameters do not


@pytest.mark.parametrize("change", [dict(eps=1e-3), dict(betas=(0.5, 0.999)), dict(lr=1.1e-3)])
def test_guard_catches_a_different_adam(change):
    w = workloads.ALL["tiny-64"]
    X, y = workloads.make_batch(w, np.float32)
    ref = guard.reference(w, np.float32, X, y, optimizers.ADAM)
    run_numpy_peer(w, X, y, ref, optimizers.ADAM)
    with pytest.raises(guard.GuardError, match="adam"):
        run_numpy_peer(w, X, y, ref, dataclasses.replace(optimizers.ADAM, **change))


@pytest.mark.parametrize("name", ["torch", "jax", "sklearn"])
def test_each_installed_peer_computes_the_reference_step(name):
    peer = peers.PEERS[name]
    usable, why = peer.available()
    if not usable:
        pytest.skip(f"peer {name} not installed: {why}")
    names = ("tiny-64", "mnist-ce") if os.environ.get("FASTBP_FULL") == "1" else ("tiny-64",)
    for w in (workloads.ALL[n] for n in names):
        if not peer.supports(w)[0]:
            continue
        X, y = workloads.make_batch(w, np.float32)
        for optimizer in optimizers.ALL.values():
            if not peer.available(optimizer)[0]:
                continue            # jax without optax: plain SGD only
            ref = guard.reference(w, np.float32, X, y, optimizer)
            stepper = peer.build(w, ref["weights"], ref["biases"], X, y, optimizer)
            guard.run_steps(name, w, np.float32, stepper.step, stepper.params, ref)


# ---------------------------------------------------------------- interleaved timing
def test_interleaved_rounds_rotate_and_exclude_the_warm_up():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    result = timing.interleaved(steps, repeats=3, block_s=0.0, warmup_s=0.0)
    warm = calls[:9]                                   # 3 warm-up calls each, in order
    assert warm == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert calls[9:] == list("abc") + list("bca") + list("cab")   # one call per block, rotating
    assert all(t.rounds == 3 and t.calls_per_round == 1 for t in result.values())


def test_gemm_peak_is_a_rate():
    assert timing.gemm_peak(64, repeats=2) > 0


def test_guard_checks_the_backend_auto_chooses_even_when_not_listed(monkeypatch, capsys):
    planted_backend(monkeypatch, 1.001)
    monkeypatch.setattr(_kernels, "AUTO_PREFERENCE", ("planted",))
    code, out, err = run_cli(QUICK + ["--workloads", "seed-2x2", "--backends", "numpy", "--peers", "none"], capsys)
    assert code == 3 and "'planted'" in err.strip().splitlines()[-1]


def test_every_optimizer_side_by_side_in_one_record(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, err = run_cli(QUICK + ["--workloads", "seed-2x2", "--peers", "numpy", "--backends", "numpy",
                                      "--optimizer", "all", "--json", str(path)], capsys)
    assert code == 0, err
    record = json.loads(path.read_text())
    assert [o["name"] for o in record["optimizers"]] == ["sgd", "momentum", "adam"]
    assert record["optimizers"][2] == dict(name="adam", lr=1e-3, betas=[0.9, 0.999], eps=1e-8)
    entries = [(w["name"], w["optimizer"]["name"]) for w in record["workloads"]]
    assert entries == [("seed-2x2", "sgd"), ("seed-2x2", "momentum"), ("seed-2x2", "adam")]
    sgd = {r["name"]: r for r in record["workloads"][0]["results"]}
    for w in record["workloads"]:
        for r in w["results"]:
            assert r["status"] == "ok" and 0 <= r["param_check"] <= 1
            if w["optimizer"]["name"] == "sgd":
                assert "time_vs_sgd" not in r
            else:
                assert r["time_vs_sgd"] == pytest.approx(r["median_us"] / sgd[r["name"]]["median_us"])
    assert "; adam (lr 0.001, betas 0.9/0.999, eps 1e-08)" in out and "x sgd" in out
    assert "per optimizer (same run)" in out


def test_default_optimizer_is_plain_sgd(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, err = run_cli(QUICK + ["--workloads", "seed-2x2", "--peers", "none", "--backends", "numpy",
                                      "--json", str(path)], capsys)
    assert code == 0, err
    record = json.loads(path.read_text())
    assert record["optimizers"] == [dict(name="sgd", lr=0.01, momentum=0.0)]
    assert [w["optimizer"]["name"] for w in record["workloads"]] == ["sgd"]
    assert "x sgd" not in out and "per optimizer" not in out


def test_guard_aborts_on_a_planted_adam_update(monkeypatch, capsys):
    planted_backend(monkeypatch, 1.0)
    ops = sys.modules["fastbp_planted_backend"].ops

    def adam_without_bias_correction(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
        NumpyOps.adam_update(ops, p, g, m, v, 10**6, lr, beta1, beta2, eps, weight_decay)
    monkeypatch.setattr(ops, "adam_update", adam_without_bias_correction)
    code, out, err = run_cli(QUICK + ["--workloads", "tiny-64", "--backends", "numpy,planted", "--peers", "none",
                                      "--optimizer", "adam"], capsys)
    assert code == 3
    line = err.strip().splitlines()[-1]
    assert "correctness guard" in line and "fastbp:planted" in line and "adam" in line
    assert "us/step" not in out
