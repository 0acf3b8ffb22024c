"""The numba.cuda backend against the NumPy reference, under numba's CUDA simulator.

Runs where "cuda" is usable: a GPU, or NUMBA_ENABLE_CUDASIM=1 set before Python starts
(.ci/run has a line for it). The simulator costs about 0.2 ms per simulated thread, so the
shapes are tiny; sizes 1, 3, 17 with a 16-wide tile cover the edges of partial tiles.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastbp as fb
from fastbp import activations, losses
from fastbp._kernels import reference
from conftest import CUDA_SIMULATED, tolerance

pytestmark = pytest.mark.skipif(
    "cuda" not in fb.available_backends(),
    reason="no CUDA GPU and no simulator: run with NUMBA_ENABLE_CUDASIM=1 (see .ci/run)")

if "cuda" in fb.available_backends():
    from numba import cuda
    from fastbp._kernels.cuda import ops as cuda_backend
    from fastbp._kernels.cuda import products

ACTS = activations.NAMES
rng = np.random.default_rng(12345)


def host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def normal(*shape, dtype=np.float64, scale=1.0):
    return (rng.normal(size=shape) * scale).astype(dtype)


# ---- the kernels, through fb.kernels (host arrays in, host arrays out) ----

@pytest.mark.parametrize("act", ACTS)
def test_linear_forward_and_derivatives_every_activation(act, dtype):
    X, W, b = normal(5, 6, dtype=dtype), normal(6, 7, dtype=dtype), normal(7, dtype=dtype)
    code = activations.code(act)
    Z, A = fb.kernels.linear_forward(X, W, b, act, backend="cuda")
    Zr, Ar = reference.ops.linear_forward(X, W, b, code)
    assert isinstance(Z, np.ndarray) and Z.dtype == dtype
    np.testing.assert_allclose(Z, Zr, **tolerance(dtype))
    np.testing.assert_allclose(A, Ar, **tolerance(dtype))
    dA = normal(5, 7, dtype=dtype)
    np.testing.assert_allclose(fb.kernels.activation_backward(dA, Zr, Ar, act, backend="cuda"),
                               reference.ops.activation_backward(dA, Zr, Ar, code), **tolerance(dtype))
    delta = normal(5, 4, dtype=dtype)
    W2 = normal(7, 4, dtype=dtype)
    np.testing.assert_allclose(fb.kernels.delta_propagate(delta, W2, Zr, Ar, act, backend="cuda"),
                               reference.ops.delta_propagate(delta, W2, Zr, Ar, code), **tolerance(dtype))


@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (3, 17, 3), (17, 3, 17)])
def test_gemm_kernels_at_the_gpu_tile_with_partial_tiles(M, K, N, dtype):
    """The tile the GPU uses (16), with sizes that leave tiles partly empty."""
    X, W, b = normal(M, K, dtype=dtype), normal(K, N, dtype=dtype), normal(N, dtype=dtype)
    Z, A = (cuda.device_array((M, N), dtype) for _ in range(2))
    products.linear_forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b), activations.TANH, Z, A,
                             tile=16)
    Zr, Ar = reference.ops.linear_forward(X, W, b, activations.TANH)
    np.testing.assert_allclose(Z.copy_to_host(), Zr, **tolerance(dtype))
    np.testing.assert_allclose(A.copy_to_host(), Ar, **tolerance(dtype))
    D = normal(M, N, dtype=dtype)
    Zp, Ap = reference.ops.linear_forward(normal(M, 2, dtype=dtype), normal(2, K, dtype=dtype),
                                          normal(K, dtype=dtype), activations.SIGMOID)
    out = cuda.device_array((M, K), dtype)
    products.delta_propagate(cuda.to_device(D), cuda.to_device(W), cuda.to_device(Zp), cuda.to_device(Ap),
                              activations.SIGMOID, out, tile=16)
    np.testing.assert_allclose(out.copy_to_host(), reference.ops.delta_propagate(D, W, Zp, Ap, activations.SIGMOID),
                               **tolerance(dtype))
    G = cuda.device_array(K * N + N, dtype)                  # dW, then db
    products.weight_gradient(cuda.to_device(X), cuda.to_device(D), G, lambda n, s: cuda.device_array(s, dtype),
                              tile=16)
    dWr, dbr = reference.ops.weight_gradient(X, D)
    np.testing.assert_allclose(G.copy_to_host()[:K * N].reshape(K, N), dWr, **tolerance(dtype))
    np.testing.assert_allclose(G.copy_to_host()[K * N:], dbr, **tolerance(dtype))


def test_weight_gradient_with_the_batch_split_into_chunks(monkeypatch, dtype):
    monkeypatch.setattr(products, "ROWS_PER_SPLIT", products.TILE)
    A, D = normal(13, 3, dtype=dtype), normal(13, 5, dtype=dtype)
    assert products.batch_splits(13, 2)[0] > 1
    dW, db = fb.kernels.weight_gradient(A, D, backend="cuda")
    dWr, dbr = reference.ops.weight_gradient(A, D)
    np.testing.assert_allclose(dW, dWr, **tolerance(dtype))
    np.testing.assert_allclose(db, dbr, **tolerance(dtype))


@pytest.mark.parametrize("loss", losses.NAMES)
@pytest.mark.parametrize("reduction", losses.REDUCTIONS)
def test_every_loss_and_reduction(loss, reduction, dtype):
    out = normal(7, 3, dtype=dtype, scale=3.0)
    code, red = losses.code(loss), losses.reduction_code(reduction)
    if loss == "cross_entropy":
        y = rng.integers(0, 3, size=7).astype(np.intp)
    elif loss == "bce":
        y = rng.uniform(size=(7, 3)).astype(dtype)
    else:
        y = normal(7, 3, dtype=dtype)
    value, grad = cuda_backend.ops.loss_and_output_grad(cuda.to_device(out), cuda.to_device(y), code, red)
    value_r, grad_r = reference.ops.loss_and_output_grad(out, y, code, red)
    assert isinstance(value, float)
    assert value == pytest.approx(value_r, **{"rel": tolerance(dtype)["rtol"]})
    np.testing.assert_allclose(grad.copy_to_host(), grad_r, **tolerance(dtype))


# ---- networks: fused path, tiled path, reference ----

def make_pair(sizes, act="tanh", loss="mse", reduction="mean", dtype=np.float64, out_act="identity"):
    kw = dict(activation=act, output_activation=out_act, loss=loss, reduction=reduction, dtype=dtype, seed=3)
    return fb.MLP(sizes, backend="cuda", **kw), fb.MLP(sizes, backend="numpy", **kw)


def targets(loss, batch, n_out):
    if loss == "cross_entropy":
        return rng.integers(0, n_out, size=batch)
    if loss == "bce":
        return rng.uniform(size=(batch, n_out))
    return rng.normal(size=(batch, n_out))


NETWORK_CASES = [("fused", "tanh", "mse", "identity"), ("fused", "relu", "cross_entropy", "identity"),
                 ("fused", "gelu", "bce", "identity"), ("fused", "silu", "mse", "sigmoid"),
                 ("fused", "elu", "mse", "softplus"), ("fused", "leaky_relu", "bce", "tanh"),
                 ("tiled", "softplus", "cross_entropy", "identity"), ("tiled", "sigmoid", "bce", "silu")]


@pytest.mark.parametrize("path,act,loss,out_act", NETWORK_CASES)
def test_loss_and_grad_fused_and_tiled_match_the_reference(monkeypatch, path, act, loss, out_act, dtype):
    monkeypatch.setattr(cuda_backend.ops, "fused", path == "fused")
    net, ref = make_pair([3, 5, 2, 3], act, loss, "mean", dtype, out_act)
    X, y = rng.normal(size=(9, 3)), targets(loss, 9, 3)
    L, dW, db = net.loss_and_grad(X, y)
    Lr, dWr, dbr = ref.loss_and_grad(X, y)
    assert L == pytest.approx(Lr, rel=tolerance(dtype)["rtol"])
    for g, gr in zip(dW + db, dWr + dbr):
        np.testing.assert_allclose(g, gr, **tolerance(dtype))
    np.testing.assert_allclose(net.forward(X), ref.forward(X), **tolerance(dtype))
    assert net.loss_value(X, y) == pytest.approx(Lr, rel=tolerance(dtype)["rtol"])


def test_an_unknown_activation_code_poisons_the_output():
    """A device function cannot raise: its last branch returns NaN (the host maps names to codes)."""
    from fastbp._kernels.cuda.activations import activation_backward
    Z = cuda.to_device(np.ones((2, 3)))
    out = cuda.device_array((2, 3))
    activation_backward(Z, Z, Z, len(activations.TABLE), out)
    assert np.isnan(out.copy_to_host()).all()


def test_the_path_is_chosen_by_width():
    narrow, _ = make_pair([3, 128, 2])
    wide, _ = make_pair([3, 129, 2])
    assert cuda_backend.ops.uses_fused(narrow.arch) and not cuda_backend.ops.uses_fused(wide.arch)


def test_fused_path_with_more_rows_than_one_block_and_a_wide_layer(monkeypatch):
    """Batch 37 spans blocks of 16/32 rows with a ragged last block; a layer wider than the
    block's thread count makes threads loop over columns."""
    monkeypatch.setattr(cuda_backend.ops, "fused", True)
    net, ref = make_pair([2, 11, 1], "sigmoid", "mse", "sum")
    X, y = rng.normal(size=(37, 2)), rng.normal(size=(37, 1))
    L, dW, db = net.loss_and_grad(X, y)
    Lr, dWr, dbr = ref.loss_and_grad(X, y)
    assert L == pytest.approx(Lr, rel=1e-10)
    for g, gr in zip(dW + db, dWr + dbr):
        np.testing.assert_allclose(g, gr, **tolerance(np.float64))


