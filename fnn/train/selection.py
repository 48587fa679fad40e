"""Model selection: grid and random search, k-fold and leave-one-out cross-validation, and a final test.

Contract: the model is hidden behind callables, so nothing here depends on the trainer.
  search     ``train_and_score(config: dict) -> float | dict``; a dict must hold the score under ``metric``
             (default ``"score"``) and may hold other numbers, kept in the row's ``"metrics"`` and the table.
  cross-val  ``train_and_score(X_train, y_train, X_val, y_val) -> float | dict`` (same rule for dicts).
  final test ``fit(config, X, y) -> model`` and ``score(model, X, y) -> float``.
A results table is a list of rows ``{"rank", "config", "score", "metrics"}`` sorted best first (``mode="max"``:
higher is better, ``"min"``: lower is better); a NaN score (a diverged run) ranks last and ties keep the order of
evaluation.
"""
from __future__ import annotations

import itertools
import math

import jax
import numpy as np

from fnn.data import numpy_rng

_KINDS = ("uniform", "log_uniform", "choice", "int")


# ------------------------------------------------------------------------------------------------ configurations
def grid_configs(grid):
    """Every combination of the values in ``grid``, the last key varying fastest.

    ``len(grid_configs(grid)) == prod(len(v) for v in grid.values())``; the order is ``itertools.product`` over the
    keys in insertion order.

    Args:
      grid: ``dict[str, list]``, e.g. ``{"lr": [0.1, 0.01], "hidden": [32, 64]}``.

    Returns:
      ``list[dict]``: ``[{"lr": 0.1, "hidden": 32}, {"lr": 0.1, "hidden": 64}, {"lr": 0.01, "hidden": 32}, ...]``.

    Example:
      >>> grid_configs({"lr": [0.1, 0.01], "hidden": [32, 64]})[1]
      {'lr': 0.1, 'hidden': 64}

    Reference: Hastie, Tibshirani & Friedman, "The Elements of Statistical Learning", 2nd ed., 2009, sec. 7.10.
    """
    if not isinstance(grid, dict):
        raise ValueError(f"grid_configs: expected a dict of lists such as {{'lr': [0.1, 0.01]}}, got "
                         f"{type(grid).__name__}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, np.ndarray)) or len(values) == 0:
            raise ValueError(f"grid_configs: grid[{name!r}] must be a non-empty list of values, got {values!r}; "
                             f"write a single value as [{values!r}]")
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(list(grid[n]) for n in names))]


def _check_spec(name, spec):
    if not (isinstance(spec, tuple) and spec and isinstance(spec[0], str)):
        return None                                  # a constant
    kind = spec[0]
    if kind not in _KINDS:
        raise ValueError(f"sample_configs: space[{name!r}] has unknown kind {kind!r}; expected one of {_KINDS}, "
                         f"e.g. ('log_uniform', 1e-4, 1e-1)")
    if kind == "choice":
        if len(spec) != 2 or not isinstance(spec[1], (list, tuple)) or len(spec[1]) == 0:
            raise ValueError(f"sample_configs: space[{name!r}] must be ('choice', [v1, v2, ...]) with a non-empty "
                             f"list, got {spec!r}")
        return kind
    if len(spec) != 3:
        raise ValueError(f"sample_configs: space[{name!r}] must be ({kind!r}, lo, hi), got {spec!r}")
    lo, hi = spec[1], spec[2]
    if kind == "int" and not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (lo, hi)):
        raise ValueError(f"sample_configs: space[{name!r}] = {spec!r} needs integer bounds")
    if not lo <= hi or (kind == "log_uniform" and not lo > 0):
        need = "0 < lo <= hi" if kind == "log_uniform" else "lo <= hi"
        raise ValueError(f"sample_configs: space[{name!r}] = {spec!r} needs {need}")
    return kind


