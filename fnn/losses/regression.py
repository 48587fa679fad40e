"""Regression losses: quadratic cost, mean squared error, Huber.

Each accepts ``weights=None``, one weight w_i >= 0 per example: J = sum_i w_i C_i / sum_i w_i, C_i the example's
loss (``fnn.losses.base``: the one reduction).
"""
from __future__ import annotations

import jax.numpy as jnp

from fnn.losses.base import check_weights, same_shape, weighted_batch_mean

__all__ = ["quadratic_cost", "mse", "huber"]


def quadratic_cost(outputs, targets, weights=None):
    """Quadratic cost: C = 1/(2n) sum_x ||y(x) - a(x)||^2 (a = ``outputs``, y = ``targets``).

    dC/da = (a - y) / n. With ``weights`` w: C = sum_x w_x ||y(x) - a(x)||^2 / (2 sum_x w_x).

    Args:
      outputs: (n, ...) network outputs a.
      targets: desired outputs y, same shape.
      weights: optional (n,) example weights >= 0.
    Returns:
      scalar.

    Example:
      >>> round(float(quadratic_cost(jnp.array([[0.8], [0.1]]), jnp.array([[1.0], [0.0]]))), 6)  # (0.04 + 0.01) / 4
      0.0125

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1, eq. (6).
    """
    a, y = same_shape("quadratic_cost", outputs, targets)
    return 0.5 * weighted_batch_mean(jnp.square(y - a), check_weights("quadratic_cost", weights, a.shape[0]))


def mse(outputs, targets, weights=None):
    """Mean squared error over every entry: MSE = 1/(n d) sum_x sum_j (a_j - y_j)^2.

    With d entries per example, ``quadratic_cost = d / 2 * mse``. With ``weights`` w:
    MSE = sum_x w_x sum_j (a_j - y_j)^2 / (d sum_x w_x).

    Args:
      outputs: (n, ...) predictions a.
      targets: same shape.
      weights: optional (n,) example weights >= 0.
    Returns:
      scalar.

    Reference: Bishop, *Pattern Recognition and Machine Learning*, 2006, sec. 1.1, eq. (1.2) (the sum-of-squares
    error, here averaged).
    """
    a, y = same_shape("mse", outputs, targets)
    w = check_weights("mse", weights, a.shape[0])
    if w is None:
        return jnp.mean(jnp.square(a - y))
    d = a.size // a.shape[0] if a.shape[0] else 1
    return weighted_batch_mean(jnp.square(a - y), w) / d


def huber(outputs, targets, delta: float = 1.0, weights=None):
    """Huber loss: per entry, with r = a - y, L = r^2 / 2 if |r| <= delta else delta (|r| - delta / 2).

    dL/dr = r if |r| <= delta else delta sign(r). Summed over entries of an example, averaged over the batch
    (weighted by ``weights``: sum_x w_x L_x / sum_x w_x).

    Args:
      outputs: (n, ...) predictions a.
      targets: same shape.
      delta: the threshold (> 0) between the quadratic and the linear part.
      weights: optional (n,) example weights >= 0.
    Returns:
      scalar.

    Reference: Huber, "Robust estimation of a location parameter", Annals of Mathematical Statistics, 1964, eq. (9).
    """
    if isinstance(delta, (int, float)) and not delta > 0:
        raise ValueError(f"huber: expected delta > 0, got {delta!r}")
    a, y = same_shape("huber", outputs, targets)
    abs_r = jnp.abs(a - y)
    quad = jnp.minimum(abs_r, delta)  # = |r| inside, delta outside
    return weighted_batch_mean(0.5 * quad * quad + delta * (abs_r - quad), check_weights("huber", weights, a.shape[0]))
