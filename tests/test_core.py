"""fnn.layers: the layer contract, combinators, Dense/mlp/Reshape/Flatten against NumPy and stax, key splitting,
state threading, error messages."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.example_libraries import stax

from fnn import activations as A
from fnn import layers as C

X = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)


def np_dense(p, x):
    W, b = p  # a DenseParams or stax's (W, b) tuple
    return np.asarray(x, np.float64) @ np.asarray(W, np.float64) + np.asarray(b, np.float64)


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ------------------------------------------------------------------------------------ test layers

def AddNoise():
    """Stateless, uses the run-time key: x + N(0, 1) noise drawn from ``rng``."""
    return C.Layer(lambda key, s: (s, ()), lambda p, x, rng=None, **kw: x + jax.random.normal(rng, x.shape))


def Counter(scale=2.0):
    """Stateful: multiplies by ``scale`` and counts its calls in its state (like BatchNorm's running stats)."""
    def init(key, s):
        return s, ()

    def init_with_state(key, s):
        return s, (), {"calls": jnp.zeros((), jnp.int32)}

    def apply(params, x, state=None, **kw):
        y = scale * x
        if state is None:
            return y
        return y, {"calls": state["calls"] + 1}

    return C.Layer(init, apply, init_with_state)


def TrainFlag():
    """Adds 1 at train time, 0 at eval time."""
    return C.Layer(lambda key, s: (s, ()), lambda p, x, train=True, **kw: x + (1.0 if train else 0.0))


# ------------------------------------------------------------------------------------ Layer, Dense

def test_layer_is_a_named_pair_and_callable():
    layer = C.Dense(3)
    init_fun, apply_fun = layer
    assert init_fun is layer.init and apply_fun is layer.apply
    assert C.Relu() is C.Relu and C.Flatten() is C.Flatten and C.Identity() is C.Identity
    assert C.FanInSum() is C.FanInSum


def test_dense_shapes_and_values(key):
    out_shape, p = C.Dense(5).init(key, (-1, 4))
    assert out_shape == (-1, 5)
    assert isinstance(p, C.DenseParams) and p._fields == ("W", "b")
    chex.assert_shape([p.W, p.b], [(4, 5), (5,)])
    W, b = p  # unpacks like stax's (W, b)
    np.testing.assert_allclose(np.asarray(C.Dense(5).apply(p, X)), np_dense(p, X), rtol=1e-5, atol=1e-6)
    x3 = np.ones((2, 7, 4), np.float32)  # extra leading axes are kept
    assert C.Dense(5).init(key, (None, 7, 4))[0] == (None, 7, 5)
    assert C.Dense(5).apply(p, x3).shape == (2, 7, 5)


def test_dense_defaults_match_stax_statistics(key):
    """Glorot-normal W (Var = 2 / (d_in + d_out)) and N(0, 0.01^2) b, as stax."""
    _, p = C.Dense(300).init(key, (-1, 500))
    assert np.var(np.asarray(p.W)) == pytest.approx(2 / 800, rel=0.03)
    assert np.std(np.asarray(p.b)) == pytest.approx(0.01, rel=0.25)


def test_dense_errors(key):
    with pytest.raises(ValueError, match=r"Dense: expected a positive number of units, got out_dim=0"):
        C.Dense(0)
    _, p = C.Dense(5).init(key, (-1, 4))
    with pytest.raises(ValueError, match=r"Dense: expected inputs with last dimension 4, got shape \(3, 6\); "
                                         r".*Flatten"):
        C.Dense(5).apply(p, jnp.ones((3, 6)))
    with pytest.raises(ValueError, match=r"Dense: expected an input shape with a known last dimension"):
        C.Dense(5).init(key, (4, -1))


# ------------------------------------------------------------------------------------ serial and keys

def test_serial_params_and_values(key):
    model = C.serial(C.Dense(5), C.Sigmoid, C.Dense(2), C.Relu)
    out_shape, params = model.init(key, (-1, 4))
    assert out_shape == (-1, 2)
    assert isinstance(params, tuple) and len(params) == 4 and params[1] == () and params[3] == ()
    want = np.maximum(np_dense(params[2], np_sigmoid(np_dense(params[0], X))), 0)
    got = model.apply(params, X)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    assert got.shape == (3, 2)


def _fixed_init(key, shape, dtype=jnp.float32):
    return jax.random.normal(key, shape, dtype)


def test_serial_init_keys_match_stax(key):
    """Same initializers, same key: fnn.serial and stax.serial split the key the same way."""
    ours = C.serial(C.Dense(5, _fixed_init, _fixed_init), C.Relu, C.Dense(3, _fixed_init, _fixed_init))
    theirs = stax.serial(stax.Dense(5, _fixed_init, _fixed_init), stax.Relu, stax.Dense(3, _fixed_init, _fixed_init))
    s1, p1 = ours.init(key, (-1, 4))
    s2, p2 = theirs[0](key, (-1, 4))
    assert tuple(s1) == tuple(s2)
    for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with jax.numpy_rank_promotion("allow"):  # stax's Dense adds its bias by rank promotion
        np.testing.assert_array_equal(np.asarray(ours.apply(p1, X)), np.asarray(theirs[1](p2, X)))


def test_apply_keys_are_split_per_layer(key):
    x = jnp.zeros((2, 3))
    model = C.serial(AddNoise(), AddNoise())
    _, params = model.init(key, x.shape)
    k1, k2 = jax.random.split(key, 2)
    want = jax.random.normal(k1, x.shape) + jax.random.normal(k2, x.shape)
    np.testing.assert_allclose(np.asarray(model.apply(params, x, key=key)), np.asarray(want), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(model.apply(params, x, rng=key)), np.asarray(model.apply(params, x,
                                                                                                         key=key)))
    par = C.serial(C.FanOut(2), C.parallel(AddNoise(), AddNoise()))
    _, pp = par.init(key, x.shape)
    k_fan, k_par = jax.random.split(key, 2)
    ka, kb = jax.random.split(k_par, 2)
    ya, yb = par.apply(pp, x, key=key)
    np.testing.assert_allclose(np.asarray(ya), np.asarray(jax.random.normal(ka, x.shape)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(yb), np.asarray(jax.random.normal(kb, x.shape)), rtol=1e-6)
    # And stax's serial gives the same numbers for the same layers.
    np.testing.assert_array_equal(np.asarray(stax.serial(AddNoise(), AddNoise())[1](params, x, rng=key)),
                                  np.asarray(model.apply(params, x, key=key)))


@jax.numpy_rank_promotion("allow")  # stax's Dense adds its bias by rank promotion
def test_stax_layers_compose_with_fnn_and_back(key):
    mixed = C.serial(stax.Dense(5, _fixed_init, _fixed_init), C.Relu, stax.Dense(2, _fixed_init, _fixed_init))
    _, p = mixed.init(key, (-1, 4))
    want = np_dense(p[2], np.maximum(np_dense(p[0], X), 0))
    np.testing.assert_allclose(np.asarray(mixed.apply(p, X)), want, rtol=1e-5, atol=1e-6)
    init_fun, apply_fun = stax.serial(C.Dense(5), stax.Relu, C.Dense(2))
    _, p = init_fun(key, (-1, 4))
    want = np_dense(p[2], np.maximum(np_dense(p[0], X), 0))
    np.testing.assert_allclose(np.asarray(apply_fun(p, X, rng=key)), want, rtol=1e-5, atol=1e-6)


def test_train_flag_reaches_every_child(key):
    model = C.serial(TrainFlag(), C.FanOut(2), C.parallel(TrainFlag(), C.Identity), C.FanInSum)
    _, p = model.init(key, (-1, 1))
    x = jnp.zeros((1, 1))
    assert float(model.apply(p, x)[0, 0]) == 3.0  # (0 + 1) + 1 + (0 + 1) at train time (the default)
    assert float(model.apply(p, x, train=False)[0, 0]) == 0.0


# ------------------------------------------------------------------------------------ combinators

def test_fanout_parallel_faninsum_concat(key):
    model = C.serial(C.FanOut(3), C.parallel(C.Dense(2), C.Identity, C.Dense(5)), C.FanInConcat(-1))
    out_shape, p = model.init(key, (-1, 4))
    assert out_shape == (-1, 11)
    y = model.apply(p, X)
    want = np.concatenate([np_dense(p[1][0], X), X, np_dense(p[1][2], X)], axis=-1)
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-5, atol=1e-6)

    s = C.serial(C.FanOut(2), C.parallel(C.Dense(4), C.Dense(4)), C.FanInSum)
    out_shape, p = s.init(key, (-1, 4))
    assert out_shape == (-1, 4)
    np.testing.assert_allclose(np.asarray(s.apply(p, X)), np_dense(p[1][0], X) + np_dense(p[1][1], X),
                               rtol=1e-5, atol=1e-6)
    assert C.FanInConcat(0).init(key, [(2, 3), (5, 3)])[0] == (7, 3)
    np.testing.assert_array_equal(C.FanInConcat(0).apply((), [X, X]), np.concatenate([X, X], 0))


def test_residual(key):
    block = C.residual(C.Dense(4), C.Tanh)
    out_shape, p = block.init(key, (-1, 4))
    assert out_shape == (-1, 4)
    dense_params = p[1][0][0]
    np.testing.assert_allclose(np.asarray(block.apply(p, X)), X + np.tanh(np_dense(dense_params, X)),
                               rtol=1e-5, atol=1e-6)


def test_shape_dependent(key):
    same_width = C.shape_dependent(lambda shape: C.Dense(shape[-1]))
    out_shape, p = same_width.init(key, (-1, 4))
    assert out_shape == (-1, 4) and p.W.shape == (4, 4)
    np.testing.assert_allclose(np.asarray(same_width.apply(p, X)), np_dense(p, X), rtol=1e-5, atol=1e-6)
    assert C.init_with_state(same_width, key, (-1, 4))[2] is None


def test_mlp(key):
    model = C.mlp([5, 3], C.Sigmoid, output_activation=C.Softmax)
    out_shape, p = model.init(key, (-1, 4))
    assert out_shape == (-1, 3) and len(p) == 4
    h = np_sigmoid(np_dense(p[0], X))
    z = np_dense(p[2], h)
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(model.apply(p, X)), want, rtol=1e-5, atol=1e-6)
    assert len(C.mlp([7]).init(key, (-1, 4))[1]) == 1
    with pytest.raises(ValueError, match=r"mlp: expected a non-empty list of positive layer widths, got \[5, 0\]"):
        C.mlp([5, 0])
    with pytest.raises(TypeError, match=r"mlp \(activation\): expected a layer .* got the function"):
        C.mlp([5, 2], A.relu)


