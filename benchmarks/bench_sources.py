"""Data larger than memory: ``fit`` steps per second from a memmapped file vs the same data in memory.

Setup: the ``fnn train`` default Fashion-MNIST MLP (784-256-128-10, ReLU, softmax cross-entropy, Adam 1e-3), batch
128, on the first ``--n`` training images (all 60,000 by default; synthetic data of the same shape if the files are
absent). Measured side by side in one process, each the median of ``--repeats`` epochs after one warm-up (compile)
epoch, the rows run round-robin ``--rounds`` times and the median over rounds reported:

  1. in memory, ``epoch_mode="scan"`` (what ``"auto"`` picks for this net),
  2. in memory, ``epoch_mode="loop"`` (the same compiled step per batch as a source uses),
  3. a ``np.memmap`` of a float32 ``.npy`` in ``--dir`` (``np.load(mmap_mode="r")``), ``prefetch=2``,
  4. a ``batches(epoch)`` function slicing a NumPy permutation of the in-memory arrays, ``prefetch=2``.

Run: ``python benchmarks/bench_sources.py [--n 60000] [--repeats 3] [--quick]``; results in docs/data.md.
"""
from __future__ import annotations

import argparse
import os
import statistics

import jax
import numpy as np
import optax

from fnn import data, losses
from fnn import layers as core
from fnn.train import fit

BATCH = 128


def load(n):
    try:
        X, y = data.load_fashion_mnist(split="train")
        source = "Fashion-MNIST"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        X, y = rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int32)
        source = "synthetic (Fashion-MNIST files not found)"
    return np.ascontiguousarray(X[:n]), np.ascontiguousarray(y[:n]), source


def steps_per_second(X, y, repeats, **kw):
    model = core.mlp([256, 128, 10], core.Relu)
    _, params = model.init(jax.random.key(0), (-1, 784))
    r = fit(model.apply, params, optax.adam(1e-3), losses.softmax_cross_entropy_with_integer_labels, X, y,
            epochs=1 + repeats, batch_size=BATCH, key=1, verbose=False, **kw)
    steps = r.history["steps"][0]
    return steps / statistics.median(r.history["time"][1:]), r.history["loss"][-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="round-robin passes over the four rows")
    parser.add_argument("--dir", default="/tmp/fnn_bench_sources")
    parser.add_argument("--quick", action="store_true", help="5,000 examples, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.rounds = 5_000, 2, 1
    X, y, source = load(args.n)
    os.makedirs(args.dir, exist_ok=True)
    np.save(os.path.join(args.dir, "X.npy"), X)
    np.save(os.path.join(args.dir, "y.npy"), y)
    Xm = np.load(os.path.join(args.dir, "X.npy"), mmap_mode="r")
    ym = np.load(os.path.join(args.dir, "y.npy"), mmap_mode="r")

    def batches(e):
        order = np.random.default_rng(e).permutation(len(X))
        for i in range(len(X) // BATCH):
            b = order[i * BATCH:(i + 1) * BATCH]
            yield X[b], y[b]

    print(f"data: {source}, n={len(X)}, batch {BATCH}, {len(X) // BATCH} steps/epoch, median of {args.repeats} "
          f"epochs x {args.rounds} rounds; {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
    rows = [("in memory, scan", (X, y), {"epoch_mode": "scan"}),
            ("in memory, loop", (X, y), {"epoch_mode": "loop"}),
            ("memmap .npy, prefetch 2", (Xm, ym), {}),
            ("batches(epoch), prefetch 2", (batches, None), {})]
    runs = {name: [] for name, _, _ in rows}
    for r in range(args.rounds):   # round-robin, so that a burst of load on a shared machine hits every row
        for name, (a, b), kw in rows:
            runs[name].append(steps_per_second(a, b, args.repeats, **kw)[0])
    results = {name: statistics.median(v) for name, v in runs.items()}
    for name, v in runs.items():
        print(f"  {name:28s} {results[name]:8.1f} steps/s   (rounds: {', '.join(f'{x:.0f}' for x in v)})")
    base = results["in memory, loop"]
    for name in rows[2:]:
        print(f"  in-memory loop / {name[0]}: {base / results[name[0]]:.2f}x")
    print(f"  in-memory scan / memmap: {results['in memory, scan'] / results['memmap .npy, prefetch 2']:.2f}x")
    return results


if __name__ == "__main__":
    main()
