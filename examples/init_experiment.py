"""Weight initialization and depth: activation statistics of a 10-layer tanh net, and gradient norms by depth.

1. The classic experiment (CS231n, "Neural Networks Part 2"; Glorot & Bengio 2010): 10 tanh layers of 500 units,
   1000 unit-variance Gaussian inputs, zero biases, weights drawn three ways:
     N(0,1) * 0.01  -> the std shrinks by ~0.01 sqrt(500) = 0.22 per layer: activations collapse to 0
     N(0,1)         -> pre-activations of std ~sqrt(500) = 22: every unit saturated at +-1 (tanh' ~ 0)
     Glorot         -> Var[W] = 2 / (fan_in + fan_out) = 1/500: the std stays of order one
   Prints the per-layer mean/std/saturation tables and saves one histogram row per initialization.
2. Per-layer gradient norms ||dC/dW^l|| at initialization of an 8-hidden-layer net (64 units, softmax cross-entropy
   on random data): sigmoid + Glorot (the gradient vanishes towards the input) vs ReLU + He (it does not).

Run: ``python examples/init_experiment.py [--out docs/img] [--seed 0]``; about 20 s on a CPU.
"""
from __future__ import annotations

import argparse
import os

import jax

from fnn import debug as dg
from fnn import initializers as ini
from fnn import layers as core


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img", help="folder for the PNG files")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    key = jax.random.key(args.seed)

    results, layers, params, x = dg.init_experiment(key)
    for name, stats in results.items():
        print(dg.stats_table(stats, f"\n10-layer tanh, 500 units, weights {name}"))
        fname = {"N(0,1)*0.01": "small", "N(0,1)": "unit", "Glorot": "glorot"}[name]
        path = dg.plot_activation_histograms(layers, params[name], x, os.path.join(args.out, f"init_{fname}.png"),
                                             title=f"tanh activations per layer, weights {name}",
                                             value_range=(-1, 1))
        print(f"histograms: {path}")

    print("\n||dC/dW^l|| at initialization, 8 hidden layers of 64 units (layer 1 = next to the input)")
    sig = dg.depth_gradient_norms(key, core.Sigmoid)
    relu = dg.depth_gradient_norms(key, core.Relu, ini.he_normal())
    print(f"{'layer':>5} {'sigmoid+Glorot':>15} {'ReLU+He':>10}")
    for l, (a, b) in enumerate(zip(sig, relu), 1):
        print(f"{l:>5} {a:>15.2e} {b:>10.2e}")
    print(f"first/last: sigmoid {sig[0] / sig[-1]:.1e}, ReLU+He {relu[0] / relu[-1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
