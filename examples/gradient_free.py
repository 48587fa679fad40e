"""Gradient-free training on XOR: simulated annealing, Cauchy training and the mixed rule against plain SGD.

The model is a 2-4-1 tanh/sigmoid network (``fnn.mlp([4, 1], Tanh, output_activation=Sigmoid)``), the loss the mean
squared error on the four XOR cases. Every rule gets the same budget of 2000 steps (the mixed
rule and SGD also use one gradient per step) and starts from the same 10 initializations (seeds 0-9):

  SGD                  w <- w - lr grad L(w), lr = 2.0
  simulated annealing  Gaussian steps, Boltzmann schedule T_k = t0 / ln(k + 2), t0 = 0.05, sigma_0 = 0.5
  Cauchy training      Cauchy steps, fast schedule T_k = t0 / (k + 1), t0 = 0.05, scale_0 = 0.5
  mixed                SGD step + 0.3 * Cauchy step (annealed, Metropolis-accepted), lr = 2.0

Prints, per rule, the median final loss and how many runs classify all four cases (output > 0.5 iff XOR = 1), and
saves the loss curves of seed 0.

Run: ``python examples/gradient_free.py [--out docs/img] [--steps 2000] [--seeds 10]``; about a minute on a CPU.
"""
from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnn import classic
from fnn import layers as core
from fnn.classic import annealing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    x, y = classic.logic_gate("XOR")
    model = core.mlp([4, 1], core.Tanh, output_activation=core.Sigmoid)

    def loss(p):
        return jnp.mean((model.apply(p, x)[:, 0] - y) ** 2)

    def sgd(p, key, steps):
        opt = optax.sgd(2.0)

        def body(c, _):
            p, s = c
            l, g = jax.value_and_grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss(optax.apply_updates(p, u))

        (p, _), losses = jax.lax.scan(body, (p, opt.init(p)), None, length=steps)
        return p, losses

    rules = {
        "SGD": jax.jit(sgd, static_argnums=2),
        "annealing": lambda p, k, n: _pl(annealing.simulated_annealing(loss, p, k, steps=n, t0=0.05)),
        "Cauchy": lambda p, k, n: _pl(annealing.cauchy_training(loss, p, k, steps=n, t0=0.05)),
        "mixed": lambda p, k, n: _pl(annealing.mixed_training(loss, p, k, steps=n, t0=0.05, learning_rate=2.0,
                                                              eta=0.3)),
    }
    curves = {}
    print(f"{'rule':<10} {'median final loss':>18} {'solved':>7}")
    for name, rule in rules.items():
        finals, solved = [], 0
        for seed in range(args.seeds):
            _, p0 = model.init(jax.random.key(seed), (-1, 2))
            p, losses = rule(p0, jax.random.key(1000 + seed), args.steps)
            finals.append(float(loss(p)))
            solved += bool(jnp.all((model.apply(p, x)[:, 0] > 0.5) == (y > 0.5)))
            if seed == 0:
                curves[name] = np.asarray(losses)
        print(f"{name:<10} {np.median(finals):>18.2e} {solved:>4}/{args.seeds}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, c in curves.items():
        ax.semilogy(c, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE)")
    ax.set_title("XOR, 2-4-1 net, seed 0", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(args.out, "gradient_free.png")
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")
    return 0


def _pl(res):
    """(params, losses) of an AnnealResult: the best params seen, the per-step losses of the current params."""
    return res.best_params, res.losses


if __name__ == "__main__":
    raise SystemExit(main())
