"""The layer record: state, name, kind and children are real fields that survive ``_replace`` and copies; the
run-time keyword table; unknown keywords and wrong params counts raise; the key reaches custom layers under the
name they read."""
import copy
import inspect
import re

import jax
import jax.example_libraries.stax as jax_stax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers as L

X = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)), jnp.float32)


def np_dense(p, x):
    return np.asarray(x, np.float64) @ np.asarray(p.W, np.float64) + np.asarray(p.b, np.float64)


# ------------------------------------------------------------------------------------ state is a field

def test_replace_keeps_state_name_and_children(key):
    bn = L.BatchNorm(axis=0)
    wrapped = bn._replace(apply=lambda p, x, **kw: bn.apply(p, x, **kw))
    assert wrapped.stateful and wrapped.init_with_state is bn.init_with_state and wrapped.kind == "BatchNorm"
    _, params, state = L.init_with_state(wrapped, key, (-1, 4))
    assert state.mean.shape == (4,)
    model = L.serial(L.Dense(4).named("fc1"), L.BatchNorm(axis=0), L.Relu)
    for again in (model._replace(apply=model.apply), model._replace(name="net"), copy.copy(model),
                  copy.deepcopy(model)):
        assert again.stateful and again.kind == "serial" and [c.label for c in again.children] == [
            "fc1", "BatchNorm", "Relu"]
    assert model._replace(name="net").name == "net" and model.name is None
    again = model._replace(apply=model.apply)
    assert again.stateful and again.children == model.children and again.children[0].name == "fc1"
    _, params, state = L.init_with_state(again, key, (-1, 3))
    assert state[0] is None and isinstance(state[1], L.BatchNormState) and state[2] is None
    y, new_state = again.apply(params, X[:, :3], state=state)
    assert int(new_state[1].count) == 1
    assert copy.deepcopy(model).stateful and copy.copy(model).children[0].name == "fc1"


def test_serial_of_a_replaced_batchnorm_stays_stateful(key):
    bn = L.BatchNorm(axis=0)._replace(apply=L.BatchNorm(axis=0).apply)
    model = L.serial(L.Dense(3), bn)
    assert model.stateful
    _, params, state = L.init_with_state(model, key, (-1, 4))
    assert int(state[1].count) == 0


def test_rebuilding_from_the_two_functions_drops_state_with_an_error(key):
    bn = L.BatchNorm(axis=0)
    bare = L.Layer(*bn)  # a genuine rebuild: init and apply only
    assert not bare.stateful
    with pytest.raises(ValueError, match=r"init_with_state: the layer 'BatchNorm' has the apply of a stateful "
                                         r"layer but no init_with_state: it was rebuilt .*layer._replace"):
        L.init_with_state(bare, key, (-1, 4))
    with pytest.raises(ValueError, match=r"has the apply of a stateful layer"):
        L.init_with_state(L.serial(L.Dense(4), tuple(bn)), key, (-1, 4))
    shape, params = L.serial(L.Dense(4), tuple(bn)).init(key, (-1, 4))  # the stax route keeps working
    assert shape == (-1, 4) and len(params) == 2


def test_fields_are_read_only_and_replace_names_them():
    layer = L.Dense(3)
    with pytest.raises(AttributeError, match=r"Layer: the field 'init_with_state' is read-only; make a new layer "
                                             r"with layer._replace\(init_with_state=...\)"):
        layer.init_with_state = lambda key, s: None
    with pytest.raises(TypeError, match=r"Layer._replace: got unknown field\(s\) \['stat'\]"):
        layer._replace(stat=None)


def test_layer_still_unpacks_and_indexes_like_a_stax_pair(key):
    layer = L.BatchNorm(axis=0).named("bn")
    init_fun, apply_fun = layer
    assert len(layer) == 2 and layer[0] is init_fun is layer.init and layer[1] is apply_fun is layer.apply
    assert L.Layer(init_fun, apply_fun)[1] is apply_fun and tuple(layer) == (init_fun, apply_fun)
    model = jax_stax.serial(L.Dense(3), L.Relu)  # fnn layers inside stax's own serial
    assert model[0](key, (-1, 4))[0] == (-1, 3)


