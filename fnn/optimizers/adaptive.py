"""Adaptive first-order rules: per-weight step sizes from running statistics of the gradients.

Contract, state and pytree handling as in ``fnn/optimizers/base.py``; the package front re-exports every rule
here. Each rule's per-leaf function is written in the symbols of its docstring and takes its hyper-parameters by
name; ``lift`` carries it over the pytree. Every running average is one :func:`ema` step, and Adam's moment
block (both averages and their bias corrections) is written once, in :func:`adam_moments`, for adam, adamw and
nadam: ``adam`` is ``scale_by_adam`` chained with an SGD step, ``adamw`` the same with the weight-decay transform
in between (decoupled decay by composition, as in optax). Moments are kept in the parameters' dtype; bias
corrections ``1 - b^t`` are computed in float32 (float64 under x64) before the cast, so that bfloat16 moments do
not round ``b^t`` to 1.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn import checks
from fnn.optimizers.base import (
    Optimizer,
    ScalarOrSchedule,
    chain,
    expect_state,
    lift,
    static_flags,
    step_count,
    value_at,
    zeros_like,
)
from fnn.optimizers.first_order import sgd
from fnn.optimizers.transforms import weight_decay as add_decayed_weights

__all__ = ["ema", "adam_moments", "scale_by_adam", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "adamax",
           "nadam", "AdagradState", "RmspropState", "AdadeltaState", "AdamState"]


def ema(average, x, decay):
    """One step of an exponential moving average, per leaf: ``decay * average + (1 - decay) * x``.

    Example:
      >>> round(float(ema(jnp.asarray(0.0), jnp.asarray(2.0), 0.9)), 6)
      0.2
    """
    return decay * average + (1 - decay) * x


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
    checks.positive("adagrad", learning_rate=learning_rate, eps=eps)
    checks.non_negative("adagrad", fix="use 0.0 (lecture) or 0.1 (optax).",
                        initial_accumulator_value=initial_accumulator_value)

    def init(params):
        return AdagradState(count=jnp.zeros([], jnp.int32),
                            cache=jax.tree.map(lambda x: jnp.full_like(x, initial_accumulator_value), params))

    def leaf(g, cache, *, lr, eps):
        cache = cache + g * g
        denom = jnp.sqrt(cache + eps) if eps_in_sqrt else jnp.sqrt(cache) + eps
        return -lr * (g / denom), cache

    def update(grads, state, params=None):
        expect_state("adagrad", state, AdagradState)
        lr = value_at(learning_rate, state.count)
        u, (cache,) = lift("adagrad", leaf, grads, (state.cache,), {"lr": lr, "eps": eps})
        return u, AdagradState(count=step_count(state.count), cache=cache)

    return Optimizer(init, update)


class RmspropState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    cache: Any  # leaky average of squared gradients


def rmsprop(learning_rate: ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-8,
            eps_in_sqrt: bool = False) -> Optimizer:
    """RMSProp: ``cache = decay * cache + (1 - decay) * g^2;  x += -lr * g / (sqrt(cache) + eps)``.

    Convention difference with ``optax.rmsprop``: optax's default puts eps inside the root
    (``sqrt(cache + eps)``); ``optax.rmsprop(lr, decay, eps, eps_in_sqrt=False)`` is this rule's exact twin, and
    ``rmsprop(lr, decay, eps, eps_in_sqrt=True)``, i.e. ``x += -lr * g / sqrt(cache + eps)``, is optax's default's.

    Args:
      learning_rate: ``lr`` > 0, number or schedule.
      decay: leak rate of the cache, in [0, 1).
      eps: > 0.
      eps_in_sqrt: put ``eps`` inside the square root (optax's default placement); a Python bool.

    Returns:
      An Optimizer with state ``RmspropState(count, cache)``.

    Example:
      >>> opt = rmsprop(1e-3, decay=0.9)

    Reference: Tieleman & Hinton, Neural Networks for Machine Learning, lecture 6e, 2012; CS231n notes, "RMSprop".
    """
    checks.positive("rmsprop", learning_rate=learning_rate, eps=eps)
    checks.unit_interval("rmsprop", decay=decay)
    static_flags("rmsprop", eps_in_sqrt=eps_in_sqrt)

    def init(params):
        return RmspropState(count=jnp.zeros([], jnp.int32), cache=zeros_like(params))

    def leaf(g, cache, *, lr, decay, eps):
        cache = ema(cache, g * g, decay)
        denom = jnp.sqrt(cache + eps) if eps_in_sqrt else jnp.sqrt(cache) + eps
        return -lr * (g / denom), cache

    def update(grads, state, params=None):
        expect_state("rmsprop", state, RmspropState)
        lr = value_at(learning_rate, state.count)
        u, (cache,) = lift("rmsprop", leaf, grads, (state.cache,), {"lr": lr, "decay": decay, "eps": eps})
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
    checks.positive("adadelta", learning_rate=learning_rate, eps=eps)
    checks.unit_interval("adadelta", rho=rho)

    def init(params):
        return AdadeltaState(count=jnp.zeros([], jnp.int32), Eg2=zeros_like(params), Edx2=zeros_like(params))

    def leaf(g, Eg2, Edx2, *, lr, rho, eps):
        Eg2 = ema(Eg2, g * g, rho)
        dx = jnp.sqrt(Edx2 + eps) / jnp.sqrt(Eg2 + eps) * g
        Edx2 = ema(Edx2, dx * dx, rho)
        return -lr * dx, Eg2, Edx2

    def update(grads, state, params=None):
        expect_state("adadelta", state, AdadeltaState)
        lr = value_at(learning_rate, state.count)
        u, (Eg2, Edx2) = lift("adadelta", leaf, grads, (state.Eg2, state.Edx2), {"lr": lr, "rho": rho, "eps": eps})
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
    checks.positive(name, learning_rate=learning_rate, eps=eps)
    checks.unit_interval(name, b1=b1, b2=b2)


def _adam_init(params):
    return AdamState(count=jnp.zeros([], jnp.int32), m=zeros_like(params), v=zeros_like(params))


def adam_moments(g, m, v, *, b1, b2, bc1, bc2):
    """Adam's moment block, per leaf: ``m = ema(m, g, b1);  v = ema(v, g^2, b2);  m_hat = m / bc1;  v_hat = v / bc2``.

    ``bc1 = 1 - b1^t`` and ``bc2 = 1 - b2^t`` are the bias corrections at step ``t = count + 1``. Used by
    :func:`scale_by_adam` (hence adam and adamw) and :func:`nadam`.

    Returns:
      ``(m, v, m_hat, v_hat)``: the new moments (to store) and their bias-corrected values (to step with).

    Example:
      >>> m, v, m_hat, v_hat = adam_moments(jnp.asarray(2.0), 0.0, 0.0, b1=0.9, b2=0.999, bc1=0.1, bc2=0.001)
      >>> round(float(m_hat), 6), round(float(v_hat), 6)
      (2.0, 4.0)

    Reference: Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015, Algorithm 1.
    """
    m, v = ema(m, g, b1), ema(v, g * g, b2)
    return m, v, m / bc1, v / bc2


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, bias_correction: bool = True) -> Optimizer:
    """Adam's direction without the learning rate: ``u = m_hat / (sqrt(v_hat) + eps)`` (see :func:`adam_moments`).

    The building block of :func:`adam` and :func:`adamw`; chain it with a step (``sgd(lr)``) to descend.
    Twin: ``optax.scale_by_adam(b1, b2, eps)``. ``bias_correction=False`` is the lecture's "incomplete" Adam,
    ``u = m / (sqrt(v) + eps)`` (``bc1 = bc2 = 1``): its first steps are smaller by ``(1 - b1) / sqrt(1 - b2)``
    (about 3.2x for the defaults at t = 1); no optax twin.

    Args:
      b1, b2: moment decay rates in [0, 1).
      eps: > 0, added outside the root.
      bias_correction: divide by ``1 - b1^t`` and ``1 - b2^t`` (Adam) or not; a Python bool.

    Returns:
      An Optimizer with state ``AdamState(count, m, v)``; updates have the shapes of the gradients.

    Example:
      >>> opt = scale_by_adam()
      >>> u, state = opt.update(jnp.asarray([3.0, -0.5]), opt.init(jnp.zeros(2)))
      >>> [round(x, 3) for x in u.tolist()]  # the first step is sign(g), up to eps and rounding
      [1.0, -1.0]

    Reference: Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015, Algorithm 1.
    """
    checks.positive("scale_by_adam", eps=eps)
    checks.unit_interval("scale_by_adam", b1=b1, b2=b2)
    static_flags("scale_by_adam", bias_correction=bias_correction)

    def leaf(g, m, v, *, b1, b2, eps, bc1, bc2):
        m, v, m_hat, v_hat = adam_moments(g, m, v, b1=b1, b2=b2, bc1=bc1, bc2=bc2)
        return m_hat / (jnp.sqrt(v_hat) + eps), m, v

    def update(grads, state, params=None):
        expect_state("scale_by_adam", state, AdamState)
        t = step_count(state.count)
        bc1, bc2 = (_bias(b1, t), _bias(b2, t)) if bias_correction else (1.0, 1.0)
        hypers = {"b1": b1, "b2": b2, "eps": eps, "bc1": bc1, "bc2": bc2}
        u, (m, v) = lift("scale_by_adam", leaf, grads, (state.m, state.v), hypers)
        return u, AdamState(count=t, m=m, v=v)

    return Optimizer(_adam_init, update)


def adam(learning_rate: ScalarOrSchedule = 1e-3, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8, bias_correction: bool = True) -> Optimizer:
    """Adam: bias-corrected first and second moments, ``chain(scale_by_adam(b1, b2, eps), sgd(lr))``.

    With ``t = count + 1``: ``m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  m_hat = m / (1 - b1^t);
    v_hat = v / (1 - b2^t);  x += -lr * m_hat / (sqrt(v_hat) + eps)``. Twin: ``optax.adam`` (same convention,
    same composition: optax's is ``chain(scale_by_adam, scale_by_learning_rate)``). ``bias_correction=False``:
    the lecture's "incomplete" Adam ``x += -lr * m / (sqrt(v) + eps)``, whose first steps are too small (at t = 1
    by ``(1 - b1) / sqrt(1 - b2)``, about 3.2x for the defaults).

    Args:
      learning_rate: ``lr`` > 0, number or schedule.
      b1, b2: moment decay rates in [0, 1).
      eps: > 0, added outside the root.
      bias_correction: divide by ``1 - b1^t`` and ``1 - b2^t`` (True, Adam) or not; a Python bool.

    Returns:
      An Optimizer with state ``(AdamState(count, m, v), SgdState(count))``.

    Example:
      >>> opt = adam(1e-3)
      >>> adam_state, _ = opt.init(jnp.zeros(3))
      >>> adam_state.m.shape
      (3,)

    Reference: Kingma & Ba, "Adam: a method for stochastic optimization", ICLR 2015, Algorithm 1.
    """
    _adam_checks("adam", learning_rate, b1, b2, eps)
    static_flags("adam", bias_correction=bias_correction)
    return chain(scale_by_adam(b1, b2, eps, bias_correction), sgd(learning_rate))


def adamw(learning_rate: ScalarOrSchedule = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-4, mask: Callable | Any | None = None) -> Optimizer:
    """AdamW: Adam with decoupled weight decay, ``x += -lr * (m_hat / (sqrt(v_hat) + eps) + wd * x)``.

    Built by composition, as in optax: ``chain(scale_by_adam(b1, b2, eps), weight_decay(wd, mask), sgd(lr))``,
    so ``m_hat, v_hat`` are Adam's (:func:`adam_moments`) and the decay term ``wd * x`` is added after Adam's
    normalisation, where ``mask`` is True. As in optax (and unlike the paper's separate schedule multiplier
    ``eta_t``) the decay is scaled by the learning rate.

    The mask is fnn's one weight-decay mask (:func:`fnn.losses.resolve_mask`): ``None`` decays the weights only
    (:func:`fnn.losses.weight_mask`: not biases, not BatchNorm/LayerNorm ``gamma``/``beta``), exactly what
    ``l2_penalty`` penalises; ``True`` decays every leaf. Departure from ``optax.adamw``, whose ``mask=None``
    decays every leaf: ``optax.adamw(lr, b1, b2, eps, wd, mask=fnn.losses.weight_mask)`` is the exact twin of the
    default, and ``optax.adamw(lr, b1, b2, eps, wd)`` the twin of ``mask=True``.

    Args:
      learning_rate, b1, b2, eps: as in Adam.
      weight_decay: ``wd`` >= 0.
      mask: None (weights only), True (every leaf), a pytree of bools like params, or a callable
        ``params -> pytree of bools``.

    Returns:
      An Optimizer with state ``(AdamState(count, m, v), EmptyState(), SgdState(count))``; ``update`` needs
      ``params``.

    Example:
      >>> opt = adamw(1e-3, weight_decay=1e-2)

    Reference: Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019, Algorithm 2.
    """
    _adam_checks("adamw", learning_rate, b1, b2, eps)
    checks.non_negative("adamw", weight_decay=weight_decay)
    inner = chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay, mask), sgd(learning_rate))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("adamw: update needs params for the weight decay; call update(grads, state, params).")
        return inner.update(grads, state, params)

    return Optimizer(inner.init, update)


def adamax(learning_rate: ScalarOrSchedule = 2e-3, b1: float = 0.9, b2: float = 0.999,
           eps: float = 1e-8) -> Optimizer:
    """Adamax: Adam with the infinity norm, ``u = max(b2 u, |g| + eps);  x += -lr * (m / (1 - b1^t)) / u``.

    ``m = b1 m + (1 - b1) g`` as in Adam (one :func:`ema` step); ``u`` (stored in the state's ``v``) needs no
    bias correction. Departure from the paper (which has no eps): ``eps`` sits inside the max, as in
    ``optax.adamax``, the twin, so ``u >= eps`` and the step is finite even for a zero gradient.

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

    def leaf(g, m, u, *, lr, b1, b2, eps, bc1):
        m = ema(m, g, b1)
        u = jnp.maximum(b2 * u, jnp.abs(g) + eps)
        return -lr * ((m / bc1) / u), m, u

    def update(grads, state, params=None):
        expect_state("adamax", state, AdamState)
        t = step_count(state.count)
        hypers = {"lr": value_at(learning_rate, state.count), "b1": b1, "b2": b2, "eps": eps, "bc1": _bias(b1, t)}
        u, (m, v) = lift("adamax", leaf, grads, (state.m, state.v), hypers)
        return u, AdamState(count=t, m=m, v=v)

    return Optimizer(_adam_init, update)


def nadam(learning_rate: ScalarOrSchedule = 1e-3, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8) -> Optimizer:
    """Nadam: Adam with a Nesterov look-ahead on the first moment.

    With ``t = count + 1``: ``m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2`` (Adam's moment block,
    :func:`adam_moments`); ``m_hat = b1 * m / (1 - b1^(t+1)) + (1 - b1) * g / (1 - b1^t);  v_hat = v / (1 - b2^t);
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

    def leaf(g, m, v, *, lr, b1, b2, eps, bc1, bc1_next, bc2):
        m, v, _, v_hat = adam_moments(g, m, v, b1=b1, b2=b2, bc1=bc1, bc2=bc2)
        m_hat = b1 * (m / bc1_next) + (1 - b1) * (g / bc1)  # the look-ahead replaces Adam's m / bc1
        return -lr * (m_hat / (jnp.sqrt(v_hat) + eps)), m, v

    def update(grads, state, params=None):
        expect_state("nadam", state, AdamState)
        t = step_count(state.count)
        hypers = {"lr": value_at(learning_rate, state.count), "b1": b1, "b2": b2, "eps": eps,
                  "bc1": _bias(b1, t), "bc1_next": _bias(b1, t + 1), "bc2": _bias(b2, t)}
        u, (m, v) = lift("nadam", leaf, grads, (state.m, state.v), hypers)
        return u, AdamState(count=t, m=m, v=v)

    return Optimizer(_adam_init, update)
