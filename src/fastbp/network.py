"""MLP: the parameters in one flat buffer, and forward / loss_and_grad / train_step.

The mathematics lives in the backend (`fastbp._kernels`); this class checks arguments
once at the boundary, keeps the buffers, and never branches on the backend.
"""
import numpy as np

from . import activations, checkpoint, losses, memory, validation
from ._kernels import get_ops, resolve
from .layout import FlatBuffer, NetState, architecture
from .optim import Optimizer


INITS = ("auto", "sklearn")


def initial_parameters(arch, seed, init="auto"):
    """The starting parameter vector, drawn in float64 and cast (both dtypes start from the
    same values).

    "auto"     He-normal weights for relu-like layers, Glorot-uniform otherwise; zero biases;
               from np.random.default_rng(seed), each layer drawn straight into the flat
               buffer (no per-layer temporary): building a float32 network peaks at 3x its
               parameter memory (the float64 draw and its float32 copy)
    "sklearn"  scikit-learn's MLP: weights and biases uniform in +-sqrt(f / (n_in + n_out)),
               f = 2 when the hidden activation is sigmoid, else 6, every layer; drawn as it
               draws them (np.random.RandomState(seed), layer by layer, weights then biases),
               so that seed s starts where MLPClassifier(random_state=s) starts

    `seed` may also be a np.random.RandomState or Generator, which is then drawn from.
    """
    if init == "sklearn":
        rng = validation.random_state(seed)
        factor = 2.0 if arch.n_layers > 1 and arch.activations[0] == activations.SIGMOID else 6.0
    else:
        rng = validation.random_generator(seed)
    flat = np.zeros(arch.n_params, dtype=np.float64)
    for (n_in, n_out), (w_at, b_at), code in zip(arch.shapes, arch.offsets, arch.activations):
        w = flat[w_at:b_at]
        if init == "sklearn":
            limit = np.sqrt(factor / (n_in + n_out))
            flat[w_at:b_at + n_out] = rng.uniform(-limit, limit, size=n_in * n_out + n_out)
        elif code in activations.RELU_LIKE:          # = rng.normal(0, std), the same numbers
            rng.standard_normal(out=w)
            w *= np.sqrt(2.0 / n_in)
        else:                                        # = rng.uniform(-limit, limit), the same numbers
            limit = np.sqrt(6.0 / (n_in + n_out))
            rng.random(out=w)
            w *= 2 * limit
            w -= limit
    return flat if arch.dtype == flat.dtype else flat.astype(arch.dtype)


_NO_TARGETS = object()     # MLP._inputs called without targets


