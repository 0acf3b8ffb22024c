"""fastbp against PyTorch autograd on the same networks (torch is optional: skipped without it).

Random architectures come from a seeded generator: depth 1-5, widths 1-300, batch 1-129,
every activation as the hidden and as the output activation, every loss and reduction.
float64 must agree to 1e-9 relative; float32 (checked against float64 autograd on the same,
float32-representable, numbers) to rounding.

Relative error is measured against the scale of the tensor (|a - b| <= rtol * (|b| + max|b|)):
entries that are sums with cancellation (a weight gradient summed over the batch, a derivative
crossing zero) have no meaningful elementwise relative error.
"""
import itertools
import math

import numpy as np
import pytest

import fastbp as fb
from fastbp import activations as act_codes
from fastbp._kernels import reference
from conftest import FULL

ACTIVATIONS = act_codes.NAMES
LOSSES = ("mse", "cross_entropy", "bce", "poisson")
REDUCTIONS = ("mean", "sum")
RTOL = {np.float64: 1e-9, np.float32: 2e-5}


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed; the autograd comparison needs it "
                                                "(pip install torch==2.13.0, as .ci/run does)")
    # one thread: these tensors are tiny, and torch's thread pool, spinning on a busy machine
    # (or beside the other test workers), made this file several times slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def torch_activation(torch, name):
    F = torch.nn.functional
    return {
        "identity": lambda x: x,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": lambda x: F.leaky_relu(x, negative_slope=0.01),
        "elu": lambda x: F.elu(x, alpha=1.0),
        # torch's softplus returns x itself above threshold=20, an error of up to exp(-20) = 2e-9
        # (see test_softplus_differs_from_torch_only_by_its_threshold); at 40 that shortcut
        # is below float64 rounding, so the networks below compare the exact function.
        "softplus": lambda x: F.softplus(x, beta=1.0, threshold=40.0),
        "gelu": lambda x: F.gelu(x, approximate="tanh"),
        "silu": F.silu,
        "selu": F.selu,
        "mish": F.mish,
    }[name]


def torch_loss(torch, out, y, loss, reduction):
    F = torch.nn.functional
    if loss == "mse":
        return F.mse_loss(out, y, reduction=reduction)
    if loss == "cross_entropy":
        return F.cross_entropy(out, y, reduction=reduction)
    if loss == "poisson":       # half the Poisson deviance: torch's NLL on log-rates plus y log y - y
        constant = torch.xlogy(y, y) - y
        nll = F.poisson_nll_loss(out, y, log_input=True, full=False, reduction="none") + constant
        return nll.mean() if reduction == "mean" else nll.sum()
    return F.binary_cross_entropy_with_logits(out, y, reduction=reduction)


def torch_targets(torch, y, loss):
    return torch.tensor(y, dtype=torch.long if loss == "cross_entropy" else torch.float64)


class TorchMLP:
    """The same network in torch, float64, parameters as leaf tensors."""

    def __init__(self, torch, net):
        self.torch = torch
        self.W = [torch.tensor(np.asarray(w, np.float64), requires_grad=True) for w in net.weights]
        self.b = [torch.tensor(np.asarray(b, np.float64), requires_grad=True) for b in net.biases]
        n = len(self.W)
        self.acts = [torch_activation(torch, net.activation)] * (n - 1) + [torch_activation(torch, net.output_activation)]
        self.loss, self.reduction = net.loss, net.reduction

    @property
    def params(self):
        return [p for pair in zip(self.W, self.b) for p in pair]

    def forward(self, X):
        A = self.torch.tensor(np.asarray(X, np.float64))
        for W, b, f in zip(self.W, self.b, self.acts):
            A = f(A @ W + b)
        return A

    def loss_and_grad(self, X, y):
        for p in self.params:
            p.grad = None
        loss = torch_loss(self.torch, self.forward(X), torch_targets(self.torch, y, self.loss), self.loss, self.reduction)
        loss.backward()
        return loss.item(), [W.grad.numpy() for W in self.W], [b.grad.numpy() for b in self.b]


