"""Specific-heat annealing against geometric cooling, and the network-paralysis remedy, measured.

1. A 1-D energy with a wide, shallow well at x = -2 and a narrow, deep (global) one at x = +2,

       E(x) = -exp(-(x - 2)^2 / (2 0.2^2)) - 0.7 exp(-(x + 2)^2 / 2) + 0.02 x^2,

   whose specific heat peaks (C ~ 2.3 near T ~ 0.1) where the Boltzmann weight moves from the wide well (entropy)
   to the deep one (energy). Every run starts in the wide well, t0 = 1, 100 proposals per level, step_size = 2. The
   specific-heat schedule (delta = 0.2, c_ref given, t_final = 0.01) is compared with a geometric schedule with the
   same number of levels (so the same number of energy evaluations), the same t0 and the same last temperature.
   A run succeeds when its final params are in the deep well (x > 1).
2. A 2-8-1 sigmoid net on the XOR of the signs of 64 Gaussian points, W ~ N(0, 1/d_in) times 20 or 50; 300 steps of
   gradient descent (rate 1, mean squared error) from the paralysed params and from ``squash_weights`` of them.

Run: ``python examples/specific_heat.py [--seeds 200] [--quick]``; a few minutes on a CPU (``--quick``: seconds).
"""
from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np

from fnn import layers
from fnn.classic import paralysis, specific_heat
from fnn.layers.dense import DenseParams


def energy(w):
    x = w[0]
    return -jnp.exp(-(x - 2) ** 2 / (2 * 0.2 ** 2)) - 0.7 * jnp.exp(-(x + 2) ** 2 / 2) + 0.02 * x ** 2


def compare_schedules(seeds: int, c_ref: float, sweeps: int = 100):
    """(successes of the specific-heat schedule, of the geometric one, mean number of levels)."""
    def run(seed, c, delta, t_final):
        return specific_heat.specific_heat_annealing(energy, jnp.full(1, -2.0), jax.random.key(seed), t0=1.0,
                                                     t_final=t_final, delta=delta, c_ref=c, sweeps=sweeps,
                                                     step_size=2.0, max_levels=1000)
    wins_sh = wins_geo = 0
    levels = []
    for seed in range(seeds):
        a = run(seed, c_ref, 0.2, 0.01)
        n, t_last = len(a.temperatures), float(a.temperatures[-1])
        ratio = (t_last / 1.0) ** (1 / (n - 1))                 # geometric: n levels from 1.0 down to t_last
        g = run(seed, math.inf, 1 - ratio, t_last * (1 + ratio) / 2)
        assert len(g.temperatures) == n
        wins_sh += float(a.params[0]) > 1
        wins_geo += float(g.params[0]) > 1
        levels.append(n)
    return wins_sh, wins_geo, float(np.mean(levels))


def paralysis_demo(seeds: int, scale: float, steps: int = 300):
    """Per seed: (saturated fraction of the hidden units, loss drop paralysed, loss drop squashed)."""
    model = layers.mlp([8, 1], layers.Sigmoid, output_activation=layers.Sigmoid)
    x = jax.random.normal(jax.random.key(2), (64, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(jnp.float32)

    def loss(p):
        return jnp.mean((model.apply(p, x)[:, 0] - y) ** 2)

    @jax.jit
    def train(p):
        step = lambda p, _: (jax.tree.map(lambda w, g: w - g, p, jax.grad(loss)(p)), None)  # noqa: E731
        return jax.lax.scan(step, p, None, length=steps)[0]

    rows = []
    for seed in range(seeds):
        rng, params, d = np.random.default_rng(seed), [], 2
        for width in (8, 1):
            params += [DenseParams(jnp.asarray(scale * rng.normal(size=(d, width)) / np.sqrt(d), jnp.float32),
                                   jnp.asarray(scale * 0.1 * rng.normal(size=width), jnp.float32)), ()]
            d = width
        params = tuple(params)
        fixed = paralysis.squash_weights(params, x, output_activation="sigmoid")
        rows.append((float(paralysis.saturated_units(params, x)[0].mean()),
                     float(loss(params) - loss(train(params))), float(loss(fixed) - loss(train(fixed)))))
    return np.array(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="5 seeds, one c_ref")
    args = ap.parse_args(argv)
    seeds = 5 if args.quick else args.seeds
    print(f"annealing, {seeds} seeds: c_ref, mean levels, runs ending in the deep well (specific heat, geometric)")
    for c_ref in ((0.1,) if args.quick else (0.03, 0.1, 0.3)):
        wins_sh, wins_geo, levels = compare_schedules(seeds, c_ref)
        print(f"  {c_ref:5}  {levels:6.1f}  {wins_sh:4d}/{seeds}  {wins_geo:4d}/{seeds}")
    n = 2 if args.quick else 8
    print(f"paralysis, seeds 0-{n - 1}: scale, median saturated fraction, median loss drop (paralysed, squashed)")
    for scale in (20.0, 50.0):
        r = paralysis_demo(n, scale)
        print(f"  x{scale:<4.0f} {np.median(r[:, 0]):.2f}  {np.median(r[:, 1]):.3f} [{r[:, 1].min():.3f}, "
              f"{r[:, 1].max():.3f}]  {np.median(r[:, 2]):.3f} [{r[:, 2].min():.3f}, {r[:, 2].max():.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
