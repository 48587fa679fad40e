"""Sampling digits from a denoising autoencoder with the corruption/reconstruction chain (Bengio et al. 2013).

Data: ``fnn.data.load_digits`` (8x8, pixels in [0, 1]), a stratified 80/20 split (seed 0): 1,437 training and 360
test digits. Per corruption rate and seed: a 64-256-64 denoising autoencoder (sigmoid units, untied, Bernoulli
cross-entropy against the clean digit, salt-and-pepper corruption of that rate, Adam 1e-3, batch 32) trained with
``train_autoencoder``; then ``dae_chain`` runs 100 chains from uniform noise

    x~_t ~ C(x~ | x_t)  (salt-and-pepper, same rate),   x_{t+1} ~ Bernoulli(r_t),   r_t = g(f(x~_t W + b) V + c)

for 300 steps, recording every 10th. The samples are the reconstruction means ``r_t`` (grey levels, comparable to
the digits) of the records after a burn-in of 100 steps: 100 chains x 20 records = 2,000 samples per run.

Quality measures (``fnn.classic.dae_sampling``): a digits classifier (MLP 64-128-10, ReLU, Adam 1e-3, 40 epochs,
trained once with ``fnn.train.fit``) gives the mean max-softmax confidence on the samples and their class histogram
(entropy, log 10 = 2.303 when uniform; chi-square against uniform, 9 degrees of freedom); ``nearest_distance`` gives
the mean Euclidean distance of samples to their nearest training digit, next to the same for the held-out test
digits (samples much closer than test digits would be copies of training digits: memorisation). The same measures
on the test digits are the reference row; a baseline row draws every pixel independently from its marginal (the
value of a random training digit at that pixel): right grey levels, no digit structure.

Run: ``python examples/dae_sampling.py [--quick] [--out docs/img]`` (3 seeds, 2 rates; ``--quick``: one seed, one
rate, a few epochs and steps, for the test suite). Saves ``dae_samples.png``: chains (rows) over time (columns).

Reference: Bengio, Yao, Alain & Vincent, "Generalized denoising auto-encoders as generative models", NIPS 2013.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys

import jax
import numpy as np
import optax

from fnn import data, layers, losses
from fnn.classic import autoencoders as ae_lib
from fnn.classic import dae_sampling as ds
from fnn.train import fit

CE = losses.softmax_cross_entropy_with_integer_labels
CLASSIFIER = layers.mlp([128, 10], layers.Relu)
PROBS = jax.jit(lambda p, x: jax.nn.softmax(CLASSIFIER.apply(p, x, train=False), axis=-1))


def _summary(v):
    v = np.asarray(v, np.float64)
    return v.mean(), (v.std(ddof=1) if v.size > 1 else 0.0)


def quality(probs, Z, Xtr) -> dict:
    """Classifier confidence, class-histogram entropy and chi-square, mean nearest-training-digit distance."""
    h = ds.class_histogram(probs)
    return {"confidence": h["confidence"], "entropy": h["entropy"], "chi2": h["chi2"], "counts": h["counts"],
            "nn_samples": float(np.mean(ds.nearest_distance(Z, Xtr)))}


def run(quick: bool = False, out: str | None = "docs/img", seeds=(0, 1, 2), rates=(0.2, 0.5)) -> list:
    """Train, sample, measure; print the table; save the figure (seed 0). Returns one dict per (rate, seed)."""
    X, y = data.load_digits()
    (Xtr, ytr), _, (Xte, yte) = data.train_val_test_split(X, y, (0.8, 0.0, 0.2), key=jax.random.key(0),
                                                          stratify=True)
    hidden, ae_epochs, clf_epochs, n_chains, n_rec, thin, burn = 256, 200, 40, 100, 30, 10, 10
    if quick:
        seeds, rates, hidden, ae_epochs, clf_epochs, n_chains, n_rec, thin, burn = (0,), rates[:1], 32, 2, 2, 8, 3, 2, 1
    clf = fit(CLASSIFIER.apply, CLASSIFIER.init(jax.random.key(100), (-1, 64))[1], optax.adam(1e-3), CE, Xtr, ytr,
              epochs=clf_epochs, batch_size=32, key=jax.random.key(101), verbose=False).params
    p_test = np.asarray(PROBS(clf, Xte))
    ref = quality(p_test, Xte, Xtr)
    # baseline: every pixel drawn independently from its marginal (the value of a random training digit there)
    rng = np.random.default_rng(0)
    Xtr_np = np.asarray(Xtr)
    Zb = Xtr_np[rng.integers(0, len(Xtr_np), (2000, 64)), np.arange(64)]
    base = quality(np.asarray(PROBS(clf, Zb)), Zb, Xtr)
    print(f"classifier test accuracy {np.mean(p_test.argmax(1) == np.asarray(yte)):.4f}")
    model = ae_lib.autoencoder(hidden)
    rows, figure = [], {}
    for rate in rates:
        corrupt = functools.partial(ds.salt_and_pepper_noise, rate=rate)
        objective = ae_lib.autoencoder_objective(model, reconstruction="bce", noise=corrupt)
        for seed in seeds:
            k_init, k_train, k_x0, k_chain = jax.random.split(jax.random.key(seed), 4)
            _, params = model.init(k_init, Xtr.shape)
            params, loss = ae_lib.train_autoencoder(k_train, model, params, Xtr, objective=objective,
                                                    epochs=ae_epochs, batch_size=32)
            x0 = jax.random.uniform(k_x0, (n_chains, 64))
            res = ds.dae_chain(k_chain, x0, corrupt, ds.dae_reconstruction(model, params), n_rec, thin=thin)
            Z = np.asarray(res.recon[:, burn:]).reshape(-1, 64)
            row = {"rate": rate, "seed": seed, "loss": float(loss[-1]), **quality(np.asarray(PROBS(clf, Z)), Z, Xtr)}
            rows.append(row)
            if seed == seeds[0]:
                figure[rate] = np.asarray(res.recon)
            print(f"rate {rate} seed {seed}: final DAE loss {row['loss']:.2f}, confidence {row['confidence']:.3f}, "
                  f"entropy {row['entropy']:.3f}, chi2 {row['chi2']:.0f}, nn distance {row['nn_samples']:.3f}, "
                  f"class counts {row['counts'].tolist()}")
    print(f"\n{'':24s} confidence       entropy          chi2 (uniform)   nearest-train distance")
    print(f"{'test digits (reference)':24s} {ref['confidence']:.3f}            {ref['entropy']:.3f}            "
          f"{ref['chi2']:<16.1f} {ref['nn_samples']:.3f}")
    print(f"{'independent pixels':24s} {base['confidence']:.3f}            {base['entropy']:.3f}            "
          f"{base['chi2']:<16.1f} {base['nn_samples']:.3f}")
    for rate in rates:
        sel = [r for r in rows if r["rate"] == rate]
        cells = [_summary([r[k] for r in sel]) for k in ("confidence", "entropy", "chi2", "nn_samples")]
        print(f"{'DAE samples, rate ' + str(rate):24s} " + " ".join(
            f"{m:.3f} ± {s:.3f}".ljust(16) if k != 2 else f"{m:.0f} ± {s:.0f}".ljust(16) for k, (m, s)
            in enumerate(cells)))
    if out is not None:
        _plot(figure, os.path.join(out, "dae_samples.png"), burn)
    return rows


def _plot(figure, path, burn, n_rows=4, n_cols=12):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    rates = list(figure)
    n_cols = min(n_cols, next(iter(figure.values())).shape[1])
    n_rows = min(n_rows, next(iter(figure.values())).shape[0])
    fig, axes = plt.subplots(n_rows * len(rates), n_cols, figsize=(n_cols * 0.6, n_rows * len(rates) * 0.6),
                             squeeze=False)
    for g, rate in enumerate(rates):
        for r in range(n_rows):
            for c in range(n_cols):
                ax = axes[g * n_rows + r, c]
                ax.imshow(figure[rate][r, c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            if r == 0:
                axes[g * n_rows, 0].set_ylabel(f"rate {rate}", fontsize=7)
    fig.tight_layout(pad=0.1)
    fig.savefig(path, dpi=60)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, one rate, a few epochs (for the tests)")
    parser.add_argument("--out", default="docs/img", help="directory for the PNG")
    args = parser.parse_args(argv)
    run(quick=args.quick, out=args.out)


if __name__ == "__main__":
    sys.exit(main())
