"""A denoising autoencoder on Fashion-MNIST: reconstruct clean images from corrupted ones.

Model: ``fnn.classic.autoencoders.autoencoder(256)``, h = sigmoid(x W + b), r = sigmoid(h V + c) (784-256-784),
trained with
Adam on the Bernoulli cross-entropy between r and the *clean* image while its input is corrupted by masking noise
(each pixel zeroed with probability 0.3; Vincent et al., JMLR 2010). A plain autoencoder of the same shape, trained
on clean inputs, is the control. On held-out test images, corrupted the same way, we report the mean squared error
per pixel against the clean image of (a) the corrupted image itself, (b) the plain autoencoder's reconstruction,
(c) the denoising autoencoder's reconstruction, and save ``denoising_autoencoder.png`` (rows: clean, corrupted,
plain AE, denoising AE).

Run: ``python examples/denoising_autoencoder.py [--quick] [--out docs/img]``.

Reference: Vincent, Larochelle, Lajoie, Bengio & Manzagol, "Stacked denoising autoencoders", JMLR 11, 2010.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys

import jax
import numpy as np

from fnn import data
from fnn.classic import autoencoders as ae_lib

RATE = 0.3


def run(quick: bool = False, out: str | None = "docs/img", seed: int = 0) -> dict:
    """Train the plain and the denoising autoencoder, print the error table, save the figure; return the errors."""
    n_train, n_test, epochs, hidden = (1000, 200, 2, 64) if quick else (60000, 10000, 20, 256)
    Xte, _ = data.load_fashion_mnist(split="test")
    if quick:   # the smaller test file only: training images 200.., test images 0..199
        X, Xte = Xte[n_test:n_test + n_train], Xte[:n_test]
    else:
        X, Xte = data.load_fashion_mnist(split="train")[0][:n_train], Xte[:n_test]
    k_init, k_plain, k_dae, k_noise = jax.random.split(jax.random.key(seed), 4)
    model = ae_lib.autoencoder(hidden)
    _, params0 = model.init(k_init, X.shape)
    noise = functools.partial(ae_lib.masking_noise, rate=RATE)
    trained = {}
    for name, k, nz in (("plain", k_plain, None), ("denoising", k_dae, noise)):
        objective = ae_lib.autoencoder_objective(model, reconstruction="bce", noise=nz)
        params, losses = ae_lib.train_autoencoder(k, model, params0, X, objective=objective, epochs=epochs,
                                                  batch_size=100)
        trained[name] = params
        print(f"{name:9s} autoencoder: training objective per epoch {np.round(np.asarray(losses), 2).tolist()}")

    Xc = np.asarray(noise(k_noise, Xte))
    rec = {name: np.asarray(jax.jit(model.apply)(p, Xc)) for name, p in trained.items()}
    mse = {"corrupted input": float(np.mean((Xc - Xte) ** 2))}
    mse.update({f"{name} AE": float(np.mean((r - Xte) ** 2)) for name, r in rec.items()})
    print(f"test images with masking noise (rate {RATE}); mean squared error per pixel against the clean image:")
    for name, v in mse.items():
        print(f"  {name:18s} {v:.4f}")
    if out is not None:
        _plot(Xte, Xc, rec, os.path.join(out, "denoising_autoencoder.png"))
    return mse


def _plot(clean, corrupted, rec, path, n=10):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    rows = [("clean", clean), (f"masked ({RATE:.0%})", corrupted), ("plain AE", rec["plain"]),
            ("denoising AE", rec["denoising"])]
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 1.1, len(rows) * 1.2))
    for r, (title, imgs) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.asarray(imgs[c]).reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1,000 images of the test file, 2 epochs (for the test suite)")
    parser.add_argument("--out", default="docs/img", help="directory for the PNG")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(quick=args.quick, out=args.out, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())
