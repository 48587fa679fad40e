"""A small conditional GAN: generator and discriminator as fnn models, logistic cost, alternating updates.

Generator ``G(z, y)`` maps noise ``z ~ N(0, I)`` (n, q) and a class ``y`` (one-hot, (n, K)) to a sample (n, d);
discriminator ``D(x, y) = sigmoid(s(x, y))`` scores a (sample, class) pair with the logit ``s``. Both are
``fnn.layers.mlp`` networks acting on the concatenation ``[z, onehot(y)]`` / ``[x, onehot(y)]`` (Mirza & Osindero).

The discriminator's logistic cost (cross-entropy, real pairs labelled 1, generated pairs 0), written with
``log sigmoid(s) = -softplus(-s)`` and ``log(1 - sigmoid(s)) = -softplus(s)`` so it is stable for any logit:

    J_D = -mean log D(x, y) - mean log(1 - D(G(z, y), y)) = mean softplus(-s_real) + mean softplus(s_fake)

The generator's cost: the minimax game's ``J_G = -J_D`` reduces to ``mean log(1 - D(G(z))) = -mean softplus(s_fake)``
(``non_saturating=False``); the default is the non-saturating heuristic ``J_G = -mean log D(G(z)) =
mean softplus(-s_fake)``, which has the same fixed point and strong gradients early on (Goodfellow et al. 2014,
sec. 3; Goodfellow, NIPS 2016 tutorial, sec. 3.2.3).

Training (:func:`train_cgan`) alternates ``d_steps`` discriminator steps and one generator step per iteration
(Goodfellow et al. 2014, Algorithm 1), in a jitted ``lax.scan`` of ``fnn.train.gradient_step`` s (a two-player
game, not one objective, so not ``fnn.train.minimize``).

References: Goodfellow et al., "Generative adversarial nets", NIPS 2014; Mirza & Osindero, "Conditional generative
adversarial nets", arXiv:1411.1784, 2014.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from fnn import optimizers as _opt
from fnn.layers import Layer, LeakyRelu, Relu, mlp
from fnn.train import gradient_step

__all__ = [
    "CGAN", "CGANParams", "conditional_gan", "generate", "discriminate", "discriminator_loss", "generator_loss",
    "train_cgan", "ring_of_gaussians",
]


class CGAN(NamedTuple):
    generator: Layer       # [z, onehot(y)] (n, q + K) -> x (n, d)
    discriminator: Layer   # [x, onehot(y)] (n, d + K) -> logits (n, 1)
    data_dim: int          # d
    n_classes: int         # K
    noise_dim: int         # q

    def init(self, key) -> "CGANParams":
        """Initialize both networks: ``-> CGANParams(generator, discriminator)``."""
        kg, kd = jax.random.split(key)
        _, pg = self.generator.init(kg, (-1, self.noise_dim + self.n_classes))
        _, pd = self.discriminator.init(kd, (-1, self.data_dim + self.n_classes))
        return CGANParams(pg, pd)


class CGANParams(NamedTuple):
    generator: tuple       # params of CGAN.generator
    discriminator: tuple   # params of CGAN.discriminator


def _check_sizes(where, name, sizes):
    sizes = list(sizes)
    if not sizes or any(not (isinstance(s, int) and s >= 1) for s in sizes):
        raise ValueError(f"{where}: expected {name} to be a non-empty list of positive layer widths, got {sizes!r}")
    return sizes


def conditional_gan(data_dim: int, n_classes: int, *, noise_dim: int = 2,
                    generator_hidden: Sequence[int] = (64, 64),
                    discriminator_hidden: Sequence[int] = (64, 64)) -> CGAN:
    """Build a conditional GAN of two MLPs: ``G = mlp(generator_hidden + [d], Relu)`` (linear output) and
    ``D = mlp(discriminator_hidden + [1], LeakyRelu)`` (a logit).

    Args:
      data_dim: ``d``, the width of a sample. n_classes: ``K`` (>= 1). noise_dim: ``q``.
      generator_hidden, discriminator_hidden: hidden widths (each >= 1).

    Returns: a :class:`CGAN`; ``gan.init(key) -> CGANParams``.

    Example:
      >>> gan = conditional_gan(2, 4)
      >>> params = gan.init(jax.random.key(0))
      >>> generate(gan, params.generator, jax.random.key(1), jnp.arange(4)).shape
      (4, 2)

    Reference: Mirza & Osindero, arXiv:1411.1784, 2014, sec. 3.2 (condition both nets on y by concatenation).
    """
    for name, v in (("data_dim", data_dim), ("n_classes", n_classes), ("noise_dim", noise_dim)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"conditional_gan: expected {name} to be a positive int, got {v!r}")
    g_sizes = _check_sizes("conditional_gan", "generator_hidden", generator_hidden) + [data_dim]
    d_sizes = _check_sizes("conditional_gan", "discriminator_hidden", discriminator_hidden) + [1]
    return CGAN(mlp(g_sizes, Relu), mlp(d_sizes, LeakyRelu), data_dim, n_classes, noise_dim)


def _one_hot(gan, labels):
    labels = jnp.asarray(labels)
    if labels.ndim != 1 or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"conditional GAN: expected integer class labels of shape (n,), got {labels.dtype} "
                         f"{labels.shape}")
    return jax.nn.one_hot(labels, gan.n_classes)


def generate(gan: CGAN, generator_params, key, labels, z=None):
    """Samples ``x = G([z, onehot(y)])`` (n, d) for labels ``y`` (n,); ``z ~ N(0, I_q)`` unless ``z`` (n, q) given."""
    c = _one_hot(gan, labels)
    if z is None:
        z = jax.random.normal(key, (c.shape[0], gan.noise_dim))
    return gan.generator.apply(generator_params, jnp.concatenate([z, c], axis=1))


def discriminate(gan: CGAN, discriminator_params, x, labels):
    """Discriminator logits ``s(x, y)`` (n,): ``D(x, y) = sigmoid(s)`` is the probability that the pair is real."""
    if x.ndim != 2 or x.shape[1] != gan.data_dim:
        raise ValueError(f"discriminate: expected samples of shape (n, {gan.data_dim}), got {x.shape}")
    return gan.discriminator.apply(discriminator_params, jnp.concatenate([x, _one_hot(gan, labels)], axis=1))[:, 0]


def discriminator_loss(real_logits, fake_logits):
    """``J_D = mean softplus(-s_real) + mean softplus(s_fake) = -mean log D(x) - mean log(1 - D(G(z)))``.

    Args: real_logits: (n,) logits on real pairs. fake_logits: (m,) logits on generated pairs. Returns: scalar.
    Reference: Goodfellow et al., NIPS 2014, eq. (1) (the value function, negated).
    """
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def generator_loss(fake_logits, non_saturating: bool = True):
    """``J_G = mean softplus(-s_fake) = -mean log D(G(z))`` (non-saturating), or the minimax
    ``J_G = mean log(1 - D(G(z))) = -mean softplus(s_fake)``.

    Args: fake_logits: (m,). non_saturating: which cost. Returns: scalar.
    Reference: Goodfellow et al., NIPS 2014, sec. 3 (the log D trick); Goodfellow, "NIPS 2016 tutorial: generative
    adversarial networks", arXiv:1701.00160, eqs. (10), (13).
    """
    if non_saturating:
        return jnp.mean(jax.nn.softplus(-fake_logits))
    return -jnp.mean(jax.nn.softplus(fake_logits))


def train_cgan(key, gan: CGAN, params: CGANParams, X, y, *, steps: int = 2000, batch_size: int = 128,
               d_steps: int = 1, non_saturating: bool = True, d_optimizer=None, g_optimizer=None):
    """Alternating stochastic gradient training (Algorithm 1 of Goodfellow et al. 2014), jitted.

    Each iteration: ``d_steps`` times, draw a mini-batch ``(x, y)`` of real data and noise ``z``, and step the
    discriminator on ``J_D(s(x, y), s(G(z, y), y))``; then draw labels ``y`` from the data and fresh noise and step
    the generator on ``J_G(s(G(z, y), y))`` (the discriminator held fixed).

    Args:
      key: PRNG key. gan, params: from :func:`conditional_gan` and ``gan.init``.
      X: real samples (n, d), n >= 1. y: their int labels (n,).
      steps: iterations (>= 1). batch_size: examples per mini-batch. d_steps: discriminator steps per iteration.
      non_saturating: generator cost (see :func:`generator_loss`).
      d_optimizer, g_optimizer: optax-protocol optimizers (default ``fnn.optimizers.adam(2e-4, b1=0.5)`` each, the DCGAN
        setting of Radford, Metz & Chintala, ICLR 2016).

    Returns: ``(params, (d_losses (steps,), g_losses (steps,)))``.
    """
    for name, v in (("steps", steps), ("batch_size", batch_size), ("d_steps", d_steps)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"train_cgan: expected {name} to be a positive int, got {v!r}")
    X, y = jnp.asarray(X), jnp.asarray(y, jnp.int32)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] != gan.data_dim or y.shape != (X.shape[0],):
        raise ValueError(f"train_cgan: expected X (n, {gan.data_dim}) and y (n,), got {X.shape} and {y.shape}")
    d_opt = _opt.adam(2e-4, b1=0.5) if d_optimizer is None else d_optimizer
    g_opt = _opt.adam(2e-4, b1=0.5) if g_optimizer is None else g_optimizer
    n = X.shape[0]

    def d_loss_fn(pd, pg, xb, yb, z):
        fake = jax.lax.stop_gradient(generate(gan, pg, None, yb, z))
        return discriminator_loss(discriminate(gan, pd, xb, yb), discriminate(gan, pd, fake, yb))

    def g_loss_fn(pg, pd, yb, z):
        return generator_loss(discriminate(gan, pd, generate(gan, pg, None, yb, z), yb), non_saturating)

    d_step_fn, g_step_fn = gradient_step(d_loss_fn, d_opt), gradient_step(g_loss_fn, g_opt)

    @jax.jit
    def run(params, X, y, key):          # the data are arguments, not constants baked into the program
        def d_step(carry, key):
            pd, sd, pg = carry
            k1, k2 = jax.random.split(key)
            idx = jax.random.randint(k1, (batch_size,), 0, n)
            z = jax.random.normal(k2, (batch_size, gan.noise_dim))
            pd, sd, loss = d_step_fn(pd, sd, pg, X[idx], y[idx], z)
            return (pd, sd, pg), loss

        def iteration(carry, key):
            pg, pd, sg, sd = carry
            kd, k1, k2 = jax.random.split(key, 3)
            (pd, sd, _), d_losses = jax.lax.scan(d_step, (pd, sd, pg), jax.random.split(kd, d_steps))
            yb = y[jax.random.randint(k1, (batch_size,), 0, n)]
            z = jax.random.normal(k2, (batch_size, gan.noise_dim))
            pg, sg, g_loss = g_step_fn(pg, sg, pd, yb, z)
            return (pg, pd, sg, sd), (d_losses[-1], g_loss)

        pg, pd = params
        carry = (pg, pd, g_opt.init(pg), d_opt.init(pd))
        (pg, pd, _, _), losses = jax.lax.scan(iteration, carry, jax.random.split(key, steps))
        return CGANParams(pg, pd), losses

    return run(params, X, y, key)


def ring_of_gaussians(key, n: int, n_classes: int = 6, *, radius: float = 2.0, stddev: float = 0.15):
    """A 2-D mixture of ``K = n_classes`` Gaussians on a circle, one component per class.

    ``y ~ Uniform{0..K-1}``, ``x = radius (cos 2 pi y / K, sin 2 pi y / K) + stddev * eps``, ``eps ~ N(0, I_2)``.

    Args: key: PRNG key. n: number of samples (>= 1). n_classes: K (>= 1). radius, stddev: as above (> 0, >= 0).
    Returns: ``(X float32 (n, 2), y int32 (n,))``.
    Reference: Metz et al., "Unrolled generative adversarial networks", ICLR 2017, sec. 3.1 (the 2-D ring).
    """
    if not (isinstance(n, int) and n >= 1 and isinstance(n_classes, int) and n_classes >= 1):
        raise ValueError(f"ring_of_gaussians: expected positive ints n and n_classes, got n={n!r}, "
                         f"n_classes={n_classes!r}")
    if not (radius > 0 and stddev >= 0):
        raise ValueError(f"ring_of_gaussians: expected radius > 0 and stddev >= 0, got {radius!r}, {stddev!r}")
    k1, k2 = jax.random.split(key)
    y = jax.random.randint(k1, (n,), 0, n_classes)
    angle = 2.0 * jnp.pi * y / n_classes
    means = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    X = means + stddev * jax.random.normal(k2, (n, 2))
    return X.astype(jnp.float32), y.astype(jnp.int32)
