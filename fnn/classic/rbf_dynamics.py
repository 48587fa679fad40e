"""Dynamics of a learned map: Lyapunov exponents, the prediction horizon of chaos, and control by a learned model.

For a 1-D map ``x(t+1) = F(x(t))`` (the logistic map ``4 x (1 - x)`` or an RBF network fitted to it):

    lambda = lim (1/T) sum_{t<T} ln |F'(x_t)|             (Lyapunov exponent along the orbit; ln 2 for r = 4)
    T_h = ln(threshold / eps0) / lambda                    (steps until an error eps0 grows past threshold)

Control (:func:`control_orbit`), OGY-style with a learned model ``x' = G(x, delta)`` of the map with parameter
``r = r0 + delta``: when the state is within ``window`` of the target ``x*``, choose the small perturbation

    delta_t = clip((x* - G(x_t, 0)) / dG/ddelta(x_t, 0), -delta_max, delta_max)

(one Newton step on ``G(x_t, delta) = x*``, the model's inverse in ``delta``), else ``delta_t = 0``; the true system
then steps ``x(t+1) = (r0 + delta_t) x_t (1 - x_t)``. Departure from Ott, Grebogi & Yorke (1990): they linearize
around the fixed point and pick ``delta`` to put the next state on its stable manifold; in one dimension the stable
manifold is the point itself, so their rule is this one with the model linearized at ``x*`` instead of at ``x_t``.

References: Jones et al., "Function approximation and time series prediction with neural networks", Proc. IJCNN
1990 (the Lyapunov exponent of the learned logistic map, control by the learned model); Ott, Grebogi & Yorke,
"Controlling chaos", Phys. Rev. Lett. 64, 1990; Eckmann & Ruelle, Rev. Mod. Phys. 57, 1985 (Lyapunov exponents).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from fnn import data
from fnn.classic.rbf import kmeans
from fnn.classic.rbf_article import fit_local_linear, local_linear_apply

__all__ = [
    "lyapunov_exponent", "iterate_map", "steps_to_error", "predicted_horizon", "control_data", "fit_control_model",
    "control_orbit",
]


def _check_steps(where, steps, burn=0):
    if not (isinstance(steps, int) and steps >= 1 and isinstance(burn, int) and burn >= 0):
        raise ValueError(f"{where}: expected an int steps >= 1 and an int burn >= 0, got steps={steps!r}, "
                         f"burn={burn!r}")


def lyapunov_exponent(F, x0, steps: int, *, burn: int = 0):
    """``lambda = (1/T) sum_{t=burn}^{burn+T-1} ln |F'(x_t)|`` along the orbit ``x_{t+1} = F(x_t)`` from ``x0``.

    Args: F: scalar map (jax-differentiable), ``F(x) -> x'``. x0: start. steps: ``T``. burn: transient steps first.
    Returns: scalar (the dtype of ``x0``; use float64 for long chaotic orbits).

    Example:
      >>> float(lyapunov_exponent(lambda x: 0.5 * x + 1.0, 0.0, 10))     # ln 0.5
      -0.6931471824645996
    """
    _check_steps("lyapunov_exponent", steps, burn)
    dF = jax.grad(F)

    def step(x, _):
        return F(x), jnp.log(jnp.abs(dF(x)))

    x = jax.lax.fori_loop(0, burn, lambda _, x: F(x), jnp.asarray(x0, jnp.result_type(float)))
    return jnp.mean(jax.lax.scan(step, x, None, length=steps)[1])


def iterate_map(F, x0, steps: int):
    """The free-running orbit ``x_0 = x0``, ``x_{t+1} = F(x_t)``; returns (steps + 1,)."""
    _check_steps("iterate_map", steps)
    x0 = jnp.asarray(x0, jnp.result_type(float))
    xs = jax.lax.scan(lambda x, _: (F(x), F(x)), x0, None, length=steps)[1]
    return jnp.concatenate([x0[None], xs])


def steps_to_error(pred, truth, threshold: float = 0.1) -> int:
    """First ``t`` with ``|pred_t - truth_t| > threshold``, or -1 if the error never exceeds it."""
    over = jnp.abs(jnp.asarray(pred) - jnp.asarray(truth)) > threshold
    return int(jnp.argmax(over)) if bool(jnp.any(over)) else -1


def predicted_horizon(eps0: float, lam: float, threshold: float = 0.1) -> float:
    """``T_h = ln(threshold / eps0) / lambda``: the steps an error ``eps0`` takes to grow past ``threshold``.

    Example:
      >>> predicted_horizon(0.1 / 2 ** 5, math.log(2.0))
      5.0
    """
    if not (eps0 > 0 and lam > 0 and threshold > 0):
        raise ValueError(f"predicted_horizon: expected eps0, lam and threshold > 0 (a positive exponent: chaos), got "
                         f"eps0={eps0!r}, lam={lam!r}, threshold={threshold!r}")
    return math.log(threshold / eps0) / lam


def control_data(key, n: int, *, x0: float = 0.2, r0: float = 4.0, delta_max: float = 0.2):
    """Observations of the map under random parameter perturbations: ``x' = (r0 + delta) x (1 - x)``.

    ``x`` runs over the unperturbed orbit from ``x0`` (``fnn.data.logistic_map``), ``delta ~ U(-delta_max,
    delta_max)`` drawn with ``key``. Returns ``(X (n, 2) = [x, delta], Y (n, 1))``.
    """
    _check_steps("control_data", n)
    x = jnp.asarray(data.logistic_map(n, x0=x0, r=r0))
    delta = jax.random.uniform(key, (n,), x.dtype, -delta_max, delta_max)
    return jnp.stack([x, delta], axis=1), ((r0 + delta) * x * (1.0 - x))[:, None]


def fit_control_model(key, X, Y, *, n_centers: int = 12, beta: float = 8.0, delta_max: float = 0.2):
    """A local-linear RBF model ``G(x, delta)`` of the perturbed map from :func:`control_data`'s observations.

    The inputs are scaled to ``u = [x, delta / (2 delta_max)]`` (both of unit range), the centers are k-means
    centers of ``u`` (``key``), the units local-linear with shared ``beta``, fitted by least squares.
    Returns: ``G(x, delta) -> x'`` (scalars; jax-differentiable).
    """
    scale = jnp.array([1.0, 0.5 / delta_max], X.dtype)
    U = X * scale[None, :]
    C, _ = kmeans(key, U, n_centers)
    theta = fit_local_linear(U, Y, C, beta)

    def G(x, delta):
        u = jnp.stack([x, delta]).astype(U.dtype) * scale
        return local_linear_apply(theta, u[None, :], C, beta)[0, 0]

    return G


def control_orbit(G, x0, steps: int, *, x_target: float = 0.75, r0: float = 4.0, window: float = 0.02,
                  delta_max: float = 0.2, start: int = 0):
    """Drive the logistic map to ``x_target`` with small parameter perturbations computed from a model ``G``.

    For ``t >= start`` and ``|x_t - x_target| < window``: ``delta_t = clip((x* - G(x_t, 0)) / dG/ddelta(x_t, 0),
    -delta_max, delta_max)``, else 0; ``x_{t+1} = (r0 + delta_t) x_t (1 - x_t)`` (the true system). With the exact
    model ``G(x, delta) = (r0 + delta) x (1 - x)`` one step lands on ``x*`` exactly.

    Args: G: model ``G(x, delta) -> x'``. x0: start. steps: length. x_target: ``x*`` (3/4 is the unstable fixed
      point for r0 = 4). window, delta_max: control region and largest perturbation. start: first controlled step.
    Returns: ``(xs (steps + 1,), deltas (steps,))``.

    Example:
      >>> G = lambda x, d: (4.0 + d) * x * (1.0 - x)
      >>> xs, ds = control_orbit(G, 0.74, 3)
      >>> xs.tolist()
      [0.7400000095367432, 0.75, 0.75, 0.75]
    """
    _check_steps("control_orbit", steps, start)
    dG = jax.grad(G, argnums=1)

    def step(x, t):
        zero = jnp.zeros_like(x)
        d = jnp.clip((x_target - G(x, zero)) / dG(x, zero), -delta_max, delta_max)
        d = jnp.where((t >= start) & (jnp.abs(x - x_target) < window), d, zero)
        x_new = (r0 + d) * x * (1.0 - x)
        return x_new, (x_new, d)

    x0 = jnp.asarray(x0, jnp.result_type(float))
    _, (xs, ds) = jax.lax.scan(step, x0, jnp.arange(steps))
    return jnp.concatenate([x0[None], xs]), ds
