"""examples/lecture_experiments.py: the CV-over-degree table against numpy.polyfit fold by fold, the choice of
degree 2 on quadratic data, nested least squares, and the quick runs of the learning-rate and ensemble experiments."""
import importlib.util
import math
import os

import jax
import numpy as np
import pytest
from scipy import stats

from fnn.train import kfold_indices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("lecture_experiments",
                                                  os.path.join(ROOT, "examples", "lecture_experiments.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cv_errors_equal_a_polyfit_reference_fold_by_fold(ex):
    x, y = ex.quadratic_data(30, seed=3)
    k, key = 5, jax.random.key(3)
    results = {r["config"]["degree"]: r for r in ex.cv_by_degree(x, y, range(1, 10), k, key=key)}
    for d in range(1, 10):
        fold_mse = []
        for train, val in kfold_indices(len(x), k, key=key):        # the same folds, rebuilt from the same key
            coef = np.polyfit(x[train], y[train], d)
            fold_mse.append(np.mean((np.polyval(coef, x[val]) - y[val]) ** 2))
        np.testing.assert_allclose(results[d]["score"], np.mean(fold_mse), rtol=1e-7)
        np.testing.assert_allclose(results[d]["metrics"]["cv_std"], np.std(fold_mse), rtol=1e-6)
        full = np.mean((np.polyval(np.polyfit(x, y, d), x) - y) ** 2)
        np.testing.assert_allclose(results[d]["metrics"]["train"], full, rtol=1e-7)


def test_training_error_never_increases_with_degree_but_cv_error_does(ex):
    x, y = ex.quadratic_data(30, seed=0)
    rows = sorted(ex.cv_by_degree(x, y, range(1, 10), 5, key=jax.random.key(0)), key=lambda r: r["config"]["degree"])
    train = [r["metrics"]["train"] for r in rows]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(train, train[1:]))      # nested least squares
    cv = [r["score"] for r in rows]
    assert cv[0] > 3 * min(cv)                                             # degree 1 underfits
    assert any(b > a for a, b in zip(cv, cv[1:]))                          # CV error rises where train error falls


def test_degree_two_is_chosen_on_quadratic_data(ex):
    x, y = ex.quadratic_data(200, seed=1)
    results = ex.cv_by_degree(x, y, range(1, 10), 10, key=jax.random.key(1))
    assert results[0]["config"]["degree"] == 2
    assert ex.one_standard_error_choice(results, 10) == 2
    out = ex.run_cv(quick=True, print_fn=lambda s: None)                  # 20 data sets of 30 points
    assert max(set(out["chosen"]), key=out["chosen"].count) == 2
    assert out["one_se"].count(2) >= 16
    assert out["averaged"][0]["config"]["degree"] == 2


def test_paired_interval_matches_scipy_t_interval(ex):
    d = np.array([0.004, 0.009, -0.002, 0.007, 0.011, 0.003])
    ci = ex.paired_interval(d)
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    np.testing.assert_allclose(ci["t"], (lo, hi), rtol=1e-10)
    assert ci["bootstrap"][0] < d.mean() < ci["bootstrap"][1] and math.isclose(ci["mean"], d.mean())


def test_learning_rate_regimes_quick(ex):
    out = ex.run_lr(quick=True, print_fn=lambda s: None)
    low, good, high = (out[("lecture", lr)][0] for lr in (1e-6, 1e-3, 1e6))
    assert abs(low["start"] - math.log(10)) < 0.05                       # small weights: ln 10 at the start
    assert abs(low["loss"][-1] - low["start"]) < 0.01                     # too low: the loss barely moves
    assert good["loss"][-1] < low["start"] - 0.1                          # a good rate: it falls
    assert high["stop_reason"].startswith("non-finite loss at epoch 1, step")   # too high: fit stops
    assert np.isfinite(high["loss"][0]) and high["loss"][0] > 1e10        # the mean of the steps before it
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(high["params"]))


def test_ensemble_quick_gain_is_ensemble_minus_mean_member(ex):
    out = ex.run_ensemble(quick=True, print_fn=lambda s: None)[2]
    np.testing.assert_allclose(out["gain"], np.subtract(out["ensemble"], out["mean_member"]), atol=1e-12)
    assert 0.3 < out["mean_member"][0] <= 1.0 and math.isnan(out["t"][0])   # one seed: no t interval
