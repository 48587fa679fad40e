"""Preprocessing: splits, standardisation, one-hot labels, and the checks the trainer runs on ``(X, y)``."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def numpy_rng(key):
    """A NumPy ``Generator`` (PCG64) seeded with 128 bits drawn from the ``jax.random`` key ``key``.

    Used for host-side shuffles (splits, folds, search samples): one compiled ``jax.random.bits`` call of a fixed
    shape serves every data-set size, whereas ``jax.random.permutation(key, n)`` compiles once per ``n``.

    Args:
      key: ``jax.random`` key (typed or raw).

    Returns:
      ``np.random.Generator``; the same key always gives the same stream.

    Example:
      >>> numpy_rng(jax.random.key(0)).permutation(5).shape
      (5,)

    Reference: O'Neill, "PCG: a family of simple fast space-efficient statistically good algorithms for random
    number generation", HMC-CS-2014-0905, 2014.
    """
    words = np.asarray(jax.random.bits(key, (4,), dtype=np.uint32))
    return np.random.default_rng([int(w) for w in words])


def _split_counts(n, fractions):
    """Largest-remainder rounding of ``n * fractions`` to integers that sum to ``n``."""
    exact = n * np.asarray(fractions, dtype=np.float64)
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def train_val_test_split(X, y, fractions=(0.8, 0.1, 0.1), *, key, stratify=False):
    """Shuffle ``(X, y)`` with ``numpy_rng(key)`` and cut it into train, validation and test parts.

    The sizes are ``n * fractions`` rounded by largest remainder so they sum to ``n``. With ``stratify=True`` each
    class is cut separately in the same fractions (so every part keeps the class proportions up to one example per
    class) and each part is then shuffled.

    Args:
      X: array ``(n, ...)``.
      y: array ``(n, ...)``; integer class labels ``(n,)`` when ``stratify=True``.
      fractions: three non-negative numbers summing to 1 (a zero gives an empty part).
      key: ``jax.random`` key.
      stratify: keep class proportions in each part.

    Returns:
      ``((X_train, y_train), (X_val, y_val), (X_test, y_test))``, rows taken from ``X`` and ``y`` (same dtypes).

    Example:
      >>> from fnn.data import load_digits
      >>> X, y = load_digits()
      >>> train, val, test = train_val_test_split(X, y, (0.8, 0.1, 0.1), key=jax.random.key(0))
      >>> len(train[0]), len(val[0]), len(test[0])
      (1437, 180, 180)

    Reference: Hastie, Tibshirani & Friedman, "The Elements of Statistical Learning", 2nd ed., 2009, sec. 7.2.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(f"train_val_test_split: expected X and y with the same first dimension, got shapes "
                         f"{X.shape} and {y.shape}")
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(f < 0) or abs(f.sum() - 1.0) > 1e-6:
        raise ValueError(f"train_val_test_split: fractions must be three numbers >= 0 summing to 1 (train, val, "
                         f"test), got {fractions}")
    n = X.shape[0]
    f = f / f.sum()  # exactly 1, so the rounded counts can never exceed n
    if not stratify:
        perm = numpy_rng(key).permutation(n)
        bounds = np.cumsum(_split_counts(n, f))[:-1]
        parts = np.split(perm, bounds)
    else:
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"train_val_test_split: stratify=True needs integer class labels of shape (n,), got "
                             f"{y.dtype} of shape {y.shape}")
        rng = numpy_rng(key)
        parts = [[], [], []]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            for p, chunk in zip(parts, np.split(idx, np.cumsum(_split_counts(idx.size, f))[:-1])):
                p.append(chunk)
        parts = [rng.permutation(np.concatenate(p)) for p in parts]
    return tuple((X[p], y[p]) for p in parts)


class Stats(NamedTuple):
    """Per-feature statistics for ``standardize``: ``mean`` and ``std`` of shape ``X.shape[1:]`` (float32)."""
    mean: np.ndarray  # feature means over the training examples
    std: np.ndarray   # feature standard deviations (ddof=0); ones where a feature is (nearly) constant


