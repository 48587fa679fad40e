"""Network paralysis: detecting saturated sigmoid/tanh units and shrinking their weights back into the active range.

A sigmoid or tanh unit whose net input ``net_j = sum_i a_i W_ij + b_j`` is large in magnitude sits on a flat part
of its activation, where ``f'(net_j) ~ 0``. Every weight update of backpropagation into or through the unit carries
the factor ``f'(net_j)``, so once most units are saturated for most inputs learning stalls: the network is
*paralysed*. Large weights (a too-wide initialisation, a too-large learning rate) are the usual cause.

Saturation is measured on net inputs: unit j of a layer is saturated on input x when ``|net_j(x)| > threshold``,
by default 4 for the sigmoid (``f'(4) = 0.018``, 7% of ``f'(0) = 1/4``) and 2 for tanh (``f'(2) = 0.071``, 7% of
``f'(0) = 1``; tanh(x) = 2 sigma(2x) - 1, so the two defaults mark the same point of the curve).

The remedy (the notes': shrink the weights of the paralysed units) is :func:`squash_weights`: a unit saturated on
more than ``max_fraction`` of the inputs has its incoming weights and bias multiplied by

    s_j = target / max_x |net_j(x)|,        W[:, j] <- s_j W[:, j],   b_j <- s_j b_j,

so its net inputs, ``s_j net_j(x)``, keep their signs and order but now satisfy ``|net_j| <= target`` (default
``threshold / 2``) on every given input. Layers are visited from the input up, each with the activations of the
already-squashed layers below; the other units' weights are not touched.

Params layout: the params of ``fnn.mlp(sizes, Sigmoid or Tanh, output_activation=...)``, a tuple of
``DenseParams(W (d_in, d_out), b (d_out,) or None)`` and ``()`` for the activation layers.

Reference: Wasserman, *Neural Computing: Theory and Practice*, 1989, ch. 3 ("Network paralysis"); Rumelhart,
Hinton, Williams, in *Parallel Distributed Processing* vol. 1, 1986, ch. 8 (start from small random weights);
LeCun, Bottou, Orr, Mueller, "Efficient BackProp", 1998, sec. 4.6 (keep net inputs in the sigmoid's linear range).
"""
from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

from fnn import activations as act
from fnn.layers.dense import DenseParams

__all__ = ["SATURATION_THRESHOLDS", "net_inputs", "saturated_units", "squash_weights"]

SATURATION_THRESHOLDS = {"sigmoid": 4.0, "tanh": 2.0}


def _empty(p) -> bool:
    return isinstance(p, tuple) and not isinstance(p, DenseParams) and len(p) == 0


def _dense_layers(params) -> list:
    layers = [p for p in params if not _empty(p)]
    if not layers or not all(isinstance(p, DenseParams) for p in layers):
        raise ValueError(f"paralysis: expected the params of fnn.mlp (a tuple of DenseParams and () entries), got "
                         f"{[type(p).__name__ for p in params]}")
    return layers


def _settings(name, activation, output_activation, threshold):
    for what, a in (("activation", activation), ("output_activation", output_activation)):
        if a not in SATURATION_THRESHOLDS and not (what == "output_activation" and a in (None, "identity")):
            allowed = sorted(SATURATION_THRESHOLDS) + ([None, "identity"] if what == "output_activation" else [])
            raise ValueError(f"{name}: expected {what} in {allowed}, got {a!r}; paralysis concerns squashing units")
    if threshold is None:
        threshold = SATURATION_THRESHOLDS[activation]
    if not (isinstance(threshold, (int, float)) and threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"{name}: expected threshold (on |net|) > 0, got {threshold!r}")
    return float(threshold)


def _net(layer: DenseParams, a):
    z = jnp.dot(a, layer.W)
    return z if layer.b is None else z + layer.b[None, :]


def net_inputs(params, x, *, activation: str = "sigmoid") -> list:
    """The net inputs ``net^l = a^{l-1} W^l + b^l`` of every Dense layer, ``a^0 = x``, ``a^l = f(net^l)``.

    Args:
      params: ``fnn.mlp`` params (see the module docstring). x: inputs (n, d_0).
      activation: ``"sigmoid"`` or ``"tanh"``, the hidden layers' f (the output layer's f is not needed).

    Returns:
      a list of L arrays, ``net^l`` of shape (n, d_l).
    """
    _settings("net_inputs", activation, None, None)
    layers = _dense_layers(params)
    if x.ndim != 2 or x.shape[1] != layers[0].W.shape[0]:
        raise ValueError(f"net_inputs: expected x of shape (n, {layers[0].W.shape[0]}), got {x.shape}; "
                         f"pass a batch of rows")
    return _forward(tuple(layers), jnp.asarray(x), activation)


@partial(jax.jit, static_argnames="activation")
def _forward(layers, x, activation):
    f = getattr(act, activation)
    nets, a = [], x
    for layer in layers:
        nets.append(_net(layer, a))
        a = f(nets[-1])
    return nets


