"""Pooling layers: MaxPool, AvgPool, SumPool over a sliding window; GlobalAvgPool, GlobalMaxPool over all space.

Layers follow the contract of :mod:`fnn.layers`; pooling layers have no params (``()``).

Axes: by default the input is ``(N, spatial..., C)`` (batch first, channels last). ``spec=`` names the axes with
one letter each, as stax does: ``"NHWC"`` (the default for 2-D windows), ``"NCHW"``, ``"NHC"``, ...; only the
positions of ``N`` and ``C`` matter, every other letter is a spatial axis, in order, matching ``window_shape``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn.layers import pool_grad
from fnn.layers.base import Layer
from fnn.layers.conv import check_padding, positive_ints

__all__ = ["MaxPool", "AvgPool", "SumPool", "GlobalAvgPool", "GlobalMaxPool"]


def _non_spatial(name: str, spec: str | None, ndim: int) -> tuple[int, int]:
    """Positions of the batch and channel axes for an input of rank ``ndim``."""
    if spec is None:
        return 0, ndim - 1
    if not (isinstance(spec, str) and len(spec) == ndim and spec.count("N") == 1 and spec.count("C") == 1
            and len(set(spec)) == ndim):
        raise ValueError(f"{name}: expected spec as a string of {ndim} distinct letters with one 'N' and one 'C' "
                         f"(e.g. 'NHWC' or 'NCHW'), got {spec!r}")
    return spec.index("N"), spec.index("C")


def _full(values: tuple[int, ...], axes: tuple[int, int]) -> tuple[int, ...]:
    """Insert 1 at the batch and channel positions: spatial window (2, 2) -> (1, 2, 2, 1) for NHWC."""
    out = list(values)
    for i in sorted(axes):
        out.insert(i, 1)
    return tuple(out)


def _pool(name: str, reducer: Callable, init_val: float, average: bool, formula: str):
    def PoolingLayer(window_shape: Sequence[int], strides: Sequence[int] | None = None, padding="VALID",
                     spec: str | None = None, impl: str = "auto") -> Layer:
        pool_grad.use_fast_pooling(impl)   # checks impl early
        window = positive_ints(name, "window_shape", window_shape)
        n = len(window)
        stride = positive_ints(name, "strides", strides, n) if strides is not None else (1,) * n
        pad = check_padding(name, padding, n)
        axes = _non_spatial(name, spec, n + 2)
        full_window, full_strides = _full(window, axes), _full(stride, axes)
        full_pad = pad if isinstance(pad, str) else tuple(_full_pairs(pad, axes))
        full_pad_key = full_pad if isinstance(full_pad, str) else tuple(map(tuple, full_pad))  # hashable

        def check_rank(shape, what):
            if len(shape) != n + 2:
                layout = spec or {1: "NHC", 2: "NHWC", 3: "NDHWC"}.get(n, "N...C")
                raise ValueError(f"{name}: expected {what} of rank {n + 2} ({layout}) for a {n}-D window "
                                 f"{window}, got shape {tuple(shape)}")

        def init(key, input_shape):
            input_shape = tuple(input_shape)
            check_rank(input_shape, "an input shape")
            batch = axes[0]
            shape1 = tuple(1 if i == batch and d in (-1, None) else int(d) for i, d in enumerate(input_shape))
            pads = lax.padtype_to_pads(shape1, full_window, full_strides, full_pad) if isinstance(full_pad, str) \
                else full_pad
            out = [(d + lo + hi - w) // s + 1 for d, w, s, (lo, hi) in zip(shape1, full_window, full_strides, pads)]
            if any(o < 1 for o in out):
                raise ValueError(f"{name}: window {window} is larger than the (padded) input {input_shape} "
                                 f"with padding {padding!r}; use a smaller window or padding='SAME'")
            out[batch] = input_shape[batch]
            return tuple(out), ()

        def apply(params, inputs, **kwargs):
            check_rank(inputs.shape, "inputs")
            if pool_grad.use_fast_pooling(impl) and jnp.issubdtype(inputs.dtype, jnp.floating):
                # Same values as below, a faster derivative on the CPU (fnn.layers.pool_grad, issue 17).
                fast = pool_grad.max_pool if reducer is lax.max else pool_grad.sum_pool
                y = fast(inputs, full_window, full_strides, full_pad_key)
            else:
                # A NumPy constant as the initial value lets lax recognize the max/add monoid, whose reduce_window
                # is differentiable; a jax array (a tracer under jit) would select the generic, non-differentiable
                # path.
                y = lax.reduce_window(inputs, np.asarray(init_val, inputs.dtype), reducer, full_window,
                                      full_strides, full_pad)
            if not average:
                return y
            # Divide by the number of real (non-padding) entries in each window.
            spatial = tuple(d for i, d in enumerate(inputs.shape) if i not in axes)
            count = lax.reduce_window(jnp.ones(spatial, inputs.dtype), np.asarray(0, inputs.dtype), lax.add,
                                      window, stride, pad)
            return y / jnp.expand_dims(count, sorted(axes))

        return Layer(init, apply, kind=name, keywords=())

    PoolingLayer.__name__ = PoolingLayer.__qualname__ = name
    PoolingLayer.__doc__ = f"""{name} over a sliding window: {formula}

    For an (n, h, w, c) input, window (k_h, k_w) and strides (s_h, s_w), the window at output (i, j) covers rows
    s_h i .. s_h i + k_h - 1 and columns s_w j .. s_w j + k_w - 1, separately for each example and channel.
    Output size per spatial axis: VALID ``floor((n - k) / s) + 1``; SAME ``ceil(n / s)`` (the input is padded,
    padding never contributes to the result{"; the average divides by the number of real entries" if average
    else ""}).

    Args:
      window_shape: one positive int per spatial axis, e.g. ``(2, 2)``.
      strides: one positive int per spatial axis (default all 1, as stax; pass ``window_shape`` for the
        non-overlapping pooling of LeNet-style networks).
      padding: ``"VALID"``, ``"SAME"``, ``"SAME_LOWER"`` or ``(low, high)`` pairs.
      spec: axis letters of the input (``"NHWC"``, ``"NCHW"``, ...); default batch first, channels last.
      impl: the derivative: ``"auto"`` (``fnn.layers.pool_grad``'s rewritten one on the CPU, XLA's
        ``reduce_window`` rules elsewhere), ``"fast"`` or ``"xla"``. Outputs are the same either way.

    Returns:
      ``Layer`` with params ``()``; (n, h, w, c) -> (n, h', w', c).

    Example:
      >>> import jax
      >>> {name}((2, 2), strides=(2, 2)).init(jax.random.key(0), (-1, 28, 28, 8))[0]
      (-1, 14, 14, 8)

    Reference: Zhou & Chellappa 1988; Scherer, Mueller & Behnke, "Evaluation of pooling operations in
    convolutional architectures for object recognition", ICANN 2010.
    """
    return PoolingLayer


def _full_pairs(pairs, axes):
    out = list(pairs)
    for i in sorted(axes):
        out.insert(i, (0, 0))
    return out


MaxPool = _pool("MaxPool", lax.max, -np.inf, False, "``y[n, i, j, c] = max over the window of x[n, ., ., c]``.")
SumPool = _pool("SumPool", lax.add, 0.0, False, "``y[n, i, j, c] = sum over the window of x[n, ., ., c]``.")
AvgPool = _pool("AvgPool", lax.add, 0.0, True,
                "``y[n, i, j, c] = (1 / |window|) sum over the window of x[n, ., ., c]``.")


def _global(name: str, reduce: Callable, formula: str):
    def GlobalPoolingLayer(spec: str | None = None) -> Layer:
        if spec is not None:
            _non_spatial(name, spec, len(spec) if isinstance(spec, str) else -1)

        def axes_of(ndim):
            if ndim < 3:
                raise ValueError(f"{name}: expected inputs of rank >= 3 (N, spatial..., C), got rank {ndim}")
            n_ax, c_ax = _non_spatial(name, spec, ndim)
            return n_ax, c_ax, tuple(i for i in range(ndim) if i not in (n_ax, c_ax))

        def init(key, input_shape):
            try:
                n_ax, c_ax, _ = axes_of(len(input_shape))
            except ValueError as e:
                raise ValueError(f"{e}; got input shape {tuple(input_shape)}") from None
            return (input_shape[n_ax], input_shape[c_ax]), ()

        def apply(params, inputs, **kwargs):
            try:
                n_ax, c_ax, spatial = axes_of(inputs.ndim)
            except ValueError as e:
                raise ValueError(f"{e}; got shape {inputs.shape}") from None
            y = reduce(inputs, axis=spatial)  # the batch and channel axes remain, in their input order
            return y if n_ax < c_ax else y.T

        return Layer(init, apply, kind=name, keywords=())

    GlobalPoolingLayer.__name__ = GlobalPoolingLayer.__qualname__ = name
    GlobalPoolingLayer.__doc__ = f"""{name}: reduce every spatial axis, {formula}

    Shapes: (n, spatial..., c) -> (n, c) (with ``spec``, e.g. ``"NCHW"``, the input axes are read from the spec;
    the output is always (n, c)). Not in stax (an fnn addition); the usual head before the classifier of an
    all-convolutional network.

    Args:
      spec: axis letters of the input; default batch first, channels last.

    Returns:
      ``Layer`` with params ``()``.

    Example:
      >>> import jax
      >>> {name}().init(jax.random.key(0), (-1, 7, 7, 64))[0]
      (-1, 64)

    Reference: Lin, Chen & Yan, "Network in network", ICLR 2014, sec. 3.2.
    """
    return GlobalPoolingLayer


GlobalAvgPool = _global("GlobalAvgPool", jnp.mean, "``y[n, c] = mean_{i, j} x[n, i, j, c]``.")
GlobalMaxPool = _global("GlobalMaxPool", jnp.max, "``y[n, c] = max_{i, j} x[n, i, j, c]``.")
