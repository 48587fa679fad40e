"""Network paralysis: the saturation detector against NumPy, the squashing rule, and training from a paralysed start."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers
from fnn.classic import paralysis
from fnn.layers.dense import DenseParams


def _net(sizes, act, out=None, seed=0, d_in=3, scale=1.0):
    """An ``fnn.mlp`` and params in its layout, W ~ N(0, 1/d_in) and b ~ N(0, 0.01), times ``scale`` (NumPy-drawn,
    which is much cheaper than compiling ``model.init``)."""
    model = layers.mlp(sizes, act, output_activation=out)
    rng, params, d = np.random.default_rng(seed), [], d_in
    for width in sizes:
        params += [DenseParams(jnp.asarray(scale * rng.normal(size=(d, width)) / np.sqrt(d), jnp.float32),
                               jnp.asarray(scale * 0.1 * rng.normal(size=width), jnp.float32)), ()]
        d = width
    return model, tuple(params[:-1] if out is None else params)


def _numpy_fractions(params, x, f, thr, with_output):
    a, fracs = np.asarray(x, np.float64), []
    dense = [p for p in params if p != ()]
    for i, p in enumerate(dense):
        z = a @ np.asarray(p.W, np.float64) + np.asarray(p.b, np.float64)
        if i < len(dense) - 1 or with_output:
            fracs.append((np.abs(z) > thr).mean(axis=0))
        a = f(z)
    return fracs


@pytest.mark.parametrize("act,name,f,thr", [(layers.Sigmoid, "sigmoid", lambda z: 1 / (1 + np.exp(-z)), 4.0),
                                            (layers.Tanh, "tanh", np.tanh, 2.0)])
def test_detection_matches_numpy(act, name, f, thr):
    _, params = _net([6, 5, 2], act, scale=4.0)
    x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    got = paralysis.saturated_units(params, x, activation=name)
    want = _numpy_fractions(params, x, f, thr, with_output=False)
    assert len(got) == 2 and [g.shape for g in got] == [(6,), (5,)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1.5 / 200)   # at most one input on the float32/float64 boundary
    assert 0.05 < float(np.mean(np.concatenate(want))) < 0.95  # the case is neither all nor nothing
    with_out = paralysis.saturated_units(params, x, activation=name, output_activation=name, threshold=1.0)
    want_out = _numpy_fractions(params, x, f, 1.0, with_output=True)
    assert len(with_out) == 3
    np.testing.assert_allclose(with_out[2], want_out[2], atol=1.5 / 200)
    nets = paralysis.net_inputs(params, x, activation=name)
    np.testing.assert_allclose(nets[0], x @ np.asarray(params[0].W) + np.asarray(params[0].b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_fraction", [0.0, 0.3])
def test_squash_unsaturates_and_leaves_the_rest_bit_for_bit(max_fraction):
    _, params = _net([8, 6, 1], layers.Sigmoid, out=layers.Sigmoid, scale=6.0)
    x = jax.random.normal(jax.random.key(1), (150, 3))
    before = paralysis.saturated_units(params, x, output_activation="sigmoid")
    fixed = paralysis.squash_weights(params, x, output_activation="sigmoid", max_fraction=max_fraction)
    after = paralysis.saturated_units(fixed, x, output_activation="sigmoid")
    assert jax.tree.structure(fixed) == jax.tree.structure(params)
    assert any(float(b.max()) > max_fraction for b in before)            # something to repair
    nets = paralysis.net_inputs(fixed, x)
    dense_old, dense_new = [p for p in params if p != ()], [p for p in fixed if p != ()]
    for l, (old, new) in enumerate(zip(dense_old, dense_new)):
        assert float(after[l].max()) <= max_fraction
        W_old, W_new, b_old, b_new = map(np.asarray, (old.W, new.W, old.b, new.b))
        changed = np.any(W_old != W_new, axis=0) | (b_old != b_new)
        for j in range(W_old.shape[1]):
            if changed[j]:                       # a squashed unit: a positive scale s_j < 1, max |net| = target = 2
                s = W_new[:, j] / W_old[:, j]
                np.testing.assert_allclose(s, s[0], rtol=1e-5)
                np.testing.assert_allclose(b_new[j] / b_old[j], s[0], rtol=1e-5)
                assert 0 < s[0] < 1
                np.testing.assert_allclose(np.abs(np.asarray(nets[l][:, j])).max(), 2.0, rtol=1e-4)
            else:                                # untouched units are identical, bit for bit
                assert W_new[:, j].tobytes() == W_old[:, j].tobytes() and b_new[j].tobytes() == b_old[j].tobytes()
        assert changed.sum() >= 1 if l == 0 else True
    # units saturated on at most max_fraction of the inputs before are not rescaled (first layer: same inputs)
    keep = np.asarray(before[0]) <= max_fraction
    assert np.array_equal(np.asarray(dense_new[0].W)[:, keep], np.asarray(dense_old[0].W)[:, keep])


def test_paralysed_start_stalls_and_the_squashed_one_learns():
    model, params = _net([8, 1], layers.Sigmoid, out=layers.Sigmoid, d_in=2, seed=0, scale=50.0)
    x = jax.random.normal(jax.random.key(2), (64, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(jnp.float32)                     # XOR of the signs

    def loss(p):
        return jnp.mean((model.apply(p, x)[:, 0] - y) ** 2)

    @jax.jit
    def train(p):
        def step(p, _):
            return jax.tree.map(lambda w, g: w - 1.0 * g, p, jax.grad(loss)(p)), None
        return jax.lax.scan(step, p, None, length=300)[0]

    fixed = paralysis.squash_weights(params, x, output_activation="sigmoid")
    drop_paralysed = float(loss(params) - loss(train(params)))
    drop_squashed = float(loss(fixed) - loss(train(fixed)))
    assert float(paralysis.saturated_units(params, x)[0].mean()) > 0.8
    assert abs(drop_paralysed) < 0.01                                     # stalled: 0.0 measured
    assert drop_squashed > 0.05                                           # progress: 0.24 measured


def test_bad_input_is_rejected():
    _, params = _net([4, 1], layers.Tanh)
    x = jnp.zeros((5, 3))
    with pytest.raises(ValueError, match=r"expected activation in \['sigmoid', 'tanh'\], got 'relu'"):
        paralysis.saturated_units(params, x, activation="relu")
    with pytest.raises(ValueError, match=r"expected x of shape \(n, 3\), got \(5, 2\)"):
        paralysis.saturated_units(params, jnp.zeros((5, 2)), activation="tanh")
    with pytest.raises(ValueError, match="expected the params of fnn.mlp"):
        paralysis.saturated_units((jnp.zeros((3, 4)),), x)
    with pytest.raises(ValueError, match=r"expected 0 < target < threshold = 2.0, got 3.0"):
        paralysis.squash_weights(params, x, activation="tanh", target=3.0)
    with pytest.raises(ValueError, match=r"expected max_fraction in \[0, 1\), got 1.0"):
        paralysis.squash_weights(params, x, activation="tanh", max_fraction=1.0)
    with pytest.raises(ValueError, match=r"expected threshold \(on \|net\|\) > 0, got -1"):
        paralysis.saturated_units(params, x, activation="tanh", threshold=-1)
