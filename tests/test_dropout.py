"""Dropout by its statistics: the dropped fraction is ``rate``, the mean is preserved, eval is the identity."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers as L

N = 200 * 500


def key(seed):
    return jax.random.key(seed, impl="rbg")


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropped_fraction_is_rate_and_the_mean_is_preserved(rate):
    x = jnp.ones((200, 500))
    y = np.asarray(L.Dropout(rate).apply((), x, key=key(1)))
    dropped = np.mean(y == 0)
    assert abs(dropped - rate) < 5 * math.sqrt(rate * (1 - rate) / N)  # binomial: 5 standard errors
    # survivors are scaled by exactly 1 / (1 - rate) ...
    np.testing.assert_allclose(y[y != 0], 1 / (1 - rate), rtol=1e-6)
    # ... so the mean is preserved: Var[y] = rate / (1 - rate) for x = 1
    assert abs(y.mean() - 1.0) < 5 * math.sqrt(rate / (1 - rate) / N)


def test_masks_are_independent_per_entry_and_per_key():
    x = jnp.ones((100, 400))
    a = np.asarray(L.Dropout(0.5).apply((), x, key=key(2))) == 0
    b = np.asarray(L.Dropout(0.5).apply((), x, key=key(3))) == 0
    # two independent Bernoulli(1/2) masks agree on about half the entries; the same key gives the same mask
    assert abs(np.mean(a == b) - 0.5) < 5 * 0.5 / math.sqrt(a.size)
    np.testing.assert_array_equal(a, np.asarray(L.Dropout(0.5).apply((), x, key=key(2))) == 0)
    # no structure across rows or columns: every row and column loses about half
    assert np.all(np.abs(a.mean(axis=1) - 0.5) < 5 * 0.5 / math.sqrt(400))
    assert np.all(np.abs(a.mean(axis=0) - 0.5) < 5 * 0.5 / math.sqrt(100) + 0.05)


def test_eval_mode_is_the_identity_and_needs_no_key():
    x = jnp.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(L.Dropout(0.5).apply((), x, train=False), x)
    np.testing.assert_array_equal(L.Dropout(0.5, mode="eval").apply((), x), x)   # stax's constructor mode
    # the call decides; the constructor's mode is only the default
    y = L.Dropout(0.5, mode="eval").apply((), x, train=True, key=key(0))
    assert np.any(np.asarray(y) == 0)
    np.testing.assert_array_equal(L.Dropout(0.5, mode="train").apply((), x, train=False), x)


def test_rate_zero_keeps_everything():
    x = jnp.arange(1.0, 13.0).reshape(3, 4)
    np.testing.assert_array_equal(L.Dropout(0.0).apply((), x, key=key(0)), x)


def test_gradient_is_the_scaled_mask():
    x = jnp.arange(1.0, 101.0)
    layer = L.Dropout(0.25)
    y = layer.apply((), x, key=key(4))
    g = jax.grad(lambda x: jnp.sum(layer.apply((), x, key=key(4))))(x)
    np.testing.assert_allclose(g, np.where(np.asarray(y) != 0, 1 / 0.75, 0.0), rtol=1e-6)


def test_key_threads_through_serial_and_jit():
    model = L.serial(L.Dense(50), L.Dropout(0.5), L.Dense(3))
    _, params = model.init(key(0), (-1, 4))
    x = jnp.ones((8, 4))
    apply = jax.jit(model.apply, static_argnames="train")
    y1, y2 = apply(params, x, key=key(1)), apply(params, x, key=key(2))
    assert not np.allclose(y1, y2)  # a different key, a different mask
    np.testing.assert_allclose(apply(params, x, key=key(1)), y1)
    np.testing.assert_allclose(apply(params, x, train=False), model.apply(params, x, train=False), rtol=1e-6)
    with pytest.raises(ValueError, match=r"Dropout: train mode needs a PRNG key: call apply\(params, x, key="):
        model.apply(params, x)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, "0.5", True, None])
def test_rate_outside_zero_one_raises(rate):
    with pytest.raises(ValueError, match=r"Dropout: expected rate \(the probability of dropping\) in \[0, 1\)"):
        L.Dropout(rate)


def test_bad_mode_and_missing_key_raise():
    with pytest.raises(ValueError, match=r"Dropout: expected mode in \(None, 'train', 'eval'\), got 'test'"):
        L.Dropout(0.5, mode="test")
    with pytest.raises(ValueError, match="Dropout: train mode needs a PRNG key"):
        L.Dropout(0.5).apply((), jnp.ones(3))
