"""Mixed precision: bf16 compute, f32 master params and grads, results close to f32 and different from it."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn.layers import Dense, Relu, mlp, serial
from fnn.train.precision import cast_floating, mixed_precision


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = (x[:, :2] @ np.array([[1.0], [-2.0]], np.float32)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y)


def test_forward_runs_in_bfloat16_and_returns_float32():
    model = mlp([16, 1])
    _, params = model.init(jax.random.key(0), (-1, 8))
    x, _ = _data()
    apply_mp = mixed_precision(model.apply)
    jaxpr = str(jax.make_jaxpr(apply_mp)(params, x))
    assert re.search(r"dot_general.*bf16", jaxpr.replace("\n", " ")), jaxpr
    y32, ymp = model.apply(params, x), apply_mp(params, x)
    assert ymp.dtype == jnp.float32
    np.testing.assert_allclose(ymp, y32, rtol=0.05, atol=0.05)
    assert not np.array_equal(np.asarray(ymp), np.asarray(y32))  # the compute really was in lower precision


def test_gradients_are_float32_and_training_matches_float32():
    model = serial(Dense(16), Relu, Dense(1))
    _, params = model.init(jax.random.key(1), (-1, 8))
    x, y = _data()
    opt = optax.sgd(0.05)

    def train(apply):
        def loss(p):
            return jnp.mean((apply(p, x) - y) ** 2)

        @jax.jit
        def step(p, s):
            l, g = jax.value_and_grad(loss)(p)
            u, s = opt.update(g, s)
            return optax.apply_updates(p, u), s, l, g

        p, s = params, opt.init(params)
        for _ in range(50):
            p, s, l, g = step(p, s)
        return p, l, g

    p32, l32, _ = train(model.apply)
    pmp, lmp, gmp = train(mixed_precision(model.apply))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((pmp, gmp)))
    assert float(lmp) < 0.5 * float(jnp.mean(y ** 2))  # it learned
    assert abs(float(lmp) - float(l32)) < 0.05 * float(l32) + 1e-3


def test_integer_leaves_pass_through_and_bad_dtype():
    tree = {"w": jnp.ones(2), "ids": jnp.arange(3)}
    out = cast_floating(tree, jnp.bfloat16)
    assert out["w"].dtype == jnp.bfloat16 and out["ids"].dtype == jnp.int32
    with pytest.raises(ValueError, match="expected a floating compute dtype"):
        mixed_precision(lambda p, x: x, compute_dtype=jnp.int8)