def saturated_units(params, x, *, activation: str = "sigmoid", output_activation: str | None = None,
                    threshold: float | None = None) -> list:
    """Per layer and unit, the fraction of the inputs on which the unit is saturated: ``mean_x [|net_j(x)| > thr]``.

    Args:
      params: ``fnn.mlp`` params. x: inputs (n, d_0).
      activation: ``"sigmoid"`` or ``"tanh"`` (hidden layers). output_activation: ``"sigmoid"``/``"tanh"`` to check
        the output layer too; ``None`` or ``"identity"`` (default) to report the hidden layers only.
      threshold: the |net| beyond which a unit counts as saturated (default ``SATURATION_THRESHOLDS[activation]``:
        4 for sigmoid, 2 for tanh, where f' has fallen to 7% of its maximum).

    Returns:
      a list, one (d_l,) array of fractions in [0, 1] per hidden layer (and the output layer when checked).

    Example:
      >>> import jax
      >>> from fnn import layers
      >>> model = layers.mlp([8, 1], layers.Sigmoid, output_activation=layers.Sigmoid)
      >>> _, params = model.init(jax.random.key(0), (-1, 2))
      >>> x = jax.random.normal(jax.random.key(1), (100, 2))
      >>> float(saturated_units(params, x)[0].max())                          # a fresh net: no unit saturated
      0.0
      >>> big = jax.tree.map(lambda w: 20.0 * w, params)                      # weights x 20: paralysed
      >>> bool(saturated_units(big, x)[0].mean() > 0.5)
      True

    Reference: Wasserman, *Neural Computing: Theory and Practice*, 1989, ch. 3 ("Network paralysis").
    """
    threshold = _settings("saturated_units", activation, output_activation, threshold)
    nets = net_inputs(params, x, activation=activation)
    if output_activation in (None, "identity"):
        nets = nets[:-1]
    return [_fraction(z, threshold) for z in nets]


@jax.jit
def _fraction(z, threshold):
    return jnp.mean((jnp.abs(z) > threshold).astype(jnp.float32), axis=0)


def squash_weights(params, x, *, activation: str = "sigmoid", output_activation: str | None = None,
                   threshold: float | None = None, target: float | None = None, max_fraction: float = 0.0):
    """Shrink the incoming weights and bias of every paralysed unit so its net inputs return to the active range.

        unit j paralysed  <=>  mean_x [|net_j(x)| > threshold] > max_fraction
        s_j = target / max_x |net_j(x)|;   W[:, j] <- s_j W[:, j],   b_j <- s_j b_j   (paralysed units only)

    Layers are visited from the input up; each is measured with the activations of the layers below as already
    squashed. Afterwards, on the same inputs, every checked unit is saturated on at most ``max_fraction`` of them
    (the squashed ones on none: ``|net_j| <= target < threshold``), and the other units' weights are returned
    unchanged, bit for bit.

    Args:
      params: ``fnn.mlp`` params. x: the inputs (n, d_0) the net inputs are measured on (e.g. the training set).
      activation, output_activation, threshold: as :func:`saturated_units`.
      target: the largest |net| of a squashed unit (default ``threshold / 2``; must be < threshold).
      max_fraction: units saturated on more than this fraction of the inputs are squashed (default 0: any).

    Returns:
      params of the same structure, with the columns of the paralysed units rescaled.

    Example:
      >>> import jax
      >>> from fnn import layers
      >>> model = layers.mlp([8, 1], layers.Tanh)
      >>> _, params = model.init(jax.random.key(0), (-1, 2))
      >>> x = jax.random.normal(jax.random.key(1), (100, 2))
      >>> big = jax.tree.map(lambda w: 20.0 * w, params)
      >>> fixed = squash_weights(big, x, activation="tanh")
      >>> float(saturated_units(fixed, x, activation="tanh")[0].max())
      0.0

    Reference: Wasserman, *Neural Computing: Theory and Practice*, 1989, ch. 3 (network paralysis; shrink the
    weights); LeCun et al., "Efficient BackProp", 1998, sec. 4.6.
    """
    threshold = _settings("squash_weights", activation, output_activation, threshold)
    target = threshold / 2 if target is None else target
    if not (isinstance(target, (int, float)) and 0 < target < threshold):
        raise ValueError(f"squash_weights: expected 0 < target < threshold = {threshold}, got {target!r}")
    if not (isinstance(max_fraction, (int, float)) and 0 <= max_fraction < 1):
        raise ValueError(f"squash_weights: expected max_fraction in [0, 1), got {max_fraction!r}")
    net_inputs(params, x, activation=activation)           # validates the params and x's shape
    checked = len(_dense_layers(params)) - (output_activation in (None, "identity"))
    return _squash(tuple(params), jnp.asarray(x), activation, checked, threshold, target, max_fraction)


@partial(jax.jit, static_argnames=("activation", "checked"))
def _squash(params, x, activation, checked, threshold, target, max_fraction):
    f = getattr(act, activation)
    out, a, seen = [], x, 0
    for p in params:
        if _empty(p):
            out.append(p)
            continue
        if seen < checked:
            z = _net(p, a)
            paralysed = _fraction(z, threshold) > max_fraction
            s = jnp.where(paralysed, target / jnp.maximum(jnp.max(jnp.abs(z), axis=0), target), 1.0).astype(p.W.dtype)
            p = DenseParams(jnp.where(paralysed[None, :], p.W * s[None, :], p.W),
                            None if p.b is None else jnp.where(paralysed, p.b * s, p.b))
            a = f(_net(p, a))
        seen += 1
        out.append(p)
    return tuple(out)
