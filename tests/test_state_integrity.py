"""A rejected call changes nothing; a training step never writes to its inputs.

After any rejected call (bad X, bad y, bad optimizer, bad parameters, non-finite loss) the
parameters and the optimizer state (buffers and step count) are bit-for-bit as before. After
train_step / fit / loss_and_grad / forward, the caller's X and y are bit-for-bit unchanged,
whatever their layout (including arrays the network could use without a copy).
"""
import numpy as np
import pytest

import fastbp as fb
from conftest import CUDA_SIMULATED

from fuzz_cases import relayout

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def state_bytes(net, opt):
    """Everything a rejected call must leave alone, as bytes."""
    out = {"params": net.get_flat_params().tobytes(), "step_count": opt.step_count}
    for name, arr in (opt.checkpoint_arrays() if opt.state else {}).items():
        out["optim_" + name] = arr.tobytes()
    return out


def trained(backend, loss="mse", dtype=np.float64, optimizer="adam", sizes=(3, 5, 2)):
    """A network and optimizer a few steps into training (non-zero optimizer state)."""
    net = fb.MLP(list(sizes), activation="tanh", loss=loss, dtype=dtype, backend=backend, seed=1)
    opt = fb.Adam(1e-2) if optimizer == "adam" else fb.SGD(0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, sizes[0]))
    y = (rng.integers(0, sizes[-1], 4) if loss == "cross_entropy" else rng.uniform(size=(4, sizes[-1])) if loss == "bce"
         else rng.standard_normal((4, sizes[-1])))
    for _ in range(3):
        net.train_step(X, y, opt)
    return net, opt, X, y


def bad_calls(net, opt, X, y):
    """(description, zero-argument callable that must raise ValueError/TypeError)."""
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    Xnan = X.copy()
    Xnan[-1, -1] = np.nan
    yinf = np.array(y, dtype=np.float64)
    yinf.flat[-1] = np.inf
    other = fb.MLP([n_in + 1, n_out], loss=net.loss, backend=net.backend)
    bound_elsewhere = fb.SGD(0.1)
    other.train_step(np.zeros((1, n_in + 1)), np.zeros((1, n_out)) if net.loss != "cross_entropy"
                     else np.zeros(1, dtype=int), bound_elsewhere)
    good_W, good_b = net.weights, net.biases
    calls = [
        ("X wrong width", lambda: net.train_step(X[:, :-1], y, opt)),
        ("X 1-D", lambda: net.train_step(X[0], y, opt)),
        ("X 3-D", lambda: net.train_step(X[None], y, opt)),
        ("X empty batch", lambda: net.train_step(X[:0], y[:0], opt)),
        ("X with NaN in the last element", lambda: net.train_step(Xnan, y, opt)),
        ("X complex", lambda: net.train_step(X.astype(complex), y, opt)),
        ("X object", lambda: net.train_step(X.astype(object), y, opt)),
        ("X strings", lambda: net.train_step(X.astype(str), y, opt)),
        ("X ragged list", lambda: net.train_step([[1.0] * n_in, [1.0] * (n_in - 1)], y[:2], opt)),
        ("X scalar", lambda: net.train_step(1.0, y, opt)),
        ("X None", lambda: net.train_step(None, y, opt)),
        ("X overflows the dtype", lambda: net.train_step(np.full_like(X, 1e300) if net.dtype == np.float32
                                                         else X.astype(object), y, opt)),
        ("y batch mismatch", lambda: net.train_step(X, y[:-1], opt)),
        ("y with inf", lambda: net.train_step(X, yinf if net.loss != "cross_entropy" else yinf, opt)),
        ("y strings", lambda: net.train_step(X, np.asarray(y).astype(str), opt)),
        ("y None, X of 2 rows", lambda: net.train_step(X[:2], None, opt)),
        ("loss_and_grad: y None, X of 2 rows", lambda: net.loss_and_grad(X[:2], None)),
        ("optimizer not an optimizer", lambda: net.train_step(X, y, "adam")),
        ("optimizer bound to another network", lambda: net.train_step(X, y, bound_elsewhere)),
        ("fit: bad epochs", lambda: net.fit(X, y, epochs=0, optimizer=opt)),
        ("fit: bad batch_size", lambda: net.fit(X, y, batch_size=-1, optimizer=opt)),
        ("fit: bad validation_data", lambda: net.fit(X, y, epochs=1, optimizer=opt,
                                                     validation_data=(X[:, :-1], y))),
        ("fit: NaN in the last row", lambda: net.fit(Xnan, y, epochs=1, optimizer=opt)),
        ("set_params: last bias wrong shape", lambda: net.set_params(good_W, good_b[:-1] + [np.zeros(n_out + 1)])),
        ("set_params: last weight has NaN", lambda: net.set_params(
            good_W[:-1] + [np.full_like(good_W[-1], np.nan)], good_b)),
        ("set_params: wrong count", lambda: net.set_params(good_W[:1], good_b[:1])),
        ("set_flat_params: wrong length", lambda: net.set_flat_params(np.zeros(net.n_params + 1))),
        ("set_flat_params: inf at the end", lambda: net.set_flat_params(
            np.r_[np.zeros(net.n_params - 1), np.inf])),
        ("loss_and_grad: y wrong", lambda: net.loss_and_grad(X, np.asarray(y)[:, None, None])),
        ("forward: wrong width", lambda: net.forward(np.zeros((2, n_in + 1)))),
    ]
    if net.loss == "cross_entropy":
        calls += [
            ("labels out of range", lambda: net.train_step(X, np.full(len(X), n_out), opt)),
            ("negative label", lambda: net.train_step(X, np.r_[np.zeros(len(X) - 1, int), -1], opt)),
            ("fractional label", lambda: net.train_step(X, np.r_[np.zeros(len(X) - 1), 0.5], opt)),
        ]
    return calls


