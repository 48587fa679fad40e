"""Pooling forward and gradient on the CPU: XLA's ``reduce_window`` rules vs ``fnn.layers.pool_grad`` (issue 17).

Each case is one jitted function of a float32 NHWC batch (default 128), timed as the median of ``--repeats``
(default 7) runs after two warm-up runs, XLA's path and ours side by side in one run. "grad" is
``jax.grad(lambda x, g: sum(pool(x) * g))``, which includes the forward pass. The max-pool gradients are also checked
to be equal (ties included: the input is ReLU-like, with many all-zero windows).

    python benchmarks/bench_pool_ops.py [--batch 128] [--repeats 7] [--quick]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.timing import machine, median_time  # noqa: E402

# (name, spatial shape, channels, window, strides, padding)
CASES = [
    ("max 2x2/2 28x28x32", (28, 28), 32, (2, 2), (2, 2), "VALID"),
    ("max 2x2/2 14x14x64", (14, 14), 64, (2, 2), (2, 2), "VALID"),
    ("max 2x2/2 27x27x32 SAME", (27, 27), 32, (2, 2), (2, 2), "SAME"),
    ("max 3x3/2 28x28x32 SAME", (28, 28), 32, (3, 3), (2, 2), "SAME"),
    ("max 3x3/1 14x14x64 SAME", (14, 14), 64, (3, 3), (1, 1), "SAME"),
    ("max 2 /2 1-D 256x32", (256,), 32, (2,), (2,), "VALID"),
    ("max 2x2x2/2 3-D 8x16x16x16", (8, 16, 16), 16, (2, 2, 2), (2, 2, 2), "VALID"),
    ("sum 2x2/2 28x28x32", (28, 28), 32, (2, 2), (2, 2), "VALID"),
    ("sum 3x3/1 14x14x64 SAME", (14, 14), 64, (3, 3), (1, 1), "SAME"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="batch 8, 3 repeats, first 2 cases (a smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.repeats = 8, 3

    import jax
    import jax.numpy as jnp
    from jax import lax

    from fnn.layers import pool_grad

    print(f"# {machine()}; jax {jax.__version__}; float32, batch {args.batch}, median of {args.repeats} "
          f"after 2 warm-ups, ms")
    print(f"{'case':30s} {'fwd XLA':>8s} {'fwd ours':>8s} {'grad XLA':>9s} {'grad ours':>9s} {'ratio':>6s} equal")
    rng = np.random.default_rng(0)
    for name, spatial, c, window, strides, padding in CASES[:2] if args.quick else CASES:
        x = jnp.asarray(np.maximum(rng.standard_normal((args.batch, *spatial, c)), 0), jnp.float32)
        w, s = (1, *window, 1), (1, *strides, 1)
        if name.startswith("max"):
            xla = jax.jit(lambda x, w=w, s=s, p=padding: lax.reduce_window(x, -jnp.inf, lax.max, w, s, p))
            ours = jax.jit(lambda x, w=w, s=s, p=padding: pool_grad.max_pool(x, w, s, p))
        else:
            xla = jax.jit(lambda x, w=w, s=s, p=padding: lax.reduce_window(x, 0.0, lax.add, w, s, p))
            ours = jax.jit(lambda x, w=w, s=s, p=padding: pool_grad.sum_pool(x, w, s, p))
        g = jnp.asarray(rng.standard_normal(xla(x).shape), jnp.float32)
        grads = [jax.jit(jax.grad(lambda x, g, f=f: jnp.sum(f(x) * g))) for f in (xla, ours)]
        times = [median_time(lambda f=f: f(x), args.repeats, warmup=2)[0] * 1e3 for f in (xla, ours)]
        times += [median_time(lambda f=f: f(x, g), args.repeats, warmup=2)[0] * 1e3 for f in grads]
        a, b = grads[0](x, g), grads[1](x, g)
        equal = bool(jnp.array_equal(a, b)) if name.startswith("max") else bool(jnp.allclose(a, b, 1e-6, 1e-6))
        print(f"{name:30s} {times[0]:8.2f} {times[1]:8.2f} {times[2]:9.2f} {times[3]:9.2f} "
              f"{times[2] / times[3]:6.1f} {equal}", flush=True)


if __name__ == "__main__":
    main()
