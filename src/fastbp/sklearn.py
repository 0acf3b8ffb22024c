"""scikit-learn's MLPClassifier and MLPRegressor, trained by fastbp's kernels: swap one import,
keep the pipeline.

    from fastbp.sklearn import MLPClassifier, MLPRegressor
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, random_state=0).fit(X, y)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

Every parameter and fitted attribute of sklearn.neural_network's estimators has the same
name, default and meaning (docs/estimators.md lists them and the few differences). The
initial weights, the validation split and the shuffling are drawn as scikit-learn draws
them, from the same random_state, and the gradient steps are scikit-learn's: the same
random_state starts from the same weights and follows the same path, up to rounding.
fastbp adds `backend`, `dtype` and `callback`.

How scikit-learn's numbers map onto a fastbp network (mean reduction over the batch):
its gradient is `scale` times the network's (`_OUTPUTS`), which the solvers fold into
the learning rate (SGD) or epsilon (Adam); its L2 term 0.5 * alpha * sum(W**2) / n is the
network's own (MLP.l2 = alpha / scale, in the kernels); and its reported loss (loss_,
loss_curve_) is `loss_factor` times the network's data loss plus the L2 term
(`_penalty_correction`).

This module imports scikit-learn; `import fastbp` does not import this module.
"""
import inspect
import math
import numbers
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, compute_sample_weight, shuffle as shuffled
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import activations, validation
from .metrics import sigmoid, softmax
from .network import MLP
from .optim import SGD, Adam, optimizer_from_checkpoint
from .schedules import Adaptive, EarlyStopping, InverseScaling
from .training import EVAL_ROWS

__all__ = ["MLPClassifier", "MLPRegressor"]

# out_activation_ -> (the network's loss, scale(k), loss_factor(k)) for k outputs. scikit-learn
# divides its losses by the rows only, fastbp's mse and bce by rows x outputs; its squared
# error is half of fastbp's; and for k > 1 it reports half the squared error averaged over
# the outputs while its gradient is that of the sum (its deltas are p - y / rows).
_OUTPUTS = {
    "softmax": ("cross_entropy", lambda k: 1.0, lambda k: 1.0),
    "logistic": ("bce", lambda k: float(k), lambda k: float(k)),
    "identity": ("mse", lambda k: k / 2.0, lambda k: 0.5),
    "exp": ("poisson", lambda k: float(k), lambda k: float(k)),      # its losses sum the outputs' deviances
}
_ACTIVATIONS = {"logistic": "sigmoid", **{name: name for name in activations.NAMES}}
_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values "
               "and need to be preprocessed.")


