"""Metrics and the prediction rules that go with each loss.

cross_entropy   outputs are logits over classes: predict = argmax, proba = softmax,
                metric = accuracy
bce             outputs are logits of independent labels: predict = logit > 0,
                proba = sigmoid, metric = accuracy (every label of a row right)
mse             outputs are the prediction: metric = R^2 (coefficient of determination,
                averaged uniformly over outputs, as scikit-learn's r2_score)
poisson         outputs are log-rates: predict = exp(outputs), metric = R^2 of the rates

The metrics take optional per-row sample weights, as scikit-learn's.
"""
import numpy as np

from . import losses


def softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(logits):
    e = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1 / (1 + e), e / (1 + e))


def accuracy(y_true, y_pred, sample_weight=None):
    """Fraction of rows predicted exactly (every column, for 2-D targets); weighted by rows."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape; got {y_true.shape} and {y_pred.shape}")
    hit = y_true == y_pred
    if hit.ndim > 1:
        hit = hit.all(axis=tuple(range(1, hit.ndim)))
    return float(np.average(hit, weights=sample_weight))


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    return float(np.mean((y_true - y_pred) ** 2))


def r2_score(y_true, y_pred, sample_weight=None):
    """1 - SS_res / SS_tot per output, averaged; a constant target scores 1 if predicted
    exactly, else 0 (scikit-learn's convention). Weighted sums with sample_weight."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    w = np.ones(len(y_true)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w = w[:, None]
    ss_res = (w * (y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = (w * (y_true - np.average(y_true, axis=0, weights=w[:, 0])) ** 2).sum(axis=0)
    safe = ss_tot > 0
    scores = np.where(ss_res == 0, 1.0, 0.0)
    scores[safe] = 1 - ss_res[safe] / ss_tot[safe]
    return float(scores.mean())


def metric_name(loss_code):
    """The history key of the metric reported for a loss: "accuracy" or "r2"."""
    return "r2" if loss_code in (losses.MSE, losses.POISSON) else "accuracy"


def predictions(outputs, loss_code):
    """Network outputs -> predictions: class labels, 0/1 labels, or the outputs themselves."""
    if loss_code == losses.CROSS_ENTROPY:
        return outputs.argmax(axis=1)
    if loss_code == losses.BCE:
        return (outputs > 0).astype(np.intp)
    if loss_code == losses.POISSON:
        with np.errstate(over="ignore"):
            return np.exp(outputs)
    return outputs


def probabilities(outputs, loss_code):
    if loss_code == losses.CROSS_ENTROPY:
        return softmax(outputs)
    if loss_code == losses.BCE:
        return sigmoid(outputs)
    raise ValueError(f"predict_proba needs a classifier (loss 'cross_entropy' or 'bce'); this network's loss "
                     f"is {losses.NAMES[loss_code]!r}")


def score(outputs, y, loss_code, sample_weight=None):
    """The loss's metric for network outputs against checked targets (labels or arrays)."""
    if metric_name(loss_code) == "r2":
        return r2_score(y, predictions(outputs, loss_code), sample_weight)
    return accuracy(y, predictions(outputs, loss_code), sample_weight)
