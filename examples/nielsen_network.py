"""Nielsen's first network (ch. 1): 784-30-10 sigmoid, quadratic cost, SGD eta = 3.0, mini-batch 10, 30 epochs.

Nielsen's setup, with fnn pieces (the correspondence line by line is in docs/nielsen.md):

  model     sigmoid layers a' = sigma(a w + b), weights and biases N(0, 1) (``initializers.standard_normal``);
            784-30-10 (``--hidden 30``), 784-100-10 (``--hidden 100``) or the chapter's exercise 784-10 (``--hidden 0``)
  cost      ``losses.quadratic_cost``: C = 1/(2m) sum_x ||y(x) - a(x)||^2 over a mini-batch of m, one-hot y
  update    ``optimizers.sgd(eta)``: w <- w - eta grad C = w - eta/m sum_x grad C_x with C_x = ||y(x) - a(x)||^2 / 2,
            the rule of Nielsen's ``update_mini_batch``
  epochs    reshuffle, then n // 10 mini-batches (``fit``, ``epoch_mode="scan"``: one compiled program per epoch)
  data      the first 50,000 training images train, the last 10,000 are held out (Nielsen's validation set), and the
            accuracy on the 10,000 test images is printed after every epoch (as Nielsen's ``SGD(..., test_data)``);
            the held-out accuracy is printed beside it. Pixels are x / 255.

    python examples/nielsen_network.py [--mnist DIR] [--hidden 30] [--epochs 30] [--seeds 1] [--eta 3.0]
        [--cost quadratic|cross-entropy] [--json FILE] [--quick]

``--mnist DIR`` reads MNIST's four IDX files from DIR (``fnn.data.load_mnist``); without it the run is on
Fashion-MNIST (``fnn.data.load_fashion_mnist``). ``--quick``: 1,200 training images (1,000 / 200), 500 test images,
2 epochs, for the test suite.

Measured on Fashion-MNIST (docs/nielsen.md; 30 epochs, seeds 0-4, test accuracy at the best held-out epoch, mean +- sd):
784-30-10 85.31 +- 0.42%, 784-100-10 82.13 +- 3.96%, 784-10 55.25 +- 6.03% (the quadratic cost stalls its
saturated outputs; with ``--cost cross-entropy --eta 0.1`` 83.71 +- 0.23%, 3 seeds). Nielsen on MNIST: 95.42% at its
peak (784-30-10), 96.59% (784-100-10). About 40 s per 30-epoch run of 784-30-10 on a busy 2-core CPU.

Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1 ("Implementing our network to classify digits").
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnn import data, losses, optimizers
from fnn import initializers as ini
from fnn import layers as L
from fnn.train import fit
from fnn.train.callbacks import Callback

ETA, BATCH = 3.0, 10


def network(hidden: int = 30):
    """Nielsen's ``Network([784, hidden, 10])`` (``hidden=0``: ``Network([784, 10])``): sigmoid after every layer,
    weights and biases N(0, 1)."""
    if not (isinstance(hidden, int) and hidden >= 0):
        raise ValueError(f"network: expected hidden >= 0 units (0 for the 784-10 network), got {hidden!r}")
    sizes = [hidden, 10] if hidden else [10]
    return L.mlp(sizes, L.Sigmoid, output_activation=L.Sigmoid, W_init=ini.standard_normal(),
                 b_init=ini.standard_normal())


COSTS = {"quadratic": losses.quadratic_cost, "cross-entropy": losses.binary_cross_entropy}


def train(apply, params, X, Y, *, epochs: int, key, eta: float = ETA, batch_size: int = BATCH, callbacks=(),
          cost: str = "quadratic"):
    """Nielsen's ``SGD``: ``epochs`` passes of mini-batch SGD on the quadratic cost (Y one-hot), one scanned epoch
    each; ``cost="cross-entropy"``: his ch. 3 cost (eq. (63)) on the same sigmoid outputs. Returns ``fit``'s
    result."""
    if cost not in COSTS:
        raise ValueError(f"train: expected cost in {sorted(COSTS)}, got {cost!r}")
    return fit(apply, params, optimizers.sgd(eta), COSTS[cost], X, Y, epochs=epochs, batch_size=batch_size,
               key=key, metrics=(), epoch_mode="scan", callbacks=callbacks, verbose=False, progress=False)


class Accuracy(Callback):
    """After every epoch, the fraction of images whose largest output is the label, on each named set
    (Nielsen's ``evaluate``: ``argmax(feedforward(x)) == y``); the sets go through one compiled forward pass."""

    def __init__(self, apply, sets: dict):
        self.names = list(sets)
        self.ends = np.cumsum([len(y) for _, y in sets.values()])[:-1]
        self.X = jnp.concatenate([jnp.asarray(X) for X, _ in sets.values()])
        self.y = jnp.concatenate([jnp.asarray(y) for _, y in sets.values()])
        self.acc = {name: [] for name in sets}
        self._hits = jax.jit(lambda p, X, y: jnp.argmax(apply(p, X), axis=-1) == y)

    def on_epoch_end(self, epoch, record, train_state):
        hits = np.split(np.asarray(self._hits(train_state.params, self.X, self.y)), self.ends)
        for name, h in zip(self.names, hits):
            self.acc[name].append(float(h.mean()))
        return False


def load(mnist_dir=None, quick: bool = False):
    """``(name, (X, y) train, (X, y) held out, (X, y) test)``: the first 5/6 of the training file train, the last
    1/6 are held out (50,000 / 10,000 for the full files)."""
    if mnist_dir is not None:
        name, (X, y), (Xt, yt) = "MNIST", data.load_mnist(mnist_dir), data.load_mnist(mnist_dir, split="test")
    else:
        name, (X, y), (Xt, yt) = "Fashion-MNIST", data.load_fashion_mnist(), data.load_fashion_mnist(split="test")
    if quick:
        X, y, Xt, yt = X[:1200], y[:1200], Xt[:500], yt[:500]
    n_train = len(X) * 5 // 6
    return name, (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:]), (Xt, yt)


