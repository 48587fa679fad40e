"""Adversarial training on the bundled digits: clean and FGSM test accuracy of an MLP trained clean or with
Goodfellow's mixed objective, over several seeds.

    x_adv = clip(x + eps sign(grad_x J(x, y)), 0, 1)           pixels in [0, 1] (fnn.data.load_digits: counts / 16)
    J~ = 0.5 J(x, y) + 0.5 J(x_adv, y)                          (Goodfellow, Shlens & Szegedy 2015, eq. 3 and 6)

Every model: MLP 64-128-10 (ReLU), Adam 1e-3, batch 32, 40 epochs, on the same stratified 80/20 split (seed 0);
the seed sets the initialisation and the batch order. Trained clean (``train eps 0``) or adversarially with
``train eps`` 0.1 or 0.2 (``fnn.train.adversarial.adversarial_training`` handed to ``fit``), then tested on the
clean test images and on their FGSM versions at eps 0.1 and 0.2 (``adversarial_accuracy``: the attack uses the
true labels and the tested model's own gradient, a white-box attack). The adversarially trained models are also
tested on the FGSM images made on the clean model of the same seed (a transferred attack: a robustness that only
hides the model's own gradient, "gradient masking", would show as a transferred attack stronger than its own).

Run: ``python examples/adversarial_digits.py`` (5 seeds, a few minutes on a 2-core CPU); ``--quick`` (one seed,
320 training images, 10 epochs, only the model trained with eps 0.2) is what the tests run.
"""
import argparse

import jax
import numpy as np
import optax

from fnn import data, layers, losses
from fnn.train import fit
from fnn.train.adversarial import adversarial_accuracy, adversarial_training, fgsm

CE = losses.softmax_cross_entropy_with_integer_labels
TEST_EPS = (0.1, 0.2)
MODEL = layers.mlp([128, 10], layers.Relu)   # one model function: the evaluation compiles once for all runs
CLIP = (0.0, 1.0)                            # the pixel range
ATTACK = jax.jit(lambda p, x, y, eps: fgsm(MODEL.apply, CE, p, x, y, eps, clip=CLIP))
PREDICT = jax.jit(lambda p, x: MODEL.apply(p, x, train=False))
INIT = jax.jit(lambda key: MODEL.init(key, (-1, 64))[1])   # one compiled program, not one per random op


def train(train_eps, seed, Xt, yt, epochs, scan_unroll=None):
    """The params of one MLP trained clean (``train_eps=0``) or with ``J~`` (alpha 0.5) at ``train_eps``."""
    params = INIT(jax.random.key(100 + seed))
    opt, key = optax.adam(1e-3), jax.random.key(200 + seed)
    if train_eps == 0.0:
        return fit(MODEL.apply, params, opt, CE, Xt, yt, epochs=epochs, batch_size=32, key=key,
                   scan_unroll=scan_unroll, verbose=False).params
    adv = adversarial_training(MODEL.apply, CE, eps=train_eps, alpha=0.5, clip=CLIP)
    return fit(adv.apply, params, opt, adv.loss, adv.pack(Xt, yt), yt, epochs=epochs, batch_size=32, key=key,
               metrics=adv.metrics, scan_unroll=scan_unroll, verbose=False).params


def _summary(values):
    a = np.asarray(values)
    sd = a.std(ddof=1) if a.size > 1 else 0.0
    return {"mean": a.mean(), "sd": sd, "min": a.min(), "max": a.max(), "all": a}


def run(quick=False, seeds=(0, 1, 2, 3, 4), verbose=True):
    """One row per training eps: test accuracy on clean images, under the white-box FGSM attack on the model
    itself, and (rows of adversarially trained models, when the clean models are trained too) under FGSM images
    made on the clean model of the same seed (a transferred, black-box attack). Each entry: mean, sample standard
    deviation, min, max over the seeds."""
    X, y = data.load_digits()
    (Xt, yt), _, (Xs, ys) = data.train_val_test_split(X, y, (0.8, 0.0, 0.2), key=jax.random.key(0), stratify=True)
    train_eps, epochs, unroll = (0.0, 0.1, 0.2), 40, None
    if quick:   # an epoch without unrolling compiles faster; unrolling only pays off over many epochs
        (Xt, yt), seeds, train_eps, epochs, unroll = (Xt[:320], yt[:320]), seeds[:1], (0.2,), 10, 1
    rows, source = [], {}   # source[seed]: the clean model's params, which make the transferred attack
    for te in train_eps:
        res = {"clean": [], **{("fgsm", e): [] for e in TEST_EPS}, **{("transfer", e): [] for e in TEST_EPS}}
        for s in seeds:
            params = train(te, s, Xt, yt, epochs, unroll)
            # eps = 0 is the clean accuracy; the same clip keeps it one compiled program with the attacks
            res["clean"].append(adversarial_accuracy(MODEL.apply, params, Xs, ys, 0.0, clip=CLIP))
            for e in TEST_EPS:
                res["fgsm", e].append(adversarial_accuracy(MODEL.apply, params, Xs, ys, e, clip=CLIP))
            if te == 0.0:
                source[s] = params
            elif s in source:
                for e in TEST_EPS:
                    hits = np.argmax(PREDICT(params, ATTACK(source[s], Xs, ys, e)), axis=-1) == ys
                    res["transfer", e].append(float(np.mean(hits)))
        row = {"train_eps": te, "clean": _summary(res["clean"])["mean"], "clean_stats": _summary(res["clean"]),
               "fgsm": {e: _summary(res["fgsm", e])["mean"] for e in TEST_EPS},
               "fgsm_stats": {e: _summary(res["fgsm", e]) for e in TEST_EPS},
               "transfer_stats": {e: _summary(res["transfer", e]) for e in TEST_EPS if res["transfer", e]}}
        rows.append(row)
        if verbose:
            parts = [("clean", row["clean_stats"])] + [(f"FGSM {e}", row["fgsm_stats"][e]) for e in TEST_EPS]
            parts += [(f"transferred FGSM {e}", v) for e, v in row["transfer_stats"].items()]
            print(f"train eps {te}: " + ";  ".join(f"{name} {v['mean']:.4f} +- {v['sd']:.4f} [{v['min']:.4f}, "
                                                    f"{v['max']:.4f}]" for name, v in parts), flush=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 320 images, 10 epochs, train eps 0.2 only")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    args = parser.parse_args()
    run(quick=args.quick, seeds=tuple(range(args.seeds)))
