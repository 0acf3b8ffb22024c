"""What a user would pick instead of fastbp: one training step (forward, backward, the
update of an optimizers.OptimizerSpec: plain SGD, momentum SGD or Adam) written the usual
way with each library, with that library's own optimizer.

Every peer starts from the weights of a fastbp network (W[l] is (n_in, n_out), as in
fastbp) and trains on one fixed batch, so its losses and parameters can be checked against
fastbp's (see guard.py): the table compares one computation done by different code.

A peer is a class with
    name, library          what it is called and the module it needs
    libraries(optimizer)   the modules a step with that optimizer needs (default: library)
    available(optimizer)   -> (usable, why not); never raises
    supports(workload)     -> (supported, why not)
    build(workload, weights, biases, X, y, optimizer) -> Stepper(step, params):
                           step() does one training step and returns that step's loss
                           (before the update) as a Python float (so the work is finished
                           when it returns); params() -> (weights, biases) as NumPy arrays
                           in fastbp's layout, copies of the peer's current parameters
"""
import importlib
from typing import Callable, NamedTuple

import numpy as np

from .choices import pick

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")


def _library_available(module):
    try:
        importlib.import_module(module)
        return True, ""
    except Exception as e:          # an installed-but-broken peer is "absent", with its reason
        return False, f"{module} not importable ({type(e).__name__}: {e})".replace("\n", " ")


class Stepper(NamedTuple):
    step: Callable[[], float]
    params: Callable[[], tuple]


class Peer:
    name = "peer"
    library = None
    losses = ("mse", "cross_entropy")

    def libraries(self, optimizer=None):
        return (self.library,)

    def available(self, optimizer=None):
        for module in self.libraries(optimizer):
            usable, why = _library_available(module)
            if not usable:
                return usable, why
        return True, ""

    def supports(self, workload):
        for act in (workload.activation, workload.output_activation):
            if act not in ACTIVATIONS:
                return False, f"activation {act!r} not written for this peer"
        if workload.loss not in self.losses:
            return False, f"loss {workload.loss!r} not written for this peer"
        return True, ""

    def build(self, workload, weights, biases, X, y, optimizer):
        raise NotImplementedError


# ---------------------------------------------------------------- NumPy, the usual way
def _np_sigmoid(z):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


_NP_F = {"identity": lambda z: z, "sigmoid": _np_sigmoid, "tanh": np.tanh,
         "relu": lambda z: np.maximum(z, 0)}
_NP_DF = {"identity": lambda z, a: 1, "sigmoid": lambda z, a: a * (1 - a),
          "tanh": lambda z, a: 1 - a * a, "relu": lambda z, a: z > 0}


class NumpyPeer(Peer):
    """A hand-written NumPy MLP as found in tutorials: lists of arrays, a new array per
    operation; update `W -= lr * dW`, for momentum `v = mu * v + dW; W -= lr * v`, for Adam
    m and v arrays per parameter updated with whole-array expressions."""
    name, library = "numpy", "numpy"

    def build(self, workload, weights, biases, X, y, optimizer):
        Ws = [np.array(w, copy=True) for w in weights]
        bs = [np.array(b, copy=True) for b in biases]
        acts = [workload.activation] * (len(Ws) - 1) + [workload.output_activation]
        cross_entropy = workload.loss == "cross_entropy"
        L, lr = len(Ws), optimizer.lr
        rule = _NumpyRule(optimizer, Ws + bs) if (optimizer.is_adam or optimizer.momentum) else None

        def step():
            zs, a_s = [], [X]
            for W, b, f in zip(Ws, bs, acts):
                zs.append(a_s[-1] @ W + b)
                a_s.append(_NP_F[f](zs[-1]))
            out = a_s[-1]
            if cross_entropy:
                e = np.exp(out - out.max(axis=1, keepdims=True))
                p = e / e.sum(axis=1, keepdims=True)
                rows = np.arange(len(y))
                loss = -np.mean(np.log(p[rows, y]))
                d_out = p.copy()
                d_out[rows, y] -= 1
                d_out /= len(y)
            else:
                diff = out - y
                loss = np.mean(diff * diff)
                d_out = 2 * diff / diff.size
            delta = d_out * _NP_DF[acts[-1]](zs[-1], a_s[-1])
            if rule:
                rule.new_step()
            for l in reversed(range(L)):
                dW = a_s[l].T @ delta
                db = delta.sum(axis=0)
                if l > 0:
                    delta = (delta @ Ws[l].T) * _NP_DF[acts[l - 1]](zs[l - 1], a_s[l])
                if rule:
                    rule.apply(l, Ws[l], dW)
                    rule.apply(L + l, bs[l], db)
                else:
                    Ws[l] -= lr * dW
                    bs[l] -= lr * db
            return float(loss)
        return Stepper(step, lambda: ([W.copy() for W in Ws], [b.copy() for b in bs]))


