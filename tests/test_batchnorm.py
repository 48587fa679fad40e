"""BatchNorm's state: train/eval against NumPy, the EMA update, Algorithm 2's one-pass population statistics
(nested in serial/parallel), and a model that trains with jax.grad while its state is threaded."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers as L

EPS = 1e-5


def key(seed):
    return jax.random.key(seed, impl="rbg")


def np_bn(x, beta, gamma, mean, var):
    return gamma * (x - mean) / np.sqrt(var + EPS) + beta


def test_init_with_state_gives_zero_mean_unit_var_and_count_zero():
    shape, params, state = L.init_with_state(L.BatchNorm(), key(0), (-1, 4, 4, 3))
    assert shape == (-1, 4, 4, 3)
    np.testing.assert_array_equal(state.mean, np.zeros(3))
    np.testing.assert_array_equal(state.var, np.ones(3))
    assert int(state.count) == 0 and state.count.dtype == jnp.int32
    assert params.beta.shape == params.gamma.shape == (3,)


def test_train_step_normalizes_with_the_batch_and_updates_the_ema():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 2, 3)) * [1.0, 2.0, 0.5] + [0.0, 3.0, -1.0]
    beta, gamma = rng.standard_normal(3), rng.standard_normal(3)
    old_mean, old_var = rng.standard_normal(3), rng.random(3) + 0.5
    layer = L.BatchNorm(momentum=0.9, debias=False)   # the textbook EMA, checked against its recursion
    with jax.enable_x64(True):
        params = L.BatchNormParams(jnp.asarray(beta), jnp.asarray(gamma))
        state = L.BatchNormState(jnp.asarray(old_mean), jnp.asarray(old_var), jnp.asarray(4, jnp.int32))
        y, new = layer.apply(params, jnp.asarray(x), state=state)
        y_stateless = layer.apply(params, jnp.asarray(x))
    m = 6 * 2 * 2
    mu_b = x.reshape(m, 3).mean(axis=0)
    var_b = x.reshape(m, 3).var(axis=0)  # biased, what the batch is normalized with
    np.testing.assert_allclose(y, np_bn(x, beta, gamma, mu_b, var_b), rtol=1e-10)
    np.testing.assert_allclose(y_stateless, y, rtol=1e-12)  # state= changes what is returned, not y
    np.testing.assert_allclose(new.mean, 0.9 * old_mean + 0.1 * mu_b, rtol=1e-10)
    np.testing.assert_allclose(new.var, 0.9 * old_var + 0.1 * var_b * m / (m - 1), rtol=1e-10)  # unbiased
    assert int(new.count) == 5


def test_ema_over_many_steps_follows_the_recursion_and_eval_uses_it():
    rng = np.random.default_rng(1)
    batches = rng.standard_normal((5, 8, 2)) * 2 + 1
    model = L.serial(L.BatchNorm(axis=0, momentum=0.8, debias=False))
    _, params, state = L.init_with_state(model, key(0), (-1, 2))
    step = jax.jit(lambda s, x: model.apply(params, x, state=s)[1])
    mean, var = np.zeros(2), np.ones(2)
    for x in batches:
        state = step(state, jnp.asarray(x, jnp.float32))
        mean = 0.8 * mean + 0.2 * x.mean(axis=0)
        var = 0.8 * var + 0.2 * x.var(axis=0, ddof=1)
    np.testing.assert_allclose(state[0].mean, mean, rtol=1e-5)
    np.testing.assert_allclose(state[0].var, var, rtol=1e-5)
    x = jnp.asarray(rng.standard_normal((3, 2)), jnp.float32)
    y, same = model.apply(params, x, state=state, train=False)
    np.testing.assert_allclose(y, np_bn(np.asarray(x), 0.0, 1.0, mean, var), rtol=1e-5, atol=1e-6)
    assert same[0] is state[0]  # eval leaves the state alone


def test_eval_without_state_raises():
    layer = L.BatchNorm(axis=0)
    _, params = layer.init(key(0), (-1, 3))
    with pytest.raises(ValueError, match=r"BatchNorm: eval mode \(train=False\) needs the population statistics: "
                                         r"pass state="):
        layer.apply(params, jnp.ones((4, 3)), train=False)
    with pytest.raises(ValueError, match=r"BatchNorm: expected bn_update in \('ema', 'cumulative'\), got 'mean'"):
        layer.apply(params, jnp.ones((4, 3)), bn_update="mean")


def nested_model():
    """BatchNorms at depth 1 and inside parallel(serial(...)); Dropout in between (identity during the pass)."""
    return L.serial(L.Dense(5), L.BatchNorm(axis=0), L.Relu, L.Dropout(0.5), L.FanOut(2),
                    L.parallel(L.serial(L.Dense(3), L.BatchNorm(axis=0)), L.Dense(3)), L.FanInSum)


def np_forward_stats(params, x):
    """Per-batch statistics of both BatchNorms, as a NumPy training-mode forward pass computes them."""
    (W1, b1), (beta1, gamma1) = params[0], params[1]
    (W2, b2), _ = params[5][0]
    h = x @ W1 + b1
    mu1, var1 = h.mean(axis=0), h.var(axis=0)
    r = np.maximum(np_bn(h, beta1, gamma1, mu1, var1), 0)  # Dropout is the identity (train=False)
    g = r @ W2 + b2
    return (h, mu1, var1), (g, g.mean(axis=0), g.var(axis=0))


def test_population_statistics_is_algorithm_2_over_the_whole_data_set():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((240, 4)) * [1.0, 3.0, 0.5, 2.0] + [1.0, -2.0, 0.0, 5.0]
    batches = X.reshape(6, 40, 4)
    model = nested_model()
    with jax.enable_x64(True):
        _, params, state = L.init_with_state(model, key(0), (-1, 4))
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        # a state that has seen training already: population_statistics must not depend on it
        state = jax.tree.map(lambda a: a + 7 if a.dtype != jnp.int32 else a + 3, state)
        pop = L.population_statistics(model, params, state, [jnp.asarray(b) for b in batches])
        np_params = jax.tree.map(np.asarray, params)
    stats = [np_forward_stats(np_params, b) for b in batches]
    m = 40
    bn1, bn2 = pop[1], pop[5][0][1]
    # E_B[mu_B] is the data set's mean (equal batches); Var = m / (m - 1) E_B[sigma_B^2]
    h_all = X @ np_params[0].W + np_params[0].b
    np.testing.assert_allclose(bn1.mean, h_all.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn1.var, m / (m - 1) * np.mean([s[0][2] for s in stats], axis=0), rtol=1e-10)
    np.testing.assert_allclose(bn2.mean, np.mean([s[1][1] for s in stats], axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn2.var, m / (m - 1) * np.mean([s[1][2] for s in stats], axis=0), rtol=1e-10)
    assert int(bn1.count) == int(bn2.count) == 6
    # the stateless entries are untouched and the tree keeps its structure
    assert jax.tree.structure(pop) == jax.tree.structure(state)
    # a second pass gives the same statistics (the count is reset, not accumulated)
    with jax.enable_x64(True):
        again = L.population_statistics(model, params, pop, [jnp.asarray(b) for b in batches])
    np.testing.assert_allclose(again[1].var, bn1.var, rtol=1e-12)


def test_population_statistics_rejects_an_empty_pass():
    model = L.serial(L.Dense(2), L.BatchNorm(axis=0))
    _, params, state = L.init_with_state(model, key(0), (-1, 3))
    with pytest.raises(ValueError, match="population_statistics: expected at least one batch"):
        L.population_statistics(model, params, state, [])


def test_serial_dense_batchnorm_relu_dense_trains_with_grad_and_threaded_state():
    rng = np.random.default_rng(3)
    X = jnp.asarray(rng.standard_normal((256, 3)) * 4 + 2, jnp.float32)
    Y = jnp.sin(X[:, :1]) + 0.5 * X[:, 1:2] - 0.2 * X[:, 2:3]
    model = L.serial(L.Dense(16), L.BatchNorm(axis=0, momentum=0.9), L.Relu, L.Dense(1))
    _, params, state = L.init_with_state(model, key(0), (-1, 3))

    def loss(params, state, x, y):
        out, new_state = model.apply(params, x, state=state, train=True)
        return jnp.mean(jnp.square(out - y)), new_state

    @jax.jit
    def step(params, state, x, y):
        (value, state), grads = jax.value_and_grad(loss, has_aux=True)(params, state, x, y)
        return jax.tree.map(lambda p, g: p - 0.05 * g, params, grads), state, value, grads

    first = None
    xs, ys = np.split(np.asarray(X), 8), np.split(np.asarray(Y), 8)
    for i in range(150):
        params, state, value, grads = step(params, state, xs[i % 8], ys[i % 8])
        first = value if first is None else first
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert np.any(np.asarray(grads[1].gamma) != 0) and np.any(np.asarray(grads[1].beta) != 0)
    assert int(state[1].count) == 150
    train_loss = float(loss(params, state, X, Y)[0])
    eval_out, _ = model.apply(params, X, state=state, train=False)
    eval_loss = float(jnp.mean(jnp.square(eval_out - Y)))
    assert train_loss < 0.2 * float(first)
    assert eval_loss < 2 * train_loss + 0.05  # the running averages stand in for the batch statistics
    # the running mean tracks the Dense layer's output over the data
    h = np.asarray(X) @ np.asarray(params[0].W) + np.asarray(params[0].b)
    np.testing.assert_allclose(state[1].mean, h.mean(axis=0), atol=0.15 * h.std(axis=0).max())


def test_the_default_ema_starts_as_a_cumulative_average_then_follows_the_recursion():
    """Integrity issue, item 7: w_t = max(1 - momentum, 1 / t), so the initial mean 0 / variance 1 are forgotten
    at the first batch and a short run's running averages are the average of its batches."""
    rng = np.random.default_rng(5)
    batches = rng.standard_normal((12, 8, 2)) * 3 + 2
    model = L.serial(L.BatchNorm(axis=0, momentum=0.75))             # 1 / (1 - 0.75) = 4 batches cumulative
    _, params, state = L.init_with_state(model, key(0), (-1, 2))
    step = jax.jit(lambda s, x: model.apply(params, x, state=s)[1])
    mean, var = np.zeros(2), np.ones(2)
    for t, x in enumerate(batches, start=1):
        state = step(state, jnp.asarray(x, jnp.float32))
        w = max(0.25, 1 / t)
        mean = (1 - w) * mean + w * x.mean(axis=0)
        var = (1 - w) * var + w * x.var(axis=0, ddof=1)
        if t == 4:   # still the plain average of the first four batches
            np.testing.assert_allclose(state[0].mean, batches[:4].mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(state[0].mean, mean, rtol=1e-5)
    np.testing.assert_allclose(state[0].var, var, rtol=1e-5)