# ------------------------------------------------------------------------------------ names, kinds, children

def test_names_kinds_and_children():
    model = L.serial(L.Dense(8).named("fc1"), L.Tanh, L.Dense(2), L.Softmax)
    assert [c.label for c in model.children] == ["fc1", "Tanh", "Dense", "Softmax"]
    assert [c.kind for c in model.children] == ["Dense", "Tanh", "Dense", "Softmax"]
    assert model.kind == "serial" and model.name is None and L.Relu.named("r").kind == "Relu"
    assert L.Relu.name is None  # naming returns a new layer; the shared Relu value is untouched
    par = L.parallel(L.Dense(2), L.Identity)
    assert par.kind == "parallel" and len(par.children) == 2
    assert L.mlp([4, 2]).kind == "mlp" and len(L.mlp([4, 2]).children) == 3
    assert L.residual(L.Dense(4)).kind == "residual"
    assert L.Layer(*jax_stax.Dense(3)).kind == "Dense"  # read from stax's apply_fun
    with pytest.raises(ValueError, match=r"serial: layers \[0, 2\] are all named 'h'; names identify layers in "
                                         r"diagnostics, give each its own name"):
        L.serial(L.Dense(3).named("h"), L.Relu, L.Dense(3).named("h"))
    with pytest.raises(ValueError, match=r"Layer: expected a name as a non-empty string without '/', got 'a/b'"):
        L.Dense(3).named("a/b")


# ------------------------------------------------------------------------------------ run-time keywords

def test_keyword_table_lists_every_keyword_a_layer_reads():
    read = set()
    for module in (L.base, L.dense, L.units, L.conv, L.pooling, L.normalization, L.dropout, L.recurrent,
                   L.attention):
        src = inspect.getsource(module)
        read |= set(re.findall(r"kwargs\.get\(\"(\w+)\"", src))
        for sig in re.findall(r"def apply\(params, \w+, \*, ([^)]*)\*\*kwargs\)", src):
            read |= {a.split("=")[0].strip() for a in sig.split(",") if a.strip()}
    assert read and read <= set(L.KEYWORDS), read - set(L.KEYWORDS)
    assert {"key", "rng", "train", "state", "bn_update", "mask", "lengths", "initial_carry"} <= set(L.KEYWORDS)
    assert set(L.COMMON_KEYWORDS) <= set(L.KEYWORDS)


def test_unknown_keyword_raises_naming_it_and_the_accepted_ones(key):
    model = L.serial(L.Dense(4), L.Dropout(0.5), L.Dense(2))
    _, params = model.init(key, (-1, 4))
    with pytest.raises(TypeError, match=r"serial: got the keyword argument\(s\) \['trian'\], which no layer of this "
                                        r"model accepts; accepted: \[.*'key'.*'train'.*\]"):
        model.apply(params, X, key=key, trian=False)
    strict = L.serial(L.Dense(4), L.BatchNorm(axis=0))
    _, params = strict.init(key, (-1, 4))
    with pytest.raises(TypeError, match=r"\['mask'\], which no layer .*accepted: \['bn_update', 'key', 'rng', "
                                        r"'state', 'train'\]"):
        strict.apply(params, X, mask=jnp.ones((5, 1), bool))
    strict.apply(params, X, bn_update="cumulative")  # BatchNorm declares it
    outer = L.parallel(L.serial(L.Dense(2)), L.Dense(2))
    _, params = outer.init(key, [(-1, 4), (-1, 4)])
    with pytest.raises(TypeError, match=r"parallel: got the keyword argument\(s\) \['lenghts'\]"):
        outer.apply(params, [X, X], lenghts=3)


