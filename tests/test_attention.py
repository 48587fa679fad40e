"""fnn.layers.attention: weights and outputs against NumPy loops, masks, multi-head against a per-head NumPy reference,
jit/vmap/grad, bad input, and the seq2seq example in tiny settings."""
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from fnn.layers import serial
from fnn.layers.attention import (
    MultiHeadAttention,
    MultiHeadAttentionParams,
    attention_weights,
    causal_mask,
    dot_product_attention,
)
from fnn.layers.recurrent import RNN, GRUCell

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def np_attention(q, k, v, mask):
    """Loop over batch and query: weights = exp(s - max) / sum over the allowed keys, s = q.k / sqrt(d)."""
    B, Tq, d = q.shape
    out, W = np.zeros((B, Tq, v.shape[-1])), np.zeros((B, Tq, k.shape[1]))
    for b in range(B):
        for i in range(Tq):
            allowed = np.flatnonzero(mask[b, i])
            if allowed.size == 0:
                continue
            s = np.array([q[b, i] @ k[b, j] / np.sqrt(d) for j in allowed])
            w = np.exp(s - s.max())
            W[b, i, allowed] = w / w.sum()
            out[b, i] = W[b, i] @ v[b]
    return out, W


def test_weights_sum_to_one_and_masked_positions_get_zero_weight():
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 6, 5))
    mask = rng.random((3, 4, 6)) < 0.5
    mask[:, :, 0] = True
    mask[2, 1] = False  # a fully masked query
    w = attention_weights(q, k, mask)
    np.testing.assert_array_equal(np.asarray(w)[~mask], 0.0)
    sums = np.asarray(jnp.sum(w, -1))
    np.testing.assert_allclose(np.delete(sums.reshape(-1), 2 * 4 + 1), 1.0, rtol=1e-6)
    assert sums[2, 1] == 0.0 and np.all(np.isfinite(w))
    np.testing.assert_array_equal(dot_product_attention(q, k, rng.normal(size=(3, 6, 2)), mask)[2, 1], 0.0)


def test_dot_product_attention_matches_numpy_loops():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        q, k, v = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 3))
        mask = rng.random((2, 3, 5)) < 0.7
        mask[..., 2] = True
        out, W = np_attention(q, k, v, mask)
        np.testing.assert_allclose(dot_product_attention(q, k, v, mask), out, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(attention_weights(q, k, mask), W, rtol=1e-12, atol=1e-12)
        full, _ = np_attention(q, k, v, np.ones((2, 3, 5), bool))
        np.testing.assert_allclose(dot_product_attention(q, k, v), full, rtol=1e-12)
        # a (T_q, T_k) mask broadcasts over the batch
        causal = np.tril(np.ones((3, 5), bool))
        np.testing.assert_allclose(dot_product_attention(q, k, v, causal_mask(3, 5)),
                                   np_attention(q, k, v, np.broadcast_to(causal, (2, 3, 5)))[0], rtol=1e-12)


def np_multi_head(p, xq, xkv, mask):
    """Per-head loop: project, attend (np_attention), concatenate the heads and project back."""
    p = [np.asarray(a) for a in p]
    Wq, Wk, Wv, Wo, bq, bk, bv, bo = p
    heads = []
    for j in range(Wq.shape[1]):
        Q, K, Vv = xq @ Wq[:, j] + bq[j], xkv @ Wk[:, j] + bk[j], xkv @ Wv[:, j] + bv[j]
        heads.append(np_attention(Q, K, Vv, mask)[0])
    concat = np.concatenate(heads, -1)
    return concat @ Wo.reshape(-1, Wo.shape[-1]) + bo


def _random_mha_params(params, key):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(tree, [0.5 * jax.random.normal(k, l.shape, jnp.float64)
                                               for k, l in zip(keys, leaves)])


def test_multi_head_self_attention_matches_numpy_reference(key):
    with jax.enable_x64(True):
        layer = MultiHeadAttention(3, causal=True)
        shape, params = layer.init(key, (-1, 5, 6))
        assert shape == (-1, 5, 6) and isinstance(params, MultiHeadAttentionParams)
        assert params.Wq.shape == (6, 3, 2) and params.Wo.shape == (3, 2, 6)
        params = _random_mha_params(params, jax.random.key(1))
        x = np.random.default_rng(2).normal(size=(2, 5, 6))
        lengths = np.array([5, 3])
        mask = np.tril(np.ones((5, 5), bool))[None] & (np.arange(5)[None, None, :] < lengths[:, None, None])
        apply = jax.jit(layer.apply)
        y = apply(params, jnp.asarray(x), lengths=lengths)
        np.testing.assert_allclose(y, np_multi_head(params, x, x, mask), rtol=1e-10, atol=1e-12)
        # mask=(batch, T_k) means the same as lengths=; padded key content does not matter
        x2 = x.copy()
        x2[1, 3:] = 50.0
        y2 = apply(params, jnp.asarray(x2), mask=np.arange(5)[None, :] < lengths[:, None])
        np.testing.assert_allclose(y2[1, :3], y[1, :3], rtol=1e-10)


def test_multi_head_cross_attention_matches_numpy_reference(key):
    with jax.enable_x64(True):
        layer = MultiHeadAttention(2, head_dim=3, out_dim=4)
        shape, params = layer.init(key, [(-1, 3, 5), (-1, 6, 7)])
        assert shape == (-1, 3, 4)
        params = _random_mha_params(params, jax.random.key(3))
        rng = np.random.default_rng(4)
        xq, xkv = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 6, 7))
        mask = rng.random((2, 3, 6)) < 0.6
        mask[..., 0] = True
        y = layer.apply(params, [jnp.asarray(xq), jnp.asarray(xkv)], mask=mask)
        np.testing.assert_allclose(y, np_multi_head(params, xq, xkv, mask), rtol=1e-10, atol=1e-12)
        y3 = layer.apply(params, [jnp.asarray(xq), jnp.asarray(xkv), jnp.asarray(xkv)], mask=mask)
        np.testing.assert_allclose(y3, y, rtol=1e-12)


