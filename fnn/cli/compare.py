"""``fnn compare``: an fnn optimizer and its optax twin side by side, and a race of the classic rules.

    fnn compare adam                       # MLP on digits, fnn.adam vs optax.adam: table + loss-curve PNG
    fnn compare rmsprop --steps 500 --lr 3e-3 --out runs/compare
    fnn compare --race                     # 7 rules on a 2-D ill-conditioned bowl: trajectories + losses

The model is ``serial(Dense(hidden), Tanh, Dense(10))`` (``fnn.layers``) with softmax cross-entropy on all 1,797
scikit-learn digits (``X / 16``, float32), trained full-batch from the same initial parameters with both
optimizers. Each optimizer's step is jitted on its own and the two alternate step by step; step times are
medians over the steps (the first, compiling, step excluded). The twins are built with the settings that make
them agree (``TWINS``, see docs/optimizers.md), so the largest parameter difference measures how far the two
implementations drift apart.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnn import losses
from fnn import optimizers as fo
from fnn.cli.args import Parser, non_negative_int, positive_float, positive_int

__all__ = ["compare", "race", "main", "TWINS", "RACE"]

#: rule -> (fnn factory, optax factory, default learning rate); factories take the learning rate.
TWINS = {
    "sgd": (fo.sgd, optax.sgd, 0.5),
    "momentum": (lambda lr: fo.momentum(lr, 0.9), lambda lr: optax.sgd(lr, momentum=0.9), 0.1),
    "nesterov": (lambda lr: fo.nesterov(lr, 0.9), lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True), 0.1),
    "adagrad": (lambda lr: fo.adagrad(lr, eps=1e-7, initial_accumulator_value=0.1, eps_in_sqrt=True),
                optax.adagrad, 0.1),
    "rmsprop": (fo.rmsprop, lambda lr: optax.rmsprop(lr, eps_in_sqrt=False), 1e-3),
    "adadelta": (lambda lr: fo.adadelta(lr, rho=0.95), lambda lr: optax.adadelta(lr, rho=0.95), 1.0),
    "adam": (fo.adam, optax.adam, 3e-3),
    "adamw": (lambda lr: fo.adamw(lr, weight_decay=1e-2),
              lambda lr: optax.adamw(lr, weight_decay=1e-2, mask=losses.weight_mask), 3e-3),
    "adamax": (fo.adamax, optax.adamax, 3e-3),
    "nadam": (fo.nadam, optax.nadam, 3e-3),
    "lbfgs": (fo.lbfgs, lambda lr: optax.lbfgs(lr, linesearch=None), 0.2),
}

#: rule -> optimizer for the race on the bowl f(x, y) = x^2 / 20 + y^2 (curvatures 0.1 and 2).
RACE = {
    "sgd": fo.sgd(0.45),
    "momentum": fo.momentum(0.1, 0.9),
    "nesterov": fo.nesterov(0.1, 0.9),
    "adagrad": fo.adagrad(1.5),
    "rmsprop": fo.rmsprop(0.1),
    "adadelta": fo.adadelta(1.0, rho=0.9, eps=1e-2),
    "adam": fo.adam(0.3),
}


class Comparison(NamedTuple):
    rule: str
    learning_rate: float
    loss_fnn: np.ndarray  # (steps + 1,) loss before each step and after the last
    loss_optax: np.ndarray  # (steps + 1,)
    max_param_diff: float  # max over all parameters of |x_fnn - x_optax| after the last step
    step_time_fnn: float  # median seconds per jitted step
    step_time_optax: float
    png: str | None  # the loss-curve plot, if written


def _digits(hidden: int, seed: int):
    from sklearn.datasets import load_digits

    from fnn.layers.base import serial
    from fnn.layers.dense import Dense, Tanh
    data = load_digits()
    X = jnp.asarray(data.data / 16.0, jnp.float32)
    Y = jax.nn.one_hot(data.target, 10, dtype=jnp.float32)
    init, apply = serial(Dense(hidden), Tanh, Dense(10))
    _, params = init(jax.random.key(seed), (-1, X.shape[1]))

    def loss(p):
        return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(apply(p, X)), axis=-1))
    return loss, params


def _jitted_step(opt, loss):
    def step(p, s):
        value, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p)
        return fo.apply_updates(p, u), s, value
    return jax.jit(step)


def _train_pair(opt_a, opt_b, loss, params, steps):
    """Train two optimizers from the same params, alternating steps (so machine load hits both alike).

    Returns ``(curve_a, curve_b, params_a, params_b, median_step_a, median_step_b)``; the first (compiling)
    step is left out of the medians.
    """
    runs = [[_jitted_step(opt, loss), params, opt.init(params), [], []] for opt in (opt_a, opt_b)]
    for _ in range(steps):
        for run in runs:
            step, p, s, losses, times = run
            t0 = time.perf_counter()
            p, s, value = step(p, s)
            value.block_until_ready()
            times.append(time.perf_counter() - t0)
            losses.append(float(value))
            run[1], run[2] = p, s
    for run in runs:
        run[3].append(float(loss(run[1])))
    (_, pa, _, la, ta), (_, pb, _, lb, tb) = runs
    return np.asarray(la), np.asarray(lb), pa, pb, statistics.median(ta[1:]), statistics.median(tb[1:])


def compare(rule_name: str, steps: int = 300, learning_rate: float | None = None, hidden: int = 32, seed: int = 0,
            out: str | None = None) -> Comparison:
    """Train the digits MLP with ``fnn.<rule>`` and its optax twin from the same parameters and compare them.

    Args:
      rule_name: a key of :data:`TWINS` (every fnn rule with an optax twin).
      steps: full-batch steps for each optimizer.
      learning_rate: defaults to the rule's entry in :data:`TWINS`.
      hidden: hidden width of the MLP.
      seed: initialisation seed (both optimizers start from the same parameters).
      out: directory for ``compare-<rule>.png`` (created if needed); None writes no file.

    Returns:
      A :class:`Comparison` (loss curves of shape ``(steps + 1,)``, max parameter difference, step times).

    Raises:
      ValueError: for a rule without a twin, listing the valid names.
    """
    if rule_name not in TWINS:
        raise ValueError(f"compare: no optax twin for {rule_name!r}; choose one of {', '.join(TWINS)}.")
    if steps < 2:
        raise ValueError(f"compare: steps must be >= 2, got {steps}.")
    make_fnn, make_optax, default_lr = TWINS[rule_name]
    lr = default_lr if learning_rate is None else learning_rate
    loss, params = _digits(hidden, seed)
    curve_a, curve_b, pa, pb, ta, tb = _train_pair(make_fnn(lr), make_optax(lr), loss, params, steps)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)))
    png = None
    if out is not None:
        png = os.path.join(out, f"compare-{rule_name}.png")
        _plot_curves(rule_name, lr, curve_a, curve_b, png)
    return Comparison(rule_name, lr, curve_a, curve_b, diff, ta, tb, png)


def _plot_curves(rule, lr, curve_a, curve_b, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve_a, label=f"fnn.{rule}", lw=2.5, alpha=0.6)
    ax.plot(curve_b, "--", label="optax twin", lw=1.2, color="black")
    ax.set(yscale="log", xlabel="step", ylabel="training loss (cross-entropy)",
           title=f"{rule} (lr={lr:g}) on digits: fnn vs optax")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bowl(x):
    """The race's 2-D ill-conditioned bowl ``f(x, y) = x^2 / 20 + y^2`` (curvature 0.1 along x, 2 along y)."""
    return x[0] ** 2 / 20.0 + x[1] ** 2