def assert_close(actual, expected, rtol, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    err = np.abs(actual - expected)
    bound = rtol * (np.abs(expected) + scale)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else ()
    assert np.all(err <= bound), (f"{what}: |fastbp - torch| = {err[worst]:.3e} at {worst} "
                                  f"(fastbp {actual[worst]!r}, torch {expected[worst]!r}, scale {scale:.3e}, rtol {rtol:g})")


# ---- random networks ----

def random_width(rng):
    """Log-uniform on 1..300: mostly small layers (fast), some wide ones."""
    return int(min(300, math.floor(math.exp(rng.uniform(0, math.log(301))))))


def random_case(case_id, hidden, output, loss, reduction):
    """A seeded network + batch for one combination; depth cycles 1..5 over the cases."""
    rng = np.random.default_rng(1000 + case_id)
    depth = 1 + case_id % 5
    sizes = [random_width(rng) for _ in range(depth + 1)]
    if loss == "cross_entropy" and sizes[-1] == 1 and rng.uniform() < 0.8:
        sizes[-1] = int(rng.integers(2, 12))      # a one-class softmax is legal but dull; keep it rare
    batch = int(rng.integers(1, 130))
    batch = {0: 1, 5: 129}.get(case_id % 11, batch)      # the extremes, for sure
    X = rng.normal(size=(batch, sizes[0])) * rng.uniform(0.2, 3.0)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], size=batch)
    elif loss == "bce":
        y = rng.uniform(size=(batch, sizes[-1]))
        hard = rng.uniform(size=y.shape) < 0.5          # a mix of hard 0/1 and soft targets
        y[hard] = np.round(y[hard])
    elif loss == "poisson":
        y = rng.poisson(2.0, size=(batch, sizes[-1])).astype(np.float64)
    else:
        y = rng.normal(size=(batch, sizes[-1]))
    seed = int(rng.integers(2**31))
    bias_scale = rng.uniform(0.0, 0.5)
    return dict(sizes=sizes, hidden=hidden, output=output, loss=loss, reduction=reduction,
                X=X, y=y, seed=seed, bias_scale=bias_scale)


def build_cases():
    """Every activation as hidden (x every loss x reduction), and every one as output."""
    combos = list(itertools.product(ACTIVATIONS, LOSSES, REDUCTIONS))
    cases = []
    for i, (hidden, loss, reduction) in enumerate(combos):
        output = ACTIVATIONS[(i * 5) % len(ACTIVATIONS)]    # walks every output (5 is prime to the count)
        cases.append(random_case(i, hidden, output, loss, reduction))
    if FULL:
        extra = np.random.default_rng(7)
        for i in range(len(combos), len(combos) + 400):
            cases.append(random_case(i, str(extra.choice(ACTIVATIONS)), str(extra.choice(ACTIVATIONS)),
                                     str(extra.choice(LOSSES)), str(extra.choice(REDUCTIONS))))
    return cases


CASES = build_cases()


def case_id(c):
    return f"{'-'.join(map(str, c['sizes']))}_{c['hidden']}_{c['output']}_{c['loss']}_{c['reduction']}_b{len(c['X'])}"


def make_net(case, dtype, backend):
    net = fb.MLP(case["sizes"], activation=case["hidden"], output_activation=case["output"],
                 loss=case["loss"], reduction=case["reduction"], dtype=dtype, backend=backend, seed=case["seed"])
    rng = np.random.default_rng(case["seed"])
    net.set_params(net.weights, [case["bias_scale"] * rng.normal(size=b.shape) for b in net.biases])
    return net


