"""Weight initializers.

Contract: an initializer is a function ``init(key, shape, dtype=jnp.float32) -> array``. The constructors below
take the hyper-parameters and return such a function (``W_init=glorot_uniform()``), exactly as
``jax.nn.initializers`` does, so either library's initializers plug into either library's layers. ``zeros`` and
``ones`` are initializers themselves (``b_init=zeros``), as in stax.

Fans: for a weight of shape ``shape``, ``fan_in = shape[in_axis] * receptive`` and
``fan_out = shape[out_axis] * receptive``, where ``receptive`` is the product of all other axes except
``batch_axis``. A dense kernel ``(d_in, d_out)`` has ``fan_in = d_in``; a conv kernel ``(h, w, c_in, c_out)``
(HWIO) has ``fan_in = h * w * c_in`` and ``fan_out = h * w * c_out``. A 1-D shape ``(n,)`` has
``fan_in = fan_out = n``.

The named schemes are one-liners over :func:`variance_scaling`, which draws with variance ``scale / n``:

=====================  =======  ==========  ==========================================
name                   scale    mode (n)    reference
=====================  =======  ==========  ==========================================
glorot / xavier        1        fan_avg     Glorot & Bengio, AISTATS 2010, eq. (12), (16)
he / kaiming           2        fan_in      He et al., ICCV 2015, eq. (10)
lecun                  1        fan_in      LeCun et al., "Efficient BackProp", 1998, sec. 4.6
=====================  =======  ==========  ==========================================

``*_uniform`` draws U[-b, b] with b = sqrt(3 scale / n), e.g. ``glorot_uniform``: b = sqrt(6 / (fan_in + fan_out));
``*_normal`` draws N(0, scale / n). Departure from ``jax.nn.initializers``: there the ``*_normal`` schemes draw a
*truncated* normal; here they draw the plain normal the names promise (pass ``distribution="truncated_normal"`` to
:func:`variance_scaling` for the other).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from fnn import checks

Initializer = Callable[..., jax.Array]

__all__ = [
    "Initializer", "zeros", "ones", "constant", "normal", "standard_normal", "uniform", "variance_scaling",
    "glorot_normal", "glorot_uniform", "xavier_normal", "xavier_uniform", "he_normal", "he_uniform",
    "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform", "orthogonal", "sparse", "fans",
]


def _shape(shape, where: str = "initializer") -> tuple[int, ...]:
    try:
        out = tuple(int(d) for d in shape)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: expected a shape (a tuple of ints), got {shape!r}") from e
    if any(d < 0 for d in out):
        raise ValueError(f"{where}: expected non-negative sizes, got shape {out}")
    return out


def zeros(key, shape, dtype=jnp.float32):
    """All zeros: W = 0 (biases, BatchNorm's beta).  Used directly, not called: ``b_init=zeros``.

    Args: key (unused), shape, dtype.  Returns: array of ``shape`` and ``dtype``.
    """
    return jnp.zeros(_shape(shape, "zeros"), dtype)


def ones(key, shape, dtype=jnp.float32):
    """All ones: W = 1 (BatchNorm's gamma).  Used directly, not called: ``gamma_init=ones``.

    Args: key (unused), shape, dtype.  Returns: array of ``shape`` and ``dtype``.
    """
    return jnp.ones(_shape(shape, "ones"), dtype)


def constant(value) -> Initializer:
    """Every entry equal to ``value``: W = value.

    Example:
      >>> constant(0.5)(jax.random.key(0), (3,)).tolist()
      [0.5, 0.5, 0.5]
    """
    def init(key, shape, dtype=jnp.float32):
        return jnp.full(_shape(shape, "constant"), value, dtype)
    return init


def normal(stddev: float = 1e-2) -> Initializer:
    """Independent N(0, stddev^2) entries: W = stddev * z, z ~ N(0, 1).

    The default 0.01 is stax's default bias initializer (``Dense(n)`` uses ``b_init=normal()``).

    Args:
      stddev: standard deviation, >= 0.
    Returns:
      an initializer ``(key, shape, dtype) -> array``.
    """
    if not stddev >= 0:
        raise ValueError(f"normal: expected stddev >= 0, got {stddev!r}")

    def init(key, shape, dtype=jnp.float32):
        return stddev * jax.random.normal(key, _shape(shape, "normal"), dtype)
    return init


def standard_normal() -> Initializer:
    """The textbook N(0, 1) initialization: W = z, z ~ N(0, 1).

    Saturates sigmoid units of wide layers (Var[w . x] = n_in); kept because the classic material starts here. The
    fix, N(0, 1 / n_in), is :func:`lecun_normal`.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1 (``network.py``) and ch. 3 ("Weight
    initialization").
    """
    return normal(1.0)


def uniform(scale: float = 1e-2) -> Initializer:
    """Independent U[-scale, scale] entries (variance scale^2 / 3).

    Departure from ``jax.nn.initializers.uniform``, which samples U[0, scale): the symmetric interval is the one the
    classic material uses for weights.

    Args:
      scale: half-width of the interval, >= 0.
    Returns:
      an initializer ``(key, shape, dtype) -> array``.
    """
    if not scale >= 0:
        raise ValueError(f"uniform: expected scale >= 0, got {scale!r}")

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, _shape(shape, "uniform"), dtype, -scale, scale)
    return init


def fans(shape: Sequence[int], in_axis: int = -2, out_axis: int = -1,
         batch_axis: Sequence[int] = ()) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape ``shape`` (see the module docstring for the rule).

    Example:
      >>> fans((3, 3, 16, 32))  # (3 * 3 * 16, 3 * 3 * 32)
      (144, 288)
    """
    shape = _shape(shape, "fans")
    if len(shape) < 1:
        raise ValueError(f"fans: a weight needs at least one dimension, got shape {shape}")
    if len(shape) == 1:
        return shape[0], shape[0]
    nd = len(shape)
    for name, ax in (("in_axis", in_axis), ("out_axis", out_axis), *(("batch_axis", b) for b in batch_axis)):
        if not -nd <= ax < nd:
            raise ValueError(f"fans: {name}={ax} is out of range for a weight of shape {shape} (rank {nd})")
    in_axis, out_axis = in_axis % nd, out_axis % nd
    if in_axis == out_axis:
        raise ValueError(f"fans: in_axis and out_axis must differ, both are axis {in_axis} of shape {shape}")
    skip = {in_axis, out_axis} | {b % nd for b in batch_axis}
    receptive = math.prod(d for i, d in enumerate(shape) if i not in skip)
    return shape[in_axis] * receptive, shape[out_axis] * receptive


_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
# Standard deviation of N(0, 1) truncated to [-2, 2]: sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)).
_TRUNCATED_STD = 0.87962566103423978


def variance_scaling(scale: float, mode: str, distribution: str, in_axis: int = -2, out_axis: int = -1,
                     batch_axis: Sequence[int] = ()) -> Initializer:
    """Entries with variance ``scale / n``, n chosen by ``mode``.

    Var[W] = scale / n,  n = fan_in | fan_out | (fan_in + fan_out) / 2 (``mode``), with the fans of :func:`fans`.

    ``distribution``: ``"normal"``: W ~ N(0, scale / n); ``"uniform"``: W ~ U[-b, b], b = sqrt(3 scale / n);
    ``"truncated_normal"``: a normal truncated at two standard deviations, rescaled by 1 / 0.8796 so that the
    variance is still scale / n.

    Args:
      scale: positive multiplier of the variance.
      mode: one of ``"fan_in"``, ``"fan_out"``, ``"fan_avg"``.
      distribution: one of ``"truncated_normal"``, ``"normal"``, ``"uniform"``.
      in_axis, out_axis: axes of the input and output units (dense (d_in, d_out) and conv HWIO: -2, -1).
      batch_axis: axes that index independent weights (left out of the fans).
    Returns:
      an initializer ``(key, shape, dtype) -> array``.

    Example:
      >>> W = variance_scaling(2.0, "fan_in", "normal")(jax.random.key(0), (784, 30))  # He normal, Var = 2/784

    Reference: He, Zhang, Ren, Sun, "Delving deep into rectifiers", ICCV 2015, sec. 2.2 (the general rule).
    """
    if not scale > 0:
        raise ValueError(f"variance_scaling: expected scale > 0, got {scale!r}")
    checks.one_of("variance_scaling", _MODES, mode=mode)
    checks.one_of("variance_scaling", _DISTRIBUTIONS, distribution=distribution)

    def init(key, shape, dtype=jnp.float32):
        shape = _shape(shape, "variance_scaling")
        fan_in, fan_out = fans(shape, in_axis, out_axis, batch_axis)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(n, 1)
        if distribution == "normal":
            return (math.sqrt(variance) * jax.random.normal(key, shape, dtype)).astype(dtype)
        if distribution == "uniform":
            b = math.sqrt(3.0 * variance)
            return jax.random.uniform(key, shape, dtype, -b, b)
        std = math.sqrt(variance) / _TRUNCATED_STD
        return (std * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)).astype(dtype)
    return init


def glorot_normal(in_axis=-2, out_axis=-1, batch_axis=()) -> Initializer:
    """Glorot/Xavier normal: W ~ N(0, 2 / (fan_in + fan_out)).

    Not the lecture's "Xavier" (``randn(fan_in, fan_out) / sqrt(fan_in)``, Var = 1 / fan_in): that is
    :func:`lecun_normal`; see :func:`xavier_normal`.

    Reference: Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks",
    AISTATS 2010, eq. (12) (the variance compromise between forward and backward passes).
    """
    return variance_scaling(1.0, "fan_avg", "normal", in_axis, out_axis, batch_axis)


def glorot_uniform(in_axis=-2, out_axis=-1, batch_axis=()) -> Initializer:
    """Glorot/Xavier uniform: W ~ U[-b, b], b = sqrt(6 / (fan_in + fan_out)).

    Reference: Glorot & Bengio, AISTATS 2010, eq. (16) ("normalized initialization").
    """
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis)


def he_normal(in_axis=-2, out_axis=-1, batch_axis=()) -> Initializer:
    """He/Kaiming normal: W ~ N(0, 2 / fan_in), for ReLU units.

    Reference: He, Zhang, Ren, Sun, "Delving deep into rectifiers", ICCV 2015, eq. (10).
    """
    return variance_scaling(2.0, "fan_in", "normal", in_axis, out_axis, batch_axis)


def he_uniform(in_axis=-2, out_axis=-1, batch_axis=()) -> Initializer:
    """He/Kaiming uniform: W ~ U[-b, b], b = sqrt(6 / fan_in) (variance 2 / fan_in, He et al. 2015, eq. (10))."""
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis)


