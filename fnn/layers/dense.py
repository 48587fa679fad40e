"""Dense and element-wise layers: ``Dense``, the activation layers, ``Identity``, ``Flatten``, ``Reshape``, ``mlp``.

The layer contract is stated once, in :mod:`fnn.layers.base`.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from fnn import activations as act
from fnn import initializers as ini
from fnn.layers.base import Layer, as_layer, serial

__all__ = ["elementwise", "Flatten", "Reshape", "Dense", "DenseParams", "mlp", "Relu", "Sigmoid", "Tanh",
           "Elu", "LeakyRelu", "Softplus", "Gelu", "Selu", "Softmax", "LogSoftmax", "Step", "Sign", "Exp"]


def elementwise(fun: Callable, **fun_kwargs) -> Layer:
    """A parameter-free layer applying ``fun(x, **fun_kwargs)`` elementwise; its kind is ``fun``'s name.

    Example:
      >>> import jax.numpy as jnp
      >>> from fnn.layers import elementwise
      >>> sin = elementwise(jnp.sin)
      >>> sin.kind, sin.apply((), jnp.zeros(2)).tolist()
      ('sin', [0.0, 0.0])
    """
    return Layer(lambda key, input_shape: (input_shape, ()),
                 lambda params, inputs, **kwargs: fun(inputs, **fun_kwargs),
                 kind=getattr(fun, "__name__", "elementwise"), keywords=())


def _activation(kind: str, fun: Callable, **fun_kwargs) -> Layer:
    return elementwise(fun, **fun_kwargs)._replace(kind=kind)


Relu = _activation("Relu", act.relu)
Sigmoid = _activation("Sigmoid", act.sigmoid)
Tanh = _activation("Tanh", act.tanh)
Elu = _activation("Elu", act.elu)
LeakyRelu = _activation("LeakyRelu", act.leaky_relu)
Softplus = _activation("Softplus", act.softplus)
Gelu = _activation("Gelu", act.gelu)
Selu = _activation("Selu", act.selu)
Softmax = _activation("Softmax", act.softmax, axis=-1)
LogSoftmax = _activation("LogSoftmax", act.log_softmax, axis=-1)
Step = _activation("Step", act.step)
Sign = _activation("Sign", act.sign)
Exp = _activation("Exp", jnp.exp)


def _batch_dim(d):
    return -1 if d is None else d


def _flatten_init(key, input_shape):
    if len(input_shape) < 2:
        raise ValueError(f"Flatten: expected inputs of rank >= 2 (batch, ...), got shape {tuple(input_shape)}")
    return (_batch_dim(input_shape[0]), math.prod(input_shape[1:])), ()


Flatten = Layer(_flatten_init, lambda params, inputs, **kwargs: jnp.reshape(inputs, (inputs.shape[0], -1)),
                kind="Flatten", keywords=())
Flatten.__doc__ = "Flatten all but the leading (batch) dimension: (n, d1, d2, ...) -> (n, d1 * d2 * ...)."


def Reshape(shape: Sequence[int]) -> Layer:
    """Reshape each example to ``shape`` (the batch dimension is kept): (n, ...) -> (n, *shape).

    One entry of ``shape`` may be -1 and is inferred.
    """
    shape = tuple(int(d) for d in shape)
    if sum(d == -1 for d in shape) > 1 or any(d == 0 or d < -1 for d in shape):
        raise ValueError(f"Reshape: expected positive sizes with at most one -1, got {shape}")

    def init(key, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in shape if d != -1)
        if size % known or (-1 not in shape and size != known):
            raise ValueError(f"Reshape: cannot reshape examples of shape {tuple(input_shape[1:])} ({size} values) "
                             f"to {shape}")
        out = tuple(size // known if d == -1 else d for d in shape)
        return (_batch_dim(input_shape[0]),) + out, ()

    return Layer(init, lambda params, inputs, **kwargs: jnp.reshape(inputs, (inputs.shape[0],) + shape),
                 kind="Reshape", keywords=())


class DenseParams(NamedTuple):
    W: jax.Array  # (d_in, d_out)
    b: jax.Array | None  # (d_out,); None for Dense(..., use_bias=False)


def Dense(out_dim: int, W_init: Callable = ini.glorot_normal(), b_init: Callable = ini.normal(),
          use_bias: bool = True) -> Layer:
    """Fully connected layer: ``y = x W + b`` (``y = x W`` with ``use_bias=False``).

    Shapes: x (..., d_in), W (d_in, d_out), b (d_out,), y (..., d_out). Defaults as stax: Glorot-normal weights,
    N(0, 0.01^2) biases. Nielsen writes ``a' = sigma(w a + b)`` with w of shape (d_out, d_in) acting on column
    vectors; fnn stores the transpose and acts on row vectors (a batch is a matrix of rows).

    Params: ``DenseParams(W, b)``; with ``use_bias=False`` ``DenseParams(W, None)`` (``b_init`` unused): the tree
    has the single leaf W, so optimizers and penalties see no bias. Use it before ``BatchNorm``, whose shift beta
    makes a bias redundant (BN subtracts the batch mean, and with it any constant b).

    Example:
      >>> layer = Dense(3, use_bias=False)
      >>> _, params = layer.init(jax.random.key(0), (-1, 4))
      >>> params.W.shape, params.b
      ((4, 3), None)
    """
    if not (isinstance(out_dim, int) and out_dim >= 1):
        raise ValueError(f"Dense: expected a positive number of units, got out_dim={out_dim!r}")
    if not isinstance(use_bias, bool):
        raise ValueError(f"Dense: expected use_bias True or False, got {use_bias!r}")

    def init(key, input_shape):
        if len(input_shape) < 1 or input_shape[-1] in (None, -1):
            raise ValueError(f"Dense: expected an input shape with a known last dimension, got {input_shape!r}")
        k1, k2 = jax.random.split(key)
        d_in = int(input_shape[-1])
        params = DenseParams(W_init(k1, (d_in, out_dim)), b_init(k2, (out_dim,)) if use_bias else None)
        return tuple(input_shape[:-1]) + (out_dim,), params

    def apply(params, inputs, **kwargs):
        if not (isinstance(params, tuple) and len(params) == 2 and hasattr(params[0], "shape")
                and (params[1] is None or hasattr(params[1], "shape"))):
            raise ValueError(f"Dense: expected params DenseParams(W, b) (two arrays), got {type(params).__name__} "
                             f"{jax.tree.map(jnp.shape, params)}; pass the entry this layer's init returned (W and "
                             f"None for a layer built with use_bias=False)")
        W, b = params
        if inputs.shape[-1:] != W.shape[:1]:
            raise ValueError(f"Dense: expected inputs with last dimension {W.shape[0]}, got shape {inputs.shape}; "
                             f"re-initialize with the right input_shape or add Flatten before Dense")
        y = jnp.dot(inputs, W)
        if b is None:
            return y
        return y + jnp.reshape(b, (1,) * (y.ndim - 1) + b.shape)  # explicit broadcast (strict rank promotion)

    return Layer(init, apply, kind="Dense", keywords=())


def mlp(sizes: Sequence[int], activation=Relu, output_activation=None, **dense_kwargs) -> Layer:
    """A multi-layer perceptron ``Dense(sizes[0]), activation, ..., Dense(sizes[-1])`` built with ``serial``.

    ``sizes`` lists the layer widths after the input (the input width comes from ``init``'s input shape), e.g.
    ``mlp([30, 10], Sigmoid)`` is Nielsen's 784-30-10 network. ``output_activation`` (a layer) is appended if given.
    """
    sizes = list(sizes)
    if not sizes or any(not (isinstance(s, int) and s >= 1) for s in sizes):
        raise ValueError(f"mlp: expected a non-empty list of positive layer widths, got {sizes!r}")
    activation = as_layer(activation, "mlp (activation)")
    layers = []
    for i, width in enumerate(sizes):
        layers.append(Dense(width, **dense_kwargs))
        if i < len(sizes) - 1:
            layers.append(activation)
    if output_activation is not None:
        layers.append(as_layer(output_activation, "mlp (output_activation)"))
    return serial(*layers)._replace(kind="mlp")
