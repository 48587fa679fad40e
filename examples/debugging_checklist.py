"""The debugging checklist on a real task (scikit-learn's 8x8 digits), in the order of docs/debugging.md.

1. Gradient check: ``fnn.debug.gradcheck.check_grads`` on the model's loss (per-leaf table), then the same with a strong
   L2 penalty to show the "penalty dominates" warning.
2. Overfit a small set: ``overfit_small`` on 50 training digits must reach 100% training accuracy.
3. Watch the loss and the update ratios: ``fit`` with three learning rates (too low, right, too high), the
   ``LossMonitor`` verdict for each, and ``UpdateRatioMonitor`` for the good one.
4. Activation statistics of the trained net (table), first-layer weights as images, and the decision boundary of a
   small net on 2-D data (two moons).

Run: ``python examples/debugging_checklist.py [--out docs/img]``; about a minute on a CPU.
"""
from __future__ import annotations

import argparse
import os
import warnings

import jax
import jax.numpy as jnp
import optax
from sklearn.datasets import load_digits, make_moons

from fnn import debug as dg
from fnn import layers as core
from fnn.debug import gradcheck as gc
from fnn.train import fit


def xent(logits, labels):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    key = jax.random.key(args.seed)
    digits = load_digits()
    X = jnp.asarray(digits.data / 16.0, jnp.float32)
    Y = jnp.asarray(digits.target, jnp.int32)
    X_tr, Y_tr = X[:1500], Y[:1500]
    layers = dg.mlp_layers([64, 10], core.Tanh)
    model = core.serial(*layers)
    _, params = model.init(key, (-1, 64))

    print("== 1. gradient check (softmax cross-entropy on 20 digits, float64 finite differences)")
    xb, yb = X_tr[:20], Y_tr[:20]
    rep = gc.check_grads(lambda p: xent(model.apply(p, xb, train=False), yb), params, coords=20)
    print(rep.table())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gc.GradCheckWarning)
        rep = gc.check_grads(lambda p: xent(model.apply(p, xb, train=False), yb), params, coords=20,
                             penalty=lambda p: 0.5 * 1.0 * sum(jnp.sum(l.W ** 2) for l in p if l != ()))
    print("with an L2 penalty of strength 1.0:", rep.warnings[0] if rep.warnings else "no warning")

    print("\n== 2. overfit 50 examples")
    res = dg.overfit_small(model.apply, params, X_tr, Y_tr, n=50)
    print(f"training accuracy {res.accuracy:.3f} after {res.steps} Adam steps (loss {res.loss:.2e}): "
          f"{'passed' if res.passed else 'FAILED'}")

    print("\n== 3. the loss and the update ratios (SGD, 20 epochs, batch 50)")
    for lr in (1e-4, 0.3, 30.0):
        mon = dg.LossMonitor(every=20, print_fn=None)
        ratios = dg.UpdateRatioMonitor(every=1, print_fn=None)
        out = fit(model.apply, params, optax.sgd(lr), xent, X_tr, Y_tr, epochs=20, batch_size=50,
                  key=jax.random.fold_in(key, 1), callbacks=[mon, ratios], verbose=False, progress=False)
        d = mon.records[-1][1] if mon.records else dg.diagnose_loss(out.history["loss"])
        print(f"lr {lr:<7g} losses {out.history['loss'][0]:.3f} -> {out.history['loss'][-1]:.3g}: {d.verdict}: "
              f"{d.message}")
        print(f"mean per-step update ratios in epoch {ratios.records[0][0]}:")
        print(dg.update_ratio_table(ratios.records[0][1]))
        if lr == 0.3:
            trained = out.params

    print("\n== 4. activation statistics of the trained net (1500 digits)")
    print(dg.stats_table(dg.activation_stats(layers, trained, X_tr, train=False)))
    acc = float(jnp.mean(jnp.argmax(model.apply(trained, X[1500:], train=False), -1) == Y[1500:]))
    print(f"test accuracy on the last {X.shape[0] - 1500} digits: {acc:.3f}")
    p = dg.plot_first_layer_weights(trained[0].W, (8, 8), os.path.join(args.out, "first_layer_weights.png"),
                                    title="first-layer weights (64 units)")
    print(f"first-layer weights: {p}")
    xm, ym = make_moons(200, noise=0.2, random_state=args.seed)
    xm, ym = jnp.asarray(xm, jnp.float32), jnp.asarray(ym, jnp.int32)
    small = core.mlp([16, 16, 2], core.Relu)
    _, sp = small.init(key, (-1, 2))
    out = fit(small.apply, sp, optax.adam(1e-2), xent, xm, ym, epochs=200, batch_size=50, key=key, verbose=False,
              progress=False)
    p = dg.plot_decision_boundary(lambda z: small.apply(out.params, z, train=False), xm, ym,
                                  os.path.join(args.out, "decision_boundary.png"),
                                  title=f"two moons, 2-16-16-2 ReLU, train acc {out.history['accuracy'][-1]:.2f}")
    print(f"decision boundary: {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
