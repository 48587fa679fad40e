"""Per-step time of every fnn rule against its optax twin on a ~1M-parameter pytree, under jit.

    .venv/bin/python -m benchmarks.bench_optimizers [--repeats 7] [--steps 10]

Each timed call runs ``--steps`` updates (``lax.scan`` inside one jitted function: gradient in, update, apply),
so dispatch overhead is spread out; the per-step time is the call's time divided by ``--steps``. fnn and optax
are measured in the same run, interleaved repeat by repeat, alternating which goes first (so load from other
processes and cache state hit both alike),
after one compiling warm-up call each. The table reports medians and the ratio fnn / optax (target <= 1.05).
The twins are ``fnn.cli.compare.TWINS`` (the settings under which the two agree numerically).
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script from anywhere
from benchmarks.timing import machine  # noqa: E402
from fnn import optimizers as fo  # noqa: E402
from fnn.cli.compare import TWINS  # noqa: E402

SHAPES = {"W1": (1024, 768), "b1": (768,), "W2": (768, 256), "b2": (256,), "W3": (256, 64), "b3": (64,)}


def tree(key):
    keys = jax.random.split(key, len(SHAPES))
    return {k: 0.05 * jax.random.normal(kk, s, jnp.float32) for kk, (k, s) in zip(keys, SHAPES.items())}


def runner(opt, steps):
    """jit(params, grads) -> params after ``steps`` updates with a gradient that changes each step."""
    def run(params, grads):
        def body(carry, i):
            p, s = carry
            g = jax.tree.map(lambda x: x * (1.0 + 0.01 * i), grads)
            u, s = opt.update(g, s, p)
            return (fo.apply_updates(p, u), s), None
        (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), jnp.arange(steps, dtype=jnp.float32))
        return params
    return jax.jit(run)


def timed(fn, *args):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench_optimizers", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rules", default=",".join(TWINS), help="comma-separated subset of the rules")
    args = parser.parse_args(argv)
    params, grads = tree(jax.random.key(0)), tree(jax.random.key(1))
    n = sum(x.size for x in jax.tree.leaves(params))
    print(f"{n:,} parameters in {len(SHAPES)} leaves, float32; {args.steps} steps per call, "
          f"median of {args.repeats} calls after warm-up")
    print(f"machine: {machine()}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n")
    print("| rule | fnn ms/step | optax ms/step | ratio fnn/optax |\n|---|---|---|---|")
    ratios = []
    for name in args.rules.split(","):
        make_fnn, make_optax, lr = TWINS[name]
        a, b = runner(make_fnn(lr), args.steps), runner(make_optax(lr), args.steps)
        timed(a, params, grads), timed(b, params, grads)  # compile + warm-up
        ta, tb = [], []
        for r in range(args.repeats):  # alternate who goes first (ABBA): neither side always runs on a warm cache
            if r % 2:
                tb.append(timed(b, params, grads))
                ta.append(timed(a, params, grads))
            else:
                ta.append(timed(a, params, grads))
                tb.append(timed(b, params, grads))
        ma, mb = statistics.median(ta) / args.steps, statistics.median(tb) / args.steps
        ratios.append(ma / mb)
        print(f"| {name} | {1e3 * ma:.3f} | {1e3 * mb:.3f} | {ma / mb:.2f} |", flush=True)
    print(f"\ngeometric mean of the ratios: {statistics.geometric_mean(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
