"""Training-speed benchmark: ``fit`` against a hand-written ``lax.scan`` epoch and a per-step Python loop.

Setup (Nielsen, "Neural Networks and Deep Learning", ch. 1): a 784-30-10 sigmoid MLP, quadratic cost
``C = 1/(2n) sum ||a - y||^2`` on one-hot targets, plain SGD with learning rate 3.0, mini-batches of 10, 50,000
training examples (the first 50,000 of Fashion-MNIST's training set, or synthetic data of the same shape if the files
are absent). Everything is measured in the same process, each timing the median of ``--repeats`` epochs after one
warm-up (compile) epoch.

  1. ``fit`` (``epoch_mode="scan"``, the default "auto" choice for a dense net).
  2. A hand-written epoch: permutation, ``lax.scan`` over index batches, gather, ``jax.grad``, SGD, all in one jit.
  3. The usual per-step loop (as the Flax and stax examples write it): NumPy permutation, NumPy slicing of each
     batch on the host, one call of a jitted step per batch.
  4. ``fit`` in ``"loop"`` mode, and for a small CNN both modes (which one "auto" should pick on this machine).
  5. An ensemble of 16 MLPs trained with ``vmap`` in one program vs one model (``fnn.train.ensembles.fit_ensemble``).

Run: ``.venv/bin/python benchmarks/bench_train.py [--repeats 3] [--quick]``; the results are in docs/training.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn import data, losses, optimizers
from fnn import layers as core
from fnn.train import fit
from fnn.train.callbacks import Callback
from fnn.train.ensembles import fit_ensemble, init_ensemble

LR, BATCH, N = 3.0, 10, 50_000


def load(n):
    try:
        X, y = data.load_fashion_mnist(split="train")
        source = "Fashion-MNIST"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        X, y = rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int32)
        source = "synthetic (Fashion-MNIST files not found)"
    return X[:n], data.one_hot(y[:n], 10), source


def nielsen_model():
    return core.mlp([30, 10], core.Sigmoid, output_activation=core.Sigmoid)


def hand_scan_epoch(X, Y, jit=True):
    """The hand-written reference: what a JAX user writes for one scanned epoch. Returns ``run(params, seed)``
    (``jit=False``: the un-jitted ``epoch(params, key)``, for vmapping)."""
    apply = nielsen_model().apply

    def cost(p, x, t):
        return 0.5 * jnp.mean(jnp.sum((apply(p, x) - t) ** 2, axis=1))

    def epoch(p, key):
        idx = jax.random.permutation(key, X.shape[0]).reshape(-1, BATCH)

        def step(p, b):
            g = jax.grad(cost)(p, X[b], Y[b])
            return jax.tree.map(lambda w, gw: w - LR * gw, p, g), None

        return lax.scan(step, p, idx)[0]

    if not jit:
        return epoch
    epoch = jax.jit(epoch)
    return lambda p, seed: jax.block_until_ready(epoch(p, jax.random.key(seed)))


def python_loop_epoch(X, Y):
    """The usual loop of jitted steps, batches sliced on the host (as the Flax/stax MNIST examples)."""
    apply = nielsen_model().apply
    Xn, Yn = np.asarray(X), np.asarray(Y)

    @jax.jit
    def step(p, x, t):
        g = jax.grad(lambda q: 0.5 * jnp.mean(jnp.sum((apply(q, x) - t) ** 2, axis=1)))(p)
        return jax.tree.map(lambda w, gw: w - LR * gw, p, g)

    def run(params, seed):
        perm = np.random.default_rng(seed).permutation(Xn.shape[0])
        for i in range(0, Xn.shape[0] - BATCH + 1, BATCH):
            b = perm[i:i + BATCH]
            params = step(params, Xn[b], Yn[b])
        return jax.block_until_ready(params)

    return run


class Interleave(Callback):
    """After each ``fit`` epoch, time one epoch of each reference: all variants see the same machine load."""

    def __init__(self, variants, params):
        self.variants, self.params, self.times = variants, params, {name: [] for name in variants}

    def on_epoch_end(self, epoch, record, train_state):
        for name, run in self.variants.items():
            t0 = time.perf_counter()
            run(self.params, epoch)
            self.times[name].append(time.perf_counter() - t0)
        return False


def nielsen_epochs(X, Y, repeats, mode="scan"):
    """Median and minimum seconds per epoch: fit, hand-written scan, Python loop (first epoch = compile, dropped)."""
    model = nielsen_model()
    _, params = model.init(jax.random.key(0), (-1, 784))
    inter = Interleave({"hand-written lax.scan": hand_scan_epoch(X, Y), "python loop of jitted steps":
                        python_loop_epoch(X, Y)}, params)
    r = fit(model.apply, params, optimizers.sgd(LR), losses.quadratic_cost, X, Y, epochs=repeats + 1,
            batch_size=BATCH, key=jax.random.key(1), metrics=(), epoch_mode=mode, verbose=False, progress=False,
            callbacks=[inter])
    times = {f"fit ({mode})": r.history["time"][1:], **{k: v[1:] for k, v in inter.times.items()}}
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def cnn_modes(repeats, n=2048):
    from fnn.layers import Conv, MaxPool
    rng = np.random.default_rng(0)
    X, y = rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n).astype(np.int32)
    cnn = core.serial(Conv(8, (3, 3), padding="SAME"), core.Relu, MaxPool((2, 2), (2, 2)),
                      Conv(16, (3, 3), padding="SAME"), core.Relu, MaxPool((2, 2), (2, 2)), core.Flatten,
                      core.Dense(10))
    _, params = cnn.init(jax.random.key(0), (-1, 28, 28, 1))
    out = {}
    for mode in ("scan", "loop"):
        r = fit(cnn.apply, params, optimizers.sgd(0.05), losses.softmax_cross_entropy_with_integer_labels, X, y,
                epochs=repeats + 1, batch_size=32, key=jax.random.key(1), epoch_mode=mode, verbose=False,
                progress=False)
        out[mode] = statistics.median(r.history["time"][1:])
    return out


def ensemble_vs_one(X, Y, repeats, k=16):
    """Seconds per epoch (median, min) of one model and of k models in one vmapped program, runs alternated."""
    model = nielsen_model()
    keys = jax.random.split(jax.random.key(3), k)
    variants = {"one model": (keys[:1], None), f"{k} members, own batch order": (keys, None),
                f"{k} members, shared batch order": (keys, jax.random.key(4))}
    times, hand = {name: [] for name in variants}, []
    hand_epoch = jax.jit(jax.vmap(hand_scan_epoch(X, Y, jit=False), in_axes=(0, None)))

    def hand_ensemble(params, seed):
        jax.block_until_ready(hand_epoch(params, jax.random.key(seed)))   # compile / warm up
        t0 = time.perf_counter()
        jax.block_until_ready(hand_epoch(params, jax.random.key(seed + 1)))
        return time.perf_counter() - t0

    for _ in range(repeats):
        for name, (kk, data_key) in variants.items():
            params = init_ensemble(model.init, kk, (-1, 784))
            r = fit_ensemble(model.apply, params, optimizers.sgd(LR), losses.quadratic_cost, X, Y, epochs=2,
                             batch_size=BATCH, keys=kk, data_key=data_key, metrics=(), verbose=False)
            times[name].append(r.history["time"][1])
        params = init_ensemble(model.init, keys, (-1, 784))
        hand.append(hand_ensemble(params, seed=len(hand)))
    times[f"{k} members, hand-written vmap of a scan"] = hand
    return {name: (statistics.median(v), min(v)) for name, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per variant (after one warm-up)")
    parser.add_argument("--quick", action="store_true", help="10,000 examples instead of 50,000")
    parser.add_argument("--only", choices=("nielsen", "ensemble", "cnn"), action="append",
                        help="run only these parts (repeatable); default all")
    args = parser.parse_args(argv)
    parts = set(args.only or ("nielsen", "ensemble", "cnn"))
    n = 10_000 if args.quick else N
    X, Y, source = load(n)
    X, Y = jnp.asarray(X), jnp.asarray(Y)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} "
          f"on {jax.devices()[0].device_kind}; data: {source}, {n} examples")
    if "nielsen" in parts:
        nielsen_report(X, Y, args.repeats)
    if "ensemble" in parts:
        ensemble_report(X, Y, args.repeats)
    if "cnn" in parts:
        cnn = cnn_modes(args.repeats)
        print(f"  small CNN, 2048 examples, batch 32: scan {cnn['scan']:.3f} s/epoch, loop {cnn['loop']:.3f} s/epoch")


def nielsen_report(X, Y, repeats):
    res = nielsen_epochs(X, Y, repeats)
    res.update({k: v for k, v in nielsen_epochs(X, Y, max(1, repeats // 2), mode="loop").items()
                if k.startswith("fit")})
    for name, (med, best) in res.items():
        print(f"  Nielsen epoch, {name:28s} median {med:7.3f} s   min {best:7.3f} s")
    for i, what in ((0, "median"), (1, "min")):
        print(f"  [{what}] fit / hand-written scan = {res['fit (scan)'][i] / res['hand-written lax.scan'][i]:.2f}x "
              f"(target <= 1.15);  python loop / fit = "
              f"{res['python loop of jitted steps'][i] / res['fit (scan)'][i]:.1f}x (target >= 5)")


def ensemble_report(X, Y, repeats):
    ens = ensemble_vs_one(X, Y, repeats)
    one = ens.pop("one model")
    print(f"  ensemble: one model median {one[0]:.3f} s/epoch (min {one[1]:.3f})")
    for name, (med, best) in ens.items():
        print(f"  ensemble: {name}: median {med:.3f} s/epoch (min {best:.3f}); ratio to one model "
              f"{med / one[0]:.1f}x median, {best / one[1]:.1f}x min (target <= 4)")


if __name__ == "__main__":
    main()
