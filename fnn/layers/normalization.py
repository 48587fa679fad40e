"""Normalization layers: BatchNorm (with explicit running statistics), LayerNorm, and the one-pass population
statistics of Ioffe & Szegedy's Algorithm 2.

BatchNorm's state follows the explicit-state contract of :mod:`fnn.layers`: ``apply(params, x)`` returns ``y`` and
behaves exactly like stax (batch statistics); ``apply(params, x, state=s)`` returns ``(y, new_state)``. Modes:

=====================================  ====================  ==============================================
call                                   normalizes with       new state
=====================================  ====================  ==============================================
``apply(p, x)`` (train, no state)      batch statistics      (none returned)
``apply(p, x, state=s)``               batch statistics      EMA: m <- momentum m + (1 - momentum) mu_B
``apply(p, x, state=s, train=False)``  s.mean, s.var         unchanged
``apply(p, x, state=s, bn_update=      batch statistics      running average over the batches seen
"cumulative")`` (any ``train``)
=====================================  ====================  ==============================================

``bn_update`` and ``train`` travel through ``serial``/``parallel`` to every BatchNorm of a model, so
:func:`population_statistics` works on whole models.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp

from fnn import initializers as ini
from fnn.layers.base import Layer, as_layer

__all__ = ["standardize", "BatchNorm", "BatchNormParams", "BatchNormState", "population_statistics",
           "LayerNorm", "LayerNormParams"]

_UPDATES = ("ema", "cumulative")


def standardize(x, axis=-1, epsilon: float = 1e-5, mean=None, variance=None):
    """Shift and scale ``x`` to zero mean and unit variance over ``axis``: ``(x - mu) / sqrt(var + epsilon)``.

    ``mu`` and ``var`` (the biased variance, mean of ``(x - mu)^2``) are computed over ``axis`` unless given
    (they must then broadcast against ``x``). Same arguments as ``jax.nn.standardize``; the variance is the
    two-pass formula, which cannot go negative.
    """
    if mean is None:
        mean = jnp.mean(x, axis, keepdims=True)
    if variance is None:
        variance = jnp.mean(jnp.square(x - mean), axis, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(variance + epsilon)


class BatchNormParams(NamedTuple):
    beta: Any   # shift, shape of the non-normalized axes (``()`` when center=False)
    gamma: Any  # scale, same shape (``()`` when scale=False)


class BatchNormState(NamedTuple):
    mean: jax.Array   # running E[x] per feature, shape of beta/gamma
    var: jax.Array    # running (unbiased) Var[x] per feature
    count: jax.Array  # int32 scalar: number of batches folded in


def _axes(name: str, axis, ndim: int) -> tuple[int, ...]:
    out = []
    for a in axis:
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}: axis {tuple(axis)} is out of range for inputs of rank {ndim}; for "
                             f"(batch, features) inputs use axis=0, for NHWC images axis=(0, 1, 2)")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: axis {tuple(axis)} repeats an axis (rank {ndim})")
    return tuple(sorted(out))


def _axis_tuple(name: str, axis) -> tuple[int, ...]:
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    if not axis or not all(isinstance(a, int) for a in axis):
        raise ValueError(f"{name}: expected axis as an int or a non-empty tuple of ints, got {axis!r}")
    return axis


def BatchNorm(axis=(0, 1, 2), epsilon: float = 1e-5, center: bool = True, scale: bool = True,
              beta_init: Callable = ini.zeros, gamma_init: Callable = ini.ones, momentum: float = 0.99,
              debias: bool = True) -> Layer:
    """Batch normalization: ``y = gamma * (x - mu) / sqrt(var + epsilon) + beta``.

    Train mode: ``mu = mu_B``, ``var = sigma_B^2``, the mean and biased variance of the batch over ``axis``
    (Ioffe & Szegedy 2015, Algorithm 1). Eval mode (``train=False`` with ``state=``): ``mu = state.mean``,
    ``var = state.var`` (Algorithm 2, step 10). Running statistics, updated when ``state=`` is passed in train mode:

        EMA (default):   mean <- (1 - w) mean + w mu_B,   w = max(1 - momentum, 1 / (count + 1))
                         var  <- (1 - w) var  + w m / (m - 1) sigma_B^2
        cumulative:      the same with w = 1 / (count + 1);  count <- count + 1 in both

    where m is the number of values per feature in the batch. After ``count`` batches the cumulative mode holds
    E_B[mu_B] and m / (m - 1) E_B[sigma_B^2], Algorithm 2's population statistics. The EMA's weight starts as the
    cumulative one: the first 1 / (1 - momentum) batches (100 at 0.99) are averaged with equal weights, and the
    initial mean 0 and variance 1 are forgotten at the first batch, as Adam's bias correction forgets its zero
    moments. Without this (``debias=False``, the textbook EMA ``w = 1 - momentum``), a short run ends with
    running averages that are still mostly their initial values: after one epoch of 39 steps at momentum 0.99, 68%
    of the running mean is the initial 0, and eval-mode accuracy of a Fashion-MNIST CNN falls far below train
    mode's (docs/layers.md).

    Args:
      axis: the axes averaged over (stax's default ``(0, 1, 2)`` suits NHWC images; use ``0`` for
        (batch, features) inputs). beta/gamma have the shape of the remaining axes.
      epsilon: added to the variance, > 0.
      center, scale: learn beta / gamma (else the param is ``()``, as stax).
      beta_init, gamma_init: initializers (zeros, ones).
      momentum: EMA decay in [0, 1) (an fnn addition; stax keeps no running averages).
      debias: start the EMA as a cumulative average (default); ``False`` gives the textbook EMA from mean 0 and
        variance 1 (Keras's and PyTorch's rule, which needs many steps before eval mode is usable).

    Returns:
      ``Layer``: params ``BatchNormParams(beta, gamma)``; state (``fnn.layers.init_with_state``)
      ``BatchNormState(mean=0, var=1, count=0)``. Shapes: y has the shape of x.

    ``apply`` keywords: ``train`` (default True), ``state``, ``bn_update`` (``"ema"`` or ``"cumulative"``).
    Eval mode needs ``state=``: without it there are no population statistics and ``train=False`` raises.
    ``train`` must be a Python bool (static under ``jit``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from fnn.layers import Dense, Relu, BatchNorm, serial, init_with_state
      >>> model = serial(Dense(64), BatchNorm(axis=0), Relu, Dense(10))
      >>> _, params, state = init_with_state(model, jax.random.key(0), (-1, 784))
      >>> x = jnp.ones((32, 784))
      >>> y, state = model.apply(params, x, state=state)                # train: batch stats, EMA update
      >>> y, _ = model.apply(params, x, state=state, train=False)       # eval: running averages
      >>> y.shape, int(state[1].count)
      ((32, 10), 1)

    Reference: Ioffe & Szegedy, "Batch normalization: accelerating deep network training by reducing internal
    covariate shift", ICML 2015, Algorithms 1 and 2.
    """
    axis = _axis_tuple("BatchNorm", axis)
    if not epsilon > 0:
        raise ValueError(f"BatchNorm: expected epsilon > 0, got {epsilon!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"BatchNorm: expected momentum in [0, 1), got {momentum!r}")

    def feature_shape(input_shape):
        axes = _axes("BatchNorm", axis, len(input_shape))
        shape = tuple(d for i, d in enumerate(input_shape) if i not in axes)
        if any(d in (-1, None) for d in shape):
            raise ValueError(f"BatchNorm: the batch axis must be one of the normalized axes {axis}, got input "
                             f"shape {tuple(input_shape)}")
        return shape

    def init(key, input_shape):
        shape = feature_shape(input_shape)
        k1, k2 = jax.random.split(key)
        beta = beta_init(k1, shape) if center else ()
        gamma = gamma_init(k2, shape) if scale else ()
        return tuple(input_shape), BatchNormParams(beta, gamma)

    def init_state(key, input_shape):
        out_shape, params = init(key, input_shape)
        shape = feature_shape(input_shape)
        state = BatchNormState(jnp.zeros(shape), jnp.ones(shape), jnp.zeros((), jnp.int32))
        return out_shape, params, state

    def apply(params, x, **kwargs):
        beta, gamma = params
        state, train = kwargs.get("state"), kwargs.get("train", True)
        update = kwargs.get("bn_update", "ema")
        if update not in _UPDATES:
            raise ValueError(f"BatchNorm: expected bn_update in {_UPDATES}, got {update!r}")
        axes = _axes("BatchNorm", axis, x.ndim)
        ed = tuple(None if i in axes else slice(None) for i in range(x.ndim))  # broadcast features against x
        check_features("BatchNorm", x, tuple(d for i, d in enumerate(x.shape) if i not in axes), beta, gamma,
                       *(() if state is None else (state.mean,)))
        batch_stats = train or update == "cumulative"
        if batch_stats:
            mu = jnp.mean(x, axes, keepdims=True)
            var = jnp.mean(jnp.square(x - mu), axes, keepdims=True)
        elif state is None:
            raise ValueError("BatchNorm: eval mode (train=False) needs the population statistics: pass "
                             "state= (from fnn.layers.init_with_state(model, key, input_shape), updated in training or "
                             "by population_statistics); without state, BatchNorm only knows batch statistics")
        else:
            mu, var = state.mean[ed], state.var[ed]
        z = standardize(x, epsilon=epsilon, mean=mu, variance=var)
        y = (gamma[ed] * z if scale else z) + (beta[ed] if center else 0)
        if state is None:
            return y
        if not batch_stats:
            return y, state
        m = x.size // state.mean.size
        mu_b = jax.lax.stop_gradient(jnp.squeeze(mu, axes))
        var_b = jax.lax.stop_gradient(jnp.squeeze(var, axes)) * (m / max(m - 1, 1))
        w = 1.0 / (state.count + 1).astype(mu_b.dtype)
        if update == "ema":
            w = jnp.maximum(1.0 - momentum, w) if debias else 1.0 - momentum
        new = BatchNormState((state.mean + w * (mu_b - state.mean)).astype(state.mean.dtype),
                             (state.var + w * (var_b - state.var)).astype(state.var.dtype), state.count + 1)
        return y, new

    return Layer(init, apply, init_state, kind="BatchNorm", keywords=("bn_update",))


def check_features(name: str, x, feature_shape: tuple, *arrays) -> None:
    """Raise a ValueError naming the layer when ``x``'s feature axes do not have the params' (or state's) shape."""
    for a in arrays:
        if hasattr(a, "shape") and tuple(a.shape) != tuple(feature_shape):
            raise ValueError(f"{name}: expected inputs whose normalized features have shape {tuple(a.shape)} (the "
                             f"shape the layer was initialised for), got inputs of shape {tuple(x.shape)} with "
                             f"features {tuple(feature_shape)}; re-initialise the layer with this input shape")


def _is_bn_state(s) -> bool:
    return isinstance(s, BatchNormState)


def population_statistics(model, params, state, batches: Iterable, **apply_kwargs):
    """Population statistics of every BatchNorm in ``model``, in one pass over ``batches`` (Algorithm 2).

    Each BatchNorm's state is reset (``count = 0``) and then holds, after the pass,

        mean = E_B[mu_B],    var = m / (m - 1) E_B[sigma_B^2]

    the average over the batches of the batch means and of the unbiased batch variances (m values per feature
    per batch). Every BatchNorm normalizes with its batch statistics during the pass, as in training, so layers
    after it see training-time inputs; the other layers run in eval mode (``train=False``, so Dropout is the
    identity) unless ``apply_kwargs`` says otherwise. Use equally sized batches: each batch has weight 1.

    Args:
      model: a layer (e.g. ``serial(...)``) containing BatchNorm layers, anywhere in ``serial``/``parallel``.
      params: the trained params.
      state: the model's state tree (``fnn.layers.init_with_state``); only its BatchNorm entries are replaced.
      batches: an iterable of model inputs, e.g. ``x_train.reshape(-1, 100, 784)``.
      **apply_kwargs: passed to ``model.apply`` (e.g. ``key=`` when running with ``train=True``).

    Returns:
      The new state tree, same structure as ``state``; use it with ``apply(params, x, state=s, train=False)``.

    Example:
      >>> import jax
      >>> from fnn.layers import Dense, BatchNorm, serial, init_with_state, population_statistics
      >>> model = serial(Dense(8), BatchNorm(axis=0))
      >>> _, params, state = init_with_state(model, jax.random.key(0), (-1, 4))
      >>> x_train = jax.random.normal(jax.random.key(1), (500, 4))
      >>> state = population_statistics(model, params, state, x_train.reshape(-1, 100, 4))
      >>> y, _ = model.apply(params, x_train[:10], state=state, train=False)
      >>> int(state[1].count), y.shape                                  # 5 batches of 100 folded in
      (5, (10, 8))

    Reference: Ioffe & Szegedy, ICML 2015, Algorithm 2, steps 8-11.
    """
    model = as_layer(model, "population_statistics")
    state = jax.tree.map(lambda s: s._replace(count=jnp.zeros_like(s.count)) if _is_bn_state(s) else s,
                         state, is_leaf=_is_bn_state)
    kwargs = {"train": False, **apply_kwargs, "bn_update": "cumulative"}

    @jax.jit
    def step(state, x):
        return model.apply(params, x, state=state, **kwargs)[1]

    n = 0
    for x in batches:
        state = step(state, x)
        n += 1
    if n == 0:
        raise ValueError("population_statistics: expected at least one batch, got an empty iterable")
    return state


class LayerNormParams(NamedTuple):
    beta: Any   # shift, shape of the normalized axes (``()`` when center=False)
    gamma: Any  # scale, same shape (``()`` when scale=False)


def LayerNorm(axis=-1, epsilon: float = 1e-5, center: bool = True, scale: bool = True,
              beta_init: Callable = ini.zeros, gamma_init: Callable = ini.ones) -> Layer:
    """Layer normalization: each example normalized over its own features.

        y = gamma * (x - mu) / sqrt(sigma^2 + epsilon) + beta,   mu, sigma^2 = mean, variance of x over ``axis``

    Same computation at train and eval time (no batch statistics, no state).

    Args:
      axis: the feature axes normalized over (default the last); never the batch axis 0.
      epsilon: added to the variance, > 0.
      center, scale: learn beta / gamma of the shape of the ``axis`` dimensions (else ``()``).
      beta_init, gamma_init: initializers (zeros, ones).

    Returns:
      ``Layer``: params ``LayerNormParams(beta, gamma)``; y has the shape of x. Not in stax.

    Example:
      >>> import jax
      >>> from fnn.layers import LayerNorm
      >>> out_shape, params = LayerNorm().init(jax.random.key(0), (-1, 16, 64))
      >>> out_shape, params.gamma.shape
      ((-1, 16, 64), (64,))

    Reference: Ba, Kiros & Hinton, "Layer normalization", 2016, eq. (4).
    """
    axis = _axis_tuple("LayerNorm", axis)
    if not epsilon > 0:
        raise ValueError(f"LayerNorm: expected epsilon > 0, got {epsilon!r}")

    def init(key, input_shape):
        axes = _axes("LayerNorm", axis, len(input_shape))
        if 0 in axes:
            raise ValueError(f"LayerNorm: axis {axis} includes the batch axis 0 of input shape "
                             f"{tuple(input_shape)}; normalize over feature axes (default -1)")
        shape = tuple(input_shape[i] for i in axes)
        k1, k2 = jax.random.split(key)
        beta = beta_init(k1, shape) if center else ()
        gamma = gamma_init(k2, shape) if scale else ()
        return tuple(input_shape), LayerNormParams(beta, gamma)

    def apply(params, x, **kwargs):
        beta, gamma = params
        axes = _axes("LayerNorm", axis, x.ndim)
        ed = tuple(slice(None) if i in axes else None for i in range(x.ndim))
        check_features("LayerNorm", x, tuple(d for i, d in enumerate(x.shape) if i in axes), beta, gamma)
        z = standardize(x, axes, epsilon)
        return (gamma[ed] * z if scale else z) + (beta[ed] if center else 0)

    return Layer(init, apply, kind="LayerNorm", keywords=())
