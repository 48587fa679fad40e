"""Transfer learning on the bundled digits: pre-train on 0-4, reuse the hidden layers for a 5-9 classifier.

The source network ``64 -> 64 -> 32 -> 5`` (ReLU) is trained on every image of the digits 0-4. For the digits 5-9
only ``n`` labelled images per class are given (n = 10, 30, 100), and four classifiers of the same shape are trained
for the same number of Adam steps:

  (a) scratch     all layers freshly initialised and trained;
  (b) frozen      the source's two hidden layers, frozen (``fnn.train.freeze``), under a new output layer;
  (c) fine-0.1    the same start, every layer trained, the transferred ones at 1/10 of the rate (``scale_where``);
  (d) fine-1      the same start, every layer trained at the full rate.

Test accuracy on a fixed held-out set of 5-9 (70 images per class), over several seeds (a seed draws the source's
initialisation, the labelled subset and the new layers); paired differences per seed with a 95% t interval.

Run: ``.venv/bin/python examples/transfer_digits.py`` (about 40 s of CPU time; ``--quick``: 2 seeds,
n = 3, 2 steps, an untrained source, scratch and frozen-2 only: a check that it runs, for the test suite).
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from fnn import data, layers, losses
from fnn.optimizers import adam, apply_updates, chain
from fnn.train import freeze, init_transfer, layer_mask, reuse, scale_where

CE = losses.softmax_cross_entropy_with_integer_labels
SOURCE = layers.mlp([64, 32, 5], layers.Relu)    # Dense(64), Relu, Dense(32), Relu, Dense(5)
CONDITIONS = ("scratch", "frozen-2", "frozen-1", "fine-0.1", "fine-1")
KEEP = {"frozen-2": 4, "frozen-1": 2, "fine-0.1": 4, "fine-1": 4}   # layers transferred (4: both hidden layers)


def split_target(X, y, n_test=70, seed=0):
    """Digits 5-9 relabelled 0-4: a fixed test set of ``n_test`` per class, the rest a pool to draw labels from."""
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for c in range(5, 10):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:n_test])
        pool.append(idx[n_test:])
    return pool, np.concatenate(test)


def train(model, opt, params, X, y, key, *, steps, batch):
    """``steps`` steps of ``opt`` on random batches of ``(X, y)`` (a ``lax.scan``; traced inside one program)."""
    def step(carry, k):
        p, s = carry
        i = jax.random.randint(k, (batch,), 0, X.shape[0])
        g = jax.grad(lambda p: CE(model.apply(p, X[i]), y[i]))(p)
        u, s = opt.update(g, s, p)
        return (apply_updates(p, u), s), None
    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
    return params


def optimizer(name, lr, mask):
    if name.startswith("frozen"):
        return freeze(adam(lr), mask)                       # transferred layers fixed, the rest trained
    if name == "fine-0.1":
        return chain(adam(lr), scale_where(0.1, mask))      # transferred layers at lr / 10
    return adam(lr)                                         # scratch, fine-1: every layer at lr


def target_program(conditions, *, lr, steps, batch, jit_options=None):
    """``(p_src, X, y, X_test, y_test, k_init, k_train) -> {condition: test accuracy}`` for one seed: every
    condition's model built, transferred, trained and tested; vmapped over seeds and compiled as one program."""
    def one_seed(p_src, X, y, X_test, y_test, k_init, k_train):
        acc = {}
        for name in conditions:
            keep = KEEP.get(name, 0)
            model = reuse(SOURCE, keep, *SOURCE.children[keep:])   # same shape; the upper layers fresh
            _, p = init_transfer(model, p_src, keep, k_init, (-1, 64))
            p = train(model, optimizer(name, lr, layer_mask(p, keep)), p, X, y, k_train, steps=steps, batch=batch)
            acc[name] = jnp.mean(jnp.argmax(model.apply(p, X_test), -1) == y_test)
        return acc
    return jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, None, None, 0, 0)), compiler_options=jit_options)


def experiment(X, y, pool, test, sizes, seeds, conditions=CONDITIONS, *, lr, steps, source_steps, jit_options=None):
    """``{(n, condition): (seeds,) test accuracies}``. Seed s draws the source's init and batches, the labelled
    subset, the new layers' init (the same for every condition: paired) and the batches."""
    keys = jax.random.split(jax.random.key(0), (seeds, 4))
    src = np.flatnonzero(y < 5)
    pretrain = jax.jit(jax.vmap(lambda k, kt, X, y: train(SOURCE, adam(lr), SOURCE.init(k, (-1, 64))[1], X, y, kt,
                                                          steps=source_steps, batch=64), in_axes=(0, 0, None, None)),
                       compiler_options=jit_options)
    if source_steps:
        p_src = pretrain(keys[:, 0], keys[:, 1], X[src], y[src])
    else:   # the quick check: an untrained source, one compiled program less
        p_src = jax.jit(jax.vmap(lambda k: SOURCE.init(k, (-1, 64))[1]))(keys[:, 0])
    out = {}
    for n in sizes:
        rngs = [np.random.default_rng([s, n]) for s in range(seeds)]
        idx = np.stack([np.concatenate([r.choice(p, n, replace=False) for p in pool]) for r in rngs])
        program = target_program(conditions, lr=lr, steps=steps, batch=min(32, 5 * n), jit_options=jit_options)
        acc = program(p_src, X[idx], y[idx] - 5, X[test], y[test] - 5, keys[:, 2], keys[:, 3])
        out.update({(n, name): np.asarray(a) for name, a in acc.items()})
    return out


def interval(d, level=0.95):
    """Mean of the paired differences ``d`` and its t interval."""
    d = np.asarray(d, float)
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
    return d.mean(), d.mean() - half, d.mean() + half


PAIRS = (("frozen-2", "scratch"), ("frozen-1", "scratch"), ("fine-0.1", "scratch"), ("fine-1", "scratch"),
         ("fine-0.1", "fine-1"))


def run(quick=False, seeds=10, print_fn=print):
    X, y = data.load_digits()
    pool, test = split_target(X, y)
    if quick:
        sizes, seeds, conditions = (3,), 2, CONDITIONS[:2]   # the quick check compiles fast, unoptimised
        kw = dict(lr=3e-3, steps=2, source_steps=0, jit_options={"xla_backend_optimization_level": 0})
    else:
        sizes, conditions, kw = (3, 10, 30, 100), CONDITIONS, dict(lr=3e-3, steps=300, source_steps=500)
    acc = experiment(X, y, pool, test, sizes, seeds, conditions, **kw)
    print_fn(f"test accuracy on digits 5-9 ({len(test)} images), {seeds} seeds: mean (sd)")
    print_fn("n/class | " + " | ".join(f"{c:>13}" for c in conditions))
    for n in sizes:
        print_fn(f"{n:>7} | " + " | ".join(f"{acc[n, c].mean():.3f} ({acc[n, c].std(ddof=1):.3f})" for c in conditions))
    print_fn("paired differences per seed: mean [95% t interval]")
    for n in sizes:
        for a, b in (pair for pair in PAIRS if set(pair) <= set(conditions)):
            m, lo, hi = interval(acc[n, a] - acc[n, b])
            verdict = "inconclusive" if lo <= 0 <= hi else (f"{a} better" if m > 0 else f"{b} better")
            print_fn(f"  n={n:<3} {a:>8} - {b:<7} {m:+.3f} [{lo:+.3f}, {hi:+.3f}]  {verdict}")
    return acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, n = 3, 2 steps, untrained source")
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    run(quick=args.quick, seeds=args.seeds)
