"""fastbp.sklearn: scikit-learn's own estimator checks, pipelines, and that `import fastbp`
does not import scikit-learn."""
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastbp as fb  # noqa: E402
from fastbp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@parametrize_with_checks([MLPClassifier(backend="numpy"), MLPRegressor(backend="numpy")])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_import_fastbp_does_not_import_sklearn():
    code = "import sys, fastbp; fastbp.MLP([2, 1]); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_classifier_in_a_pipeline_on_digits():
    X, y = fb.datasets.load_digits(scale=False)
    labels = np.array(list("abcdefghij"))[y]                  # any label type
    settings = dict(hidden_layer_sizes=(32,), max_iter=30, random_state=0, batch_size=32, learning_rate_init=3e-3)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**settings))
    scores = cross_val_score(pipe, X[:900], labels[:900], cv=3)
    from sklearn.neural_network import MLPClassifier as SklearnMLP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # sklearn's ConvergenceWarning after 30 epochs
        theirs = cross_val_score(make_pipeline(StandardScaler(), SklearnMLP(**settings)), X[:900], labels[:900], cv=3)
    assert scores.mean() > 0.85 and scores.mean() >= theirs.mean() - 0.03, (scores.mean(), theirs.mean())
    pipe.fit(X[:1400], labels[:1400])
    proba = pipe.predict_proba(X[1400:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert set(pipe.predict(X[1400:])) <= set(labels)
    clf = pipe[-1]
    assert clf.n_iter_ <= 30 and len(clf.loss_curve_) == clf.n_iter_ and clf.net_.backend in fb.available_backends()


def test_regressor_fits_a_smooth_function_and_pickles():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(400, 2))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    reg = MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh", max_iter=200, learning_rate_init=1e-2,
                       random_state=0).fit(X, y)
    assert reg.score(X, y) > 0.95
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    assert reg.get_params()["hidden_layer_sizes"] == (32, 32)
    reg.set_params(max_iter=5, solver="sgd")
    assert reg.fit(X, y).n_iter_ <= 5


def test_same_random_state_same_model_and_bad_parameters():
    X, y = fb.datasets.load_digits()
    a = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=1).fit(X[:300], y[:300])
    b = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=1).fit(X[:300], y[:300])
    np.testing.assert_array_equal(a.net_.get_flat_params(), b.net_.get_flat_params())
    for bad in (dict(solver="lbfgs"), dict(max_iter=0), dict(batch_size=-3), dict(activation="nope")):
        with pytest.raises(ValueError):
            MLPClassifier(**bad).fit(X[:50], y[:50])
