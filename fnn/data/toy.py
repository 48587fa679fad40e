"""Toy problems: XOR, two spirals, moons, the logistic map.

Contract (every loader and generator in ``fnn.data``): features ``X`` are ``float32`` with the example axis first,
labels ``y`` are ``int32`` class indices (regression targets are ``float32``). Nothing here touches a device; the
trainer moves the arrays once. Random generators take an explicit
``jax.random`` key, draw with ``jax.random`` and convert with ``np.asarray``, so one key gives one data set.
"""
from __future__ import annotations

import jax
import numpy as np


def xor():
    """The four XOR points: the smallest problem a linear model cannot solve.

    Returns:
      ``(X, y)``: ``X`` float32 ``(4, 2)`` = [[0,0],[0,1],[1,0],[1,1]], ``y`` int32 ``(4,)`` = ``X[:,0] xor X[:,1]``.

    Example:
      >>> xor()[1].tolist()
      [0, 1, 1, 0]

    Reference: Minsky & Papert, "Perceptrons", 1969; Rumelhart, Hinton & Williams, Nature 323, 1986.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return X, np.array([0, 1, 1, 0], dtype=np.int32)


def _check_count(fn, n, minimum):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{fn}: n must be an integer >= {minimum}, got {n!r}")
    return int(n)


def two_spirals(key, n, *, turns=1.5, noise=0.0):
    """Two interleaved spirals, class 0 and class 1, each the other rotated by pi.

    For ``t ~ U(0, 1)``: ``r = t``, ``theta = 2*pi*turns*t``; class 0 is ``(r cos theta, r sin theta)``, class 1 is
    its negation; then Gaussian noise of standard deviation ``noise`` is added to both coordinates.

    Args:
      key: ``jax.random`` key.
      n: total number of points (class 0 gets ``n // 2``, class 1 the rest), ``n >= 2``.
      turns: how many full turns each spiral makes.
      noise: standard deviation of the added Gaussian noise.

    Returns:
      ``(X, y)``: ``X`` float32 ``(n, 2)`` inside the disc of radius ``1 + O(noise)``, ``y`` int32 ``(n,)``,
      ordered class 0 then class 1.

    Example:
      >>> X, y = two_spirals(jax.random.key(0), 200, noise=0.02)
      >>> X.shape, int(y.sum())
      ((200, 2), 100)

    Reference: Lang & Witbrock, "Learning to tell two spirals apart", Proc. Connectionist Models Summer School, 1988
    (their set is 2x97 fixed points; this one samples positions along the same curves).
    """
    n = _check_count("two_spirals", n, 2)
    if turns <= 0 or noise < 0:
        raise ValueError(f"two_spirals: expected turns > 0 and noise >= 0, got turns={turns}, noise={noise}")
    k_t, k_noise = jax.random.split(key)
    t = np.asarray(jax.random.uniform(k_t, (n,)), dtype=np.float64)
    theta = 2.0 * np.pi * turns * t
    X = np.stack([t * np.cos(theta), t * np.sin(theta)], axis=1)
    n0 = n // 2
    X[n0:] *= -1.0
    X += noise * np.asarray(jax.random.normal(k_noise, (n, 2)), dtype=np.float64)
    y = np.concatenate([np.zeros(n0, np.int32), np.ones(n - n0, np.int32)])
    return X.astype(np.float32), y


def moons(key, n, noise=0.1):
    """Two interleaving half circles ("moons"), as in scikit-learn's ``make_moons`` but at random angles.

    For ``t ~ U(0, pi)``: class 0 is ``(cos t, sin t)``, class 1 is ``(1 - cos t, 0.5 - sin t)``; then Gaussian noise
    of standard deviation ``noise`` is added to both coordinates. (scikit-learn spaces ``t`` evenly instead.)

    Args:
      key: ``jax.random`` key.
      n: total number of points (class 0 gets ``n // 2``, class 1 the rest), ``n >= 2``.
      noise: standard deviation of the Gaussian noise.

    Returns:
      ``(X, y)``: ``X`` float32 ``(n, 2)``, ``y`` int32 ``(n,)``, ordered class 0 then class 1.

    Example:
      >>> X, y = moons(jax.random.key(0), 101)
      >>> X.shape, int(y.sum())
      ((101, 2), 51)

    Reference: Pedregosa et al., "Scikit-learn: machine learning in Python", JMLR 12, 2011 (``make_moons``).
    """
    n = _check_count("moons", n, 2)
    if noise < 0:
        raise ValueError(f"moons: noise must be >= 0, got {noise}")
    k_t, k_noise = jax.random.split(key)
    t = np.pi * np.asarray(jax.random.uniform(k_t, (n,)), dtype=np.float64)
    n0 = n // 2
    X = np.stack([np.cos(t), np.sin(t)], axis=1)
    X[n0:] = np.stack([1.0 - np.cos(t[n0:]), 0.5 - np.sin(t[n0:])], axis=1)
    X += noise * np.asarray(jax.random.normal(k_noise, (n, 2)), dtype=np.float64)
    y = np.concatenate([np.zeros(n0, np.int32), np.ones(n - n0, np.int32)])
    return X.astype(np.float32), y


def logistic_map(n, x0=0.2, r=4.0):
    """The logistic-map time series ``x[t+1] = r * x[t] * (1 - x[t])``, chaotic for ``r = 4``.

    The recursion runs in float64 (chaos doubles rounding errors each step) and the result is cast to float32.

    Args:
      n: number of values, ``x[0] = x0`` included (``n >= 1``).
      x0: initial value in [0, 1].
      r: growth rate in [0, 4] (keeps the series in [0, 1]).

    Returns:
      float32 array ``x`` of shape ``(n,)``.

    Example:
      >>> logistic_map(3, x0=0.5, r=4.0).tolist()
      [0.5, 1.0, 0.0]

    Reference: May, "Simple mathematical models with very complicated dynamics", Nature 261, 1976, eq. (3).
    """
    n = _check_count("logistic_map", n, 1)
    if not 0.0 <= x0 <= 1.0 or not 0.0 <= r <= 4.0:
        raise ValueError(f"logistic_map: expected x0 in [0, 1] and r in [0, 4] (so the series stays in [0, 1]), "
                         f"got x0={x0}, r={r}")
    x = np.empty(n, dtype=np.float64)
    x[0] = x0
    for t in range(n - 1):
        x[t + 1] = r * x[t] * (1.0 - x[t])
    return x.astype(np.float32)


def logistic_map_pairs(n, x0=0.2, r=4.0):
    """One-step-ahead regression pairs ``(x[t], x[t+1])`` from ``logistic_map(n + 1, x0, r)``.

    Args:
      n: number of pairs.
      x0, r: as in ``logistic_map``.

    Returns:
      ``(X, Y)``: float32 arrays of shape ``(n, 1)`` with ``Y[i] = r * X[i] * (1 - X[i])`` (up to float32 rounding).

    Example:
      >>> X, Y = logistic_map_pairs(2, x0=0.5)
      >>> X.ravel().tolist(), Y.ravel().tolist()
      ([0.5, 1.0], [1.0, 0.0])

    Reference: May, Nature 261, 1976; Lapedes & Farber, "Nonlinear signal processing using neural networks",
    Los Alamos LA-UR-87-2662, 1987 (the map as a neural-network benchmark).
    """
    n = _check_count("logistic_map_pairs", n, 1)
    x = logistic_map(n + 1, x0, r)
    return x[:-1, None], x[1:, None]