@pytest.mark.parametrize("make_opt", [lambda: fb.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                                      lambda: fb.Adam(0.05, weight_decay=0.01)], ids=["sgd_momentum", "adam"])
def test_train_steps_match_the_reference(make_opt, dtype):
    net, ref = make_pair([4, 6, 2], "tanh", "mse", "mean", dtype)
    opt, opt_r = make_opt(), make_opt()
    X, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    for _ in range(3):
        assert net.train_step(X, y, opt) == pytest.approx(ref.train_step(X, y, opt_r), rel=tolerance(dtype)["rtol"])
    np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), **tolerance(dtype))
    for name, value in opt.checkpoint_arrays().items():
        np.testing.assert_allclose(value, opt_r.checkpoint_arrays()[name], **tolerance(dtype))


def test_fit_on_the_device_matches_the_reference():
    net, ref = make_pair([3, 4, 2], "tanh", "mse", "mean")
    X, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    h = net.fit(X, y, epochs=1, batch_size=4, optimizer=fb.SGD(0.1, momentum=0.5), seed=1)
    hr = ref.fit(X, y, epochs=1, batch_size=4, optimizer=fb.SGD(0.1, momentum=0.5), seed=1)
    assert h["loss"][0] == pytest.approx(hr["loss"][0], rel=1e-10)
    np.testing.assert_allclose(net.get_flat_params(), ref.get_flat_params(), rtol=1e-10)