def test_inner_combinators_get_only_what_their_layers_accept(key):
    weigh = L.Layer(lambda k, s: (s, ()), lambda p, x, lengths=None, **kw: x * lengths[:, None],
                    keywords=("lengths",))  # reads lengths=, as RNN does
    inner = L.serial(L.Dense(2), L.Relu)
    model = L.serial(weigh, inner)  # lengths reaches `weigh` only: the inner serial would reject it
    _, params = model.init(key, (-1, 4))
    lengths = jnp.arange(5.0)
    y = model.apply(params, X, lengths=lengths, train=False)
    np.testing.assert_allclose(y, np.maximum(np_dense(params[1][0], X * lengths[:, None]), 0), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(TypeError, match=r"serial: got the keyword argument\(s\) \['lengths'\]"):
        inner.apply(params[1], X, lengths=lengths)
    assert model.accepts == {"key", "rng", "train", "state", "lengths"}


def Noise(style):
    """x + N(0, 1) noise from the run-time key, read the way a user writes it."""
    if style == "docs":      # written from docs/layers.md: key=
        def apply(params, x, key=None, **kwargs):
            return x + jax.random.normal(key, x.shape)
    elif style == "stax":    # written like stax's layers: rng in **kwargs
        def apply(params, x, **kwargs):
            return x + jax.random.normal(kwargs["rng"], x.shape)
    else:                    # no **kwargs at all
        def apply(params, x, key=None, train=True):
            return x + (jax.random.normal(key, x.shape) if train else 0.0)
    return L.Layer(lambda k, s: (s, ()), apply)


@pytest.mark.parametrize("style", ["docs", "stax", "strict"])
def test_custom_layers_receive_the_key_under_the_name_they_read(key, style):
    model = L.serial(L.Identity, Noise(style))
    _, params = model.init(key, (-1, 4))
    want = X + jax.random.normal(jax.random.split(key, 2)[1], X.shape)  # serial's key for layer 1
    np.testing.assert_allclose(model.apply(params, X, key=key), want, rtol=1e-6)
    np.testing.assert_allclose(model.apply(params, X, rng=key), want, rtol=1e-6)
    if style == "strict":  # a model keyword the layer does not take is not passed to it
        np.testing.assert_array_equal(model.apply(params, X, key=key, train=False), X)


def test_declared_custom_keyword_is_accepted_and_delivered(key):
    scale = L.Layer(lambda k, s: (s, ()), lambda p, x, temperature=1.0, **kw: x / temperature,
                    keywords=("temperature",))
    model = L.serial(L.Dense(3), scale)
    _, params = model.init(key, (-1, 4))
    np.testing.assert_allclose(model.apply(params, X, temperature=2.0), np_dense(params[0], X) / 2, rtol=1e-5)
    assert "temperature" in model.accepts


def test_key_is_split_inside_a_stax_serial_too(key):
    """rng wins over key: inside stax's serial only rng is split per layer, so two Dropouts draw two masks."""
    model = L.serial(jax_stax.serial(L.Dropout(0.5), L.Dropout(0.5)))
    _, params = model.init(key, (-1, 4000))
    y = np.asarray(model.apply(params, jnp.ones((2, 4000)), key=key))
    assert set(np.unique(y)) <= {0.0, 4.0}
    assert abs(np.mean(y > 0) - 0.25) < 0.02  # independent masks: kept twice with probability 1/4


# ------------------------------------------------------------------------------------ params count

def test_params_count_must_match_the_layers(key):
    model = L.serial(L.Dense(3), L.Relu, L.Dense(2))
    _, params = model.init(key, (-1, 4))
    assert model.apply(params, X).shape == (5, 2)
    with pytest.raises(ValueError, match=r"serial: expected params with one entry per layer \(3\), got 2 entries; "
                                         r"build them with this model's init"):
        model.apply(params[:2], X)
    with pytest.raises(ValueError, match=r"serial: expected params with one entry per layer \(3\), got 4 entries"):
        model.apply(params + ((),), X)
    with pytest.raises(ValueError, match=r"serial: expected params with one entry per layer \(3\), got dict"):
        model.apply({"a": 1}, X)
    par = L.serial(L.FanOut(2), L.parallel(L.Dense(2), L.Identity))
    _, params = par.init(key, (-1, 4))
    with pytest.raises(ValueError, match=r"parallel: expected params with one entry per layer \(2\), got 1 entries"):
        par.apply((params[0], params[1][:1]), X)
