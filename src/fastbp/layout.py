"""The network's shape and its one-flat-buffer parameter layout.

Every per-layer array (W[l], b[l], and the same for gradients and optimizer state) is a
view into one contiguous buffer: the order is W[0], b[0], W[1], b[1], ... with W[l]
row-major (n_in, n_out). One buffer is what an allreduce, a checkpoint and a fused
update each want.
"""
from dataclasses import dataclass

import numpy as np

from . import activations, losses, validation


@dataclass(frozen=True)
class Architecture:
    sizes: tuple            # (n_0, n_1, ..., n_L)
    activations: tuple      # activation code of each layer 1..L (the last is the output's)
    loss: int               # losses.MSE / CROSS_ENTROPY / BCE
    reduction: int          # losses.MEAN / SUM
    dtype: np.dtype

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    @property
    def shapes(self):
        """(n_in, n_out) of each layer."""
        return [(self.sizes[l], self.sizes[l + 1]) for l in range(self.n_layers)]

    @property
    def offsets(self):
        """(start of W[l], start of b[l]) in the flat buffer, per layer."""
        out, at = [], 0
        for n_in, n_out in self.shapes:
            out.append((at, at + n_in * n_out))
            at += n_in * n_out + n_out
        return out

    @property
    def n_params(self):
        return sum(n_in * n_out + n_out for n_in, n_out in self.shapes)


def architecture(layer_sizes, activation="relu", output_activation="identity", loss="mse",
                 reduction="mean", dtype=np.float32):
    """MLP's description (its keyword arguments) -> the checked Architecture; ValueError or
    TypeError naming the argument otherwise."""
    sizes = validation.layer_sizes(layer_sizes)
    hidden = activations.code(activation, "activation")
    output = activations.code(output_activation, "output_activation")
    return Architecture(sizes=sizes, activations=(hidden,) * (len(sizes) - 2) + (output,),
                        loss=losses.code(loss), reduction=losses.reduction_code(reduction),
                        dtype=validation.float_dtype(dtype))


class FlatBuffer:
    """One contiguous 1-D array and the per-layer views W[l] (n_in, n_out), b[l] (n_out,) into it.

    Works for any array type that slices and reshapes without copying (NumPy arrays,
    Numba device arrays).
    """

    def __init__(self, flat, arch):
        self.flat = flat
        self.W, self.b = [], []
        for (n_in, n_out), (w_at, b_at) in zip(arch.shapes, arch.offsets):
            self.W.append(flat[w_at:b_at].reshape(n_in, n_out))
            self.b.append(flat[b_at:b_at + n_out])


@dataclass
class NetState:
    """What a backend needs to run a network: its shape, parameters, gradients, a scratch
    dict where the backend keeps workspaces it allocates once (keyed as it likes), and the
    L2 penalty on the weights (`penalty_scale`), read by every pass."""
    arch: Architecture
    params: FlatBuffer
    grads: FlatBuffer
    scratch: dict
    l2: float = 0.0


def penalty_scale(l2, reduction, rows, weight_sum=None):
    """The factor c of the L2 term in a batch's loss, 0.5 * c * sum(W**2), and its gradient
    c * W: l2 / n for the mean (n: the batch's rows, or its total sample weight; all-zero
    weights count as 1, as the data term's mean does), l2 for the sum."""
    if reduction == losses.SUM:
        return l2
    n = rows if weight_sum is None else (weight_sum or 1.0)
    return l2 / n