def test_dataset_batches_stay_on_the_device_and_hold_the_right_rows():
    X, y = rng.normal(size=(7, 2)), rng.integers(0, 3, size=7).astype(np.intp)
    data = cuda_backend.ops.dataset(X, y)
    order = rng.permutation(7)
    for batches, rows in ((data.batches(3), [slice(0, 3), slice(3, 6), slice(6, 7)]),
                          (data.batches(3, order), [order[0:3], order[3:6], order[6:7]])):
        for (Xb, yb, sw), r in zip(batches, rows):
            assert sw is None          # a batch is valid until the next is taken
            assert cuda_backend.is_device_array(Xb)
            np.testing.assert_array_equal(Xb.copy_to_host(), X[r])
            np.testing.assert_array_equal(yb.copy_to_host(), y[r])


def test_non_finite_step_raises_and_leaves_everything_unchanged():
    net, _ = make_pair([2, 3, 1], act="identity")
    opt = fb.Adam(0.1)
    net.train_step(np.ones((2, 2)), np.ones((2, 1)), opt)
    before = net.get_flat_params(), [a.copy() for a in opt.checkpoint_arrays().values()]
    with pytest.raises(FloatingPointError):
        net.train_step(np.full((2, 2), 1e300), np.ones((2, 1)), opt)       # overflows to inf
    assert net.get_flat_params().tobytes() == before[0].tobytes()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(opt.checkpoint_arrays().values(), before[1]))
    assert opt.step_count == 1


