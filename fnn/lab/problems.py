"""The mathematics of the lab's built-in workloads: test functions, the noisy quadratic, data splits, exact optima.

Everything here is a plain function of arrays (JAX for what runs inside a compiled program, NumPy/SciPy in float64
for what is computed once at build time); ``fnn.lab.workloads`` turns these pieces into ``Workload`` records.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import data

__all__ = ["rosenbrock", "rastrigin", "saddle", "random_rotation", "RotatedQuadratic", "quadratic_losses",
           "deep_spectrum", "digits_splits", "fmnist_splits", "softmax_regression_objective",
           "softmax_regression_optimum"]


# ---------------------------------------------------------------------------------------------- test functions
def rosenbrock(p):
    """Rosenbrock's banana valley: ``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2``; minimum 0 at ``(1, 1)``.

    Reference: Rosenbrock, "An automatic method for finding the greatest or least value of a function", The
    Computer Journal 3(3), 1960, p. 175.
    """
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def rastrigin(p):
    """Rastrigin's function ``f(p) = 10 d + sum_i (p_i^2 - 10 cos(2 pi p_i))`` (``d = p.size``); minimum 0 at 0.

    Reference: Rastrigin, "Systems of extremal control", 1974; the d-dimensional form of Muehlenbein, Schomisch &
    Born, "The parallel genetic algorithm as function optimizer", Parallel Computing 17, 1991.
    """
    return 10.0 * p.shape[0] + jnp.sum(p ** 2 - 10.0 * jnp.cos(2 * jnp.pi * p))


def saddle(p):
    """``f(x, y) = x^2 - y^2 + y^4 / 4``: a saddle at the origin (f = 0) between two minima at
    ``(0, +-sqrt(2))`` of value -1 (df/dy = -2y + y^3 = 0 at y^2 = 2, f = -2 + 1)."""
    x, y = p[0], p[1]
    return x ** 2 - y ** 2 + y ** 4 / 4


# ----------------------------------------------------------------------------------------- noisy quadratic
class RotatedQuadratic(NamedTuple):
    """The per-seed constants of the noisy quadratic (a workload's ``state``): ``H = Q^T diag(eigenvalues) Q``."""
    Q: jnp.ndarray            # (d, d) orthogonal rotation, drawn per seed
    eigenvalues: jnp.ndarray  # (d,) the spectrum D, the same for every seed


def random_rotation(key, d: int, dtype=jnp.float32):
    """A Haar-distributed orthogonal ``(d, d)`` matrix: QR of a standard normal matrix, with the signs of R's
    diagonal moved into Q (so the factorisation is unique and Q is uniform on O(d)).

    Reference: Mezzadri, "How to generate random matrices from the classical compact groups", Notices of the AMS
    54(5), 2007, p. 597 (the sign correction). DeepOBS draws from SO(d) with Diaconis & Shahshahani's subgroup
    algorithm instead; both give a uniformly random eigenbasis, which is all the problem uses.
    """
    q, r = jnp.linalg.qr(jax.random.normal(key, (d, d), dtype))
    return q * jnp.sign(jnp.diagonal(r))[None, :]


def quadratic_losses(theta, x, q: RotatedQuadratic):
    """Per-example losses ``l_i = 0.5 (theta - x_i)^T H (theta - x_i)`` with ``H = Q^T D Q``, computed as
    ``0.5 sum_j D_j ((Q (theta - x_i))_j)^2``.

    Args:
      theta: ``(d,)`` parameters.
      x: ``(n, d)`` noise samples.
      q: ``RotatedQuadratic(Q (d, d), eigenvalues (d,))``.

    Returns:
      ``(n,)`` losses.
    """
    z = (theta[None, :] - x) @ q.Q.T
    return 0.5 * jnp.sum(q.eigenvalues[None, :] * z * z, axis=-1)


def deep_spectrum(rng: np.random.Generator, n_small: int = 90, n_large: int = 10):
    """DeepOBS's "deep learning" spectrum: ``n_small`` eigenvalues uniform in [0, 1] and ``n_large`` in [30, 60]
    (float64, in that order), after Chaudhari et al., "Entropy-SGD", arXiv:1611.01838, 2016."""
    return np.concatenate([rng.uniform(0.0, 1.0, n_small), rng.uniform(30.0, 60.0, n_large)])


# ------------------------------------------------------------------------------------------------ data splits
def digits_splits(*, fractions=(0.6, 0.2, 0.2), seed: int = 0, standardize: bool = True, images: bool = False):
    """scikit-learn's digits cut into a fixed stratified train/val/test split (``fnn.data.train_val_test_split`` with
    ``jax.random.key(seed)``), features standardised with the train split's statistics when ``standardize``.

    Returns:
      ``{"train": (X, y), "val": (X, y), "test": (X, y)}``, X float32 ``(n, 64)`` (``(n, 8, 8)``, 8 rows of 8
      pixels, when ``images``), y int32 ``(n,)``.
    """
    X, y = data.load_digits()
    parts = data.train_val_test_split(X, y, fractions, key=jax.random.key(seed), stratify=True)
    splits = dict(zip(("train", "val", "test"), parts))
    if standardize:
        stats = data.fit_standardizer(splits["train"][0])
        splits = {k: (data.standardize(a, stats), b) for k, (a, b) in splits.items()}
    if images:
        splits = {k: (a.reshape(-1, 8, 8), b) for k, (a, b) in splits.items()}
    return splits


def fmnist_splits(*, n_train: int = 10_000, n_val: int = 2_000, n_test: int = 2_000, seed: int = 0,
                  images: bool = False, path=None):
    """A fixed random subset of Fashion-MNIST: train and val drawn without overlap from its train file, test from
    its test file (``fnn.data.numpy_rng(jax.random.key(seed))``), standardised with the train subset's statistics.

    Raises:
      FileNotFoundError: the IDX files are missing (``fnn.data.load_fashion_mnist`` names the Debian package
        ``dataset-fashion-mnist`` and the directory it looks in).
    """
    X, y = data.load_fashion_mnist(path, split="train", flatten=not images)
    Xt, yt = data.load_fashion_mnist(path, split="test", flatten=not images)
    if n_train + n_val > X.shape[0] or n_test > Xt.shape[0]:
        raise ValueError(f"fmnist_splits: expected n_train + n_val <= {X.shape[0]} and n_test <= {Xt.shape[0]}, got "
                         f"{n_train} + {n_val} and {n_test}; ask for smaller subsets")
    rng = data.numpy_rng(jax.random.key(seed))
    idx, idx_t = rng.permutation(X.shape[0]), rng.permutation(Xt.shape[0])[:n_test]
    splits = {"train": (X[idx[:n_train]], y[idx[:n_train]]), "val": (X[idx[n_train:n_train + n_val]],
              y[idx[n_train:n_train + n_val]]), "test": (Xt[idx_t], yt[idx_t])}
    stats = data.fit_standardizer(splits["train"][0])
    return {k: (data.standardize(a, stats), b) for k, (a, b) in splits.items()}


# ------------------------------------------------------------------------------------------- exact optimum
def softmax_regression_objective(w, X, y, l2: float, num_classes: int):
    """``(J, dJ/dw)`` in float64 for multinomial logistic regression, ``w = [vec(W) (d * k), b (k)]``:
    ``J = mean_i [logsumexp(z_i) - z_{i, y_i}] + (l2 / 2) ||W||^2`` with ``z = X W + b`` (bias not penalised)."""
    d, k = X.shape[1], num_classes
    W, b = w[: d * k].reshape(d, k), w[d * k:]
    z = X @ W + b
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    n = X.shape[0]
    value = np.mean(lse - z[np.arange(n), y]) + 0.5 * l2 * np.sum(W * W)
    P = np.exp(z - lse[:, None])
    P[np.arange(n), y] -= 1.0
    gW, gb = X.T @ P / n + l2 * W, P.mean(axis=0)
    return value, np.concatenate([gW.ravel(), gb])


def softmax_regression_optimum(X, y, l2: float, num_classes: int, *, gtol: float = 1e-10):
    """The minimum of ``softmax_regression_objective`` over ``(W, b)``, in float64 with SciPy's L-BFGS-B.

    The objective is strictly convex in ``W`` for ``l2 > 0`` and convex in ``b``, so any point with a vanishing
    gradient attains the minimum; its value error is about ``||g||^2 / (2 l2)``.

    Returns:
      ``(value, gradient_norm, w)``: the minimum, the gradient's max-norm where L-BFGS-B stopped, the minimiser.
    """
    from scipy.optimize import minimize  # imported lazily: scipy is slow to import

    X, y = np.asarray(X, np.float64), np.asarray(y)
    w0 = np.zeros(X.shape[1] * num_classes + num_classes)
    res = minimize(softmax_regression_objective, w0, args=(X, y, l2, num_classes), jac=True, method="L-BFGS-B",
                   options={"maxiter": 20_000, "maxcor": 30, "ftol": 0.0, "gtol": gtol})
    value, grad = softmax_regression_objective(res.x, X, y, l2, num_classes)
    return float(value), float(np.max(np.abs(grad))), res.x
