"""fit's learning-rate schedules, early stopping and validation split (fastbp.schedules):
scikit-learn's rules, checked on fit's own history."""
import numpy as np
import pytest

import fastbp as fb
from fastbp.schedules import Adaptive, EarlyStopping, InverseScaling


def problem(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def net(seed=0):
    return fb.MLP([5, 8, 2], loss="cross_entropy", dtype=np.float64, backend="numpy", seed=seed)


def test_the_no_improvement_rule_is_scikit_learns():
    # a loss must beat the best so far by more than tol; the best follows the minimum regardless
    rule = EarlyStopping(n_iter_no_change=2, tol=0.1)
    counts = [(rule.update(v, None), rule.count, rule.best)[1:] for v in (1.0, 0.95, 0.86, 0.7, 0.71)]
    assert counts == [(0, 1.0), (1, 0.95), (2, 0.86), (0, 0.7), (1, 0.7)]
    assert rule.update(0.69, None) is False and rule.count == 2 and rule.update(0.7, None) is True
    score = EarlyStopping(n_iter_no_change=1, tol=0.01, monitor="val_accuracy", restore_best=False)
    assert [score.update(v, None) for v in (0.5, 0.505, 0.6, 0.6)] == [False, False, False, False]
    assert score.count == 1 and score.best == 0.6 and score.update(0.605, None) is True


def test_a_stalled_loss_stops_after_n_iter_no_change_plus_one_epochs():
    """scikit-learn runs 7 epochs at n_iter_no_change=5 when nothing improves after the first."""
    X, y = problem()
    history = net().fit(X, y, epochs=50, optimizer=fb.SGD(lr=1e-12), progress=False,
                        early_stopping=EarlyStopping(n_iter_no_change=5, tol=1e-4))
    assert history["epoch"] == list(range(1, 8))
    never = EarlyStopping(n_iter_no_change=np.inf, tol=1e9)
    assert len(net().fit(X, y, epochs=12, optimizer=fb.SGD(lr=1e-12), progress=False,
                         early_stopping=never)["epoch"]) == 12
    assert never.count == 11


def test_inverse_scaling_sets_the_rate_from_the_rows_seen():
    X, y = problem()
    opt = fb.SGD(lr=0.5, momentum=0.9)
    history = net().fit(X, y, epochs=4, batch_size=16, optimizer=opt, progress=False,
                        lr_schedule=InverseScaling(power_t=0.25))
    assert history["lr"] == [0.5] + [0.5 / (60 * e + 1) ** 0.25 for e in (1, 2, 3)]
    assert opt.lr == 0.5 / (60 * 4 + 1) ** 0.25


def test_adaptive_divides_the_rate_at_each_plateau_then_stops():
    X, y = problem()
    opt = fb.SGD(lr=1e-5)
    history = net().fit(X, y, epochs=100, optimizer=opt, progress=False, lr_schedule=Adaptive(),
                        early_stopping=EarlyStopping(n_iter_no_change=1, tol=10.0))
    # plateaus after epochs 3, 5 and 7 (count 2 > 1): 1e-5 -> 2e-6 -> 4e-7 (<= 1e-6: the next one stops)
    assert history["lr"] == [1e-5] * 3 + [1e-5 / 5] * 2 + [1e-5 / 5 / 5] * 2
    assert opt.lr == 1e-5 / 5 / 5


def test_validation_split_holds_rows_out_and_restores_the_best_epoch():
    X, y = problem(n=80)
    model, seen = net(), []
    stop = EarlyStopping(n_iter_no_change=3, tol=0.0, monitor="val_loss")
    history = model.fit(X, y, epochs=30, batch_size=8, optimizer=fb.SGD(lr=2.0), seed=1, progress=False,
                        validation_split=0.25, early_stopping=stop,
                        callback=lambda epoch, h: seen.append(model.get_flat_params()))
    assert len(history["val_loss"]) == len(history["epoch"]) and history["samples_per_s"]
    best = int(np.argmin(history["val_loss"]))
    assert stop.best == history["val_loss"][best] and stop.restore_best
    np.testing.assert_array_equal(model.get_flat_params(), seen[best])
    # the same seed holds out the same rows: a second run repeats the first
    again = net().fit(X, y, epochs=30, batch_size=8, optimizer=fb.SGD(lr=2.0), seed=1, progress=False,
                      validation_split=0.25, early_stopping=EarlyStopping(3, 0.0, monitor="val_loss"))
    assert again["val_loss"] == history["val_loss"]


@pytest.mark.parametrize("bad, error", [
    (dict(validation_split=0.0), ValueError), (dict(validation_split=1.5), ValueError),
    (dict(validation_split="0.1"), TypeError), (dict(validation_split=0.001), ValueError),
    (dict(validation_split=0.2, validation_data=problem(10)), ValueError),
    (dict(lr_schedule="invscaling"), TypeError), (dict(lr_schedule=Adaptive()), ValueError),
    (dict(early_stopping=10), TypeError),
    (dict(early_stopping=EarlyStopping(monitor="val_loss")), ValueError),
    (dict(early_stopping=EarlyStopping(monitor="r2")), ValueError),
    (dict(early_stopping=EarlyStopping(), resume="any.npz"), ValueError),
    (dict(validation_split=0.2, resume="any.npz"), ValueError),
])
def test_rejected_schedules_change_nothing(bad, error):
    X, y = problem()
    model, opt = net(), fb.Adam(lr=1e-2)
    model.fit(X, y, epochs=1, optimizer=opt, progress=False)
    params, m, steps = model.get_flat_params(), opt.state["m"].copy(), opt.step_count
    with pytest.raises(error):
        model.fit(X, y, **(dict(epochs=2, optimizer=opt, progress=False) | bad))
    np.testing.assert_array_equal(model.get_flat_params(), params)
    np.testing.assert_array_equal(opt.state["m"], m)
    assert opt.step_count == steps


@pytest.mark.parametrize("make, error", [
    (lambda: EarlyStopping(n_iter_no_change=0), ValueError), (lambda: EarlyStopping(n_iter_no_change=2.5), TypeError),
    (lambda: EarlyStopping(tol=-1), ValueError), (lambda: EarlyStopping(monitor="accuracy_"), ValueError),
    (lambda: EarlyStopping(restore_best="yes"), TypeError), (lambda: InverseScaling(-0.5), ValueError),
    (lambda: Adaptive(factor=1.0), ValueError), (lambda: Adaptive(min_lr=float("nan")), ValueError),
])
def test_bad_rule_arguments(make, error):
    with pytest.raises(error):
        make()