def lecun_normal(in_axis=-2, out_axis=-1, batch_axis=()) -> Initializer:
    """LeCun normal: W ~ N(0, 1 / fan_in) (Nielsen's improved initialization, ch. 3).

    Reference: LeCun, Bottou, Orr, Mueller, "Efficient BackProp", 1998, sec. 4.6, eq. (16).
    """
    return variance_scaling(1.0, "fan_in", "normal", in_axis, out_axis, batch_axis)


def lecun_uniform(in_axis=-2, out_axis=-1, batch_axis=()) -> Initializer:
    """LeCun uniform: W ~ U[-b, b], b = sqrt(3 / fan_in) (variance 1 / fan_in, LeCun et al. 1998, sec. 4.6)."""
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis)


def xavier_normal(in_axis=-2, out_axis=-1, batch_axis=()) -> Initializer:
    """Glorot's paper's normal scheme (``glorot_normal``): W ~ N(0, 2 / (fan_in + fan_out)).

    **Naming note.** Libraries call Glorot & Bengio's variance ``Var[W] = 2 / (fan_in + fan_out)`` "Xavier" (after
    Xavier Glorot), and so does fnn. Lecture notes (CS231n) often call ``W = randn(fan_in, fan_out) /
    sqrt(fan_in)``, i.e. ``Var[W] = 1 / fan_in``, "Xavier initialization": that is fnn's :func:`lecun_normal`.
    The two agree only when fan_in == fan_out.

    Example:
      >>> W = xavier_normal()(jax.random.key(0), (400, 100))    # Var = 2 / 500 = 0.004; lecun_normal: 1 / 400
      >>> round(float(W.var()), 4)
      0.004

    Reference: Glorot & Bengio, AISTATS 2010, eq. (12) ("normalized initialization", uniform there, eq. (16)).
    """
    return glorot_normal(in_axis, out_axis, batch_axis)