def test_activation_layers_apply_their_functions(key):
    x = jnp.linspace(-3, 3, 12).reshape(2, 6)
    for layer, f in [(C.Relu, A.relu), (C.Sigmoid, A.sigmoid), (C.Tanh, A.tanh), (C.Elu, A.elu),
                     (C.LeakyRelu, A.leaky_relu), (C.Softplus, A.softplus), (C.Gelu, A.gelu), (C.Selu, A.selu),
                     (C.Softmax, A.softmax), (C.LogSoftmax, A.log_softmax), (C.Step, A.step), (C.Sign, A.sign),
                     (C.Identity, A.identity), (C.Exp, jnp.exp)]:
        shape, p = layer.init(key, (-1, 6))
        assert shape == (-1, 6) and p == ()
        np.testing.assert_array_equal(np.asarray(layer.apply(p, x)), np.asarray(f(x)))


def test_flatten_and_reshape(key):
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    assert C.Flatten.init(key, (-1, 3, 4))[0] == (-1, 12)
    assert C.Flatten.init(key, (None, 3, 4))[0] == (-1, 12)
    np.testing.assert_array_equal(C.Flatten.apply((), x), x.reshape(2, 12))
    r = C.Reshape((4, -1))
    assert r.init(key, (-1, 3, 4))[0] == (-1, 4, 3)
    np.testing.assert_array_equal(r.apply((), x), x.reshape(2, 4, 3))
    assert C.Reshape((2, 6)).init(key, (5, 12))[0] == (5, 2, 6)
    with pytest.raises(ValueError, match=r"Flatten: expected inputs of rank >= 2 \(batch, \.\.\.\), got shape \(5,\)"):
        C.Flatten.init(key, (5,))
    with pytest.raises(ValueError, match=r"Reshape: expected positive sizes with at most one -1, got \(-1, -1\)"):
        C.Reshape((-1, -1))
    with pytest.raises(ValueError, match=r"Reshape: cannot reshape examples of shape \(3, 4\) \(12 values\) to "
                                         r"\(5, -1\)"):
        C.Reshape((5, -1)).init(key, (-1, 3, 4))