class _BaseMLP(BaseEstimator):
    """The parameters, training and prediction shared by the two estimators."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend="auto", dtype=None, callback=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.dtype = dtype
        self.callback = callback

    # ---- fitting ----
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X (dense or scipy.sparse) and target(s) y, each row's
        loss weighted by sample_weight (>= 0; None: all 1). -> self"""
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    def _fit(self, X, y, incremental, sample_weight=None):
        """Check and set up everything (a rejected call leaves the estimator as it was), then train."""
        before = dict(self.__dict__)
        try:
            hidden = self._check_parameters()
            first = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
            X, Y = self._validate_input(X, y, incremental, reset=first, dtype=self._dtype_for(first))
            sw = self._sample_weight(validation.sample_weight(sample_weight, X.shape[0], X.dtype), Y, incremental,
                                     X.dtype)
            random_state = check_random_state(self.random_state)
            net = self._initialize(X, Y, hidden, random_state) if first else self._network()
            if self.solver == "lbfgs":
                train = self._fit_lbfgs(net, X, Y, sw)
            else:
                train = self._fit_stochastic(net, X, Y, sw, random_state, incremental)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise
        try:
            train()
        finally:
            self.coefs_, self.intercepts_ = net.weights, net.biases
        if not all(np.isfinite(p).all() for p in self.coefs_ + self.intercepts_):
            raise ValueError(_NON_FINITE)
        return self

    def _initialize(self, X, Y, hidden, random_state):
        """First fit: the attributes, and a network starting where scikit-learn's would."""
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_ = Y.shape[1]
        sizes = [X.shape[1], *hidden, self.n_outputs_]
        self.n_layers_ = len(sizes)
        self.out_activation_ = self._output_activation()
        net = MLP(sizes, activation=_ACTIVATIONS[self.activation], loss=_OUTPUTS[self.out_activation_][0],
                  dtype=X.dtype, backend=self.backend, seed=random_state, init="sklearn")
        self._net, self._net_key = net, self._key(net.layer_sizes, net.dtype)
        self.coefs_, self.intercepts_ = net.weights, net.biases
        for name in ("_optimizer", "_stopping", "loss_curve_", "best_loss_", "validation_scores_",
                     "best_validation_score_"):
            self.__dict__.pop(name, None)           # an earlier fit's (lbfgs records none of them)
        if self.solver != "lbfgs":
            self.loss_curve_ = []
            self.best_loss_ = None if self.early_stopping else np.inf
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None
        return net

    def _sample_weight(self, sw, Y, incremental, dtype):
        """The checked sample weights (or None) as training uses them (class_weight: MLPClassifier)."""
        return sw

    def _fit_stochastic(self, net, X, Y, sw, random_state, incremental):
        """scikit-learn's epoch loop, each mini-batch one fastbp step. -> the loop, to run."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _StochasticSolver(self, _OUTPUTS[self.out_activation_][1](self.n_outputs_))
        solver = self._optimizer
        solver.attach(net)
        stopping = self._stopping_rule(net)
        if not hasattr(self, "loss_curve_"):            # fitted by lbfgs before, or set up by hand
            self.t_, self.loss_curve_ = getattr(self, "t_", 0), []
        if self.early_stopping:
            X, X_val, Y, Y_val, sw, sw_val = self._split(X, Y, sw, random_state)
        n = X.shape[0]
        batch_size = self._batch_size(n)
        data = _dataset(net, X, self._targets(Y), sw)
        step = solver.step(net, self._loss_factor(), self.alpha)

        def epochs():
            order = np.arange(n)
            diverged = False
            self.n_iter_ = 0
            try:
                for _ in range(self.max_iter):
                    if self.shuffle:
                        order = shuffled(order, random_state=random_state)
                    total = 0.0
                    try:
                        for X_batch, y_batch, sw_batch in data.batches(batch_size, order if self.shuffle else None):
                            total += step(X_batch, y_batch, sw_batch) * X_batch.shape[0]
                    except FloatingPointError:
                        diverged, total = True, math.nan          # the epoch is recorded as NaN, and ends training
                    self.n_iter_ += 1
                    self.loss_ = total / n
                    self.t_ += n
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                    if self.early_stopping:
                        score = math.nan if diverged else self._score_outputs(self._outputs(X_val, net), Y_val, sw_val)
                        self.validation_scores_.append(score)
                        if self.verbose:
                            print("Validation score: %f" % score)
                        plateau = stopping.update(score, net)
                        self.best_validation_score_ = stopping.best
                    else:
                        plateau = stopping.update(self.loss_, net)
                        self.best_loss_ = stopping.best
                    if diverged:
                        break
                    solver.epoch_end(self.t_)
                    if plateau:
                        what = "Validation score" if self.early_stopping else "Training loss"
                        msg = (f"{what} did not improve more than tol={self.tol:f} for "
                               f"{self.n_iter_no_change} consecutive epochs.")
                        if solver.plateau(msg, self.verbose):
                            break
                        stopping.count = 0
                    if self.callback is not None and self.callback(self) is True:
                        break
                    if incremental:
                        break
                    if self.n_iter_ == self.max_iter:
                        warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                                      "the optimization hasn't converged yet.", ConvergenceWarning)
            except KeyboardInterrupt:
                warnings.warn("Training interrupted by user.")
            if self.early_stopping:
                stopping.restore(net)
            if diverged:
                if not self.early_stopping:
                    raise ValueError(_NON_FINITE)
                warnings.warn(f"the loss became non-finite in epoch {self.n_iter_}: training stopped and the "
                              "parameters of the best validation epoch were restored", ConvergenceWarning)
        return epochs

    def _fit_lbfgs(self, net, X, Y, sw):
        """scipy's L-BFGS-B on the network's flat parameter vector, max_iter and max_fun as its
        maxiter and maxfun, tol as its gtol. -> the minimization, to run."""
        scale = _OUTPUTS[self.out_activation_][1](self.n_outputs_)
        objective = _Objective(net, _dataset(net, X, self._targets(Y), sw), X.shape[0], sw, scale,
                               self._loss_factor(), self.alpha)

        def minimize():
            iteration = [0]

            def report(intermediate_result):
                iteration[0] += 1
                print("Iteration %d, loss = %.8f" % (iteration[0], objective.reported))

            result = scipy.optimize.minimize(objective, net.get_flat_params().astype(np.float64),
                                             method="L-BFGS-B", jac=True, callback=report if self.verbose else None,
                                             options=dict(maxfun=self.max_fun, maxiter=self.max_iter, gtol=self.tol))
            if result.status != 0:
                warnings.warn(f"lbfgs failed to converge after {result.nit} iteration(s) (status={result.status}): "
                              f"{result.message}. Increase max_iter or max_fun, or scale the data.",
                              ConvergenceWarning)
            self.n_iter_ = min(int(result.nit), self.max_iter)
            if not np.isfinite(result.x).all():
                raise ValueError(_NON_FINITE)
            self.loss_ = objective.reported_at(result.x)
            objective.finish()
        return minimize

    # ---- partial_fit ----
    def _partial_fit(self, X, y, sample_weight=None):
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _has_partial_fit(self):
        if self.solver not in ("sgd", "adam"):
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    # ---- the pieces ----
    def _check_parameters(self):
        """Every parameter checked once, before anything changes -> the hidden layer sizes."""
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, numbers.Integral) else hidden
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints; got {hidden!r}")
        hidden = list(hidden)
        if not all(isinstance(h, numbers.Integral) and not isinstance(h, (bool, np.bool_)) for h in hidden):
            raise ValueError(f"hidden_layer_sizes must hold integers; got {hidden!r}")
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        _one_of(self.activation, "activation", tuple(_ACTIVATIONS))
        _one_of(self.solver, "solver", ("lbfgs", "sgd", "adam"))
        _one_of(self.learning_rate, "learning_rate", ("constant", "invscaling", "adaptive"))
        if self.batch_size != "auto":
            _integer(self.batch_size, "batch_size")
        for name in ("max_iter", "max_fun"):
            _integer(getattr(self, name), name)
        if self.n_iter_no_change != np.inf:
            _integer(self.n_iter_no_change, "n_iter_no_change")
        for name, low, high, closed_high in (("alpha", 0, None, False), ("power_t", 0, None, False),
                                             ("tol", 0, None, False), ("momentum", 0, 1, True),
                                             ("validation_fraction", 0, 1, False), ("beta_1", 0, 1, False),
                                             ("beta_2", 0, 1, False)):
            _real(getattr(self, name), name, low, high, closed_high)
        for name in ("learning_rate_init", "epsilon"):
            if _real(getattr(self, name), name, 0) == 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)!r}")
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if not isinstance(self.verbose, (numbers.Integral, np.bool_)) or self.verbose < 0:
            raise ValueError(f"verbose must be a bool or a non-negative int; got {self.verbose!r}")
        if self.dtype is not None:
            try:
                validation.float_dtype(self.dtype)
            except TypeError:
                raise ValueError(f"dtype must be None (X's: float32 stays float32, anything else float64), "
                                 f"float32 or float64; got {self.dtype!r}") from None
        if self.callback is not None and not callable(self.callback):
            raise ValueError(f"callback must be None or callable(estimator); got {self.callback!r}")
        return [int(h) for h in hidden]

    def _dtype_for(self, first):
        """The dtype X is converted to: the parameters' after a first fit, else `dtype` or X's."""
        if not first:
            dtype = np.asarray(self.coefs_[0]).dtype
            return dtype if dtype in (np.float32, np.float64) else np.float64
        return [np.float64, np.float32] if self.dtype is None else np.dtype(self.dtype)

    def _key(self, sizes, dtype):
        return (tuple(sizes), _ACTIVATIONS[self.activation], self.out_activation_, np.dtype(dtype), self.backend)

    def _network(self):
        """The fastbp network holding coefs_ and intercepts_: built when the architecture,
        dtype or backend asked for changed, refreshed when coefs_/intercepts_ are not its own
        arrays (set by hand, unpickled, or host copies of a CUDA network)."""
        sizes = [np.shape(self.coefs_[0])[0]] + [np.shape(c)[1] for c in self.coefs_]
        dtype = self._dtype_for(first=False)
        key = self._key(sizes, dtype)
        net = getattr(self, "_net", None)
        if net is None or self._net_key != key:
            net = MLP(sizes, activation=key[1], loss=_OUTPUTS[self.out_activation_][0], dtype=dtype,
                      backend=self.backend)
            self._net, self._net_key = net, key
        params = net._state.params
        if not all(a is b for a, b in zip(self.coefs_ + self.intercepts_, params.W + params.b)):
            net.set_params(self.coefs_, self.intercepts_)
        return net

    @property
    def net_(self):
        """The fitted fastbp.MLP (its outputs are logits for a classifier)."""
        check_is_fitted(self, "coefs_")
        return self._network()

    def _stopping_rule(self, net):
        """scikit-learn's no-improvement rule, with the current tol and n_iter_no_change, and
        the count and best so far of earlier calls (warm_start, partial_fit)."""
        monitor = ("val_r2" if self.out_activation_ in ("identity", "exp") else "val_accuracy") if self.early_stopping \
            else "loss"
        rule = EarlyStopping(self.n_iter_no_change, self.tol, monitor=monitor)
        old = getattr(self, "_stopping", None)
        if old is not None and old.monitor == monitor:
            rule.best, rule.count, rule.best_params = old.best, old.count, old.best_params
        elif rule.restore_best:
            rule.best_params = net.get_flat_params()     # restored if no epoch ever scores (as sklearn's)
        self._stopping = rule
        if self.early_stopping and getattr(self, "validation_scores_", None) is None:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        elif not self.early_stopping and getattr(self, "best_loss_", None) is None:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf
        return rule

    def _split(self, X, Y, sw, random_state):
        """-> X, X_val, Y, Y_val, sw, sw_val: scikit-learn's split (the same rows with or
        without weights; sw, sw_val None without)."""
        stratify = Y if self._stratify() else None
        arrays = (X, Y) if sw is None else (X, Y, sw)
        parts = train_test_split(*arrays, random_state=random_state, test_size=self.validation_fraction,
                                 stratify=stratify)
        if parts[1].shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                             "of your dataset.")
        return tuple(parts) if sw is not None else (*parts, None, None)

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        return int(np.clip(self.batch_size, 1, n))

    def _loss_factor(self):
        return _OUTPUTS[self.out_activation_][2](self.n_outputs_)

    def _outputs(self, X, net=None):
        """The network's outputs (logits for a classifier) for checked X, EVAL_ROWS rows at a time."""
        net = self._network() if net is None else net
        chunks = [net.forward(_dense(X[start:start + EVAL_ROWS])).copy() for start in range(0, X.shape[0], EVAL_ROWS)]
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]

    def _checked_X(self, X):
        check_is_fitted(self, "coefs_")
        return validate_data(self, X, accept_sparse=["csr", "csc"], reset=False,
                             dtype=self._dtype_for(first=False))

    # ---- pickling: the network is rebuilt from coefs_/intercepts_ on the backend asked for ----
    def __getstate__(self):
        state = dict(super().__getstate__())
        for name in ("_net", "_net_key"):
            state.pop(name, None)
        if "coefs_" in state:      # plain arrays, not views into a network's buffer
            state["coefs_"] = [np.array(c) for c in state["coefs_"]]
            state["intercepts_"] = [np.array(b) for b in state["intercepts_"]]
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