xavier_uniform = glorot_uniform
kaiming_normal, kaiming_uniform = he_normal, he_uniform


def orthogonal(scale: float = 1.0, column_axis: int = -1) -> Initializer:
    """A (semi-)orthogonal matrix times ``scale``: W = scale * Q.

    The weight is viewed as a matrix M of shape (r, c), c = ``shape[column_axis]``, r = the product of the other
    axes. Q comes from the QR decomposition A = QR of a Gaussian matrix, with the signs of Q's columns flipped by
    sign(diag R) so that Q is uniformly (Haar) distributed. If r >= c the columns are orthonormal (M^T M = scale^2 I);
    otherwise the rows are (M M^T = scale^2 I).

    Args:
      scale: multiplier (gain), > 0.
      column_axis: the axis holding the columns (the output units; default -1).
    Returns:
      an initializer ``(key, shape, dtype) -> array`` for shapes of rank >= 2.

    Reference: Saxe, McClelland, Ganguli, "Exact solutions to the nonlinear dynamics of learning in deep linear
    neural networks", ICLR 2014, sec. 3; Mezzadri, "How to generate random matrices from the classical compact
    groups", Notices of the AMS, 2007, sec. 5 (the sign correction).
    """
    if not scale > 0:
        raise ValueError(f"orthogonal: expected scale > 0, got {scale!r}")

    def init(key, shape, dtype=jnp.float32):
        shape = _shape(shape, "orthogonal")
        if len(shape) < 2:
            raise ValueError(f"orthogonal: expected a weight with at least 2 dimensions, got shape {shape}; "
                             f"use normal() or zeros for vectors")
        if not -len(shape) <= column_axis < len(shape):
            raise ValueError(f"orthogonal: column_axis={column_axis} is out of range for shape {shape}")
        axis = column_axis % len(shape)
        n_cols = shape[axis]
        n_rows = math.prod(shape) // max(n_cols, 1)
        work = jnp.promote_types(dtype, jnp.float32)  # QR in at least single precision
        a = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), work)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.where(jnp.diag(r) < 0, -1.0, 1.0).astype(work)[None, :]
        if n_rows < n_cols:
            q = q.T  # (n_rows, n_cols) with orthonormal rows
        other = shape[:axis] + shape[axis + 1:]
        return (scale * jnp.moveaxis(q.reshape(other + (n_cols,)), -1, axis)).astype(dtype)
    return init