def test_every_combination_is_covered():
    seen = {(c["hidden"], c["loss"], c["reduction"]) for c in CASES}
    assert seen >= set(itertools.product(ACTIVATIONS, LOSSES, REDUCTIONS))
    assert {c["output"] for c in CASES} == set(ACTIVATIONS)
    assert {len(c["sizes"]) - 1 for c in CASES} == {1, 2, 3, 4, 5}
    widths = [w for c in CASES for w in c["sizes"]]
    batches = [len(c["X"]) for c in CASES]
    assert min(widths) == 1 and max(widths) > 250 and min(batches) == 1 and max(batches) == 129


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_loss_and_gradients_match_autograd(torch, case, dtype, cpu_backend):
    net = make_net(case, dtype, cpu_backend)
    X = case["X"].astype(dtype)              # float32: torch sees the very same (rounded) numbers
    y = case["y"] if case["loss"] == "cross_entropy" else case["y"].astype(dtype)
    twin = TorchMLP(torch, net)
    rtol = RTOL[dtype]

    t_loss, t_dW, t_db = twin.loss_and_grad(X, y)
    loss, dW, db = net.loss_and_grad(X, y)
    assert isinstance(loss, float)
    assert loss == pytest.approx(t_loss, rel=rtol, abs=rtol * 1e-3), "loss"
    assert_close(net.forward(X), twin.forward(X).detach().numpy(), rtol, "forward")
    for l in range(len(dW)):
        assert dW[l].dtype == dtype and db[l].dtype == dtype
        assert_close(dW[l], t_dW[l], rtol, f"dW[{l}]")
        assert_close(db[l], t_db[l], rtol, f"db[{l}]")


# ---- activations and losses, directly ----

def test_activation_functions_and_derivatives_match_torch(torch):
    z = np.concatenate([np.linspace(-30, 30, 2401), [0.0, -1e-300, 1e-300, 700.0, -700.0]])
    for name in ACTIVATIONS:
        code = act_codes.code(name)
        tz = torch.tensor(z, requires_grad=True)
        out = torch_activation(torch, name)(tz)
        out.sum().backward()
        A = reference.FUNCTIONS[code](z)
        assert_close(A, out.detach().numpy(), 1e-14, f"{name}(z)")
        assert_close(reference.DERIVATIVES[code](z, A), tz.grad.numpy(), 1e-13, f"{name}'(z)")


def test_kinks_follow_torch(torch):
    """At z = 0 exactly: relu' = 0, leaky_relu' = 0.01, elu' = 1 (torch's choices)."""
    for name, slope in (("relu", 0.0), ("leaky_relu", 0.01), ("elu", 1.0)):
        z = np.zeros(3)
        tz = torch.tensor(z, requires_grad=True)
        torch_activation(torch, name)(tz).sum().backward()
        code = act_codes.code(name)
        np.testing.assert_array_equal(reference.DERIVATIVES[code](z, reference.FUNCTIONS[code](z)), tz.grad.numpy())
        assert tz.grad[0].item() == slope