def test_multi_head_jit_vmap_grad_and_serial_after_an_rnn(key):
    assert serial(RNN(GRUCell(4)), MultiHeadAttention(2)).init(key, (-1, 5, 3))[0] == (-1, 5, 4)
    layer = MultiHeadAttention(2, causal=True)
    params = layer.init(key, (-1, 4, 4))[1]
    x = jax.random.normal(jax.random.key(5), (3, 2, 4, 4))
    lengths = jnp.array([[4, 2], [1, 3], [4, 4]])
    eager = layer.apply(params, x[0], lengths=lengths[0])
    jitted = jax.jit(layer.apply)
    np.testing.assert_allclose(jitted(params, x[0], lengths=lengths[0]), eager, rtol=1e-5, atol=1e-6)
    vmapped = jax.vmap(lambda xi, li: jitted(params, xi, lengths=li))(x, lengths)
    for i in range(3):
        np.testing.assert_allclose(vmapped[i], jitted(params, x[i], lengths=lengths[i]), rtol=1e-5, atol=1e-6)
    with jax.enable_x64(True):
        p64 = _random_mha_params(params, jax.random.key(6))
        x64 = jnp.asarray(x[0], jnp.float64)
        check_grads(jax.jit(lambda p, x: jnp.sum(jnp.sin(layer.apply(p, x, lengths=jnp.array([4, 2]))))),
                    (p64, x64), order=1, modes=["rev"], eps=1e-5, atol=1e-6, rtol=1e-6)


def test_bad_input_errors_name_the_function_or_layer(key):
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected a positive integer num_heads, got 0"):
        MultiHeadAttention(0)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected a positive integer head_dim, got 0"):
        MultiHeadAttention(2, head_dim=0)
    layer = MultiHeadAttention(4)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected the query width 6 to be divisible by "
                                         r"num_heads=4"):
        layer.init(key, (-1, 5, 6))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected input shapes of rank 3"):
        layer.init(key, (-1, 8))
    params = layer.init(key, (-1, 5, 8))[1]
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected inputs of rank 3 \(batch, time, "
                                         r"features\), got shape \(5, 8\)"):
        layer.apply(params, jnp.ones((5, 8)))
    x = jnp.ones((2, 5, 8))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected a mask of shape \(batch, T_k\) = \(2, 5\) "
                                         r"or broadcastable \(batch, T_q, T_k\) = \(2, 5, 5\), got shape \(2, 4\)"):
        layer.apply(params, x, mask=jnp.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected lengths of shape \(batch,\) = \(2,\)"):
        layer.apply(params, x, lengths=jnp.ones(3, int))
    with pytest.raises(ValueError, match=r"dot_product_attention: expected q and k with the same last dimension"):
        dot_product_attention(jnp.ones((3, 4)), jnp.ones((5, 2)), jnp.ones((5, 2)))
    with pytest.raises(ValueError, match=r"dot_product_attention: expected k and v with the same number of steps"):
        dot_product_attention(jnp.ones((3, 4)), jnp.ones((5, 4)), jnp.ones((6, 2)))
    with pytest.raises(ValueError, match=r"attention_weights: expected a mask broadcastable to the scores' shape "
                                         r"\(\.\.\., T_q, T_k\) = \(3, 5\), got shape \(5, 3\)"):
        attention_weights(jnp.ones((3, 4)), jnp.ones((5, 4)), jnp.ones((5, 3), bool))


def test_attention_seq2seq_example_quick():
    spec = importlib.util.spec_from_file_location("attention_seq2seq", EXAMPLES / "attention_seq2seq.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    r = ex.train_and_test(True, L=4, hidden=8, heads=1, steps=40, batch=16, lr=1e-2, n_test=200)
    assert r["token_accuracy"] > 0.2  # chance is 0.1
    np.testing.assert_allclose(r["attention_example"].sum(-1), 1.0, rtol=1e-5)
