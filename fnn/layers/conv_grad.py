"""A convolution whose weight gradient can be built from matrix products instead of XLA's backward convolution.

The weight gradient of a convolution (``dW``) is a sum of matrix products, one per kernel tap. For a kernel tap
``t = (t_1, ..., t_n)`` let ``X_t`` be the input window that tap sees, flattened to ``(M, c_in)`` with
``M = batch * prod(output spatial size)``:

    X_t[(b, i), c] = x_pad[b, s_1 i_1 + r_1 t_1, ..., s_n i_n + r_n t_n, c]     (s = strides, r = rhs dilation)

Then the convolution and its weight gradient are

    y = sum_t X_t @ W[t]             dW[t] = X_t^T @ dy    ("taps": one (c_in, M) @ (M, c_out) product per tap)

or, with the ``T`` windows side by side, ``P = [X_1 ... X_T]`` of shape ``(M, T c_in)`` ("im2col"):

    y = P @ W.reshape(T c_in, c_out)          dW = (P^T @ dy).reshape(W.shape).

:func:`conv` is a ``jax.custom_jvp`` whose tangent is ``conv_xla(dx, W) + sum_t X_t @ dW[t]``: the primal output and
the input part stay XLA's (forward 1x, input gradient = XLA's transposed convolution), and reverse mode transposes
the second term into the tap (or im2col) products above. The rule is made of ordinary ``lax`` ops, so forward mode
(``jax.jvp``, ``jax.jacfwd``), ``vmap``, ``jit``, float64 and second derivatives (``jax.hessian``) all work; in
forward mode the ``dW`` term costs T matrix products instead of one XLA convolution.

Speed (``benchmarks/bench_conv_ops.py``, docs/layers.md): on the 2-core CPU measured here XLA's weight gradient was
as fast or faster than both matrix forms, so ``impl="auto"`` (what the conv layers use) keeps XLA's path.

Routed to plain ``lax.conv_general_dilated`` (XLA's gradient): ``impl="xla"`` and ``impl="auto"`` (on every backend,
as measured; see :func:`conv_weight_grad_impl`), ``lhs_dilation`` other than 1 (transposed convolutions),
``feature_group_count`` > 1, non-float inputs. ``batch_group_count`` is not accepted.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

__all__ = ["conv", "conv_weight_grad_impl", "IMPLS"]

IMPLS = ("auto", "xla", "taps", "im2col")


def conv_weight_grad_impl(impl: str, c_in: int, *, backend: str | None = None) -> str:
    """The weight-gradient path :func:`conv` takes: ``"xla"``, ``"taps"`` or ``"im2col"``.

    ``"auto"`` gives ``"xla"`` on every backend, the CPU included: measured with ``benchmarks/bench_conv_ops.py``
    (2-core CPU, batch 128, medians of 7 interleaved runs), neither matrix-product form beat XLA's weight gradient
    by more than the noise on any of five layers, and both were 3.5-4.5x slower on the 14x14 32->64 5x5 layer (the
    copies of the T shifted windows cost more than the products). ``"taps"`` and ``"im2col"`` stay selectable
    for machines where they measure faster; ``backend`` is accepted so that a per-backend rule can be added here.

    Example:
      >>> conv_weight_grad_impl("auto", 32, backend="cpu"), conv_weight_grad_impl("taps", 1, backend="gpu")
      ('xla', 'taps')
    """
    if impl not in IMPLS:
        raise ValueError(f"conv: expected impl in {IMPLS}, got {impl!r}; 'auto' picks by backend and channels")
    del c_in, backend  # the measured rule does not depend on them (yet)
    return "xla" if impl == "auto" else impl


def _pads(padding, in_spatial, window, strides):
    if isinstance(padding, str):
        return tuple(tuple(p) for p in lax.padtype_to_pads(in_spatial, window, strides, padding))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _windows(x, k_shape, strides, pads, rhs_dilation):
    """The list of tap windows ``X_t`` of channels-last ``x`` (b, *spatial, c): each (b, *out_spatial, c)."""
    xp = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)])
    out = [(n - (k - 1) * r - 1) // s + 1 for n, k, r, s in zip(xp.shape[1:-1], k_shape, rhs_dilation, strides)]
    wins = []
    for tap in itertools.product(*(range(k) for k in k_shape)):
        start = [t * r for t, r in zip(tap, rhs_dilation)]
        limit = [a + (o - 1) * s + 1 for a, o, s in zip(start, out, strides)]
        wins.append(lax.slice(xp, (0, *start, 0), (xp.shape[0], *limit, xp.shape[-1]), (1, *strides, 1)))
    return wins


def _matmul_conv(x, W, strides, pads, rhs_dilation, impl):
    """``sum_t X_t @ W[t]`` on channels-last x (b, *s, c_in) and W (*k, c_in, c_out): linear in W."""
    k_shape, (c_in, c_out) = W.shape[:-2], W.shape[-2:]
    wins = _windows(x, k_shape, strides, pads, rhs_dilation)
    out_shape = (*wins[0].shape[:-1], c_out)
    m = math.prod(out_shape[:-1])
    if impl == "im2col":
        P = jnp.concatenate(wins, axis=-1).reshape(m, len(wins) * c_in)
        return (P @ W.reshape(len(wins) * c_in, c_out)).reshape(out_shape)
    Wt = W.reshape(len(wins), c_in, c_out)
    y = sum(w.reshape(m, c_in) @ Wt[t] for t, w in enumerate(wins))
    return y.reshape(out_shape)


def _perm(spec: str, first: str, last: str):
    """Axis order ``(first, spatial 0, spatial 1, ..., last)`` of a spec string from :func:`_spec`."""
    return (spec.index(first), *(spec.index(str(j)) for j in range(len(spec) - 2)), spec.index(last))


def _xla(x, W, strides, padding, rhs_dilation, dn):
    return lax.conv_general_dilated(x, W, strides, padding, rhs_dilation=rhs_dilation, dimension_numbers=dn)


@functools.lru_cache(maxsize=256)
def _make(strides, padding, rhs_dilation, dn, impl):
    """The custom_jvp op for one static configuration (cached: one Python function per layer shape, not per call)."""
    lhs, rhs, out = dn

    @jax.custom_jvp
    def f(x, W):
        return _xla(x, W, strides, padding, rhs_dilation, dn)

    def f_jvp(primals, tangents):
        x, W = primals
        dx, dW = tangents
        y = f(x, W)
        dy = None
        if not isinstance(dx, SymbolicZero):
            dy = _xla(dx, W, strides, padding, rhs_dilation, dn)
        if not isinstance(dW, SymbolicZero):
            xl = jnp.transpose(x, _perm(lhs, "N", "C"))
            Wl = jnp.transpose(dW, _perm(rhs, "O", "O")[1:-1] + (rhs.index("I"), rhs.index("O")))
            k = Wl.shape[:-2]
            pads = _pads(padding, xl.shape[1:-1], [(kk - 1) * r + 1 for kk, r in zip(k, rhs_dilation)], strides)
            yl = _matmul_conv(xl, Wl, strides, pads, rhs_dilation, impl)
            yw = jnp.transpose(yl, tuple(_perm(out, "N", "C").index(i) for i in range(len(out))))
            dy = yw if dy is None else dy + yw
        if dy is None:
            dy = jnp.zeros_like(y)
        return y, dy

    f.defjvp(f_jvp, symbolic_zeros=True)
    return f


def conv(x: jax.Array, W: jax.Array, strides: Sequence[int], padding, *, rhs_dilation: Sequence[int] | None = None,
         dimension_numbers=None, lhs_dilation: Sequence[int] | None = None, feature_group_count: int = 1,
         impl: str = "auto") -> jax.Array:
    """``lax.conv_general_dilated(x, W, ...)`` whose weight gradient may be computed as matrix products.

    Same arguments and output as ``lax.conv_general_dilated`` (cross-correlation; see the module docstring for the
    formulas ``y = sum_t X_t @ W[t]`` and ``dW[t] = X_t^T @ dy``). The forward pass and the input gradient are
    XLA's; the weight gradient is per :func:`conv_weight_grad_impl` (``impl="auto"``: XLA's, as measured fastest).

    Args:
      x: input, laid out as ``dimension_numbers[0]`` (default ``NC...``).
      W: kernel, laid out as ``dimension_numbers[1]`` (default ``OI...``).
      strides, padding, rhs_dilation, dimension_numbers, lhs_dilation, feature_group_count: as ``lax``.
        ``lhs_dilation`` != 1 or ``feature_group_count`` > 1 use ``lax.conv_general_dilated`` unchanged.
      impl: ``"auto"``, ``"xla"`` (plain lax), ``"taps"`` or ``"im2col"``.

    Returns:
      y, laid out as ``dimension_numbers[2]``.

    Example:
      >>> x, W = jnp.ones((2, 5, 5, 3)), jnp.ones((3, 3, 3, 4))
      >>> f = lambda W: conv(x, W, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), impl="taps").sum()
      >>> g = jax.grad(f)(W)
      >>> g.shape, float(g[1, 1, 0, 0])
      ((3, 3, 3, 4), 50.0)

    Reference: Chellapilla, Puri & Simard, "High performance convolutional neural networks for document
    processing", IWFHR 2006, sec. 2 (convolution unrolled into a matrix product).
    """
    n = x.ndim - 2
    strides = tuple(int(s) for s in strides)
    rhs_dilation = tuple(int(r) for r in rhs_dilation) if rhs_dilation is not None else (1,) * n
    dn = lax.conv_dimension_numbers(x.shape, W.shape, dimension_numbers)
    specs = (_spec(dn.lhs_spec, "NC"), _spec(dn.rhs_spec, "OI"), _spec(dn.out_spec, "NC"))
    plain = ((lhs_dilation is not None and any(d != 1 for d in lhs_dilation)) or feature_group_count != 1
             or not jnp.issubdtype(x.dtype, jnp.floating))
    c_in = x.shape[dn.lhs_spec[1]]
    path = "xla" if plain else conv_weight_grad_impl(impl, c_in)
    if path == "xla":
        return lax.conv_general_dilated(x, W, strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                                        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count)
    padding = padding.upper() if isinstance(padding, str) else tuple((int(lo), int(hi)) for lo, hi in padding)
    return _make(strides, padding, rhs_dilation, specs, path)(x, W)


def _spec(perm, letters: str) -> str:
    """lax's (batch/out, feature/in, spatial...) index permutation as a letter string, spatial axes named 0, 1, ..."""
    s = [""] * len(perm)
    s[perm[0]], s[perm[1]] = letters[0], letters[1]
    for j, p in enumerate(perm[2:]):
        s[p] = str(j)
    return "".join(s)