def fit_standardizer(X, *, eps=1e-7):
    """Per-feature mean and standard deviation of the training split.

    ``mean = X.mean(0)``, ``std = X.std(0)`` (population, ``ddof=0``), accumulated in float64; where
    ``std <= eps`` the feature is constant and ``std`` is set to 1 so ``standardize`` maps it to 0 instead of
    dividing by zero.

    Args:
      X: training features ``(n, ...)``, ``n >= 1``; fit on the training split only, never on validation or test.
      eps: threshold below which a standard deviation counts as zero.

    Returns:
      ``Stats(mean, std)``, float32 arrays of shape ``X.shape[1:]``.

    Example:
      >>> stats = fit_standardizer(np.array([[1.0, 5.0], [3.0, 5.0]]))
      >>> stats.mean.tolist(), stats.std.tolist()
      ([2.0, 5.0], [1.0, 1.0])

    Reference: LeCun, Bottou, Orr & Mueller, "Efficient BackProp", 1998, sec. 4.3 (normalising the inputs).
    """
    X = np.asarray(X)
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"fit_standardizer: expected training features of shape (n, ...) with n >= 1, got shape "
                         f"{X.shape}")
    X64 = X.astype(np.float64)
    mean, std = X64.mean(axis=0), X64.std(axis=0)
    std = np.where(std <= eps, 1.0, std)
    return Stats(mean.astype(np.float32), std.astype(np.float32))


def _check_stats(fn, X, stats):
    if X.shape[1:] != np.shape(stats.mean):
        raise ValueError(f"{fn}: expected features of shape (n, {', '.join(map(str, np.shape(stats.mean)))}) to "
                         f"match the fitted statistics, got {X.shape}; fit and apply on the same feature layout")


def standardize(X, stats):
    """``(X - stats.mean) / stats.std`` feature by feature, as float32.

    Args:
      X: features ``(n, ...)`` with ``X.shape[1:] == stats.mean.shape``.
      stats: ``Stats`` from ``fit_standardizer`` on the training split.

    Returns:
      float32 array of the shape of ``X``.

    Example:
      >>> X = np.array([[1.0, 5.0], [3.0, 5.0]])
      >>> standardize(X, fit_standardizer(X)).tolist()
      [[-1.0, 0.0], [1.0, 0.0]]

    Reference: LeCun et al., "Efficient BackProp", 1998, sec. 4.3.
    """
    X = np.asarray(X)
    _check_stats("standardize", X, stats)
    return ((X - stats.mean) / stats.std).astype(np.float32)


def unstandardize(Z, stats):
    """Inverse of ``standardize``: ``Z * stats.std + stats.mean`` (e.g. to read regression outputs in data units).

    Args:
      Z: standardized values ``(n, ...)``.
      stats: the ``Stats`` used to standardize.

    Returns:
      float32 array of the shape of ``Z``.

    Reference: LeCun et al., "Efficient BackProp", 1998, sec. 4.3.
    """
    Z = np.asarray(Z)
    _check_stats("unstandardize", Z, stats)
    return (Z * stats.std + stats.mean).astype(np.float32)


def one_hot(y, num_classes, *, dtype=np.float32):
    """One-hot rows: ``Y[i, c] = 1`` if ``y[i] == c`` else 0.

    Args:
      y: integer labels of any shape ``s`` with values in ``[0, num_classes)``.
      num_classes: number of classes ``C >= 1``.
      dtype: output dtype.

    Returns:
      array of shape ``s + (C,)``.

    Raises:
      ValueError: a label outside ``[0, num_classes)`` (the message names it) or non-integer labels.

    Example:
      >>> one_hot(np.array([2, 0]), 3).tolist()
      [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]

    Reference: Bishop, "Pattern Recognition and Machine Learning", 2006, sec. 4.1 (1-of-K coding).
    """
    y = np.asarray(y)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be an integer >= 1, got {num_classes!r}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"one_hot: expected integer labels, got dtype {y.dtype}; convert with y.astype(np.int32)")
    bad = (y < 0) | (y >= num_classes)
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"one_hot: labels must lie in [0, {num_classes}), got label {y[first]} at index "
                         f"{first if len(first) != 1 else first[0]}; remap the labels or raise num_classes")
    return (y[..., None] == np.arange(num_classes)).astype(dtype)


