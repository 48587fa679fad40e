"""Tests for fnn.train.selection: grid order against itertools, random search by its statistics (SciPy KS and
chi-square),
folds against scikit-learn, cross-validation against the ridge PRESS closed form, and an end-to-end choice of the
ridge penalty against the normal equations."""
import itertools
import math

import jax
import numpy as np
import pytest
from scipy import stats

from fnn.train import selection as sel


def test_grid_size_and_order_follow_itertools_product():
    grid = {"lr": [0.1, 0.01, 0.001], "hidden": [32, 64], "act": ["relu", "tanh"]}
    configs = sel.grid_configs(grid)
    assert len(configs) == 3 * 2 * 2
    expected = [{"lr": a, "hidden": b, "act": c} for a, b, c in itertools.product(*grid.values())]
    assert configs == expected
    assert configs[1] == {"lr": 0.1, "hidden": 32, "act": "tanh"}      # last key varies fastest
    with pytest.raises(ValueError, match=r"grid\['lr'\] must be a non-empty list of values, got 0.1; write "
                                         r"a single value as \[0.1\]"):
        sel.grid_configs({"lr": 0.1})
    with pytest.raises(ValueError, match=r"grid\['act'\] must be a non-empty list.*got 'relu'"):
        sel.grid_configs({"act": "relu"})


def test_grid_search_ranks_by_score_in_both_modes():
    def bowl(c):
        return {"loss": (c["x"] - 1) ** 2 + (c["y"] + 2) ** 2, "size": c["x"] * 10}

    grid = {"x": [-1, 0, 1, 2], "y": [-3, -2, 0]}
    res = sel.grid_search(bowl, grid, mode="min", metric="loss")
    assert res[0]["config"] == {"x": 1, "y": -2} and res[0]["score"] == 0.0
    assert [r["rank"] for r in res] == list(range(1, 13))
    brute = sorted((bowl(c)["loss"] for c in sel.grid_configs(grid)))
    assert [r["score"] for r in res] == brute
    assert res[0]["metrics"] == {"size": 10}
    res_max = sel.grid_search(lambda c: -bowl(c)["loss"], grid)
    assert res_max[0]["config"] == {"x": 1, "y": -2}
    assert all(a["score"] >= b["score"] for a, b in zip(res_max, res_max[1:]))
    with pytest.raises(ValueError, match="without the key 'score'.*pass metric=<its key>"):
        sel.grid_search(bowl, grid)
    with pytest.raises(ValueError, match="mode must be 'max' .* got 'best'"):
        sel.grid_search(bowl, grid, mode="best", metric="loss")


def test_nan_scores_rank_last_and_ties_keep_order():
    scores = {0: 0.5, 1: float("nan"), 2: 0.9, 3: 0.5}
    res = sel.grid_search(lambda c: scores[c["i"]], {"i": [0, 1, 2, 3]})
    assert [r["config"]["i"] for r in res] == [2, 0, 3, 1]
    res_min = sel.grid_search(lambda c: scores[c["i"]], {"i": [0, 1, 2, 3]}, mode="min")
    assert [r["config"]["i"] for r in res_min] == [0, 3, 2, 1]


def test_format_table_is_aligned():
    res = sel.grid_search(lambda c: {"score": 1.0 / c["lr"], "epochs": 3}, {"lr": [0.1, 0.01], "opt": ["sgd", "adam"]})
    text = sel.format_table(res)
    lines = text.splitlines()
    assert lines[0].split() == ["rank", "lr", "opt", "score", "epochs"] and len(lines) == 2 + 4
    assert set(lines[1].replace(" ", "")) == {"-"}
    # Column j of every line ends (numbers) or starts (text) at the same offset as the rule line's dashes.
    rule_spans = [(m.start(), m.end()) for m in __import__("re").finditer(r"-+", lines[1])]
    for row in lines[2:]:
        rank, lr, opt, score, epochs = row.split()
        assert row[rule_spans[0][0]:rule_spans[0][1]].strip() == rank
        assert row[rule_spans[1][0]:rule_spans[1][1]].strip() == lr
        assert row[rule_spans[2][0]:rule_spans[2][1]].rstrip() == opt and row[rule_spans[2][0]] != " "
        assert row[rule_spans[3][0]:rule_spans[3][1]].lstrip() == score and row[rule_spans[3][1] - 1] != " "
    assert lines[2].split()[:4] == ["1", "0.01", "sgd", "100"]