def sample_configs(space, n, *, key):
    """``n`` configurations drawn at random, each hyper-parameter independently of the others.

    With ``u ~ U[0, 1)`` drawn from a generator seeded by ``jax.random.fold_in(key, i)`` for the ``i``-th entry of
    ``space``:
      ``("uniform", lo, hi)``      ``lo + (hi - lo) * u``
      ``("log_uniform", lo, hi)``  ``exp(log lo + (log hi - log lo) * u)`` (so ``log x`` is uniform)
      ``("int", lo, hi)``          an integer uniform on ``lo..hi``, both ends included
      ``("choice", [v...])``       one of the values, each with probability ``1 / len``
      any other value              used as is in every configuration
    Because each entry has its own key, adding an entry does not change the values drawn for the others.

    Args:
      space: ``dict[str, spec]`` as above.
      n: number of configurations, ``>= 1``.
      key: ``jax.random`` key.

    Returns:
      ``list[dict]`` of Python floats/ints/values.

    Example:
      >>> configs = sample_configs({"lr": ("log_uniform", 1e-4, 1e-1), "hidden": ("choice", [32, 64])}, 10,
      ...                          key=jax.random.key(0))
      >>> len(configs), all(1e-4 <= c["lr"] <= 1e-1 and c["hidden"] in (32, 64) for c in configs)
      (10, True)

    Reference: Bergstra & Bengio, "Random search for hyper-parameter optimization", JMLR 13, 2012.
    """
    if not isinstance(space, dict):
        raise ValueError(f"sample_configs: expected a dict such as {{'lr': ('log_uniform', 1e-4, 1e-1)}}, got "
                         f"{type(space).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"sample_configs: n must be an integer >= 1, got {n!r}")
    columns = {}
    for i, (name, spec) in enumerate(space.items()):
        kind = _check_spec(name, spec)
        if kind is None:
            columns[name] = [spec] * n
            continue
        rng = numpy_rng(jax.random.fold_in(key, i))
        if kind == "choice":
            columns[name] = [spec[1][j] for j in rng.integers(0, len(spec[1]), size=n)]
        elif kind == "int":
            columns[name] = [int(v) for v in rng.integers(spec[1], spec[2], size=n, endpoint=True)]
        else:
            u = rng.random(n)
            lo, hi = float(spec[1]), float(spec[2])
            if kind == "uniform":
                values = lo + (hi - lo) * u
            else:   # log-uniform
                values = np.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u)
            columns[name] = [float(v) for v in np.clip(values, lo, hi)]
    return [{name: columns[name][j] for name in space} for j in range(n)]


# ------------------------------------------------------------------------------------------------ searching
def _check_mode(fn, mode):
    if mode not in ("max", "min"):
        raise ValueError(f"{fn}: mode must be 'max' (higher score is better) or 'min', got {mode!r}")


def _score_of(fn, result, metric):
    if isinstance(result, dict):
        if metric not in result:
            raise ValueError(f"{fn}: train_and_score returned a dict without the key {metric!r} (keys: "
                             f"{sorted(result)}); return the validation score under {metric!r} or pass "
                             f"metric=<its key>")
        return float(result[metric]), {k: v for k, v in result.items() if k != metric}
    try:
        value = float(result)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: train_and_score must return a number or a dict of numbers, got "
                         f"{type(result).__name__}") from None
    return value, {}


def rank_results(rows, *, mode="max"):
    """Sort rows ``{"config", "score", "metrics"}`` best first (NaN last, ties stable) and number them from 1.

    Args:
      rows: dicts with at least ``"score"`` (a float, NaN allowed).
      mode: ``"max"`` or ``"min"``.

    Returns:
      new list of the rows with ``"rank"`` set, best first.
    """
    _check_mode("rank_results", mode)
    sign = -1.0 if mode == "max" else 1.0
    ordered = sorted(rows, key=lambda r: (math.isnan(r["score"]), sign * r["score"] if not math.isnan(r["score"])
                                          else 0.0))
    return [{"rank": i + 1, **{k: v for k, v in r.items() if k != "rank"}} for i, r in enumerate(ordered)]


