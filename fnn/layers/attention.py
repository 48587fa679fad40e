"""Attention: scaled dot-product attention with masks and a multi-head attention layer.

Masks are booleans, True where a query may look at a key and False where it may not; a mask broadcasts against
the scores ``(..., T_q, T_k)``. Masked scores are replaced by the dtype's most negative number before the softmax
and their weights are then set to exactly zero, so a query whose keys are all masked gets all-zero weights and a
zero output (instead of the NaN of a softmax over -inf).

``MultiHeadAttention`` follows the layer contract of ``fnn/layers/base.py``. Its input is one array (self-attention) or
a list ``[queries, keys_and_values]`` / ``[queries, keys, values]`` (attention over another sequence, e.g. a
decoder attending over the encoder's states), with input shapes given the same way to ``init``. Its ``apply``
accepts ``mask=`` of shape (batch, T_k) (key padding, the same meaning as in ``fnn.layers.recurrent.RNN``) or
(batch, T_q, T_k) (any pattern; size-1 axes broadcast) and ``lengths=`` (batch,) for keys padded at the end.

Reference: Vaswani et al., "Attention is all you need", NeurIPS 2017, sec. 3.2 (eqs. (1) and the MultiHead
formula); Bahdanau, Cho & Bengio, ICLR 2015 and Luong, Pham & Manning, EMNLP 2015 for attention in seq2seq.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn import initializers as ini
from fnn.layers.base import Layer

__all__ = ["attention_weights", "dot_product_attention", "causal_mask", "MultiHeadAttention",
           "MultiHeadAttentionParams"]


def _check_qkv(where: str, q, k, v=None):
    if q.ndim < 2 or k.ndim < 2 or (v is not None and v.ndim < 2):
        shapes = (q.shape, k.shape) + (() if v is None else (v.shape,))
        raise ValueError(f"{where}: expected q, k, v of rank >= 2 (..., time, features), got shapes {shapes}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{where}: expected q and k with the same last dimension d_k, got q {q.shape} and "
                         f"k {k.shape}")
    if v is not None and v.shape[-2] != k.shape[-2]:
        raise ValueError(f"{where}: expected k and v with the same number of steps T_k, got k {k.shape} and "
                         f"v {v.shape}")


def attention_weights(q, k, mask=None):
    """The attention weights ``A = softmax(q k^T / sqrt(d_k))`` over the keys, with masked entries set to 0.

    Args:
      q: queries (..., T_q, d_k).
      k: keys (..., T_k, d_k).
      mask: optional booleans broadcastable to (..., T_q, T_k); False entries get weight 0.

    Returns:
      A (..., T_q, T_k); every row sums to 1 over its unmasked keys (a fully masked row is all zeros).

    Reference: Vaswani et al., "Attention is all you need", NeurIPS 2017, eq. (1).
    """
    q, k = jnp.asarray(q), jnp.asarray(k)
    _check_qkv("attention_weights", q, k)
    scores = jnp.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])
    if mask is None:
        return jax.nn.softmax(scores, axis=-1)
    mask = jnp.asarray(mask)
    try:
        shape = jnp.broadcast_shapes(mask.shape, scores.shape)
    except ValueError:
        shape = None
    if shape != scores.shape:
        raise ValueError(f"attention_weights: expected a mask broadcastable to the scores' shape (..., T_q, T_k) = "
                         f"{scores.shape}, got shape {mask.shape}")
    mask = jnp.broadcast_to(mask.astype(bool), scores.shape)
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    return jnp.where(mask, jax.nn.softmax(scores, axis=-1), 0.0)


def dot_product_attention(q, k, v, mask=None):
    """Scaled dot-product attention: ``softmax(q k^T / sqrt(d_k)) v`` (see :func:`attention_weights`).

    Args:
      q: queries (..., T_q, d_k).
      k: keys (..., T_k, d_k).
      v: values (..., T_k, d_v).
      mask: optional booleans broadcastable to (..., T_q, T_k), True where a query may attend to a key.

    Returns:
      (..., T_q, d_v): each query's weighted average of the values.

    Example:
      >>> q = k = v = jnp.ones((2, 5, 8))
      >>> dot_product_attention(q, k, v, mask=causal_mask(5)).shape
      (2, 5, 8)

    Reference: Vaswani et al., "Attention is all you need", NeurIPS 2017, eq. (1).
    """
    q, k, v = jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)
    _check_qkv("dot_product_attention", q, k, v)
    return jnp.einsum("...qk,...kd->...qd", attention_weights(q, k, mask), v)


def causal_mask(T_q: int, T_k: int | None = None) -> jax.Array:
    """Lower-triangular booleans (T_q, T_k): query i may attend to keys 0..i (no look-ahead)."""
    return jnp.tril(jnp.ones((T_q, T_q if T_k is None else T_k), bool))


class MultiHeadAttentionParams(NamedTuple):
    Wq: jax.Array  # (d_q, h, d_h) query projection, one (d_q, d_h) slice per head
    Wk: jax.Array  # (d_k, h, d_h)
    Wv: jax.Array  # (d_v, h, d_h)
    Wo: jax.Array  # (h, d_h, d_out) output projection of the concatenated heads
    bq: jax.Array  # (h, d_h)
    bk: jax.Array  # (h, d_h)
    bv: jax.Array  # (h, d_h)
    bo: jax.Array  # (d_out,)


def _split_inputs(where: str, inputs):
    if isinstance(inputs, (list, tuple)):
        if len(inputs) == 2:
            return inputs[0], inputs[1], inputs[1]
        if len(inputs) == 3:
            return tuple(inputs)
        raise ValueError(f"{where}: expected one input, [queries, keys_and_values] or [queries, keys, values], "
                         f"got a list of {len(inputs)}")
    return inputs, inputs, inputs


def _is_shape(s) -> bool:
    return isinstance(s, (tuple, list)) and all(d is None or isinstance(d, int) for d in s)


def MultiHeadAttention(num_heads: int, head_dim: int | None = None, out_dim: int | None = None,
                       causal: bool = False, W_init=ini.glorot_uniform(), b_init=ini.zeros) -> Layer:
    """Multi-head attention: h heads of :func:`dot_product_attention` over learned projections, concatenated and
    projected.

        Q_j = X_q Wq[:, j] + bq[j],  K_j = X_k Wk[:, j] + bk[j],  V_j = X_v Wv[:, j] + bv[j]     (j = 1..h)
        head_j = softmax(Q_j K_j^T / sqrt(d_h) + mask) V_j
        y = sum_j head_j Wo[j] + bo            (= concat(head_1..head_h) Wo.reshape(h d_h, d_out) + bo)

    Args:
      num_heads: h (> 0).
      head_dim: d_h (default d_q // h, which must then divide evenly).
      out_dim: d_out (default d_q, the query width, so the layer can sit in a residual block).
      causal: also mask keys after the query's position (decoder self-attention; ``causal_mask``).
      W_init, b_init: initializers; each projection is drawn as a 2-D (fan_in, fan_out) matrix then reshaped.

    Input: X (batch, T, d) for self-attention, or a list [X_q, X_kv] / [X_q, X_k, X_v] with X_q (batch, T_q, d_q),
    X_k (batch, T_k, d_k), X_v (batch, T_k, d_v). Output: (batch, T_q, d_out). Params:
    :class:`MultiHeadAttentionParams`.

    Example:
      >>> layer = MultiHeadAttention(4)                                     # self-attention, 4 heads
      >>> out_shape, params = layer.init(jax.random.key(0), (-1, 10, 32))
      >>> out_shape
      (-1, 10, 32)
      >>> layer.apply(params, jnp.ones((2, 10, 32)), lengths=jnp.array([10, 3])).shape   # keys past each length ignored
      (2, 10, 32)

    Reference: Vaswani et al., "Attention is all you need", NeurIPS 2017, sec. 3.2.2.
    """
    where = "MultiHeadAttention"
    for name, value, optional in (("num_heads", num_heads, False), ("head_dim", head_dim, True),
                                  ("out_dim", out_dim, True)):
        if not (optional and value is None) and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{where}: expected a positive integer {name}, got {value!r}")

    def init(key, input_shape):
        if _is_shape(input_shape):
            q_shape = k_shape = v_shape = tuple(input_shape)
        else:
            q_shape, k_shape, v_shape = _split_inputs(where, list(input_shape))
        for s in (q_shape, k_shape, v_shape):
            if len(s) != 3:
                raise ValueError(f"{where}: expected input shapes of rank 3 (batch, time, features), got "
                                 f"{input_shape!r}")
        if k_shape[1] not in (None, -1) and v_shape[1] not in (None, -1) and k_shape[1] != v_shape[1]:
            raise ValueError(f"{where}: expected keys and values with the same length, got {k_shape} and {v_shape}")
        d_q, d_k, d_v = q_shape[-1], k_shape[-1], v_shape[-1]
        if head_dim is None and d_q % num_heads:
            raise ValueError(f"{where}: expected the query width {d_q} to be divisible by num_heads={num_heads}; "
                             f"pass head_dim explicitly")
        d_h = head_dim or d_q // num_heads
        d_out = out_dim or d_q
        h = num_heads
        ks = jax.random.split(key, 8)
        params = MultiHeadAttentionParams(
            W_init(ks[0], (d_q, h * d_h)).reshape(d_q, h, d_h), W_init(ks[1], (d_k, h * d_h)).reshape(d_k, h, d_h),
            W_init(ks[2], (d_v, h * d_h)).reshape(d_v, h, d_h), W_init(ks[3], (h * d_h, d_out)).reshape(h, d_h, d_out),
            b_init(ks[4], (h, d_h)), b_init(ks[5], (h, d_h)), b_init(ks[6], (h, d_h)), b_init(ks[7], (d_out,)))
        return (q_shape[0], q_shape[1], d_out), params

    def apply(params, inputs, *, mask=None, lengths=None, **kwargs):
        xq, xk, xv = _split_inputs(where, inputs)
        for x in (xq, xk, xv):
            if x.ndim != 3:
                raise ValueError(f"{where}: expected inputs of rank 3 (batch, time, features), got shape {x.shape}")
        for name, x, W in (("queries", xq, params[0]), ("keys", xk, params[1]), ("values", xv, params[2])):
            if x.shape[-1] != W.shape[0]:
                raise ValueError(f"{where}: expected {name} with {W.shape[0]} features (the width the layer was "
                                 f"initialised for), got shape {x.shape}; re-initialise the layer with this input "
                                 f"shape or project the inputs to {W.shape[0]} features")
        B, T_q, T_k = xq.shape[0], xq.shape[1], xk.shape[1]
        full = (B, T_q, T_k)
        m = jnp.ones((1, 1, 1), bool)
        if mask is not None and lengths is not None:
            raise ValueError(f"{where}: expected either mask= or lengths=, got both; pass one of them")
        if lengths is not None:
            lengths = jnp.asarray(lengths)
            if lengths.shape != (B,):
                raise ValueError(f"{where}: expected lengths of shape (batch,) = {(B,)}, got shape {lengths.shape}")
            m = (jnp.arange(T_k)[None, :] < lengths[:, None])[:, None, :]
        elif mask is not None:
            mask = jnp.asarray(mask).astype(bool)
            if mask.ndim == 2 and mask.shape == (B, T_k):
                m = mask[:, None, :]
            elif mask.ndim == 3 and all(a in (1, b) for a, b in zip(mask.shape, full)):
                m = mask
            else:
                raise ValueError(f"{where}: expected a mask of shape (batch, T_k) = {(B, T_k)} or broadcastable "
                                 f"(batch, T_q, T_k) = {full}, got shape {mask.shape}")
        if causal:
            m = m & causal_mask(T_q, T_k)[None]
        Q = jnp.einsum("btd,dhe->bhte", xq, params.Wq) + params.bq[None, :, None, :]
        K = jnp.einsum("btd,dhe->bhte", xk, params.Wk) + params.bk[None, :, None, :]
        V = jnp.einsum("btd,dhe->bhte", xv, params.Wv) + params.bv[None, :, None, :]
        heads = dot_product_attention(Q, K, V, m[:, None, :, :])       # (B, h, T_q, d_h)
        return jnp.einsum("bhte,heo->bto", heads, params.Wo) + params.bo[None, None, :]

    return Layer(init, apply, kind="MultiHeadAttention", keywords=("mask", "lengths"))
