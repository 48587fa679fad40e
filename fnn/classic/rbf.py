"""Radial basis function networks, trained the classic way: centers, then widths, then output weights in closed form.

The network with ``K`` Gaussian units on inputs ``x`` (d,) and ``p`` outputs:

    phi_k(x) = exp(-||x - c_k||^2 / (2 sigma_k^2))                         (unnormalized)
    psi_k(x) = phi_k(x) / sum_j phi_j(x)                                    (normalized: a partition of unity)
    y(x) = sum_k W_k phi_k(x) + b      (or psi_k in place of phi_k)          W (K, p), b (p,)

Training (:func:`fit_rbf`), in three decoupled stages as in Moody & Darken (1989):

1. centers ``c_k``: ``K`` training inputs drawn at random (:func:`sample_centers`) or k-means (:func:`kmeans`);
2. widths ``sigma_k`` from the spread of the centers (:func:`rbf_widths`): one shared width
   ``sigma = d_max / sqrt(2K)`` (``d_max`` the largest distance between two centers; Haykin's rule), or per
   center ``sigma_k = scale * min_{j != k} ||c_k - c_j||`` (nearest-neighbour rule, Moody & Darken's P = 1);
3. output weights by linear least squares on the design matrix ``Phi`` (n, K[+1]):
   ``[W; b] = Phi^+ Y`` (:func:`solve_output_weights`; ridge ``(Phi^T Phi + lam I)^-1 Phi^T Y`` optional).

Optional stage 4 (:func:`fine_tune_rbf`): gradient descent on all of ``c, sigma, W, b`` together.

The normalized variant's softmax form ``psi = softmax(-||x - c||^2 / (2 sigma^2))`` is used for stability: it is
the same ratio and never divides 0 by 0 far from every center.

References: Broomhead & Lowe, "Multivariable functional interpolation and adaptive networks", Complex Systems 2,
1988; Moody & Darken, "Fast learning in networks of locally-tuned processing units", Neural Computation 1, 1989;
Haykin, *Neural Networks: A Comprehensive Foundation*, 2nd ed., 1999, sec. 5.13 ("fixed centers selected at
random", sigma = d_max / sqrt(2 m_1)); Lloyd, "Least squares quantization in PCM", IEEE Trans. IT 28, 1982.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn import initializers as ini
from fnn import optimizers as _opt
from fnn.layers import Layer
from fnn.train import minimize

__all__ = [
    "RBFParams", "RBFNetwork", "rbf_features", "rbf_apply", "sample_centers", "kmeans", "rbf_widths",
    "design_matrix", "solve_output_weights", "lms_output_weights", "fit_rbf", "fine_tune_rbf",
]


class RBFParams(NamedTuple):
    centers: jax.Array  # (K, d) centers c_k
    sigma: jax.Array    # (K,) widths sigma_k (only sigma_k^2 enters, so the sign is irrelevant)
    W: jax.Array        # (K, p) output weights
    b: jax.Array        # (p,) output bias


def _sq_dist(X, C):
    """``D2[n, k] = ||X_n - C_k||^2`` for X (n, d), C (K, d), by explicit differences (exact, no cancellation)."""
    return jnp.sum(jnp.square(X[:, None, :] - C[None, :, :]), axis=-1)


def rbf_features(X, centers, sigma, *, normalized: bool = False):
    """Hidden-layer activities ``Phi (n, K)``: ``phi_k(x) = exp(-||x - c_k||^2 / (2 sigma_k^2))`` or ``psi_k``.

    Args: X: inputs (n, d). centers: (K, d). sigma: (K,). normalized: divide by ``sum_j phi_j(x)``.
    Returns: (n, K).
    Reference: Moody & Darken, Neural Computation 1, 1989, eqs. (1)-(2) (Gaussian and normalized units).
    """
    X = jnp.asarray(X)
    if X.ndim != 2 or X.shape[1] != centers.shape[1]:
        raise ValueError(f"rbf_features: expected inputs of shape (n, {centers.shape[1]}), got {X.shape}")
    z = -_sq_dist(X, centers) / (2.0 * jnp.square(sigma)[None, :])
    return jax.nn.softmax(z, axis=-1) if normalized else jnp.exp(z)


def rbf_apply(params: RBFParams, X, *, normalized: bool = False):
    """Network output ``Y = Phi W + b`` (n, p) with ``Phi = rbf_features(X, c, sigma, normalized=...)``."""
    Phi = rbf_features(X, params.centers, params.sigma, normalized=normalized)
    return Phi @ params.W + params.b[None, :]


def RBFNetwork(n_centers: int, n_out: int, *, normalized: bool = False) -> Layer:
    """The RBF network as an fnn layer (random init), for gradient training or to hold :func:`fit_rbf`'s params.

    ``init(key, (n, d)) -> ((n, n_out), RBFParams)`` with centers ~ N(0, 1), sigma = 1, Glorot-uniform ``W``,
    zero ``b``; ``apply(params, X (n, d)) -> (n, n_out)`` is :func:`rbf_apply`.
    """
    if not (isinstance(n_centers, int) and n_centers >= 1 and isinstance(n_out, int) and n_out >= 1):
        raise ValueError(f"RBFNetwork: expected positive ints n_centers and n_out, got n_centers={n_centers!r}, "
                         f"n_out={n_out!r}")

    def init(key, input_shape):
        if len(input_shape) != 2 or input_shape[-1] in (None, -1):
            raise ValueError(f"RBFNetwork: expected an input shape (batch, d) with known d, got {input_shape!r}")
        k1, k2 = jax.random.split(key)
        d = int(input_shape[-1])
        params = RBFParams(jax.random.normal(k1, (n_centers, d)), jnp.ones((n_centers,)),
                           ini.glorot_uniform()(k2, (n_centers, n_out)), jnp.zeros((n_out,)))
        return (input_shape[0], n_out), params

    return Layer(init, lambda params, X, **kwargs: rbf_apply(params, X, normalized=normalized))


def _check_k(where, X, k):
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{where}: expected training inputs of shape (n, d), got {X.shape}; reshape 1-D inputs "
                         f"to (n, 1)")
    if not (isinstance(k, int) and 1 <= k <= X.shape[0]):
        raise ValueError(f"{where}: expected between 1 and n = {X.shape[0]} centers (at most one per training "
                         f"point), got {k!r}; use fewer centers or more data")
    return X


def sample_centers(key, X, k: int):
    """``k`` distinct rows of ``X`` drawn uniformly without replacement.  Returns (k, d).

    Reference: Broomhead & Lowe, 1988 (centers at a subset of the data); Haykin, 1999, sec. 5.13.
    """
    X = _check_k("sample_centers", X, k)
    return X[jax.random.permutation(key, X.shape[0])[:k]]


def kmeans(key, X, k: int, *, iters: int = 100, init_centers=None):
    """k-means by Lloyd's algorithm: alternate ``z_n = argmin_k ||x_n - c_k||^2`` and ``c_k = mean{x_n : z_n = k}``.

    Starts from ``init_centers`` or from ``k`` training points drawn at random (Forgy). Runs exactly ``iters``
    sweeps in a ``lax.fori_loop`` (a converged assignment is a fixed point, so extra sweeps change nothing). A
    cluster that loses all its points keeps its previous center. Ties go to the lowest index (``argmin``).

    Args:
      key: PRNG key (used only without ``init_centers``). X: (n, d). k: number of centers, 1 <= k <= n.
      iters: number of Lloyd sweeps (>= 1). init_centers: optional (k, d) starting centers.

    Returns: ``(centers (k, d), labels (n,) int32)``, the labels of the returned centers.

    Example:
      >>> X = jnp.array([[0.0], [0.1], [5.0], [5.2]])
      >>> C, z = kmeans(None, X, 2, init_centers=X[:2])
      >>> C[:, 0].tolist(), z.tolist()
      ([0.05000000074505806, 5.099999904632568], [0, 0, 1, 1])

    Reference: Lloyd, IEEE Trans. Information Theory 28, 1982; MacQueen, 5th Berkeley Symposium, 1967.
    """
    X = _check_k("kmeans", X, k)
    if not (isinstance(iters, int) and iters >= 1):
        raise ValueError(f"kmeans: expected a positive number of iterations, got iters={iters!r}")
    C = sample_centers(key, X, k) if init_centers is None else jnp.asarray(init_centers, X.dtype)
    if C.shape != (k, X.shape[1]):
        raise ValueError(f"kmeans: expected init_centers of shape {(k, X.shape[1])}, got {C.shape}")

    def sweep(_, C):
        z = jnp.argmin(_sq_dist(X, C), axis=1)
        onehot = jax.nn.one_hot(z, k, dtype=X.dtype)            # (n, k)
        counts = jnp.sum(onehot, axis=0)                          # (k,)
        sums = onehot.T @ X                                       # (k, d)
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], C)

    C = jax.lax.fori_loop(0, iters, sweep, C)
    return C, jnp.argmin(_sq_dist(X, C), axis=1).astype(jnp.int32)


_WIDTH_RULES = ("max_distance", "nearest")


def rbf_widths(centers, rule: str = "max_distance", scale: float = 1.0):
    """Widths from the spread of the centers.

    ``"max_distance"``: ``sigma_k = scale * d_max / sqrt(2K)`` for every k, ``d_max = max_{j,k} ||c_j - c_k||``
    (Haykin, 1999, sec. 5.13: ``exp(-(K / d_max^2) ||x - c_k||^2)``, neither too peaked nor too flat).
    ``"nearest"``: ``sigma_k = scale * min_{j != k} ||c_k - c_j||`` (Moody & Darken, 1989, P-nearest-neighbour
    heuristic with P = 1).

    Args: centers: (K, d) with K >= 2 distinct points. rule: as above. scale: multiplier (> 0).
    Returns: (K,).
    """
    if rule not in _WIDTH_RULES:
        raise ValueError(f"rbf_widths: expected rule in {_WIDTH_RULES}, got {rule!r}")
    if not scale > 0:
        raise ValueError(f"rbf_widths: expected scale > 0, got {scale!r}")
    centers = jnp.asarray(centers)
    K = centers.shape[0]
    if centers.ndim != 2 or K < 2:
        raise ValueError(f"rbf_widths: expected at least 2 centers of shape (K, d), got {centers.shape}; the "
                         f"width rules need distances between centers")
    D = jnp.sqrt(_sq_dist(centers, centers))
    if rule == "max_distance":
        return jnp.full((K,), scale * jnp.max(D) / jnp.sqrt(2.0 * K))
    return scale * jnp.min(jnp.where(jnp.eye(K, dtype=bool), jnp.inf, D), axis=1)


def design_matrix(X, centers, sigma, *, normalized: bool = False, bias: bool = True):
    """The least-squares design matrix ``[Phi, 1]`` (n, K + 1), or ``Phi`` (n, K) without ``bias``."""
    Phi = rbf_features(X, centers, sigma, normalized=normalized)
    return jnp.concatenate([Phi, jnp.ones((Phi.shape[0], 1), Phi.dtype)], axis=1) if bias else Phi


def solve_output_weights(Phi, Y, ridge: float = 0.0):
    """Closed-form output weights ``A = argmin ||Phi A - Y||^2 + ridge ||A||^2``.

    ``ridge = 0``: ``A = Phi^+ Y``, the minimum-norm least-squares solution (``jnp.linalg.lstsq``, via the SVD);
    ``ridge > 0``: ``A = (Phi^T Phi + ridge I)^-1 Phi^T Y`` (Tikhonov; Haykin, 1999, sec. 5.5).

    Args: Phi: (n, K). Y: targets (n, p). ridge: >= 0.
    Returns: A (K, p).
    Reference: Broomhead & Lowe, Complex Systems 2, 1988, sec. 3 (the pseudo-inverse solution).
    """
    if not ridge >= 0:
        raise ValueError(f"solve_output_weights: expected ridge >= 0, got {ridge!r}")
    if Phi.ndim != 2 or Y.ndim != 2 or Phi.shape[0] != Y.shape[0]:
        raise ValueError(f"solve_output_weights: expected Phi (n, K) and Y (n, p) with the same n, got "
                         f"{Phi.shape} and {Y.shape}; reshape 1-D targets to (n, 1)")
    if ridge == 0:
        return jnp.linalg.lstsq(Phi, Y)[0]
    K = Phi.shape[1]
    return jnp.linalg.solve(Phi.T @ Phi + ridge * jnp.eye(K, dtype=Phi.dtype), Phi.T @ Y)


def lms_output_weights(Phi, Y, *, eta: float, passes: int = 1, A0=None):
    """Output weights by the LMS (Widrow-Hoff) rule, one example at a time in the order given.

    For ``n = 0, ..., N-1`` (repeated ``passes`` times): ``e_n = Y_n - Phi_n A``, ``A <- A + eta Phi_n^T e_n``.
    One pass over the data is the on-line protocol of the classic logistic-map demonstration; the closed form of
    :func:`solve_output_weights` is what it converges to with many passes and a small ``eta``.

    Args: Phi: (N, K). Y: (N, p). eta: step size (> 0). passes: sweeps over the data (>= 1).
      A0: starting weights (K, p) (default zeros).
    Returns: A (K, p).
    Reference: Widrow & Hoff, "Adaptive switching circuits", IRE WESCON Convention Record, 1960; Haykin, 1999,
    sec. 3.5 (the LMS algorithm).
    """
    if not (eta > 0 and isinstance(passes, int) and passes >= 1):
        raise ValueError(f"lms_output_weights: expected eta > 0 and an int passes >= 1, got eta={eta!r}, "
                         f"passes={passes!r}")
    if Phi.ndim != 2 or Y.ndim != 2 or Phi.shape[0] != Y.shape[0]:
        raise ValueError(f"lms_output_weights: expected Phi (N, K) and Y (N, p) with the same N, got "
                         f"{Phi.shape} and {Y.shape}")
    A = jnp.zeros((Phi.shape[1], Y.shape[1]), Phi.dtype) if A0 is None else jnp.asarray(A0, Phi.dtype)

    def step(A, row):
        phi, y = row
        e = y - phi @ A                                  # (p,)
        return A + eta * jnp.outer(phi, e), None

    def sweep(A, _):
        return jax.lax.scan(step, A, (Phi, Y))[0], None

    return jax.lax.scan(sweep, A, None, length=passes)[0]


def fit_rbf(key, X, Y, n_centers: int, *, centers: str = "kmeans", width_rule: str = "max_distance",
            width_scale: float = 1.0, normalized: bool = False, bias: bool = True, ridge: float = 0.0,
            kmeans_iters: int = 100) -> RBFParams:
    """Train an RBF network in closed form: centers, then widths, then least-squares output weights.

    Args:
      key: PRNG key (center sampling / k-means initialization).
      X: inputs (n, d). Y: targets (n, p).
      n_centers: ``K``, 2 <= K <= n.
      centers: ``"kmeans"`` (:func:`kmeans`) or ``"random"`` (:func:`sample_centers`).
      width_rule, width_scale: see :func:`rbf_widths`.
      normalized: normalized units ``psi_k`` instead of ``phi_k``.
      bias: fit the bias ``b`` (else ``b = 0``). With normalized units the ones column is already in the span of
        ``Psi`` (the units sum to 1); the pseudo-inverse then returns the minimum-norm split.
      ridge: Tikhonov regularization of the least-squares solve.
      kmeans_iters: Lloyd sweeps.

    Returns: :class:`RBFParams` ``(centers (K, d), sigma (K,), W (K, p), b (p,))``; predict with
    ``rbf_apply(params, X, normalized=normalized)``.

    Example:
      >>> X = jnp.linspace(0.0, 1.0, 50)[:, None]
      >>> params = fit_rbf(jax.random.key(0), X, jnp.sin(3 * X), 5)
      >>> bool(jnp.sqrt(jnp.mean((rbf_apply(params, X) - jnp.sin(3 * X)) ** 2)) < 1e-2)
      True

    Reference: Moody & Darken, Neural Computation 1, 1989 (the hybrid three-stage procedure).
    """
    X = _check_k("fit_rbf", X, n_centers)
    Y = jnp.asarray(Y)
    if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise ValueError(f"fit_rbf: expected targets of shape ({X.shape[0]}, p), got {Y.shape}; reshape 1-D "
                         f"targets to (n, 1)")
    if centers == "kmeans":
        C, _ = kmeans(key, X, n_centers, iters=kmeans_iters)
    elif centers == "random":
        C = sample_centers(key, X, n_centers)
    else:
        raise ValueError(f"fit_rbf: expected centers in ('kmeans', 'random'), got {centers!r}")
    sigma = rbf_widths(C, width_rule, width_scale)
    A = solve_output_weights(design_matrix(X, C, sigma, normalized=normalized, bias=bias), Y, ridge)
    W, b = (A[:-1], A[-1]) if bias else (A, jnp.zeros((Y.shape[1],), A.dtype))
    return RBFParams(C, sigma, W, b)


def fine_tune_rbf(params: RBFParams, X, Y, *, normalized: bool = False, steps: int = 500, optimizer=None):
    """Gradient fine-tuning of every parameter (centers, widths, output weights) on the full batch.

    Minimizes ``E = 1/2 mean_n ||y(x_n) - Y_n||^2`` with ``steps`` full-batch steps of ``optimizer`` (default
    ``fnn.optimizers.adam(1e-3)``) with ``fnn.train.minimize``; the gradients come from ``jax.grad`` (Haykin,
    1999, sec. 5.13 "supervised selection of centers" lists them by hand).

    Args: params: e.g. from :func:`fit_rbf`. X: (n, d). Y: (n, p). normalized: as used for ``params``.
      steps: number of steps (>= 1). optimizer: optax-protocol optimizer.
    Returns: ``(params, losses (steps,))``, ``losses[t]`` being ``E`` before step ``t``.
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"fine_tune_rbf: expected a positive number of steps, got {steps!r}")
    optimizer = _opt.adam(1e-3) if optimizer is None else optimizer
    X, Y = jnp.asarray(X), jnp.asarray(Y)

    def loss(p, X, Y):
        return 0.5 * jnp.mean(jnp.sum(jnp.square(rbf_apply(p, X, normalized=normalized) - Y), axis=-1))

    params, _, losses = minimize(loss, params, optimizer, steps=steps, args=(X, Y))
    return params, losses