def _xp(a):
    return jnp if isinstance(a, jax.Array) else np


def validate_xy(X, y, *, num_classes=None, name="fit"):
    """Check a data set before any compiling, raising one clear ``ValueError`` per problem.

    Checks, in order: ``X`` and ``y`` have a first (example) dimension of equal length ``n``; ``n >= 1``; ``X`` is
    numeric and finite (no NaN/inf); a floating ``y`` is finite. When ``num_classes`` is given, ``y`` must be either
    integer labels of shape ``(n,)`` with values in ``[0, num_classes)``, or targets of shape ``(n, num_classes)``
    (one-hot or probabilities). NumPy and JAX arrays are accepted; JAX arrays are checked on their device.

    Args:
      X: features ``(n, ...)``.
      y: labels ``(n,)`` or targets ``(n, ...)``.
      num_classes: number of classes for classification, or ``None`` for regression/unchecked targets.
      name: the caller's name, put at the front of every message.

    Returns:
      ``None``; raises ``ValueError`` on the first problem found.

    Example:
      >>> validate_xy(np.zeros((3, 2)), np.array([0, 1, 2]), num_classes=2)
      Traceback (most recent call last):
      ...
      ValueError: fit: labels must lie in [0, 2) for num_classes=2, got label 2 at index 2 (labels span 0..2); ...

    Reference: the issue's "bad input" list (docs/data.md); no paper.
    """
    xp_x, xp_y = _xp(X), _xp(y)
    X = X if xp_x is not np else np.asarray(X)
    y = y if xp_y is not np else np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{name}: expected X of shape (n, ...) and y of shape (n, ...), got shapes {X.shape} and "
                         f"{y.shape}; put the examples along the first axis")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: X has {X.shape[0]} examples but y has {y.shape[0]} (shapes {X.shape} and "
                         f"{y.shape}); expected one target per example, pass X and y of the same length")
    if X.shape[0] == 0:
        raise ValueError(f"{name}: empty data set (X has shape {X.shape}); expected at least one example, check the "
                         f"loading and splitting code")
    if not (jnp.issubdtype(X.dtype, jnp.number) or jnp.issubdtype(X.dtype, jnp.bool_)):  # jnp: knows bfloat16
        raise ValueError(f"{name}: expected numeric X, got dtype {X.dtype}; convert with X.astype(np.float32)")
    for arr, label, xp in ((X, "X", xp_x), (y, "y", xp_y)):
        if jnp.issubdtype(arr.dtype, jnp.inexact):
            bad = ~xp.isfinite(arr)
            if bool(xp.any(bad)):
                rows = np.flatnonzero(np.asarray(bad.reshape(arr.shape[0], -1).any(axis=1)))
                raise ValueError(f"{name}: {label} contains {int(xp.sum(bad))} NaN/inf values in {rows.size} "
                                 f"examples (first at index {rows[0]}); expected finite numbers, drop or impute "
                                 f"those examples")
    if num_classes is None:
        return None
    if y.ndim == 2 and y.shape[1] == num_classes:
        return None
    if y.ndim != 1:
        raise ValueError(f"{name}: expected labels of shape ({y.shape[0]},) or targets of shape ({y.shape[0]}, "
                         f"{num_classes}) for num_classes={num_classes}, got shape {y.shape}")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"{name}: expected integer class labels for num_classes={num_classes}, got dtype "
                         f"{y.dtype}; convert with y.astype(np.int32)")
    lo, hi = int(xp_y.min(y)), int(xp_y.max(y))
    if lo < 0 or hi >= num_classes:
        bad_label = lo if lo < 0 else hi
        index = int(np.flatnonzero(np.asarray(y) == bad_label)[0])
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}) for num_classes={num_classes}, got label "
                         f"{bad_label} at index {index} (labels span {lo}..{hi}); remap the labels to "
                         f"0..{num_classes - 1} or set num_classes to match the model's output")
    return None
