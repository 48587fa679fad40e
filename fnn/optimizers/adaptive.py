"""Adaptive first-order rules: per-weight step sizes from running statistics of the gradients.

Contract, state and pytree handling as in ``fnn/optimizers/base.py`` (which re-exports every rule here). Each rule's
per-leaf function is written in the symbols of its docstring; ``lift`` carries it over the pytree. Moments are
kept in the parameters' dtype; bias corrections ``1 - b^t`` are computed in float32 (float64 under x64) before
the cast, so that bfloat16 moments do not round ``b^t`` to 1.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn.optimizers.base import (Optimizer, ScalarOrSchedule, check_positive, check_unit, lift, step_count,
                                 value_at, zeros_like)



def skip_biases(params):
    """Default weight-decay mask: ``True`` (decay) for leaves with ``ndim >= 2`` (weights), ``False`` for biases."""
    return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


class AdagradState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    cache: Any  # running sum of squared gradients, starts at initial_accumulator_value


def adagrad(learning_rate: ScalarOrSchedule, eps: float = 1e-8, initial_accumulator_value: float = 0.0,
            eps_in_sqrt: bool = False) -> Optimizer:
    """Adagrad: ``cache += g^2;  x += -lr * g / (sqrt(cache) + eps)``.

    Convention difference with ``optax.adagrad``: optax starts the cache at 0.1 and puts eps inside the root,
    ``-lr * g / sqrt(cache + eps)`` with eps = 1e-7. ``adagrad(lr, eps=1e-7, initial_accumulator_value=0.1,
    eps_in_sqrt=True)`` is its exact twin. With the lecture defaults the first step is ``-lr * g / (|g| + eps)``,
    about ``-lr * sign(g)``; optax's first step is ``-lr * g / sqrt(g^2 + 0.1 + 1e-7)``, smaller for small g.

    Args:
      learning_rate: ``lr`` > 0, number or schedule.
      eps: > 0, keeps the division finite.
      initial_accumulator_value: ``cache`` at step 0 (>= 0).
      eps_in_sqrt: put ``eps`` inside the square root (optax's placement).

    Returns:
      An Optimizer with state ``AdagradState(count, cache)``.

    Example:
      >>> opt = adagrad(0.1)

    Reference: Duchi, Hazan & Singer, "Adaptive subgradient methods for online learning and stochastic
    optimization", JMLR 2011, Fig. 1 (diagonal form); CS231n notes, "Adagrad".
    """
    check_positive("adagrad", learning_rate=learning_rate, eps=eps)
    if initial_accumulator_value < 0:
        raise ValueError(f"adagrad: initial_accumulator_value must be >= 0, got {initial_accumulator_value}; "
                         f"use 0.0 (lecture) or 0.1 (optax).")

    def init(params):
        return AdagradState(count=jnp.zeros([], jnp.int32),
                            cache=jax.tree.map(lambda x: jnp.full_like(x, initial_accumulator_value), params))

    def leaf(g, cache, lr, eps):
        cache = cache + g * g
        denom = jnp.sqrt(cache + eps) if eps_in_sqrt else jnp.sqrt(cache) + eps
        return -lr * (g / denom), cache

    def update(grads, state, params=None):
        u, (cache,) = lift("adagrad", leaf, grads, (state.cache,), (value_at(learning_rate, state.count), eps))
        return u, AdagradState(count=step_count(state.count), cache=cache)

    return Optimizer(init, update)


class RmspropState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    cache: Any  # leaky average of squared gradients


def rmsprop(learning_rate: ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8) -> Optimizer:
    """RMSProp: ``cache = decay * cache + (1 - decay) * g^2;  x += -lr * g / (sqrt(cache) + eps)``.

    Convention difference with ``optax.rmsprop``: optax's default puts eps inside the root
    (``sqrt(cache + eps)``); ``optax.rmsprop(lr, decay, eps, eps_in_sqrt=False)`` is this rule's exact twin.

    Args:
      learning_rate: ``lr`` > 0, number or schedule.
      decay: leak rate of the cache, in [0, 1).
      eps: > 0.

    Returns:
      An Optimizer with state ``RmspropState(count, cache)``.

    Example:
      >>> opt = rmsprop(1e-3, decay=0.9)

    Reference: Tieleman & Hinton, Neural Networks for Machine Learning, lecture 6e, 2012; CS231n notes, "RMSprop".
    """
    check_positive("rmsprop", learning_rate=learning_rate, eps=eps)
    check_unit("rmsprop", decay=decay)

    def init(params):
        return RmspropState(count=jnp.zeros([], jnp.int32), cache=zeros_like(params))

    def leaf(g, cache, lr, decay, eps):
        cache = decay * cache + (1 - decay) * g * g
        return -lr * (g / (jnp.sqrt(cache) + eps)), cache

    def update(grads, state, params=None):
        lr = value_at(learning_rate, state.count)
        u, (cache,) = lift("rmsprop", leaf, grads, (state.cache,), (lr, decay, eps))
        return u, RmspropState(count=step_count(state.count), cache=cache)

    return Optimizer(init, update)


class AdadeltaState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    Eg2: Any  # running average of squared gradients E[g^2]
    Edx2: Any  # running average of squared (unscaled) steps E[dx^2]


def adadelta(learning_rate: ScalarOrSchedule = 1.0, rho: float = 0.95, eps: float = 1e-6) -> Optimizer:
    """Adadelta: step size from the ratio of two running RMS values, no global learning rate needed.

    ``Eg2 = rho * Eg2 + (1 - rho) * g^2;  dx = sqrt(Edx2 + eps) / sqrt(Eg2 + eps) * g;
    Edx2 = rho * Edx2 + (1 - rho) * dx^2;  x += -lr * dx``.

    Zeiler's rule is ``lr = 1``. A ``learning_rate`` other than 1 scales the step but not ``Edx2`` (which
    accumulates the unscaled ``dx``), exactly as ``optax.adadelta(lr, rho, eps)``, the twin. Defaults are the
    paper's (rho = 0.95, eps = 1e-6); optax's default rho is 0.9.

    Args:
      learning_rate: ``lr`` > 0 (1 in the paper), number or schedule.
      rho: decay of both running averages, in [0, 1).
      eps: > 0, also sets the size of the very first steps (``sqrt(eps)/sqrt(Eg2 + eps)``).

    Returns:
      An Optimizer with state ``AdadeltaState(count, Eg2, Edx2)``.

    Example:
      >>> opt = adadelta()

    Reference: Zeiler, "ADADELTA: an adaptive learning rate method", arXiv:1212.5701, 2012, Algorithm 1.
    """
    check_positive("adadelta", learning_rate=learning_rate, eps=eps)
    check_unit("adadelta", rho=rho)

    def init(params):
        return AdadeltaState(count=jnp.zeros([], jnp.int32), Eg2=zeros_like(params), Edx2=zeros_like(params))

    def leaf(g, Eg2, Edx2, lr, rho, eps):
        Eg2 = rho * Eg2 + (1 - rho) * g * g
        dx = jnp.sqrt(Edx2 + eps) / jnp.sqrt(Eg2 + eps) * g
        Edx2 = rho * Edx2 + (1 - rho) * dx * dx
        return -lr * dx, Eg2, Edx2

    def update(grads, state, params=None):
        lr = value_at(learning_rate, state.count)
        u, (Eg2, Edx2) = lift("adadelta", leaf, grads, (state.Eg2, state.Edx2), (lr, rho, eps))
        return u, AdadeltaState(count=step_count(state.count), Eg2=Eg2, Edx2=Edx2)

    return Optimizer(init, update)


class AdamState(NamedTuple):
    count: jax.Array  # int32 scalar, number of steps taken (t - 1 during step t)
    m: Any  # first moment: running mean of g
    v: Any  # second moment: running mean of g^2 (adamax: running max of |g|)


def _bias(b, t):
    """``1 - b^t`` in float32 (float64 under x64): the bias correction of a zero-initialised average."""
    return 1 - jnp.asarray(b, jnp.result_type(float)) ** t


def _adam_checks(name, learning_rate, b1, b2, eps):
    check_positive(name, learning_rate=learning_rate, eps=eps)
    check_unit(name, b1=b1, b2=b2)


def adam(learning_rate: ScalarOrSchedule = 1e-3, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> Optimizer:
    """Adam: bias-corrected first and second moments.

    With ``t = count + 1``: ``m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  m_hat = m / (1 - b1^t);
    v_hat = v / (1 - b2^t);  x += -lr * m_hat / (sqrt(v_hat) + eps)``. Twin: ``optax.adam`` (same convention).

    Args:
      learning_rate: ``lr`` > 0, number or schedule.
      b1, b2: moment decay rates in [0, 1).
      eps: > 0, added outside the root.

    Returns:
      An Optimizer with state ``AdamState(count, m, v)``.

    Example:
      >>> opt = adam(1e-3)

    Reference: Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015, Algorithm 1.
    """
    _adam_checks("adam", learning_rate, b1, b2, eps)

    def init(params):
        return AdamState(count=jnp.zeros([], jnp.int32), m=zeros_like(params), v=zeros_like(params))

    def leaf(g, m, v, lr, b1, b2, eps, bc1, bc2):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / bc1, v / bc2
        return -lr * (m_hat / (jnp.sqrt(v_hat) + eps)), m, v

    def update(grads, state, params=None):
        t = step_count(state.count)
        scalars = (value_at(learning_rate, state.count), b1, b2, eps, _bias(b1, t), _bias(b2, t))
        u, (m, v) = lift("adam", leaf, grads, (state.m, state.v), scalars)
        return u, AdamState(count=t, m=m, v=v)

    return Optimizer(init, update)


def adamw(learning_rate: ScalarOrSchedule = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-4, mask: Callable | Any | None = skip_biases) -> Optimizer:
    """AdamW: Adam with decoupled weight decay, ``x += -lr * (m_hat / (sqrt(v_hat) + eps) + wd * x)``.

    ``m_hat, v_hat`` as in :func:`fnn.optimizers.adaptive.adam`; the decay term applies only where ``mask`` is True.
    Departure from ``optax.adamw``: the default mask here skips biases (leaves with ``ndim < 2``,
    ``fnn.optimizers.skip_biases``); optax decays everything by default. ``optax.adamw(lr, b1, b2, eps, wd,
    mask=skip_biases)`` is the exact twin, and ``mask=None`` on both sides decays every leaf. As in optax (and
    unlike the paper's separate schedule multiplier) the decay is scaled by the learning rate.

    Args:
      learning_rate, b1, b2, eps: as in Adam.
      weight_decay: ``wd`` >= 0.
      mask: None (decay all), a pytree of bools like params, or a callable ``params -> pytree of bools``.

    Returns:
      An Optimizer with state ``AdamState(count, m, v)``; ``update`` needs ``params``.

    Example:
      >>> opt = adamw(1e-3, weight_decay=1e-2)

    Reference: Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019, Algorithm 2.
    """
    _adam_checks("adamw", learning_rate, b1, b2, eps)
    if weight_decay < 0:
        raise ValueError(f"adamw: weight_decay must be >= 0, got {weight_decay}; e.g. 1e-4.")

    def init(params):
        return AdamState(count=jnp.zeros([], jnp.int32), m=zeros_like(params), v=zeros_like(params))

    def leaf(g, m, v, x, decay, lr, b1, b2, eps, wd, bc1, bc2):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / bc1, v / bc2
        step = m_hat / (jnp.sqrt(v_hat) + eps)
        return -lr * (step + wd * x if decay else step), m, v

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("adamw: update needs params for the weight decay; call update(grads, state, params).")
        t = step_count(state.count)
        where = (jax.tree.map(lambda _: True, params) if mask is None
                 else mask(params) if callable(mask) else mask)
        scalars = (value_at(learning_rate, state.count), b1, b2, eps, weight_decay, _bias(b1, t), _bias(b2, t))
        u, (m, v, _, _) = lift("adamw", lambda g, m, v, x, d, *s: leaf(g, m, v, x, d, *s) + (x, d), grads,
                               (state.m, state.v, params, where), scalars, what="params/state")
        return u, AdamState(count=t, m=m, v=v)

    return Optimizer(init, update)


def adamax(learning_rate: ScalarOrSchedule = 2e-3, b1: float = 0.9, b2: float = 0.999,
           eps: float = 1e-8) -> Optimizer:
    """Adamax: Adam with the infinity norm, ``u = max(b2 u, |g| + eps);  x += -lr * (m / (1 - b1^t)) / u``.

    ``m = b1 m + (1 - b1) g`` as in Adam; ``u`` (stored in the state's ``v``) needs no bias correction.
    Departure from the paper (which has no eps): ``eps`` sits inside the max, as in ``optax.adamax``, the twin,
    so ``u >= eps`` and the step is finite even for a zero gradient.

    Args:
      learning_rate: ``lr`` > 0, number or schedule (paper default 0.002).
      b1, b2: decay rates in [0, 1).
      eps: > 0.

    Returns:
      An Optimizer with state ``AdamState(count, m, v)``.

    Example:
      >>> opt = adamax(2e-3)

    Reference: Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015, Algorithm 2 (section 7.1).
    """
    _adam_checks("adamax", learning_rate, b1, b2, eps)

    def init(params):
        return AdamState(count=jnp.zeros([], jnp.int32), m=zeros_like(params), v=zeros_like(params))

    def leaf(g, m, u, lr, b1, b2, eps, bc1):
        m = b1 * m + (1 - b1) * g
        u = jnp.maximum(b2 * u, jnp.abs(g) + eps)
        return -lr * ((m / bc1) / u), m, u

    def update(grads, state, params=None):
        t = step_count(state.count)
        scalars = (value_at(learning_rate, state.count), b1, b2, eps, _bias(b1, t))
        u, (m, v) = lift("adamax", leaf, grads, (state.m, state.v), scalars)
        return u, AdamState(count=t, m=m, v=v)

    return Optimizer(init, update)


def nadam(learning_rate: ScalarOrSchedule = 1e-3, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8) -> Optimizer:
    """Nadam: Adam with a Nesterov look-ahead on the first moment.

    With ``t = count + 1``: ``m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    m_hat = b1 * m / (1 - b1^(t+1)) + (1 - b1) * g / (1 - b1^t);  v_hat = v / (1 - b2^t);
    x += -lr * m_hat / (sqrt(v_hat) + eps)``. Twin: ``optax.nadam``. Departure from Dozat: constant ``b1``
    (no momentum schedule ``mu_t``) and no extra ``b2`` factor on ``v_hat``, as in optax and Keras.

    Args:
      learning_rate, b1, b2, eps: as in Adam.

    Returns:
      An Optimizer with state ``AdamState(count, m, v)``.

    Example:
      >>> opt = nadam(1e-3)

    Reference: Dozat, "Incorporating Nesterov momentum into Adam", ICLR workshop 2016, Algorithm 2.
    """
    _adam_checks("nadam", learning_rate, b1, b2, eps)

    def init(params):
        return AdamState(count=jnp.zeros([], jnp.int32), m=zeros_like(params), v=zeros_like(params))

    def leaf(g, m, v, lr, b1, b2, eps, bc1, bc1_next, bc2):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = b1 * (m / bc1_next) + (1 - b1) * (g / bc1)
        v_hat = v / bc2
        return -lr * (m_hat / (jnp.sqrt(v_hat) + eps)), m, v

    def update(grads, state, params=None):
        t = step_count(state.count)
        scalars = (value_at(learning_rate, state.count), b1, b2, eps, _bias(b1, t), _bias(b1, t + 1),
                   _bias(b2, t))
        u, (m, v) = lift("nadam", leaf, grads, (state.m, state.v), scalars)
        return u, AdamState(count=t, m=m, v=v)

    return Optimizer(init, update)
