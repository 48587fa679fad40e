"""``from fnn import layers as stax`` is a drop-in for ``jax.example_libraries.stax``.

The same model code runs against both modules: same key -> same shapes and param structure; where the init math
is the same (biases, BatchNorm, every param-free layer) the same values; and, fed the same params, the same
outputs. Departures (Dropout's rate, Gelu's default, Glorot-normal untruncated) are tested as departures.
"""
import types

import jax
import jax.example_libraries.stax as jax_stax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers as fnn_stax

KEY = jax.random.key(0, impl="rbg")  # fast to compile on CPU; both libraries get the same key


def randn(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def stax_run(f, *args, **kwargs):
    """Run stax's code: its Dense adds (d_out,) to (n, d_out) by implicit rank promotion, which our suite forbids."""
    with jax.numpy_rank_promotion("allow"):
        return f(*args, **kwargs)


def plain(tree):
    """Lists, tuples and NamedTuples all as plain tuples, so the two libraries' param trees compare."""
    if isinstance(tree, (list, tuple)):
        return tuple(plain(t) for t in tree)
    return tree


def paths(tree):
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(plain(tree))]


def test_every_public_stax_name_is_in_fnn_layers():
    names = [n for n in dir(jax_stax) if not n.startswith("_")
             and not isinstance(getattr(jax_stax, n), types.ModuleType)]
    assert len(names) > 40
    assert [n for n in names if not hasattr(fnn_stax, n)] == []


def convnet(stax):
    """Model code written once, against stax's names only."""
    return stax.serial(
        stax.Conv(4, (3, 3), padding="SAME"), stax.BatchNorm(), stax.Relu,
        stax.MaxPool((2, 2), strides=(2, 2)), stax.AvgPool((2, 2), padding="SAME", spec="NHWC"),
        stax.Flatten, stax.Dense(6),
        stax.FanOut(2), stax.parallel(stax.Dense(3), stax.serial(stax.Dense(3), stax.Tanh)), stax.FanInSum,
        stax.LogSoftmax)


def test_same_model_same_shapes_same_bias_values_same_outputs():
    x = randn(1, (2, 6, 6, 2))
    init_s, apply_s = convnet(jax_stax)
    init_f, apply_f = convnet(fnn_stax)
    shape_s, params_s = init_s(KEY, x.shape)
    shape_f, params_f = init_f(KEY, x.shape)
    assert tuple(shape_s) == tuple(shape_f) == (2, 3)
    assert paths(params_s) == paths(params_f)
    assert [a.shape for a in jax.tree.leaves(params_s)] == [a.shape for a in jax.tree.leaves(params_f)]
    # Same key splitting: biases (same N(0, std^2) draw) and BatchNorm's beta/gamma are equal. Weights differ on
    # purpose: stax's glorot_normal is truncated, fnn's is the untruncated normal of Glorot & Bengio.
    pick = lambda p: [p[1][0], p[1][1], p[0][1], p[6][1], p[8][0][1], p[8][1][0][1]]  # noqa: E731
    for a, b in zip(pick(params_s), pick(params_f)):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(params_s[6][0], params_f[6][0])
    # Fed the same params, both libraries compute the same function (in both directions).
    np.testing.assert_allclose(apply_f(params_s, x), stax_run(apply_s, params_s, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stax_run(apply_s, params_f, x), apply_f(params_f, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make,shape", [
    (lambda s: s.ConvTranspose(3, (3, 3), (2, 2)), (2, 4, 5, 3)),
    (lambda s: s.ConvTranspose(3, (2, 3), (2, 1), "SAME"), (2, 4, 5, 3)),
    (lambda s: s.Conv1DTranspose(2, (3,), (2,), "SAME"), (2, 5, 3)),
    (lambda s: s.GeneralConvTranspose(("NCHW", "OIHW", "NCHW"), 2, (3, 2), (1, 2)), (2, 3, 4, 5)),
    (lambda s: s.GeneralConv(("NCHW", "OIHW", "NCHW"), 2, (3, 2), (2, 1), "SAME"), (2, 3, 4, 5)),
], ids=["ConvTranspose", "ConvTranspose-SAME", "Conv1DTranspose", "GeneralConvTranspose", "GeneralConv-NCHW"])
def test_conv_layers_match_stax(make, shape):
    x = randn(2, shape)
    (init_s, apply_s), (init_f, apply_f) = make(jax_stax), make(fnn_stax)
    shape_s, params_s = init_s(KEY, x.shape)
    shape_f, params_f = init_f(KEY, x.shape)
    assert tuple(shape_s) == tuple(shape_f)
    np.testing.assert_array_equal(params_s[1], params_f.b)  # same bias draw
    y = apply_f(params_s, x)
    np.testing.assert_allclose(y, apply_s(params_s, x), rtol=1e-5, atol=1e-6)
    assert y.shape == tuple(shape_f)


def test_parameter_free_layers_work_as_values_and_as_calls():
    x = randn(3, (2, 3, 4))
    as_values = fnn_stax.serial(fnn_stax.Relu, fnn_stax.Flatten, fnn_stax.Identity, fnn_stax.Tanh)
    as_calls = fnn_stax.serial(fnn_stax.Relu(), fnn_stax.Flatten(), fnn_stax.Identity(), fnn_stax.Tanh())
    reference = jax_stax.serial(jax_stax.Relu, jax_stax.Flatten, jax_stax.Identity, jax_stax.Tanh)
    expected = reference[1](reference[0](KEY, x.shape)[1], x)
    for model in (as_values, as_calls):
        shape, params = model.init(KEY, x.shape)
        assert shape == (2, 12)
        np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-6)
    # stax's own layers compose inside fnn's combinators, and fnn's inside stax's
    for model in (fnn_stax.serial(jax_stax.Dense(4), fnn_stax.Relu, jax_stax.Flatten),
                  jax_stax.serial(fnn_stax.Dense(4), jax_stax.Relu, fnn_stax.Flatten)):
        init, apply = model
        shape, ((W, b), _, _) = init(KEY, x.shape)
        assert tuple(shape) == (2, 12)
        expected = np.maximum(np.asarray(x) @ np.asarray(W) + np.asarray(b), 0).reshape(2, 12)
        np.testing.assert_allclose(stax_run(apply, ((W, b), (), ()), x), expected, rtol=1e-5, atol=1e-6)


