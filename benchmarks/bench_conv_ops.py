"""Convolution op by op on the CPU: forward, input gradient and weight gradient, XLA vs ``fnn.layers.conv_grad``.

Each op is jitted alone (the weight gradient is ``jax.vjp`` with respect to W only, the input gradient with respect
to x only; XLA drops the unused forward pass) and timed as the median of ``--repeats`` (7) runs after a warm-up,
all variants interleaved round by round in one process. Shapes: the Fashion-MNIST CNN's two 5x5 SAME layers
(batch 128), a strided 3x3, a thin-channel 3x3 and a 1-D layer. Also checks that every weight gradient matches
XLA's (relative max error).

    python benchmarks/bench_conv_ops.py [--repeats 7] [--batch 128]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.timing import block, machine  # noqa: E402
from fnn.layers.conv_grad import conv  # noqa: E402

NHWC = ("NHWC", "HWIO", "NHWC")


def cases(batch: int):
    """(name, x shape, W shape, strides, padding, dimension numbers)."""
    return [
        ("28x28 1->32 5x5 SAME", (batch, 28, 28, 1), (5, 5, 1, 32), (1, 1), "SAME", NHWC),
        ("14x14 32->64 5x5 SAME", (batch, 14, 14, 32), (5, 5, 32, 64), (1, 1), "SAME", NHWC),
        ("28x28 16->32 3x3 s2 SAME", (batch, 28, 28, 16), (3, 3, 16, 32), (2, 2), "SAME", NHWC),
        ("28x28 4->16 3x3 VALID", (batch, 28, 28, 4), (3, 3, 4, 16), (1, 1), "VALID", NHWC),
        ("1-D 100 16->32 k5 VALID", (batch, 100, 16), (5, 16, 32), (1,), "VALID", ("NHC", "HIO", "NHC")),
    ]


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds per function over ``repeats`` rounds, each round running every function once (after one
    warm-up call each), so that load from other processes falls on all variants alike."""
    for f in fns.values():
        block(f())
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            block(f())
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch", type=int, default=128)
    a = p.parse_args(argv)
    print(machine())
    head = f"{'layer':26s} {'fwd':>6s} {'dx':>6s} {'dW xla':>7s} {'dW taps':>8s} {'dW im2col':>9s} {'auto':>7s} " \
           f"{'xla/auto':>8s} {'rel err':>8s}"
    print("median ms of", a.repeats, "runs after warm-up\n" + head)
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    for name, xs, ws, st, pad, dn in cases(a.batch):
        x, W = jax.random.normal(k1, xs), jax.random.normal(k2, ws) * 0.1

        def op(impl):
            return lambda x, W: conv(x, W, st, pad, dimension_numbers=dn, impl=impl)

        ct = jax.random.normal(k3, jax.eval_shape(op("xla"), x, W).shape)
        fwd = jax.jit(op("xla"))
        dx = jax.jit(lambda x, W, ct: jax.vjp(lambda x: op("xla")(x, W), x)[1](ct)[0])
        dws = {impl: jax.jit(lambda x, W, ct, f=op(impl): jax.vjp(lambda W: f(x, W), W)[1](ct)[0])
               for impl in ("xla", "taps", "im2col", "auto")}
        fns = {"fwd": lambda: fwd(x, W), "dx": lambda: dx(x, W, ct)}
        fns.update({impl: (lambda f=f: f(x, W, ct)) for impl, f in dws.items()})
        t = interleaved_medians(fns, a.repeats)
        ref = dws["xla"](x, W, ct)
        err = max(float(jnp.abs(dws[i](x, W, ct) - ref).max() / jnp.abs(ref).max()) for i in ("taps", "im2col"))
        ms = {k: 1e3 * v for k, v in t.items()}
        print(f"{name:26s} {ms['fwd']:6.1f} {ms['dx']:6.1f} {ms['xla']:7.1f} {ms['taps']:8.1f} {ms['im2col']:9.1f} "
              f"{ms['auto']:7.1f} {ms['xla'] / ms['auto']:8.2f} {err:8.1e}")


if __name__ == "__main__":
    main()
