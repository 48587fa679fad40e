"""Specific-heat annealing: an adaptive temperature schedule that cools slowly where the specific heat is large.

At each temperature T_k a Metropolis chain of ``sweeps`` proposals samples the Boltzmann distribution
p_T(w) ~ exp(-E(w) / T) of the energy E = L(w) (the loss). From the energies sampled after ``burn_in`` it estimates

    <E>_k = mean of E,      C_k = C(T_k) = Var[E] / T_k^2        (fluctuation-dissipation: C = d<E>/dT)

and takes the next temperature

    T_{k+1} = T_k (1 - delta / (1 + C_k / c_ref)).

Far from a transition (C_k << c_ref) this is geometric cooling, ``T_{k+1} = (1 - delta) T_k``; where the mean energy
changes abruptly with temperature (a peak of C, the analogue of a phase transition, where the chain chooses between
basins) the step in ln T shrinks by the factor 1 + C_k / c_ref. ``c_ref = inf`` gives the plain geometric schedule.

This is one of the family of rules that make the step in ln T proportional to T / sigma_E = 1 / sqrt(C): Huang,
Romeo, Sangiovanni-Vincentelli's ``T_{k+1} = T_k exp(-lambda T_k / sigma_k)`` and Aarts & van Laarhoven's
``T_{k+1} = T_k / (1 + T_k ln(1 + delta) / (3 sigma_k))``. The form above keeps every step between 0 and delta, so a
noisy estimate of a tiny C (sigma_k -> 0, frozen or a flat plateau) cannot make the temperature jump to zero.

The proposals are Gaussian, every weight at once, ``w' = w + N(0, sigma_k^2)`` with ``sigma_k = step_size
sqrt(T_k / t0)`` (the thermal width of a quadratic well grows as sqrt(T), so the acceptance rate stays roughly
constant); acceptance as in :mod:`fnn.classic.annealing`. Energies are in units of T (Boltzmann's constant k_B = 1),
so C is dimensionless: C = 1/2 per degree of freedom in a quadratic well, and C -> 0 for a finite set of states.

References: Kirkpatrick, Gelatt, Vecchi, "Optimization by simulated annealing", Science 220, 1983, p. 674 (the
specific heat of the placement problem; "annealing ... must proceed slowly" where it is large); Huang, Romeo,
Sangiovanni-Vincentelli, "An efficient general cooling schedule for simulated annealing", ICCAD 1986; Aarts & van
Laarhoven, "A new polynomial-time cooling schedule", ICCAD 1985; van Laarhoven & Aarts, *Simulated Annealing: Theory
and Applications*, 1987, ch. 5.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn.classic.annealing import gaussian_step

__all__ = ["ThermalStats", "SpecificHeatResult", "thermal_stats", "specific_heat_annealing", "next_temperature"]


class ThermalStats(NamedTuple):
    mean_energy: jax.Array     # <E>, mean of the kept energies
    var_energy: jax.Array      # Var[E] (ddof = 1)
    specific_heat: jax.Array   # C = Var[E] / T^2
    params: object             # the chain's last params
    accept_rate: jax.Array     # fraction of the proposals accepted


class SpecificHeatResult(NamedTuple):
    temperatures: jax.Array    # (K,) T_k of each level sampled, decreasing
    mean_energy: jax.Array     # (K,) <E> at each T_k
    specific_heat: jax.Array   # (K,) C(T_k) = Var[E] / T_k^2
    accept_rate: jax.Array     # (K,) Metropolis acceptance rate at each T_k
    params: object             # params at the end of the last level
    best_params: object        # params with the lowest energy seen
    best_loss: jax.Array       # that energy
    evaluations: int           # energy evaluations spent: K * sweeps (+ 1 for the initial params)


def next_temperature(T, C, delta: float, c_ref: float):
    """The specific-heat step ``T_{k+1} = T_k (1 - delta / (1 + C_k / c_ref))`` (``c_ref = inf``: geometric)."""
    return T * (1.0 - delta / (1.0 + C / c_ref))


def _chain(loss_fn, w, e, best, key, T, sigma, sweeps, burn):
    """``sweeps`` Metropolis proposals at temperature T; returns the new state and the statistics of the energies.

    The random numbers of the whole chain are drawn at once (one Gaussian step per proposal, the same law as
    :func:`fnn.classic.annealing.gaussian_step`, and one uniform for the acceptance test)."""
    k_steps, k_acc = jax.random.split(key)
    steps = gaussian_step(k_steps, jax.tree_util.tree_map(lambda x: jnp.zeros((sweeps,) + x.shape, x.dtype), w),
                          sigma)
    uniforms = jax.random.uniform(k_acc, (sweeps,))

    def body(carry, xs):
        w, e, (best_w, best_e) = carry
        dw, u = xs
        cand = jax.tree_util.tree_map(jnp.add, w, dw)
        e_cand = loss_fn(cand)
        de = e_cand - e
        accept = ((de < 0) | (u < jnp.exp(-jnp.maximum(de, 0.0) / T))) & jnp.isfinite(e_cand)
        w = jax.tree_util.tree_map(lambda a, b: jnp.where(accept, a, b), cand, w)
        e = jnp.where(accept, e_cand, e)
        better = e < best_e
        best = (jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), w, best_w), jnp.where(better, e, best_e))
        return (w, e, best), (e, accept)

    (w, e, best), (energies, accepted) = jax.lax.scan(body, (w, e, best), (steps, uniforms))
    kept = energies[burn:]
    mean, var = jnp.mean(kept), jnp.var(kept, ddof=1)
    return w, e, best, mean, var, jnp.mean(accepted.astype(jnp.float32))


def _check(name, sweeps, burn_in, **positive):
    for k, v in positive.items():
        if not (isinstance(v, (int, float)) and v > 0 and not math.isnan(v)):
            raise ValueError(f"{name}: expected {k} > 0, got {v!r}")
    if not (isinstance(sweeps, int) and sweeps >= 3):
        raise ValueError(f"{name}: expected sweeps, the proposals per temperature, to be an int >= 3, got {sweeps!r}")
    if not (isinstance(burn_in, (int, float)) and 0 <= burn_in < 1):
        raise ValueError(f"{name}: expected burn_in, the fraction of each chain discarded, in [0, 1), got {burn_in!r}")
    burn = int(burn_in * sweeps)
    if sweeps - burn < 2:
        raise ValueError(f"{name}: sweeps={sweeps} with burn_in={burn_in} keeps {sweeps - burn} energies; need >= 2 "
                         f"to estimate a variance: raise sweeps or lower burn_in")
    return burn


def thermal_stats(loss_fn: Callable, params, key, temperature, *, sweeps: int = 1000, burn_in: float = 0.25,
                  step_size: float = 0.5) -> ThermalStats:
    """Sample E = L(w) at one temperature by Metropolis and estimate <E> and the specific heat C = Var[E] / T^2.

    Args:
      loss_fn: ``params -> scalar`` energy; may return ``inf`` outside the allowed region (such moves are rejected).
      params: the chain's starting pytree. key: PRNG key. temperature: T > 0 (a number or a scalar array).
      sweeps: proposals; burn_in: fraction of them discarded before the statistics; step_size: the Gaussian
        proposal's standard deviation (fixed here).

    Returns:
      :class:`ThermalStats` (mean and variance of the kept energies, C, the last params, the acceptance rate).
      The kept energies are correlated, so the standard error of C is larger than for independent draws.

    Example:
      >>> s = thermal_stats(lambda w: 0.5 * jnp.sum(w ** 2), jnp.zeros(2), jax.random.key(0), 0.5,
      ...                   sweeps=20000, step_size=1.0)
      >>> round(float(s.specific_heat), 1)     # equipartition: C = 1/2 per degree of freedom
      1.0

    Reference: Kirkpatrick, Gelatt, Vecchi, Science 220, 1983 (C(T) = Var[E] / T^2 from the Metropolis samples).
    """
    burn = _check("thermal_stats", sweeps, burn_in, step_size=step_size)
    if isinstance(temperature, (int, float)) and not temperature > 0:
        raise ValueError(f"thermal_stats: expected temperature > 0, got {temperature!r}")
    return _thermal(loss_fn, params, key, jnp.asarray(temperature, jnp.float32), step_size, sweeps, burn)


@partial(jax.jit, static_argnames=("loss_fn", "sweeps", "burn"))
def _thermal(loss_fn, params, key, T, sigma, sweeps, burn):
    e0 = loss_fn(params)
    w, _, _, mean, var, acc = _chain(loss_fn, params, e0, (params, e0), key, T, sigma, sweeps, burn)
    return ThermalStats(mean, var, var / T ** 2, w, acc)


def specific_heat_annealing(loss_fn: Callable, params, key, *, t0: float = 1.0, t_final: float = 1e-3,
                            delta: float = 0.2, c_ref: float = 1.0, sweeps: int = 200, burn_in: float = 0.25,
                            step_size: float = 0.5, max_levels: int = 200) -> SpecificHeatResult:
    """Simulated annealing with the specific-heat schedule ``T_{k+1} = T_k (1 - delta / (1 + C(T_k) / c_ref))``.

    From ``T_0 = t0``, each level runs ``sweeps`` Metropolis proposals ``w' = w + N(0, sigma_k^2)``,
    ``sigma_k = step_size sqrt(T_k / t0)``, continuing from where the last level ended; estimates
    ``<E>_k`` and ``C_k = Var[E] / T_k^2`` from the energies after ``burn_in``; and cools by the rule above. It stops
    after the first level whose next temperature falls below ``t_final``, or after ``max_levels`` levels.

    Args:
      loss_fn: ``params -> scalar`` energy, pure (fixed data); ``inf`` marks forbidden params.
      params: any pytree of float arrays. key: PRNG key; the same key gives the same run.
      t0, t_final: first and (bound on the) last temperature, in units of the loss. delta: the largest step in
        ln T, ``0 < delta < 1``. c_ref: the specific heat at which the step is halved (``inf``: geometric cooling,
        ``T_{k+1} = (1 - delta) T_k``). sweeps, burn_in: proposals per level and the fraction not used in the
        statistics. step_size: proposal scale at t0. max_levels: cap on the number of levels.

    Returns:
      :class:`SpecificHeatResult`: per level ``temperatures``, ``mean_energy``, ``specific_heat``, ``accept_rate``
      (each (K,)), the last and the best params, the best energy and the number of energy evaluations.

    Example:
      >>> two_wells = lambda w: jnp.sum((w ** 2 - 1.0) ** 2 + 0.3 * w)        # global minimum near w = -1
      >>> res = specific_heat_annealing(two_wells, jnp.ones(1), jax.random.key(0), t0=1.0, t_final=1e-2)
      >>> bool(res.best_params[0] < 0), res.temperatures.shape == res.specific_heat.shape
      (True, True)

    Reference: Kirkpatrick, Gelatt, Vecchi, Science 220, 1983; Huang, Romeo, Sangiovanni-Vincentelli, ICCAD 1986;
    van Laarhoven & Aarts, *Simulated Annealing: Theory and Applications*, 1987, ch. 5.
    """
    burn = _check("specific_heat_annealing", sweeps, burn_in, t0=t0, t_final=t_final, c_ref=c_ref,
                  step_size=step_size)
    if not t_final < t0:
        raise ValueError(f"specific_heat_annealing: expected t_final < t0, got t_final={t_final!r}, t0={t0!r}")
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ValueError(f"specific_heat_annealing: expected 0 < delta < 1 (the largest step in ln T), got {delta!r}")
    if not (isinstance(max_levels, int) and max_levels >= 1):
        raise ValueError(f"specific_heat_annealing: expected max_levels to be a positive int, got {max_levels!r}")
    out = _anneal(loss_fn, params, key, float(t0), float(t_final), float(delta), float(c_ref), float(step_size),
                  sweeps, burn, max_levels)
    (w, best_w, best_e, n), (Ts, means, Cs, accs) = out
    n = int(n)
    return SpecificHeatResult(Ts[:n], means[:n], Cs[:n], accs[:n], w, best_w, best_e, n * sweeps + 1)


@partial(jax.jit, static_argnames=("loss_fn", "sweeps", "burn", "max_levels"))
def _anneal(loss_fn, params, key, t0, t_final, delta, c_ref, step_size, sweeps, burn, max_levels):
    e0 = loss_fn(params)

    def level(carry, k):
        w, e, best, T, n, key = carry
        key, sub = jax.random.split(key)

        def run(_):
            w1, e1, best1, mean, var, acc = _chain(loss_fn, w, e, best, sub, T, step_size * jnp.sqrt(T / t0),
                                                   sweeps, burn)
            C = var / T ** 2
            return (w1, e1, best1, next_temperature(T, C, delta, c_ref), n + 1), (T, mean, C, acc)

        def skip(_):
            nan = jnp.full((), jnp.nan, jnp.float32)
            return (w, e, best, T, n), (nan, nan, nan, nan)

        active = (n == 0) | (T >= t_final)
        (w, e, best, T, n), rec = jax.lax.cond(active, run, skip, None)
        return (w, e, best, T, n, key), rec

    init = (params, e0, (params, e0), jnp.asarray(t0, jnp.float32), jnp.zeros((), jnp.int32), key)
    (w, _, (best_w, best_e), _, n, _), recs = jax.lax.scan(level, init, jnp.arange(max_levels))
    return (w, best_w, best_e, n), recs
