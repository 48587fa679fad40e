"""Schedules: functions ``step -> value`` for any hyper-parameter of an fnn (or optax) optimizer.

Which step counts: the optimizer passes its state's counter, the number of updates already done, so the
*first* update uses ``schedule(0)``, exactly as in optax. ``step`` may be a Python int or an int32 array
(inside ``jit``); values come back as float arrays. "Epochs" become steps by multiplying by the number of
batches per epoch (e.g. ``step_decay(0.1, every=10 * steps_per_epoch)`` halves every 10 epochs).
Where optax has the same schedule the docstring names the call that reproduces it (tested in
tests/test_schedules.py).
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp

from fnn import checks

Schedule = Callable[[object], object]


def _t(step):
    """The step as a float array (so that ``t / every`` is a true division even for int steps)."""
    return jnp.asarray(step, jnp.result_type(float))


def _increasing(boundaries) -> bool:
    """True when the boundaries are sorted, or when some are traced (then the caller checks them, or nobody)."""
    known = [checks.concrete(b) for b in boundaries]
    return any(b is None for b in known) or list(boundaries) == sorted(boundaries)


def constant(value: float) -> Schedule:
    """``a(t) = value`` for every step. optax: ``optax.constant_schedule(value)``.

    Args:
      value: the value returned.

    Returns:
      A schedule ``step -> value`` (0-d float array).

    Example:
      >>> round(float(constant(0.1)(7)), 6)
      0.1
    """
    return lambda step: jnp.full((), value, jnp.result_type(float)) + 0 * _t(step)


def step_decay(init_value: float, every: int, factor: float = 0.5) -> Schedule:
    """Step decay: ``a(t) = a0 * factor ** floor(t / every)`` (halve every ``every`` steps by default).

    optax: ``optax.exponential_decay(a0, transition_steps=every, decay_rate=factor, staircase=True)``.

    Args:
      init_value: ``a0`` > 0.
      every: steps between two decays (> 0).
      factor: multiplier applied at each decay, in (0, 1].

    Returns:
      A schedule.

    Example:
      >>> float(step_decay(1.0, every=10)(25))
      0.25

    Reference: CS231n notes, "Annealing the learning rate" (step decay).
    """
    checks.positive("step_decay", init_value=init_value, every=every, factor=factor)
    checks.in_range("step_decay", 0, 1, closed=True, fix="a decay multiplies by a factor in (0, 1]; for growth "
                    "write the schedule yourself.", factor=factor)
    return lambda step: init_value * factor ** jnp.floor(_t(step) / every)


def exponential(init_value: float, k: float) -> Schedule:
    """Exponential decay: ``a(t) = a0 * exp(-k t)``.

    optax: ``optax.exponential_decay(a0, transition_steps=1, decay_rate=exp(-k))`` (equal up to rounding).

    Args:
      init_value: ``a0`` > 0.
      k: decay constant >= 0.

    Returns:
      A schedule.

    Example:
      >>> round(float(exponential(1.0, 0.1)(10)), 6)
      0.367879

    Reference: CS231n notes, "Annealing the learning rate" (exponential decay).
    """
    checks.positive("exponential", init_value=init_value)
    checks.non_negative("exponential", fix="pass k=0 for a constant.", k=k)
    return lambda step: init_value * jnp.exp(-k * _t(step))


def inverse_time(init_value: float, k: float) -> Schedule:
    """Inverse-time (1/t) decay: ``a(t) = a0 / (1 + k t)``. No optax equivalent.

    Args:
      init_value: ``a0`` > 0.
      k: decay constant >= 0.

    Returns:
      A schedule.

    Example:
      >>> float(inverse_time(1.0, 0.5)(2))
      0.5

    Reference: CS231n notes, "Annealing the learning rate" (1/t decay); Robbins & Monro, 1951.
    """
    checks.positive("inverse_time", init_value=init_value)
    checks.non_negative("inverse_time", fix="pass k=0 for a constant.", k=k)
    return lambda step: init_value / (1 + k * _t(step))


def piecewise_constant(boundaries: Sequence[int], values: Sequence[float]) -> Schedule:
    """Piecewise constant: ``a(t) = values[i]`` for ``boundaries[i-1] <= t < boundaries[i]``.

    ``len(values) == len(boundaries) + 1``; ``values[0]`` applies before the first boundary. optax's
    ``piecewise_constant_schedule(values[0], {b_i: values[i+1] / values[i]})`` takes *ratios* instead of values.

    Args:
      boundaries: increasing steps where the value changes.
      values: the values, one more than boundaries.

    Returns:
      A schedule.

    Example:
      >>> round(float(piecewise_constant([10, 20], [1.0, 0.1, 0.01])(15)), 6)
      0.1
    """
    if len(values) != len(boundaries) + 1 or not _increasing(boundaries):
        raise ValueError(f"piecewise_constant: need increasing boundaries and len(values) == len(boundaries) + 1, "
                         f"got boundaries={list(boundaries)}, values={list(values)}.")
    b = jnp.asarray(boundaries, jnp.result_type(float))
    v = jnp.asarray(values, jnp.result_type(float))
    return lambda step: v[jnp.sum(_t(step) >= b)]


def cosine(init_value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Cosine decay: ``a(t) = a0 * ((1 - alpha) * (1 + cos(pi * min(t, T) / T)) / 2 + alpha)``, ``T = decay_steps``.

    optax: ``optax.cosine_decay_schedule(a0, decay_steps=T, alpha=alpha)``.

    Args:
      init_value: ``a0`` > 0.
      decay_steps: ``T`` > 0, after which the value stays at ``alpha * a0``.
      alpha: final value as a fraction of ``a0``, in [0, 1].

    Returns:
      A schedule.

    Example:
      >>> round(float(cosine(1.0, 100)(50)), 6)
      0.5

    Reference: Loshchilov & Hutter, "SGDR: stochastic gradient descent with warm restarts", ICLR 2017, eq. (5).
    """
    checks.positive("cosine", init_value=init_value, decay_steps=decay_steps)
    checks.probability("cosine", fix="alpha is the final value as a fraction of init_value, e.g. 0.0.", alpha=alpha)
    return lambda step: init_value * ((1 - alpha) * (1 + jnp.cos(jnp.pi * jnp.minimum(_t(step), decay_steps)
                                                                  / decay_steps)) / 2 + alpha)


