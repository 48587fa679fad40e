"""Transforms against optax's twins, NumPy loops and, for the gradient noise, statistics."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import losses as L
from fnn import optimizers as fo
from fnn.optimizers import transforms as ft

PARAMS = {"W": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.3, -0.7])}


def grads_like(scale):
    return {"W": scale * jnp.asarray([[1.0, 2.0], [-3.0, 0.5]]), "b": scale * jnp.asarray([4.0, -1.0])}


def assert_trees_close(a, b, **kw):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, **kw)


@pytest.mark.parametrize("scale", [0.01, 10.0])  # below and above the threshold
def test_clip_by_global_norm_matches_optax(scale):
    g = grads_like(scale)
    ours, _ = ft.clip_by_global_norm(1.0).update(g, ft.clip_by_global_norm(1.0).init(PARAMS))
    theirs, _ = optax.clip_by_global_norm(1.0).update(g, optax.clip_by_global_norm(1.0).init(PARAMS))
    assert_trees_close(ours, theirs, rtol=1e-6)
    norm = float(ft.global_norm(ours))
    assert norm == pytest.approx(min(1.0, float(ft.global_norm(g))), rel=1e-6)


def test_clip_by_value_matches_optax():
    g = grads_like(1.0)
    ours, _ = ft.clip_by_value(1.5).update(g, ())
    theirs, _ = optax.clip(1.5).update(g, ())
    assert_trees_close(ours, theirs, rtol=0)
    assert float(ours["W"][1, 0]) == -1.5


def test_weight_decay_masks_match_optax():
    g = grads_like(1.0)
    ours, _ = ft.weight_decay(0.1).update(g, (), PARAMS)
    twin = optax.add_decayed_weights(0.1, mask=L.weight_mask)
    theirs, _ = twin.update(g, twin.init(PARAMS), PARAMS)
    assert_trees_close(ours, theirs, rtol=1e-7)
    np.testing.assert_array_equal(ours["b"], g["b"])  # biases untouched by default
    all_ours, _ = ft.weight_decay(0.1, mask=True).update(g, (), PARAMS)
    all_theirs, _ = optax.add_decayed_weights(0.1).update(g, optax.EmptyState(), PARAMS)
    assert_trees_close(all_ours, all_theirs, rtol=1e-7)
    np.testing.assert_allclose(all_ours["b"], g["b"] + 0.1 * PARAMS["b"], rtol=1e-7)


def test_weight_decay_errors():
    with pytest.raises(ValueError, match=r"weight_decay: update needs params"):
        ft.weight_decay(0.1).update(grads_like(1.0), ())
    with pytest.raises(ValueError, match=r"(?s)weight_decay: the gradient tree does not match the params tree.*"
                                         r"gradients: PyTreeDef\(\{'W': \*\}\).*params: PyTreeDef"):
        ft.weight_decay(0.1).update({"W": jnp.ones((2, 2))}, (), PARAMS)
    with pytest.raises(ValueError, match=r"weight_decay: rate must be >= 0"):
        ft.weight_decay(-1.0)
    with pytest.raises(ValueError, match=r"clip_by_global_norm: max_norm must be > 0"):
        ft.clip_by_global_norm(0.0)


def test_gradient_noise_statistics():
    eta, gamma, n = 0.3, 0.55, 40_000
    opt = ft.gradient_noise(jax.random.key(0), eta=eta, gamma=gamma)
    zeros = {"a": jnp.zeros(n // 2), "b": jnp.zeros((n // 4, 2))}
    state = opt.init(zeros)
    step = jax.jit(opt.update)
    samples = []
    for t in range(12):
        noise, state = step(zeros, state)
        samples.append(np.concatenate([np.ravel(x) for x in jax.tree.leaves(noise)]))
        sigma2 = eta / (1.0 + t) ** gamma
        # sample variance of n normals: relative standard error sqrt(2/n) = 0.7%; allow 5 of them
        assert np.var(samples[-1]) == pytest.approx(sigma2, rel=5 * np.sqrt(2 / n))
        assert abs(np.mean(samples[-1])) < 5 * np.sqrt(sigma2 / n)
    assert abs(np.corrcoef(samples[0], samples[1])[0, 1]) < 5 / np.sqrt(n)  # fresh noise every step
    again, _ = opt.update(zeros, opt.init(zeros))
    np.testing.assert_allclose(np.concatenate([np.ravel(x) for x in jax.tree.leaves(again)]), samples[0],
                               rtol=1e-6, atol=1e-7)  # same key, same noise (eager vs jit: ulps)


@pytest.mark.parametrize("decay", [None, 0.9])
def test_average_params_matches_numpy_loop(decay):
    h = np.array([1.0, 10.0])

    def grad(x):
        return h * x

    opt = fo.chain(fo.sgd(0.15), ft.average_params(decay))
    x = jnp.asarray([1.0, -1.0])
    state = opt.init(x)
    xn, avg, iterates = np.array([1.0, -1.0]), np.array([1.0, -1.0]), []
    for t in range(1, 30):
        u, state = opt.update(grad(x), state, x)
        x = fo.apply_updates(x, u)
        xn = xn - 0.15 * grad(xn)
        iterates.append(xn)
        avg = np.mean(iterates, axis=0) if decay is None else decay * avg + (1 - decay) * xn
    np.testing.assert_allclose(x, xn, rtol=1e-6)
    np.testing.assert_allclose(state[-1].average, avg, rtol=1e-5, atol=1e-7)
    assert int(state[-1].count) == 29


def test_guard_skips_non_finite_steps_like_optax_apply_if_finite():
    f = lambda p: sum(0.5 * jnp.sum(v ** 2) for v in jax.tree.leaves(p))  # noqa: E731
    bad_steps = {3, 5, 6}
    ours = ft.guard(optax.adam(0.1))  # the same inner rule on both sides isolates the guard
    theirs = optax.apply_if_finite(optax.adam(0.1), max_consecutive_errors=1000)
    unguarded = fo.adam(0.1)
    p1 = p2 = p3 = PARAMS
    s1, s2, s3 = ours.init(PARAMS), theirs.init(PARAMS), unguarded.init(PARAMS)
    up1, up2, up3 = jax.jit(ours.update), jax.jit(theirs.update), jax.jit(unguarded.update)
    for t in range(10):
        g1, g2, g3 = (jax.grad(f)(p) for p in (p1, p2, p3))
        if t in bad_steps:
            g1, g2, g3 = ({"W": g["W"].at[0, 1].set(jnp.nan if t != 5 else jnp.inf), "b": g["b"]}
                          for g in (g1, g2, g3))
        u1, s1 = up1(g1, s1, p1)
        u2, s2 = up2(g2, s2, p2)
        u3, s3 = up3(g3, s3, p3)
        if t in bad_steps:
            assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(u1))
        p1, p2, p3 = fo.apply_updates(p1, u1), optax.apply_updates(p2, u2), fo.apply_updates(p3, u3)
    assert_trees_close(p1, p2, rtol=1e-6)
    assert int(s1.skipped) == 3 and int(s1.consecutive) == 0 and int(s1.inner[0].count) == 7
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(p1))
    assert not all(np.all(np.isfinite(x)) for x in jax.tree.leaves(p3))  # what the guard prevents


def test_guard_under_jit_with_a_random_key_in_the_inner_state():
    opt = ft.guard(fo.chain(ft.gradient_noise(jax.random.key(1), eta=0.01), fo.sgd(0.1)))
    x = jnp.ones(3)
    state = opt.init(x)
    step = jax.jit(opt.update)
    u, state = step(jnp.asarray([1.0, jnp.nan, 0.0]), state, x)
    assert float(jnp.max(jnp.abs(u))) == 0.0 and int(state.skipped) == 1
    u, state = step(jnp.ones(3), state, x)
    assert float(jnp.max(jnp.abs(u))) > 0 and int(state.consecutive) == 0


def test_average_params_decay_message():
    with pytest.raises(ValueError, match=r"^average_params: decay must lie in \[0, 1\), got decay=1.0; pass None "
                                         r"\(Polyak\)"):
        ft.average_params(1.0)
