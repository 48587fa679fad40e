"""fnn.train.transfer: copied layers equal the source bit for bit, freeze keeps frozen leaves bit-identical through
fit and holds no optimizer state for them, equals the inner rule when nothing is frozen, and matches optax's
multi_transform / masked; scale_where is a per-group learning rate; errors name what is wrong."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import losses
from fnn.layers import Dense, Relu, Tanh, mlp
from fnn.optimizers import adam, adamw, apply_updates, chain, sgd
from fnn.train import fit, freeze, init_transfer, layer_mask, reuse, scale_where, transfer_params
from fnn.train.transfer import Dropped

CE = losses.softmax_cross_entropy_with_integer_labels


def bits(x):
    """The raw bits of a float32 array (so -0.0 and +0.0 differ)."""
    return np.asarray(x, np.float32).view(np.uint32)


def close(a, b, **tol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, **tol)


def same_bits(a, b):
    return all(np.array_equal(bits(x), bits(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def source():
    model = mlp([6, 5, 3], Tanh)   # Dense, Tanh, Dense, Tanh, Dense
    _, params = model.init(jax.random.key(0), (-1, 4))
    return model, params


def test_init_transfer_copies_the_first_layers_bit_for_bit(source):
    model, trained = source
    new = reuse(model, 4, Dense(2))
    assert [c.label for c in new.children] == ["Dense", "Tanh", "Dense", "Tanh", "Dense"]
    shape, params = init_transfer(new, trained, 4, jax.random.key(7), (-1, 4))
    _, fresh = new.init(jax.random.key(7), (-1, 4))
    assert shape == (-1, 2) and len(params) == 5
    assert same_bits(params[:4], trained[:4])            # transferred: the source's arrays
    assert same_bits(params[4], fresh[4]) and params[4].W.shape == (5, 2)   # the new head: its own init
    assert not np.array_equal(fresh[0].W, trained[0].W)  # (a copy, not a coincidence of keys)
    x = jax.random.normal(jax.random.key(1), (3, 4))     # the features computed by the kept layers are the source's
    np.testing.assert_array_equal(reuse(model, 4).apply(params[:4], x), reuse(model, 4).apply(trained[:4], x))
    assert layer_mask(params, 2) == tuple([jax.tree.map(lambda _: True, params[0]), ()] +
                                          [jax.tree.map(lambda _: False, p) for p in params[2:]])


def test_frozen_leaves_stay_bit_identical_through_fit_while_the_others_train(source):
    model, trained = source
    new = reuse(model, 2, Dense(4), Relu, Dense(3))
    _, params = init_transfer(new, trained, 2, jax.random.key(3), (-1, 4))
    params = (params[0]._replace(b=params[0].b.at[0].set(-0.0)),) + params[1:]   # a -0.0 must stay -0.0
    X = jax.random.normal(jax.random.key(4), (48, 4))
    y = jnp.argmax(X[:, :3], axis=1)
    out, opt_state, _ = fit(new.apply, params, freeze(adam(0.05), layer_mask(params, 2)), CE, X, y, epochs=3,
                            batch_size=16, key=jax.random.key(5), verbose=False, epoch_mode="loop")
    assert same_bits(out[0], params[0]) and bits(out[0].b)[0] == bits(-0.0)
    assert all(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(out[2:]), jax.tree.leaves(params[2:])))
    assert jax.tree.leaves(opt_state.inner[0].m[0]) == []   # no moments kept for the frozen layer
    assert int(opt_state.inner[0].count) == 9                # 3 epochs x 3 steps


def _steps(opt, params, n=3, jit=False):
    """``n`` steps on a quadratic (compiled with ``jit``); the updates and states of every step."""
    state, out = opt.init(params), []
    update = jax.jit(opt.update) if jit else opt.update
    for t in range(n):
        grads = jax.tree.map(lambda x: (t + 1.0) * x - 0.3, params)
        u, state = update(grads, state, params)
        params = apply_updates(params, u)
        out.append((u, state))
    return out


def test_freeze_with_nothing_frozen_is_the_inner_rule_exactly(source):
    _, params = source
    for inner in (adamw(0.01, weight_decay=0.1),):   # the decay mask reads the paths: Dropped() must not move them
        wrapped, plain = _steps(freeze(inner, False), params, jit=True), _steps(inner, params, jit=True)
        for (u_w, s_w), (u_p, s_p) in zip(wrapped, plain):
            assert same_bits(u_w, u_p) and same_bits(s_w.inner, s_p)
            assert jax.tree.structure(s_w.inner) == jax.tree.structure(s_p)


def test_freeze_keeps_adam_state_only_for_trainable_leaves_and_matches_optax(source):
    _, params = source
    frozen = layer_mask(params, 2)
    labels = jax.tree.map(lambda f: "frozen" if f else "train", frozen)
    trainable = jax.tree.map(lambda f: not f, frozen)
    ours = _steps(freeze(adam(0.01), frozen), params)
    multi = _steps(optax.multi_transform({"train": optax.adam(0.01), "frozen": optax.set_to_zero()}, labels), params)
    masked = _steps(optax.masked(optax.adam(0.01), trainable), params)
    alone = _steps(adam(0.01), params[2:])                # reference: Adam on the trainable layers only
    for (u, s), (u_multi, _), (u_masked, s_masked), (u_alone, s_alone) in zip(ours, multi, masked, alone):
        assert all(np.all(bits(x) == bits(-0.0)) for x in jax.tree.leaves(u[:2]))
        assert same_bits(u[2:], u_alone) and same_bits(s.inner[0].m[2:], s_alone[0].m)
        assert s.inner[0].m[0] == type(params[0])(Dropped(), Dropped()) and s.inner[0].v[0] == s.inner[0].m[0]
        close(u, u_multi, rtol=1e-4)   # optax: the same rule (two Adam implementations round differently)
        # optax.masked keeps the same inner moments but passes the frozen gradients through as updates
        close(s.inner[0].m[2:], s_masked.inner_state[0].mu[2:], rtol=1e-5)
        close(u_masked[2:], u[2:], rtol=1e-4)
        assert not np.allclose(u_masked[0].W, 0.0)


def test_scale_where_is_a_per_group_learning_rate(source):
    _, params = source
    mask = layer_mask(params, 2)
    g = jax.tree.map(lambda x: 2.0 * x + 1.0, params)
    u, _ = chain(sgd(0.1), scale_where(0.1, mask)).update(g, (sgd(0.1).init(params), ()), params)
    for i, p in enumerate(params):
        for ui, gi in zip(jax.tree.leaves(u[i]), jax.tree.leaves(g[i])):
            np.testing.assert_allclose(ui, -(0.01 if i < 2 else 0.1) * gi, rtol=1e-6)
    labels = jax.tree.map(lambda f: "slow" if f else "fast", mask)
    two = optax.multi_transform({"slow": optax.adam(1e-3), "fast": optax.adam(1e-2)}, labels)
    for (u, _), (u_ref, _) in zip(_steps(chain(adam(1e-2), scale_where(0.1, mask)), params), _steps(two, params)):
        close(u, u_ref, rtol=2e-5, atol=1e-9)


def test_errors_say_what_was_expected(source):
    model, params = source
    g = jax.tree.map(jnp.ones_like, params)
    with pytest.raises(ValueError, match=r"freeze: the mask does not match the params tree(.|\n)*mask: +PyTreeDef"
                                         r"\(\(\*, \*\)\)\n  params: PyTreeDef\(\(CustomNode"):
        freeze(adam(0.1), (True, False)).init(params)
    with pytest.raises(TypeError, match=r"freeze: expected the mask's leaves to be Python bools, got ArrayImpl"):
        freeze(adam(0.1), jax.tree.map(lambda x: jnp.zeros(x.shape, bool), params)).init(params)
    with pytest.raises(ValueError, match=r"scale_where: the mask does not match"):
        scale_where(0.5, (True,)).update(g, ())
    with pytest.raises(ValueError, match=r"scale_where: expected factor >= 0 .*, got -1"):
        scale_where(-1, True)
    with pytest.raises(ValueError, match=r"transfer_params: layer 0\.W is float32\[5, 6\] in the new model but "
                                         r"float32\[4, 6\] in the source; initialise the new model"):
        init_transfer(reuse(model, 2, Dense(3)), params, 2, jax.random.key(0), (-1, 5))
    with pytest.raises(ValueError, match=r"transfer_params: layer 1 has a different params tree"):
        transfer_params((params[0], params[0]), params, 2)
    with pytest.raises(ValueError, match=r"expected keep, .* in \[0, 5\] .*, got 6"):
        reuse(model, 6)
    with pytest.raises(TypeError, match=r"transfer_params: expected source_params of a serial model .* got dict"):
        transfer_params(params, {"W": 1}, 1)
    with pytest.raises(TypeError, match=r"reuse: expected an fnn serial model"):
        reuse(Dense(3), 1)
    with pytest.raises(ValueError, match=r"layer_mask: expected layer indices in \[0, 5\), got \[7\]"):
        layer_mask(params, [7])
