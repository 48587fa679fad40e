"""fnn.layers.summary: totals and per-layer counts against the real params of model.init, output shapes against
the shape chain of the children's own init, the printed table, and the error messages."""
import math

import jax
import pytest

from fnn import layers as L

KEY = jax.random.key(0)


def _size(tree):
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _init(layer, shape):
    """``init_with_state`` traced by ``jax.eval_shape`` (shapes only, no compilation: keeps the tests fast)."""
    box = {}

    def f(key):
        box["out"], params, state = L.init_with_state(layer, key, shape)
        return params, state

    params, state = jax.eval_shape(f, KEY)
    return box["out"], params, state


def _at(tree, path):
    for i in path.split("/") if path else []:
        tree = tree[int(i)]
    return tree


MODELS = {
    "mlp": (lambda: L.mlp([7, 5, 3]), (-1, 4)),
    "cnn": (lambda: L.serial(L.Conv(4, (3, 3), padding="SAME"), L.Relu, L.MaxPool((2, 2), (2, 2)), L.Flatten,
                             L.Dense(10)), (-1, 6, 6, 2)),
    "bn_dropout": (lambda: L.serial(L.Dense(8, use_bias=False), L.BatchNorm(axis=0), L.Relu, L.Dropout(0.5),
                                    L.Dense(3)), (-1, 5)),
    "nested": (lambda: L.serial(L.Dense(6), L.serial(L.Dense(4), L.Tanh).named("head"),
                                L.residual(L.Dense(4), L.Relu), L.FanOut(2), L.parallel(L.Dense(3), L.Dense(2)),
                                L.FanInConcat()), (-1, 5)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_counts_equal_the_traced_params_and_state(name):
    make, shape = MODELS[name]
    model = make()
    out_shape, params, state = _init(model, shape)
    s = L.summary(model, shape)
    assert s.params == _size(params)
    assert s.state == _size(state)
    assert s.param_bytes == sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
    assert s.output_shape == out_shape
    for row in s.rows:  # each row's count is the size of the params (state) entry its path indexes
        assert row.params == _size(_at(params, row.path)), row
        assert row.state == _size(_at(state, row.path) if state is not None else None), row
    assert sum(r.params for r in s.rows if r.level == 0) == s.params


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shapes_follow_the_childrens_init_chain(name):
    make, shape = MODELS[name]
    model = make()
    shapes = {}

    def chain(layer, in_shape, path):  # serial threads the shape; parallel gives child i input i
        for i, child in enumerate(layer.children):
            sub = f"{path}/{i}" if path else str(i)
            x = in_shape[i] if layer.kind == "parallel" else in_shape
            out = _init(child, x)[0]
            shapes[sub] = out
            chain(child, x, sub)
            if layer.kind != "parallel":
                in_shape = out

    chain(model, shape, "")
    s = L.summary(model, shape)
    assert {r.path: r.output_shape for r in s.rows} == shapes


def test_counts_of_a_really_initialized_model():
    model = L.serial(L.Dense(3), L.BatchNorm(axis=0), L.Dropout(0.5), L.Dense(2))
    out_shape, params, state = L.init_with_state(model, KEY, (-1, 2))  # real arrays, not traced shapes
    s = L.summary(model, (-1, 2))
    assert (s.params, s.state, s.output_shape) == (_size(params), _size(state), out_shape)
    assert [r.params for r in s.rows] == [_size(p) for p in params]
    assert s.params == _size(model.init(KEY, (-1, 2))[1])


def test_closed_form_counts_and_state():
    # Dense(d_in -> d_out): d_in d_out + d_out; BatchNorm over 8 features: beta, gamma (16), mean, var, count (17)
    s = L.summary(MODELS["bn_dropout"][0](), (-1, 5))
    assert [r.params for r in s.rows] == [5 * 8, 2 * 8, 0, 0, 8 * 3 + 3]
    assert [r.state for r in s.rows] == [0, 17, 0, 0, 0]
    cnn = L.summary(MODELS["cnn"][0](), (-1, 6, 6, 2))
    assert [r.params for r in cnn.rows] == [3 * 3 * 2 * 4 + 4, 0, 0, 0, 3 * 3 * 4 * 10 + 10]
    assert [r.output_shape for r in cnn.rows][2:] == [(-1, 3, 3, 4), (-1, 36), (-1, 10)]


def test_table_lists_every_row_and_the_totals():
    s = L.summary(MODELS["nested"][0](), (-1, 5))
    assert isinstance(s, str)
    lines = s.splitlines()
    for row in s.rows:
        label = f"{row.name} ({row.kind})" if row.name else row.kind
        shape = "[(-1, 4), (-1, 4)]" if isinstance(row.output_shape, list) and row.kind == "FanOut" else None
        hit = [ln for ln in lines if ln.startswith(row.path + " ") and label in ln]
        assert len(hit) == 1, (row, s)
        assert hit[0].split()[-1] == f"{row.params:,}"
        assert f"{' ' * (2 * row.level)}{label}" in hit[0]
        if shape:
            assert shape in hit[0]
    assert f"Params: {s.params:,} trainable" in s and "State" not in s
    assert "State: 17 non-trainable" in L.summary(MODELS["bn_dropout"][0](), (-1, 5))


def test_depth_and_single_layer():
    model = MODELS["nested"][0]()
    full, top = L.summary(model, (-1, 5)), L.summary(model, (-1, 5), depth=0)
    assert {r.level for r in full.rows} == {0, 1, 2, 3} and {r.level for r in top.rows} == {0}
    assert [r.path for r in top.rows] == [str(i) for i in range(len(model.children))]
    assert top.params == full.params and all(r.level <= 1 for r in L.summary(model, (-1, 5), depth=1).rows)
    one = L.summary(L.Dense(3), (-1, 5))
    assert [(r.path, r.kind, r.output_shape, r.params) for r in one.rows] == [("", "Dense", (-1, 3), 18)]


def test_nothing_is_computed():
    # 10^10 float32 weights (40 GB) would not fit in memory: only shapes are traced
    s = L.summary(L.serial(L.Dense(100_000), L.Dense(100_000)), (-1, 100_000))
    assert s.params == 2 * (100_000 ** 2 + 100_000)


def test_children_that_do_not_add_up_are_not_expanded():
    inner = L.Dense(4)
    shared = L.Layer(inner.init, lambda p, x, **kw: inner.apply(p, inner.apply(p, x)), kind="Twice",
                     children=(inner, inner))  # one params set used twice: the children do not add up
    s = L.summary(L.serial(shared, L.Relu), (-1, 4))
    assert [(r.path, r.kind, r.params) for r in s.rows] == [("0", "Twice", 20), ("1", "Relu", 0)]


def test_errors():
    with pytest.raises(TypeError, match=r"summary: expected a layer .* did you forget to call"):
        L.summary(L.Dense, (-1, 3))
    with pytest.raises(TypeError, match=r"summary: expected a layer .*got int"):
        L.summary(3, (-1, 3))
    with pytest.raises(TypeError, match=r"expected input_shape as a tuple such as \(-1, 784\).*got int: 784"):
        L.summary(L.Dense(3), 784)
    with pytest.raises(ValueError, match=r"expected depth as a non-negative int .* got -1"):
        L.summary(L.Dense(3), (-1, 2), depth=-1)
    with pytest.raises(ValueError, match="FanInSum: all inputs must have the same shape") as info:
        L.summary(L.serial(L.Dense(2), L.FanOut(2), L.parallel(L.Dense(3), L.Dense(4)), L.FanInSum), (-1, 2))
    assert any("'3' (FanInSum)" in note for note in info.value.__notes__)