def evaluate_configs(train_and_score, configs, *, mode="max", metric="score"):
    """Score each configuration once and return the ranked results table (see the module docstring).

    Args:
      train_and_score: ``config -> float | dict``.
      configs: iterable of dicts.
      mode, metric: as in ``grid_search``.

    Returns:
      results table, best first.
    """
    _check_mode("evaluate_configs", mode)
    rows = []
    for config in configs:
        score, metrics = _score_of("evaluate_configs", train_and_score(dict(config)), metric)
        rows.append({"config": dict(config), "score": score, "metrics": metrics})
    return rank_results(rows, mode=mode)


def grid_search(train_and_score, grid, *, mode="max", metric="score"):
    """Try every combination in ``grid`` (see ``grid_configs``) and rank them by validation score.

    Args:
      train_and_score: ``config -> float | dict``; trains on the training split, returns the validation score.
      grid: ``dict[str, list]``.
      mode: ``"max"`` (accuracy-like) or ``"min"`` (loss-like).
      metric: key of the score when ``train_and_score`` returns a dict.

    Returns:
      results table, best first: ``[{"rank": 1, "config": {...}, "score": s, "metrics": {...}}, ...]``.

    Example:
      >>> results = grid_search(lambda c: 1.0 - abs(c["x"] - 2), {"x": [0, 1, 2, 3]})
      >>> results[0]["config"], results[0]["score"]
      ({'x': 2}, 1.0)

    Reference: Hastie, Tibshirani & Friedman, "The Elements of Statistical Learning", 2nd ed., 2009, sec. 7.10.
    """
    return evaluate_configs(train_and_score, grid_configs(grid), mode=mode, metric=metric)


def random_search(train_and_score, space, n, *, key, mode="max", metric="score"):
    """Try ``n`` configurations drawn by ``sample_configs(space, n, key=key)`` and rank them by validation score.

    Args:
      train_and_score: ``config -> float | dict``.
      space: ``dict`` of ``("uniform", lo, hi)``, ``("log_uniform", lo, hi)``, ``("int", lo, hi)``,
        ``("choice", [...])`` or constants.
      n: number of configurations.
      key: ``jax.random`` key.
      mode, metric: as in ``grid_search``.

    Returns:
      results table, best first.

    Example:
      >>> res = random_search(lambda c: -abs(c["lr"] - 0.01), {"lr": ("log_uniform", 1e-4, 1.0)}, 50,
      ...                     key=jax.random.key(0))
      >>> 0.005 < res[0]["config"]["lr"] < 0.02
      True

    Reference: Bergstra & Bengio, "Random search for hyper-parameter optimization", JMLR 13, 2012.
    """
    return evaluate_configs(train_and_score, sample_configs(space, n, key=key), mode=mode, metric=metric)


def _cell(v):
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def format_table(results):
    """An aligned plain-text table of a results table: rank, each hyper-parameter, score, other metrics.

    Args:
      results: rows as returned by ``grid_search`` / ``random_search`` / ``evaluate_configs``.

    Returns:
      ``str``: a header line, a rule line and one line per row; floats with 4 significant digits, numeric columns
      right-aligned, other columns left-aligned.

    Example:
      >>> print(format_table(grid_search(lambda c: 1.0 / c["lr"], {"lr": [0.1, 0.01]})))
      rank    lr  score
      ----  ----  -----
         1  0.01    100
         2   0.1     10
    """
    params = list(dict.fromkeys(k for r in results for k in r["config"]))
    extra = list(dict.fromkeys(k for r in results for k in r["metrics"]))
    header = ["rank", *params, "score", *extra]
    body = [[str(r["rank"]), *(_cell(r["config"].get(p, "")) for p in params), _cell(r["score"]),
             *(_cell(r["metrics"].get(m, "")) for m in extra)] for r in results]
    columns = list(zip(header, *body))
    widths = [max(map(len, col)) for col in columns]
    numeric = [all(_is_number(c) for c in col[1:] if c) for col in columns]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


