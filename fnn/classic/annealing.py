"""Gradient-free training of fnn params: simulated annealing, Cauchy training, and the mixed backprop/Cauchy rule.

All three are Metropolis searches over the whole parameter tree. At step k = 0, 1, ..., with temperature T_k:

    propose   w' = w + dw_k                   (Gaussian or Cauchy, every weight at once)
    accept    if L(w') < L(w), else with probability exp(-(L(w') - L(w)) / T_k)   (Boltzmann acceptance)

==================  ===============================  =============================================================
rule                temperature T_k                  step dw_k (per weight)
==================  ===============================  =============================================================
annealing           t0 / ln(k + 2)  (Boltzmann)      N(0, sigma_k^2),  sigma_k = step_size * T_k / t0
cauchy              t0 / (k + 1)    (fast)           Cauchy(0, c_k),  c_k = step_size * T_k / t0
mixed               t0 / (k + 1)                     backprop step -lr grad L(w), always taken, then
                                                     eta * Cauchy(0, c_k), accepted as above against w - lr grad L(w)
==================  ===============================  =============================================================

The Cauchy distribution's heavy tails give occasional long jumps, which is what lets the fast 1/(k+1) schedule still
escape local minima (Szu & Hartley); the logarithmic schedule is the one for which Gaussian annealing is guaranteed
to reach the global minimum (Geman & Geman), and is slow.

Each function runs as one compiled ``lax.scan`` and returns an :class:`AnnealResult` with the current and the best
params and the loss history. The loss must be a pure function of the params (mini-batches and dropout fixed).

References: Kirkpatrick, Gelatt, Vecchi, "Optimization by simulated annealing", Science 220, 1983; Geman & Geman,
IEEE PAMI 6, 1984 (logarithmic schedule); Szu & Hartley, "Fast simulated annealing", Physics Letters A 122, 1987;
Wasserman, *Neural Computing: Theory and Practice*, 1989, ch. 5 (Boltzmann, Cauchy and combined backpropagation/
Cauchy training).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["AnnealResult", "boltzmann_temperature", "cauchy_temperature", "gaussian_step", "cauchy_step",
           "simulated_annealing", "cauchy_training", "mixed_training"]


class AnnealResult(NamedTuple):
    params: object           # params after the last step
    best_params: object      # params with the lowest loss seen
    best_loss: jax.Array     # that loss
    losses: jax.Array        # (steps,) loss of the current params after each step
    accept_rate: jax.Array   # fraction of proposals accepted


def boltzmann_temperature(t0: float, k):
    """The logarithmic (Boltzmann) schedule ``T_k = t0 / ln(k + 2)``, k = 0, 1, ... (Geman & Geman 1984)."""
    return t0 / jnp.log(jnp.asarray(k, jnp.float32) + 2.0)


def cauchy_temperature(t0: float, k):
    """The fast (Cauchy) schedule ``T_k = t0 / (k + 1)``, k = 0, 1, ... (Szu & Hartley 1987)."""
    return t0 / (jnp.asarray(k, jnp.float32) + 1.0)


def _like(key, params, draw):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree_util.tree_unflatten(treedef, [draw(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])


def gaussian_step(key, params, scale):
    """A Gaussian change of every weight: ``dw ~ N(0, scale^2)``, same tree, shapes and dtypes as ``params``."""
    return _like(key, params, lambda k, s, d: scale * jax.random.normal(k, s, d))


def cauchy_step(key, params, scale):
    """A Cauchy change of every weight: ``dw = scale * tan(pi (u - 1/2))``, u ~ U(0, 1), i.e. Cauchy(0, scale).

    The median of |dw| is ``scale``; the mean does not exist (heavy tails).
    """
    return _like(key, params, lambda k, s, d: scale * jax.random.cauchy(k, s, d))


def _add(a, b, c=1.0):
    return jax.tree_util.tree_map(lambda x, y: x + c * y, a, b)


def _metropolis(loss_fn, params, key, steps, temperature, propose):
    """The shared loop: ``propose(key, w, k) -> (w_base, w_candidate)``; Boltzmann acceptance of the candidate
    against ``w_base`` at temperature ``temperature(k)``."""
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"annealing: expected a positive number of steps, got {steps!r}")
    loss0 = loss_fn(params)

    def body(carry, k):
        w, l, best_w, best_l, n_acc, key = carry
        key, k_prop, k_acc = jax.random.split(key, 3)
        base, cand = propose(k_prop, w, k)
        l_base = loss_fn(base) if base is not w else l
        l_cand = loss_fn(cand)
        T = temperature(k)
        dl = l_cand - l_base
        accept = (dl < 0) | (jax.random.uniform(k_acc) < jnp.exp(-jnp.maximum(dl, 0.0) / T))
        accept = accept & jnp.isfinite(l_cand)
        w = jax.tree_util.tree_map(lambda a, b: jnp.where(accept, a, b), cand, base)
        l = jnp.where(accept, l_cand, l_base)
        better = l < best_l
        best_w = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), w, best_w)
        best_l = jnp.where(better, l, best_l)
        return (w, l, best_w, best_l, n_acc + accept, key), l

    @jax.jit
    def run(params, key):
        init = (params, loss0, params, loss0, jnp.zeros((), jnp.int32), key)
        (w, _, best_w, best_l, n_acc, _), losses = jax.lax.scan(body, init, jnp.arange(steps))
        return AnnealResult(w, best_w, best_l, losses, n_acc / steps)

    return run(params, key)


def _check(name, **values):
    for k, v in values.items():
        if not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise ValueError(f"{name}: expected {k} > 0, got {v!r}")


def simulated_annealing(loss_fn: Callable, params, key, *, steps: int = 2000, t0: float = 1.0,
                        step_size: float = 0.5) -> AnnealResult:
    """Boltzmann simulated annealing: Gaussian weight changes, ``T_k = t0 / ln(k + 2)``.

        w' = w + N(0, sigma_k^2),  sigma_k = step_size * T_k / t0;
        accept w' if L(w') < L(w) or with probability exp(-(L(w') - L(w)) / T_k).

    Args:
      loss_fn: ``params -> scalar``, pure (fixed data).
      params: any pytree of float arrays (e.g. from ``layer.init``).
      key: PRNG key; the same key gives the same run.
      steps: number of proposals. t0: initial temperature (in units of the loss). step_size: sigma at T = t0.

    Returns:
      :class:`AnnealResult` (current and best params, best loss, per-step losses, acceptance rate).

    Example:
      >>> res = simulated_annealing(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(2), jax.random.key(0))
      >>> bool(res.best_loss < 0.1)
      True

    Reference: Kirkpatrick et al., Science 1983; Geman & Geman 1984; Wasserman 1989, ch. 5 (Boltzmann training).
    """
    _check("simulated_annealing", t0=t0, step_size=step_size)
    temperature = lambda k: boltzmann_temperature(t0, k)  # noqa: E731

    def propose(key, w, k):
        return w, _add(w, gaussian_step(key, w, step_size * temperature(k) / t0))

    return _metropolis(loss_fn, params, key, steps, temperature, propose)


def cauchy_training(loss_fn: Callable, params, key, *, steps: int = 2000, t0: float = 1.0,
                    step_size: float = 0.5) -> AnnealResult:
    """Cauchy training: Cauchy-distributed weight changes under the fast schedule ``T_k = t0 / (k + 1)``.

        w' = w + Cauchy(0, c_k),  c_k = step_size * T_k / t0;  Boltzmann acceptance at T_k.

    Args and Returns as :func:`simulated_annealing`.

    Reference: Szu & Hartley, "Fast simulated annealing", 1987; Wasserman 1989, ch. 5 (Cauchy training).
    """
    _check("cauchy_training", t0=t0, step_size=step_size)
    temperature = lambda k: cauchy_temperature(t0, k)  # noqa: E731

    def propose(key, w, k):
        return w, _add(w, cauchy_step(key, w, step_size * temperature(k) / t0))

    return _metropolis(loss_fn, params, key, steps, temperature, propose)


def mixed_training(loss_fn: Callable, params, key, *, steps: int = 2000, learning_rate: float = 0.5,
                   eta: float = 0.5, t0: float = 1.0, step_size: float = 0.5) -> AnnealResult:
    """The mixed rule: a backprop step plus ``eta`` times a Cauchy step, the random part annealed.

        w_bp = w - learning_rate * grad L(w)                     (always taken)
        w'   = w_bp + eta * Cauchy(0, c_k),  c_k = step_size * T_k / t0,  T_k = t0 / (k + 1)
        w    <- w' if L(w') < L(w_bp) or with probability exp(-(L(w') - L(w_bp)) / T_k), else w_bp

    Departure from Wasserman's combined rule, which blends the two steps with a momentum term and weights
    (1 - eta) and eta: here the gradient step is plain and always taken, and only the random part is subject to
    the Metropolis test; as eta -> 0 the rule becomes plain gradient descent.

    Args:
      loss_fn, params, key, steps, t0, step_size: as :func:`cauchy_training`.
      learning_rate: gradient-descent step size. eta: weight of the Cauchy step.

    Returns:
      :class:`AnnealResult`.

    Reference: Wasserman, *Neural Computing: Theory and Practice*, 1989, ch. 5 ("Combined backpropagation/Cauchy
    training").
    """
    _check("mixed_training", learning_rate=learning_rate, eta=eta, t0=t0, step_size=step_size)
    temperature = lambda k: cauchy_temperature(t0, k)  # noqa: E731
    grad = jax.grad(loss_fn)

    def propose(key, w, k):
        w_bp = _add(w, grad(w), -learning_rate)
        return w_bp, _add(w_bp, cauchy_step(key, w, step_size * temperature(k) / t0), eta)

    return _metropolis(loss_fn, params, key, steps, temperature, propose)
