"""Bayesian optimisation for the lab: a Gaussian process on the unit cube, expected improvement, batch proposals.

The contract (stated once, here)::

    sizes = bayes_schedule(16, 4)                       # [8, 4, 4]: initial Sobol' batch, then rounds of q
    hp = sample(space, sizes[0], "sobol", seed=s)       # round 0 (fnn.lab.search)
    hp_next = propose(space, hp_seen, scores, q, seed=s)   # each later round: {name: (q,) float32}

Model. Configurations are mapped to the unit cube (:func:`fnn.lab.search.to_unit`, so a log-uniform learning rate
is linear there). The GP has a constant mean ``m``, an ARD Matern 5/2 kernel
``k(x, x') = variance * (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)``, ``r = |(x - x') / lengthscale|``, and
Gaussian observation noise of variance ``noise`` (Snoek, Larochelle & Adams 2012, section 3.1, recommend Matern 5/2
over the squared exponential, which is unrealistically smooth). All GP algebra runs in float64 inside
``jax.enable_x64(True)`` (a context, not the global flag: the rest of fnn stays float32) and returns NumPy arrays.

Reference: Snoek, Larochelle & Adams, "Practical Bayesian optimization of machine learning algorithms", NeurIPS
2012; Rasmussen & Williams, "Gaussian processes for machine learning", 2006, Algorithm 2.1 (Cholesky posterior,
log marginal likelihood) and eq. (4.17) (Matern 5/2); Jones, Schonlau & Welch, "Efficient global optimization of
expensive black-box functions", 1998, eq. (15) (expected improvement); Ginsbourger, Le Riche & Carraro, "Kriging is
well-suited to parallelize optimization", 2010 (the kriging believer).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular
from jax.scipy.stats import norm

from fnn.lab.search import Dim, from_unit, sample, to_unit

__all__ = ["matern52", "gp_posterior", "fit_gp", "expected_improvement", "propose", "bayes_schedule"]

_JITTER = 1e-9        # added to the kernel diagonal (relative to variance) so Cholesky never fails
_LENGTHSCALES = (0.02, 10.0)   # search bounds of fit_gp on the unit cube
_NOISE_RATIOS = (1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3)   # noise / variance, searched by fit_gp


def matern52(X, Z, lengthscale, variance=1.0):
    """ARD Matern 5/2 kernel matrix, ``variance * (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)``.

    Args:
      X: ``(n, d)``; Z: ``(m, d)``; lengthscale: scalar or ``(d,)``; variance: scalar.

    Returns:
      ``(n, m)`` jnp array in the dtype of the inputs (float64 under ``jax.enable_x64``).

    Example:
      >>> round(float(matern52(np.zeros((1, 1)), np.ones((1, 1)), 1.0)[0, 0]), 6)
      0.523994

    Reference: Rasmussen & Williams, "Gaussian processes for machine learning", 2006, eq. (4.17).
    """
    X, Z = jnp.asarray(X), jnp.asarray(Z)
    ell = jnp.broadcast_to(jnp.asarray(lengthscale, X.dtype), (X.shape[1],))
    diff = (X[:, None, :] - Z[None, :, :]) / ell[None, None, :]
    r2 = jnp.sum(diff * diff, axis=-1)
    r = jnp.sqrt(jnp.maximum(r2, 1e-300))   # the clamp keeps the gradient finite at r = 0; k is unchanged
    s5r = math.sqrt(5.0) * r
    return variance * (1.0 + s5r + (5.0 / 3.0) * r2) * jnp.exp(-s5r)


def _bucket(n: int) -> int:
    """Padded data size: the next power of 2, at least 16, so the jitted GP compiles for few shapes."""
    return max(16, 1 << max(0, n - 1).bit_length())


def _padded(X, r):
    """Pad ``(n, d)`` inputs and ``(n,)`` targets to :func:`_bucket` rows; ``m`` marks the real rows with 1.

    Padded rows get no covariance with anything and unit variance (``K_pad = blockdiag(K, I)``, see
    :func:`_kernel_matrix`) and target 0, so the posterior, ``alpha``, ``log|K|`` and ``z^T K^-1 z`` are exactly
    those of the real rows.
    """
    n, d = X.shape
    N = _bucket(n)
    Xp, rp, m = np.zeros((N, d)), np.zeros(N), np.zeros(N)
    Xp[:n], rp[:n], m[:n] = X, r, 1.0
    return Xp, rp, m


def _kernel_matrix(X, m, ell, variance, noise):
    K = matern52(X, X, ell, variance) + (noise + _JITTER * variance) * jnp.eye(X.shape[0])
    return K * (m[:, None] * m[None, :]) + jnp.diag(1.0 - m)


@jax.jit
def _posterior(X, r, m, Xs, ell, variance, noise):
    L = jnp.linalg.cholesky(_kernel_matrix(X, m, ell, variance, noise))
    alpha = cho_solve((L, True), r)
    Ks = matern52(Xs, X, ell, variance) * m[None, :]
    v = solve_triangular(L, Ks.T, lower=True)
    return Ks @ alpha, jnp.sqrt(jnp.maximum(variance - jnp.sum(v * v, axis=0), 0.0))


def gp_posterior(X, y, Xs, *, lengthscale, variance, noise, mean=0.0):
    """Posterior mean and standard deviation of the latent function at ``Xs``.

    With ``K = k(X, X) + noise I``, ``L = cholesky(K)``, ``alpha = K^-1 (y - mean)``, ``K_s = k(Xs, X)``:
    ``mu = mean + K_s alpha``, ``var = variance - diag(K_s K^-1 K_s^T)`` (computed as ``|L^-1 K_s^T|^2`` per column).
    The std is that of the latent f (no observation noise), as sklearn's ``predict(return_std=True)`` with ``alpha``.

    Args:
      X: ``(n, d)`` inputs; y: ``(n,)`` observations; Xs: ``(m, d)`` test inputs.
      lengthscale: scalar or ``(d,)``; variance: kernel variance; noise: observation-noise variance (>= 0; a
        jitter of 1e-9 * variance is always added); mean: the constant prior mean.

    Returns:
      ``(mean, std)``, NumPy float64 arrays of shape ``(m,)``.

    Example:
      >>> mu, sd = gp_posterior(np.zeros((1, 1)), np.ones(1), np.zeros((1, 1)), lengthscale=1.0, variance=1.0,
      ...                       noise=0.0)
      >>> round(float(mu[0]), 6), round(float(sd[0]), 3)
      (1.0, 0.0)

    Reference: Rasmussen & Williams, "Gaussian processes for machine learning", 2006, Algorithm 2.1.
    """
    X, Xs = np.asarray(X, np.float64), np.asarray(Xs, np.float64)
    y = np.asarray(y, np.float64)
    if X.ndim != 2 or Xs.ndim != 2 or Xs.shape[1] != X.shape[1] or y.shape != (X.shape[0],):
        raise ValueError(f"gp_posterior: expected X (n, d), y (n,) and Xs (m, d), got X {X.shape}, y {y.shape}, "
                         f"Xs {Xs.shape}; pass 2-D inputs with one row per point.")
    Xp, rp, m = _padded(X, y - mean)
    ell = np.broadcast_to(np.asarray(lengthscale, np.float64), (X.shape[1],))
    with jax.enable_x64(True):
        mu, sd = _posterior(Xp, rp, m, Xs, ell, float(variance), float(noise))
        return mean + np.asarray(mu), np.asarray(sd)


@jax.jit
def _profiled_nll(X, z, m, ells, ratios):
    """Negative log marginal likelihood (up to a constant) of standardised ``z`` for a batch of hyper-parameters.

    For ``K = s2 (R + g I)`` the optimal signal variance is ``s2 = z^T (R + g I)^-1 z / n`` (profiled out), leaving
    ``nll = 1/2 (log|R + g I| + n log s2)``. Padded (``m``, :func:`_padded`); ``ells``: ``(B, d)``; ``ratios``:
    ``(B,)``. Returns ``(nll, s2)``, each ``(B,)``.
    """
    n = jnp.sum(m)
    A = jax.vmap(lambda ell, g: _kernel_matrix(X, m, ell, 1.0, g))(ells, ratios)
    L = jnp.linalg.cholesky(A)
    a = jax.vmap(lambda Lb: cho_solve((Lb, True), z))(L)
    s2 = jnp.maximum(a @ z / n, 1e-300)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=1, axis2=2)), axis=1)
    nll = 0.5 * (logdet + n * jnp.log(s2))
    return jnp.where(jnp.isfinite(nll), nll, jnp.inf), s2


def fit_gp(X, y) -> dict:
    """GP hyper-parameters by maximising the log marginal likelihood of the standardised ``y``.

    ``y`` is standardised (``z = (y - mean) / sd``); the signal variance is profiled out in closed form
    (:func:`_profiled_nll`). A grid over a shared lengthscale (geometric, in [0.02, 10] on the unit cube) and the
    noise-to-signal ratio (1e-6 ... 0.3) is searched first, then two coordinate passes refine each dimension's
    lengthscale (factors 1/4 ... 4, ARD) and the noise ratio. All batched Cholesky factorisations, float64; a few
    milliseconds for the lab's sizes (no gradient steps, no compilation per data size).

    Args:
      X: ``(n, d)`` inputs (the lab's unit cube); y: ``(n,)`` finite observations, n >= 2.

    Returns:
      ``dict(lengthscale=(d,) array, variance=float, noise=float, mean=float)`` in the units of ``y``, ready for
      ``gp_posterior(X, y, Xs, **fit_gp(X, y))``.

    Example:
      >>> X = np.linspace(0, 1, 8)[:, None]; h = fit_gp(X, np.sin(6 * X[:, 0]))
      >>> sorted(h), h["lengthscale"].shape
      (['lengthscale', 'mean', 'noise', 'variance'], (1,))
    """
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] < 2 or not np.all(np.isfinite(y)):
        raise ValueError(f"fit_gp: expected X of shape (n, d) and finite y of shape (n,) with n >= 2, got X "
                         f"{X.shape}, y {y.shape} (finite: {bool(np.all(np.isfinite(y)))}); drop diverged runs first.")
    d, (lo, hi) = X.shape[1], _LENGTHSCALES
    mean, sd = float(np.mean(y)), float(np.std(y))
    sd = sd if sd > 0 else 1.0
    z = (y - mean) / sd
    Xp, zp, m = _padded(X, z)

    def search(ells, ratios, best):
        """The best of a batch of (lengthscales, ratio) against ``best = (nll, ell, g, s2)``; batch padded to 16k."""
        B = len(ratios)
        pad = -B % 16
        ells, ratios = np.concatenate([ells, ells[:1].repeat(pad, 0)]), np.concatenate([ratios, ratios[:1].repeat(pad)])
        with jax.enable_x64(True):
            nll, s2 = (np.asarray(a) for a in _profiled_nll(Xp, zp, m, ells, ratios))
        k = int(np.argmin(nll[:B]))
        return (nll[k], ells[k].copy(), float(ratios[k]), float(s2[k])) if nll[k] < best[0] else best

    iso = np.geomspace(lo, hi, 16)
    noise_ratios = np.asarray(_NOISE_RATIOS)
    best = search(np.repeat(np.repeat(iso, len(noise_ratios))[:, None], d, axis=1),
                  np.tile(noise_ratios, len(iso)), (np.inf, None, None, None))
    factors = np.geomspace(0.25, 4.0, 9)
    for _ in range(2):   # coordinate passes: each dimension's lengthscale, then the noise ratio
        for j in range(d):
            cand = np.repeat(best[1][None, :], len(factors), axis=0)
            cand[:, j] = np.clip(best[1][j] * factors, lo, hi)
            best = search(cand, np.full(len(factors), best[2]), best)
        best = search(np.repeat(best[1][None, :], len(noise_ratios), axis=0), noise_ratios, best)
    _, ell, g, s2 = best
    variance = s2 * sd * sd
    return {"lengthscale": np.asarray(ell), "variance": variance, "noise": g * variance, "mean": mean}


def expected_improvement(mean, std, best):
    """Expected improvement below ``best`` (minimisation): ``EI = (best - mu) Phi(z) + sigma phi(z)``,
    ``z = (best - mu) / sigma``.

    Where ``sigma = 0`` EI is its limit ``max(best - mu, 0)`` (0 at an observed point, whose mean is >= best).

    Args:
      mean, std: ``(m,)`` posterior means and standard deviations; best: the lowest observation so far.

    Returns:
      ``(m,)`` NumPy float64 array, >= 0.

    Example:
      >>> round(float(expected_improvement(np.zeros(1), np.ones(1), 0.0)[0]), 6)   # sigma * phi(0)
      0.398942

    Reference: Jones, Schonlau & Welch, "Efficient global optimization of expensive black-box functions", 1998,
    eq. (15).
    """
    with jax.enable_x64(True):
        mu, sigma = jnp.asarray(mean, jnp.float64), jnp.asarray(std, jnp.float64)
        gain = best - mu
        safe = jnp.where(sigma > 0, sigma, 1.0)
        zz = gain / safe
        ei = gain * norm.cdf(zz) + safe * norm.pdf(zz)
        return np.asarray(jnp.maximum(jnp.where(sigma > 0, ei, jnp.maximum(gain, 0.0)), 0.0))


def _targets(scores: np.ndarray) -> np.ndarray:
    """The GP's targets from losses: diverged runs replaced, then ``log(s - min + delta)`` (see :func:`propose`)."""
    s = scores.copy()
    ok = np.isfinite(s)
    lo, hi = float(s[ok].min()), float(s[ok].max())
    s[~ok] = hi + (0.5 * (hi - lo) if hi > lo else max(1.0, abs(hi)))
    spread = float(np.median(s)) - lo
    delta = 0.1 * spread if spread > 0 else 0.1 * (float(s.max()) - lo) or 1.0
    return np.log(s - lo + delta)


def propose(space: tuple[Dim, ...], hp_seen: dict, scores, q: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """The next ``q`` configurations by Bayesian optimisation (GP + expected improvement, kriging believer).

    1. Seen configurations go to the unit cube (:func:`to_unit`); ``scores`` are losses (lower is better).
    2. Diverged runs (``inf``/``nan``) get the worst finite score plus half the finite range (plus
       ``max(1, |worst|)`` when all finite scores are equal): bad, but not so bad that they flatten the model.
       With fewer than 2 finite scores there is nothing to model: q scrambled Sobol' points are returned instead
       (seeded by ``seed`` and the number seen, so they differ from the initial batch).
    3. The GP (:func:`fit_gp`) models ``y = log(s - min(s) + delta)``, ``delta`` = a tenth of ``median(s) - min(s)``
       (losses spread over orders of magnitude; the log resolves the region near the best without letting the
       worst runs dominate), standardised inside :func:`fit_gp`.
    4. EI is maximised over 2048 scrambled Sobol' candidates plus 128 Gaussian perturbations (std 0.05 in the unit
       cube) of each of the 3 best seen points. Points are chosen one at a time; after each choice its posterior mean
       is added as a fake observation (the "kriging believer"), the GP hyper-parameters kept, and the next point is
       chosen against the updated posterior (a chosen candidate is not chosen again).

    Args:
      space: the search space (tuple of Dim).
      hp_seen: ``{name: (n,) array}``, the configurations evaluated so far.
      scores: ``(n,)`` losses, ``inf``/``nan`` for diverged runs.
      q: the number of configurations to propose (>= 1).
      seed: seeds the candidates (same inputs and seed, same proposals).

    Returns:
      ``{name: (q,) float32}``, inside the space.

    Example:
      >>> from fnn.lab.search import space_for
      >>> space = space_for("sgd"); hp = sample(space, 6, "sobol")
      >>> scores = (np.log10(hp["learning_rate"]) + 2.0) ** 2
      >>> propose(space, hp, scores, 2)["learning_rate"].shape
      (2,)

    Reference: Snoek, Larochelle & Adams, "Practical Bayesian optimization of machine learning algorithms", NeurIPS
    2012, section 3; Ginsbourger, Le Riche & Carraro, "Kriging is well-suited to parallelize optimization", 2010.
    """
    U = to_unit(space, hp_seen)
    s = np.asarray(scores, np.float64).reshape(-1)
    if s.shape[0] != U.shape[0]:
        raise ValueError(f"propose: expected one score per configuration ({U.shape[0]}), got {s.shape[0]} scores; "
                         f"pass the losses of hp_seen in order.")
    if not isinstance(q, (int, np.integer)) or isinstance(q, bool) or q < 1:
        raise ValueError(f"propose: q must be an int >= 1, got q={q!r}; pass the size of the next round.")
    n, d = U.shape
    if np.isfinite(s).sum() < 2:
        return sample(space, int(q), "sobol", seed=int(seed) * 1_000_003 + n + 1)
    y = _targets(s)
    hyper = fit_gp(U, y)
    rng = np.random.default_rng([int(seed), n])
    from scipy.stats import qmc  # scipy loads only when proposals are asked for
    cand = [qmc.Sobol(d, scramble=True, rng=rng).random_base2(11)]
    order = np.argsort(y, kind="stable")
    for i in order[np.arange(3) % n]:   # always 3 x 128 (a fixed candidate count: one compiled shape)
        cand.append(np.clip(U[i] + 0.05 * rng.standard_normal((128, d)), 0.0, 1.0))
    cand = np.concatenate(cand, axis=0)
    taken = np.zeros(len(cand), bool)
    Xc, yc, chosen = U, y, []
    for _ in range(int(q)):
        mu, sd = gp_posterior(Xc, yc, cand, **hyper)
        ei = expected_improvement(mu, sd, float(np.min(yc)))
        score = np.where(taken, -np.inf, ei if np.max(ei[~taken]) > 0 else sd)   # flat EI: explore (largest std)
        k = int(np.argmax(score))
        taken[k] = True
        chosen.append(cand[k])
        Xc, yc = np.concatenate([Xc, cand[k][None, :]], axis=0), np.concatenate([yc, mu[k:k + 1]])
    return from_unit(space, np.stack(chosen))


def bayes_schedule(budget: int, q: int) -> list[int]:
    """Round sizes of a Bayesian-optimisation search: half the budget (rounded up) as an initial Sobol' batch, the
    rest in rounds of ``q`` (the last one smaller if q does not divide it). Sums to ``budget``.

    Example:
      >>> bayes_schedule(16, 4), bayes_schedule(10, 4), bayes_schedule(1, 4)
      ([8, 4, 4], [5, 4, 1], [1])
    """
    for name, v in (("budget", budget), ("q", q)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"bayes_schedule: {name} must be an int >= 1, got {name}={v!r}; pass a positive count.")
    first = (int(budget) + 1) // 2
    rest = int(budget) - first
    q = int(q)
    return [first] + [q] * (rest // q) + ([rest % q] if rest % q else [])