def race(steps: int = 100, start=(-7.0, 2.0), out: str | None = None):
    """Run every rule of :data:`RACE` on :func:`bowl` from ``start``; optionally plot trajectories and losses.

    Args:
      steps: steps per rule.
      start: the common starting point ``(x, y)``.
      out: directory for ``race.png``; None writes no file.

    Returns:
      ``(paths, png)``: ``paths[rule]`` is a ``(steps + 1, 2)`` array of iterates; ``png`` the file or None.
    """
    paths = {}
    for name, opt in RACE.items():
        def step(carry, _):
            x, s = carry
            u, s = opt.update(jax.grad(bowl)(x), s, x)
            x = fo.apply_updates(x, u)
            return (x, s), x

        x0 = jnp.asarray(start, jnp.float32)
        _, xs = jax.jit(lambda x0: jax.lax.scan(step, (x0, opt.init(x0)), None, steps))(x0)
        paths[name] = np.concatenate([np.asarray(x0)[None], np.asarray(xs)])
    png = None
    if out is not None:
        png = os.path.join(out, "race.png")
        _plot_race(paths, png)
    return paths, png


def _plot_race(paths, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.6, 1]})
    gx, gy = np.meshgrid(np.linspace(-8, 8, 300), np.linspace(-3, 3, 200))
    ax1.contour(gx, gy, gx ** 2 / 20 + gy ** 2, levels=np.logspace(-2, 1.2, 14), colors="0.75", linewidths=0.8)
    for name, p in paths.items():
        ax1.plot(p[:, 0], p[:, 1], ".-", ms=3, lw=1.2, label=name)
        ax2.plot([float(bowl(x)) for x in p], label=name)
    ax1.plot(0, 0, "k*", ms=12)
    ax1.set(xlim=(-8, 8), ylim=(-3, 3), title="f(x, y) = x^2/20 + y^2: trajectories", xlabel="x", ylabel="y")
    ax1.legend(fontsize=8, loc="upper right")
    ax2.set(yscale="log", xlabel="step", ylabel="f", title="loss")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _table(c: Comparison) -> str:
    rows = [("final loss, fnn", f"{c.loss_fnn[-1]:.6g}"), ("final loss, optax", f"{c.loss_optax[-1]:.6g}"),
            ("largest parameter difference", f"{c.max_param_diff:.3g}"),
            ("step time, fnn", f"{1e3 * c.step_time_fnn:.3f} ms"),
            ("step time, optax", f"{1e3 * c.step_time_optax:.3f} ms"),
            ("ratio fnn / optax", f"{c.step_time_fnn / c.step_time_optax:.3f}")]
    return "\n".join([f"| {c.rule} (lr={c.learning_rate:g}) | value |", "|---|---|"] +
                     [f"| {k} | {v} |" for k, v in rows])


