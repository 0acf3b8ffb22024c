"""scikit-learn estimators backed by fastbp: drop an MLP trained by fastbp's kernels into an
existing pipeline, grid search or cross-validation.

    from fastbp.sklearn import MLPClassifier, MLPRegressor
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0).fit(X, y)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

The parameters follow sklearn.neural_network's names where the meaning is the same
(hidden_layer_sizes, activation, solver, batch_size, learning_rate_init, max_iter, shuffle,
random_state, tol, n_iter_no_change, momentum); `weight_decay` is fastbp's L2 term (added
to the gradient, as torch.optim does), and `backend`/`dtype` choose the kernels.

Training stops early, as scikit-learn's MLP does, when the training loss has not improved
by `tol` for `n_iter_no_change` epochs. This module imports scikit-learn; `import fastbp`
does not import this module.
"""
import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .checkpoint import architecture_of
from .network import MLP
from .optim import SGD, Adam

__all__ = ["MLPClassifier", "MLPRegressor"]


class _FastbpMLP(BaseEstimator):
    """Shared parameters, training and pickling of the two estimators."""

    _loss = None                        # set by the subclasses

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", solver="adam", batch_size="auto",
                 learning_rate_init=1e-3, max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 n_iter_no_change=10, momentum=0.9, weight_decay=0.0, backend="auto", dtype="float64"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.backend = backend
        self.dtype = dtype

    def _train(self, X, y, n_outputs):
        """Build the network and train it on checked X and prepared targets y."""
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, numbers.Integral) else list(hidden)
        if self.solver not in ("adam", "sgd"):
            raise ValueError(f"solver must be 'adam' or 'sgd'; got {self.solver!r}")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.batch_size == "auto":
            batch_size = min(200, X.shape[0])
        elif isinstance(self.batch_size, numbers.Integral) and not isinstance(self.batch_size, bool) \
                and self.batch_size >= 1:
            batch_size = min(int(self.batch_size), X.shape[0])
        else:
            raise ValueError(f"batch_size must be 'auto' or a positive integer; got {self.batch_size!r}")
        seed = _seed(self.random_state)
        net = MLP([X.shape[1], *hidden, n_outputs], activation=self.activation, loss=self._loss,
                  dtype=self.dtype, backend=self.backend, seed=seed)
        optimizer = (Adam(lr=self.learning_rate_init, weight_decay=self.weight_decay) if self.solver == "adam"
                     else SGD(lr=self.learning_rate_init, momentum=self.momentum, weight_decay=self.weight_decay))
        stop = _NoImprovement(self.tol, self.n_iter_no_change)
        history = net.fit(X, y, epochs=self.max_iter, batch_size=batch_size, optimizer=optimizer,
                          shuffle=bool(self.shuffle), seed=seed, progress=False, callback=stop)
        self.net_ = net
        self.loss_curve_ = list(history["loss"])
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ = len(self.loss_curve_)
        return self

    def _outputs(self, X):
        check_is_fitted(self, "net_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.net_.forward(X)

    # pickling: the network travels as its architecture and parameter vector
    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        net = state.pop("net_", None)
        if net is not None:
            state["_fastbp_net"] = (architecture_of(net), net.get_flat_params(), net.backend)
        return state

    def __setstate__(self, state):
        state = dict(state)
        saved = state.pop("_fastbp_net", None)
        if saved is not None:
            architecture, params, backend = saved
            state["net_"] = MLP(backend=backend, **architecture)
            state["net_"].set_flat_params(params)
        super().__setstate__(state)


class MLPClassifier(ClassifierMixin, _FastbpMLP):
    """A multilayer perceptron classifier (softmax outputs, cross-entropy loss) trained by fastbp."""

    _loss = "cross_entropy"

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes; got 1 class "
                             f"({self.classes_[0]!r})")
        return self._train(X, self._encoder.transform(y), len(self.classes_))

    def predict(self, X):
        labels = self._outputs(X).argmax(axis=1)
        return self.classes_[labels]

    def predict_proba(self, X):
        from .metrics import softmax
        return softmax(self._outputs(X).astype(np.float64))

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))


class MLPRegressor(RegressorMixin, _FastbpMLP):
    """A multilayer perceptron regressor (identity outputs, squared-error loss) trained by fastbp."""

    _loss = "mse"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], multi_output=True, y_numeric=True)
        self._y_1d = y.ndim == 1
        y = y.reshape(len(y), -1)
        return self._train(X, y, y.shape[1])

    def predict(self, X):
        out = self._outputs(X).astype(np.float64)
        return out[:, 0] if self._y_1d else out


class _NoImprovement:
    """fit callback: stop when the loss has not improved by `tol` for `patience` epochs
    (scikit-learn's MLP rule)."""

    def __init__(self, tol, patience):
        self.tol, self.patience = tol, patience
        self.best, self.count = np.inf, 0

    def __call__(self, epoch, history):
        loss = history["loss"][-1]
        self.count = self.count + 1 if loss > self.best - self.tol else 0
        self.best = min(self.best, loss)
        return self.count >= self.patience


def _seed(random_state):
    """random_state (None, int or RandomState) -> an int seed for fastbp."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise ValueError(f"random_state must be None, an int or a numpy RandomState; got {random_state!r}")
