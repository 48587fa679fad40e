"""fnn.train.minimize / gradient_step: full-batch minimization against NumPy loops and optax's own update loop."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import optimizers
from fnn.train import MinimizeResult, gradient_step, minimize


def least_squares(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(20, 3)).astype(np.float32), rng.normal(size=20).astype(np.float32)


def test_gradient_descent_on_least_squares_matches_a_numpy_loop():
    A, b = least_squares()
    lr, steps = 0.1, 25
    result = minimize(lambda w, A, b: jnp.mean((A @ w - b) ** 2), jnp.zeros(3), optimizers.sgd(lr), steps=steps,
                      args=(A, b))
    assert isinstance(result, MinimizeResult) and result.losses.shape == (steps,)
    w, want_losses = np.zeros(3), []
    for _ in range(steps):   # J = mean (A w - b)^2, dJ/dw = 2/n A^T (A w - b)
        r = A @ w - b
        want_losses.append(np.mean(r ** 2))
        w = w - lr * 2.0 / len(b) * A.T @ r
    np.testing.assert_allclose(result.params, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.losses, want_losses, rtol=1e-5)   # losses[t]: before step t


def test_adam_equals_optax_update_loop_and_continues_from_opt_state():
    A, b = least_squares(1)
    loss = lambda w: jnp.sum((A @ w["w"] - b) ** 2)   # noqa: E731
    opt = optax.adam(0.05)
    params = {"w": jnp.ones(3)}
    result = minimize(loss, params, opt, steps=12)
    p, s = params, opt.init(params)
    for _ in range(12):
        u, s = opt.update(jax.grad(loss)(p), s, p)
        p = optax.apply_updates(p, u)
    np.testing.assert_allclose(result.params["w"], p["w"], rtol=1e-5, atol=1e-6)
    first = minimize(loss, params, opt, steps=5)   # 5 then 7 steps = 12 steps
    second = minimize(loss, first.params, opt, steps=7, opt_state=first.opt_state)
    np.testing.assert_allclose(second.params["w"], result.params["w"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.concatenate([first.losses, second.losses]), result.losses, rtol=1e-6)


def test_a_stochastic_objective_gets_fold_in_key_t_at_step_t():
    key, lr = jax.random.key(3), 0.2
    noisy = lambda w, key_t: jnp.sum((w - jax.random.normal(key_t, (2,))) ** 2)   # noqa: E731
    result = minimize(noisy, jnp.zeros(2), optimizers.sgd(lr), steps=6, key=key)
    w = np.zeros(2)
    for t in range(6):   # dJ/dw = 2 (w - z_t), z_t ~ N(0, I) drawn with fold_in(key, t)
        w = w - lr * 2.0 * (w - np.asarray(jax.random.normal(jax.random.fold_in(key, t), (2,))))
    np.testing.assert_allclose(result.params, w, rtol=1e-5, atol=1e-6)


def test_gradient_step_is_one_step_and_bad_steps_are_reported():
    loss = lambda w, c: jnp.sum((w - c) ** 2)   # noqa: E731
    opt = optimizers.sgd(0.25)
    w, s, value = gradient_step(loss, opt)(jnp.zeros(2), opt.init(jnp.zeros(2)), jnp.asarray([1.0, -2.0]))
    np.testing.assert_allclose(w, [0.5, -1.0])          # w - 0.25 * 2 (w - c)
    assert float(value) == pytest.approx(5.0)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=rf"minimize: expected steps to be a positive int, got {bad!r}"):
            minimize(loss, jnp.zeros(2), opt, steps=bad, args=(jnp.ones(2),))
