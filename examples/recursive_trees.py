"""Recursive networks vs an LSTM reading the tokens: evaluating subtraction trees mod m.

Each example is a random binary tree whose leaves are digits 0..m-1 and whose internal nodes all mean "left minus
right"; the label is the value mod m (chance = 1/m). The answer depends on the structure: ((a - b) - c) differs
from (a - (b - c)). Four models, all trained with fnn's Adam on the same trees (mini-batches of the training set),
softmax cross-entropy on the label:

  tree-RNN      h = tanh(W [h_l; h_r] + b) up the tree, softmax on the root (Socher et al. 2011)
  tree-RNTN     the same plus the tensor term [h_l; h_r]^T V [h_l; h_r] (Socher et al. 2013); d = 3/8 of the others
  LSTM (brackets)     serial(Embedding, RNN(LSTMCell), Dense) on "( ( a - b ) - c )": the structure is in the tokens
  LSTM (no brackets)  the same on "a - b - c": the structure is lost, only the digits and their order remain

Test: held-out trees of the training sizes, and deeper trees (more leaves) than any seen in training.

Run:  python examples/recursive_trees.py [--quick] [--seeds 3] [--modulus 3]
"""
import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnn import optimizers as opt
from fnn.classic import recursive as rec
from fnn.layers import Dense, Embedding, serial
from fnn.layers.recurrent import RNN, LSTMCell
from fnn.losses import softmax_cross_entropy_with_integer_labels as xent

MODELS = ("tree-RNN", "tree-RNTN", "LSTM (brackets)", "LSTM (no brackets)")


def encode(name, trees, m, max_leaves):
    """Model inputs for one model kind, padded to the size of trees with ``max_leaves`` leaves."""
    if name.startswith("tree"):
        return rec.encode_trees(trees, n_nodes=2 * max_leaves - 1, n_levels=max_leaves - 1)
    brackets = name == "LSTM (brackets)"
    return rec.encode_sequences(trees, m, brackets, length=(4 if brackets else 2) * max_leaves - (3 if brackets else 1))