def sparse(nonzero: int = 15, stddev: float = 1.0, in_axis: int = -2) -> Initializer:
    """Sparse initialization: each output unit gets exactly ``nonzero`` non-zero incoming weights.

    For each output unit j (a column of the (fan_in, fan_out) matrix), ``nonzero`` distinct inputs i are drawn
    uniformly without replacement and W[i, j] ~ N(0, stddev^2); all other W[i, j] = 0.

    Args:
      nonzero: number of incoming connections per unit, 1 <= nonzero <= fan_in (Martens uses 15).
      stddev: standard deviation of the non-zero weights, > 0.
      in_axis: the input axis of the 2-D weight (-2 for fnn's dense (d_in, d_out) kernels, 0 or -2 same thing).
    Returns:
      an initializer ``(key, shape, dtype) -> array`` for 2-D shapes.

    Reference: Martens, "Deep learning via Hessian-free optimization", ICML 2010, sec. 5 ("sparse initialization").
    """
    if not (isinstance(nonzero, int) and nonzero >= 1):
        raise ValueError(f"sparse: expected nonzero >= 1 incoming connections per unit, got {nonzero!r}")
    if not stddev > 0:
        raise ValueError(f"sparse: expected stddev > 0, got {stddev!r}")
    checks.one_of("sparse", (-2, -1, 0, 1), fix="in_axis is an axis of the 2-D weight.", in_axis=in_axis)

    def init(key, shape, dtype=jnp.float32):
        shape = _shape(shape, "sparse")
        if len(shape) != 2:
            raise ValueError(f"sparse: expected a 2-D (fan_in, fan_out) weight, got shape {shape}")
        fan_in, fan_out = shape[in_axis], shape[1 - in_axis % 2]
        if nonzero > fan_in:
            raise ValueError(f"sparse: {nonzero} non-zero weights per unit requested but the layer has only "
                             f"{fan_in} inputs; pass nonzero <= {fan_in}")
        k_perm, k_val = jax.random.split(key)
        # For each output unit, the `nonzero` inputs with the largest of fan_in i.i.d. uniform keys: a uniformly
        # random subset of size `nonzero`, drawn without replacement.
        _, rows = jax.lax.top_k(jax.random.uniform(k_perm, (fan_out, fan_in)), nonzero)  # (fan_out, nonzero)
        cols = jnp.broadcast_to(jnp.arange(fan_out)[:, None], rows.shape)
        vals = stddev * jax.random.normal(k_val, rows.shape, dtype)
        w = jnp.zeros((fan_in, fan_out), dtype).at[rows, cols].set(vals)
        return w if in_axis % 2 == 0 else w.T
    return init
