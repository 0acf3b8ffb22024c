"""fit(): accuracy on the built-in digits, exact resume after a kill, non-finite stops,
batching, progress, gradient-flow diagnostics, metrics and the data loaders."""
import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import fastbp as fb
from fastbp import datasets, metrics
from fastbp.diagnostics import GradientFlowWarning, check_gradient_flow, layer_names

from conftest import CPU_BACKENDS

FAST_CPU = tuple(b for b in ("numba", "cython") if b in CPU_BACKENDS)


@pytest.fixture(scope="module")
def digits():
    X, y = datasets.load_digits()
    return datasets.train_test_split(X, y, test_fraction=0.2, seed=0)


def small_problem(n=60, n_in=5, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = rng.integers(0, n_out, size=n)
    return X, y


# ---- the headline: digits ----

@pytest.mark.parametrize("backend", FAST_CPU or ("auto",))
def test_digits_reach_95_percent_in_seconds(digits, backend):
    X_tr, X_te, y_tr, y_te = digits
    net = fb.MLP([64, 64, 10], loss="cross_entropy", backend=backend, seed=0)
    warm = fb.MLP([64, 64, 10], loss="cross_entropy", backend=backend, seed=0)     # JIT compilation, not timed
    warm.fit(X_tr[:40], y_tr[:40], epochs=1, batch_size=32, validation_data=(X_te[:5], y_te[:5]), progress=False)
    started = time.perf_counter()
    history = net.fit(X_tr, y_tr, epochs=15, batch_size=32, optimizer=fb.Adam(lr=3e-3), seed=0,
                      validation_data=(X_te, y_te), progress=False)
    seconds = time.perf_counter() - started
    accuracy = net.score(X_te, y_te)
    assert accuracy >= 0.95, f"test accuracy {accuracy:.4f} on {net.backend}"
    assert history["val_accuracy"][-1] == pytest.approx(accuracy)
    assert seconds < 20, f"{seconds:.1f} s on {net.backend} (shared machine; 'a few seconds' expected)"
    assert len(history["loss"]) == 15 and history["loss"][-1] < history["loss"][0]
    assert all(r > 0 for r in history["samples_per_s"])


def test_history_keys_and_metrics_match_definitions():
    X, y = small_problem()
    net = fb.MLP([5, 8, 3], loss="cross_entropy", dtype=np.float64, backend="numpy", seed=1)
    h = net.fit(X, y, epochs=2, batch_size=16, validation_data=(X[:20], y[:20]), seed=0, progress=False)
    assert set(h) == {"epoch", "loss", "accuracy", "samples_per_s", "seconds", "val_loss", "val_accuracy"}
    assert h["epoch"] == [1, 2]
    assert h["accuracy"][-1] == pytest.approx(np.mean(net.forward(X).argmax(1) == y))
    assert h["val_loss"][-1] == pytest.approx(net.loss_value(X[:20], y[:20]), rel=1e-12)
    reg = fb.MLP([5, 4, 2], loss="mse", dtype=np.float64, backend="numpy", seed=1)
    Y = np.stack([X[:, 0], X[:, 1] * 2], axis=1)
    h = reg.fit(X, Y, epochs=2, batch_size=16, seed=0, progress=False)
    assert "r2" in h and h["r2"][-1] == pytest.approx(metrics.r2_score(Y, reg.forward(X)))


# ---- checkpoints and resume ----

@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_resume_equals_uninterrupted_run(tmp_path, backend):
    X, y = small_problem(n=70)
    kw = dict(epochs=6, batch_size=16, seed=3, progress=False)

    whole = fb.MLP([5, 8, 3], loss="cross_entropy", backend=backend, seed=0)
    full = whole.fit(X, y, optimizer=fb.Adam(lr=1e-2), checkpoint=tmp_path / "whole.npz", **kw)

    def interrupt(epoch, history):
        if epoch == 3:
            raise KeyboardInterrupt

    part = fb.MLP([5, 8, 3], loss="cross_entropy", backend=backend, seed=0)
    with pytest.raises(KeyboardInterrupt):
        part.fit(X, y, optimizer=fb.Adam(lr=1e-2), checkpoint=tmp_path / "part.npz", callback=interrupt, **kw)
    fresh = fb.MLP([5, 8, 3], loss="cross_entropy", backend=backend, seed=99)      # other weights: all restored
    resumed = fresh.fit(X, y, resume=tmp_path / "part.npz", checkpoint=tmp_path / "part.npz", **kw)
    np.testing.assert_array_equal(fresh.get_flat_params(), whole.get_flat_params())
    assert resumed["loss"] == full["loss"] and resumed["epoch"] == list(range(1, 7))


def test_resume_with_the_same_optimizer_kind_and_mismatches(tmp_path):
    X, y = small_problem()
    net = fb.MLP([5, 8, 3], loss="cross_entropy", backend="numpy", seed=0)
    net.fit(X, y, epochs=2, batch_size=16, optimizer=fb.SGD(lr=0.1, momentum=0.9), seed=1, progress=False,
            checkpoint=tmp_path / "c.npz")
    other = fb.MLP([5, 8, 3], loss="cross_entropy", backend="numpy", seed=5)
    before = other.get_flat_params()
    for kwargs, match in ((dict(optimizer=fb.Adam()), "SGD"), (dict(optimizer=fb.SGD(lr=0.2, momentum=0.9)), "lr"),
                          (dict(batch_size=8), "batch_size"), (dict(shuffle=False), "shuffle")):
        call = dict(epochs=3, batch_size=16, seed=1, progress=False, resume=tmp_path / "c.npz") | kwargs
        with pytest.raises(ValueError, match=match):
            other.fit(X, y, **call)
        np.testing.assert_array_equal(other.get_flat_params(), before)
    with pytest.raises(ValueError, match="n_samples"):
        other.fit(X[:50], y[:50], epochs=3, batch_size=16, resume=tmp_path / "c.npz", progress=False)
    wider = fb.MLP([5, 9, 3], loss="cross_entropy", backend="numpy")
    with pytest.raises(ValueError, match="holds a network"):
        wider.fit(X, y, epochs=3, batch_size=16, resume=tmp_path / "c.npz", progress=False)
    opt = fb.SGD(lr=0.1, momentum=0.9)
    other.fit(X, y, epochs=3, batch_size=16, optimizer=opt, seed=1, progress=False, resume=tmp_path / "c.npz")
    assert opt.step_count == 3 * 4


KILLED_RUN = textwrap.dedent("""
    import sys, time
    import numpy as np
    import fastbp as fb
    X, y = fb.datasets.load_digits()
    net = fb.MLP([64, 32, 10], loss="cross_entropy", backend="numpy", seed=0)
    net.fit(X, y, epochs=12, batch_size=64, optimizer=fb.Adam(lr=1e-2), seed=7, progress=False,
            checkpoint=sys.argv[1], callback=lambda epoch, history: time.sleep(0.3))
    print("finished")
""")


def test_kill_minus_9_then_resume_equals_uninterrupted(tmp_path):
    """A process SIGKILLed after a checkpoint resumes to exactly the uninterrupted weights."""
    path = tmp_path / "run.npz"
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if path.exists() and fb.checkpoint.read(path).training["epoch"] >= 2:
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        out, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL and "finished" not in out, err
    done = fb.checkpoint.read(path).training["epoch"]
    assert 2 <= done < 12
    assert not [p for p in os.listdir(tmp_path) if p != "run.npz"], "a temporary file was left behind"

    X, y = datasets.load_digits()
    kw = dict(epochs=12, batch_size=64, seed=7, progress=False)
    resumed = fb.MLP([64, 32, 10], loss="cross_entropy", backend="numpy", seed=1)
    resumed.fit(X, y, resume=path, **kw)
    whole = fb.MLP([64, 32, 10], loss="cross_entropy", backend="numpy", seed=0)
    whole.fit(X, y, optimizer=fb.Adam(lr=1e-2), **kw)
    np.testing.assert_array_equal(resumed.get_flat_params(), whole.get_flat_params())


# ---- non-finite loss ----

def test_huge_learning_rate_stops_cleanly_naming_epoch_and_batch(tmp_path, digits):
    X_tr, _, y_tr, _ = digits
    net = fb.MLP([64, 32, 10], activation="relu", loss="cross_entropy", backend="auto", seed=0)
    opt = fb.SGD(lr=0.05)
    path = tmp_path / "last.npz"
    seen = {}

    def blow_up(epoch, history):          # epoch 1 trains normally and is checkpointed; then lr = 1e30
        seen["params"] = net.get_flat_params()
        seen["digest"] = hashlib.sha256(path.read_bytes()).hexdigest()
        opt.lr = 1e30

    with pytest.raises(FloatingPointError, match=r"epoch 2, batch \d+") as info:
        net.fit(X_tr, y_tr, epochs=5, batch_size=32, optimizer=opt, seed=0, progress=False,
                checkpoint=path, callback=blow_up)
    batch = int(str(info.value).split("batch ")[1].split()[0])
    params = net.get_flat_params()
    assert np.isfinite(params).all()
    assert batch >= 2 or np.array_equal(params, seen["params"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == seen["digest"], "the last checkpoint changed"
    assert fb.checkpoint.read(path).training["epoch"] == 1
    np.testing.assert_array_equal(fb.MLP.load(path).get_flat_params(), seen["params"])


def test_non_finite_from_the_first_step_leaves_initial_weights():
    X, y = small_problem()
    net = fb.MLP([5, 16, 3], loss="mse", backend="numpy", seed=0)
    before = net.get_flat_params()
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1 "):
        net.fit(X * 1e30, np.ones((60, 3)) * 1e30, epochs=2, batch_size=10, optimizer=fb.SGD(lr=1.0),
                progress=False)
    np.testing.assert_array_equal(net.get_flat_params(), before)


# ---- batching ----

def test_last_partial_batch_and_order_match_manual_steps(cpu_backend):
    X, y = small_problem(n=10)
    a = fb.MLP([5, 4, 3], loss="cross_entropy", dtype=np.float64, backend=cpu_backend, seed=0)
    b = fb.MLP([5, 4, 3], loss="cross_entropy", dtype=np.float64, backend=cpu_backend, seed=0)
    opt_a, opt_b = fb.SGD(lr=0.1, momentum=0.5), fb.SGD(lr=0.1, momentum=0.5)
    h = a.fit(X, y, epochs=2, batch_size=4, optimizer=opt_a, shuffle=False, progress=False)
    losses = []
    for _ in range(2):
        losses.append([b.train_step(X[s:s + 4], y[s:s + 4], opt_b) * len(X[s:s + 4]) for s in (0, 4, 8)])
    np.testing.assert_array_equal(a.get_flat_params(), b.get_flat_params())
    assert opt_a.step_count == 6
    assert h["loss"] == pytest.approx([sum(l) / 10 for l in losses], rel=1e-12)


def test_batches_are_views_in_order_and_one_reused_buffer_shuffled():
    from fastbp._kernels import get_ops
    X = np.arange(40.0).reshape(10, 4)
    y = np.arange(10)
    data = get_ops("numpy").dataset(X, y)
    got = [(Xb, yb) for Xb, yb, sw in data.batches(4) if sw is None]
    assert [len(Xb) for Xb, _ in got] == [4, 4, 2]
    assert all(np.shares_memory(Xb, X) and np.shares_memory(yb, y) for Xb, yb in got)
    order = np.random.default_rng(0).permutation(10)
    seen, buffers = [], set()
    for Xb, yb, _ in data.batches(4, order):
        buffers.add(id(Xb.base))
        np.testing.assert_array_equal(Xb[:, 0] / 4, yb)          # rows stay paired
        seen.append(yb.copy())
    assert len(buffers) == 1, "one batch buffer, reused"
    np.testing.assert_array_equal(np.concatenate(seen), order)


# ---- rejected calls change nothing ----

@pytest.mark.parametrize("bad, error", [
    (dict(epochs=0), ValueError), (dict(epochs=2.5), TypeError), (dict(batch_size=0), ValueError),
    (dict(batch_size=True), TypeError), (dict(shuffle="yes"), TypeError), (dict(progress=1), TypeError),
    (dict(optimizer="adam"), TypeError), (dict(validation_data=np.ones((3, 5))), TypeError),
    (dict(validation_data=(np.ones((3, 4)), np.zeros(3))), ValueError),
    (dict(validation_data=(np.ones((3, 5)), np.zeros(2))), ValueError),
    (dict(checkpoint="/no/such/folder/c.npz"), ValueError), (dict(callback=3), TypeError),
    (dict(resume="missing.npz"), FileNotFoundError), (dict(grad_norms=None), TypeError),
])
def test_rejected_fit_changes_nothing(bad, error, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = small_problem()
    net = fb.MLP([5, 8, 3], loss="cross_entropy", backend="numpy", seed=0)
    opt = fb.Adam(lr=1e-2)
    net.fit(X, y, epochs=1, optimizer=opt, progress=False)
    params, m, v, steps = net.get_flat_params(), opt.state["m"].copy(), opt.state["v"].copy(), opt.step_count
    with pytest.raises(error):
        net.fit(X, y, **(dict(epochs=2, optimizer=opt, progress=False) | bad))
    np.testing.assert_array_equal(net.get_flat_params(), params)
    np.testing.assert_array_equal(opt.state["m"], m)
    np.testing.assert_array_equal(opt.state["v"], v)
    assert opt.step_count == steps


def test_resume_from_a_foreign_file_is_a_value_error_naming_it(tmp_path):
    X, y = small_problem()
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    net = fb.MLP([5, 8, 3], loss="cross_entropy", backend="numpy", seed=0)
    with pytest.raises(ValueError, match="junk.npz"):
        net.fit(X, y, epochs=1, resume=junk, progress=False)
    plain = tmp_path / "plain.npz"
    net.save(plain)                      # a saved network without training progress
    with pytest.raises(ValueError, match="not written by fit"):
        net.fit(X, y, epochs=1, resume=plain, progress=False)


# ---- progress ----

class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_only(monkeypatch, capsys):
    X, y = small_problem()
    net = fb.MLP([5, 8, 3], loss="cross_entropy", backend="numpy", seed=0)
    net.fit(X, y, epochs=2, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and err == "", "progress output without a terminal"
    term = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", term)
    net.fit(X, y, epochs=2, progress=True)
    assert "epoch 1/2" in term.getvalue() and "epoch 2/2" in term.getvalue() and "loss" in term.getvalue()
    quiet = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    net.fit(X, y, epochs=1, progress=False)
    assert quiet.getvalue() == ""


# ---- gradient-flow diagnostics ----

def test_grad_norms_are_the_norms_of_dW():
    X, y = small_problem(n=16)
    net = fb.MLP([5, 6, 4, 3], loss="cross_entropy", dtype=np.float64, backend="numpy", seed=0)
    _, dW, _ = net.loss_and_grad(X, y)
    h = net.fit(X, y, epochs=1, batch_size=16, shuffle=False, optimizer=fb.SGD(lr=0.1), grad_norms=True,
                progress=False)
    np.testing.assert_allclose(h["grad_norms"][0], [np.linalg.norm(g) for g in dW], rtol=1e-12)


def test_saturated_layer_warns_naming_it():
    X, y = small_problem()
    net = fb.MLP([5, 8, 8, 3], activation="sigmoid", loss="cross_entropy", dtype=np.float64, backend="numpy", seed=0)
    W, b = net.weights, net.biases
    W[0][...] *= 1e6                    # layer 1's sigmoids saturate: its gradient vanishes, the others' do not
    net.set_params(W, b)
    with pytest.warns(GradientFlowWarning) as caught:
        h = net.fit(X, y, epochs=3, optimizer=fb.SGD(lr=0.01), grad_norms=True, progress=False)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages          # reported once, not every epoch, and only layer 1
    assert "epoch 1: gradient norm of layer 1 (5->8, sigmoid) collapsed" in messages[0]
    assert h["grad_norms"][0][0] <= 1e-6 * h["grad_norms"][0][1]


def test_gradient_flow_rules():
    names = ["layer 1", "layer 2", "layer 3"]
    assert check_gradient_flow([1.0, 0.5, 2.0], names) == []
    (key, message), = check_gradient_flow([1e-9, 0.5, 2.0], names)
    assert key == (0, "vanishing") and "layer 1" in message
    (key, message), = check_gradient_flow([1.0, 3e4, 2.0], names)
    assert key == (1, "exploding") and "layer 2" in message
    (key, _), = check_gradient_flow([1.0, 1.0, 2e3], names, first=np.array([1.0, 1.0, 0.1]))
    assert key == (2, "exploding")
    net = fb.MLP([3, 4, 2], activation="tanh", backend="numpy")
    assert layer_names(net.arch) == ["layer 1 (3->4, tanh)", "layer 2 (4->2, identity)"]


def test_healthy_training_does_not_warn(digits):
    X_tr, _, y_tr, _ = digits
    net = fb.MLP([64, 32, 10], loss="cross_entropy", backend="numpy", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientFlowWarning)
        h = net.fit(X_tr, y_tr, epochs=2, optimizer=fb.Adam(lr=1e-2), grad_norms=True, progress=False)
    assert len(h["grad_norms"]) == 2 and all(len(row) == 2 for row in h["grad_norms"])


# ---- predictions and metrics ----

def test_predict_predict_proba_score():
    X, y = small_problem()
    net = fb.MLP([5, 8, 3], loss="cross_entropy", dtype=np.float64, backend="numpy", seed=0)
    logits = net.forward(X)
    proba = net.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(proba[:, 0] / proba[:, 1]), logits[:, 0] - logits[:, 1], rtol=1e-9)
    np.testing.assert_array_equal(net.predict(X), logits.argmax(1))
    assert net.score(X, y) == np.mean(net.predict(X) == y)
    binary = fb.MLP([5, 2], loss="bce", dtype=np.float64, backend="numpy", seed=0)
    Y = (X[:, :2] > 0).astype(float)
    np.testing.assert_allclose(binary.predict_proba(X), 1 / (1 + np.exp(-binary.forward(X))), rtol=1e-12)
    assert binary.score(X, Y) == np.mean((binary.predict(X) == Y).all(1))
    reg = fb.MLP([5, 1], loss="mse", backend="numpy", seed=0)
    with pytest.raises(ValueError, match="classifier"):
        reg.predict_proba(X)
    with pytest.raises(ValueError, match="features"):
        net.predict(X[:, :4])


def test_metrics_agree_with_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    assert metrics.r2_score(a, a + 0.3 * b) == pytest.approx(sk.r2_score(a, a + 0.3 * b), rel=1e-12)
    assert metrics.r2_score(a[:, 0], b[:, 0]) == pytest.approx(sk.r2_score(a[:, 0], b[:, 0]), rel=1e-12)
    const = np.ones(5)
    assert metrics.r2_score(const, const) == sk.r2_score(const, const) == 1.0
    labels, guess = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    assert metrics.accuracy(labels, guess) == sk.accuracy_score(labels, guess)


# ---- data sets ----

def test_digits_data_set():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(np.unique(y), np.arange(10))
    assert np.bincount(y).min() >= 170
    raw, _ = datasets.load_digits(scale=False)
    np.testing.assert_array_equal(raw, X * 16)
    skl = pytest.importorskip("sklearn.datasets")
    Xs, ys = skl.load_digits(return_X_y=True)
    np.testing.assert_array_equal(raw, Xs)
    np.testing.assert_array_equal(y, ys)


def test_csv_and_npz_loaders(tmp_path):
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(20, 3)), 4)
    y = rng.integers(0, 3, 20)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    Xn, yn = datasets.load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(Xn, X)
    np.testing.assert_array_equal(yn, y)
    table = np.column_stack([y, X])
    np.savetxt(tmp_path / "d.csv", table, delimiter=",", header="label,a,b,c", comments="")
    Xc, yc = datasets.load_csv(tmp_path / "d.csv", label_column=0)
    np.testing.assert_array_equal(Xc, X)
    np.testing.assert_array_equal(yc, y)
    assert yc.dtype.kind == "i"
    np.savetxt(tmp_path / "r.csv", np.column_stack([X, X[:, 0] * 0.5]), delimiter=",")
    Xr, yr = datasets.load_data(tmp_path / "r.csv")
    assert yr.dtype == np.float64 and Xr.shape == (20, 3)
    (tmp_path / "bad.csv").write_text("1,2,3\n4,five,6\n")
    with pytest.raises(ValueError, match="bad.csv"):
        datasets.load_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="'labels'"):
        datasets.load_npz(tmp_path / "d.npz", y_key="labels")
    (tmp_path / "broken.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="broken.npz"):
        datasets.load_npz(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="label_column"):
        datasets.load_csv(tmp_path / "d.csv", label_column=7)
    X_tr, X_te, y_tr, y_te = datasets.train_test_split(X, y, 0.25, seed=1)
    assert len(X_te) == 5 and len(X_tr) == 15
    assert sorted(map(tuple, np.vstack([X_tr, X_te]))) == sorted(map(tuple, X))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_progress_bar_says_what_a_first_step_waits_for(backend, monkeypatch, capsys):
    """On a terminal, fit's bar names the first step's compile (Numba) until that step ends,
    then shows the loss; backends without a JIT show no such note."""
    from fastbp import training
    monkeypatch.setattr(training, "progress_shown", lambda progress: bool(progress))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 3)), rng.random((12, 1))
    net = fb.MLP([3, 4, 1], backend=backend, seed=0)
    net.fit(X, y, epochs=2, batch_size=4, optimizer=fb.SGD(0.1))
    err = capsys.readouterr().err
    note = net._ops.first_step_note
    assert (backend == "numba") == bool(note)
    if note:
        assert err.count(note) == 1, "the note is shown once, before the first step of the first epoch"
        assert err.index(note) < err.index("loss "), "and replaced by the loss once that step is done"
    assert "epoch 2/2" in err and "loss " in err