def test_jit_vmap_grad_through_serial(key):
    model = C.serial(C.Dense(5), C.Tanh, C.Dense(1))
    _, p = model.init(key, (-1, 4))
    np.testing.assert_allclose(np.asarray(jax.jit(model.apply)(p, X)), np.asarray(model.apply(p, X)), rtol=1e-6)
    g = jax.grad(lambda q: jnp.sum(model.apply(q, X) ** 2))(p)
    chex.assert_trees_all_equal_shapes(g, p)
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(g))
    copies = [model.init(k, (-1, 4))[1] for k in jax.random.split(key, 3)]
    batch = jax.tree.map(lambda *leaves: jnp.stack(leaves), *copies)  # a batch of 3 parameter sets
    ys = jax.vmap(model.apply, in_axes=(0, None))(batch, X)
    assert ys.shape == (3, 3, 1)
    one = jax.tree.map(lambda a: a[1], batch)
    np.testing.assert_allclose(np.asarray(ys[1]), np.asarray(model.apply(one, X)), rtol=1e-6)


# ------------------------------------------------------------------------------------ state

def test_state_threads_through_serial_and_parallel(key):
    model = C.serial(Counter(2.0), C.Dense(3), C.FanOut(2), C.parallel(Counter(3.0), C.Identity), C.FanInSum)
    assert model.init_with_state is not None
    out_shape, params, state = C.init_with_state(model, key, (-1, 4))
    assert out_shape == (-1, 3)
    _, params_only = model.init(key, (-1, 4))
    chex.assert_trees_all_equal(params, params_only)
    assert state[1] is None and state[2] is None and state[4] is None
    assert int(state[0]["calls"]) == 0 and int(state[3][0]["calls"]) == 0 and state[3][1] is None

    h = np_dense(params[1], 2 * X)
    want = 3 * h + h
    y, new_state = model.apply(params, X, state=state)
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-5, atol=1e-6)
    assert int(new_state[0]["calls"]) == 1 and int(new_state[3][0]["calls"]) == 1
    chex.assert_trees_all_equal_structs(new_state, state)

    y2, state2 = jax.jit(model.apply)(params, X, state=new_state)
    np.testing.assert_allclose(np.asarray(y2), want, rtol=1e-5, atol=1e-6)
    assert int(state2[0]["calls"]) == 2 and int(state2[3][0]["calls"]) == 2
    # Without state=, a stateful model behaves like stax: outputs only.
    np.testing.assert_allclose(np.asarray(model.apply(params, X)), want, rtol=1e-5, atol=1e-6)