def test_weights_are_host_copies():
    net, _ = make_pair([2, 3, 1])
    W = net.weights[0]
    assert isinstance(W, np.ndarray) and W.shape == (2, 3)
    W[...] = 7.0
    assert not np.any(net.weights[0] == 7.0)
    assert cuda_backend.is_device_array(net.flat_params)


# ---- interop: device arrays in, device arrays out, no copies; the same checks ----

def test_device_arrays_in_give_device_arrays_out():
    X, W, b = normal(4, 3), normal(3, 2), normal(2)
    Z, A = fb.kernels.linear_forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b), "relu", backend="cuda")
    assert cuda_backend.is_device_array(Z) and cuda_backend.is_device_array(A)
    Zr, Ar = reference.ops.linear_forward(X, W, b, activations.RELU)
    np.testing.assert_allclose(Z.copy_to_host(), Zr, rtol=1e-10)
    dW, db = fb.kernels.weight_gradient(cuda.to_device(X), A, backend="cuda")
    np.testing.assert_allclose(dW.copy_to_host(), X.T @ Ar, rtol=1e-10)


def test_a_strided_device_view_gives_the_same_numbers_and_is_not_written():
    big = normal(6, 8)
    d_big = cuda.to_device(big)
    view = d_big[::2, 1::3]                       # (3, 3), not contiguous
    W, b = normal(3, 2), normal(2)
    Z, _ = fb.kernels.linear_forward(view, cuda.to_device(W), cuda.to_device(b), "identity", backend="cuda")
    np.testing.assert_allclose(Z.copy_to_host(), big[::2, 1::3] @ W + b, rtol=1e-10)
    np.testing.assert_array_equal(d_big.copy_to_host(), big)


def test_device_inputs_are_checked_like_host_ones():
    W, b = cuda.to_device(normal(3, 2)), cuda.to_device(normal(2))
    bad = normal(4, 3)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        fb.kernels.linear_forward(cuda.to_device(bad), W, b, "relu", backend="cuda")
    with pytest.raises(TypeError, match="X must be float32 or float64"):
        fb.kernels.linear_forward(cuda.to_device(np.ones((4, 3), np.int64)), W, b, "relu", backend="cuda")
    with pytest.raises(TypeError, match="W is float64 but"):
        fb.kernels.linear_forward(cuda.to_device(normal(4, 3, dtype=np.float32)), W, b, "relu", backend="cuda")
    with pytest.raises(ValueError, match="W must have shape"):
        fb.kernels.linear_forward(cuda.to_device(normal(4, 5)), W, b, "relu", backend="cuda")
    assert cuda_backend.ops.all_finite(cuda.to_device(normal(5)))
    assert not cuda_backend.ops.all_finite(cuda.to_device(np.array([1.0, np.inf])))


# ---- availability ----

