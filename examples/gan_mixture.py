"""A conditional GAN learns a 2-D mixture of Gaussians, one component per class.

Data: ``fnn.classic.gan.ring_of_gaussians``: 6 classes, class k centred at 2 (cos 2 pi k / 6, sin 2 pi k / 6), standard
deviation 0.15, 6,000 samples. Model: ``fnn.classic.gan.conditional_gan(2, 6)``: generator 8-64-64-2 (noise z of
dimension 2 plus the one-hot class), discriminator 8-64-64-1; the discriminator's logistic cost, the
non-saturating generator cost, 30,000 alternating Adam steps (lr 1e-4, beta1 0.5; batch 128).

Result: for each class, 1,000 generated samples; we report the distance between the generated and the true class
mean and the generated standard deviation (target 0.15), the fraction of samples nearest to their own class's
center, and save ``gan_mixture.png`` (real data on the left, generated samples per class on the right, same colours).

Run: ``python examples/gan_mixture.py [--quick] [--out docs/img]``.

References: Goodfellow et al., "Generative adversarial nets", NIPS 2014; Mirza & Osindero, "Conditional generative
adversarial nets", arXiv:1411.1784, 2014.
"""
from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnn.classic import gan as gan_lib

K, RADIUS, STDDEV = 6, 2.0, 0.15


def run(quick: bool = False, out: str | None = "docs/img", seed: int = 0) -> dict:
    """Train the conditional GAN, print per-class statistics, save the figure; return the statistics."""
    n, steps, hidden, per_class, lr = (1000, 300, (32,), 200, 2e-3) if quick else (6000, 30000, (64, 64), 1000, 1e-4)
    k_data, k_init, k_train, k_gen = jax.random.split(jax.random.key(seed), 4)
    X, y = gan_lib.ring_of_gaussians(k_data, n, K, radius=RADIUS, stddev=STDDEV)
    gan = gan_lib.conditional_gan(2, K, noise_dim=2, generator_hidden=hidden, discriminator_hidden=hidden)
    opt = optax.adam(lr, b1=0.5)
    params, (d_losses, g_losses) = gan_lib.train_cgan(k_train, gan, gan.init(k_init), X, y, steps=steps,
                                                      batch_size=128, d_optimizer=opt, g_optimizer=opt)
    labels = jnp.repeat(jnp.arange(K), per_class)
    samples = np.asarray(gan_lib.generate(gan, params.generator, k_gen, labels)).reshape(K, per_class, 2)
    angle = 2 * np.pi * np.arange(K) / K
    means = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    mean_error = np.linalg.norm(samples.mean(axis=1) - means, axis=1)
    std = samples.std(axis=1).mean(axis=1)
    nearest = np.argmin(np.sum((samples[:, :, None, :] - means[None, None]) ** 2, axis=-1), axis=-1)
    own = np.mean(nearest == np.arange(K)[:, None], axis=1)
    print(f"conditional GAN, {steps} alternating steps; last 100 steps mean J_D = {np.mean(d_losses[-100:]):.3f} "
          f"(2 ln 2 = {2 * np.log(2):.3f} at equilibrium), J_G = {np.mean(g_losses[-100:]):.3f} (ln 2 = "
          f"{np.log(2):.3f})")
    print(f"{'class':>5s} {'|mean error|':>12s} {'std (0.15)':>10s} {'nearest own center':>18s}")
    for k in range(K):
        print(f"{k:5d} {mean_error[k]:12.3f} {std[k]:10.3f} {own[k]:18.3f}")
    if out is not None:
        _plot(np.asarray(X), np.asarray(y), samples, os.path.join(out, "gan_mixture.png"))
    return {"mean_error": mean_error, "std": std, "own_center": own, "d_loss": np.asarray(d_losses),
            "g_loss": np.asarray(g_losses)}


def _plot(X, y, samples, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
    for k in range(K):
        axes[0].scatter(X[y == k, 0], X[y == k, 1], s=3, color=f"C{k}", label=f"class {k}")
        axes[1].scatter(samples[k, :, 0], samples[k, :, 1], s=3, color=f"C{k}")
    axes[0].set(title="real data", aspect="equal")
    axes[1].set(title="generated: G(z, y) for each class y", aspect="equal")
    axes[0].legend(markerscale=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 steps (lr 2e-3) of a smaller GAN (for the tests)")
    parser.add_argument("--out", default="docs/img", help="directory for the PNG")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(quick=args.quick, out=args.out, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())