# ------------------------------------------------------------------------------------------------ cross-validation
def kfold_indices(n, k, *, key=None, shuffle=True, labels=None):
    """Split ``range(n)`` into ``k`` validation folds: every index lies in exactly one validation fold.

    Without ``labels``: the (shuffled with ``key``) indices are cut into ``k`` contiguous folds, the first
    ``n % k`` of size ``n // k + 1`` and the rest of size ``n // k`` (scikit-learn's ``KFold`` sizes). With
    ``labels`` (stratified): the indices are grouped by class (shuffled within each class) and dealt round-robin, so
    each fold holds ``count_c // k`` or ``count_c // k + 1`` examples of every class ``c``.

    Args:
      n: number of examples.
      k: number of folds, ``2 <= k <= n``.
      key: ``jax.random`` key, required when ``shuffle=True`` (it seeds the NumPy generator that shuffles).
      shuffle: shuffle before cutting (otherwise folds are consecutive blocks).
      labels: optional integer labels ``(n,)`` for stratified folds.

    Returns:
      ``list`` of ``k`` pairs ``(train_idx, val_idx)`` of sorted int64 arrays; ``val_idx`` of fold ``j`` and its
      ``train_idx`` partition ``range(n)``.

    Example:
      >>> [val.tolist() for _, val in kfold_indices(5, 2, shuffle=False)]
      [[0, 1, 2], [3, 4]]

    Reference: Hastie, Tibshirani & Friedman, "The Elements of Statistical Learning", 2nd ed., 2009, sec. 7.10;
    Kohavi, "A study of cross-validation and bootstrap for accuracy estimation and model selection", IJCAI 1995
    (stratification).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"kfold_indices: n must be an integer >= 2, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= n:
        raise ValueError(f"kfold_indices: k must be an integer with 2 <= k <= n={n}, got {k!r}")
    if shuffle and key is None:
        raise ValueError("kfold_indices: shuffle=True needs key=jax.random.key(seed); pass a key or shuffle=False")
    order = numpy_rng(key).permutation(n) if shuffle else np.arange(n)
    if labels is None:
        sizes = np.full(k, n // k)
        sizes[: n % k] += 1
        folds = np.split(order, np.cumsum(sizes)[:-1])
    else:
        labels = np.asarray(labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"kfold_indices: labels must be integer class labels of shape ({n},), got {labels.dtype} "
                             f"of shape {labels.shape}")
        grouped = order[np.argsort(labels[order], kind="stable")]   # by class, shuffled within each class
        fold_of = np.arange(n) % k
        folds = [grouped[fold_of == j] for j in range(k)]
    everything = np.arange(n)
    return [(np.setdiff1d(everything, f), np.sort(f).astype(np.int64)) for f in folds]


def leave_one_out_indices(n):
    """``n`` folds, fold ``i`` validating on example ``i`` alone: ``kfold_indices(n, n, shuffle=False)``.

    Returns:
      ``list`` of ``(train_idx, val_idx)`` with ``val_idx == [i]``.

    Example:
      >>> leave_one_out_indices(3)[1][0].tolist()
      [0, 2]

    Reference: Stone, "Cross-validatory choice and assessment of statistical predictions", JRSS B 36, 1974.
    """
    return kfold_indices(n, n, shuffle=False)


def cross_validate(train_and_score, X, y, k, *, key=None, shuffle=True, stratify=False, metric="score"):
    """Mean and standard deviation of a validation score over ``k`` folds (``k = len(X)`` is leave-one-out).

    For each fold ``j``: ``s_j = train_and_score(X[train_j], y[train_j], X[val_j], y[val_j])``; returns
    ``mean = sum_j s_j / k`` and ``std = sqrt(sum_j (s_j - mean)^2 / k)`` (ddof=0, like ``np.std``).

    Args:
      train_and_score: ``(X_train, y_train, X_val, y_val) -> float | dict``.
      X: features ``(n, ...)``; y: targets ``(n, ...)``.
      k: number of folds.
      key, shuffle: as in ``kfold_indices``.
      stratify: use ``y`` (integer labels) for stratified folds.
      metric: key of the score when ``train_and_score`` returns a dict.

    Returns:
      ``{"mean": float, "std": float, "scores": list[float], "folds": list of what train_and_score returned}``.

    Example:
      >>> X, y = np.arange(10.0)[:, None], np.arange(10.0)
      >>> cross_validate(lambda Xt, yt, Xv, yv: float(np.mean(yv)), X, y, 2, shuffle=False)["scores"]
      [2.0, 7.0]

    Reference: Stone, JRSS B 36, 1974; Hastie et al., "The Elements of Statistical Learning", 2009, sec. 7.10.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(f"cross_validate: expected X and y with the same first dimension, got shapes {X.shape} and "
                         f"{y.shape}")
    splits = kfold_indices(X.shape[0], k, key=key, shuffle=shuffle, labels=y if stratify else None)
    scores, folds = [], []
    for train, val in splits:
        result = train_and_score(X[train], y[train], X[val], y[val])
        scores.append(_score_of("cross_validate", result, metric)[0])
        folds.append(result)
    s = np.asarray(scores, dtype=np.float64)
    return {"mean": float(s.mean()), "std": float(s.std()), "scores": scores, "folds": folds}


