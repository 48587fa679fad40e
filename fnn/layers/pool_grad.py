"""Max and sum pooling with a faster derivative on the CPU than XLA's ``reduce_window`` rules.

XLA differentiates ``lax.reduce_window`` max pooling with ``select_and_scatter_add``, which on the CPU runs tens of
times slower than the forward pass (``benchmarks/bench_pool_ops.py``, docs/layers.md). Here the primal stays XLA's
``reduce_window`` (bitwise the same outputs); only the derivative is rewritten, as a ``jax.custom_jvp`` whose
tangent is linear in ``dx``, so JAX transposes it for ``grad``/``vjp`` and ``jvp``/``jacfwd`` keep working:

    max:  dy[o] = dx[argsel_{k in window(o)} x[k]]          sum:  dy[o] = sum_{k in window(o)} dx[k]

``argsel`` is XLA's own selection rule, found by experiment with ``jax.vjp`` of ``lax.reduce_window`` (jax 0.10.2):
walk the window in row-major order, keep the current element while ``current >= next`` and move to ``next``
otherwise. So a tie goes to the FIRST maximum in window order, NaN hands the choice to the element after it, and
padding takes part as ``-inf`` entries (an all ``-inf`` window under SAME padding routes its gradient to the
padding, i.e. nowhere). Matching it makes our gradients equal to XLA's, ties included.

Two layouts of the windows:

* non-overlapping (``strides == window`` on every axis): pad, crop the leftover rows that no window covers, and
  reshape each spatial axis ``d -> (d / k, k)``; the window entries are then plain slices of one array and the
  transpose is a broadcast and a reshape;
* anything else (overlapping windows, ``strides > window``): one strided slice of the padded input per window
  offset; the transpose pads each slice back (interior padding) and adds them up.

Windows, strides and padding pairs are full rank here (``1`` on the batch and channel axes), as for
``lax.reduce_window``. The layers in :mod:`fnn.layers.pooling` take this path according to their ``impl=`` argument
(:func:`use_fast_pooling`; default ``"auto"``: only when ``jax.default_backend() == "cpu"`` at trace time; GPU/TPU
keep XLA's rules).
"""
from __future__ import annotations

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["max_pool", "sum_pool", "use_fast_pooling", "IMPLS"]

#: the pooling layers' ``impl=`` choices
IMPLS = ("auto", "fast", "xla")


def use_fast_pooling(impl: str = "auto", backend: str | None = None) -> bool:
    """Whether a pooling layer built with ``impl`` takes :func:`max_pool` / :func:`sum_pool`'s derivative.

    Args:
      impl: ``"auto"`` (the rewritten derivative on the CPU backend, XLA's rules elsewhere), ``"fast"`` (always
        the rewritten one) or ``"xla"`` (always XLA's ``reduce_window`` rules).
      backend: the backend to decide for; ``None``: ``jax.default_backend()`` (read at trace time).

    Example:
      >>> use_fast_pooling("auto", backend="gpu"), use_fast_pooling("auto", backend="cpu"), use_fast_pooling("xla")
      (False, True, False)
    """
    if impl not in IMPLS:
        raise ValueError(f"pooling: expected impl to be one of {IMPLS}, got {impl!r}; 'auto' picks the rewritten "
                         f"derivative on the CPU and XLA's elsewhere")
    if impl == "auto":
        return (jax.default_backend() if backend is None else backend) == "cpu"
    return impl == "fast"


