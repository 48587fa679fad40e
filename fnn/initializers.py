"""Weight initializers.

Contract: an initializer is a function ``init(key, shape, dtype=jnp.float32) -> array``. The constructors below
take the hyper-parameters and return such a function (``W_init=glorot_uniform()``), exactly as
``jax.nn.initializers`` does, so either library's initializers plug into either library's layers.

Fans: for a weight of shape ``shape``, ``fan_in = shape[in_axis] * receptive`` and
``fan_out = shape[out_axis] * receptive``, where ``receptive`` is the product of all other (spatial) axes. A dense
kernel ``(d_in, d_out)`` has ``fan_in = d_in``; a conv kernel ``(h, w, c_in, c_out)`` (HWIO) has
``fan_in = h * w * c_in``.

The named schemes are one-liners over :func:`variance_scaling`, which draws with variance ``scale / n``:

=====================  =======  ==========  ==========================================
name                   scale    mode (n)    reference
=====================  =======  ==========  ==========================================
glorot / xavier        1        fan_avg     Glorot & Bengio, AISTATS 2010, eq. (16)
he / kaiming           2        fan_in      He et al., ICCV 2015, eq. (10)
lecun                  1        fan_in      LeCun et al., "Efficient BackProp", 1998, sec. 4.6
=====================  =======  ==========  ==========================================

``glorot_uniform`` is U[-b, b] with b = sqrt(6 / (fan_in + fan_out)) (variance b^2 / 3 = 2 / (fan_in + fan_out)).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Initializer = Callable[..., jax.Array]

__all__ = [
    "Initializer", "zeros", "ones", "constant", "normal", "standard_normal", "uniform", "variance_scaling",
    "glorot_normal", "glorot_uniform", "xavier_normal", "xavier_uniform", "he_normal", "he_uniform",
    "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform", "orthogonal", "sparse",
]


def _shape(shape) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in shape)
    except TypeError as e:
        raise TypeError(f"initializer: expected a shape (tuple of ints), got {shape!r}") from e


def zeros(key, shape, dtype=jnp.float32):
    """All zeros (biases, BatchNorm's beta).  Usable directly: ``b_init=zeros``."""
    return jnp.zeros(_shape(shape), dtype)


def ones(key, shape, dtype=jnp.float32):
    """All ones (BatchNorm's gamma).  Usable directly: ``gamma_init=ones``."""
    return jnp.ones(_shape(shape), dtype)


def constant(value) -> Initializer:
    """Every entry equal to ``value``."""
    def init(key, shape, dtype=jnp.float32):
        return jnp.full(_shape(shape), value, dtype)
    return init


def normal(stddev: float = 1e-2) -> Initializer:
    """N(0, stddev^2) entries (stax's default bias initializer is ``normal()``)."""
    if not stddev >= 0:
        raise ValueError(f"normal: expected stddev >= 0, got {stddev}")

    def init(key, shape, dtype=jnp.float32):
        return stddev * jax.random.normal(key, _shape(shape), dtype)
    return init


def standard_normal() -> Initializer:
    """The textbook N(0, 1) initialization (Nielsen, *Neural Networks and Deep Learning*, ch. 1 ``network.py``).

    Saturates sigmoid units of wide layers; kept because the classic material starts here (see ch. 3 for the fix,
    N(0, 1/n_in), which is :func:`lecun_normal`).
    """
    return normal(1.0)


def uniform(scale: float = 1e-2) -> Initializer:
    """U[-scale, scale] entries.

    Departure from ``jax.nn.initializers.uniform``, which samples U[0, scale): the symmetric interval is the one the
    classic material uses for weights.
    """
    if not scale >= 0:
        raise ValueError(f"uniform: expected scale >= 0, got {scale}")

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, _shape(shape), dtype, -scale, scale)
    return init


def _fans(shape: tuple[int, ...], in_axis: int, out_axis: int, batch_axis: Sequence[int]) -> tuple[float, float]:
    if len(shape) < 1:
        raise ValueError(f"variance_scaling: a weight needs at least one dimension, got shape {shape}")
    if len(shape) == 1:  # a vector: treat as (1, n)
        return float(shape[0]), float(shape[0])
    nd = len(shape)
    in_axis, out_axis = in_axis % nd, out_axis % nd
    batch = {b % nd for b in batch_axis}
    receptive = math.prod(d for i, d in enumerate(shape) if i not in {in_axis, out_axis} | batch)
    return float(shape[in_axis] * receptive), float(shape[out_axis] * receptive)


_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")


def variance_scaling(scale: float, mode: str, distribution: str, in_axis: int = -2, out_axis: int = -1,
                     batch_axis: Sequence[int] = ()) -> Initializer:
    """Entries with variance ``scale / n``, n chosen by ``mode``.

    Var[W] = scale / n,  n = fan_in | fan_out | (fan_in + fan_out) / 2.
    ``distribution``: ``"normal"`` N(0, scale/n); ``"truncated_normal"`` normal truncated at 2 std and rescaled so
    the variance is still scale/n; ``"uniform"`` U[-b, b] with b = sqrt(3 scale / n).

    Args:
      scale: positive multiplier of the variance.
      mode: one of ``"fan_in"``, ``"fan_out"``, ``"fan_avg"``.
      distribution: one of ``"truncated_normal"``, ``"normal"``, ``"uniform"``.
      in_axis, out_axis: axes of the input and output units (conv HWIO: -2, -1).
      batch_axis: axes that index independent weights (excluded from the fans).

    Example:
      >>> W = variance_scaling(2.0, "fan_in", "normal")(jax.random.key(0), (784, 30))
    """
    if not scale > 0:
        raise ValueError(f"variance_scaling: expected scale > 0, got {scale}")
    if mode not in _MODES:
        raise ValueError(f"variance_scaling: mode must be one of {_MODES}, got {mode!r}")
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(f"variance_scaling: distribution must be one of {_DISTRIBUTIONS}, got {distribution!r}")

    def init(key, shape, dtype=jnp.float32):
        shape = _shape(shape)
        fan_in, fan_out = _fans(shape, in_axis, out_axis, batch_axis)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(n, 1.0)
        if distribution == "normal":
            return math.sqrt(variance) * jax.random.normal(key, shape, dtype)
        if distribution == "uniform":
            b = math.sqrt(3.0 * variance)
            return jax.random.uniform(key, shape, dtype, -b, b)
        # Truncated at +-2: the std of N(0,1) truncated to [-2, 2] is 0.87962566103423978.
        std = math.sqrt(variance) / 0.87962566103423978
        return std * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)
    return init