def test_softplus_differs_from_torch_only_by_its_threshold(torch):
    """torch.nn.functional.softplus(z) returns z (derivative 1) for z > threshold = 20, a
    shortcut that is off by log1p(exp(-z)) <= exp(-20) ~ 2.1e-9. fastbp computes the exact
    log(1 + exp(z)) everywhere (derivative sigmoid(z) < 1). Below the threshold, and with the
    threshold raised out of float64's reach, the two agree to rounding."""
    F = torch.nn.functional
    code = act_codes.SOFTPLUS
    z = np.array([20.001, 20.5, 25.0, 30.0])
    A, D = reference.FUNCTIONS[code](z), reference.DERIVATIVES[code](z, None)
    np.testing.assert_allclose(A, z + np.log1p(np.exp(-z)), rtol=1e-15)
    np.testing.assert_allclose(D, 1 / (1 + np.exp(-z)), rtol=1e-15)
    assert np.all(D < 1)
    tz = torch.tensor(z, requires_grad=True)
    t_out = F.softplus(tz)                   # the default threshold=20
    t_out.sum().backward()
    np.testing.assert_array_equal(t_out.detach().numpy(), z)
    np.testing.assert_array_equal(tz.grad.numpy(), np.ones_like(z))
    assert np.all(np.abs(A - z) <= math.exp(-20)) and np.all(np.abs(D - 1) <= math.exp(-20))
    below = np.linspace(-30, 19.9, 500)
    tb = torch.tensor(below, requires_grad=True)
    F.softplus(tb).sum().backward()
    np.testing.assert_allclose(reference.DERIVATIVES[code](below, None), tb.grad.numpy(), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", LOSSES)
def test_losses_match_torch_functional(torch, cpu_backend, loss, reduction):
    """The backend's loss kernel against torch.nn.functional, including extreme logits."""
    from fastbp._kernels import get_ops
    from fastbp import losses
    ops = get_ops(cpu_backend)
    rng = np.random.default_rng(3)
    out = rng.normal(size=(37, 5)) * 4
    out[0] = [80.0, -80.0, 0.0, 700.0, -700.0]          # saturated logits stay finite and exact
    if loss == "cross_entropy":
        y = rng.integers(0, 5, size=37).astype(np.intp)
    elif loss == "bce":
        y = rng.uniform(size=out.shape)
        y[:3] = np.round(y[:3])
    elif loss == "poisson":
        out[0] = [40.0, -80.0, 0.0, 30.0, -700.0]       # large and tiny rates (exp(700) would overflow)
        y = rng.poisson(3.0, size=out.shape).astype(np.float64)
    else:
        y = rng.normal(size=out.shape)
    value, grad = ops.loss_and_output_grad(out, y, losses.code(loss), losses.reduction_code(reduction))
    t_out = torch.tensor(out, requires_grad=True)
    t_loss = torch_loss(torch, t_out, torch_targets(torch, y, loss), loss, reduction)
    t_loss.backward()
    assert value == pytest.approx(t_loss.item(), rel=1e-12)
    assert_close(grad, t_out.grad.numpy(), 1e-12, f"d{loss}/d out")


# ---- optimizers against torch.optim over several steps ----

OPTIMIZERS = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd", dict(lr=0.05, momentum=0.5, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("adam", dict(lr=0.01)),
    ("adam", dict(lr=0.005, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
]


@pytest.mark.parametrize("kind,hyper", OPTIMIZERS, ids=[f"{k}-{'-'.join(map(str, h.values()))}" for k, h in OPTIMIZERS])
def test_train_step_matches_torch_optim(torch, cpu_backend, kind, hyper):
    rng = np.random.default_rng(11)
    net = fb.MLP([6, 9, 7, 3], activation="tanh", output_activation="identity", loss="cross_entropy",
                 dtype=np.float64, backend=cpu_backend, seed=5)
    net.set_params(net.weights, [0.1 * rng.normal(size=b.shape) for b in net.biases])
    twin = TorchMLP(torch, net)
    if kind == "sgd":
        opt = fb.SGD(**hyper)
        t_opt = torch.optim.SGD(twin.params, dampening=0.0, **hyper)
    else:
        opt = fb.Adam(**hyper)
        t_opt = torch.optim.Adam(twin.params, **hyper)
    steps = 20 if FULL else 8
    for step in range(steps):
        X = rng.normal(size=(int(rng.integers(1, 40)), 6))
        y = rng.integers(0, 3, size=len(X))
        t_loss, _, _ = twin.loss_and_grad(X, y)
        t_opt.step()
        loss = net.train_step(X, y, opt)
        assert loss == pytest.approx(t_loss, rel=1e-9), f"loss at step {step}"
        for l in range(3):
            assert_close(net.weights[l], twin.W[l].detach().numpy(), 1e-9, f"W[{l}] after step {step}")
            assert_close(net.biases[l], twin.b[l].detach().numpy(), 1e-9, f"b[{l}] after step {step}")
    assert opt.step_count == steps