# ----------------------------------------------------------------------------------------------- random search
def test_random_search_distributions_by_statistics():
    n = 4000
    space = {"lr": ("log_uniform", 1e-4, 1e-1), "wd": ("uniform", -2.0, 3.0), "layers": ("int", 1, 6),
             "act": ("choice", ["relu", "tanh", "gelu"]), "epochs": 10}
    configs = sel.sample_configs(space, n, key=jax.random.key(0))
    lr = np.array([c["lr"] for c in configs])
    wd = np.array([c["wd"] for c in configs])
    layers = np.array([c["layers"] for c in configs])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-1 and all(c["epochs"] == 10 for c in configs)
    # log10(lr) ~ U(-4, -1): Kolmogorov-Smirnov against the uniform CDF.
    assert stats.kstest(np.log10(lr), "uniform", args=(-4.0, 3.0)).pvalue > 1e-3
    # Negative control: the same test rejects a plain uniform sampler on the same range.
    plain = sel.sample_configs({"lr": ("uniform", 1e-4, 1e-1)}, n, key=jax.random.key(1))
    assert stats.kstest(np.log10([c["lr"] for c in plain]), "uniform", args=(-4.0, 3.0)).pvalue < 1e-6
    assert stats.kstest(wd, "uniform", args=(-2.0, 5.0)).pvalue > 1e-3
    counts = np.bincount(layers, minlength=7)[1:]                     # both ends included
    assert counts.sum() == n and stats.chisquare(counts).pvalue > 1e-3
    acts = np.array([["relu", "tanh", "gelu"].index(c["act"]) for c in configs])
    assert stats.chisquare(np.bincount(acts, minlength=3)).pvalue > 1e-3
    # Independence: rank correlations between hyper-parameters are within noise (|rho| < 4/sqrt(n)).
    for a, b in ((lr, wd), (lr, layers), (wd, acts)):
        assert abs(stats.spearmanr(a, b).statistic) < 4 / math.sqrt(n)


def test_random_search_is_reproducible_and_entries_do_not_interact():
    space = {"lr": ("log_uniform", 1e-3, 1.0), "m": ("uniform", 0.0, 0.99)}
    a = sel.sample_configs(space, 20, key=jax.random.key(7))
    assert a == sel.sample_configs(space, 20, key=jax.random.key(7))
    assert a != sel.sample_configs(space, 20, key=jax.random.key(8))
    b = sel.sample_configs({**space, "extra": ("int", 0, 3)}, 20, key=jax.random.key(7))
    assert [c["lr"] for c in a] == [c["lr"] for c in b] and [c["m"] for c in a] == [c["m"] for c in b]
    res = sel.random_search(lambda c: -abs(math.log10(c["lr"]) + 1.0), space, 30, key=jax.random.key(7))
    best = max(-abs(math.log10(c["lr"]) + 1.0) for c in sel.sample_configs(space, 30, key=jax.random.key(7)))
    assert res[0]["score"] == best and len(res) == 30


@pytest.mark.parametrize("spec,message", [
    (("loguniform", 1e-4, 1.0), r"unknown kind 'loguniform'; expected one of \('uniform', 'log_uniform'"),
    (("log_uniform", 0.0, 1.0), r"needs 0 < lo <= hi"),
    (("uniform", 2.0, 1.0), r"needs lo <= hi"),
    (("int", 1.5, 3), r"needs integer bounds"),
    (("choice", []), r"must be \('choice', \[v1, v2, ...\]\) with a non-empty list"),
    (("uniform", 1.0), r"must be \('uniform', lo, hi\)"),
])
def test_bad_space_entries(spec, message):
    with pytest.raises(ValueError, match=message):
        sel.sample_configs({"p": spec}, 3, key=jax.random.key(0))


