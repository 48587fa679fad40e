"""Ten one-hot outputs or four binary outputs for the digits? Nielsen's exercise, then both trained.

1. The hand-wired layer (``fnn.classic.gates.binary_output_layer``): 10 one-hot activations -> the digit's 4 bits,
   checked on the 10 one-hot inputs and on the worst near-one-hot inputs (right digit 0.99, others 0 or 0.01).
2. Put it on top of trained 10-way networks (softmax probabilities -> 4 bits): how often it agrees with argmax.
3. Train the same MLP (64-h-10 softmax cross-entropy vs 64-h-4 sigmoid cross-entropy on the bits; the hidden layer
   starts from the same weights) on the bundled digits, over seeds; the 4-bit net's prediction is its thresholded
   bits read as a number (10..15 count as wrong). Test accuracy: mean and spread over seeds.

Run: ``python examples/binary_outputs.py [--quick]`` (the full run: hidden 16 and 64, 5 seeds, 40 epochs; about a
minute of CPU time, 5 minutes of wall time on a shared, busy 2-core machine; ``--quick``: hidden 16, 1 seed,
2 epochs).

Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1 (the exercise on a bitwise output layer, and
the heuristic argument for 10 outputs rather than 4).
"""
from __future__ import annotations

import argparse
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnn import data, losses
from fnn import layers as core
from fnn.classic.gates import DIGIT_BITS, binary_output_layer, from_bits, to_bits
from fnn.train import fit

CE = losses.softmax_cross_entropy_with_integer_labels


def bit_accuracy(logits, bits):
    """Fraction of examples whose 4 thresholded logits all equal the target bits (= decoded digit is right)."""
    return jnp.mean(jnp.all((logits > 0) == (bits > 0.5), axis=1))


def check_layer(scale: float = 10.0) -> dict:
    """The hand-wired layer on one-hot inputs and on every vertex of the near-one-hot box (exhaustive, 10 x 2^9)."""
    layer, params = binary_output_layer(scale)
    one_hot = np.asarray(layer.apply(params, jnp.eye(10)))
    corners = np.array(list(itertools.product((0.0, 0.01), repeat=9)), np.float32)   # the 9 other digits
    worst = 0.0
    for d in range(10):
        a = np.insert(corners, d, 0.99, axis=1)                       # (512, 10): right digit 0.99
        out = np.asarray(layer.apply(params, jnp.asarray(a)))
        worst = max(worst, float(np.abs(out - DIGIT_BITS[d]).max()))
    return {"one_hot_max_error": float(np.abs(one_hot - DIGIT_BITS).max()), "near_one_hot_max_error": worst}


def run(hidden: int, seed: int, epochs: int, splits) -> dict:
    (Xt, yt), (Xs, ys) = splits
    model10, model4 = core.mlp([hidden, 10], core.Sigmoid), core.mlp([hidden, 4], core.Sigmoid)
    _, p10 = model10.init(jax.random.key(seed), (-1, 64))
    _, p4 = model4.init(jax.random.key(seed), (-1, 64))
    p4 = (p10[0],) + tuple(p4[1:])                                   # the same hidden layer at the start
    opt = optax.adam(3e-3)
    common = dict(epochs=epochs, batch_size=32, key=jax.random.key(1000 + seed), verbose=False)
    p10 = fit(model10.apply, p10, opt, CE, Xt, yt, **common).params
    p4 = fit(model4.apply, p4, opt, losses.sigmoid_binary_cross_entropy, Xt, to_bits(yt), metrics=(bit_accuracy,),
             **common).params
    logits10 = model10.apply(p10, Xs)
    argmax = np.asarray(jnp.argmax(logits10, axis=1))
    layer, lp = binary_output_layer()
    via_layer = np.asarray(from_bits(layer.apply(lp, jax.nn.softmax(logits10))))
    decoded = np.asarray(from_bits(model4.apply(p4, Xs), threshold=0.0))
    return {"acc10": float(np.mean(argmax == ys)), "acc4": float(np.mean(decoded == ys)),
            "acc10_layer": float(np.mean(via_layer == ys)), "agree": float(np.mean(via_layer == argmax)),
            "invalid4": float(np.mean(decoded > 9))}


def main(quick: bool = False) -> dict:
    print("1. the hand-wired 10 -> 4 layer (scale 10)")
    chk = check_layer()
    print(f"   one-hot inputs: max |output - bit| = {chk['one_hot_max_error']:.2e}; near-one-hot (0.99 / <= 0.01, "
          f"all 5120 corners): {chk['near_one_hot_max_error']:.2e}")
    X, y = data.load_digits()
    (Xt, yt), _, (Xs, ys) = data.train_val_test_split(X, y, (0.7, 0.1, 0.2), key=jax.random.key(0), stratify=True)
    hiddens, seeds, epochs = ((16,), (0,), 2) if quick else ((16, 64), (0, 1, 2, 3, 4), 40)
    print(f"2./3. training, Adam 3e-3, batch 32, {epochs} epochs, seeds {list(seeds)}, "
          f"{len(yt)} train / {len(ys)} test")
    table = {}
    for h in hiddens:
        rows = [run(h, s, epochs, ((Xt, yt), (Xs, ys))) for s in seeds]
        table[h] = {k: (float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows])))
                    for k in rows[0]}
        t = table[h]
        print(f"   hidden {h:>3}: 10 outputs {t['acc10'][0]:.4f} +- {t['acc10'][1]:.4f} | 4 outputs "
              f"{t['acc4'][0]:.4f} +- {t['acc4'][1]:.4f} (codes 10..15: {t['invalid4'][0]:.4f}) | 10 outputs + "
              f"hand-wired layer {t['acc10_layer'][0]:.4f} (agrees with argmax {t['agree'][0]:.4f})")
    return {"layer": chk, "table": table}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="hidden 16, one seed, 2 epochs")
    main(parser.parse_args().quick)