class MLP:
    """A multilayer perceptron trained by backpropagation.

    The parameters live in one contiguous buffer (`flat_params`); `weights` and `biases`
    are views into it on the CPU backends. Every method checks its arguments once, and a
    rejected call changes nothing.

    Args:
        layer_sizes: `(n_inputs, hidden..., n_outputs)`, each >= 1.
        activation: the hidden layers' activation: identity, sigmoid, tanh, relu,
            leaky_relu, elu, softplus, gelu or silu.
        output_activation: the last layer's activation (same names).
        loss: "mse", "cross_entropy" (logits and integer labels), "bce" (logits and
            targets in [0, 1]) or "poisson" (log-rates and targets >= 0).
        reduction: "mean" or "sum" over the batch, as in torch.nn.functional.
        dtype: float32 or float64.
        backend: "auto" or a name from `fastbp.available_backends()`.
        seed: seeds the initial weights (He-normal for relu-like layers, Glorot-uniform
            otherwise; zero biases). None: fresh entropy.
        init: how the initial weights are drawn: "auto" (as above) or "sklearn"
            (scikit-learn's MLP initialisation; `fastbp.network.initial_parameters`).
        l2: an L2 penalty on the weights (never the biases), part of the loss in every
            pass (loss_value, loss_and_grad, train_step, fit, gradcheck): 0.5 * l2 *
            sum(W**2) is added to the summed loss, and the reduction divides it as it
            divides the data term. With reduction="mean" a batch's loss is
            (sum_i w_i l_i + 0.5 * l2 * sum(W**2)) / n, n = the batch's rows or its total
            sample weight (scikit-learn's alpha convention); with "sum" it is
            sum_i w_i l_i + 0.5 * l2 * sum(W**2). The weights' gradient gains l2 * W / n
            (resp. l2 * W). >= 0; settable later (`net.l2 = ...`).

    Example:
        ```python
        net = fb.MLP([4, 32, 1], activation="tanh", loss="bce", seed=0)
        loss = net.train_step(X, y, fb.Adam(lr=1e-2))
        ```
    """

    def __init__(self, layer_sizes, activation="relu", output_activation="identity",
                 loss="mse", reduction="mean", dtype=np.float32, backend="auto", seed=None, init="auto", l2=0.0):
        self.arch = architecture(layer_sizes, activation, output_activation, loss, reduction, dtype)
        if not isinstance(init, str) or init not in INITS:
            raise ValueError(f"unknown init {init!r}; expected one of {list(INITS)}")
        l2 = validation.l2_penalty(l2)
        self.backend = resolve(backend)
        memory.require(memory.network_bytes(self.arch), self._parameters_text())
        self._allocate(initial_parameters(self.arch, seed, init), l2)

    @classmethod
    def _with_parameters(cls, arch, flat, backend, l2=0.0):
        """A network of `arch` holding the checked host vector `flat` (no random start drawn):
        how a checkpoint becomes a network."""
        net = cls.__new__(cls)
        net.arch = arch
        net.backend = resolve(backend)
        net._allocate(flat, validation.l2_penalty(l2))
        return net

    def _allocate(self, host_params, l2):
        self._ops = get_ops(self.backend)
        params = self._ops.from_host(host_params)
        del host_params                  # (a float64 draw is freed before the gradients exist)
        grads = self._ops.zeros(self.arch.n_params, self.arch.dtype)
        self._state = NetState(self.arch, FlatBuffer(params, self.arch), FlatBuffer(grads, self.arch), {}, l2)

    def _parameters_text(self):
        return f"MLP({list(self.arch.sizes)}) {self.arch.dtype.name}: {self.arch.n_params:,} parameters"

    # ---- description ----
    @property
    def layer_sizes(self):
        return self.arch.sizes

    @property
    def activation(self):
        return activations.NAMES[self.arch.activations[0]] if self.arch.n_layers > 1 else "identity"

    @property
    def output_activation(self):
        return activations.NAMES[self.arch.activations[-1]]

    @property
    def loss(self):
        return losses.NAMES[self.arch.loss]

    @property
    def reduction(self):
        return losses.REDUCTIONS[self.arch.reduction]

    @property
    def dtype(self):
        return self.arch.dtype

    @property
    def n_params(self):
        return self.arch.n_params

    @property
    def l2(self):
        """The L2 penalty on the weights (see the class docstring); settable, checked."""
        return self._state.l2

    @l2.setter
    def l2(self, value):
        self._state.l2 = validation.l2_penalty(value)

    def __repr__(self):
        l2 = f", l2={self.l2!r}" if self.l2 else ""
        return (f"MLP({list(self.layer_sizes)}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, loss={self.loss!r}, "
                f"reduction={self.reduction!r}, dtype={self.dtype.name}, backend={self.backend!r}{l2})")

    # ---- parameters ----
    @property
    def weights(self):
        """W[l] of shape (n_in, n_out): views into the parameter buffer on CPU backends,
        host copies on "cuda"."""
        return [self._ops.to_host(W) for W in self._state.params.W]

    @property
    def biases(self):
        """b[l] of shape (n_out,): views on CPU backends, host copies on "cuda"."""
        return [self._ops.to_host(b) for b in self._state.params.b]

    @property
    def flat_params(self):
        """The one contiguous parameter buffer (in the backend's memory)."""
        return self._state.params.flat

    @property
    def flat_grads(self):
        """The one contiguous gradient buffer, as the last loss_and_grad left it. train_step
        also passes through it, but a compiled plain-SGD step updates the weights straight
        from the products and leaves it holding only part of its gradient."""
        return self._state.grads.flat

    def get_flat_params(self):
        """A host copy of the parameter buffer."""
        return np.array(self._ops.to_host(self._state.params.flat), copy=True)

    def set_flat_params(self, flat):
        """Copy a whole parameter vector in (length and values checked)."""
        flat = validation.vector(flat, self.n_params, self.dtype, "flat params")
        self._ops.copy_into(self._state.params.flat, flat)

    def set_params(self, weights, biases):
        """Copy values into the parameter buffer (shapes checked; nothing changes on error)."""
        n = self.arch.n_layers
        weights, biases = validation.sequence_of(weights, n, "weights"), validation.sequence_of(biases, n, "biases")
        flat = np.empty(self.n_params, dtype=self.dtype)
        host = FlatBuffer(flat, self.arch)
        for l, (w, b) in enumerate(zip(weights, biases)):
            for name, value, view in ((f"weights[{l}]", w, host.W[l]), (f"biases[{l}]", b, host.b[l])):
                arr = np.asarray(value)
                if arr.dtype.kind not in "biuf":
                    raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}")
                if arr.shape != view.shape:
                    raise ValueError(f"{name} must have shape {view.shape}; got {arr.shape}")
                if not np.isfinite(arr).all():
                    raise ValueError(f"{name} contains NaN or inf")
                view[...] = arr
        self._ops.copy_into(self._state.params.flat, flat)

    # ---- computation ----
    def _inputs(self, X, y=_NO_TARGETS, check_finite=True):
        X = validation.features(X, self.dtype, self.arch.sizes[0], check_finite=check_finite)
        if y is _NO_TARGETS:    # (y=None is a bad y, not "no y": it must not unpack X into X, y)
            return X
        y = validation.targets(y, self.arch.loss, self.dtype, X.shape[0], self.arch.sizes[-1],
                               check_finite=check_finite)
        return X, y

    def forward(self, X):
        """Output activations (batch, n_out). For cross_entropy/bce these are the logits."""
        X = self._inputs(X)
        return np.asarray(self._ops.to_host(self._ops.forward(self._state, self._ops.from_host(X))))

    def _weights(self, sample_weight, n):
        """Checked per-row weights in the backend's memory, or None."""
        sw = validation.sample_weight(sample_weight, n, self.dtype)
        return None if sw is None else self._ops.from_host(sw)

    def loss_value(self, X, y, sample_weight=None):
        """The loss alone (no gradients computed, nothing changed). sample_weight: one weight
        >= 0 per row (fastbp.losses: sum_i w_i l_i / sum_i w_i for the mean)."""
        X, y = self._inputs(X, y)
        sw = self._weights(sample_weight, X.shape[0])
        return self._ops.loss(self._state, self._ops.from_host(X), self._ops.from_host(y), sw)

    def loss_and_grad(self, X, y, sample_weight=None):
        """-> (loss, dW list, db list); the parameters are unchanged. The gradients are copies."""
        X, y = self._inputs(X, y)
        sw = self._weights(sample_weight, X.shape[0])
        loss = self._ops.loss_and_grad(self._state, self._ops.from_host(X), self._ops.from_host(y), sw)
        G = self._state.grads
        copy = lambda a: np.array(self._ops.to_host(a), copy=True)   # noqa: E731
        return loss, [copy(g) for g in G.W], [copy(g) for g in G.b]

    def predict(self, X):
        """Class labels (cross_entropy: argmax; bce: logit > 0), for mse the outputs, for
        poisson the rates exp(outputs)."""
        from .metrics import predictions
        return predictions(self.forward(X), self.arch.loss)

    def predict_proba(self, X):
        """Class probabilities: softmax of the logits (cross_entropy), sigmoid (bce)."""
        from .metrics import probabilities
        return probabilities(self.forward(X), self.arch.loss)

    def score(self, X, y):
        """Accuracy for classifiers, R^2 for regression (mse; poisson: of the rates)."""
        from .metrics import score
        X, y = self._inputs(X, y)
        return score(self.forward(X), y, self.arch.loss)

    def check_optimizer(self, optimizer):
        if isinstance(optimizer, Optimizer) and optimizer.updates(self._state.params.flat):
            return      # already bound to this network's buffer (the per-step case)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastbp optimizer (fastbp.SGD, fastbp.Adam); "
                            f"got {type(optimizer).__name__}")
        optimizer.check_compatible(self.n_params, self.dtype, self.backend, self._state.params.flat)

    def train_step(self, X, y, optimizer, sample_weight=None):
        """Forward, backward and the optimizer's update, in place; -> loss. sample_weight:
        one weight >= 0 per row, as in loss_value.
        A non-finite loss raises FloatingPointError and changes nothing."""
        self.check_optimizer(optimizer)
        # a backend that checks X, y for NaN/inf inside its compiled call (before writing
        # anything) saves the boundary a pass over the data: Ops.checks_finite; then arrays
        # that already are what the kernels take pass on attribute look-ups alone
        ops, arch = self._ops, self.arch
        if not (ops.checks_finite and arch.loss == losses.MSE     # (labels and bce targets: range-checked)
                and validation.ready_pair(X, y, arch.dtype, arch.sizes[0], arch.sizes[-1])):
            X, y = self._inputs(X, y, check_finite=not ops.checks_finite)
        sw = None if sample_weight is None else self._weights(sample_weight, X.shape[0])
        return ops.train_step(self._state, ops.from_host(X), ops.from_host(y), optimizer, sw)

    def fit(self, X, y, **options):
        """Mini-batch training; see fastbp.training.fit for the options. -> history."""
        from .training import fit
        return fit(self, X, y, **options)

    # ---- persistence ----
    def save(self, path, optimizer=None):
        checkpoint.save(self, path, optimizer)

    @classmethod
    def load(cls, path, backend="auto"):
        return load_checkpoint(path, backend)[0]

    @classmethod
    def from_checkpoint(cls, saved, backend="auto"):
        """The network a checkpoint.Checkpoint (checked by checkpoint.read) describes, with its
        parameters (no random start drawn)."""
        return cls._with_parameters(architecture(**saved.architecture), saved.params, backend, saved.l2)


def load_checkpoint(path, backend="auto"):
    """-> (net, optimizer or None) from a checkpoint file. A corrupt, truncated or foreign
    file is a ValueError naming it."""
    resolve(backend)                    # a bad backend name is the caller's error, not the file's
    saved = checkpoint.read(path)
    net = MLP.from_checkpoint(saved, backend)
    return net, saved.build_optimizer(net)
