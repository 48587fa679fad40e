"""Unit layers beyond Dense: Embedding (table look-up), Maxout (max of k affine pieces), RBF (Gaussian units).

Layers follow the contract of :mod:`fnn.layers`; params are ``EmbeddingParams(table)``, ``MaxoutParams(W, b)`` and
``RBFParams(centers, widths)``. None of them is in stax (fnn additions).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import initializers as ini
from fnn.layers.base import Layer

__all__ = ["Embedding", "EmbeddingParams", "Maxout", "MaxoutParams", "RBF", "RBFParams"]


def _positive_int(name: str, arg: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int for {arg}, got {value!r}")
    return value


def _check_last_dim(name: str, inputs, d_in: int):
    if inputs.ndim < 1 or inputs.shape[-1] != d_in:
        raise ValueError(f"{name}: expected inputs with last dimension {d_in}, got shape {inputs.shape}; "
                         f"re-initialize with the right input_shape or add Flatten before {name}")


def _known_last_dim(name: str, input_shape) -> int:
    if len(input_shape) < 1 or input_shape[-1] in (None, -1):
        raise ValueError(f"{name}: expected an input shape with a known last dimension, got {input_shape!r}")
    return int(input_shape[-1])


class EmbeddingParams(NamedTuple):
    table: jax.Array  # (vocab_size, features): row v is the vector of token v


def Embedding(vocab_size: int, features: int, table_init: Callable = ini.normal(1.0)) -> Layer:
    """Embedding: integer ids to learned vectors, ``y[..., :] = table[x[...], :]``.

    Equivalent to ``one_hot(x, vocab_size) @ table`` (a Dense layer without bias on one-hot inputs), computed as
    a look-up. The gradient with respect to ``table`` is non-zero only in the rows of the ids that occur.

    Args:
      vocab_size: number of distinct ids V; valid ids are 0 .. V-1.
      features: size d of each vector.
      table_init: initializer of the (V, d) table (default N(0, 1)).

    Returns:
      ``Layer``; params ``EmbeddingParams(table)``. Shapes: x (...) integers, y (..., d).
      Ids outside [0, V) (negative ones included) raise a ValueError when the ids are concrete; under ``jit``
      they cannot be checked and their rows come out NaN, so the loss turns NaN and ``fit`` stops with a message.

    Example:
      >>> out_shape, params = Embedding(1000, 32).init(jax.random.key(0), (-1, 20))
      >>> out_shape
      (-1, 20, 32)

    Reference: Bengio et al., "A neural probabilistic language model", JMLR 2003, sec. 2 (the matrix C).
    """
    vocab_size = _positive_int("Embedding", "vocab_size", vocab_size)
    features = _positive_int("Embedding", "features", features)

    def init(key, input_shape):
        return tuple(input_shape) + (features,), EmbeddingParams(table_init(key, (vocab_size, features)))

    def apply(params, inputs, **kwargs):
        (table,) = params
        inputs = jnp.asarray(inputs)
        if not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise TypeError(f"Embedding: expected integer ids, got dtype {inputs.dtype}; cast with x.astype(int)")
        try:  # concrete ids are checked; traced ones (under jit) cannot be, and out-of-range ids give NaN rows
            ids = np.asarray(inputs)
        except jax.errors.TracerArrayConversionError:
            ids = None
        if ids is not None:
            if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
                raise ValueError(f"Embedding: expected ids in [0, {vocab_size}), got values in "
                                 f"[{ids.min()}, {ids.max()}]; enlarge vocab_size or re-map the ids")
        # jnp.take(mode="fill") wraps negative ids like Python indexing (-1 -> the last row): test the range here
        valid = (inputs >= 0) & (inputs < vocab_size)
        rows = jnp.take(table, jnp.clip(inputs, 0, vocab_size - 1), axis=0)
        return jnp.where(valid[..., None], rows, jnp.nan)

    return Layer(init, apply, kind="Embedding", keywords=())


class MaxoutParams(NamedTuple):
    W: jax.Array  # (k, d_in, d_out): the k affine pieces
    b: jax.Array  # (k, d_out)


def Maxout(out_dim: int, k: int = 2, W_init: Callable | None = None, b_init: Callable = ini.normal()) -> Layer:
    """Maxout: the maximum of ``k`` affine pieces, ``y_j = max_{i < k} (x W_i + b_i)_j``.

    Each unit is a learned convex piecewise-linear function of x; with k = 1 it is a Dense layer, and ReLU is the
    special case of two pieces, one of them fixed at 0.

    Args:
      out_dim: number of output units, >= 1.
      k: number of pieces per unit, >= 1.
      W_init: initializer of the (k, d_in, out_dim) weights (default Glorot normal with fans d_in, out_dim,
        i.e. each piece initialized like a Dense layer).
      b_init: initializer of the (k, out_dim) biases (default N(0, 0.01^2), as Dense).

    Returns:
      ``Layer``; params ``MaxoutParams(W, b)``. Shapes: x (..., d_in), y (..., out_dim).

    Example:
      >>> from fnn.layers import serial, Dense
      >>> model = serial(Maxout(240, k=5), Maxout(240, k=5), Dense(10))   # the paper's MNIST MLP shape
      >>> model.init(jax.random.key(0), (-1, 784))[0]
      (-1, 10)

    Reference: Goodfellow et al., "Maxout networks", ICML 2013, eq. (1)-(2).
    """
    out_dim = _positive_int("Maxout", "out_dim", out_dim)
    k = _positive_int("Maxout", "k", k)
    W_init = W_init or ini.glorot_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))

    def init(key, input_shape):
        d_in = _known_last_dim("Maxout", input_shape)
        k1, k2 = jax.random.split(key)
        params = MaxoutParams(W_init(k1, (k, d_in, out_dim)), b_init(k2, (k, out_dim)))
        return tuple(input_shape[:-1]) + (out_dim,), params

    def apply(params, inputs, **kwargs):
        W, b = params
        _check_last_dim("Maxout", inputs, W.shape[1])
        z = jnp.einsum("...d,kdo->...ko", inputs, W)  # (..., k, out_dim): every piece
        z = z + jnp.reshape(b, (1,) * (z.ndim - 2) + b.shape)
        return jnp.max(z, axis=-2)

    return Layer(init, apply, kind="Maxout", keywords=())


class RBFParams(NamedTuple):
    centers: jax.Array  # (units, d_in): c_j
    widths: jax.Array   # (units,): s_j


def RBF(units: int, normalize: bool = False, width: float = 1.0, centers_init: Callable = ini.normal(1.0),
        widths_init: Callable | None = None) -> Layer:
    """Gaussian radial-basis-function units with learnable centers and widths.

        phi_j(x) = exp(-||x - c_j||^2 / (2 s_j^2))
        normalized:  phi_j(x) / sum_l phi_l(x)

    The normalized variant is computed as a softmax of the exponents, so it stays finite even when every
    phi_j underflows (x far from all centers). Only s_j^2 enters, so a width that turns negative in training
    acts like its absolute value.

    Args:
      units: number of units (centers), >= 1.
      normalize: divide by the sum of the units' responses (a partition of unity).
      width: initial width s_j of every unit, > 0 (used when ``widths_init`` is None).
      centers_init: initializer of the (units, d_in) centers (default N(0, 1); set them from data, e.g.
        k-means or a random subset of the inputs, by replacing ``params.centers``).
      widths_init: initializer of the (units,) widths (default the constant ``width``).

    Returns:
      ``Layer``; params ``RBFParams(centers, widths)``. Shapes: x (..., d_in), y (..., units).

    Example:
      >>> from fnn.layers import serial, Dense
      >>> model = serial(RBF(20, normalize=True), Dense(1))                # an RBF network, trained end to end
      >>> model.init(jax.random.key(0), (-1, 1))[0]
      (-1, 1)

    Reference: Moody & Darken, "Fast learning in networks of locally-tuned processing units", Neural Computation
    1989, eq. (1)-(2); Bishop, "Neural Networks for Pattern Recognition", 1995, sec. 5.1.
    """
    units = _positive_int("RBF", "units", units)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"RBF: expected a positive width, got width={width!r}")
    widths_init = widths_init or ini.constant(float(width))

    def init(key, input_shape):
        d_in = _known_last_dim("RBF", input_shape)
        k1, k2 = jax.random.split(key)
        params = RBFParams(centers_init(k1, (units, d_in)), widths_init(k2, (units,)))
        return tuple(input_shape[:-1]) + (units,), params

    def apply(params, inputs, **kwargs):
        centers, widths = params
        _check_last_dim("RBF", inputs, centers.shape[1])
        lead = (1,) * (inputs.ndim - 1)
        diff = inputs[..., None, :] - jnp.reshape(centers, lead + centers.shape)  # (..., units, d_in)
        sq_dist = jnp.sum(jnp.square(diff), axis=-1)  # (..., units)
        exponent = -sq_dist / jnp.reshape(2.0 * jnp.square(widths), lead + widths.shape)
        return jax.nn.softmax(exponent, axis=-1) if normalize else jnp.exp(exponent)

    return Layer(init, apply, kind="RBF", keywords=())
