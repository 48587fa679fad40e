"""Convolution layers: N-D ``GeneralConv`` and ``GeneralConvTranspose`` and their 1-D/2-D/3-D shorthands.

Layers follow the contract of :mod:`fnn.layers` (``init(key, input_shape) -> (output_shape, params)``,
``apply(params, inputs, **kwargs) -> outputs``); params are ``ConvParams(W, b)``, or ``ConvParams(W, None)`` for a
layer built with ``use_bias=False`` (every constructor here takes it).

Dimension numbers name the axes of the input, the kernel and the output with one letter each, as ``lax`` does:
``("NHWC", "HWIO", "NHWC")`` is a batch of images with channels last and an ``(h, w, c_in, c_out)`` kernel.
``N`` = batch, ``C`` = channels, ``I``/``O`` = input/output channels of the kernel, any other letter = a spatial
axis. Padding is ``"VALID"`` (no padding), ``"SAME"`` (output size ceil(n / s)), ``"SAME_LOWER"``, or explicit
``(low, high)`` pairs, one per spatial axis. The forward convolutions run through :func:`fnn.layers.conv_grad.conv`
(XLA's path with ``impl="auto"``; see its module for the matrix-product weight gradient).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from fnn import initializers as ini
from fnn.layers.base import Layer
from fnn.layers.conv_grad import conv

__all__ = [
    "ConvParams", "GeneralConv", "Conv", "Conv1D", "Conv3D",
    "GeneralConvTranspose", "ConvTranspose", "Conv1DTranspose",
]

_PADDINGS = ("VALID", "SAME", "SAME_LOWER")


class ConvParams(NamedTuple):
    W: jax.Array  # kernel, axes ordered as the kernel spec (e.g. HWIO: (h, w, c_in, c_out))
    b: jax.Array | None  # bias, broadcasting against the output (e.g. NHWC: (1, 1, 1, c_out)); None: use_bias=False


def positive_ints(name: str, what: str, values, n: int | None = None) -> tuple[int, ...]:
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{name}: expected {what} as a tuple of positive ints, got {values!r}") from None
    if not values or any(not (isinstance(v, int) and v >= 1) for v in values):
        raise ValueError(f"{name}: expected {what} as a tuple of positive ints, got {values!r}")
    if n is not None and len(values) != n:
        raise ValueError(f"{name}: expected {what} with {n} entries (one per spatial axis), got {values!r}")
    return values


def check_padding(name: str, padding, n: int):
    """Validate a padding argument: one of ``VALID``/``SAME``/``SAME_LOWER`` or ``n`` ``(low, high)`` int pairs."""
    if isinstance(padding, str):
        if padding.upper() not in _PADDINGS:
            raise ValueError(f"{name}: expected padding in {_PADDINGS} or (low, high) pairs, got {padding!r}")
        return padding.upper()
    try:
        pairs = tuple((int(lo), int(hi)) for lo, hi in padding)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected padding in {_PADDINGS} or (low, high) pairs, got {padding!r}") from None
    if len(pairs) != n or any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise ValueError(f"{name}: expected {n} non-negative (low, high) padding pairs, got {padding!r}")
    return pairs


def _check_specs(name: str, dimension_numbers, n: int) -> tuple[str, str, str]:
    try:
        lhs, rhs, out = (str(s) for s in dimension_numbers)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected dimension_numbers as three strings (input, kernel, output), e.g. "
                         f"('NHWC', 'HWIO', 'NHWC'), got {dimension_numbers!r}") from None
    ok = (len(lhs) == len(rhs) == len(out) == n + 2
          and all(s.count(c) == 1 for s in (lhs, out) for c in "NC")
          and all(rhs.count(c) == 1 for c in "IO")
          and all(len(set(s)) == len(s) for s in (lhs, rhs, out)))
    if not ok:
        raise ValueError(f"{name}: dimension_numbers {dimension_numbers!r} do not describe a {n}-D convolution: "
                         f"expected three strings of length {n + 2}, input/output with one 'N' and one 'C', "
                         f"kernel with one 'I' and one 'O', e.g. ('NHWC', 'HWIO', 'NHWC') for 2-D")
    return lhs, rhs, out


def _batch1(shape, lhs: str) -> tuple[int, ...]:
    """The shape with an unknown batch size (-1 or None) replaced by 1, for lax's shape helpers."""
    n = lhs.index("N")
    return tuple(1 if i == n and d in (-1, None) else int(d) for i, d in enumerate(shape))