def linear_warmup(peak_value: float, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """Linear warm-up: ``a(t) = a_init + (a_peak - a_init) * min(t, W) / W``, then constant ``a_peak``.

    optax: ``optax.linear_schedule(init_value, peak_value, transition_steps=W)``. Combine with a decay using
    :func:`join`.

    Args:
      peak_value: value reached at step ``W``.
      warmup_steps: ``W`` > 0.
      init_value: value at step 0.

    Returns:
      A schedule.

    Example:
      >>> float(linear_warmup(1.0, 10)(5))
      0.5

    Reference: Goyal et al., "Accurate, large minibatch SGD: training ImageNet in 1 hour", 2017, section 2.2.
    """
    checks.positive("linear_warmup", warmup_steps=warmup_steps)
    return lambda step: init_value + (peak_value - init_value) * jnp.minimum(_t(step), warmup_steps) / warmup_steps


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i]`` between ``boundaries[i-1]`` and ``boundaries[i]``, restarting its step at 0.

    ``a(t) = schedules[i](t - boundaries[i-1])`` for ``boundaries[i-1] <= t < boundaries[i]``.
    optax: ``optax.join_schedules(schedules, boundaries)`` (same convention).

    Args:
      schedules: ``n`` schedules.
      boundaries: ``n - 1`` increasing steps.

    Returns:
      A schedule.

    Example:
      >>> s = join([linear_warmup(1.0, 10), cosine(1.0, 90)], [10])
      >>> float(s(10))
      1.0
    """
    if len(schedules) != len(boundaries) + 1 or not _increasing(boundaries):
        raise ValueError(f"join: need increasing boundaries and len(schedules) == len(boundaries) + 1, got "
                         f"{len(schedules)} schedules and boundaries={list(boundaries)}.")

    def schedule(step):
        t = _t(step)
        out = schedules[0](t)
        for b, s in zip(boundaries, schedules[1:]):
            out = jnp.where(t < b, out, s(t - b))
        return out

    return schedule


def momentum_annealing(every: int = 250, mu_max: float = 0.99) -> Schedule:
    """Momentum annealing from 0.5 towards ``mu_max``: ``mu(t) = min(1 - 2^(-1 - log2(floor(t / every) + 1)), mu_max)``.

    Equivalently ``mu(t) = min(1 - 1 / (2 (floor(t / every) + 1)), mu_max)``: 0.5, 0.75, 0.833, ... every
    ``every`` steps, capped at ``mu_max`` (0.99 is reached at ``t = 50 * every``). No optax equivalent.

    Args:
      every: steps between two increases (> 0).
      mu_max: cap, in [0.5, 1).

    Returns:
      A schedule for the ``mu`` of ``momentum`` / ``nesterov``.

    Example:
      >>> round(float(momentum_annealing(every=10)(10)), 6)
      0.75

    Reference: Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and momentum in deep
    learning", ICML 2013, eq. (5).
    """
    checks.positive("momentum_annealing", every=every)
    checks.in_range("momentum_annealing", 0.5, 1, fix="e.g. mu_max=0.99.", mu_max=mu_max)
    return lambda step: jnp.minimum(1 - 2.0 ** (-1 - jnp.log2(jnp.floor(_t(step) / every) + 1)), mu_max)


__all__ = ["constant", "step_decay", "exponential", "inverse_time", "piecewise_constant", "cosine",
           "linear_warmup", "join", "momentum_annealing"]