_BASE_PARAMETERS = tuple(inspect.signature(_BaseMLP.__init__).parameters)[1:]


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier (scikit-learn's), trained by fastbp: softmax outputs for
    several classes, one logistic output for two, one per label for multilabel y.

    Beyond scikit-learn's MLP, `class_weight` as its other classifiers take it: None, a dict
    {class: weight} (a list of dicts, one per label, for multilabel y) or "balanced"
    (n_samples / (n_classes * count)); multiplied into the sample weights."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend="auto", dtype=None, callback=None, class_weight=None):
        super().__init__(**_base_parameters(locals()))
        self.class_weight = class_weight

    def _sample_weight(self, sw, Y, incremental, dtype):
        cw = self.class_weight
        if cw is None:
            return sw
        if not (cw == "balanced" or isinstance(cw, dict)
                or (isinstance(cw, list) and all(isinstance(d, dict) for d in cw))):
            raise ValueError(f"class_weight must be None, 'balanced', a dict or a list of dicts; got {cw!r}")
        if incremental and cw == "balanced":
            raise ValueError("class_weight 'balanced' is not supported for partial_fit (the classes' frequencies "
                             "of one batch are not the data set's): give a dict")
        labels = Y.astype(np.intp) if self._label_binarizer.y_type_.startswith("multilabel") else \
            self._label_binarizer.inverse_transform(Y.astype(np.float64))
        try:
            weights = compute_sample_weight(cw, labels)
        except (ValueError, KeyError) as e:
            raise ValueError(f"class_weight {cw!r}: {e}") from None
        if sw is not None:
            weights = weights * sw
        return validation.sample_weight(weights, Y.shape[0], dtype, name="sample_weight (times class_weight)")

    def _validate_input(self, X, y, incremental, reset, dtype):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, dtype=dtype, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(f"warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool)

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify(self):
        return self.n_outputs_ == 1

    def _targets(self, Y):
        """Binarized labels -> what the network's loss takes: class indices (softmax), else 0/1 columns."""
        return Y.argmax(axis=1) if self.out_activation_ == "softmax" else Y

    def _probabilities(self, outputs):
        return softmax(outputs) if self.out_activation_ == "softmax" else sigmoid(outputs)

    def _score_outputs(self, outputs, Y, sw=None):
        if not np.isfinite(outputs).all():
            return math.nan
        predicted = self._label_binarizer.inverse_transform(self._squeezed(self._probabilities(outputs)))
        return float(accuracy_score(self._label_binarizer.inverse_transform(Y), predicted, sample_weight=sw))

    def _squeezed(self, y):
        return y.ravel() if self.n_outputs_ == 1 else y

    def predict(self, X):
        """The predicted classes, (n_samples,) or (n_samples, n_labels) for multilabel."""
        proba = self._probabilities(self._outputs(self._checked_X(X)))
        return self._label_binarizer.inverse_transform(self._squeezed(proba))

    def predict_proba(self, X):
        """Class probabilities, in the order of classes_."""
        proba = self._squeezed(self._probabilities(self._outputs(self._checked_X(X))))
        return np.vstack([1 - proba, proba]).T if proba.ndim == 1 else proba

    def predict_log_proba(self, X):
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    @available_if(_BaseMLP._has_partial_fit)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the last call. `classes` (every class of the
        whole data set) is required on the first call. -> self"""
        first = getattr(self, "classes_", None) is None
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None and not first and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                             f"was: {self.classes_!r}")
        if first:
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if type_of_target(y).startswith("multilabel") else classes)
            self.classes_ = self._label_binarizer.classes_
        return self._partial_fit(X, y, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (scikit-learn's), trained by fastbp: identity outputs and
    half the squared error, or with loss='poisson' exponential outputs (the network's are
    log-rates) and half the Poisson deviance (y >= 0)."""

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 backend="auto", dtype=None, callback=None):
        super().__init__(**_base_parameters(locals()))
        self.loss = loss

    def _check_parameters(self):
        _one_of(self.loss, "loss", ("squared_error", "poisson"))
        return super()._check_parameters()

    def _validate_input(self, X, y, incremental, reset, dtype):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=dtype, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(f"y must be >= 0 for loss='poisson' (counts or rates); got a minimum of {np.min(y):g}")
        return X, y.reshape(len(y), -1)

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _predicted(self, outputs):
        """The network's outputs -> predictions: the rates exp(outputs) for poisson."""
        if self.out_activation_ != "exp":
            return outputs
        with np.errstate(over="ignore"):
            return np.exp(outputs)

    def _stratify(self):
        return False

    def _targets(self, Y):
        return Y

    def _score_outputs(self, outputs, Y, sw=None):
        predicted = self._predicted(outputs)
        if not np.isfinite(predicted).all():
            return math.nan
        return float(r2_score(Y, predicted, sample_weight=sw))

    def predict(self, X):
        """The predicted values, (n_samples,) or (n_samples, n_outputs)."""
        out = self._predicted(self._outputs(self._checked_X(X)))
        return out.ravel() if out.shape[1] == 1 else out

    @available_if(_BaseMLP._has_partial_fit)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the last call. -> self"""
        return self._partial_fit(X, y, sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


# ---- the solvers ----

class _StochasticSolver:
    """scikit-learn's 'sgd' or 'adam' as a fastbp optimizer (the estimator's `_optimizer`;
    `learning_rate` is scikit-learn's current rate).

    scikit-learn's gradient is `scale` times the network's, so SGD runs at scale x its
    rate and Adam with its epsilon over scale; and as scikit-learn adds Adam's epsilon to
    the uncorrected sqrt(v), fastbp's (added to the bias-corrected one, torch's convention)
    is set before each step to epsilon / (scale * sqrt(1 - beta_2**t)): the same update.
    scikit-learn's SGD velocity holds rate x gradient where fastbp's holds gradients, so
    when the rate changes the velocity is rescaled by old / new: the same update again.
    """

    def __init__(self, est, scale):
        self.kind, self.scale = est.solver, scale
        self.learning_rate_init = self.learning_rate = float(est.learning_rate_init)
        self.schedule = None
        if self.kind == "sgd":
            self.schedule = {"constant": None, "invscaling": InverseScaling(est.power_t),
                             "adaptive": Adaptive()}[est.learning_rate]
            self.optimizer = SGD(lr=scale * self.learning_rate, momentum=est.momentum,
                                 nesterov=bool(est.nesterovs_momentum and est.momentum > 0))
        else:
            self.epsilon, self.beta_2 = float(est.epsilon), float(est.beta_2)
            self.optimizer = Adam(lr=self.learning_rate, betas=(est.beta_1, est.beta_2), eps=self.epsilon / scale)
        self._saved = None         # (checkpoint meta, arrays) of the optimizer while pickled

    def attach(self, net):
        """Bind the optimizer's state to `net` (moved over from an earlier network or a pickle)."""
        if self._saved is not None:
            self.optimizer, self._saved = optimizer_from_checkpoint(*self._saved, net), None
        elif self.optimizer.state and not self.optimizer.updates(net.flat_params):
            self.optimizer = optimizer_from_checkpoint(self.optimizer.checkpoint_meta(),
                                                       self.optimizer.checkpoint_arrays(), net)

    def step(self, net, loss_factor, alpha):
        """-> step(X_batch, y_batch, sw) -> the batch's loss as scikit-learn reports it. The
        L2 term is the network's (net.l2), scaled as the gradient is."""
        net.l2 = alpha / self.scale
        return _step(net, self.optimizer, self._adam_epsilon if self.kind == "adam" else None, loss_factor,
                     self.scale, alpha)

    def _adam_epsilon(self):
        t = self.optimizer.step_count + 1
        self.optimizer.eps = self.epsilon / (self.scale * math.sqrt(1.0 - self.beta_2 ** t))

    def set_learning_rate(self, lr):
        if lr == self.learning_rate:
            return
        velocity = self.optimizer.state.get("velocity") if self.kind == "sgd" else None
        if velocity is not None and self.optimizer.momentum > 0:
            _scale_buffer(self.optimizer._ops, velocity, self.learning_rate / lr)
        self.learning_rate = lr
        self.optimizer.lr = self.scale * lr

    def epoch_end(self, samples_seen):
        if self.schedule is not None:
            self.set_learning_rate(self.schedule.after_epoch(self.learning_rate, self.learning_rate_init, samples_seen))

    def plateau(self, msg, verbose):
        """At a plateau: -> True to stop, or False after lowering the rate (adaptive)."""
        lower = self.schedule.on_plateau(self.learning_rate) if self.schedule is not None else None
        if lower is None:
            if verbose:
                print(msg + (" Learning rate too small. Stopping." if isinstance(self.schedule, Adaptive)
                             else " Stopping."))
            return True
        self.set_learning_rate(lower)
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False

    def __getstate__(self):
        state = dict(self.__dict__)
        if self._saved is None and self.optimizer.state:     # state buffers belong to a network: host copies
            state["_saved"] = (self.optimizer.checkpoint_meta(), self.optimizer.checkpoint_arrays())
            state["optimizer"] = None
        return state


