"""Universal approximation: one hidden layer of ReLU units fits a smooth 1-D function, better with more units.

f(x) = sin(2x) + 0.3 x^2 on [-3, 3] is fitted by g(x) = relu(x W1 + b1) W2 + b2 with h = 1, 2, 4, ..., 64 hidden
units (``fnn.classic.universal_approximation``: kinks placed uniformly at random, output layer by least squares,
then 2000 full-batch Adam steps on the mean squared error). Prints the sup-norm and RMS errors per h and saves the
fits as a PNG.

Run: ``python examples/universal_approximation.py [--out docs/img] [--seed 0]``; about a minute on a CPU.
"""
from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from fnn import classic


def target(x):
    return jnp.sin(2 * x) + 0.3 * x ** 2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    hidden = (1, 2, 4, 8, 16, 32, 64)
    res = classic.universal_approximation(target, hidden, jax.random.key(args.seed), steps=args.steps)
    print(f"{'hidden':>6} {'max |g - f|':>12} {'rms':>10}")
    for h, m, r in zip(res.hidden, res.max_error, res.rms_error):
        print(f"{h:>6} {m:>12.4f} {r:>10.4f}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = jnp.linspace(-3, 3, 400)[:, None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(x[:, 0], target(x)[:, 0], "k", lw=2, label="f")
    for h, p in zip(res.hidden, res.params):
        if h in (2, 8, 64):
            ax1.plot(x[:, 0], res.model(h).apply(p, x)[:, 0], label=f"h = {h}")
    ax1.legend(fontsize=8)
    ax1.set_title("fits", fontsize=9)
    ax2.loglog(res.hidden, res.max_error, "o-", label="max error")
    ax2.loglog(res.hidden, res.rms_error, "s-", label="rms error")
    ax2.set_xlabel("hidden units")
    ax2.legend(fontsize=8)
    ax2.set_title("error vs hidden units", fontsize=9)
    fig.tight_layout()
    path = os.path.join(args.out, "universal_approximation.png")
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")
    return 0 if np.all(np.diff(res.rms_error[2:]) < 0) else 1


if __name__ == "__main__":
    raise SystemExit(main())