# ------------------------------------------------------------------------------------------------ the final test
def select_and_test(fit, score, configs, train, val, test, *, mode="max"):
    """Choose a configuration on the validation split, retrain it on train+validation, and test it once.

    For each ``config``: ``s = score(fit(config, X_train, y_train), X_val, y_val)``; the best ``config*`` (by ``mode``)
    is retrained as ``model = fit(config*, concat(X_train, X_val), concat(y_train, y_val))`` and
    ``test_score = score(model, X_test, y_test)`` is the only use of the test split.

    Args:
      fit: ``(config, X, y) -> model``.
      score: ``(model, X, y) -> float`` (e.g. accuracy with ``mode="max"``, loss with ``mode="min"``).
      configs: ``list[dict]``, e.g. ``grid_configs(grid)`` or ``sample_configs(space, n, key=key)``.
      train, val, test: ``(X, y)`` pairs, e.g. from ``fnn.data.train_val_test_split``.
      mode: ``"max"`` or ``"min"``.

    Returns:
      ``{"config": best config, "val_score": its validation score, "test_score": float, "model": the retrained
      model, "results": the ranked results table}``.

    Example:
      >>> fit = lambda c, X, y: c["c"]                        # a "model" that predicts a constant
      >>> mse = lambda m, X, y: float(np.mean((y - m) ** 2))
      >>> part = (np.zeros((4, 1)), np.full(4, 2.0))
      >>> out = select_and_test(fit, mse, grid_configs({"c": [0.0, 2.0, 5.0]}), part, part, part, mode="min")
      >>> out["config"], out["test_score"]
      ({'c': 2.0}, 0.0)

    Reference: Hastie, Tibshirani & Friedman, "The Elements of Statistical Learning", 2nd ed., 2009, sec. 7.2
    (train / validation / test).
    """
    _check_mode("select_and_test", mode)
    configs = list(configs)
    if not configs:
        raise ValueError("select_and_test: configs is empty; pass at least one configuration, e.g. "
                         "grid_configs({'lr': [0.1]})")
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = train, val, test
    results = evaluate_configs(lambda c: score(fit(c, X_tr, y_tr), X_va, y_va), configs, mode=mode)
    best = results[0]
    if math.isnan(best["score"]):
        raise ValueError("select_and_test: every configuration scored NaN on the validation split; check the "
                         "training (learning rate, data scaling) before selecting")
    model = fit(dict(best["config"]), np.concatenate([np.asarray(X_tr), np.asarray(X_va)]),
                np.concatenate([np.asarray(y_tr), np.asarray(y_va)]))
    return {"config": best["config"], "val_score": best["score"], "test_score": float(score(model, X_te, y_te)),
            "model": model, "results": results}
