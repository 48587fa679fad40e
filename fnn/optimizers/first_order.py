"""First-order rules: plain SGD, momentum, Nesterov's accelerated gradient, and delta-bar-delta.

The contract (``Optimizer(init, update)``) and the helpers every rule uses are in :mod:`fnn.optimizers.base`.
Each rule's per-leaf function takes its hyper-parameters by name (keyword-only), in the symbols of its docstring.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn import checks
from fnn.optimizers.base import Optimizer, ScalarOrSchedule, expect_state, lift, step_count, value_at, zeros_like

__all__ = ["sgd", "momentum", "nesterov", "delta_bar_delta", "SgdState", "MomentumState", "DeltaBarDeltaState"]


class SgdState(NamedTuple):
    count: jax.Array  # int32 scalar, number of updates done so far (step of the next one)


def sgd(learning_rate: ScalarOrSchedule) -> Optimizer:
    """Stochastic gradient descent: ``x += -lr * g``.

    The same rule serves full-batch, mini-batch and single-example training: only the gradient you pass
    changes.

    Args:
      learning_rate: ``lr`` > 0, a number or a schedule ``step -> lr``.

    Returns:
      An Optimizer; its state is ``SgdState(count)``. Updates have the shapes of the gradients.

    Example:
      >>> opt = sgd(0.1); s = opt.init(jnp.ones(3)); u, s = opt.update(jnp.ones(3), s)

    Reference: Robbins & Monro, "A stochastic approximation method", 1951; optax ``sgd`` (twin, exact).
    """
    checks.positive("sgd", learning_rate=learning_rate)

    def init(params):
        return SgdState(count=jnp.zeros([], jnp.int32))

    def update(grads, state, params=None):
        expect_state("sgd", state, SgdState)
        lr = value_at(learning_rate, state.count)
        u, _ = lift("sgd", lambda g, *, lr: -lr * g, grads, (), {"lr": lr}, params=params)
        return u, SgdState(count=step_count(state.count))

    return Optimizer(init, update)


class MomentumState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    v: Any  # velocity, same tree as params: the last step taken


def momentum(learning_rate: ScalarOrSchedule, mu: ScalarOrSchedule = 0.9) -> Optimizer:
    """Classical (heavy-ball) momentum: ``v = mu * v - lr * g;  x += v``.

    Departure from optax: optax's ``sgd(lr, momentum=mu)`` keeps ``t = g + mu * t`` and steps ``-lr * t``.
    With a constant ``lr`` the two are the same (``v = -lr * t``); under a learning-rate *schedule* they differ:
    here ``lr_t`` scales only the newest gradient, there it rescales the whole trace. The exact optax twin of
    this rule is ``optax.chain(optax.scale_by_schedule(lambda t: -lr(t)), optax.trace(mu))``.

    Args:
      learning_rate: ``lr`` > 0, number or schedule.
      mu: momentum in [0, 1), number or schedule (e.g. ``fnn.optimizers.schedules.momentum_annealing``).

    Returns:
      An Optimizer with state ``MomentumState(count, v)``.

    Example:
      >>> opt = momentum(0.1, mu=0.9)

    Reference: Polyak, "Some methods of speeding up the convergence of iteration methods", 1964;
    Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013, eq. (1)-(2).
    """
    checks.positive("momentum", learning_rate=learning_rate)
    checks.unit_interval("momentum", mu=mu)

    def init(params):
        return MomentumState(count=jnp.zeros([], jnp.int32), v=zeros_like(params))

    def leaf(g, v, *, lr, mu):
        v = mu * v - lr * g
        return v, v

    def update(grads, state, params=None):
        expect_state("momentum", state, MomentumState)
        lr, m = value_at(learning_rate, state.count), value_at(mu, state.count)
        u, (v,) = lift("momentum", leaf, grads, (state.v,), {"lr": lr, "mu": m})
        return u, MomentumState(count=step_count(state.count), v=v)

    return Optimizer(init, update)


def nesterov(learning_rate: ScalarOrSchedule, mu: ScalarOrSchedule = 0.9) -> Optimizer:
    """Nesterov momentum, practical rewrite: ``v_prev = v;  v = mu v - lr g;  x += -mu v_prev + (1 + mu) v``.

    The gradient is taken at the current ``x``; the rewrite tracks the look-ahead point, so no second gradient
    evaluation is needed. Substituting ``v = mu * v_prev - lr * g`` the step is also ``mu * v - lr * g``, which
    is what the code computes: it needs no copy of ``v_prev``, which makes it twice as fast under ``jit`` (the
    velocity buffer is updated in place). Relation to optax's ``sgd(lr, momentum=mu, nesterov=True)``
    (``t = g + mu t``, step ``-lr (g + mu t)``): substituting ``v = -lr t`` gives the same step
    ``-(1 + mu) lr g - mu^2 lr t_prev``, so the two agree exactly for a constant ``lr``; under a schedule the
    exact twin is ``optax.chain(optax.scale_by_schedule(lambda t: -lr(t)), optax.trace(mu, nesterov=True))``.

    Args:
      learning_rate: ``lr`` > 0, number or schedule.
      mu: momentum in [0, 1), number or schedule.

    Returns:
      An Optimizer with state ``MomentumState(count, v)``.

    Example:
      >>> opt = nesterov(0.1, mu=0.9)

    Reference: Nesterov, "A method for solving the convex programming problem with convergence rate
    O(1/k^2)", 1983; Bengio et al., "Advances in optimizing recurrent networks", 2013, eq. (7) (the rewrite).
    """
    checks.positive("nesterov", learning_rate=learning_rate)
    checks.unit_interval("nesterov", mu=mu)

    def init(params):
        return MomentumState(count=jnp.zeros([], jnp.int32), v=zeros_like(params))

    def leaf(g, v, *, lr, mu):
        v = mu * v - lr * g  # v = mu * v_prev - lr * g
        return mu * v - lr * g, v  # = -mu * v_prev + (1 + mu) * v, without keeping v_prev

    def update(grads, state, params=None):
        expect_state("nesterov", state, MomentumState)
        lr, m = value_at(learning_rate, state.count), value_at(mu, state.count)
        u, (v,) = lift("nesterov", leaf, grads, (state.v,), {"lr": lr, "mu": m})
        return u, MomentumState(count=step_count(state.count), v=v)

    return Optimizer(init, update)


class DeltaBarDeltaState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    gain: Any  # per-weight local gain, starts at 1
    bar_delta: Any  # exponential average of past gradients ("delta bar")


def delta_bar_delta(learning_rate: ScalarOrSchedule, kappa: float = 0.05, phi: float = 0.95,
                    theta: float = 0.0, min_gain: float = 0.1, max_gain: float = 10.0) -> Optimizer:
    """Delta-bar-delta: per-weight gains multiply a global rate, growing additively while the sign holds.

    Per weight, with ``bar_delta`` the average of past gradients (just the previous gradient when ``theta = 0``)::

        gain = clip(where(g * bar_delta > 0, gain + kappa,
                          where(g * bar_delta < 0, gain * phi, gain)), min_gain, max_gain)
        bar_delta = (1 - theta) * g + theta * bar_delta
        x += -lr * gain * g

    Departures: Jacobs decreases with ``gain * (1 - phi)``; here ``phi`` is the factor itself (Hinton's 0.95).
    The clip to ``[min_gain, max_gain]`` follows Hinton's lecture notes. No optax twin (tested against NumPy).

    Args:
      learning_rate: global ``lr`` > 0, number or schedule.
      kappa: additive gain increase (> 0).
      phi: multiplicative gain decrease in (0, 1).
      theta: averaging of the reference gradient, in [0, 1).
      min_gain, max_gain: bounds of each gain, ``0 < min_gain <= 1 <= max_gain``.

    Returns:
      An Optimizer with state ``DeltaBarDeltaState(count, gain, bar_delta)``.

    Example:
      >>> opt = delta_bar_delta(0.01)

    Reference: Jacobs, "Increased rates of convergence through learning rate adaptation", Neural Networks 1988,
    eq. (4)-(5); Hinton, Neural Networks for Machine Learning, lecture 6d, 2012.
    """
    checks.positive("delta_bar_delta", learning_rate=learning_rate, kappa=kappa, phi=phi, min_gain=min_gain)
    checks.unit_interval("delta_bar_delta", theta=theta)
    known = all(checks.concrete(v) is not None for v in (phi, min_gain, max_gain))  # traced: checked by the caller
    if known and not (phi < 1.0 and min_gain <= 1.0 <= max_gain):
        raise ValueError(f"delta_bar_delta: need phi < 1 and min_gain <= 1 <= max_gain, got phi={phi}, "
                         f"min_gain={min_gain}, max_gain={max_gain}; e.g. phi=0.95, min_gain=0.1, max_gain=10.")

    def init(params):
        return DeltaBarDeltaState(count=jnp.zeros([], jnp.int32), gain=jax.tree.map(jnp.ones_like, params),
                                  bar_delta=zeros_like(params))

    def leaf(g, gain, bar_delta, *, lr, kappa, phi, theta, min_gain, max_gain):
        agree = g * bar_delta
        gain = jnp.clip(jnp.where(agree > 0, gain + kappa, jnp.where(agree < 0, gain * phi, gain)),
                        min_gain, max_gain)
        bar_delta = (1 - theta) * g + theta * bar_delta
        return -lr * gain * g, gain, bar_delta

    def update(grads, state, params=None):
        expect_state("delta_bar_delta", state, DeltaBarDeltaState)
        lr = value_at(learning_rate, state.count)
        u, (gain, bar) = lift("delta_bar_delta", leaf, grads, (state.gain, state.bar_delta),
                              {"lr": lr, "kappa": kappa, "phi": phi, "theta": theta, "min_gain": min_gain,
                               "max_gain": max_gain})
        return u, DeltaBarDeltaState(count=step_count(state.count), gain=gain, bar_delta=bar)

    return Optimizer(init, update)