def make_model(name, key, m, hidden):
    """(params, logits_fn(params, inputs) -> (B, m))."""
    if name.startswith("tree"):
        tensor = name == "tree-RNTN"  # the tensor costs (2d)^2 d per node: a smaller d keeps the run short
        return rec.init_recursive(key, m, max(4, hidden * 3 // 8) if tensor else hidden, m, tensor), rec.tree_logits
    net = serial(Embedding(m + 4, hidden), RNN(LSTMCell(hidden), return_sequences=False), Dense(m))
    _, params = net.init(key, (-1, 8))
    return params, lambda p, inputs: net.apply(p, inputs[0], lengths=inputs[1])


def leaves(tree):
    return [tree] if not isinstance(tree, tuple) else leaves(tree[0]) + leaves(tree[1])


def no_bracket_ceiling(trees, labels, m):
    """Accuracy of the Bayes-optimal guess from the unbracketed tokens (the digits in order) under the generator.

    P(value | digits i..j) by dynamic programming: the split point of a span of n digits is uniform over its n - 1
    places, and the value is (left - right) mod m. The guess is argmax_v P(v | all digits).
    """
    hits = 0
    for tree, label in zip(trees, labels):
        d = leaves(tree)
        P = {}
        for i, x in enumerate(d):
            P[i, i] = np.eye(m)[x]
        for span in range(2, len(d) + 1):
            for i in range(len(d) - span + 1):
                j = i + span - 1
                acc = np.zeros(m)
                for k in range(i, j):
                    for a in range(m):
                        acc += P[i, k][a] * np.roll(P[k + 1, j][::-1], a + 1)  # sum_b P(b) e_{(a - b) mod m}
                P[i, j] = acc / (span - 1)
        hits += int(np.argmax(P[0, len(d) - 1]) == label)
    return hits / len(trees)


def train_and_test(name, seed, data, *, m, hidden, steps, batch, lr, train_leaves):
    (train_trees, y_train), tests = data
    params, logits_fn = make_model(name, jax.random.key(seed), m, hidden)
    x_train = encode(name, train_trees, m, train_leaves[1])
    optimizer = opt.adam(lr)
    n = len(y_train)

    def loss_fn(params, x, y):
        return xent(logits_fn(params, x), y)

    @jax.jit
    def train(params, x, y):
        def step(carry, key):
            params, state = carry
            idx = jax.random.randint(key, (batch,), 0, n)
            xb = rec.TreeBatch(*(a[idx] for a in x[:-1]), x.steps) if name.startswith("tree") else \
                tuple(a[idx] for a in x)
            loss, grads = jax.value_and_grad(loss_fn)(params, xb, y[idx])
            updates, state = optimizer.update(grads, state, params)
            return (opt.apply_updates(params, updates), state), loss
        keys = jax.random.split(jax.random.key(seed + 1000), steps)
        (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), keys)
        return params, losses

    start = time.perf_counter()
    params, losses = train(params, x_train, jnp.asarray(y_train))
    acc = {}
    for label, (trees, y, max_leaves) in tests.items():
        pred = jnp.argmax(jax.jit(logits_fn)(params, encode(name, trees, m, max_leaves)), -1)
        acc[label] = float(np.mean(np.asarray(pred) == y))
    return acc, float(jnp.mean(losses[-100:])), time.perf_counter() - start


def run(quick=False, seeds=3, m=3):
    if quick:
        s = dict(hidden=8, steps=20, batch=16, lr=1e-2, train_leaves=(2, 4))
        n_train, n_test, deep = 64, 32, (5, 6)
    else:
        s = dict(hidden=32, steps=3000, batch=64, lr=3e-3, train_leaves=(2, 6))
        n_train, n_test, deep = 4000, 1000, (7, 10)
    lo, hi = s["train_leaves"]
    train = rec.expression_dataset(0, n_train, m, lo, hi)
    test_same = rec.expression_dataset(1, n_test, m, lo, hi)
    test_deep = rec.expression_dataset(2, n_test, m, *deep)
    tests = {f"test {lo}-{hi} leaves": (*test_same, hi), f"deeper {deep[0]}-{deep[1]} leaves": (*test_deep, deep[1])}
    results = {}
    for name in MODELS:
        for seed in range(seeds):
            results[name, seed] = train_and_test(name, seed, (train, tests), m=m, **s)
            print(name, seed, results[name, seed], file=sys.stderr, flush=True)
    ceiling = {lab: no_bracket_ceiling(trees, y, m) for lab, (trees, y, _) in tests.items()}
    return results, s, list(tests), ceiling


def _print_ceiling(ceiling):
    pairs = ", ".join(f"{k} {v:.3f}" for k, v in ceiling.items())
    print(f"Bayes-optimal accuracy from the unbracketed tokens: {pairs}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings for the test suite")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--modulus", type=int, default=3)
    args = parser.parse_args()
    results, settings, labels, ceiling = run(args.quick, args.seeds, args.modulus)
    print(f"subtraction trees mod {args.modulus} (chance {1 / args.modulus:.3f}); settings {settings}; "
          f"seeds 0..{args.seeds - 1}; accuracy mean +- std over seeds")
    print(f"| {'model':<19} | " + " | ".join(f"{lab:>22}" for lab in labels) + " | final train loss | seconds |")
    print("|" + "-" * 21 + "|" + "|".join("-" * 24 for _ in labels) + "|------------------|---------|")
    for name in MODELS:
        runs = [results[name, s] for s in range(args.seeds)]
        cells = []
        for lab in labels:
            a = np.array([r[0][lab] for r in runs])
            cells.append(f"{a.mean():.3f} +- {a.std():.3f}".rjust(22))
        loss = np.mean([r[1] for r in runs])
        sec = np.mean([r[2] for r in runs])
        print(f"| {name:<19} | " + " | ".join(cells) + f" | {loss:>16.3f} | {sec:>7.1f} |")
    _print_ceiling(ceiling)


if __name__ == "__main__":
    main()