# -------------------------------------------------------------------------------------------------------- folds
def _assert_partition(splits, n):
    vals = np.concatenate([v for _, v in splits])
    np.testing.assert_array_equal(np.sort(vals), np.arange(n))           # each index in exactly one fold
    for train, val in splits:
        np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
        assert np.intersect1d(train, val).size == 0


@pytest.mark.parametrize("n,k", [(10, 3), (11, 5), (7, 7), (100, 10)])
def test_kfold_partitions_and_matches_sklearn_without_shuffle(n, k):
    from sklearn.model_selection import KFold

    splits = sel.kfold_indices(n, k, shuffle=False)
    assert len(splits) == k
    _assert_partition(splits, n)
    for (train, val), (sk_train, sk_val) in zip(splits, KFold(n_splits=k).split(np.zeros(n))):
        np.testing.assert_array_equal(train, sk_train)
        np.testing.assert_array_equal(val, sk_val)
    shuffled = sel.kfold_indices(n, k, key=jax.random.key(0))
    _assert_partition(shuffled, n)
    assert sorted(len(v) for _, v in shuffled) == sorted(len(v) for _, v in splits)
    if n > k:
        assert any(not np.array_equal(a[1], b[1]) for a, b in zip(shuffled, splits))


def test_stratified_kfold_balances_every_class():
    labels = np.repeat(np.arange(3, dtype=np.int32), [23, 11, 6])
    labels = labels[np.random.default_rng(0).permutation(labels.size)]
    splits = sel.kfold_indices(labels.size, 4, key=jax.random.key(3), labels=labels)
    _assert_partition(splits, labels.size)
    for c, count in enumerate([23, 11, 6]):
        per_fold = [int(np.sum(labels[val] == c)) for _, val in splits]
        assert sum(per_fold) == count and set(per_fold) <= {count // 4, count // 4 + 1}, per_fold
    with pytest.raises(ValueError, match=r"labels must be integer class labels of shape \(40,\)"):
        sel.kfold_indices(40, 4, key=jax.random.key(0), labels=labels[:10])


def test_kfold_arguments_and_leave_one_out_against_sklearn():
    from sklearn.model_selection import LeaveOneOut

    for (train, val), (sk_train, sk_val) in zip(sel.leave_one_out_indices(6), LeaveOneOut().split(np.zeros(6))):
        np.testing.assert_array_equal(train, sk_train)
        np.testing.assert_array_equal(val, sk_val)
    with pytest.raises(ValueError, match=r"shuffle=True needs key=jax.random.key\(seed\)"):
        sel.kfold_indices(10, 2)
    with pytest.raises(ValueError, match=r"k must be an integer with 2 <= k <= n=10, got 11"):
        sel.kfold_indices(10, 11, shuffle=False)


# ------------------------------------------------------------------------------------------- ridge regression
def _ridge_lstsq(lam, X, y):
    """Ridge by least squares on the augmented system [X; sqrt(lam) I] w = [y; 0]."""
    p = X.shape[1]
    A = np.vstack([X, math.sqrt(lam) * np.eye(p)])
    return np.linalg.lstsq(A, np.concatenate([y, np.zeros(p)]), rcond=None)[0]


def _ridge_normal(lam, X, y):
    return np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ y)


def _mse(w, X, y):
    return float(np.mean((X @ w - y) ** 2))


def _problem(seed, n, p, noise):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    w = 0.3 * rng.standard_normal(p)
    return X, X @ w + noise * rng.standard_normal(n)