def test_stateless_models_have_no_state(key):
    model = C.serial(C.Dense(3), C.Relu)
    assert model.init_with_state is None
    assert C.init_with_state(model, key, (-1, 4))[2] is None
    assert C.init_with_state(stax.Dense(3), key, (-1, 4))[2] is None


def test_state_structure_error(key):
    model = C.serial(Counter(), C.Dense(2))
    _, params, state = C.init_with_state(model, key, (-1, 4))
    with pytest.raises(ValueError, match=r"serial: expected state to be a tuple with one entry per layer \(2\), "
                                         r"got .*init_with_state"):
        model.apply(params, X, state=(state[0],))
    par = C.serial(C.FanOut(2), C.parallel(Counter(), Counter()))
    _, params, state = C.init_with_state(par, key, (-1, 4))
    with pytest.raises(ValueError, match=r"parallel: expected state to be a tuple with one entry per layer \(2\)"):
        par.apply(params, X, state=(None, (state[1][0],)))


# ------------------------------------------------------------------------------------ errors

def test_combinator_errors(key):
    with pytest.raises(ValueError, match=r"serial: expected at least one layer, got none"):
        C.serial()
    with pytest.raises(ValueError, match=r"parallel: expected at least one layer, got none"):
        C.parallel()
    with pytest.raises(TypeError, match=r"serial \(layer 1\): expected a layer .*function.*Dense\(10\) instead of "
                                        r"Dense"):
        C.serial(C.Relu, C.Dense)
    with pytest.raises(TypeError, match=r"serial \(layer 0\): expected a layer \(an \(init, apply\) pair\), got int"):
        C.serial(3)
    with pytest.raises(ValueError, match=r"FanOut: expected a positive number of copies, got 0"):
        C.FanOut(0)
    with pytest.raises(ValueError, match=r"parallel: expected 2 input shapes \(one per layer\), .*FanOut\(2\)"):
        C.parallel(C.Relu, C.Relu).init(key, [(-1, 3)])
    with pytest.raises(ValueError, match=r"parallel: expected 2 inputs \(one per layer\), got 3"):
        C.parallel(C.Relu, C.Relu).apply(((), ()), [X, X, X])
    with pytest.raises(ValueError,
                       match=r"FanInSum: all inputs must have the same shape, got \[\(-1, 3\), \(-1, 4\)\]"):
        C.FanInSum.init(key, [(-1, 3), (-1, 4)])


def test_fan_in_concat_rejects_inputs_that_disagree_off_the_concatenation_axis():
    layer = C.serial(C.FanOut(2), C.parallel(C.Dense(3), C.Dense(4)), C.FanInConcat(-1))
    out_shape, _ = layer.init(jax.random.key(0), (-1, 5))
    assert out_shape == (-1, 7)
    bad = C.FanInConcat(axis=1)
    with pytest.raises(ValueError, match=r"FanInConcat: inputs must agree on every axis but 1.*\(2, 3\), \(4, 3\)"):
        bad.init(jax.random.key(0), [(2, 3), (4, 3)])
