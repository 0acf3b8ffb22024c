"""What a user would pick instead of fastbp: one SGD training step (forward, backward,
update; plain SGD, no momentum) written the usual way with each library.

Every peer starts from the weights of a fastbp network (W[l] is (n_in, n_out), as in
fastbp) and trains on one fixed batch, so its losses can be checked step by step against
fastbp's (see guard.py): the table compares one computation done by different code.

A peer is a class with
    name, library          what it is called and the module it needs
    available()            -> (usable, why not); never raises
    supports(workload)     -> (supported, why not)
    build(workload, weights, biases, X, y, lr) -> step(), a callable that does one
                           training step and returns that step's loss (before the update)
                           as a Python float (so the work is finished when it returns)
"""
import importlib

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")


def _library_available(module):
    try:
        importlib.import_module(module)
        return True, ""
    except Exception as e:          # an installed-but-broken peer is "absent", with its reason
        return False, f"{module} not importable ({type(e).__name__}: {e})".replace("\n", " ")


class Peer:
    name = "peer"
    library = None
    losses = ("mse", "cross_entropy")

    def available(self):
        return _library_available(self.library)

    def supports(self, workload):
        for act in (workload.activation, workload.output_activation):
            if act not in ACTIVATIONS:
                return False, f"activation {act!r} not written for this peer"
        if workload.loss not in self.losses:
            return False, f"loss {workload.loss!r} not written for this peer"
        return True, ""

    def build(self, workload, weights, biases, X, y, lr):
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
    operation, update with `W -= lr * dW`."""
    name, library = "numpy", "numpy"

    def build(self, workload, weights, biases, X, y, lr):
        Ws = [np.array(w, copy=True) for w in weights]
        bs = [np.array(b, copy=True) for b in biases]
        acts = [workload.activation] * (len(Ws) - 1) + [workload.output_activation]
        cross_entropy = workload.loss == "cross_entropy"

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
            for l in reversed(range(len(Ws))):
                dW = a_s[l].T @ delta
                db = delta.sum(axis=0)
                if l > 0:
                    delta = (delta @ Ws[l].T) * _NP_DF[acts[l - 1]](zs[l - 1], a_s[l])
                Ws[l] -= lr * dW
                bs[l] -= lr * db
            return float(loss)
        return step


# ---------------------------------------------------------------- PyTorch eager
class TorchPeer(Peer):
    """torch.nn.Sequential of Linear + activation modules, torch.optim.SGD, eager mode."""
    name, library = "torch", "torch"

    def build(self, workload, weights, biases, X, y, lr):
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
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss() if workload.loss == "cross_entropy" else nn.MSELoss()
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(y.astype(np.int64) if workload.loss == "cross_entropy" else y)

        def step():
            optimizer.zero_grad()
            loss = loss_fn(model(Xt), yt)
            loss.backward()
            optimizer.step()
            return loss.item()
        return step


# ---------------------------------------------------------------- JAX jit(grad + update)
class JaxPeer(Peer):
    """A list of (W, b) pairs, jax.jit of value_and_grad + the SGD update (params donated)."""
    name, library = "jax", "jax"

    def build(self, workload, weights, biases, X, y, lr):
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

        def update(params, X, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss

        update = jax.jit(update, donate_argnums=0)
        state = [[(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(weights, biases)]]
        Xj, yj = jnp.asarray(X), jnp.asarray(y)

        def step():
            state[0], loss = update(state[0], Xj, yj)
            return float(loss)
        return step


# ---------------------------------------------------------------- scikit-learn
class SklearnPeer(Peer):
    """MLPRegressor(solver="sgd").partial_fit on the batch: one SGD step per call.

    scikit-learn's squared loss is half the mean over samples of the sum over outputs,
    so its reported loss is MSE/2 and its gradient n_out/2 times MSE's: the learning rate
    is scaled by 2/n_out and the loss doubled, which makes the step the same one."""
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

    def build(self, workload, weights, biases, X, y, lr):
        import warnings

        from sklearn.neural_network import MLPRegressor
        n_out = y.shape[1]
        target = y[:, 0] if n_out == 1 else y
        model = MLPRegressor(hidden_layer_sizes=tuple(workload.sizes[1:-1]),
                             activation=self._activation[workload.activation], solver="sgd",
                             alpha=0.0, batch_size=X.shape[0], learning_rate="constant",
                             learning_rate_init=lr * 2 / n_out, momentum=0.0,
                             nesterovs_momentum=False, shuffle=False, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(X, target)          # allocates its own weights and solver state
        model.coefs_ = [np.array(w, copy=True) for w in weights]
        model.intercepts_ = [np.array(b, copy=True) for b in biases]

        def step():
            model.partial_fit(X, target)
            return 2.0 * float(model.loss_)
        return step


PEERS = {p.name: p for p in (NumpyPeer(), TorchPeer(), JaxPeer(), SklearnPeer())}


def select(spec):
    """'all' | 'none' | 'numpy,torch,...' -> [Peer]; ValueError naming an unknown one."""
    if spec in (None, "", "all"):
        return list(PEERS.values())
    if spec == "none":
        return []
    chosen = []
    for name in (s.strip() for s in spec.split(",")):
        if name not in PEERS:
            raise ValueError(f"--peers: unknown peer {name!r}; expected names from {list(PEERS)} "
                             f"(or 'all', 'none')")
        if PEERS[name] not in chosen:
            chosen.append(PEERS[name])
    return chosen