def _step(net, optimizer, before, loss_factor, scale, alpha):
    """-> step(X, y, sw): one training step of the network (its L2 term included) -> scikit-learn's
    batch loss (`_penalty_correction`)."""
    ops, state = net._ops, net._state
    weights = state.params.W
    correction = _penalty_correction(loss_factor, scale, alpha)

    def step(X, y, sw):
        if before is not None:
            before()
        if not correction:
            return loss_factor * ops.train_step(state, X, y, optimizer, sw)
        rows = X.shape[0] if sw is None else (float(np.sum(ops.to_host(sw), dtype=np.float64)) or 1.0)
        penalty = ops.weight_penalty(weights, None, alpha / rows)         # the weights before the step
        return loss_factor * ops.train_step(state, X, y, optimizer, sw) + correction * penalty
    return step


def _penalty_correction(loss_factor, scale, alpha):
    """scikit-learn reports loss_factor x the data loss + the L2 term P, where the network's
    loss is the data loss + P / scale: the report is loss_factor x the network's loss +
    (1 - loss_factor / scale) x P. That factor is 0 but for multi-output regression
    (scikit-learn's squared loss halves the mean over outputs, its gradient does not)."""
    return (1.0 - loss_factor / scale) * bool(alpha)


class _Objective:
    """scikit-learn's L-BFGS objective on the flat parameter vector theta -> (J, dJ/dtheta) in
    float64: scale x the network's mean loss, its L2 term included (net.l2), its gradient by
    backpropagation over the rows EVAL_ROWS at a time. `reported` is scikit-learn's loss at
    the last theta. With sample weights sw (host), each chunk counts by its total weight, and
    the L2 term is divided by the total weight (scikit-learn's sw_sum) instead of the rows.

    Chunk k's loss carries its L2 term over its own n_k rows and counts with share n_k / n, so
    each of the K chunks (of positive weight) is given l2 = alpha / scale / K: together
    they hold the L2 term once, over n. `finish()` leaves the network at alpha / scale."""

    def __init__(self, net, data, n, sw, scale, loss_factor, alpha):
        starts = np.arange(0, n, EVAL_ROWS)
        shares = np.diff(np.append(starts, n)) if sw is None else np.add.reduceat(sw, starts, dtype=np.float64)
        self.net, self.data, self.n = net, data, float(shares.sum())
        self.shares = shares / self.n
        self.scale, self.loss_factor, self.alpha = scale, loss_factor, alpha
        self.chunk_l2 = alpha / scale / np.count_nonzero(shares)
        self.correction = _penalty_correction(loss_factor, scale, alpha)
        self.theta = self.reported = None

    def __call__(self, theta):
        net, ops, state = self.net, self.net._ops, self.net._state
        net.set_flat_params(theta)
        net.l2 = self.chunk_l2
        loss, grad = 0.0, np.zeros(net.n_params)
        for (X, y, sw), share in zip(self.data.batches(EVAL_ROWS), self.shares):
            loss += share * ops.loss_and_grad(state, X, y, sw)
            grad += share * ops.to_host(state.grads.flat)
        self.theta = np.array(theta, copy=True)
        self.reported = self.loss_factor * loss
        if self.correction:
            penalty = 0.5 * self.alpha * sum(float(theta[w_at:b_at] @ theta[w_at:b_at])
                                             for w_at, b_at in net.arch.offsets) / self.n
            self.reported += self.correction * penalty
        J = self.scale * loss
        if not (math.isfinite(J) and np.isfinite(grad).all()):
            return math.inf, np.zeros_like(grad)       # the line search steps back
        return J, self.scale * grad

    def reported_at(self, theta):
        """scikit-learn's loss at theta (the network left holding theta)."""
        if self.theta is None or not np.array_equal(theta, self.theta):
            self(theta)
        return self.reported

    def finish(self):
        """The network's L2 term back to the whole data set's (alpha / scale)."""
        self.net.l2 = self.alpha / self.scale


