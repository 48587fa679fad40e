"""Conditional GAN: losses against hand-computed values, shapes/jit/grad, data statistics, training (example)."""
import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.classic import gan as G

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_losses_against_hand_computed_values():
    # D(x) = sigmoid(0) = 1/2 everywhere: J_D = -log(1/2) - log(1/2) = 2 ln 2; J_G = -log(1/2) = ln 2
    z = jnp.zeros(5)
    np.testing.assert_allclose(G.discriminator_loss(z, z), 2 * math.log(2), rtol=1e-6)
    np.testing.assert_allclose(G.generator_loss(z), math.log(2), rtol=1e-6)
    np.testing.assert_allclose(G.generator_loss(z, non_saturating=False), -math.log(2), rtol=1e-6)
    # logits ln 3 (D = 3/4) on real, ln(1/3) (D = 1/4) on fake:
    # J_D = -log(3/4) - log(1 - 1/4) = 2 log(4/3); J_G = -log(1/4) = log 4; minimax J_G = log(3/4)
    real, fake = jnp.full(3, math.log(3)), jnp.full(4, -math.log(3))
    np.testing.assert_allclose(G.discriminator_loss(real, fake), 2 * math.log(4 / 3), rtol=1e-6)
    np.testing.assert_allclose(G.generator_loss(fake), math.log(4), rtol=1e-6)
    np.testing.assert_allclose(G.generator_loss(fake, non_saturating=False), math.log(3 / 4), rtol=1e-6)
    # mixed logits against the textbook formula in NumPy, and stability at extreme logits
    s_r, s_f = np.array([-2.0, 0.5, 3.0]), np.array([1.0, -4.0])
    d = lambda s: 1 / (1 + np.exp(-s))    # noqa: E731
    np.testing.assert_allclose(G.discriminator_loss(jnp.asarray(s_r), jnp.asarray(s_f)),
                               -np.mean(np.log(d(s_r))) - np.mean(np.log(1 - d(s_f))), rtol=1e-6)
    assert bool(jnp.isfinite(G.discriminator_loss(jnp.array([-500.0]), jnp.array([500.0]))))
    # the two generator costs have opposite-signed gradients of different size at a confident discriminator
    g_ns = jax.grad(G.generator_loss)(jnp.array([-5.0]))
    g_mm = jax.grad(lambda s: G.generator_loss(s, non_saturating=False))(jnp.array([-5.0]))
    np.testing.assert_allclose(g_ns, [-d(5.0)], rtol=1e-5)      # d/ds softplus(-s) = -sigmoid(-s)
    np.testing.assert_allclose(g_mm, [-d(-5.0)], rtol=1e-5)     # saturates: tiny gradient


def test_shapes_jit_grad(key):
    gan = G.conditional_gan(3, 4, noise_dim=5, generator_hidden=(8,), discriminator_hidden=(6, 6))
    params = gan.init(key)
    labels = jnp.array([0, 1, 2, 3, 1])
    x = G.generate(gan, params.generator, jax.random.key(1), labels)
    assert x.shape == (5, 3)
    assert params.generator[0].W.shape == (5 + 4, 8) and params.discriminator[0].W.shape == (3 + 4, 6)
    s = G.discriminate(gan, params.discriminator, x, labels)
    assert s.shape == (5,)
    np.testing.assert_allclose(jax.jit(G.discriminate, static_argnums=0)(gan, params.discriminator, x, labels), s,
                               rtol=1e-6)
    z = jax.random.normal(jax.random.key(2), (5, 5))
    np.testing.assert_allclose(G.generate(gan, params.generator, None, labels, z),
                               gan.generator.apply(params.generator, jnp.concatenate(
                                   [z, jax.nn.one_hot(labels, 4)], axis=1)), rtol=1e-6)
    # the label changes the output: the networks are conditioned
    assert not np.allclose(G.generate(gan, params.generator, None, jnp.zeros(5, jnp.int32), z),
                           G.generate(gan, params.generator, None, jnp.ones(5, jnp.int32), z))
    g = jax.grad(lambda pg: G.generator_loss(G.discriminate(gan, params.discriminator,
                                                            G.generate(gan, pg, None, labels, z), labels)))(
        params.generator)
    assert jax.tree.structure(g) == jax.tree.structure(params.generator)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) and bool(jnp.any(leaf != 0)) for leaf in jax.tree.leaves(g))


def test_ring_of_gaussians_statistics():
    X, y = G.ring_of_gaussians(jax.random.key(0), 6000, 3, radius=2.0, stddev=0.1)
    assert X.shape == (6000, 2) and X.dtype == jnp.float32 and y.dtype == jnp.int32
    counts = np.bincount(np.asarray(y), minlength=3)
    assert np.all(np.abs(counts - 2000) < 5 * np.sqrt(6000 * (1 / 3) * (2 / 3)))
    for k in range(3):
        Xk = np.asarray(X)[np.asarray(y) == k]
        mu = 2.0 * np.array([np.cos(2 * np.pi * k / 3), np.sin(2 * np.pi * k / 3)])
        assert np.all(np.abs(Xk.mean(0) - mu) < 5 * 0.1 / np.sqrt(len(Xk)))
        assert np.all(np.abs(Xk.std(0) - 0.1) < 0.01)


def test_bad_input(key):
    with pytest.raises(ValueError, match=r"conditional_gan: expected generator_hidden to be a non-empty list of "
                                         r"positive layer widths, got \[0\]"):
        G.conditional_gan(2, 3, generator_hidden=(0,))
    with pytest.raises(ValueError, match=r"conditional_gan: expected n_classes to be a positive int, got 0"):
        G.conditional_gan(2, 0)
    gan = G.conditional_gan(2, 3, generator_hidden=(4,), discriminator_hidden=(4,))
    params = gan.init(key)
    with pytest.raises(ValueError, match=r"discriminate: expected samples of shape \(n, 2\), got \(4, 3\)"):
        G.discriminate(gan, params.discriminator, jnp.zeros((4, 3)), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match=r"expected integer class labels of shape \(n,\)"):
        G.generate(gan, params.generator, key, jnp.zeros(4))
    with pytest.raises(ValueError, match=r"train_cgan: expected X \(n, 2\) and y \(n,\), got \(5, 2\) and \(4,\)"):
        G.train_cgan(key, gan, params, jnp.zeros((5, 2)), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match=r"train_cgan: expected steps to be a positive int, got 0"):
        G.train_cgan(key, gan, params, jnp.zeros((5, 2)), jnp.zeros(5, jnp.int32), steps=0)


def test_example_runs_quickly(tmp_path):
    spec = importlib.util.spec_from_file_location("gan_example", os.path.join(ROOT, "examples", "gan_mixture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stats = module.run(quick=True, out=str(tmp_path))
    assert (tmp_path / "gan_mixture.png").exists()
    d_losses = stats["d_loss"]
    assert d_losses.shape == (300,) and np.all(np.isfinite(d_losses)) and np.all(np.isfinite(stats["g_loss"]))
    assert abs(float(d_losses[0]) - 2 * math.log(2)) < 0.3          # starts near chance, D = 1/2
    assert float(np.mean(d_losses[:20])) < float(d_losses[0])         # the discriminator learns at first
    # alternating training moved every class's samples from near the origin (distance ~ radius 2 from every mode)
    # to its own mode: most samples lie nearest their class's center, and the class means are close to the modes
    assert stats["mean_error"].shape == (6,) and np.all(stats["mean_error"] < 0.6)
    assert np.all(stats["own_center"] > 0.9)
