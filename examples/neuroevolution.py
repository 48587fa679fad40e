"""Neuroevolution against gradient descent: evolution strategies and SGD/Adam on XOR and on the 8x8 digits.

The unit of cost is the *example pass*: one example through the network once. A loss evaluation on a batch of B
examples costs B forward passes; a gradient step on a batch of B examples costs B forward and B backward passes
(counted separately; a backward pass costs about twice the arithmetic of a forward one). Each ES generation is one
``vmap`` of the loss over the population (``fnn.classic.evolution``); SGD and Adam run through ``fnn.train.fit``.

XOR: a 2-2-1 sigmoid network, mean squared error on the four cases; SGD (lr 2, full batch of 4,
``fnn.train.minimize``) against the (mu, lambda)-ES (mu 5, lambda 35, log-normal self-adaptation, sigma_0 1) and
OpenAI ES (population 50, sigma 0.5, lr 1). Reported: the passes spent until the loss first falls below 0.01 (SGD:
the loss before each step; ES: the best member of each generation), and how many seeds solve XOR (all four
outputs on the right side of 0.5).

Digits: 64-32-10 ReLU MLP (2,410 weights), 70/15/15 stratified split, standardized; Adam (lr 3e-3, batch 32, 30
epochs) against OpenAI ES (population 200 in antithetic pairs, sigma 0.02, Adam lr 0.02 on the ES gradient, a
batch of 256 training examples per generation shared by the population, 1,500 generations) and the
(mu, lambda)-ES (mu 20, lambda 200, same batches, same generations). Reported: test accuracy, passes, wall time
(compile included), and the passes Adam needed to reach the ES's validation accuracy.

Run: ``python examples/neuroevolution.py [--seeds 3] [--quick]``; the full run takes about 10 minutes on 2 CPU
cores; ``--quick`` (one seed, XOR only, SGD and OpenAI ES, 100 steps and 20 generations: the test suite's mode)
a few seconds.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnn import classic, data, losses
from fnn import layers as L
from fnn.classic import evolution
from fnn.train import evaluate, fit, minimize

THRESHOLD = 0.01      # XOR: the MSE that counts as reached


def _first_below(curve, threshold):
    """Index of the first entry below ``threshold``, or None."""
    hit = np.flatnonzero(np.asarray(curve) < threshold)
    return int(hit[0]) if hit.size else None


def xor(seed: int, quick: bool) -> dict:
    """SGD, (mu, lambda)-ES and OpenAI ES on XOR from the same initialization; passes to MSE < 0.01."""
    x, y = classic.logic_gate("XOR")
    model = L.serial(L.Dense(2), L.Sigmoid, L.Dense(1), L.Sigmoid)
    _, p0 = model.init(jax.random.key(seed), (-1, 2))

    def loss(p, x, y):
        return jnp.mean((model.apply(p, x)[:, 0] - y) ** 2)

    def solved(p):
        return bool(jnp.all((model.apply(p, x)[:, 0] > 0.5) == (y > 0.5)))

    steps, gens = (100, 20) if quick else (3000, 500)
    out = {}
    t = time.perf_counter()
    r = minimize(loss, p0, optax.sgd(2.0), steps=steps, args=(x, y))   # full batch: one step = 4 fwd + 4 bwd
    k = _first_below(r.losses, THRESHOLD)         # losses[k] is the loss before step k
    out["SGD"] = dict(time=time.perf_counter() - t, solved=solved(r.params), fwd=None if k is None else 4 * k,
                      bwd=None if k is None else 4 * k)
    runs = {
        "(5,35)-ES": lambda: evolution.evolution_strategy(loss, p0, jax.random.key(100 + seed), mu=5, lam=35,
                                                          generations=gens, sigma=1.0, args=(x, y)),
        "OpenAI ES": lambda: evolution.openai_es(loss, p0, jax.random.key(100 + seed), population=50,
                                                 generations=gens, sigma=0.5, learning_rate=1.0, args=(x, y)),
    }
    for name, run in runs.items():
        if quick and name != "OpenAI ES":       # the test suite's mode: one ES program to compile
            continue
        t = time.perf_counter()
        r = run()
        g = _first_below(r.best_losses, THRESHOLD)
        per_gen = r.evaluations // gens
        evals = None if g is None else (r.evaluations - per_gen * gens) + per_gen * (g + 1)
        out[name] = dict(time=time.perf_counter() - t, solved=solved(r.best_params),
                         fwd=None if evals is None else 4 * evals, bwd=0)
    return out


def digits(seed: int, split) -> dict:
    """Adam (fit) against OpenAI ES and the (mu, lambda)-ES on the digits; accuracy, passes, time."""
    (Xt, yt), (Xv, yv), (Xs, ys) = split
    model = L.mlp([32, 10], L.Relu)
    _, p0 = model.init(jax.random.key(seed), (-1, 64))
    xent = losses.softmax_cross_entropy_with_integer_labels
    n, batch = Xt.shape[0], 32
    epochs, gens, es_batch = 30, 1500, 256

    out = {}
    t = time.perf_counter()
    p, _, hist = fit(model.apply, p0, optax.adam(3e-3), xent, Xt, yt, epochs=epochs, batch_size=batch,
                     key=jax.random.key(seed), validation=(Xv, yv), verbose=False, progress=False)
    wall = time.perf_counter() - t
    per_epoch = (n // batch) * batch
    out["Adam"] = dict(time=wall, test=evaluate(model.apply, p, xent, Xs, ys)["accuracy"],
                       val=hist["val_accuracy"][-1], evals=epochs * (n // batch), fwd=epochs * per_epoch,
                       bwd=epochs * per_epoch, val_curve=hist["val_accuracy"], per_epoch=per_epoch)

    def batch_loss(p, X, y, key):        # one mini-batch per generation, the same for the whole population
        idx = jax.random.choice(key, X.shape[0], (es_batch,), replace=False)
        return xent(model.apply(p, X[idx]), y[idx])

    runs = {
        "OpenAI ES": lambda k: evolution.openai_es(batch_loss, p0, k, population=200, generations=gens, sigma=0.02,
                                                   optimizer=optax.adam(0.02), args=(Xt, yt),
                                                   loss_key=jax.random.key(1000 + seed)),
        "(20,200)-ES": lambda k: evolution.evolution_strategy(batch_loss, p0, k, mu=20, lam=200, generations=gens,
                                                              sigma=0.02, args=(Xt, yt),
                                                              loss_key=jax.random.key(1000 + seed)),
    }
    for name, run in runs.items():
        t = time.perf_counter()
        r = run(jax.random.key(100 + seed))
        jax.block_until_ready(r.params)
        wall = time.perf_counter() - t
        out[name] = dict(time=wall, test=evaluate(model.apply, r.params, xent, Xs, ys)["accuracy"],
                         val=evaluate(model.apply, r.params, xent, Xv, yv)["accuracy"], evals=r.evaluations,
                         fwd=r.evaluations * es_batch, bwd=0)
    return out


def _ms(values, fmt):
    v = [x for x in values if x is not None]
    if not v:
        return "never"
    s = f"{np.mean(v):{fmt}} ± {np.std(v):{fmt}}"
    return s if len(v) == len(values) else f"{s} ({len(v)}/{len(values)})"


def run(seeds: int = 3, quick: bool = False, verbose: bool = True) -> dict:
    """Both experiments over seeds 0..seeds-1; prints the tables; returns ``{"xor": [...], "digits": [...]}``."""
    say = print if verbose else (lambda *a: None)
    res = {"xor": [xor(s, quick) for s in range(seeds)], "digits": []}
    say(f"XOR, 2-2-1 sigmoid net, seeds 0-{seeds - 1}: example passes until MSE < {THRESHOLD} (mean ± sd over the "
        f"seeds that get there)")
    say(f"{'method':<12} {'solved':>7} {'forward passes':>22} {'backward passes':>22} {'wall s':>14}")
    for name in res["xor"][0]:
        rows = [r[name] for r in res["xor"]]
        say(f"{name:<12} {sum(r['solved'] for r in rows):>4}/{seeds:<2} {_ms([r['fwd'] for r in rows], '.0f'):>22} "
            f"{_ms([r['bwd'] for r in rows], '.0f'):>22} {_ms([r['time'] for r in rows], '.2f'):>14}")

    if quick:
        return res
    X, y = data.load_digits()
    (Xt, yt), (Xv, yv), (Xs, ys) = data.train_val_test_split(X, y, (0.7, 0.15, 0.15), key=jax.random.key(0),
                                                               stratify=True)
    stats = data.fit_standardizer(Xt)
    split = tuple((data.standardize(a, stats), b) for a, b in ((Xt, yt), (Xv, yv), (Xs, ys)))
    res["digits"] = [digits(s, split) for s in range(seeds)]
    say(f"\nDigits, 64-32-10 ReLU MLP, {split[0][0].shape[0]} training examples, seeds 0-{seeds - 1} (mean ± sd)")
    say(f"{'method':<12} {'test acc':>16} {'loss evals':>12} {'forward passes':>15} {'backward':>10} "
        f"{'wall s':>14} {'Adam passes to same val acc':>28}")
    for name in res["digits"][0]:
        rows = [r[name] for r in res["digits"]]
        ratios = []
        for r in res["digits"]:
            if name != "Adam":
                a = r["Adam"]
                e = next((i for i, v in enumerate(a["val_curve"]) if v >= r[name]["val"]), None)
                ratios.append(None if e is None else 2 * (e + 1) * a["per_epoch"])
        reach = "" if name == "Adam" else _ms(ratios, ".0f")
        say(f"{name:<12} {_ms([r['test'] for r in rows], '.4f'):>16} {rows[0]['evals']:>12} {rows[0]['fwd']:>15} "
            f"{rows[0]['bwd']:>10} {_ms([r['time'] for r in rows], '.1f'):>14} {reach:>28}")
        for r in res["digits"]:
            if name != "Adam":
                r[name]["adam_passes_to_same_val"] = ratios[res["digits"].index(r)]
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one seed, XOR only, tiny budgets (the test suite's mode)")
    a = ap.parse_args()
    run(seeds=1 if a.quick else a.seeds, quick=a.quick)