def main(argv: list[str] | None = None) -> int:
    """``fnn compare`` command line; returns the exit status."""
    parser = Parser(prog="fnn compare", description="Compare an fnn optimizer with its optax "
                                     "twin on an MLP on digits, or race the classic rules on a 2-D bowl.")
    parser.add_argument("rule", nargs="?", default="adam", help=f"one of: {', '.join(TWINS)} (default adam)")
    parser.add_argument("--race", action="store_true", help="race " + ", ".join(RACE) + " on a 2-D bowl")
    parser.add_argument("--steps", type=positive_int, default=None, help="steps (default 300; race: 100)")
    parser.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: per rule)")
    parser.add_argument("--hidden", type=positive_int, default=32, help="hidden width of the MLP (default 32)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--out", default="runs/compare", help="directory for the PNG (default runs/compare)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"fnn compare: --out {args.out!r} is a file; expected a folder for the PNG (it is created if missing)",
              file=sys.stderr)
        return 2
    if args.race:
        paths, png = race(args.steps or 100, out=args.out)
        print("| rule | f after the race | distance to the minimum |\n|---|---|---|")
        for name, p in paths.items():
            print(f"| {name} | {float(bowl(p[-1])):.3g} | {float(np.linalg.norm(p[-1])):.3g} |")
        print(f"wrote {png}")
        return 0
    try:
        c = compare(args.rule, args.steps or 300, args.lr, args.hidden, args.seed, out=args.out)
    except ValueError as e:
        print(f"fnn {e}", file=sys.stderr)   # the message starts with "compare: "
        return 2
    print(_table(c))
    print(f"wrote {c.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