def _geometry(shape, window, strides, padding):
    """Padding pairs, output shape, and whether the windows tile the (cropped) input without overlap."""
    pads = tuple(lax.padtype_to_pads(shape, window, strides, padding)) if isinstance(padding, str) \
        else tuple(tuple(p) for p in padding)
    out = tuple((d + lo + hi - k) // s + 1 for d, (lo, hi), k, s in zip(shape, pads, window, strides))
    return pads, out, all(k == s for k, s in zip(window, strides))


def _padded(x, fill, window, strides, padding):
    """``x`` padded with ``fill`` and cropped to the rows some window covers; the output shape; tiled or not."""
    pads, out, tiled = _geometry(x.shape, window, strides, padding)
    # Pad, then crop to the rows some window covers ((out - 1) * s + k), so negative high padding crops as well.
    cover = tuple((o - 1) * s + k for o, s, k in zip(out, strides, window))
    config = tuple((lo, c - d - lo, 0) for (lo, _), c, d in zip(pads, cover, x.shape))
    return lax.pad(x, jnp.asarray(fill, x.dtype), config), out, tiled


def _split(xp, out, window):
    """(..., o k, ...) -> (..., o, k, ...): tiled windows, the window entries on the odd axes."""
    return xp.reshape(tuple(itertools.chain.from_iterable(zip(out, window))))


def _windows(x, fill, window, strides, padding):
    """The entries of every window, one array of the output's shape per window offset, in row-major order."""
    xp, out, tiled = _padded(x, fill, window, strides, padding)
    offsets = list(itertools.product(*(range(k) for k in window)))
    if tiled:  # the offsets are plain indices of the window axes
        xr = _split(xp, out, window)
        return [lax.slice(xr, tuple(itertools.chain.from_iterable((0, j) for j in off)),
                          tuple(itertools.chain.from_iterable((o, j + 1) for o, j in zip(out, off)))).reshape(out)
                for off in offsets]
    return [lax.slice(xp, off, tuple(j + (o - 1) * s + 1 for j, o, s in zip(off, out, strides)), strides)
            for off in offsets]


def _select(xs):
    """Index of the entry XLA's select-and-scatter picks: keep the current one while ``current >= next``."""
    best, idx = xs[0], jnp.zeros(xs[0].shape, np.int32)
    for j, v in enumerate(xs[1:], 1):
        move = ~(best >= v)
        best, idx = jnp.where(move, v, best), jnp.where(move, j, idx)
    return idx


def _xla_max(x, window, strides, padding):
    return lax.reduce_window(x, np.asarray(-np.inf, x.dtype), lax.max, window, strides, padding)


def _xla_sum(x, window, strides, padding):
    return lax.reduce_window(x, np.asarray(0, x.dtype), lax.add, window, strides, padding)


@partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def max_pool(x, window, strides, padding):
    """Max pooling ``y[o] = max_{k in window(o)} x[k]``, the values of ``lax.reduce_window``, a faster derivative.

    The derivative routes ``dy[o]`` to the one entry XLA's select-and-scatter picks (the first maximum in
    window order, see the module notes), so gradients equal XLA's bit for bit, ties included.

    Args:
      x: float array of any rank, e.g. (n, h, w, c).
      window: tuple of ints, one per axis of ``x`` (``1`` on the batch and channel axes), e.g. (1, 2, 2, 1).
      strides: tuple of ints, one per axis.
      padding: ``"VALID"``, ``"SAME"``, ``"SAME_LOWER"`` or one ``(low, high)`` pair per axis (tuples).

    Returns:
      array of the pooled shape, e.g. (n, h', w', c).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([0., 0., 3., 1.]).reshape(1, 4, 1)
      >>> jax.grad(lambda x: max_pool(x, (1, 2, 1), (1, 2, 1), "VALID").sum())(x).ravel().tolist()
      [1.0, 0.0, 1.0, 0.0]

    Reference: XLA operation semantics, "SelectAndScatter" (openxla.org/xla/operation_semantics).
    """
    return _xla_max(x, window, strides, padding)


@max_pool.defjvp
def _max_pool_jvp(window, strides, padding, primals, tangents):
    (x,), (dx,) = primals, tangents
    idx = _select(_windows(x, -np.inf, window, strides, padding))
    dxp, out, tiled = _padded(dx, 0, window, strides, padding)
    if tiled:  # dy = sum over the window axes of one_hot(idx) * dx: its transpose is a broadcast and a reshape
        inner = tuple(range(1, 2 * len(window), 2))
        position = np.arange(int(np.prod(window)), dtype=np.int32).reshape(window)  # row-major window index
        hit = jnp.expand_dims(idx, inner) == np.expand_dims(position, tuple(range(0, 2 * len(window), 2)))
        dy = jnp.sum(jnp.where(hit, _split(dxp, out, window), 0), axis=inner)
    else:
        dxs = _windows(dx, 0, window, strides, padding)
        dy = sum(jnp.where(idx == j, d, 0) for j, d in enumerate(dxs))
    return _xla_max(x, window, strides, padding), dy


@partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def sum_pool(x, window, strides, padding):
    """Sum pooling ``y[o] = sum_{k in window(o)} x[k]``, the values of ``lax.reduce_window``, a faster derivative.

    Args:
      x: float array of any rank, e.g. (n, h, w, c).
      window, strides, padding: as :func:`max_pool` (full rank; padding entries count as 0).

    Returns:
      array of the pooled shape, e.g. (n, h', w', c).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.arange(5.).reshape(1, 5, 1)
      >>> jax.grad(lambda x: sum_pool(x, (1, 2, 1), (1, 2, 1), "VALID").sum())(x).ravel().tolist()
      [1.0, 1.0, 1.0, 1.0, 0.0]
    """
    return _xla_sum(x, window, strides, padding)


@sum_pool.defjvp
def _sum_pool_jvp(window, strides, padding, primals, tangents):
    (x,), (dx,) = primals, tangents
    if _geometry(x.shape, window, strides, padding)[2]:  # tiled: XLA's own rule measured faster (a broadcast)
        return _xla_sum(x, window, strides, padding), _xla_sum(dx, window, strides, padding)
    return _xla_sum(x, window, strides, padding), sum(_windows(dx, 0, window, strides, padding))
