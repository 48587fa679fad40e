"""Greedy layer-wise pre-training vs random initialization on Fashion-MNIST with 1,000 labels.

Setting (semi-supervised): all 60,000 training images are available *without* labels; only 1,000 of them (100 per
class, drawn at random) carry labels. Network: 784-500-250-10, sigmoid hidden units, softmax output.

* pre-trained: ``fnn.classic.pretraining.pretrain_stack`` trains a denoising autoencoder (tied weights, masking noise
  0.25, Bernoulli cross-entropy) on the 60,000 images for the first hidden layer, then one on its codes for the second;
  ``stack_encoders`` puts the two encoders under a random output layer; ``fine_tune`` trains everything on the
  1,000 labelled images (softmax cross-entropy, Adam).
* random init: the same network, same output layer, same fine-tuning, hidden layers from Glorot initialization.

Both are fine-tuned with several seeds (output-layer initialization and mini-batch order); the table reports the
test accuracy on the 10,000 test images, mean and standard deviation over seeds.

Run: ``python examples/pretraining.py [--quick] [--seeds 3]``.

References: Bengio, Lamblin, Popovici & Larochelle, "Greedy layer-wise training of deep networks", NIPS 2006;
Erhan et al., "Why does unsupervised pre-training help deep learning?", JMLR 11, 2010; Vincent et al., JMLR 2010.
"""
from __future__ import annotations

import argparse
import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np

from fnn import data
from fnn.classic import autoencoders as ae_lib
from fnn.classic import pretraining as pre_lib


def _labelled_subset(key, y, per_class):
    """Indices of ``per_class`` random examples of every class."""
    y = np.asarray(y)
    perm = np.asarray(jax.random.permutation(key, y.shape[0]))
    return np.concatenate([perm[y[perm] == c][:per_class] for c in range(10)])


def run(quick: bool = False, seeds: int = 3, seed: int = 0) -> dict:
    """Pre-train, fine-tune both networks for each seed, print the table; return the accuracies."""
    if quick:   # the 10,000-image test file only: unlabeled/labelled from 2000.., test 0..1999
        Xall, yall = data.load_fashion_mnist(split="test")
        X_unl, (Xte, yte) = Xall[2000:4000], (Xall[:2000], yall[:2000])
        y_unl = yall[2000:4000]
        hidden, per_class, pre_epochs, ft_epochs, seeds = [16], 10, 1, 20, 1
    else:
        X_unl, y_unl = data.load_fashion_mnist(split="train")
        Xte, yte = data.load_fashion_mnist(split="test")
        hidden, per_class, pre_epochs, ft_epochs = [500, 250], 100, 5, 100
    key = jax.random.key(seed)
    k_sub, k_pre, key = jax.random.split(key, 3)
    idx = _labelled_subset(k_sub, y_unl, per_class)
    X_lab, y_lab = X_unl[idx], y_unl[idx]
    print(f"{X_unl.shape[0]} unlabeled images, {len(idx)} labelled, {Xte.shape[0]} test; network 784-"
          f"{'-'.join(map(str, hidden))}-10 (sigmoid)")

    noise = functools.partial(ae_lib.masking_noise, rate=0.25)
    pretrained, losses = pre_lib.pretrain_stack(k_pre, X_unl, hidden, tied=True, noise=noise, epochs=pre_epochs,
                                               batch_size=100)
    for k, l in enumerate(losses):
        print(f"  pre-training layer {k + 1}: objective per epoch {np.round(np.asarray(l), 2).tolist()}")

    acc = {"pre-trained": [], "random init": []}
    for s in range(seeds):
        k_model, k_ft = jax.random.split(jax.random.fold_in(key, s))
        model, random_params = pre_lib.stack_encoders(k_model, X_unl.shape[1], hidden, 10)
        pretrained_params = pre_lib.load_encoders(random_params, pretrained)   # same output layer as the control
        for name, params in (("pre-trained", pretrained_params), ("random init", random_params)):
            params, _ = pre_lib.fine_tune(k_ft, model, params, X_lab, y_lab, epochs=ft_epochs, batch_size=50)
            logits = jax.jit(model.apply)(params, jnp.asarray(Xte))
            acc[name].append(float(np.mean(np.argmax(np.asarray(logits), axis=1) == yte)))
    print(f"test accuracy after fine-tuning on {len(idx)} labels ({seeds} seeds):")
    for name, a in acc.items():
        print(f"  {name:12s} {np.mean(a):.4f} +- {np.std(a):.4f}   {np.round(a, 4).tolist()}")
    return acc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny network and data (for the test suite)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(quick=args.quick, seeds=args.seeds, seed=args.seed)


if __name__ == "__main__":
    sys.exit(main())
