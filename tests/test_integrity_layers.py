"""Integrity issue, item 6 and the layer errors: bad ids, bad lengths and wrong widths are named, never computed."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers


def test_embedding_negative_and_large_ids_give_nan_rows_under_jit_and_errors_when_concrete():
    emb = layers.Embedding(10, 3)
    _, params = emb.init(jax.random.key(0), (-1, 4))
    ids = jnp.array([[0, -1, 9, 10]])
    out = jax.jit(emb.apply)(params, ids)
    assert np.isnan(np.asarray(out[0, 1])).all() and np.isnan(np.asarray(out[0, 3])).all()   # -1 was row 9 before
    np.testing.assert_array_equal(out[0, 0], params.table[0])
    np.testing.assert_array_equal(out[0, 2], params.table[9])
    with pytest.raises(ValueError, match=r"Embedding: expected ids in \[0, 10\), got values in \[-1, 10\]"):
        emb.apply(params, ids)
    # the gradient of valid rows is unchanged by the guard
    g = jax.grad(lambda t: jnp.sum(emb.apply(layers.EmbeddingParams(t), jnp.array([[1, 1, 2]]))))(params.table)
    np.testing.assert_array_equal(np.asarray(g)[:, 0], [0, 2, 1, 0, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("bad", [[-1, 3], [3, 9]])
def test_rnn_lengths_outside_zero_to_time_are_refused_when_concrete(bad):
    rnn = layers.RNN(layers.SimpleRNNCell(4))
    _, params = rnn.init(jax.random.key(0), (-1, 5, 2))
    x = jnp.ones((2, 5, 2))
    with pytest.raises(ValueError, match=r"RNN.*expected lengths in \[0, 5\].*got values in \[-?\d+, \d+\]"):
        rnn.apply(params, x, lengths=jnp.array(bad))
    with pytest.raises(TypeError, match=r"expected integer lengths, got dtype float32"):
        rnn.apply(params, x, lengths=jnp.array([2.0, 3.0]))


def test_rnn_lengths_under_jit_are_clipped_to_zero_and_time():
    rnn = layers.RNN(layers.SimpleRNNCell(4))
    _, params = rnn.init(jax.random.key(0), (-1, 5, 2))
    x = jax.random.normal(jax.random.key(1), (2, 5, 2))
    f = jax.jit(lambda lengths: rnn.apply(params, x, lengths=lengths))
    np.testing.assert_array_equal(f(jnp.array([-1, 9])), f(jnp.array([0, 5])))


def test_multi_head_attention_names_a_wrong_feature_width():
    mha = layers.MultiHeadAttention(num_heads=2)
    _, params = mha.init(jax.random.key(0), (-1, 6, 8))
    with pytest.raises(ValueError, match=r"MultiHeadAttention.*expected queries with 8 features .* got shape "
                                         r"\(2, 6, 5\); re-initialise"):
        mha.apply(params, jnp.ones((2, 6, 5)))


def test_integer_images_into_a_convolution_name_the_dtype():
    conv = layers.Conv(2, (3, 3))
    _, params = conv.init(jax.random.key(0), (-1, 8, 8, 1))
    with pytest.raises(TypeError, match=r"Conv.*expected floating-point inputs, got dtype uint8; convert images "
                                        r"first, e.g. X.astype\(np.float32\) / 255"):
        conv.apply(params, np.zeros((2, 8, 8, 1), np.uint8))


# ------------------------------------------------------------- integrity item 4: gradients of another shape
@pytest.mark.parametrize("rule", ["sgd", "momentum", "adam", "rmsprop", "nadam", "lbfgs"])
def test_a_broadcastable_gradient_shape_is_refused_by_every_rule_and_apply_updates(rule):
    from fnn import optimizers
    params = {"W": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    grads = {"W": jnp.ones((4, 3, 2)), "b": jnp.zeros(2)}
    opt = optimizers.from_name(rule, 0.1)
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"the gradient of \['W'\] has shape \(4, 3, 2\) but its \w+ leaf has "
                                         r"shape \(3, 2\)"):
        opt.update(grads, state, params)
    with pytest.raises(ValueError, match=r"apply_updates: the gradient of \['W'\] has shape \(4, 3, 2\)"):
        optimizers.apply_updates(params, grads)


@pytest.mark.parametrize("make", ["sgd", "adam", "momentum"])
@pytest.mark.parametrize("bad, must", [(float("inf"), "be finite"), (float("nan"), "be > 0")])
def test_infinite_or_nan_learning_rates_are_refused(make, bad, must):
    from fnn import optimizers
    with pytest.raises(ValueError, match=rf"{make}: learning_rate must {must}, got learning_rate={bad}"):
        getattr(optimizers, make)(bad)


def test_step_decay_refuses_growth_like_the_other_schedules():
    from fnn.optimizers import schedules
    with pytest.raises(ValueError, match=r"step_decay: factor must lie in \[0, 1\], got factor=2.0; a decay "
                                         r"multiplies"):
        schedules.step_decay(0.1, 10, 2.0)
    assert float(schedules.step_decay(0.1, 10, 1.0)(25)) == pytest.approx(0.1)


@pytest.mark.parametrize("rule", ["sgd", "momentum", "adagrad", "rmsprop", "adam", "nadam", "lbfgs"])
def test_a_state_of_another_optimizer_is_named(rule):
    from fnn import optimizers
    params = {"W": jnp.ones((3, 2))}
    opt, other = optimizers.from_name(rule, 0.1), optimizers.from_name("adadelta", 0.1)
    with pytest.raises((TypeError, ValueError), match=r"expected the \w+ that \w+'s init returns, got \w+; pass the "
                                                     r"state made by this optimizer's init|chain: expected a state "):
        opt.update(params, other.init(params), params)


@pytest.mark.parametrize("make", ["BatchNorm", "LayerNorm"])
def test_normalization_names_a_wrong_feature_width(make):
    layer = layers.BatchNorm(axis=0) if make == "BatchNorm" else layers.LayerNorm()
    _, params, state = layers.init_with_state(layer, jax.random.key(0), (-1, 4))
    kwargs = {} if state is None else {"state": state}
    with pytest.raises(ValueError, match=rf"{make}: expected inputs whose normalized features have shape \(4,\) .*"
                                         r"got inputs of shape \(2, 5\) with features \(5,\); re-initialise"):
        layer.apply(params, jnp.ones((2, 5)), **kwargs)


def test_a_custom_layer_declaring_its_keyword_gets_only_what_it_names():
    """Fresh-reader finding: declaring keywords=("scale",) used to send key/rng/train/state too (TypeError)."""
    def apply(params, x, scale=1.0):
        return x * scale

    model = layers.serial(layers.Dense(2), layers.Layer(lambda k, s: (s, ()), apply, keywords=("scale",)))
    _, params = model.init(jax.random.key(0), (-1, 3))
    x = jnp.ones((1, 3))
    np.testing.assert_allclose(model.apply(params, x, scale=2.0, key=jax.random.key(1), train=False),
                               2 * model.apply(params, x))


def test_train_must_be_a_bool():
    model = layers.serial(layers.Dense(2), layers.Dropout(0.5))
    _, params = model.init(jax.random.key(0), (-1, 3))
    with pytest.raises(TypeError, match=r"serial: train must be a Python bool .* got int 0"):
        model.apply(params, jnp.ones((1, 3)), train=0)


@pytest.mark.parametrize("bad", ["short", "dict", "none"])
def test_a_dense_params_entry_of_the_wrong_form_names_the_layer(bad):
    model = layers.serial(layers.Dense(2))
    _, params = model.init(jax.random.key(0), (-1, 3))
    entry = {"short": params[0][:1], "dict": {"W": params[0].W}, "none": None}[bad]
    with pytest.raises(ValueError, match=r"Dense: expected params DenseParams\(W, b\) \(two arrays\), got"):
        model.apply((entry,), jnp.ones((1, 3)))