def test_cross_validate_leave_one_out_equals_the_press_formula():
    X, y = _problem(0, 25, 6, 0.5)
    lam = 2.0
    cv = sel.cross_validate(lambda Xt, yt, Xv, yv: _mse(_ridge_lstsq(lam, Xt, yt), Xv, yv), X, y, k=25,
                            shuffle=False)
    # Closed form: LOO residual e_i / (1 - H_ii) with H = X (X^T X + lam I)^-1 X^T (Allen 1974, PRESS).
    H = X @ np.linalg.solve(X.T @ X + lam * np.eye(6), X.T)
    press = np.mean(((y - H @ y) / (1.0 - np.diag(H))) ** 2)
    np.testing.assert_allclose(cv["mean"], press, rtol=1e-10)
    assert len(cv["scores"]) == 25
    five = sel.cross_validate(lambda Xt, yt, Xv, yv: {"score": _mse(_ridge_lstsq(lam, Xt, yt), Xv, yv)}, X, y, 5,
                              key=jax.random.key(2))
    manual = [_mse(_ridge_normal(lam, X[t], y[t]), X[v], y[v])
              for t, v in sel.kfold_indices(25, 5, key=jax.random.key(2))]
    np.testing.assert_allclose(five["scores"], manual, rtol=1e-9)
    np.testing.assert_allclose([five["mean"], five["std"]], [np.mean(manual), np.std(manual)], rtol=1e-9)


def test_select_and_test_chooses_the_ridge_penalty_the_normal_equations_choose():
    X, y = _problem(1, 120, 20, 1.5)
    train, val, test = (X[:40], y[:40]), (X[40:80], y[40:80]), (X[80:], y[80:])
    lambdas = [0.0, 0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0]
    out = sel.select_and_test(lambda c, Xf, yf: _ridge_lstsq(c["lam"], Xf, yf), lambda w, Xs, ys: _mse(w, Xs, ys),
                              sel.grid_configs({"lam": lambdas}), train, val, test, mode="min")
    val_mse = [_mse(_ridge_normal(lam, *train), *val) for lam in lambdas]
    best = lambdas[int(np.argmin(val_mse))]
    assert best not in (lambdas[0], lambdas[-1])                       # a real trade-off, not an end of the grid
    assert out["config"] == {"lam": best}
    np.testing.assert_allclose(out["val_score"], min(val_mse), rtol=1e-9)
    w_final = _ridge_normal(best, np.vstack([train[0], val[0]]), np.concatenate([train[1], val[1]]))
    np.testing.assert_allclose(out["test_score"], _mse(w_final, *test), rtol=1e-9)
    np.testing.assert_allclose(out["model"], w_final, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose([r["score"] for r in out["results"]], sorted(val_mse), rtol=1e-9)
    # Random search on a log scale gets within 2% of the fine-grid optimum of the validation error.
    fine = np.logspace(-2, 3, 400)
    fine_best = min(_mse(_ridge_normal(lam, *train), *val) for lam in fine)
    res = sel.random_search(lambda c: _mse(_ridge_lstsq(c["lam"], *train), *val), {"lam": ("log_uniform", 1e-2, 1e3)},
                            40, key=jax.random.key(0), mode="min")
    assert res[0]["score"] <= 1.02 * fine_best


def test_noise_free_data_selects_no_penalty():
    X, y = _problem(2, 60, 5, 0.0)
    out = sel.select_and_test(lambda c, Xf, yf: _ridge_lstsq(c["lam"], Xf, yf), lambda w, Xs, ys: -_mse(w, Xs, ys),
                              sel.grid_configs({"lam": [10.0, 1.0, 0.0, 0.1]}), (X[:20], y[:20]), (X[20:40], y[20:40]),
                              (X[40:], y[40:]))
    assert out["config"] == {"lam": 0.0} and out["test_score"] > -1e-20
    with pytest.raises(ValueError, match="configs is empty"):
        sel.select_and_test(None, None, [], (X, y), (X, y), (X, y))