def _probe(code, env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_without_numba_cuda_the_module_imports_and_says_why():
    code = ("import sys; sys.modules['numba.cuda'] = None\n"
            "import fastbp._kernels.cuda.ops as c; ok, why = c.available(); print(ok); print(why)")
    out = _probe(code, dict(os.environ))
    assert out.returncode == 0, out.stderr
    ok, why = out.stdout.splitlines()[:2]
    assert ok == "False" and "numba-cuda" in why


def test_without_gpu_or_simulator_the_reason_names_the_simulator():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = _probe("import fastbp._kernels.cuda.ops as c; ok, why = c.available(); print(ok); print(why)", env)
    assert out.returncode == 0, out.stderr
    ok, why = out.stdout.splitlines()[:2]
    assert ok == "True" or "NUMBA_ENABLE_CUDASIM=1" in why     # True only on a machine with a GPU


# ---- real sizes: a GPU only (the simulator, at about 0.2 ms per thread, would take hours) ----

real_sizes = pytest.mark.skipif(CUDA_SIMULATED, reason="real sizes need a GPU: the simulator runs ~0.2 ms per thread")
REAL_TOLERANCE = {np.float32: 1e-4, np.float64: 1e-11}     # ||got - ref|| / ||ref|| against float64


def relative_error(got, ref):
    return float(np.linalg.norm(np.asarray(got, np.float64) - ref) / np.linalg.norm(ref))


def poisoned(shape, dtype):
    """A device array of NaNs: an element a kernel leaves unwritten fails the comparison."""
    return cuda.to_device(np.full(shape, np.nan, dtype))


@real_sizes
@pytest.mark.parametrize("M,K,N", [(4096, 1024, 1024), (1000, 777, 513), (65536, 64, 64)],
                         ids=["wide", "ragged", "long-batch-split"])
def test_gemm_kernels_at_real_sizes(M, K, N, dtype):
    tol = REAL_TOLERANCE[dtype]
    X, W, b = normal(M, K, dtype=dtype), normal(K, N, dtype=dtype, scale=K ** -0.5), normal(N, dtype=dtype)
    X64, W64 = X.astype(np.float64), W.astype(np.float64)
    Z, A = poisoned((M, N), dtype), poisoned((M, N), dtype)
    products.linear_forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b), activations.RELU, Z, A)
    Zr = X64 @ W64 + b
    assert relative_error(Z.copy_to_host(), Zr) < tol
    assert relative_error(A.copy_to_host(), np.maximum(Zr, 0)) < tol
    D, Ap = normal(M, N, dtype=dtype), np.tanh(normal(M, K, dtype=dtype))
    out = poisoned((M, K), dtype)
    products.delta_propagate(cuda.to_device(D), cuda.to_device(W), cuda.to_device(Ap), cuda.to_device(Ap),
                             activations.TANH, out)
    Ap64 = Ap.astype(np.float64)
    assert relative_error(out.copy_to_host(), (D.astype(np.float64) @ W64.T) * (1 - Ap64 * Ap64)) < tol
    G = poisoned(K * N + N, dtype)                        # dW, then db
    products.weight_gradient(cuda.to_device(X), cuda.to_device(D), G, lambda n, s: poisoned(s, dtype))
    assert relative_error(G.copy_to_host()[:K * N].reshape(K, N), X64.T @ D.astype(np.float64)) < tol
    assert relative_error(G.copy_to_host()[K * N:], D.astype(np.float64).sum(0)) < tol


@real_sizes
@pytest.mark.parametrize("sizes,batch,act,loss", [
    ((64, 64, 64, 64, 64, 1), 65536, "relu", "mse"),               # the small benchmark net: fused
    ((1024, 1024, 1024, 1024), 4096, "relu", "mse"),               # the wide benchmark net: tiled
    ((100, 128, 128, 10), 10001, "tanh", "cross_entropy"),         # the widest fused layer, a ragged last block
], ids=["small-fused", "wide-tiled", "widest-fused"])
def test_networks_at_real_sizes_match_the_reference(sizes, batch, act, loss, dtype):
    tol = REAL_TOLERANCE[dtype]
    net = fb.MLP(sizes, activation=act, loss=loss, dtype=dtype, backend="cuda", seed=0)
    ref = fb.MLP(sizes, activation=act, loss=loss, dtype=np.float64, backend="numpy", seed=0)
    ref.set_flat_params(net.get_flat_params().astype(np.float64))
    assert cuda_backend.ops.uses_fused(net.arch) == (max(sizes) <= 128)
    X, y = normal(batch, sizes[0], dtype=dtype), targets(loss, batch, sizes[-1])
    L, dW, db = net.loss_and_grad(X, y)
    Lr, dWr, dbr = ref.loss_and_grad(X.astype(np.float64), y)
    assert abs(L - Lr) <= tol * abs(Lr)
    for g, gr in zip(dW + db, dWr + dbr):
        assert relative_error(g, gr) < tol
    opt, opt_r = fb.SGD(1e-2, momentum=0.9), fb.SGD(1e-2, momentum=0.9)     # not Adam: it amplifies rounding in tiny gradients
    for _ in range(3):
        net.train_step(X, y, opt)
        ref.train_step(X.astype(np.float64), y, opt_r)
    assert relative_error(net.get_flat_params(), ref.get_flat_params()) < tol
