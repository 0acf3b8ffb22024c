"""Numerical robustness: saturated activations and losses at |z| ~ 1e4, and a batch of 1e6 rows.

Expected values come from mpmath at 50 digits (not from the reference), so the reference is
tested too. Saturated derivatives are compared with an absolute tolerance of a few ulps of 1
(sigmoid'(z) computed from A = sigmoid(z) loses its relative precision near A = 1; its
absolute error is what backpropagation sees).
"""
import functools

import numpy as np
import pytest

import fastbp as fb

mpmath = pytest.importorskip("mpmath")
mpmath.mp.dps = 50
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

ZS = [-3e4, -1e4, -1e3, -100.0, -30.0, -10.0, -1.0, -0.5, 0.0, 0.5, 1.0, 10.0, 30.0, 100.0, 1e3, 1e4, 3e4]
GELU_C, GELU_K = mpmath.sqrt(2 / mpmath.pi), mpmath.mpf("0.044715")
SELU_ALPHA = mpmath.mpf("1.6732632423543772848170429916717")     # torch.nn.functional.selu's
SELU_SCALE = mpmath.mpf("1.0507009873554804934193349852946")


def m_sigmoid(z):
    return 1 / (1 + mpmath.exp(-z))


EXACT = {   # name -> (f, f')
    "identity": (lambda z: z, lambda z: 1),
    "sigmoid": (m_sigmoid, lambda z: m_sigmoid(z) * (1 - m_sigmoid(z))),
    "tanh": (mpmath.tanh, lambda z: 1 - mpmath.tanh(z) ** 2),
    "relu": (lambda z: max(z, 0), lambda z: 1 if z > 0 else 0),
    "leaky_relu": (lambda z: z if z > 0 else mpmath.mpf("0.01") * z, lambda z: 1 if z > 0 else mpmath.mpf("0.01")),
    "elu": (lambda z: z if z > 0 else mpmath.expm1(z), lambda z: 1 if z > 0 else mpmath.exp(z)),
    "softplus": (lambda z: mpmath.log1p(mpmath.exp(z)), m_sigmoid),
    "gelu": (lambda z: z / 2 * (1 + mpmath.tanh(GELU_C * (z + GELU_K * z**3))),
             lambda z: (1 + mpmath.tanh(GELU_C * (z + GELU_K * z**3))) / 2
             + z / 2 * (1 - mpmath.tanh(GELU_C * (z + GELU_K * z**3)) ** 2) * GELU_C * (1 + 3 * GELU_K * z**2)),
    "silu": (lambda z: z * m_sigmoid(z), lambda z: m_sigmoid(z) * (1 + z * (1 - m_sigmoid(z)))),
    "selu": (lambda z: SELU_SCALE * (z if z > 0 else SELU_ALPHA * mpmath.expm1(z)),
             lambda z: SELU_SCALE * (1 if z > 0 else SELU_ALPHA * mpmath.exp(z))),
    "mish": (lambda z: z * mpmath.tanh(mpmath.log1p(mpmath.exp(z))),
             lambda z: mpmath.tanh(mpmath.log1p(mpmath.exp(z)))
             + z * m_sigmoid(z) * (1 - mpmath.tanh(mpmath.log1p(mpmath.exp(z))) ** 2)),
}
TOL = {np.float64: (1e-12, 4 * np.finfo(np.float64).eps), np.float32: (4e-6, 4 * np.finfo(np.float32).eps)}


def exact_array(fn, Z):
    return np.array([[float(fn(mpmath.mpf(float(z)))) for z in row] for row in Z])


def assert_matches_exact(got, exact, dtype, what):
    rtol, atol = TOL[dtype]
    assert np.isfinite(got).all(), f"{what}: non-finite {got[~np.isfinite(got)]}"
    err = np.abs(got.astype(np.float64) - exact)
    bound = rtol * np.abs(exact) + atol
    bad = err > bound
    assert not bad.any(), f"{what}: got {got[bad]}, exact {exact[bad]}"


@pytest.mark.parametrize("activation", fb.activations.NAMES)      # an activation missing from EXACT fails
def test_activations_and_derivatives_saturate_cleanly(backend, dtype, activation):
    """linear_forward and activation_backward at |z| up to 3e4: finite, equal to the exact values."""
    check_saturation(backend, dtype, activation)


@pytest.mark.parametrize("activation", fb.activations.NAMES)
def test_cython_activations_saturate_cleanly_on_every_path(cython_path, dtype, activation):
    """The same bounds on each instruction-set path of the Cython loops (the `backend` runs
    the one import chose)."""
    check_saturation("cython", dtype, activation)


