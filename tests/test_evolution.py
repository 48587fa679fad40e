"""Evolution strategies (fnn.classic.evolution): the search gradient against its closed form, the vmapped population
loss against a Python loop, truncation selection against NumPy's argsort, XOR solved, determinism, bad input."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.stats
from jax.flatten_util import ravel_pytree

from fnn import classic
from fnn.classic import evolution

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = np.array([[3.0, 0.5, 0.0, -0.4], [0.5, 1.0, 0.2, 0.0], [0.0, 0.2, 2.0, 0.3], [-0.4, 0.0, 0.3, 0.5]], np.float32)
X0 = np.array([1.0, -2.0, 0.5, 3.0], np.float32)


def quadratic(x):
    return x @ jnp.asarray(A) @ x


def test_antithetic_gradient_estimate_matches_2Ax_within_standard_errors():
    # f(x) = x^T A x: the smoothed gradient is exactly 2 A x. Antithetic, unshaped: g = mean over m pairs of
    # 2 eps eps^T A x, whose component j has variance 4 (|v|^2 + v_j^2), v = A x (Gaussian fourth moments).
    n = 160000
    g, losses = evolution.es_gradient(quadratic, jnp.asarray(X0), jax.random.key(0), sigma=0.3, population=n)
    v = A @ X0
    se = 2 * np.sqrt((v @ v + v ** 2) / (n // 2))
    assert losses.shape == (n,)
    assert np.all(np.abs(np.asarray(g) - 2 * v) < 4 * se), (np.asarray(g), 2 * v, se)
    assert np.all(4 * se < 0.1 * np.abs(2 * v))  # tight enough that a wrong factor (sigma, 2, n) fails


def test_plain_gradient_estimate_is_unbiased_across_independent_draws():
    # Without antithetic pairs the estimate has an extra f(x) eps / sigma term (zero mean, large variance):
    # 16 independent estimates, their mean within 4 empirical standard errors of 2 A x.
    v = A @ X0
    est = np.stack([np.asarray(evolution.es_gradient(quadratic, jnp.asarray(X0), jax.random.key(k), sigma=0.5,
                                                     population=4000, antithetic=False)[0]) for k in range(16)])
    se = est.std(axis=0, ddof=1) / np.sqrt(len(est))
    assert np.all(np.abs(est.mean(axis=0) - 2 * v) < 4 * se + 1e-6)
    assert np.all(se < 0.2 * np.abs(2 * v).max())


def test_population_loss_is_the_python_loop_over_members():
    rng = np.random.default_rng(1)
    params = {"W": rng.normal(size=(4, 3)).astype(np.float32), "b": np.zeros(3, np.float32)}
    x = rng.normal(size=(7, 4)).astype(np.float32)
    theta, unravel = ravel_pytree(params)
    thetas = np.asarray(theta)[None] + 0.3 * rng.normal(size=(6, theta.shape[0])).astype(np.float32)

    def loss(p, x):
        return jnp.mean(jnp.tanh(x @ p["W"] + p["b"][None]) ** 2)

    def numpy_loss(t):                                            # one member at a time, in NumPy
        W, b = t[:12].reshape(4, 3), t[12:]
        return np.mean(np.tanh(x @ W + b) ** 2)

    looped = [numpy_loss(t) for t in thetas]
    np.testing.assert_allclose(evolution.population_loss(loss, unravel, jnp.asarray(thetas), x), looped, rtol=1e-5)


def test_selection_keeps_exactly_the_mu_best_and_ranks_match_scipy():
    rng = np.random.default_rng(0)
    losses = rng.normal(size=11).astype(np.float32)
    thetas = rng.normal(size=(11, 3)).astype(np.float32)
    kept, kept_l, idx = evolution.select_best(jnp.asarray(thetas), jnp.asarray(losses), 4)
    ref = np.argsort(losses, kind="stable")[:4]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_array_equal(kept, thetas[ref])
    np.testing.assert_array_equal(kept_l, losses[ref])
    losses[ref[0]] = np.nan                      # a NaN loss is never kept ahead of a finite one
    _, _, idx = evolution.select_best(jnp.asarray(thetas), jnp.asarray(losses), 4)
    np.testing.assert_array_equal(idx, np.argsort(np.nan_to_num(losses, nan=np.inf), kind="stable")[:4])
    F = evolution.centered_ranks(jnp.asarray(thetas[:, 0]))
    np.testing.assert_allclose(F, (scipy.stats.rankdata(thetas[:, 0]) - 1) / 10 - 0.5, atol=1e-7)


def xor_net(p, x):
    """The 2-2-1 sigmoid network: o = s(s(x W1 + b1) W2 + b2)."""
    h = jax.nn.sigmoid(x @ p["W1"] + p["b1"][None])
    return jax.nn.sigmoid(h @ p["W2"] + p["b2"][None])[:, 0]


def xor_loss(p, x, y):
    return jnp.mean((xor_net(p, x) - y) ** 2)


def test_mu_lambda_es_solves_xor_and_is_deterministic():
    x, y = classic.logic_gate("XOR")
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(2, 2)).astype(np.float32), "b1": np.zeros(2, np.float32),
              "W2": rng.normal(size=(2, 1)).astype(np.float32), "b2": np.zeros(1, np.float32)}
    run = lambda key: evolution.evolution_strategy(xor_loss, params, key, mu=5, lam=35, generations=200,  # noqa: E731
                                                   sigma=1.0, args=(x, y))
    res = run(jax.random.key(100))
    assert float(res.best_loss) < 0.01
    assert np.array_equal(xor_net(res.best_params, x) > 0.5, y > 0.5)
    assert float(xor_loss(res.best_params, x, y)) == pytest.approx(float(res.best_loss), rel=1e-5)
    # comma selection: the best parent is the best offspring of the last generation
    assert float(xor_loss(res.params, x, y)) == pytest.approx(float(res.best_losses[-1]), rel=1e-5)
    assert res.evaluations == 1 + 200 * 35 and res.best_losses.shape == res.mean_losses.shape == (200,)
    assert np.all(res.best_losses <= res.mean_losses)
    again = run(jax.random.key(100))
    np.testing.assert_array_equal(again.best_losses, res.best_losses)
    other = run(jax.random.key(101))
    assert not np.array_equal(other.best_losses, res.best_losses)


def test_openai_es_with_adam_finds_the_minimum_and_is_deterministic():
    run = lambda: evolution.openai_es(quadratic, jnp.asarray(X0), jax.random.key(5), population=20,  # noqa: E731
                                      generations=300, sigma=0.1, optimizer=optax.adam(0.05))
    res = run()
    assert float(quadratic(res.params)) < 1e-2 * float(quadratic(jnp.asarray(X0)))      # A is positive definite
    assert res.evaluations == 300 * 21
    np.testing.assert_array_equal(run().best_losses, res.best_losses)


@pytest.mark.parametrize("call,match", [
    (lambda f, p: evolution.evolution_strategy(f, p, jax.random.key(0), mu=5, lam=3, generations=2),
     r"evolution_strategy: expected lam >= mu .* got mu=5, lam=3; raise lam"),
    (lambda f, p: evolution.evolution_strategy(f, p, jax.random.key(0), mu=0, lam=3, generations=2),
     r"expected mu to be an int >= 1, got 0"),
    (lambda f, p: evolution.evolution_strategy(f, p, jax.random.key(0), mu=1, lam=3, generations=2, sigma=0.0),
     r"expected sigma, the mutation step size, to be a finite number > 0, got 0.0; pass e.g. sigma=0.1"),
    (lambda f, p: evolution.evolution_strategy(f, p, jax.random.key(0), mu=1, lam=3, generations=2,
                                               adaptation="1/5"), r"expected adaptation in .*'one_fifth'.*got '1/5'"),
    (lambda f, p: evolution.openai_es(f, p, jax.random.key(0), population=7, generations=2),
     r"openai_es: antithetic sampling needs an even population .* got population=7; pass 8 or antithetic=False"),
    (lambda f, p: evolution.openai_es(f, p, jax.random.key(0), population=1, generations=2, antithetic=False),
     r"expected population to be an int >= 2, got 1"),
    (lambda f, p: evolution.openai_es(f, p, jax.random.key(0), population=4, generations=2, sigma=float("nan")),
     r"openai_es: expected sigma, .* got nan"),
    (lambda f, p: evolution.es_gradient(f, p, jax.random.key(0), sigma=-1.0, population=4),
     r"es_gradient: expected sigma, .* got -1.0"),
    (lambda f, p: evolution.openai_es(f, p, jax.random.key(0), population=4, generations=0),
     r"expected generations to be an int >= 1, got 0"),
])
def test_bad_arguments_are_refused_with_a_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call(quadratic, jnp.asarray(X0))


def test_example_runs_quickly():
    spec = importlib.util.spec_from_file_location("neuroevolution", os.path.join(ROOT, "examples",
                                                                                 "neuroevolution.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    res = module.run(seeds=1, quick=True, verbose=False)
    assert set(res["xor"][0]) == {"SGD", "OpenAI ES"} and res["digits"] == []