class _NumpyRule:
    """Momentum or Adam as tutorials write it in NumPy, one parameter array at a time:
    `v = mu * v + g; p -= lr * v`; Adam with m and v arrays (plain SGD is inline above)."""

    def __init__(self, optimizer, params):
        self.lr, self.momentum = optimizer.lr, optimizer.momentum
        self.adam = optimizer.is_adam
        if self.adam:
            (self.beta1, self.beta2), self.eps = optimizer.betas, optimizer.eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params] if self.adam else None
        self.t = 0

    def new_step(self):
        self.t += 1

    def apply(self, i, p, g):
        if self.adam:
            self.m[i] = self.beta1 * self.m[i] + (1 - self.beta1) * g
            self.v[i] = self.beta2 * self.v[i] + (1 - self.beta2) * g * g
            m_hat = self.m[i] / (1 - self.beta1 ** self.t)
            v_hat = self.v[i] / (1 - self.beta2 ** self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        else:
            self.m[i] = self.momentum * self.m[i] + g
            p -= self.lr * self.m[i]


# ---------------------------------------------------------------- PyTorch eager
class TorchPeer(Peer):
    """torch.nn.Sequential of Linear + activation modules, eager mode, torch.optim.SGD
    (momentum=0.9 for momentum) or torch.optim.Adam with their default implementation:
    for CPU tensors that is the per-tensor loop (foreach and fused default to off)."""
    name, library = "torch", "torch"

    def build(self, workload, weights, biases, X, y, optimizer):
        import torch
        from torch import nn
        modules = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
        acts = [workload.activation] * (len(weights) - 1) + [workload.output_activation]
        dtype = torch.float64 if X.dtype == np.float64 else torch.float32
        layers = []
        for W, b, act in zip(weights, biases, acts):
            linear = nn.Linear(*W.shape, dtype=dtype)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                linear.bias.copy_(torch.from_numpy(np.array(b)))
            layers.append(linear)
            if act != "identity":
                layers.append(modules[act]())
        model = nn.Sequential(*layers)
        if optimizer.is_adam:
            torch_optimizer = torch.optim.Adam(model.parameters(), lr=optimizer.lr, betas=optimizer.betas,
                                               eps=optimizer.eps)
        else:
            torch_optimizer = torch.optim.SGD(model.parameters(), lr=optimizer.lr, momentum=optimizer.momentum)
        linears = [m for m in model if isinstance(m, nn.Linear)]
        loss_fn = nn.CrossEntropyLoss() if workload.loss == "cross_entropy" else nn.MSELoss()
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(y.astype(np.int64) if workload.loss == "cross_entropy" else y)

        def step():
            torch_optimizer.zero_grad()
            loss = loss_fn(model(Xt), yt)
            loss.backward()
            torch_optimizer.step()
            return loss.item()

        def params():
            with torch.no_grad():
                return ([m.weight.numpy().T.copy() for m in linears], [m.bias.numpy().copy() for m in linears])
        return Stepper(step, params)


# ---------------------------------------------------------------- JAX jit(grad + update)
class JaxPeer(Peer):
    """A list of (W, b) pairs, jax.jit of value_and_grad + the update (params and optimizer
    state donated): plain SGD written inline, `p - lr * g`; momentum and Adam with optax
    (optax.sgd(lr, momentum), optax.adam), jitted together with the gradient."""
    name, library = "jax", "jax"

    def libraries(self, optimizer=None):
        plain = optimizer is None or not (optimizer.is_adam or optimizer.momentum)
        return (self.library,) if plain else (self.library, "optax")

    def build(self, workload, weights, biases, X, y, optimizer):
        import jax
        import jax.numpy as jnp
        if X.dtype == np.float64 and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)
        functions = {"identity": lambda z: z, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
                     "relu": jax.nn.relu}
        acts = [functions[workload.activation]] * (len(weights) - 1) + [functions[workload.output_activation]]
        cross_entropy = workload.loss == "cross_entropy"

        def loss_fn(params, X, y):
            a = X
            for (W, b), f in zip(params, acts):
                a = f(a @ W + b)
            if cross_entropy:
                log_p = jax.nn.log_softmax(a, axis=1)
                return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))
            return jnp.mean((a - y) ** 2)

        params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(weights, biases)]
        if len(self.libraries(optimizer)) == 1:
            lr = optimizer.lr

            def update(params, opt_state, X, y):
                loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
                return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), opt_state, loss
            opt_state = ()
        else:
            import optax
            if optimizer.is_adam:
                tx = optax.adam(optimizer.lr, b1=optimizer.betas[0], b2=optimizer.betas[1], eps=optimizer.eps)
            else:
                tx = optax.sgd(optimizer.lr, momentum=optimizer.momentum)

            def update(params, opt_state, X, y):
                loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
                updates, opt_state = tx.update(grads, opt_state, params)
                return optax.apply_updates(params, updates), opt_state, loss
            opt_state = tx.init(params)

        update = jax.jit(update, donate_argnums=(0, 1))
        state = [params, opt_state]
        Xj, yj = jnp.asarray(X), jnp.asarray(y)

        def step():
            state[0], state[1], loss = update(state[0], state[1], Xj, yj)
            return float(loss)

        def current():
            return [np.array(W) for W, _ in state[0]], [np.array(b) for _, b in state[0]]
        return Stepper(step, current)


