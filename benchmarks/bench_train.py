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
  5. An ensemble of 16 MLPs trained with ``vmap`` in one program vs one model (``fnn.ensembles.fit_ensemble``).

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

from fnn import core, data, losses, optimizers
from fnn.ensembles import fit_ensemble, init_ensemble
from fnn.train import fit

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


def median_epoch_fit(apply, params, X, Y, repeats, mode):
    r = fit(apply, params, optimizers.sgd(LR), losses.quadratic_cost, X, Y, epochs=repeats + 1, batch_size=BATCH,
            key=jax.random.key(1), metrics=(), epoch_mode=mode, verbose=False, progress=False)
    return statistics.median(r.history["time"][1:])


def median_epoch_hand_scan(params, X, Y, repeats):
    """The hand-written reference: what a JAX user writes for one scanned epoch."""
    apply = nielsen_model().apply

    def cost(p, x, t):
        return 0.5 * jnp.mean(jnp.sum((apply(p, x) - t) ** 2, axis=1))

    @jax.jit
    def epoch(p, key):
        idx = jax.random.permutation(key, X.shape[0]).reshape(-1, BATCH)

        def step(p, b):
            g = jax.grad(cost)(p, X[b], Y[b])
            return jax.tree.map(lambda w, gw: w - LR * gw, p, g), None

        return lax.scan(step, p, idx)[0]

    times = []
    for e in range(repeats + 1):
        t0 = time.perf_counter()
        params = jax.block_until_ready(epoch(params, jax.random.key(e)))
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def median_epoch_python_loop(params, X, Y, repeats):
    """The usual loop of jitted steps, batches sliced on the host (as the Flax/stax MNIST examples)."""
    apply = nielsen_model().apply
    Xn, Yn = np.asarray(X), np.asarray(Y)

    @jax.jit
    def step(p, x, t):
        g = jax.grad(lambda q: 0.5 * jnp.mean(jnp.sum((apply(q, x) - t) ** 2, axis=1)))(p)
        return jax.tree.map(lambda w, gw: w - LR * gw, p, g)

    rng, times = np.random.default_rng(0), []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        perm = rng.permutation(Xn.shape[0])
        for i in range(0, Xn.shape[0], BATCH):
            b = perm[i:i + BATCH]
            params = step(params, Xn[b], Yn[b])
        jax.block_until_ready(params)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def cnn_modes(repeats, n=2048):
    from jax.example_libraries.stax import MaxPool  # fnn.pooling's MaxPool once it differentiates (see report)
    from fnn.conv import Conv
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
    model = nielsen_model()
    keys = jax.random.split(jax.random.key(3), k)
    times = {}
    for name, kk in (("one", keys[:1]), (f"ensemble{k}", keys)):
        params = init_ensemble(model.init, kk, (-1, 784))
        r = fit_ensemble(model.apply, params, optimizers.sgd(LR), losses.quadratic_cost, X, Y, epochs=repeats + 1,
                         batch_size=BATCH, keys=kk, metrics=(), verbose=False)
        times[name] = statistics.median(r.history["time"][1:])
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per variant (after one warm-up)")
    parser.add_argument("--quick", action="store_true", help="10,000 examples instead of 50,000")
    args = parser.parse_args(argv)
    n = 10_000 if args.quick else N
    X, Y, source = load(n)
    X, Y = jnp.asarray(X), jnp.asarray(Y)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__} "
          f"on {jax.devices()[0].device_kind}; data: {source}, {n} examples")
    _, params = nielsen_model().init(jax.random.key(0), (-1, 784))
    res = {"fit (scan)": median_epoch_fit(nielsen_model().apply, params, X, Y, args.repeats, "scan"),
           "hand-written lax.scan": median_epoch_hand_scan(params, X, Y, args.repeats),
           "python loop of jitted steps": median_epoch_python_loop(params, X, Y, args.repeats),
           "fit (loop)": median_epoch_fit(nielsen_model().apply, params, X, Y, args.repeats, "loop")}
    for name, t in res.items():
        print(f"  Nielsen epoch, {name:28s} {t:8.3f} s")
    print(f"  fit / hand-written scan = {res['fit (scan)'] / res['hand-written lax.scan']:.2f}x (target <= 1.15)")
    print(f"  python loop / fit       = {res['python loop of jitted steps'] / res['fit (scan)']:.1f}x (target >= 5)")
    ens = ensemble_vs_one(X, Y, args.repeats)
    print(f"  ensemble: one model {ens['one']:.3f} s/epoch, 16 models {ens['ensemble16']:.3f} s/epoch, "
          f"ratio {ens['ensemble16'] / ens['one']:.2f}x (target <= 4)")
    cnn = cnn_modes(args.repeats)
    print(f"  small CNN, 2048 examples, batch 32: scan {cnn['scan']:.3f} s/epoch, loop {cnn['loop']:.3f} s/epoch")


if __name__ == "__main__":
    main()