# ---- data ----

def _dense(X):
    return X.toarray() if scipy.sparse.issparse(X) else X


def _dataset(net, X, y, sw=None):
    """Training rows (and their checked sample weights, or None) as mini-batches in the
    network's memory: the backend's own data set for dense X; for scipy.sparse X each batch
    is densified when it is taken."""
    if scipy.sparse.issparse(X):
        return _SparseDataset(net, X.tocsr(), y, sw)
    X, y = net._inputs(X, y)
    return net._ops.dataset(X, y, sw)


class _SparseDataset:
    """Sparse rows densified one batch at a time (the same `batches` as Ops.dataset's)."""

    def __init__(self, net, X, y, sw=None):
        self.net, self.X, self.sw = net, X, sw
        self.y = validation.targets(y, net.arch.loss, net.dtype, X.shape[0], net.arch.sizes[-1])

    def batches(self, batch_size, order=None):
        ops, n = self.net._ops, self.X.shape[0]
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n)) if order is None else order[start:start + batch_size]
            X = np.ascontiguousarray(self.X[rows].toarray(), dtype=self.net.dtype)
            sw = None if self.sw is None else ops.from_host(np.ascontiguousarray(self.sw[rows]))
            yield ops.from_host(X), ops.from_host(np.ascontiguousarray(self.y[rows])), sw


def _scale_buffer(ops, buf, factor):
    """buf *= factor for a backend array (in place on CPU backends, through the host on CUDA)."""
    host = ops.to_host(buf)
    host *= factor
    if host is not buf:
        ops.copy_into(buf, host)


# ---- parameter checks ----

def _base_parameters(arguments):
    """An estimator's __init__ arguments (its locals()) -> those _BaseMLP.__init__ takes."""
    return {name: arguments[name] for name in _BASE_PARAMETERS}


def _one_of(value, name, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {list(options)}; got {value!r}")


def _integer(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _real(value, name, low, high=None, closed_high=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number; got {value!r}")
    if value < low or (high is not None and (value > high or (value == high and not closed_high))):
        bound = f"in [{low}, {high}{']' if closed_high else ')'}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}; got {value!r}")
    return value