def check_saturation(backend, dtype, activation):
    Z = np.array([ZS], dtype=dtype)
    X, W, b = np.ones((1, 1), dtype=dtype), Z.copy(), np.zeros(len(ZS), dtype=dtype)   # Z = 1 @ W + 0, exactly
    Zg, A = fb.kernels.linear_forward(X, W, b, activation, backend=backend)
    assert np.array_equal(Zg, Z)
    f, fprime = EXACT[activation]
    assert_matches_exact(A, exact_array(f, Z), dtype, f"{activation}(z) on {backend}")
    dZ = fb.kernels.activation_backward(np.ones_like(Z), Z, A, activation, backend=backend)
    assert_matches_exact(dZ, exact_array(fprime, Z), dtype, f"{activation}'(z) on {backend}")
    # the derivative at the pre-activation of an earlier layer: (delta @ W.T) * f'(Z)
    delta = np.ones((1, 1), dtype=dtype)
    dprev = fb.kernels.delta_propagate(delta, np.ones((len(ZS), 1), dtype=dtype), Z, A, activation, backend=backend)
    assert_matches_exact(dprev, exact_array(fprime, Z), dtype, f"delta through {activation} on {backend}")


def logit_net(loss, logits, backend, dtype, reduction="mean"):
    """A one-layer identity network whose outputs are exactly `logits` (X = logits, W = I, b = 0)."""
    n = logits.shape[1]
    net = fb.MLP([n, n], output_activation="identity", loss=loss, reduction=reduction, dtype=dtype, backend=backend)
    net.set_params([np.eye(n)], [np.zeros(n)])
    return net, logits.astype(dtype)


def exact_loss_and_delta(loss, logits, y, reduction):
    rows = []
    total = mpmath.mpf(0)
    for i, z in enumerate(logits.astype(np.float64).tolist()):
        z = [mpmath.mpf(v) for v in z]
        if loss == "cross_entropy":
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
            total += lse - z[int(y[i])]
            rows.append([mpmath.exp(v - lse) - (1 if j == int(y[i]) else 0) for j, v in enumerate(z)])
        else:   # bce on logits
            t = [mpmath.mpf(float(v)) for v in np.atleast_1d(y[i])]
            total += mpmath.fsum(mpmath.log1p(mpmath.exp(-abs(v))) + max(v, 0) - v * tv for v, tv in zip(z, t))
            rows.append([m_sigmoid(v) - tv for v, tv in zip(z, t)])
    count = len(rows) if loss == "cross_entropy" else len(rows) * len(rows[0])
    scale = count if reduction == "mean" else 1
    return float(total / scale), np.array([[float(v / scale) for v in r] for r in rows])


CASES = {
    "cross_entropy": (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3], [3e4, 3e4 - 1, -3e4], [0.0, 0.0, 1e4]]),
                      np.array([1, 1, 1, 0])),
    "bce": (np.array([[1e4, -1e4], [-1e4, 1e4], [3e4, -3e4], [0.5, -2.0]]),
            np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.5], [1.0, 0.0]])),
}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", list(CASES))
def test_fused_losses_are_stable_at_huge_logits(backend, dtype, loss, reduction):
    """log-softmax + cross-entropy and sigmoid + BCE at logits of +-1e4..3e4: finite loss and
    gradients, equal to the exact values; and train_step runs (no FloatingPointError)."""
    logits, y = CASES[loss]
    net, X = logit_net(loss, logits, backend, dtype, reduction)
    want_loss, want_delta = exact_loss_and_delta(loss, X, y, reduction)
    got_loss, dW, db = net.loss_and_grad(X, y)
    assert np.isfinite(got_loss) and abs(got_loss - want_loss) <= TOL[dtype][0] * abs(want_loss) + TOL[dtype][1], \
        (got_loss, want_loss)
    want_dW = X.astype(np.float64).T @ want_delta
    scale = np.abs(X.astype(np.float64)).T @ np.abs(want_delta)
    assert np.isfinite(dW[0]).all() and np.isfinite(db[0]).all()
    assert np.all(np.abs(dW[0] - want_dW) <= TOL[dtype][0] * 10 * scale + TOL[dtype][1] * np.abs(X).max()), (dW[0], want_dW)
    assert_matches_exact(db[0][None], want_delta.sum(axis=0)[None], dtype, f"db of {loss}")
    assert np.isfinite(net.train_step(X, y, fb.SGD(1e-9)))


