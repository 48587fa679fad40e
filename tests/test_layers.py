"""Contract tests over a registry of every layer: shapes, jit == eager, finite gradients, vmap over params.

Adding a layer = adding one line to ``REGISTRY``; ``test_registry_covers_every_layer`` fails until it is there.
Also: the error messages of bad hyper-parameters and bad input shapes.
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers as L

F = "float"
I = "int"  # integer ids in [0, 10)

# (constructor name, layer, input shape, input kind, apply kwargs)
REGISTRY = [
    ("Dense", L.Dense(3), (4, 5), F, {}),
    ("mlp", L.mlp([6, 3], L.Tanh), (4, 5), F, {}),
    ("serial", L.serial(L.Dense(4), L.Relu, L.Dense(2)), (4, 5), F, {}),
    ("parallel", L.serial(L.FanOut(2), L.parallel(L.Dense(3), L.Dense(2)), L.FanInConcat(-1)), (4, 5), F, {}),
    ("FanOut", L.serial(L.FanOut(3), L.FanInSum), (4, 5), F, {}),
    ("FanInSum", L.serial(L.FanOut(2), L.parallel(L.Dense(5), L.Identity), L.FanInSum), (4, 5), F, {}),
    ("FanInConcat", L.serial(L.FanOut(2), L.parallel(L.Identity, L.Tanh), L.FanInConcat(1)), (4, 3, 2), F, {}),
    ("residual", L.residual(L.Dense(5), L.Relu, L.Dense(5)), (4, 5), F, {}),
    ("shape_dependent", L.shape_dependent(lambda s: L.Dense(s[-1])), (4, 5), F, {}),
    ("elementwise", L.elementwise(jnp.sin), (4, 5), F, {}),
    ("Identity", L.Identity, (4, 5), F, {}),
    ("Flatten", L.Flatten, (4, 2, 3), F, {}),
    ("Reshape", L.Reshape((3, -1)), (4, 6), F, {}),
    ("Relu", L.Relu(), (4, 5), F, {}),
    ("Sigmoid", L.Sigmoid, (4, 5), F, {}),
    ("Tanh", L.Tanh, (4, 5), F, {}),
    ("Elu", L.Elu, (4, 5), F, {}),
    ("LeakyRelu", L.LeakyRelu, (4, 5), F, {}),
    ("Softplus", L.Softplus, (4, 5), F, {}),
    ("Gelu", L.Gelu, (4, 5), F, {}),
    ("Selu", L.Selu, (4, 5), F, {}),
    ("Softmax", L.Softmax, (4, 5), F, {}),
    ("LogSoftmax", L.LogSoftmax, (4, 5), F, {}),
    ("Step", L.Step, (4, 5), F, {}),
    ("Sign", L.Sign, (4, 5), F, {}),
    ("Exp", L.Exp, (4, 5), F, {}),
    ("GeneralConv", L.GeneralConv(("NCHW", "OIHW", "NCHW"), 3, (2, 3), (1, 2)), (2, 2, 5, 6), F, {}),
    ("Conv", L.Conv(3, (3, 3), (2, 2), "SAME"), (2, 6, 5, 2), F, {}),
    ("Conv1D", L.Conv1D(3, (3,), padding=((1, 0),)), (2, 7, 2), F, {}),
    ("Conv3D", L.Conv3D(2, (2, 2, 2)), (2, 3, 4, 3, 1), F, {}),
    ("GeneralConvTranspose", L.GeneralConvTranspose(("NCHW", "OIHW", "NCHW"), 2, (2, 2), (2, 1)), (2, 3, 3, 4),
     F, {}),
    ("ConvTranspose", L.ConvTranspose(3, (3, 3), (2, 2)), (2, 3, 4, 2), F, {}),
    ("Conv1DTranspose", L.Conv1DTranspose(2, (3,), (2,), "SAME"), (2, 5, 3), F, {}),
    ("MaxPool", L.MaxPool((2, 2), (2, 2)), (2, 5, 4, 3), F, {}),
    ("AvgPool", L.AvgPool((3, 2), (2, 1), "SAME"), (2, 5, 4, 3), F, {}),
    ("SumPool", L.SumPool((2,), spec="NCH"), (2, 3, 6), F, {}),
    ("GlobalAvgPool", L.GlobalAvgPool(), (2, 4, 3, 5), F, {}),
    ("GlobalMaxPool", L.GlobalMaxPool("NCHW"), (2, 5, 4, 3), F, {}),
    ("BatchNorm", L.BatchNorm(), (4, 3, 3, 2), F, {}),
    ("BatchNorm", L.BatchNorm(axis=0, center=False), (6, 3), F, {}),
    ("LayerNorm", L.LayerNorm(), (4, 5), F, {}),
    ("LayerNorm", L.LayerNorm(axis=(1, 2), scale=False), (4, 3, 2), F, {}),
    ("Dropout", L.Dropout(0.3), (4, 5), F, {"key": jax.random.key(3, impl="rbg")}),
    ("Dropout", L.Dropout(0.3), (4, 5), F, {"train": False}),
    ("RandomCrop", L.RandomCrop(1), (2, 4, 5, 3), F, {"key": jax.random.key(3, impl="rbg")}),
    ("RandomFlip", L.RandomFlip(), (2, 4, 5, 3), F, {"key": jax.random.key(3, impl="rbg")}),
    ("RandomCrop", L.RandomCrop(1), (2, 4, 5, 3), F, {"train": False}),
    ("Embedding", L.Embedding(10, 3), (4, 5), I, {}),
    ("Maxout", L.Maxout(3, 4), (4, 5), F, {}),
    ("RBF", L.RBF(4), (4, 5), F, {}),
    ("RBF", L.RBF(4, normalize=True, width=2.0), (4, 5), F, {}),
    ("RNN", L.RNN(L.SimpleRNNCell(3)), (2, 4, 5), F, {}),
    ("RNN", L.RNN(L.LSTMCell(3), return_sequences=False), (2, 4, 5), F, {}),
    ("RNN", L.RNN(L.GRUCell(3), reverse=True), (2, 4, 5), F, {}),
    ("Bidirectional", L.Bidirectional(L.RNN(L.GRUCell(3))), (2, 4, 5), F, {}),
    ("MultiHeadAttention", L.MultiHeadAttention(2), (2, 4, 6), F, {}),
]
IDS = [f"{i}-{entry[0]}" for i, entry in enumerate(REGISTRY)]

# The "rbg" PRNG compiles far faster than the default threefry on CPU (the init of every new shape compiles its
# draws); layers must work with any key implementation anyway.
def _key(seed):
    return jax.random.key(seed, impl="rbg")


LOWERCASE_LAYERS = {"serial", "parallel", "shape_dependent", "residual", "elementwise", "mlp"}


def _inputs(shape, kind, seed=1):
    rng = np.random.default_rng(seed)  # NumPy draws: no compilation per input shape
    if kind == I:
        return jnp.asarray(rng.integers(0, 10, shape), jnp.int32)
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def test_registry_covers_every_layer():
    # Cells are one-step functions run by RNN (tested in test_recurrent.py); RNNLayer is RNN's return type;
    # Summary/SummaryRow are the table fnn.layers.summary returns (tests/test_summary.py).
    public = {n for n in L.__all__ if n[0].isupper() and not n.endswith(("Params", "State", "Cell"))
              and n not in ("Layer", "RNNLayer", "KEYWORDS", "COMMON_KEYWORDS", "Summary", "SummaryRow")}
    public |= LOWERCASE_LAYERS
    assert {entry[0] for entry in REGISTRY} == public


@pytest.mark.parametrize("name,layer,shape,kind,kw", REGISTRY, ids=IDS)
def test_layer_contract(name, layer, shape, kind, kw):
    """init's shape == apply's shape; jit == eager; grad finite; vmap over a batch of params == one by one."""
    init, apply = layer  # unpacks like stax's (init_fun, apply_fun)
    x = _inputs(shape, kind)
    out_shape, params = init(_key(0), shape)
    y = apply(params, x, **kw)
    assert tuple(out_shape) == y.shape
    # an unknown batch size (-1) stays unknown; the other dimensions are the same
    assert tuple(init(_key(0), (-1,) + shape[1:])[0]) == (-1,) + y.shape[1:]

    # one compiled program: apply, grad (w.r.t. params and float inputs), and vmap over a batch of params (over a
    # batch of inputs for parameter-free layers)
    def f(params, x):
        return jnp.sum(jnp.sin(apply(params, x, **kw)))

    has_params = bool(jax.tree.leaves(params))
    if has_params:
        _, params_1 = init(_key(1), shape)
        batch = jax.tree.map(lambda *a: np.stack(a), params, params_1)
        vmapped = lambda batch: jax.vmap(lambda p: apply(p, x, **kw))(batch)  # noqa: E731
    else:
        batch = jnp.stack([x, 2 * x])
        vmapped = jax.vmap(lambda x: apply(params, x, **kw))

    @jax.jit
    def compiled(params, x, batch):
        return apply(params, x, **kw), jax.grad(f, argnums=(0,) if kind == I else (0, 1))(params, x), vmapped(batch)

    y_jit, grads, ys = compiled(params, x, batch)

    # jit == eager
    np.testing.assert_allclose(y_jit, y, rtol=2e-5, atol=2e-6)

    # grad is finite, and not identically 0 except for step units
    for g in jax.tree.leaves(grads):
        assert np.all(np.isfinite(g))
    if kind == F and name not in ("Step", "Sign"):  # the step units have zero derivative by definition
        assert np.any(np.asarray(grads[1]) != 0)

    # vmap: each slice equals the unbatched call
    np.testing.assert_allclose(ys[0], y, rtol=2e-5, atol=2e-6)
    if has_params:
        np.testing.assert_allclose(ys[1], apply(params_1, x, **kw), rtol=2e-5, atol=2e-6)
    else:
        np.testing.assert_allclose(ys[1], apply(params, 2 * x, **kw), rtol=2e-5, atol=2e-6)


def test_stateless_layers_have_no_state_and_batchnorm_has_one():
    _, _, state = L.init_with_state(L.serial(L.Dense(3), L.Relu), _key(0), (-1, 4))
    assert state is None and L.serial(L.Dense(3), L.Relu).init_with_state is None  # no burden on stateless models
    _, params, state = L.init_with_state(L.serial(L.Dense(3), L.BatchNorm(axis=0)), _key(0), (-1, 4))
    assert state[0] is None and isinstance(state[1], L.BatchNormState)
    chex.assert_trees_all_equal_shapes(state[1].mean, params[1].beta)


def test_params_are_named_tuples():
    key = _key(0)
    cases = [
        (L.Conv(2, (3, 3)), (1, 5, 5, 1), L.ConvParams, ("W", "b")),
        (L.BatchNorm(), (2, 3, 3, 2), L.BatchNormParams, ("beta", "gamma")),
        (L.LayerNorm(), (2, 3), L.LayerNormParams, ("beta", "gamma")),
        (L.Maxout(2, 3), (2, 3), L.MaxoutParams, ("W", "b")),
        (L.RBF(2), (2, 3), L.RBFParams, ("centers", "widths")),
        (L.Embedding(5, 2), (2, 3), L.EmbeddingParams, ("table",)),
    ]
    for layer, shape, cls, fields in cases:
        _, params = layer.init(key, shape)
        assert type(params) is cls and params._fields == fields
    path = jax.tree_util.keystr(jax.tree_util.tree_leaves_with_path(L.serial(L.Dense(2), L.Conv(2, (1, 1))).init(
        key, (1, 1, 1, 3))[1])[2][0])
    assert path == "[1].W"


BAD = [
    (lambda: L.Conv(0, (3, 3)), "Conv: expected a positive number of output channels, got out_chan=0"),
    (lambda: L.Conv(2, (3, -1)), r"Conv: expected filter_shape as a tuple of positive ints, got \(3, -1\)"),
    (lambda: L.Conv(2, (3, 3), strides=(1,)), r"Conv: expected strides with 2 entries"),
    (lambda: L.Conv(2, (3, 3), padding="FULL"), r"Conv: expected padding in \('VALID', 'SAME', 'SAME_LOWER'\)"),
    (lambda: L.GeneralConv(("NHWC", "HWIO"), 2, (3, 3)), "GeneralConv: expected dimension_numbers as three"),
    (lambda: L.GeneralConv(("NHWC", "HWIO", "NHW"), 2, (3, 3)), "GeneralConv: dimension_numbers .* do not describe"),
    (lambda: L.Conv(2, (5, 5)).init(_key(0), (-1, 3, 3, 1)),
     r"Conv: filter_shape \(5, 5\) is larger than the \(padded\) input"),
    (lambda: L.Conv(2, (3, 3)).init(_key(0), (-1, 28, 28)),
     r"Conv: expected an input shape of rank 4 \(NHWC\), got \(-1, 28, 28\)"),
    (lambda: L.Conv1DTranspose(0, (3,)), "Conv1DTranspose: expected a positive number of output channels"),
    (lambda: L.MaxPool((2, 0)), r"MaxPool: expected window_shape as a tuple of positive ints"),
    (lambda: L.AvgPool((2, 2), spec="NHW"), r"AvgPool: expected spec as a string of 4 distinct letters"),
    (lambda: L.SumPool((4, 4)).init(_key(0), (-1, 3, 8, 1)),
     r"SumPool: window \(4, 4\) is larger than the \(padded\) input \(-1, 3, 8, 1\)"),
    (lambda: L.MaxPool((2, 2)).init(_key(0), (-1, 8, 8)),
     r"MaxPool: expected an input shape of rank 4 \(NHWC\) for a 2-D window \(2, 2\), got shape \(-1, 8, 8\)"),
    (lambda: L.GlobalAvgPool().init(_key(0), (-1, 8)), r"GlobalAvgPool: expected inputs of rank >= 3"),
    (lambda: L.BatchNorm(momentum=1.0), r"BatchNorm: expected momentum in \[0, 1\), got 1.0"),
    (lambda: L.BatchNorm(epsilon=0.0), r"BatchNorm: expected epsilon > 0"),
    (lambda: L.BatchNorm().init(_key(0), (-1, 10)), r"BatchNorm: axis \(0, 1, 2\) is out of range for "
     r"inputs of rank 2; for \(batch, features\) inputs use axis=0"),
    (lambda: L.BatchNorm(axis=1).init(_key(0), (-1, 10)), "BatchNorm: the batch axis must be one of"),
    (lambda: L.LayerNorm(axis=0).init(_key(0), (-1, 10)), "LayerNorm: axis .* includes the batch axis"),
    (lambda: L.Dropout(1.0), r"Dropout: expected rate \(the probability of dropping\) in \[0, 1\), got 1.0"),
    (lambda: L.Dropout(-0.1), r"Dropout: expected rate .* got -0.1"),
    (lambda: L.Dropout(0.5, mode="test"), "Dropout: expected mode in"),
    (lambda: L.Embedding(0, 3), "Embedding: expected a positive int for vocab_size, got 0"),
    (lambda: L.Maxout(3, k=0), "Maxout: expected a positive int for k, got 0"),
    (lambda: L.Maxout(0), "Maxout: expected a positive int for out_dim, got 0"),
    (lambda: L.RBF(0), "RBF: expected a positive int for units, got 0"),
    (lambda: L.RBF(3, width=-1.0), "RBF: expected a positive width, got width=-1.0"),
    (lambda: L.RBF(3).init(_key(0), (-1, -1)), "RBF: expected an input shape with a known last"),
]


@pytest.mark.parametrize("make,match", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_hyper_parameters_and_shapes_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("layer,shape,bad,match", [
    (L.Conv(2, (3, 3)), (2, 5, 5, 1), (5, 5, 1), r"Conv: expected inputs of rank 4 \(NHWC\), got shape \(5, 5, 1\)"),
    (L.Conv(2, (3, 3)), (2, 5, 5, 1), (2, 5, 5, 3), r"Conv: expected 1 input channels on axis 3 \(NHWC\), got shape"),
    (L.Conv1D(2, (3,)), (2, 5, 1), (2, 5), r"Conv1D: expected inputs of rank 3 \(NHC\), got shape \(2, 5\)"),
    (L.Conv3D(2, (1, 1, 1)), (2, 3, 3, 3, 1), (2, 3, 3, 1), r"Conv3D: expected inputs of rank 5 \(NDHWC\)"),
    (L.ConvTranspose(2, (2, 2)), (2, 3, 3, 1), (3, 3, 1), r"ConvTranspose: expected inputs of rank 4 \(NHWC\)"),
    (L.AvgPool((2, 2)), (2, 4, 4, 1), (4, 4, 1), r"AvgPool: expected inputs of rank 4 \(NHWC\) for a 2-D window"),
    (L.MaxPool((2,), spec="NCH"), (2, 1, 4), (2, 1, 4, 4), r"MaxPool: expected inputs of rank 3 \(NCH\)"),
    (L.GlobalMaxPool(), (2, 4, 4, 1), (2, 4), r"GlobalMaxPool: expected inputs of rank >= 3 .* got shape \(2, 4\)"),
    (L.Maxout(2, 3), (2, 4), (2, 5), r"Maxout: expected inputs with last dimension 4, got shape \(2, 5\)"),
    (L.RBF(2), (2, 4), (2, 3), r"RBF: expected inputs with last dimension 4, got shape \(2, 3\)"),
    (L.BatchNorm(), (2, 3, 3, 1), (2, 3), r"BatchNorm: axis \(0, 1, 2\) is out of range for inputs of rank 2"),
])
def test_bad_inputs_raise_naming_the_layer(layer, shape, bad, match):
    _, params = layer.init(_key(0), shape)
    with pytest.raises(ValueError, match=match):
        layer.apply(params, jnp.ones(bad))


def test_embedding_rejects_bad_ids():
    layer = L.Embedding(5, 2)
    _, params = layer.init(_key(0), (3,))
    with pytest.raises(ValueError, match=r"Embedding: expected ids in \[0, 5\), got values in \[0, 5\]"):
        layer.apply(params, jnp.array([0, 5, 1]))
    with pytest.raises(TypeError, match="Embedding: expected integer ids, got dtype float32"):
        layer.apply(params, jnp.array([0.0, 1.0]))
    # under jit the ids cannot be checked; an out-of-range id gives a NaN row instead of a silent wrong one
    y = jax.jit(layer.apply)(params, jnp.array([1, 7]))
    np.testing.assert_array_equal(y[0], params.table[1])
    assert np.all(np.isnan(y[1]))