def run(hidden: int = 30, epochs: int = 30, seeds: int = 1, mnist_dir=None, quick: bool = False,
        eta: float = ETA, batch_size: int = BATCH, cost: str = "quadratic", print_fn=print) -> dict:
    """Train ``seeds`` networks (seed s: init key ``key(s)``, shuffling key ``key(1000 + s)``), print the per-epoch
    accuracy table and return ``{"test": [seed][epoch], "held_out": [seed][epoch], "seconds": [...], ...}``."""
    if quick:
        epochs = min(epochs, 2)
    name, (X, y), (Xv, yv), (Xt, yt) = load(mnist_dir, quick)
    Y = data.one_hot(y, 10)
    net = network(hidden)
    arch = f"784-{hidden}-10" if hidden else "784-10"
    out = {"data": name, "network": arch, "cost": cost, "eta": eta, "batch_size": batch_size, "epochs": epochs,
           "n_train": len(X), "n_held_out": len(Xv), "n_test": len(Xt), "device": jax.devices()[0].device_kind,
           "test": [], "held_out": [], "seconds": [], "params": []}
    for s in range(seeds):
        _, params = net.init(jax.random.key(s), (-1, X.shape[1]))
        acc = Accuracy(net.apply, {"test": (Xt, yt), "held_out": (Xv, yv)})
        t0 = time.perf_counter()
        res = train(net.apply, params, X, Y, epochs=epochs, key=jax.random.key(1000 + s), eta=eta,
                    batch_size=batch_size, callbacks=[acc], cost=cost)
        out["seconds"].append(time.perf_counter() - t0)
        out["test"].append(acc.acc["test"])
        out["held_out"].append(acc.acc["held_out"])
        out["params"].append(res.params)
    print_fn(f"{arch} sigmoid, {cost} cost, SGD eta={eta}, mini-batch {batch_size}, {name}: {len(X)} train, "
             f"{len(Xv)} held out, {len(Xt)} test images; {seeds} seed(s)")
    print_fn(table(out))
    return out


def table(out: dict) -> str:
    """Per-epoch test accuracy (%) of every seed, their mean, and the mean held-out accuracy; then the summary."""
    test, held = np.asarray(out["test"]) * 100, np.asarray(out["held_out"]) * 100
    k = test.shape[0]
    head = "| epoch | " + " | ".join(f"test, seed {s}" for s in range(k)) + " | test, mean | held out, mean |"
    lines = [head, "|" + "---|" * (k + 3)]
    for e in range(test.shape[1]):
        cells = " | ".join(f"{v:.2f}" for v in test[:, e])
        lines.append(f"| {e + 1} | {cells} | {test[:, e].mean():.2f} | {held[:, e].mean():.2f} |")
    best = test.max(axis=1)
    chosen = test[np.arange(k), held.argmax(axis=1)]
    lines.append(f"best test epoch: {_ms(best)}; test at the best held-out epoch: {_ms(chosen)}; last epoch: "
                 f"{_ms(test[:, -1])}; {np.mean(out['seconds']):.1f} s per run")
    return "\n".join(lines)


def _ms(v):
    return f"{v.mean():.2f}%" + (f" +- {v.std(ddof=1):.2f} (mean +- sd over {len(v)} seeds)" if len(v) > 1 else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", metavar="DIR", help="directory with MNIST's IDX files (else Fashion-MNIST)")
    p.add_argument("--hidden", type=int, default=30, help="hidden units: 30, 100, or 0 for the 784-10 network")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=1, help="number of seeds (0, 1, ..., SEEDS - 1)")
    p.add_argument("--eta", type=float, default=ETA)
    p.add_argument("--batch-size", type=int, default=BATCH)
    p.add_argument("--cost", choices=sorted(COSTS), default="quadratic",
                   help="quadratic (ch. 1) or cross-entropy (ch. 3, eq. (63)) on the sigmoid outputs")
    p.add_argument("--json", metavar="FILE", help="also write the accuracies to FILE")
    p.add_argument("--quick", action="store_true", help="1,200 training and 500 test images, 2 epochs")
    a = p.parse_args(argv)
    if a.seeds < 1 or a.epochs < 1:
        p.error(f"--seeds and --epochs must be >= 1, got --seeds {a.seeds} --epochs {a.epochs}")
    out = run(a.hidden, a.epochs, a.seeds, a.mnist, a.quick, a.eta, a.batch_size, a.cost)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({k: v for k, v in out.items() if k != "params"}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