@pytest.mark.parametrize("activation", [a.name for a in fb.activations.TABLE if a.transcendental])
def test_saturated_hidden_layer_gives_finite_gradients(backend, dtype, activation):
    """A hidden layer driven to |z| = 1e4 (both signs) passes finite gradients back."""
    net = fb.MLP([2, 2, 1], activation=activation, dtype=dtype, backend=backend, seed=0)
    net.set_params([np.array([[1e4, -1e4], [0.0, 0.0]]), np.array([[1.0], [1.0]])], [np.zeros(2), np.zeros(1)])
    X = np.array([[1.0, 0.0], [-1.0, 0.5]], dtype=dtype)
    ref = fb.MLP([2, 2, 1], activation=activation, dtype=np.float64, backend="numpy")
    ref.set_flat_params(net.get_flat_params().astype(np.float64))
    loss, dW, db = net.loss_and_grad(X, np.zeros((2, 1)))
    rloss, rdW, rdb = ref.loss_and_grad(X.astype(np.float64), np.zeros((2, 1)))
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in dW + db)
    assert abs(loss - rloss) <= 1e-5 * abs(rloss) + 1e-6
    for g, r in zip(dW + db, rdW + rdb):
        np.testing.assert_allclose(g, r, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-3 if dtype == np.float32 else 1e-9)


# ---------------------------------------------------------------- a batch of 1e6 rows

ROWS = 1_000_000


@functools.lru_cache(maxsize=None)
def million_rows(data):
    rng = np.random.default_rng(0)
    if data == "random":
        X = rng.standard_normal((ROWS, 3)).astype(np.float32)
        y = (rng.standard_normal((ROWS, 1)) + 5).astype(np.float32)
    else:
        X = np.broadcast_to(np.array([[0.3, -1.2, 0.7]], dtype=np.float32), (ROWS, 3)).copy()
        y = np.full((ROWS, 1), 5.37, dtype=np.float32)
    net = fb.MLP([3, 4, 1], activation="tanh", dtype=np.float32, backend="numpy", seed=3)
    ref = fb.MLP([3, 4, 1], activation="tanh", dtype=np.float64, backend="numpy")
    ref.set_flat_params(net.get_flat_params().astype(np.float64))     # the same values, exactly
    return X, y, net.get_flat_params(), ref.loss_and_grad(X.astype(np.float64), y.astype(np.float64))


@pytest.mark.parametrize("data", ["random", "duplicated_rows"])
def test_million_row_batch_reductions(cpu_backend, data):
    """float32 loss_and_grad on 1e6 rows: the loss (a mean over 1e6 terms) and the gradient
    sums over the batch are finite and agree with a float64 computation of the same network
    to 1e-3, norm-wise. Duplicated rows make every term of a reduction equal, the case where
    a running float32 sum drifts the most (~0.5% here)."""
    X, y, params, (rloss, rdW, rdb) = million_rows(data)
    net = fb.MLP([3, 4, 1], activation="tanh", dtype=np.float32, backend=cpu_backend)
    net.set_flat_params(params)
    loss, dW, db = net.loss_and_grad(X, y)
    assert np.isfinite(loss) and abs(loss - rloss) <= 1e-3 * abs(rloss), (loss, rloss)
    for name, g, r in zip(["dW0", "dW1", "db0", "db1"], dW + db, rdW + rdb):
        assert np.isfinite(g).all(), name
        err = np.abs(g.astype(np.float64) - r).max()
        assert err <= 1e-3 * np.abs(r).max(), f"{name} on {cpu_backend}: error {err:.3g} vs size {np.abs(r).max():.3g}"


@functools.lru_cache(maxsize=None)
def million_labels():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((ROWS, 2)).astype(np.float32)
    y = rng.integers(0, 3, ROWS)
    net = fb.MLP([2, 3], loss="cross_entropy", reduction="sum", dtype=np.float32, backend="numpy", seed=0)
    ref = fb.MLP([2, 3], loss="cross_entropy", reduction="sum", dtype=np.float64, backend="numpy")
    ref.set_flat_params(net.get_flat_params().astype(np.float64))
    return X, y, net.get_flat_params(), ref.loss_value(X.astype(np.float64), y)


def test_million_row_sum_reduction(cpu_backend):
    """reduction="sum" of cross-entropy over 1e6 float32 rows: finite and accurate to 1e-3."""
    X, y, params, rloss = million_labels()
    net = fb.MLP([2, 3], loss="cross_entropy", reduction="sum", dtype=np.float32, backend=cpu_backend)
    net.set_flat_params(params)
    loss = net.loss_value(X, y)
    assert np.isfinite(loss) and abs(loss - rloss) <= 1e-3 * abs(rloss), (loss, rloss)
