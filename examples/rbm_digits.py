"""RBM (deep belief net) pre-training vs autoencoder pre-training vs random initialization on digits, few labels.

Setting (semi-supervised): the 1,797 8x8 digits (``fnn.data.load_digits``) are split once into 1,297 training and
500 test images. All 1,297 training images are available *without* labels; ``--per-class`` of them per class (20:
200 labels, the digits' stand-in for the issue's 1,000 Fashion-MNIST labels) carry labels. Network 64-128-64-10,
sigmoid hidden units, softmax output.

* RBM (DBN): ``fnn.classic.dbn.pretrain_dbn`` trains an RBM (CD-1, momentum 0.9, lr 0.05) on the pixel
  intensities, then one on its hidden probabilities; ``stack_encoders`` loads the two under a random output layer.
* autoencoder: ``fnn.classic.pretraining.pretrain_stack`` trains two stacked denoising autoencoders (tied,
  masking noise 0.25, Adam 1e-3) for the same number of epochs.
* random init: the same network with Glorot hidden layers.

Per seed: a new labelled subset, new pre-training of both stacks, one output layer shared by the three networks,
the same fine-tuning (``fine_tune``: softmax cross-entropy, Adam 1e-3, batch 50). Test accuracy on the 500 test
images, mean and standard deviation over seeds. Figures: the first RBM's filters and Gibbs chains of the RBM
(``docs/img/rbm_filters.png``, ``docs/img/rbm_samples.png``).

Run: ``python examples/rbm_digits.py [--quick] [--seeds 5] [--no-figures]``.

References: Hinton, Osindero & Teh, "A fast learning algorithm for deep belief nets", Neural Computation 18, 2006;
Bengio, Lamblin, Popovici & Larochelle, "Greedy layer-wise training of deep networks", NIPS 2006.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnn import data
from fnn import optimizers as opt
from fnn.classic import autoencoders as ae_lib
from fnn.classic import dbn, pretraining, rbm

IMG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "img")


def _labelled_subset(key, y, per_class):
    y = np.asarray(y)
    perm = np.asarray(jax.random.permutation(key, y.shape[0]))
    return np.concatenate([perm[y[perm] == c][:per_class] for c in range(10)])


def _tile(images, rows, cols, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.55, rows * 0.55 + 0.3))
    for ax, im in zip(np.ravel(axes), images):
        ax.imshow(np.asarray(im).reshape(8, 8), cmap="gray", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    fig.savefig(path, dpi=60)
    plt.close(fig)


def plot_figures(key, params, X_test, y_test, out=IMG):
    """The first RBM's filters (64 of its weight columns as 8x8 images) and 10 Gibbs chains started at test digits."""
    W = np.asarray(params.W).T[:64]
    _tile(W, 8, 8, os.path.join(out, "rbm_filters.png"), "RBM filters: columns of W (64 of 128 hidden units)")
    starts = np.stack([X_test[np.asarray(y_test) == c][0] for c in range(10)])
    steps = [1, 2, 5, 10, 50, 100, 1000]
    _, _, trace = rbm.gibbs_chain(key, params, jnp.asarray(starts), steps[-1], trace=True)
    cols = [starts] + [np.asarray(trace[s - 1]) for s in steps]
    _tile(np.stack(cols, 1).reshape(-1, 64), 10, len(cols), os.path.join(out, "rbm_samples.png"),
          "Gibbs chains: start, p(v|h) after " + ", ".join(map(str, steps)) + " steps")


def run(quick: bool = False, seeds: int = 5, per_class: int = 20, make_figures: bool = True) -> dict:
    """Pre-train and fine-tune the three networks for each seed, print the table; return the accuracies."""
    X, y = data.load_digits()
    perm = np.asarray(jax.random.permutation(jax.random.key(1234), X.shape[0]))
    X, y = X[perm], y[perm]
    X_unl, y_unl, X_te, y_te = X[:1297], y[:1297], X[1297:], y[1297:]
    if quick:
        hidden, pre_epochs, ft_epochs, seeds, per_class = [16], 1, 5, 1, 5
    else:
        hidden, pre_epochs, ft_epochs = [128, 64], 50, 200
    print(f"{X_unl.shape[0]} unlabeled, {per_class * 10} labelled, {X_te.shape[0]} test images; network 64-"
          f"{'-'.join(map(str, hidden))}-10 (sigmoid); {seeds} seeds")
    noise = functools.partial(ae_lib.masking_noise, rate=0.25)
    acc = {"RBM (DBN)": [], "autoencoder": [], "random init": []}
    t0 = time.process_time()
    for s in range(seeds):
        k_sub, k_rbm, k_ae, k_model, k_ft, k_fig = jax.random.split(jax.random.fold_in(jax.random.key(0), s), 6)
        idx = _labelled_subset(k_sub, y_unl, per_class)
        rbms, hist = dbn.pretrain_dbn(k_rbm, X_unl, hidden, k=1, optimizer=opt.momentum(0.05, 0.9),
                                      epochs=pre_epochs, batch_size=20)
        aes, ae_losses = pretraining.pretrain_stack(k_ae, X_unl, hidden, tied=True, noise=noise, epochs=pre_epochs,
                                                    batch_size=20)
        if s == 0:
            for k, h in enumerate(hist):
                r, pl = np.asarray(h["reconstruction"]), np.asarray(h["pseudo_likelihood"])
                print(f"  RBM {k + 1}: reconstruction error {r[0]:.2f} -> {r[-1]:.2f}, "
                      f"pseudo-log-likelihood {pl[0]:.2f} -> {pl[-1]:.2f} (first 500 training rows)")
            for k, h in enumerate(ae_losses):
                print(f"  AE {k + 1}: objective {float(h[0]):.2f} -> {float(h[-1]):.2f}")
        model, random_params = pretraining.stack_encoders(k_model, X_unl.shape[1], hidden, 10)
        inits = {"RBM (DBN)": pretraining.load_encoders(random_params, rbms),
                 "autoencoder": pretraining.load_encoders(random_params, aes), "random init": random_params}
        for name, params in inits.items():
            params, _ = pretraining.fine_tune(k_ft, model, params, X_unl[idx], y_unl[idx], epochs=ft_epochs,
                                              batch_size=50)
            pred = np.argmax(np.asarray(jax.jit(model.apply)(params, jnp.asarray(X_te))), axis=1)
            acc[name].append(float(np.mean(pred == y_te)))
        if s == 0 and make_figures:
            os.makedirs(IMG, exist_ok=True)
            plot_figures(k_fig, rbms[0], X_te, y_te)
    print(f"test accuracy after fine-tuning on {per_class * 10} labels ({seeds} seeds, "
          f"{time.process_time() - t0:.0f} s CPU):")
    for name, a in acc.items():
        print(f"  {name:12s} {np.mean(a):.4f} +- {np.std(a):.4f}   {np.round(a, 4).tolist()}")
    return acc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny network, one seed (for the test suite)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--no-figures", action="store_true")
    args = parser.parse_args(argv)
    run(quick=args.quick, seeds=args.seeds, per_class=args.per_class, make_figures=not args.no_figures)


if __name__ == "__main__":
    sys.exit(main())