def _conv_layer(name: str, transpose: bool, dimension_numbers, out_chan, filter_shape, strides, padding,
                W_init, b_init, use_bias) -> Layer:
    if not (isinstance(out_chan, int) and out_chan >= 1):
        raise ValueError(f"{name}: expected a positive number of output channels, got out_chan={out_chan!r}")
    if not isinstance(use_bias, bool):
        raise ValueError(f"{name}: expected use_bias True or False, got {use_bias!r}")
    filter_shape = positive_ints(name, "filter_shape", filter_shape)
    n = len(filter_shape)
    lhs, rhs, out = _check_specs(name, dimension_numbers, n)
    strides = positive_ints(name, "strides", strides, n) if strides is not None else (1,) * n
    padding = check_padding(name, padding, n)
    W_init = W_init or ini.glorot_normal(rhs.index("I"), rhs.index("O"))
    shape_fn = lax.conv_transpose_shape_tuple if transpose else lax.conv_general_shape_tuple

    def init(key, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != len(lhs):
            raise ValueError(f"{name}: expected an input shape of rank {len(lhs)} ({lhs}), got {input_shape}")
        c_in = input_shape[lhs.index("C")]
        if c_in in (-1, None):
            raise ValueError(f"{name}: the channel axis 'C' of the input shape must be known, got {input_shape}")
        spatial = iter(filter_shape)
        kernel_shape = tuple(out_chan if c == "O" else c_in if c == "I" else next(spatial) for c in rhs)
        out_shape = shape_fn(_batch1(input_shape, lhs), kernel_shape, strides, padding, (lhs, rhs, out))
        out_shape = [int(d) for d in out_shape]
        spatial_out = [d for d, c in zip(out_shape, out) if c not in "NC"]
        if any(d < 1 for d in spatial_out):
            raise ValueError(f"{name}: filter_shape {filter_shape} is larger than the (padded) input "
                             f"{input_shape} ({lhs}) with padding {padding!r}; use a smaller filter or padding='SAME'")
        out_shape[out.index("N")] = input_shape[lhs.index("N")]
        k1, k2 = jax.random.split(key)
        bias_shape = tuple(out_chan if c == "C" else 1 for c in out)
        return tuple(out_shape), ConvParams(W_init(k1, kernel_shape), b_init(k2, bias_shape) if use_bias else None)

    def apply(params, inputs, **kwargs):
        W, b = params
        if inputs.ndim != len(lhs):
            raise ValueError(f"{name}: expected inputs of rank {len(lhs)} ({lhs}), got shape {inputs.shape}; "
                             f"add the missing batch/channel axis (e.g. x[..., None]) or pick the matching layer")
        if inputs.shape[lhs.index("C")] != W.shape[rhs.index("I")]:
            raise ValueError(f"{name}: expected {W.shape[rhs.index('I')]} input channels on axis "
                             f"{lhs.index('C')} ({lhs}), got shape {inputs.shape}")
        if not jnp.issubdtype(inputs.dtype, jnp.floating):
            raise TypeError(f"{name}: expected floating-point inputs, got dtype {inputs.dtype}; convert images "
                            f"first, e.g. X.astype(np.float32) / 255 (or standardise them: fnn.data.fit_standardizer)")
        if transpose:
            y = lax.conv_transpose(inputs, W, strides, padding, dimension_numbers=(lhs, rhs, out))
        else:
            y = conv(inputs, W, strides, padding, dimension_numbers=(lhs, rhs, out))
        return y if b is None else y + b

    return Layer(init, apply, kind=name, keywords=())


def GeneralConv(dimension_numbers: Sequence[str], out_chan: int, filter_shape: Sequence[int],
                strides: Sequence[int] | None = None, padding="VALID", W_init: Callable | None = None,
                b_init: Callable = ini.normal(1e-6), use_bias: bool = True) -> Layer:
    """N-D convolution (cross-correlation, as in every deep-learning library): ``y = x * W + b``.

    For NHWC input and HWIO kernel, with stride s and the input padded as ``padding`` says:

        y[n, i, j, o] = sum_{di, dj, c} x[n, s_h i + di, s_w j + dj, c] W[di, dj, c, o] + b[o]

    Output size per spatial axis: VALID ``floor((n - k) / s) + 1``; SAME ``ceil(n / s)``.

    Args:
      dimension_numbers: ``(input_spec, kernel_spec, output_spec)``, e.g. ``("NHWC", "HWIO", "NHWC")``.
      out_chan: number of output channels (filters), >= 1.
      filter_shape: spatial size of the kernel, one int per spatial axis, e.g. ``(3, 3)``.
      strides: one positive int per spatial axis (default all 1).
      padding: ``"VALID"``, ``"SAME"``, ``"SAME_LOWER"`` or ``(low, high)`` pairs.
      W_init: kernel initializer (default Glorot normal with fans over the ``I`` and ``O`` axes).
      b_init: bias initializer (default N(0, 1e-12), as stax).
      use_bias: False drops b (``y = x * W``; ``b_init`` unused), e.g. before a ``BatchNorm``, whose shift beta
        makes a bias redundant.

    Returns:
      ``Layer``; params ``ConvParams(W, b)``: W shaped like ``kernel_spec``, b broadcasting against the output
      (NHWC: ``(1, 1, 1, out_chan)``); ``ConvParams(W, None)`` with ``use_bias=False`` (the tree's one leaf is W).

    Example:
      >>> layer = GeneralConv(("NCHW", "OIHW", "NCHW"), 8, (3, 3))
      >>> out_shape, params = layer.init(jax.random.key(0), (-1, 1, 28, 28))
      >>> out_shape
      (-1, 8, 26, 26)

    Reference: LeCun et al., "Gradient-based learning applied to document recognition", Proc. IEEE 1998, sec. II.
    """
    return _conv_layer("GeneralConv", False, dimension_numbers, out_chan, filter_shape, strides, padding,
                       W_init, b_init, use_bias)


def Conv(out_chan: int, filter_shape: Sequence[int], strides=None, padding="VALID", W_init=None,
         b_init=ini.normal(1e-6), use_bias=True) -> Layer:
    """2-D convolution on NHWC images with an HWIO kernel: ``GeneralConv(("NHWC", "HWIO", "NHWC"), ...)``.

    Shapes: x (n, h, w, c_in), W (k_h, k_w, c_in, out_chan), b (1, 1, 1, out_chan), y (n, h', w', out_chan).
    See :func:`GeneralConv` for the formula and the arguments.

    Example:
      >>> from fnn.layers import serial, Relu, MaxPool, Flatten, Dense
      >>> model = serial(Conv(32, (3, 3), padding="SAME"), Relu, MaxPool((2, 2), (2, 2)), Flatten, Dense(10))
      >>> out_shape, params = model.init(jax.random.key(0), (-1, 28, 28, 1))
      >>> out_shape
      (-1, 10)
    """
    return _conv_layer("Conv", False, ("NHWC", "HWIO", "NHWC"), out_chan, filter_shape, strides, padding,
                       W_init, b_init, use_bias)


def Conv1D(out_chan: int, filter_shape: Sequence[int], strides=None, padding="VALID", W_init=None,
           b_init=ini.normal(1e-6), use_bias=True) -> Layer:
    """1-D convolution on (n, length, c_in) sequences with an (k, c_in, out_chan) kernel (specs NHC, HIO, NHC).

    ``y[n, i, o] = sum_{d, c} x[n, s i + d, c] W[d, c, o] + b[o]``. Not in stax (an fnn addition).
    """
    return _conv_layer("Conv1D", False, ("NHC", "HIO", "NHC"), out_chan, filter_shape, strides, padding,
                       W_init, b_init, use_bias)


def Conv3D(out_chan: int, filter_shape: Sequence[int], strides=None, padding="VALID", W_init=None,
           b_init=ini.normal(1e-6), use_bias=True) -> Layer:
    """3-D convolution on (n, d, h, w, c_in) volumes with a DHWIO kernel (specs NDHWC, DHWIO, NDHWC).

    ``y[n, i, j, l, o] = sum_{di, dj, dl, c} x[n, s i + di, s j + dj, s l + dl, c] W[di, dj, dl, c, o] + b[o]``.
    Not in stax (an fnn addition).
    """
    return _conv_layer("Conv3D", False, ("NDHWC", "DHWIO", "NDHWC"), out_chan, filter_shape, strides, padding,
                       W_init, b_init, use_bias)


def GeneralConvTranspose(dimension_numbers: Sequence[str], out_chan: int, filter_shape: Sequence[int],
                         strides: Sequence[int] | None = None, padding="VALID", W_init: Callable | None = None,
                         b_init: Callable = ini.normal(1e-6), use_bias: bool = True) -> Layer:
    """N-D transposed ("fractionally strided") convolution, the usual upsampling layer of decoders.

    Computed as ``lax.conv_transpose`` does (and stax, whose kernels therefore load unchanged): insert ``s - 1``
    zeros between input entries, pad by ``k - 1`` (VALID) and cross-correlate with ``W``. Written as a scatter
    for one spatial axis (VALID): every input entry adds a copy of the *flipped* kernel to the output,

        y[n, s i + m, o] += sum_c x[n, i, c] W[k - 1 - m, c, o]    (m = 0 .. k-1),   plus b[o],

    so the output size is ``(n - 1) s + max(k, s)`` (VALID; when s > k the last s - k entries get only the bias)
    or ``n s`` (SAME). With the kernel flipped and its I/O axes
    swapped, this is the gradient (vector-Jacobian product) of :func:`GeneralConv` with respect to its input.

    Args and Returns: as :func:`GeneralConv` (``out_chan`` is the number of output channels).

    Reference: Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016, sec. 4.
    """
    return _conv_layer("GeneralConvTranspose", True, dimension_numbers, out_chan, filter_shape, strides, padding,
                       W_init, b_init, use_bias)


def ConvTranspose(out_chan: int, filter_shape: Sequence[int], strides=None, padding="VALID", W_init=None,
                  b_init=ini.normal(1e-6), use_bias=True) -> Layer:
    """2-D transposed convolution on NHWC images with an HWIO kernel; see :func:`GeneralConvTranspose`.

    Shapes: x (n, h, w, c_in), W (k_h, k_w, c_in, out_chan), y (n, h', w', out_chan) with
    h' = (h - 1) s_h + max(k_h, s_h) for VALID padding (usually k_h >= s_h: (h - 1) s_h + k_h), h' = h s_h for SAME.
    """
    return _conv_layer("ConvTranspose", True, ("NHWC", "HWIO", "NHWC"), out_chan, filter_shape, strides, padding,
                       W_init, b_init, use_bias)


def Conv1DTranspose(out_chan: int, filter_shape: Sequence[int], strides=None, padding="VALID", W_init=None,
                    b_init=ini.normal(1e-6), use_bias=True) -> Layer:
    """1-D transposed convolution on (n, length, c_in) sequences (specs NHC, HIO, NHC).

    Shapes: x (n, l, c_in), W (k, c_in, out_chan), y (n, (l - 1) s + max(k, s), out_chan) with VALID padding,
    (n, l s, out_chan) with SAME.
    See :func:`GeneralConvTranspose` for the formula.
    """
    return _conv_layer("Conv1DTranspose", True, ("NHC", "HIO", "NHC"), out_chan, filter_shape, strides, padding,
                       W_init, b_init, use_bias)
