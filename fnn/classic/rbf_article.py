"""The RBF-network article's own methods: beta-form units, projection operator training, orthogonal least squares,
Mahalanobis and local-linear units, the regularised objective, and the logistic-map protocol.

Symbols (inputs ``x`` (d,), ``K`` units with centers ``c_k``; ``X`` (n, d), ``Y`` (n, p)):

    rho_k(x) = exp(-beta ||x - c_k||^2)                                  (Gaussian unit, width as beta)
    rho_k(x) = exp(-(x - c_k)^T Sigma_k^-1 (x - c_k) / 2)                 (Mahalanobis unit)
    psi_k(x) = rho_k(x) / sum_j rho_j(x)                                  (normalized)
    f(x) = sum_k w_k rho_k(x)                                             (plain output layer)
    f(x) = sum_k psi_k(x) (a_k + b_k^T (x - c_k))                         (local-linear units)
    w <- w + nu (y - w . rho) rho / (rho . rho)                            (projection operator training)

The protocol (:func:`logistic_protocol`): x(t+1) = 4 x(t)(1 - x(t)); the centers are the first ``K`` exemplars of
the series, 100 training pairs, one projection pass with ``nu = 0.3`` from ``w = 0``, RMS error on the next 100
pairs. Where the article does not pin a detail down for us (which five exemplars, the starting weights), the
choice is stated in the function.

References: Jones, Lee, Barnes, Flake, Lee, Lewis & Qian, "Function approximation and time series prediction with
neural networks", Proc. IJCNN 1990, vol. I, pp. 649-665 (normalized units, projection training, local-linear
"CNLS" units, the logistic map); Chen, Cowan & Grant, "Orthogonal least squares learning algorithm for radial basis
function networks", IEEE Trans. Neural Networks 2(2), 1991, pp. 302-309; Poggio & Girosi, "Networks for
approximation and learning", Proc. IEEE 78(9), 1990 (the regularised objective).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn import data
from fnn.classic.rbf import rbf_features, solve_output_weights

__all__ = [
    "gaussian_units", "projection_train", "OLSResult", "ols_select", "mahalanobis_units", "local_linear_design",
    "fit_local_linear", "local_linear_apply", "curvature_penalty", "regularized_weights", "logistic_protocol",
]


def _matrix(where, X, name="inputs"):
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{where}: expected {name} of shape (n, d), got {X.shape}; reshape 1-D inputs to (n, 1)")
    return X


def gaussian_units(X, centers, beta, *, normalized: bool = False):
    """Gaussian units in the article's form ``rho_k(x) = exp(-beta ||x - c_k||^2)``, or ``psi_k = rho_k / sum rho``.

    The same unit as :func:`fnn.classic.rbf.rbf_features` with ``sigma = 1 / sqrt(2 beta)``.

    Args: X: (n, d). centers: (K, d). beta: > 0, scalar or (K,). normalized: divide by ``sum_j rho_j(x)``.
    Returns: (n, K).

    Example:
      >>> [round(v, 4) for v in gaussian_units(jnp.array([[0.0], [1.0]]), jnp.array([[0.0]]), 5.0)[:, 0].tolist()]
      [1.0, 0.0067]
    """
    beta = jnp.broadcast_to(jnp.asarray(beta, jnp.result_type(float)), (jnp.asarray(centers).shape[0],))
    return rbf_features(_matrix("gaussian_units", X), jnp.asarray(centers), 1.0 / jnp.sqrt(2.0 * beta),
                        normalized=normalized)


def projection_train(Rho, Y, *, nu: float = 0.3, passes: int = 1, W0=None):
    """Projection operator training (normalized LMS), one example at a time in the order given.

    ``W <- W + nu rho_n^T (Y_n - rho_n W) / (rho_n . rho_n)``: the weight vector moves a fraction ``nu`` of the way
    to its projection on the hyperplane ``rho_n . w = Y_n``. For one unit and ``nu = 1`` it is Newton's method on
    ``(y - w rho)^2 / 2`` (gradient ``-(y - w rho) rho``, curvature ``rho^2``): one step fits the example exactly.

    Args: Rho: unit activities (N, K) (``psi`` for the normalized net). Y: (N, p). nu: step in (0, 2).
      passes: sweeps over the data. W0: starting weights (K, p), default zeros.
    Returns: W (K, p).

    Example:
      >>> W = projection_train(jnp.array([[0.5]]), jnp.array([[2.0]]), nu=1.0)
      >>> W.tolist()
      [[4.0]]

    Reference: Jones et al., IJCNN 1990 (projection operator training); Nagumo & Noda, "A learning method for system
    identification", IEEE Trans. Automatic Control 12, 1967 (the normalized LMS rule).
    """
    if not (0 < nu < 2 and isinstance(passes, int) and passes >= 1):
        raise ValueError(f"projection_train: expected 0 < nu < 2 (the projection is stable there) and an int passes "
                         f">= 1, got nu={nu!r}, passes={passes!r}")
    Rho, Y = jnp.asarray(Rho), jnp.asarray(Y)
    if Rho.ndim != 2 or Y.ndim != 2 or Rho.shape[0] != Y.shape[0]:
        raise ValueError(f"projection_train: expected Rho (N, K) and Y (N, p) with the same N, got {Rho.shape} and "
                         f"{Y.shape}; reshape 1-D targets to (N, 1)")
    W = jnp.zeros((Rho.shape[1], Y.shape[1]), Rho.dtype) if W0 is None else jnp.asarray(W0, Rho.dtype)
    tiny = jnp.finfo(Rho.dtype).tiny

    def step(W, row):
        rho, y = row
        e = y - rho @ W                                                 # (p,)
        return W + nu * jnp.outer(rho, e) / jnp.maximum(rho @ rho, tiny), None

    def sweep(W, _):
        return jax.lax.scan(step, W, (Rho, Y))[0], None

    return jax.lax.scan(sweep, W, None, length=passes)[0]


class OLSResult(NamedTuple):
    indices: jax.Array  # (K,) int32: the selected candidate columns, in order of selection
    err: jax.Array      # (K,) error-reduction ratios [err]_k = g_k^2 w_k^T w_k / d^T d


def ols_select(P, d, n_select: int):
    """Orthogonal least squares: forward selection of regressors (candidate centers) by the error-reduction ratio.

    At step k every remaining column ``p_i`` of ``P`` is orthogonalized against the chosen ``w_1..w_{k-1}``
    (modified Gram-Schmidt, ``w_i = p_i - sum_j (w_j^T p_i / w_j^T w_j) w_j``), ``g_i = w_i^T d / w_i^T w_i``,
    ``[err]_i = g_i^2 w_i^T w_i / d^T d``; the column with the largest ratio is chosen. The ratios of the chosen
    columns sum to the explained fraction ``1 - ||d - P_S P_S^+ d||^2 / d^T d``; each is the drop in the residual
    sum of squares of refitting least squares on the chosen set, so the sequence equals greedy refitting.

    Args: P: candidate regressors (n, M), e.g. ``gaussian_units(X, X, beta)`` (every data point a candidate center).
      d: targets (n,). n_select: 1 <= K <= M. Columns that are (numerically) in the span of the chosen ones are
      never selected.
    Returns: :class:`OLSResult` ``(indices (K,), err (K,))``; the centers are ``X[indices]``, the weights a least
    squares solve on ``P[:, indices]``.

    Example:
      >>> P = jnp.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
      >>> ols_select(P, jnp.array([1.0, 1.0, 1.0]), 2).indices.tolist()
      [2, 0]

    Reference: Chen, Cowan & Grant, IEEE Trans. Neural Networks 2(2), 1991, eqs. (16)-(21) (the forward regression
    procedure; the tolerance stop ``1 - sum err < rho`` is left to the caller: cut ``indices`` where it is met).
    """
    P, d = jnp.asarray(P), jnp.asarray(d)
    if P.ndim != 2 or d.shape != (P.shape[0],):
        raise ValueError(f"ols_select: expected P (n, M) and d (n,) with the same n, got {P.shape} and {d.shape}; "
                         f"pass a single output column as d")
    if not (isinstance(n_select, int) and 1 <= n_select <= P.shape[1]):
        raise ValueError(f"ols_select: expected 1 <= n_select <= {P.shape[1]} (the number of candidates), got "
                         f"{n_select!r}")
    dd = d @ d
    scale = jnp.sum(P * P, axis=0)                                       # original column norms, for the rank test
    eps = 1e3 * jnp.finfo(P.dtype).eps

    def step(carry, _):
        W, chosen = carry
        ww = jnp.sum(W * W, axis=0)
        ok = (~chosen) & (ww > eps * scale)
        g = (W.T @ d) / jnp.where(ok, ww, 1.0)
        err = jnp.where(ok, g * g * ww / dd, -jnp.inf)
        i = jnp.argmax(err)
        w = W[:, i]
        W = W - jnp.outer(w, (w @ W) / (w @ w))                          # deflate every candidate against w_k
        return (W, chosen.at[i].set(True)), (i.astype(jnp.int32), err[i])

    _, (idx, err) = jax.lax.scan(step, (P, jnp.zeros((P.shape[1],), bool)), None, length=n_select)
    return OLSResult(idx, err)


def mahalanobis_units(X, centers, Sigma, *, normalized: bool = False):
    """Mahalanobis-distance units ``rho_k(x) = exp(-(x - c_k)^T Sigma_k^-1 (x - c_k) / 2)``.

    ``Sigma_k = sigma^2 I`` gives the Gaussian unit ``exp(-||x - c_k||^2 / (2 sigma^2))``.

    Args: X: (n, d). centers: (K, d). Sigma: one shared covariance (d, d) or one per unit (K, d, d), symmetric
      positive definite. normalized: divide by ``sum_j rho_j(x)`` (as a softmax, no 0/0).
    Returns: (n, K).

    Example:
      >>> mahalanobis_units(jnp.array([[1.0, 0.0]]), jnp.zeros((1, 2)), jnp.diag(jnp.array([4.0, 1.0])))
      Array([[0.8824969]], dtype=float32)

    Reference: Jones et al., IJCNN 1990; Poggio & Girosi, Proc. IEEE 78, 1990, sec. V (weighted norms).
    """
    X, C, S = _matrix("mahalanobis_units", X), jnp.asarray(centers), jnp.asarray(Sigma)
    K, dim = C.shape
    if S.shape == (dim, dim):
        S = jnp.broadcast_to(S, (K, dim, dim))
    if S.shape != (K, dim, dim) or X.shape[1] != dim:
        raise ValueError(f"mahalanobis_units: expected inputs (n, {dim}) and Sigma of shape ({dim}, {dim}) (shared) "
                         f"or ({K}, {dim}, {dim}) (per unit), got inputs {X.shape} and Sigma {jnp.shape(Sigma)}")
    diff = X[:, None, :] - C[None, :, :]                                 # (n, K, d)
    L = jnp.linalg.cholesky(S)                                           # Sigma_k = L_k L_k^T
    z = jax.vmap(lambda Lk, Dk: jax.scipy.linalg.solve_triangular(Lk, Dk.T, lower=True), (0, 1))(L, diff)
    q = -0.5 * jnp.sum(z * z, axis=1).T                                  # (n, K): -|L_k^-1 (x - c_k)|^2 / 2
    return jax.nn.softmax(q, axis=-1) if normalized else jnp.exp(q)


def local_linear_design(X, centers, beta):
    """Design matrix of local-linear units: columns ``[psi_k(x), psi_k(x) (x - c_k)_1, ..., psi_k(x) (x - c_k)_d]``.

    ``f(x) = sum_k psi_k(x) (a_k + b_k^T (x - c_k))`` is linear in ``theta = [a_1, b_1, ..., a_K, b_K]``, so
    ``f(X) = D theta`` with this ``D`` (n, K (d + 1)) and ``psi`` the normalized Gaussian units.
    """
    X, C = _matrix("local_linear_design", X), jnp.asarray(centers)
    psi = gaussian_units(X, C, beta, normalized=True)                    # (n, K)
    ones = jnp.ones(X.shape[:1] + C.shape[:1] + (1,), X.dtype)
    local = jnp.concatenate([ones, X[:, None, :] - C[None, :, :]], axis=-1)  # (n, K, d + 1)
    return (psi[:, :, None] * local).reshape(X.shape[0], -1)


def fit_local_linear(X, Y, centers, beta, ridge: float = 0.0):
    """Least-squares local-linear (CNLS-style) units: ``theta = D^+ Y`` with ``D = local_linear_design(X, c, beta)``.

    Args: X: (n, d). Y: (n, p). centers: (K, d). beta: unit width (> 0). ridge: as in
      :func:`fnn.classic.rbf.solve_output_weights`.
    Returns: ``theta`` (K, d + 1, p): per unit ``[a_k; b_k]``.

    Example:
      >>> X = jnp.linspace(0.0, 1.0, 20)[:, None]
      >>> theta = fit_local_linear(X, 2 * X + 1, X[::7], 5.0)
      >>> bool(jnp.allclose(local_linear_apply(theta, X, X[::7], 5.0), 2 * X + 1, atol=1e-4))
      True

    Reference: Jones et al., IJCNN 1990 (connectionist normalized linear splines).
    """
    X, Y = _matrix("fit_local_linear", X), jnp.asarray(Y)
    if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise ValueError(f"fit_local_linear: expected targets of shape ({X.shape[0]}, p), got {Y.shape}; reshape "
                         f"1-D targets to (n, 1)")
    theta = solve_output_weights(local_linear_design(X, centers, beta), Y, ridge)
    return theta.reshape(jnp.shape(centers)[0], X.shape[1] + 1, Y.shape[1])


def local_linear_apply(theta, X, centers, beta):
    """``f(x) = sum_k psi_k(x) (a_k + b_k^T (x - c_k))`` (n, p) for ``theta`` (K, d + 1, p)."""
    return local_linear_design(X, centers, beta) @ theta.reshape(-1, theta.shape[-1])


def curvature_penalty(grid, centers, beta):
    """Rows ``f''(g_j) = sum_k w_k rho_k''(g_j)`` for 1-D Gaussian units on grid points ``g_j`` (m, 1).

    ``rho_k''(x) = (4 beta^2 (x - c_k)^2 - 2 beta) rho_k(x)``, so ``||L w||^2`` with this ``L`` (m, K) is the
    discretized ``integral f''(x)^2 dx`` (up to the grid spacing), the smoothness term of the regularised objective.
    """
    G, C = _matrix("curvature_penalty", grid, "grid points"), jnp.asarray(centers)
    if G.shape[1] != 1 or C.shape[-1] != 1:
        raise ValueError(f"curvature_penalty: expected 1-D inputs (grid (m, 1), centers (K, 1)), got {G.shape} and "
                         f"{C.shape}; use the ridge penalty in more dimensions")
    u2 = jnp.square(G - C.T)                                             # (m, K)
    return (4.0 * beta * beta * u2 - 2.0 * beta) * jnp.exp(-beta * u2)


def regularized_weights(Phi, Y, lam: float, L=None):
    """Minimizer of the regularised objective ``E(W) = ||Y - Phi W||^2 + lam ||L W||^2``.

    ``W = (Phi^T Phi + lam L^T L)^-1 Phi^T Y``; ``L = I`` (default) is ridge (weight decay), ``L =``
    :func:`curvature_penalty` the smoothness (second-derivative) term. Equal to least squares on the augmented
    system ``[Phi; sqrt(lam) L] W = [Y; 0]``.

    Args: Phi: (n, K). Y: (n, p). lam: >= 0. L: (m, K) penalty rows, default the identity (K, K).
    Returns: W (K, p).

    Example:
      >>> regularized_weights(jnp.eye(2), jnp.ones((2, 1)), 1.0).ravel().tolist()
      [0.5, 0.5]

    Reference: Poggio & Girosi, Proc. IEEE 78, 1990, eq. (13) (regularisation networks); Tikhonov & Arsenin, 1977.
    """
    Phi, Y = jnp.asarray(Phi), jnp.asarray(Y)
    L = jnp.eye(Phi.shape[-1], dtype=Phi.dtype) if L is None else jnp.asarray(L, Phi.dtype)
    if not lam >= 0 or Phi.ndim != 2 or Y.ndim != 2 or Y.shape[0] != Phi.shape[0] or L.shape[-1:] != Phi.shape[1:]:
        raise ValueError(f"regularized_weights: expected lam >= 0, Phi (n, K), Y (n, p) and L (m, K), got lam={lam!r},"
                         f" Phi {Phi.shape}, Y {Y.shape}, L {L.shape}")
    return jnp.linalg.solve(Phi.T @ Phi + lam * (L.T @ L), Phi.T @ Y)


def logistic_protocol(x0: float, *, normalized: bool, beta: float | None = None, nu: float = 0.3,
                      n_centers: int = 5, n_train: int = 100, n_test: int = 100, centers: str = "first"):
    """The article's logistic-map experiment for one starting point ``x0``; returns test RMS errors.

    x(t+1) = 4 x(t)(1 - x(t)) from ``x0``; pairs ``(x(t), x(t+1))``, the first ``n_train`` train, the next
    ``n_test`` test. Centers (``"first"``, our reading of "five exemplars of the time series"): the first
    ``n_centers`` exemplars x(0), ..., x(K-1); ``"spread"``: the training inputs at the quantiles
    (i + 1/2) / K of their sorted values (exemplars too, but evenly spread over the attractor). Units
    ``exp(-beta (x - c)^2)`` with beta = 5 (unnormalized) or 6 (normalized) by default.
    Weights: one projection pass with ``nu`` from ``w = 0`` (the article's protocol), and for comparison the
    least-squares weights on the same units.

    Returns: dict ``{"projection": rms, "least_squares": rms}`` (floats).
    Reference: Jones et al., IJCNN 1990 (RMS 0.15 unnormalized, 0.084 normalized).
    """
    beta = (6.0 if normalized else 5.0) if beta is None else beta
    X, Y = data.logistic_map_pairs(n_train + n_test, x0=float(x0))
    if centers == "first":
        C = X[:n_centers]
    elif centers == "spread":
        order = jnp.sort(X[:n_train, 0])
        C = order[((jnp.arange(n_centers) + 0.5) * n_train / n_centers).astype(int)][:, None]
    else:
        raise ValueError(f"logistic_protocol: expected centers in ('first', 'spread'), got {centers!r}")
    R_tr = gaussian_units(X[:n_train], C, beta, normalized=normalized)
    R_te = gaussian_units(X[n_train:], C, beta, normalized=normalized)

    def rms(W):
        return float(jnp.sqrt(jnp.mean(jnp.square(R_te @ W - Y[n_train:]))))

    return {"projection": rms(projection_train(R_tr, Y[:n_train], nu=nu)),
            "least_squares": rms(solve_output_weights(R_tr, jnp.asarray(Y[:n_train])))}
