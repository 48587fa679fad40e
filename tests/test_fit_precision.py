"""fit(precision=): the switch equals wrapping the model in fnn.train.precision.mixed_precision by hand."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import layers, losses
from fnn.data import load_digits
from fnn.train import fit
from fnn.train.precision import mixed_precision


def test_fit_precision_bfloat16_equals_the_wrapped_model():
    X, y = load_digits()
    X, y = X[:256], y[:256]
    model = layers.mlp([16, 10], layers.Relu)
    _, p0 = model.init(jax.random.key(0), (-1, 64))
    xent = losses.softmax_cross_entropy_with_integer_labels
    kw = dict(epochs=1, batch_size=64, key=1, verbose=False, validation=(X[:64], y[:64]))
    switch = fit(model.apply, p0, optax.adam(1e-2), xent, X, y, precision="bfloat16", **kw)
    by_hand = fit(mixed_precision(model.apply, jnp.bfloat16), p0, optax.adam(1e-2), xent, X, y, **kw)
    for a, b in zip(jax.tree.leaves(switch.params), jax.tree.leaves(by_hand.params)):
        assert a.dtype == jnp.float32
        np.testing.assert_array_equal(a, b)
    assert switch.history["val_loss"] == by_hand.history["val_loss"]
    with pytest.raises(ValueError, match="precision must be 'float32', 'bfloat16' or 'float16', got 'bf16'"):
        fit(model.apply, p0, optax.adam(1e-2), xent, X, y, precision="bf16", **kw)
