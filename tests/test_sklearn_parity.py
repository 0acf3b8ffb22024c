"""Accuracy beside scikit-learn's MLP over several seeds, on its bundled data sets (and, with
FASTBP_FULL=1, at scikit-learn's default settings and on the 20,000 x 100 synthetic sets):
the mean test score of fastbp.sklearn over the seeds within a tolerance of scikit-learn's.
Scores only; the fit times are bench/sklearn_parity.py's."""
import numpy as np
import pytest

pytest.importorskip("sklearn")
from fastbp.benchmark import estimators  # noqa: E402

from conftest import FULL  # noqa: E402

SEEDS = range(5) if FULL else range(3)
SETTINGS = {} if FULL else dict(hidden_layer_sizes=(32,))      # {}: scikit-learn's defaults
DATASETS = estimators.ALL if FULL else estimators.BUNDLED
TOLERANCE = 0.02          # on the mean accuracy or R^2 over the seeds


@pytest.mark.parametrize("name", DATASETS)
def test_mean_score_over_seeds_is_scikit_learns(name):
    X, y = estimators.load(name)
    scores = {"sklearn": [], "fastbp": []}
    for seed in SEEDS:
        data = estimators.split(X, y, name in estimators.REGRESSION, seed)
        for library in scores:
            scores[library].append(estimators.run(library, name, seed, data=data, **SETTINGS)["score"])
    ours, theirs = np.mean(scores["fastbp"]), np.mean(scores["sklearn"])
    assert abs(ours - theirs) <= TOLERANCE, scores
    assert ours > (0.3 if name in estimators.REGRESSION else 0.8), scores