def glorot_normal(in_axis=-2, out_axis=-1, batch_axis=()):
    """Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)).  Glorot & Bengio, AISTATS 2010, eq. (16)."""
    return variance_scaling(1.0, "fan_avg", "normal", in_axis, out_axis, batch_axis)


def glorot_uniform(in_axis=-2, out_axis=-1, batch_axis=()):
    """Glorot/Xavier uniform: U[-b, b], b = sqrt(6 / (fan_in + fan_out)).  Glorot & Bengio 2010, eq. (16)."""
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis)


def he_normal(in_axis=-2, out_axis=-1, batch_axis=()):
    """He/Kaiming normal: N(0, 2 / fan_in), for ReLU units.  He et al., ICCV 2015, eq. (10)."""
    return variance_scaling(2.0, "fan_in", "normal", in_axis, out_axis, batch_axis)


def he_uniform(in_axis=-2, out_axis=-1, batch_axis=()):
    """He/Kaiming uniform: U[-b, b], b = sqrt(6 / fan_in)."""
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis)


def lecun_normal(in_axis=-2, out_axis=-1, batch_axis=()):
    """LeCun normal: N(0, 1 / fan_in) (Nielsen's improved init, ch. 3).  LeCun et al., 1998, sec. 4.6."""
    return variance_scaling(1.0, "fan_in", "normal", in_axis, out_axis, batch_axis)


def lecun_uniform(in_axis=-2, out_axis=-1, batch_axis=()):
    """LeCun uniform: U[-b, b], b = sqrt(3 / fan_in)."""
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis)


xavier_normal, xavier_uniform = glorot_normal, glorot_uniform
kaiming_normal, kaiming_uniform = he_normal, he_uniform


def orthogonal(scale: float = 1.0, column_axis: int = -1) -> Initializer:
    """A (semi-)orthogonal matrix times ``scale``: Q from the QR decomposition of a Gaussian matrix, signs fixed
    by diag(R) so that Q is uniformly (Haar) distributed.

    For shape (..., n_out) the weight is reshaped to (prod(other axes), n_out); rows or columns are orthonormal,
    whichever are fewer.

    Reference: Saxe, McClelland, Ganguli, "Exact solutions to the nonlinear dynamics of learning in deep linear
    neural networks", ICLR 2014; Mezzadri, "How to generate random matrices from the classical compact groups", 2007.
    """
    def init(key, shape, dtype=jnp.float32):
        shape = _shape(shape)
        if len(shape) < 2:
            raise ValueError(f"orthogonal: expected a weight with at least 2 dimensions, got shape {shape}")
        n_cols = shape[column_axis]
        n_rows = math.prod(shape) // n_cols
        a = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), jnp.float32)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.sign(jnp.diag(r))
        if n_rows < n_cols:
            q = q.T
        q = jnp.moveaxis(q.reshape(tuple(np.delete(shape, column_axis % len(shape))) + (n_cols,)), -1,
                         column_axis)
        return (scale * q).astype(dtype)
    return init


def sparse(nonzero: int = 15, stddev: float = 1.0, in_axis: int = -2) -> Initializer:
    """Sparse initialization: each output unit gets exactly ``nonzero`` non-zero incoming weights ~ N(0, stddev^2),
    the others are zero.

    Reference: Martens, "Deep learning via Hessian-free optimization", ICML 2010, sec. 5 (15 connections per unit).
    """
    if not (isinstance(nonzero, int) and nonzero >= 1):
        raise ValueError(f"sparse: expected nonzero >= 1 incoming connections per unit, got {nonzero!r}")

    def init(key, shape, dtype=jnp.float32):
        shape = _shape(shape)
        if len(shape) != 2:
            raise ValueError(f"sparse: expected a 2-D (fan_in, fan_out) weight, got shape {shape}")
        fan_in = shape[in_axis]
        if nonzero > fan_in:
            raise ValueError(f"sparse: {nonzero} non-zero weights per unit requested but the layer has only "
                             f"{fan_in} inputs; pass nonzero <= {fan_in}")
        w = jnp.moveaxis(jnp.zeros(shape, dtype), in_axis, 0)  # (fan_in, fan_out)
        k_perm, k_val = jax.random.split(key)
        # For each output unit, a random permutation of the inputs; keep the first `nonzero`.
        perms = jax.vmap(lambda k: jax.random.permutation(k, fan_in))(jax.random.split(k_perm, w.shape[1]))
        rows = perms[:, :nonzero]  # (fan_out, nonzero)
        cols = jnp.broadcast_to(jnp.arange(w.shape[1])[:, None], rows.shape)
        vals = stddev * jax.random.normal(k_val, rows.shape, dtype)
        w = w.at[rows, cols].set(vals)
        return jnp.moveaxis(w, 0, in_axis)
    return init
