"""The rest of the lecture material (issue 14): vanilla vs inverted dropout, the weight-scaling rule checked by
enumerating every mask, Monte-Carlo dropout, ``use_bias=False``, the symmetry of zero/constant initialisation and
the ln C initial-loss check.

References are independent of fnn: NumPy enumeration of all 2^n masks, NumPy convolution loops, closed forms.
"""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import initializers as ini
from fnn import layers as L
from fnn.debug import SymmetryWarning, check_initial_loss, check_symmetry


def key(seed):
    return jax.random.key(seed)


def all_masks(n):
    """Every mask m in {0, 1}^n, as a (2^n, n) float64 array."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def mask_probs(masks, p):
    k = masks.sum(1)
    return p ** k * (1 - p) ** (masks.shape[1] - k)


def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --------------------------------------------------------------------------------------------- dropout scalings
@pytest.mark.parametrize("scaling", ["inverted", "vanilla"])
def test_expected_training_activation_equals_the_test_time_output(scaling):
    rate, p, k = 0.3, 0.7, 4000
    x = jax.random.normal(key(0), (4, 25)) + 1.0
    layer = L.Dropout(rate, scaling=scaling)
    ys = jax.vmap(lambda kk: layer.apply((), x, key=kk))(jax.random.split(key(1), k))
    test_time = np.asarray(layer.apply((), x, train=False))
    xn = np.asarray(x, np.float64)
    np.testing.assert_allclose(test_time, xn * p if scaling == "vanilla" else xn, rtol=1e-6)
    # Var of one draw: x^2 p (1 - p) (vanilla), x^2 (1 - p) / p (inverted); 5 standard errors
    sd = np.abs(xn) * (math.sqrt(p * (1 - p)) if scaling == "vanilla" else math.sqrt((1 - p) / p))
    z = (np.asarray(ys, np.float64).mean(0) - test_time) / (sd / math.sqrt(k))
    assert np.abs(z).max() < 5, np.abs(z).max()


def test_vanilla_draws_the_same_mask_unscaled():
    x = jax.random.normal(key(0), (8, 16))
    inv = L.Dropout(0.4).apply((), x, key=key(3))
    van = L.Dropout(0.4, scaling="vanilla").apply((), x, key=key(3))
    np.testing.assert_allclose(np.asarray(van), 0.6 * np.asarray(inv), rtol=1e-6)
    assert 0 < float(jnp.mean(van == 0)) < 1


@pytest.mark.parametrize("scaling", ["inverted", "vanilla"])
@pytest.mark.parametrize("units", ["softmax", "logistic"])
def test_weight_scaling_is_the_geometric_mean_of_all_masked_networks(scaling, units):
    """One layer of softmax (or logistic) units after a dropout on its n = 10 inputs: the normalised geometric mean
    of the predictions of all 2^n masked networks, each weighted by its probability, is the test-time prediction."""
    n, C, rate = 10, 4 if units == "softmax" else 1, 0.4
    p = 1 - rate
    rng = np.random.default_rng(0)
    X, W, b = rng.normal(size=(5, n)), rng.normal(size=(n, C)), rng.normal(size=C)
    masks = all_masks(n)
    w = mask_probs(masks, p)
    assert abs(w.sum() - 1) < 1e-12
    scale = 1.0 if scaling == "vanilla" else 1.0 / p
    Z = np.einsum("mi,xi,ic->xmc", masks * scale, X, W) + b            # (examples, masks, C): every masked net
    if units == "softmax":
        logG = np.einsum("m,xmc->xc", w, np.log(np_softmax(Z)))           # sum_m w_m ln P_m(c)
        G = np_softmax(logG)                                               # normalised over the classes
        arith = np.einsum("m,xmc->xc", w, np_softmax(Z))
    else:
        P = 1 / (1 + np.exp(-Z))
        g1, g0 = np.exp(np.einsum("m,xmc->xc", w, np.log(P))), np.exp(np.einsum("m,xmc->xc", w, np.log(1 - P)))
        G, arith = g1 / (g1 + g0), np.einsum("m,xmc->xc", w, P)
    with jax.enable_x64(True):
        model = L.serial(L.Dropout(rate, scaling=scaling), L.Dense(C))
        params = ((), L.DenseParams(jnp.asarray(W), jnp.asarray(b)))
        z = model.apply(params, jnp.asarray(X), train=False)
        pred = np.asarray(jax.nn.softmax(z) if units == "softmax" else jax.nn.sigmoid(z))
        assert pred.dtype == np.float64
    np.testing.assert_allclose(pred, G, atol=1e-6, rtol=0)
    assert np.abs(arith - G).max() > 1e-3  # the arithmetic mean is a different number: the check can fail


def test_mc_dropout_mean_and_std_converge_to_the_enumeration():
    n, C, rate, k = 6, 3, 0.5, 20000
    rng = np.random.default_rng(1)
    X, W, b = rng.normal(size=(3, n)), rng.normal(size=(n, C)), rng.normal(size=C)
    model = L.serial(L.Dropout(rate), L.Dense(C), L.Softmax)
    params = ((), L.DenseParams(jnp.asarray(W, jnp.float32), jnp.asarray(b, jnp.float32)), ())
    mean, std = L.mc_dropout_predict(model.apply, params, jnp.asarray(X, jnp.float32), key(5), samples=k)
    masks = all_masks(n)
    w = mask_probs(masks, 1 - rate)
    P = np_softmax(np.einsum("mi,xi,ic->xmc", masks / (1 - rate), X, W) + b)
    mu = np.einsum("m,xmc->xc", w, P)
    sd = np.sqrt(np.einsum("m,xmc->xc", w, (P - mu[:, None]) ** 2))
    z = (np.asarray(mean) - mu) / (sd / math.sqrt(k))
    assert np.abs(z).max() < 5, np.abs(z).max()
    np.testing.assert_allclose(np.asarray(std), sd, rtol=0.05)


def test_mc_dropout_is_one_masked_pass_per_split_key():
    model = L.serial(L.Dense(5), L.Dropout(0.5), L.Dense(2))
    _, params = model.init(key(0), (-1, 3))
    x = jax.random.normal(key(1), (4, 3))
    mean, std = L.mc_dropout_predict(model.apply, params, x, key(2), samples=5)
    ys = np.stack([np.asarray(model.apply(params, x, key=kk, train=True)) for kk in jax.random.split(key(2), 5)])
    np.testing.assert_allclose(np.asarray(mean), ys.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(std), ys.std(0), rtol=1e-4, atol=1e-6)
    assert float(std.max()) > 0


def test_dropout_scaling_and_mc_errors():
    with pytest.raises(ValueError, match=r"Dropout: expected scaling in \('inverted', 'vanilla'\), got 'test'"):
        L.Dropout(0.5, scaling="test")
    apply = L.Dropout(0.5).apply
    with pytest.raises(ValueError, match="mc_dropout_predict: expected samples as a positive int"):
        L.mc_dropout_predict(apply, (), jnp.ones(3), key(0), samples=0)
    with pytest.raises(TypeError, match=r"mc_dropout_predict: got \['train'\] in kwargs"):
        L.mc_dropout_predict(apply, (), jnp.ones(3), key(0), train=False)


# ------------------------------------------------------------------------------------------------ use_bias=False
def test_dense_without_bias_is_x_times_W():
    layer = L.Dense(3, use_bias=False)
    _, params = layer.init(key(0), (-1, 4))
    assert params.b is None and len(jax.tree.leaves(params)) == 1
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(layer.apply(params, x)), x @ np.asarray(params.W), rtol=1e-5, atol=1e-6)
    _, default = L.Dense(3).init(key(0), (-1, 4))               # default unchanged: W and b
    assert default.b.shape == (3,)
    np.testing.assert_array_equal(default.W, params.W)
    _, mlp_params = L.mlp([4, 2], use_bias=False).init(key(0), (-1, 4))
    assert all(p.b is None for p in mlp_params if p)
    with pytest.raises(ValueError, match="Dense: expected use_bias True or False, got 0"):
        L.Dense(3, use_bias=0)


def np_conv2d_valid(x, W):
    n, h, w_, _ = x.shape
    kh, kw, _, o = W.shape
    y = np.zeros((n, h - kh + 1, w_ - kw + 1, o))
    for i in range(h - kh + 1):
        for j in range(w_ - kw + 1):
            y[:, i, j, :] = np.einsum("nabc,abco->no", x[:, i:i + kh, j:j + kw, :], W)
    return y


def test_conv_without_bias_is_the_bare_correlation():
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 3)).astype(np.float32)
    layer = L.Conv(4, (3, 2), use_bias=False)
    _, params = layer.init(key(0), (-1, 6, 5, 3))
    assert params.b is None and len(jax.tree.leaves(params)) == 1
    np.testing.assert_allclose(np.asarray(layer.apply(params, x)), np_conv2d_valid(x, np.asarray(params.W)),
                               rtol=1e-5, atol=1e-5)
    for make, shape in [(L.Conv1D, (-1, 7, 2)), (L.Conv3D, (-1, 4, 4, 4, 2)), (L.ConvTranspose, (-1, 4, 4, 2)),
                        (lambda *a, **k: L.GeneralConv(("NCHW", "OIHW", "NCHW"), *a, **k), (-1, 2, 5, 5))]:
        nd = len(shape) - 2
        _, p = make(3, (2,) * nd, use_bias=False).init(key(1), shape)
        _, p_bias = make(3, (2,) * nd).init(key(1), shape)
        assert p.b is None and p_bias.b is not None


def test_dense_before_batchnorm_trains_without_bias():
    model = L.serial(L.Dense(8, use_bias=False), L.BatchNorm(axis=0), L.Relu, L.Dense(2))
    _, params, state = L.init_with_state(model, key(0), (-1, 4))
    x = jax.random.normal(key(1), (16, 4))
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, x, state=state)[0] ** 2))(params)
    assert grads[0].b is None and float(jnp.abs(grads[0].W).max()) > 0


# ---------------------------------------------------------------------------------------------------- symmetry
def tanh_net_loss(model, x, y):
    return lambda p: jnp.mean((model.apply(p, x) - y) ** 2)


def test_zero_init_with_tanh_gives_zero_hidden_weight_gradients():
    model = L.mlp([6, 2], L.Tanh, W_init=ini.zeros, b_init=ini.zeros)
    _, params = model.init(key(0), (-1, 3))
    x, y = jax.random.normal(key(1), (20, 3)), jax.random.normal(key(2), (20, 2))
    loss = tanh_net_loss(model, x, y)
    for _ in range(5):                                        # and it stays that way: only the output bias moves
        g = jax.grad(loss)(params)
        # by hand: h = tanh(x W1 + b1) = 0, dC/dW2 = h^T delta = 0, dC/dW1 = x^T (delta W2^T * (1 - h^2)) = 0
        assert not np.any(np.asarray(g[0].W)) and not np.any(np.asarray(g[2].W)) and not np.any(np.asarray(g[0].b))
        assert np.any(np.asarray(g[2].b))
        params = jax.tree.map(lambda p, d: p - 0.5 * d, params, g)
    with pytest.warns(SymmetryWarning, match=r"check_symmetry: \[\d\]\.W \(\d, \d\) is all zeros: .*glorot_normal"):
        found = check_symmetry(params)
    assert [(f.path, f.problem) for f in found] == [("[0].W", "zero"), ("[2].W", "zero")]


def test_equal_initial_weights_give_identical_hidden_units_forever():
    model = L.mlp([5, 2], L.Tanh, W_init=ini.constant(0.3), b_init=ini.constant(0.1))
    _, params = model.init(key(0), (-1, 3))
    x, y = jax.random.normal(key(1), (20, 3)), jax.random.normal(key(2), (20, 2))
    step = jax.jit(lambda p: jax.tree.map(lambda a, d: a - 0.2 * d, p, jax.grad(tanh_net_loss(model, x, y))(p)))
    for _ in range(30):
        params = step(params)
    W1, W2 = np.asarray(params[0].W), np.asarray(params[2].W)
    assert np.abs(W1 - 0.3).max() > 1e-2                              # the weights did move ...
    np.testing.assert_allclose(W1, np.repeat(W1[:, :1], 5, 1), rtol=1e-6)  # ... but all hidden units alike
    np.testing.assert_allclose(W2, np.repeat(W2[:1], 5, 0), rtol=1e-6)
    with pytest.warns(SymmetryWarning, match=r"\[0\]\.W \(3, 5\) has units with identical incoming weights"):
        found = check_symmetry(params)
    assert found[0].units == (0, 1, 2, 3, 4)
    # the contrast: random init breaks the symmetry, and check_symmetry stays silent
    _, rand = L.mlp([5, 2], L.Tanh).init(key(0), (-1, 3))
    for _ in range(3):
        rand = jax.tree.map(lambda a, d: a - 0.2 * d, rand, jax.grad(tanh_net_loss(model, x, y))(rand))
    assert np.std(np.asarray(rand[0].W), axis=1).min() > 1e-3
    assert check_symmetry(rand) == []


def test_check_symmetry_flags_a_pair_and_skips_biases_and_conv_biases():
    W = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    W[:, 2] = W[:, 0]
    params = ({"W": jnp.asarray(W), "b": jnp.zeros(3)}, L.ConvParams(jnp.ones((2, 2, 1, 1)), jnp.zeros((1, 1, 1, 1))))
    found = check_symmetry(params, warn=False)
    assert [(f.path, f.problem, f.units) for f in found] == [("[0]['W']", "identical", (0, 2))]


# ---------------------------------------------------------------------------------------------- initial loss
def test_initial_loss_is_ln_C_for_a_normal_init_and_flagged_for_a_large_one():
    model = L.mlp([64, 10], L.Tanh)
    _, params = model.init(key(0), (-1, 20))
    x = jax.random.normal(key(1), (500, 20))
    y = jax.random.randint(key(2), (500,), 0, 10)
    report = check_initial_loss(model.apply, params, x, y)
    z = np.asarray(model.apply(params, x), np.float64)                     # the loss by NumPy
    ref = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(500), np.asarray(y)])
    assert report.verdict == "ok" and abs(report.expected - 2.302585) < 1e-6
    assert report.loss == pytest.approx(ref, rel=1e-5) and abs(report.loss - math.log(10)) < 0.25
    onehot = check_initial_loss(model.apply, params, x, jax.nn.one_hot(y, 10))
    assert onehot.loss == pytest.approx(report.loss, rel=1e-5)
    big = jax.tree.map(lambda a: 100 * a, params)
    bad = check_initial_loss(model.apply, big, x, y)
    assert bad.verdict == "high" and bad.loss > 10
    assert "the weights are too large" in bad.message and "regularisation term dominates" in bad.message


def test_initial_loss_below_chance_is_flagged_and_bad_scores_raise():
    y = jnp.arange(40) % 4
    def leaky(params, x, **kw):
        return 5.0 * jax.nn.one_hot(y, 4)                                   # the labels leak into the scores
    low = check_initial_loss(leaky, (), jnp.zeros((40, 2)), y)
    assert low.verdict == "low" and "labels leaking" in low.message
    with pytest.raises(ValueError, match=r"check_initial_loss: expected scores of shape \(n, C\) with C >= 2"):
        check_initial_loss(lambda p, x, **kw: x[:, 0], (), jnp.zeros((4, 2)), jnp.zeros(4, int))
