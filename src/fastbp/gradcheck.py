"""Finite-difference check of backprop: central differences in float64.

An entry passes when |backprop - finite_difference| <= atol + rtol * |finite_difference|,
the rule and defaults of torch.autograd.gradcheck.
"""
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from .network import MLP


@dataclass
class TensorError:
    layer: int           # 0-based layer index
    param: str           # "W" or "b"
    checked: int         # entries compared
    size: int            # entries in the tensor
    max_abs: float       # max |backprop - finite difference|
    max_rel: float       # max of that over max(|fd|, |bp|), entries where either is nonzero
    passed: bool


@dataclass
class GradcheckReport:
    """What `gradcheck` found: one TensorError per weight and bias tensor, and the
    settings used; `str(report)` is a table."""
    eps: float
    atol: float
    rtol: float
    backend: str
    tensors: list = field(default_factory=list)

    @property
    def passed(self):
        return all(t.passed for t in self.tensors)

    @property
    def max_abs(self):
        return max(t.max_abs for t in self.tensors)

    @property
    def max_rel(self):
        return max(t.max_rel for t in self.tensors)

    def __str__(self):
        lines = [f"gradcheck on {self.backend!r} (eps={self.eps:g}, atol={self.atol:g}, rtol={self.rtol:g}): "
                 f"{'passed' if self.passed else 'FAILED'}",
                 f"  {'tensor':<8}{'checked':>12}{'max abs err':>14}{'max rel err':>14}  ok"]
        for t in self.tensors:
            name = f"{t.param}[{t.layer}]"
            lines.append(f"  {name:<8}{t.checked:>6}/{t.size:<5}{t.max_abs:>14.3e}{t.max_rel:>14.3e}  "
                         f"{'yes' if t.passed else 'NO'}")
        return "\n".join(lines)


def gradcheck(net, X, y, eps=1e-6, atol=1e-5, rtol=1e-3, max_checks_per_tensor=256, seed=0, sample_weight=None):
    """Compare net's backprop gradients with central finite differences, in float64.

    A float64 copy of `net` on the same backend is checked, so a float32 network is
    checked for its mathematics, not its rounding. An entry passes when
    |backprop - finite difference| <= atol + rtol * |finite difference|.

    Args:
        net: the `MLP` to check (unchanged).
        X: a batch of inputs.
        y: its targets.
        eps: the finite-difference step.
        atol: the absolute tolerance.
        rtol: the relative tolerance.
        max_checks_per_tensor: tensors larger than this are checked on that many entries
            drawn at random (None: all).
        seed: seeds that draw.
        sample_weight: per-row weights of the loss (as in `MLP.loss_value`), or None.

    Returns:
        GradcheckReport: the worst errors per tensor; `.passed` is True when all pass.
    """
    eps = _positive_finite(eps, "eps", allow_zero=False)
    atol, rtol = _positive_finite(atol, "atol"), _positive_finite(rtol, "rtol")
    if max_checks_per_tensor is not None and (isinstance(max_checks_per_tensor, bool) or not isinstance(
            max_checks_per_tensor, numbers.Integral) or max_checks_per_tensor < 1):
        raise ValueError(f"max_checks_per_tensor must be a positive integer or None; got {max_checks_per_tensor!r}")
    probe = MLP(net.layer_sizes, activation=net.activation, output_activation=net.output_activation,
                loss=net.loss, reduction=net.reduction, dtype=np.float64, backend=net.backend, l2=net.l2)
    probe.set_params(net.weights, net.biases)
    _, dW, db = probe.loss_and_grad(X, y, sample_weight)          # also validates X, y and the weights
    flat = probe.flat_params
    rng = np.random.default_rng(seed)
    report = GradcheckReport(eps, atol, rtol, net.backend)
    for l, (w_at, b_at) in enumerate(probe.arch.offsets):
        for param, start, grad in (("W", w_at, dW[l]), ("b", b_at, db[l])):
            grad = grad.ravel()
            picks = np.arange(grad.size)
            if max_checks_per_tensor is not None and grad.size > max_checks_per_tensor:
                picks = np.sort(rng.choice(grad.size, max_checks_per_tensor, replace=False))
            fd = np.array([_central_difference(probe, flat, start + i, X, y, sample_weight, eps) for i in picks])
            bp = grad[picks]
            err = np.abs(bp - fd)
            scale = np.maximum(np.abs(fd), np.abs(bp))
            rel = np.divide(err, scale, out=np.zeros_like(err), where=scale > 0)
            report.tensors.append(TensorError(
                layer=l, param=param, checked=len(picks), size=grad.size,
                max_abs=float(err.max()), max_rel=float(rel.max()),
                passed=bool(np.all(err <= atol + rtol * np.abs(fd)))))
    return report


def _positive_finite(value, name, allow_zero=True):
    """A finite real number > 0 (>= 0 with allow_zero); ValueError/TypeError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0; got {value!r}")
    return float(value)


def _central_difference(net, flat, i, X, y, sample_weight, eps):
    saved = float(flat[i])
    flat[i] = saved + eps
    plus = net.loss_value(X, y, sample_weight)
    flat[i] = saved - eps
    minus = net.loss_value(X, y, sample_weight)
    flat[i] = saved
    return (plus - minus) / (2 * eps)
