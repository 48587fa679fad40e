"""Mixed precision: the Fashion-MNIST CNN trained with float32 compute vs bfloat16 compute (float32 master weights).

    python benchmarks/bench_precision.py [--epochs 3] [--batch-sizes 128,1024] [--n 60000]

Model: the benchmark CNN of ``bench_cnn.py`` (5x5 conv 32 + pool, 5x5 conv 64 + pool, dense 1024, dense 10), Adam
1e-3, ``fit`` with ``epoch_mode="auto"``. For each batch size and precision: the median epoch time of the epochs after
the first (which compiles), and the test accuracy after the last epoch. bfloat16 pays off where the hardware has
bfloat16 matrix units (GPUs, TPUs); on a CPU without them it is emulated and slower, so run this on an accelerator.
On a GPU, JAX's float32 matrix products default to TF32, which is what the float32 row measures.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks.bench_cnn import fnn_model, load_data  # noqa: E402
from benchmarks.timing import machine  # noqa: E402
from fnn import losses, optimizers  # noqa: E402
from fnn.train import evaluate, fit  # noqa: E402
from fnn.train.precision import mixed_precision  # noqa: E402


def run(batch: int, compute: str, epochs: int, n: int, test) -> dict:
    model = fnn_model()
    _, params = model.init(jax.random.key(0), (-1, 28, 28, 1))
    apply = model.apply if compute == "float32" else mixed_precision(model.apply, jnp.bfloat16)
    X, y = load_data(n)
    loss = losses.softmax_cross_entropy_with_integer_labels
    res = fit(apply, params, optimizers.adam(1e-3), loss, X, y, epochs=epochs, batch_size=batch,
              key=jax.random.key(1), verbose=False, progress=False, metrics=())
    times = res.history["time"]
    acc = evaluate(apply, res.params, loss, *test)["accuracy"]
    dtypes = {str(a.dtype) for a in jax.tree.leaves(res.params)}
    return {"batch": batch, "compute": compute, "epoch_s": statistics.median(times[1:]) if epochs > 1 else times[0],
            "first_epoch_s": times[0], "test_accuracy": float(acc), "param_dtypes": sorted(dtypes)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench_precision", description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-sizes", default="128,1024")
    ap.add_argument("--n", type=int, default=60000, help="training images")
    args = ap.parse_args(argv)
    try:
        from fnn.data import load_fashion_mnist
        Xt, yt = load_fashion_mnist(split="test", flatten=False)
    except Exception:
        Xt, yt = load_data(2000)
    print(f"{machine()}; {args.n} training images, {args.epochs} epochs\n")
    print("| batch | compute | s / epoch | first epoch (s, compiles) | test accuracy | params |\n"
          "|---|---|---|---|---|---|")
    rows = {}
    for b in (int(v) for v in args.batch_sizes.split(",")):
        for compute in ("float32", "bfloat16"):
            r = run(b, compute, args.epochs, args.n, (Xt, yt))
            rows[(b, compute)] = r
            print(f"| {b} | {compute} | {r['epoch_s']:.3f} | {r['first_epoch_s']:.2f} | {r['test_accuracy']:.4f} | "
                  f"{', '.join(r['param_dtypes'])} |", flush=True)
        print(f"\nbatch {b}: bfloat16 / float32 epoch time = "
              f"{rows[(b, 'bfloat16')]['epoch_s'] / rows[(b, 'float32')]['epoch_s']:.2f}x\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
