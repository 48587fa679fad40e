"""``fnn gradcheck``: check a built-in model's gradients against centered finite differences (per-leaf table).

``--model buggy`` plants a bug (a custom-VJP tanh whose derivative forgets the square) and must fail: exit 1.
"""
from __future__ import annotations

import argparse
import warnings
from typing import Sequence

import jax
import jax.numpy as jnp

from fnn.debug.gradcheck import GradCheckWarning, check_grads

__all__ = ["main"]

def _builtin(name: str, key):
    """A built-in (model, params, inputs, labels) for ``fnn gradcheck``."""
    from fnn import layers as core

    x = jax.random.normal(jax.random.fold_in(key, 1), (16, 8))
    y = jax.random.randint(jax.random.fold_in(key, 2), (16,), 0, 4)
    if name == "tanh":
        model = core.mlp([16, 16, 4], core.Tanh)
    elif name == "relu":
        model = core.mlp([16, 16, 4], core.Relu)
    elif name == "buggy":
        model = core.serial(core.Dense(16), _buggy_tanh_layer(), core.Dense(4))
    else:
        raise ValueError(f"fnn gradcheck: unknown model {name!r}; choose one of tanh, relu, buggy")
    _, params = model.init(jax.random.fold_in(key, 3), x.shape)
    return model, params, x, y


def _buggy_tanh_layer():
    """tanh with a planted bug in its custom gradient: it forgets the square, 1 - tanh(x) instead of 1 - tanh^2."""
    from fnn.layers.base import Layer

    @jax.custom_vjp
    def bad_tanh(x):
        return jnp.tanh(x)

    bad_tanh.defvjp(lambda x: (jnp.tanh(x), x), lambda x, ct: (ct * (1 - jnp.tanh(x)),))
    return Layer(lambda key, s: (s, ()), lambda p, x, **kw: bad_tanh(x))


def _xent(logits, y):
    from fnn.activations import log_softmax
    return -jnp.mean(jnp.take_along_axis(log_softmax(logits), y[:, None], axis=1))


def main(argv: Sequence[str] | None = None) -> int:
    """``fnn gradcheck``: check a built-in model's gradients and print the per-leaf table.

    Returns 0 when every leaf is good or acceptable, 1 otherwise (``--model buggy`` has a planted bug and fails).
    """
    ap = argparse.ArgumentParser(prog="fnn gradcheck", description="Check a built-in model's gradients against "
                                 "centered finite differences in float64 (per-leaf relative errors and verdicts).")
    ap.add_argument("--model", default="tanh", choices=("tanh", "relu", "buggy"),
                    help="tanh: smooth 8-16-16-4 MLP; relu: the same with ReLU (kinks); buggy: a custom_vjp tanh "
                         "with a wrong gradient (must fail)")
    ap.add_argument("--coords", type=int, default=30, help="coordinates checked per leaf (random subset)")
    ap.add_argument("--h", type=float, default=1e-5, help="finite-difference step")
    ap.add_argument("--l2", type=float, default=0.0, help="add an L2 penalty l2/2 * sum(W^2) to the loss")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    key = jax.random.key(args.seed)
    model, params, x, y = _builtin(args.model, key)
    penalty = None
    if args.l2 > 0:
        def penalty(p):
            return 0.5 * args.l2 * sum(jnp.sum(jnp.square(l.W)) for l in p if hasattr(l, "W"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradCheckWarning)
        rep = check_grads(lambda p: _xent(model.apply(p, x, train=False), y), params, coords=args.coords, h=args.h,
                          key=jax.random.fold_in(key, 4), penalty=penalty)
    print(f"fnn gradcheck: model {args.model}, softmax cross-entropy on 16 random examples")
    print(rep.table())
    return 0 if rep.ok else 1