# ---------------------------------------------------------------- scikit-learn
class SklearnPeer(Peer):
    """MLPRegressor(solver="sgd" or "adam").partial_fit on the batch: one step per call,
    with scikit-learn's own SGDOptimizer / AdamOptimizer.

    scikit-learn's squared loss is half the mean over samples of the sum over outputs,
    so its reported loss is MSE/2 and its gradient k = n_out/2 times MSE's. SGD and
    momentum: the learning rate is scaled by 1/k (its velocity is -lr times torch's, the
    same rule) and the loss doubled, which makes the step the same one. Adam is invariant
    to the gradient's scale but for eps, which scikit-learn adds to sqrt(v) where torch
    adds it to sqrt(v / (1 - b2^t)): its epsilon is set before each step to
    eps * k * sqrt(1 - b2^t), which makes that step torch's (an attribute write per step)."""
    name, library = "sklearn", "sklearn"
    losses = ("mse",)
    _activation = {"identity": "identity", "sigmoid": "logistic", "tanh": "tanh", "relu": "relu"}

    def supports(self, workload):
        ok, why = super().supports(workload)
        if ok and workload.output_activation != "identity":
            return False, "MLPRegressor's output layer is always identity"
        if ok and len(workload.sizes) < 3:
            return False, "MLPRegressor needs a hidden layer"
        return ok, why

    def build(self, workload, weights, biases, X, y, optimizer):
        import math
        import warnings

        from sklearn.neural_network import MLPRegressor
        n_out = y.shape[1]
        k = n_out / 2
        target = y[:, 0] if n_out == 1 else y
        common = dict(hidden_layer_sizes=tuple(workload.sizes[1:-1]),
                      activation=self._activation[workload.activation], alpha=0.0,
                      batch_size=X.shape[0], shuffle=False, random_state=0)
        if optimizer.is_adam:
            beta1, beta2 = optimizer.betas
            eps_at = lambda t: optimizer.eps * k * math.sqrt(1 - beta2 ** t)     # noqa: E731
            model = MLPRegressor(solver="adam", learning_rate_init=optimizer.lr, beta_1=beta1, beta_2=beta2,
                                 epsilon=eps_at(1), **common)
        else:
            model = MLPRegressor(solver="sgd", learning_rate="constant", learning_rate_init=optimizer.lr / k,
                                 momentum=optimizer.momentum, nesterovs_momentum=False, **common)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(X, target)          # allocates its own weights and solver state
        model.coefs_ = [np.array(w, copy=True) for w in weights]
        model.intercepts_ = [np.array(b, copy=True) for b in biases]
        del model._optimizer                      # the next partial_fit starts a fresh solver state

        if optimizer.is_adam:
            def step():
                solver = getattr(model, "_optimizer", None)
                if solver is not None:
                    solver.epsilon = eps_at(solver.t + 1)
                model.partial_fit(X, target)
                return 2.0 * float(model.loss_)
        else:
            def step():
                model.partial_fit(X, target)
                return 2.0 * float(model.loss_)
        return Stepper(step, lambda: ([np.array(w) for w in model.coefs_], [np.array(b) for b in model.intercepts_]))


PEERS = {p.name: p for p in (NumpyPeer(), TorchPeer(), JaxPeer(), SklearnPeer())}


def select(spec):
    """'all' | 'none' | 'numpy,torch,...' -> [Peer]; ValueError naming an unknown one."""
    return pick(spec, PEERS, "--peers", {"all": PEERS.values(), "none": []})