def test_batchnorm_params_unpack_as_beta_gamma_and_match_stax():
    x = randn(4, (4, 3, 3, 2)) * 3 + 1
    for kwargs in ({}, {"center": False}, {"scale": False}, {"axis": (0, 1)}):
        (init_s, apply_s), (init_f, apply_f) = jax_stax.BatchNorm(**kwargs), fnn_stax.BatchNorm(**kwargs)
        _, params_s = init_s(KEY, x.shape)
        shape, params_f = init_f(KEY, x.shape)
        beta, gamma = params_f  # unpacks like stax's (beta, gamma)
        assert (beta, gamma) == (params_f.beta, params_f.gamma) and shape == x.shape
        assert paths(params_s) == paths(params_f)
        for a, b in zip(jax.tree.leaves(params_s), jax.tree.leaves(params_f)):
            np.testing.assert_array_equal(a, b)
        params = jax.tree.map(lambda a: a + 0.5, params_s)
        np.testing.assert_allclose(apply_f(params, x), apply_s(params, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pool", ["MaxPool", "AvgPool", "SumPool"])
@pytest.mark.parametrize("spec", [None, "NCHW", "NHWC"])
def test_pooling_spec_matches_stax(pool, spec):
    x = randn(5, (2, 5, 6, 3))
    (init_s, apply_s) = getattr(jax_stax, pool)((2, 3), (2, 1), "SAME", spec=spec)
    (init_f, apply_f) = getattr(fnn_stax, pool)((2, 3), (2, 1), "SAME", spec=spec)
    assert tuple(init_s(KEY, x.shape)[0]) == init_f(KEY, x.shape)[0]
    np.testing.assert_allclose(apply_f((), x), apply_s((), x), rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_fan_in_concat_axis_matches_stax(axis):
    xs = [jnp.ones((2, 3, 4)), 2 * jnp.ones((2, 3, 4))]
    shapes = [x.shape for x in xs]
    (init_s, apply_s), (init_f, apply_f) = jax_stax.FanInConcat(axis), fnn_stax.FanInConcat(axis)
    assert tuple(init_s(KEY, shapes)[0]) == tuple(init_f(KEY, shapes)[0])
    np.testing.assert_array_equal(apply_f((), xs), apply_s((), xs))


def test_dropout_rate_is_the_drop_probability_where_stax_keeps():
    """Departure (jax issue 849): stax.Dropout(0.9) keeps 90%; fnn's Dropout(0.1) is the same layer."""
    x = jnp.arange(1.0, 401.0).reshape(20, 20)
    key = jax.random.key(6, impl="rbg")
    y_s = jax_stax.Dropout(0.9)[1]((), x, rng=key)
    y_f = fnn_stax.Dropout(0.1)[1]((), x, rng=key)  # stax's rng= keyword works too
    np.testing.assert_allclose(y_f, y_s, rtol=1e-6)
    assert 0.8 < float(jnp.mean(y_f != 0)) < 0.97
    # stax's mode='eval' constructor argument: the identity, and fnn needs no key for it
    np.testing.assert_array_equal(jax_stax.Dropout(0.9, mode="eval")[1]((), x, rng=key), x)
    np.testing.assert_array_equal(fnn_stax.Dropout(0.1, mode="eval")[1]((), x), x)


def test_activation_layers_match_stax():
    x = jnp.linspace(-6.0, 6.0, 24).reshape(2, 12)
    for name in ["Tanh", "Relu", "Exp", "LogSoftmax", "Softmax", "Softplus", "Sigmoid", "Elu", "LeakyRelu", "Selu"]:
        np.testing.assert_allclose(getattr(fnn_stax, name).apply((), x), getattr(jax_stax, name)[1]((), x),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    # Departure: fnn's Gelu is the exact x Phi(x); stax's uses jax.nn.gelu's tanh approximation by default.
    exact = jax_stax.elementwise(jax.nn.gelu, approximate=False)[1]((), x)
    np.testing.assert_allclose(fnn_stax.Gelu.apply((), x), exact, rtol=1e-5, atol=1e-6)
    e = fnn_stax.elementwise(jnp.sin)
    np.testing.assert_allclose(e.apply((), x), jnp.sin(x))


def test_shape_dependent_and_stax_function_aliases():
    make = lambda shape: fnn_stax.Dense(shape[-1] * 2)  # noqa: E731
    shape, params = fnn_stax.shape_dependent(make).init(KEY, (3, 4))
    shape_s, params_s = jax_stax.shape_dependent(lambda s: jax_stax.Dense(s[-1] * 2))[0](KEY, (3, 4))
    assert shape == tuple(shape_s) == (3, 8)
    np.testing.assert_array_equal(params.b, params_s[1])
    for name in ["glorot", "glorot_normal", "randn", "normal"]:
        w = getattr(fnn_stax, name)()(KEY, (30, 20))
        assert w.shape == (30, 20) and 0 < float(jnp.std(w)) < 0.5
    np.testing.assert_array_equal(fnn_stax.zeros(KEY, (2,)), jax_stax.zeros(KEY, (2,)))
    np.testing.assert_array_equal(fnn_stax.ones(KEY, (2,)), jax_stax.ones(KEY, (2,)))
    x = jnp.linspace(-3.0, 3.0, 12).reshape(3, 4)
    for name in ["relu", "sigmoid", "elu", "leaky_relu", "softplus", "selu", "softmax", "log_softmax", "logsoftmax"]:
        np.testing.assert_allclose(getattr(fnn_stax, name)(x), getattr(jax_stax, name)(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fnn_stax.standardize(x, axis=0), jax_stax.standardize(x, axis=0), rtol=1e-4,
                               atol=1e-5)


def test_keys_reach_stax_layers_inside_fnn_serial_as_in_stax_serial():
    """fnn's serial splits the key as stax's does and hands it to stax's layers as rng=, fnn's layers as key=."""
    x = randn(3, (4, 50))
    for keyword in ("key", "rng"):
        y_f = fnn_stax.serial(fnn_stax.Identity, jax_stax.Dropout(0.5))[1](((), ()), x, **{keyword: KEY})
        y_s = jax_stax.serial(jax_stax.Identity, jax_stax.Dropout(0.5))[1](((), ()), x, rng=KEY)
        np.testing.assert_array_equal(y_f, y_s)
    mixed = jax_stax.serial(jax_stax.Identity, fnn_stax.Dropout(0.5))[1](((), ()), x, rng=KEY)
    np.testing.assert_array_equal(mixed, fnn_stax.serial(fnn_stax.Identity, fnn_stax.Dropout(0.5)).apply(
        ((), ()), x, key=KEY))
