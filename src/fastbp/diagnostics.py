"""Gradient-flow diagnostics: per-layer gradient norms, and a warning naming the layer
when its gradient vanishes or explodes (why people learn backprop by hand: to debug this).

The norm of layer l is the Euclidean norm of its weight gradient dW[l] (the bias gradient
is the same signal summed over the batch). `fit(..., grad_norms=True)` records the mean over
an epoch's batches in history["grad_norms"] (one list per epoch, layer 1 first).
"""
import math
import warnings

import numpy as np

from . import activations

VANISHING = 1e-6     # a layer's norm below this fraction of the largest layer's: vanishing
EXPLODING = 1e4      # a layer's norm above this (absolute, or relative to its first epoch): exploding


class GradientFlowWarning(UserWarning):
    """A layer's gradient norm collapsed or exploded during training."""


def layer_names(arch):
    """'layer 1 (64->32, relu)', ... for each layer of an Architecture."""
    return [f"layer {l + 1} ({n_in}->{n_out}, {activations.NAMES[code]})"
            for l, ((n_in, n_out), code) in enumerate(zip(arch.shapes, arch.activations))]


def layer_grad_norms(arch, flat_grads):
    """Per-layer Euclidean norms of dW[l] from a host copy of the flat gradient buffer."""
    flat = np.asarray(flat_grads)
    return np.array([math.sqrt(float(np.dot(flat[w:b], flat[w:b]))) for w, b in arch.offsets])


class GradientFlowMonitor:
    """Accumulates per-layer gradient norms over an epoch; warns once per layer and kind."""

    def __init__(self, arch, vanishing=VANISHING, exploding=EXPLODING):
        self.arch = arch
        self.names = layer_names(arch)
        self.vanishing, self.exploding = vanishing, exploding
        self._sum = np.zeros(arch.n_layers)
        self._count = 0
        self._first = None
        self._warned = set()

    def record(self, flat_grads_host):
        self._sum += layer_grad_norms(self.arch, flat_grads_host)
        self._count += 1

    def end_epoch(self, epoch):
        """-> the epoch's mean norm per layer (a list), after warning about bad ones."""
        norms = self._sum / max(self._count, 1)
        self._sum[:] = 0
        self._count = 0
        if self._first is None:
            self._first = norms.copy()
        for problem in check_gradient_flow(norms, self.names, self._first, self.vanishing, self.exploding):
            key = problem[0]
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(f"epoch {epoch}: {problem[1]}", GradientFlowWarning, stacklevel=4)
        return norms.tolist()


def check_gradient_flow(norms, names, first=None, vanishing=VANISHING, exploding=EXPLODING):
    """-> [((layer, kind), message), ...] for layers whose gradient vanishes or explodes."""
    norms = np.asarray(norms, dtype=np.float64)
    largest = float(norms.max()) if norms.size else 0.0
    problems = []
    for l, (norm, name) in enumerate(zip(norms, names)):
        if not math.isfinite(norm) or norm > exploding or (
                first is not None and first[l] > 0 and norm > exploding * first[l]):
            base = f" ({norm / first[l]:.3g}x its first epoch's)" if first is not None and first[l] > 0 else ""
            problems.append(((l, "exploding"), f"gradient norm of {name} exploded to {norm:.3g}{base}: "
                             "exploding gradients (lower the learning rate, clip, or rescale the inputs)"))
        elif norm == 0 or norm <= vanishing * largest:
            problems.append(((l, "vanishing"), f"gradient norm of {name} collapsed to {norm:.3g} "
                             f"({norm / largest if largest else 0:.3g} of the largest layer's): vanishing gradients "
                             "(dead units or saturated activations)"))
    return problems