CONFIGS = [("mse", np.float64, "adam"), ("cross_entropy", np.float32, "sgd"), ("bce", np.float32, "adam")]


@pytest.mark.parametrize("loss,dtype,optimizer", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_rejected_calls_change_nothing(backend, loss, dtype, optimizer):
    net, opt, X, y = trained(backend, loss, dtype, optimizer)
    if loss == "bce":
        y = (y > 0).astype(np.float64)
    before = state_bytes(net, opt)
    for what, call in bad_calls(net, opt, X, y):
        with pytest.raises((ValueError, TypeError)) as info:
            call()
        assert str(info.value).strip(), f"{what}: no message"
        assert state_bytes(net, opt) == before, f"{what} on {backend!r}: the rejected call changed the state"
    # and the network still trains from exactly where it was
    net.train_step(X, y, opt)
    assert state_bytes(net, opt) != before


def test_non_finite_loss_changes_nothing(backend):
    """train_step on finite inputs whose loss overflows: FloatingPointError, nothing updated."""
    net, opt, X, y = trained(backend, "mse", np.float32, "adam")
    before = state_bytes(net, opt)
    huge = np.full((4, 3), 3e38, dtype=np.float32)          # finite, but the loss is not
    with pytest.raises(FloatingPointError):
        net.train_step(huge, np.full((4, 2), -3e38, dtype=np.float32), opt)
    assert state_bytes(net, opt) == before
    with pytest.raises(FloatingPointError):
        net.fit(huge, np.full((4, 2), -3e38, dtype=np.float32), epochs=1, batch_size=2, optimizer=opt)
    assert state_bytes(net, opt) == before


@pytest.mark.parametrize("rows,expect", [(4, "trains"), (32, "raises")])
def test_plain_sgd_past_the_product_bound(backend, rows, expect):
    """Plain SGD may update W inside the weight-gradient product (the compiled backends),
    but only where sum|A_prev| * sum|delta| shows every product finite. Here every output is
    1e19 against a target of 9e18 (delta 2e18, 'sum' reduction), far past that bound: the step
    stores and scans the gradient instead. 4 rows give a finite gradient (8e37), applied as the
    reference applies it; 32 rows overflow it (6.4e38; the loss, summed in float64 by the
    compiled backends, stays finite): FloatingPointError, nothing updated. (64 x 16 weights:
    the networks take the compiled backends' BLAS-sized path, not the tiny-network one.)"""
    nets = [fb.MLP([64, 16], activation="identity", loss="mse", reduction="sum", dtype=np.float32,
                   backend=b, seed=0) for b in ("numpy", backend)]
    opts = [fb.SGD(0.01) for _ in nets]
    for net in nets:
        net.set_params([np.full((64, 16), 1 / 64)], [np.zeros(16)])
    X = np.full((rows, 64), 1e19, np.float32)
    y = np.full((rows, 16), 9e18, np.float32)
    if expect == "raises":
        for net, opt in zip(nets, opts):
            before = state_bytes(net, opt)
            with pytest.raises(FloatingPointError):
                net.train_step(X, y, opt)
            assert state_bytes(net, opt) == before
    else:
        losses = [net.train_step(X, y, opt) for net, opt in zip(nets, opts)]
        np.testing.assert_allclose(losses[1], losses[0], rtol=2e-4)
        np.testing.assert_allclose(nets[1].get_flat_params(), nets[0].get_flat_params(), rtol=2e-4)
        assert np.isfinite(nets[1].get_flat_params()).all() and nets[1].weights[0][0, 0] < -1e35


def test_fit_failure_midway_keeps_the_last_finite_parameters(backend):
    """A non-finite batch in the middle of fit: parameters are those after the last finite step."""
    net, opt, X, y = trained(backend, "mse", np.float32, "sgd")
    Xs = np.vstack([X, np.full((4, 3), 3e38, dtype=np.float32)]).astype(np.float32)
    ys = np.vstack([y, np.full((4, 2), -3e38)]).astype(np.float32)
    twin, twin_opt, _, _ = trained(backend, "mse", np.float32, "sgd")
    twin.train_step(X, y, twin_opt)                        # the one finite batch of the fit below
    with pytest.raises(FloatingPointError, match="epoch 1, batch 2"):
        net.fit(Xs, ys, epochs=1, batch_size=4, shuffle=False, optimizer=opt)
    assert state_bytes(net, opt) == state_bytes(twin, twin_opt)


LAYOUTS = ["C", "fortran", "strided", "negative", "readonly", "broadcast", "unaligned"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_inputs_never_written(backend, layout, loss):
    """X and y are bit-for-bit unchanged by every method, in every layout; with the network's
    own dtype and C order they reach the backend without a copy, so a kernel writing into
    them would show here."""
    if CUDA_SIMULATED and backend == "cuda" and layout != "C":
        pytest.skip("the CUDA simulator is slow; host arrays are copied to the device anyway")
    net, opt, X, y = trained(backend, loss, np.float64, "adam")
    X = relayout(np.ascontiguousarray(X), layout)
    y = relayout(np.ascontiguousarray(y if loss == "cross_entropy" else y), layout)
    X_bytes, y_bytes = X.tobytes(), y.tobytes()
    net.train_step(X, y, opt)
    net.loss_and_grad(X, y)
    net.forward(X)
    net.loss_value(X, y)
    net.fit(X, y, epochs=2, batch_size=3, optimizer=opt)
    fb.gradcheck(net, X, y)
    assert X.tobytes() == X_bytes and y.tobytes() == y_bytes


def test_returned_gradients_and_weights_do_not_alias_internal_buffers(backend):
    """loss_and_grad returns copies: writing into them changes no later result."""
    net, opt, X, y = trained(backend)
    loss, dW, db = net.loss_and_grad(X, y)
    for g in dW + db:
        g[...] = 1e30
    assert net.loss_and_grad(X, y)[0] == loss
    params = net.get_flat_params()
    params[...] = 0
    assert net.loss_value(X, y) == loss


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_rejected_first_step_leaves_a_fresh_optimizer_unbound(backend, optimizer):
    """A fresh optimizer whose first step is rejected (NaN in X, found by a backend inside its
    compiled call or before it) is not bound to the network: it still serves another one."""
    net = fb.MLP([3, 2], loss="bce", dtype=np.float32, backend=backend, seed=0)
    opt = fb.Adam(1e-2) if optimizer == "adam" else fb.SGD(0.1, momentum=0.9)
    X = np.ones((2, 3), dtype=np.float32)
    X[1, 2] = np.nan
    before = net.get_flat_params().tobytes()
    with pytest.raises(ValueError, match="X"):
        net.train_step(X, np.zeros((2, 2)), opt)
    assert net.get_flat_params().tobytes() == before and opt.step_count == 0 and not opt.checkpoint_arrays()
    other = fb.MLP([4, 1], dtype=np.float64, backend=backend, seed=0)
    other.train_step(np.ones((2, 4)), np.zeros((2, 1)), opt)      # binds to this one instead
    assert opt.step_count == 1
