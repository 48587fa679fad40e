"""The learning-rate range test ("LR finder"): train for a few steps while the rate grows geometrically, watch the loss.

One compiled program: a ``lax.while_loop`` over the rates ``lr_i = min_lr * (max_lr / min_lr)^(i / (steps - 1))``
takes one mini-batch step per rate from the *same* evolving parameters (the optimizer is rebuilt at every step as
``optimizer_fn(lr_i)`` with a traced ``lr_i``, its state carried on) and stops as soon as the smoothed loss has
diverged. The step is the engine's (``fnn.train.engine.make_step_body``): the same objective, gradient and update as
``fit``. The batches are ``fit``'s: step ``i`` is batch ``i mod (n // batch_size)`` of epoch ``i // (n // batch_size)``,
each epoch a fresh permutation (``fnn.train.engine.epoch_keys``, ``batch_indices``), so the same key gives the same
sweep.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn import checks
from fnn.train.engine import TrainState, batch_indices, epoch_keys, make_step_body
from fnn.train.evaluation import as_array, check_data

__all__ = ["LRFinderResult", "find_lr", "plot_lr_finder"]


class LRFinderResult(NamedTuple):
    """The range test's record; every array has one entry per step taken (fewer than ``steps`` if it diverged)."""
    rates: np.ndarray  # (k,) the learning rate of each step, geometric from min_lr
    losses: np.ndarray  # (k,) the mini-batch loss of each step (before its update)
    smoothed: np.ndarray  # (k,) the bias-corrected exponential moving average of the losses
    suggested: float  # the suggested rate: rates[argmin(smoothed)] / 10


def find_lr(apply, params, optimizer_fn: Callable, loss, X, y, *, key, min_lr: float = 1e-7, max_lr: float = 10.0,
            steps: int = 100, batch_size: int = 32, smooth: float = 0.98, diverge: float = 4.0,
            state=None) -> LRFinderResult:
    """Smith's learning-rate range test: one step per rate on a geometric sweep, stopped when the loss diverges.

    Step ``i`` (0-based) uses ``lr_i = min_lr * (max_lr / min_lr)^(i / (steps - 1))`` and records the loss
    ``L_i`` of its mini-batch (before the update). The record is smoothed by an exponential moving average with
    bias correction, ``a_i = beta * a_(i-1) + (1 - beta) * L_i`` (``a_(-1) = 0``), ``S_i = a_i / (1 - beta^(i+1))``
    (``beta = smooth``). The sweep stops after the first step with ``S_i > diverge * min_(j<i) S_j`` (``i >= 1``) or
    a non-finite loss; that step is the last one recorded.

    Suggestion: ``rates[argmin(S)] / 10``, the rate at the minimum of the smoothed loss divided by ten. At the
    minimum the rate is already as large as the loss tolerates (one step later it climbs), so a rate for training
    sits an order of magnitude lower, still on the descending part of the curve (Smith's and fastai's reading).
    Preferred over the rate of steepest descent (the most negative ``dS/dlog lr``) because a minimum is robust to
    the noise of one mini-batch per rate, whereas a finite-difference slope of a noisy curve is not.

    Args:
      apply: the model's apply function (``apply(params, x, key=k, train=True)``; ``state=`` when stateful).
      params: the starting parameters (not modified; the sweep spoils the copy it trains, so retrain from these).
      optimizer_fn: ``lr -> optimizer`` (e.g. ``fnn.optimizers.sgd`` or ``lambda lr: optax.adam(lr)``): it is
        called with a traced rate, which fnn rules and optax rules accept.
      loss: ``loss(outputs, targets) -> scalar``.
      X, y: the training data, ``(n, ...)`` each.
      key: a ``jax.random`` key (batches and dropout).
      min_lr, max_lr: the sweep's ends, ``0 < min_lr < max_lr``.
      steps: the number of rates (and at most of steps), >= 2.
      batch_size: examples per step, in ``[1, n]``.
      smooth: ``beta`` of the moving average, in [0, 1) (0: no smoothing).
      diverge: stop factor, > 1.
      state: the model state for a stateful model (BatchNorm), else None.

    Returns:
      ``LRFinderResult(rates, losses, smoothed, suggested)``; arrays of shape ``(k,)``, ``k <= steps`` steps taken.

    Raises:
      ValueError / TypeError: a sweep setting out of range, bad data or batch size, an optimizer_fn that does not
        return an optimizer.

    Example:
      >>> from fnn import losses, optimizers
      >>> X = jax.random.normal(jax.random.key(0), (64, 3))
      >>> y = X @ jnp.array([[1.0], [-2.0], [0.5]]) + 0.3 * jax.random.normal(jax.random.key(2), (64, 1))
      >>> r = find_lr(lambda p, x, **kw: x @ p, jnp.zeros((3, 1)), optimizers.sgd, losses.quadratic_cost, X, y,
      ...             key=jax.random.key(1), min_lr=1e-3, max_lr=100.0, steps=60, batch_size=16)
      >>> len(r.rates) < 60, 0.1 < r.suggested < 1.0   # stopped before 100 (near 6.5); suggestion 0.36
      (True, True)

    Reference: Smith, "Cyclical learning rates for training neural networks", WACV 2017, sec. 3.3 ("How can one
    estimate reasonable minimum and maximum boundary values?"); fastai's ``lr_find`` (the smoothing and stop rule).
    """
    name = "find_lr"
    checks.positive(name, min_lr=min_lr, max_lr=max_lr)
    if not min_lr < max_lr:
        raise ValueError(f"{name}: min_lr must be below max_lr, got min_lr={min_lr!r}, max_lr={max_lr!r}; e.g. "
                         f"min_lr=1e-7, max_lr=10")
    checks.positive_int(name, fix="e.g. steps=100 (at least 2 rates).", steps=steps)
    if steps < 2:
        raise ValueError(f"{name}: steps must be >= 2 (the sweep needs both ends), got steps={steps}; e.g. steps=100")
    checks.unit_interval(name, fix="e.g. smooth=0.98 (0 turns smoothing off).", smooth=smooth)
    checks.positive(name, diverge=diverge)
    if not diverge > 1:
        raise ValueError(f"{name}: diverge must be > 1 (stop when the smoothed loss exceeds diverge x its best), got "
                         f"diverge={diverge!r}; e.g. diverge=4.0")
    if not callable(optimizer_fn) or (hasattr(optimizer_fn, "init") and hasattr(optimizer_fn, "update")):
        raise TypeError(f"{name}: optimizer_fn must be a function lr -> optimizer (e.g. fnn.optimizers.sgd), got "
                        f"{type(optimizer_fn).__name__}; pass the rule itself, not a rule built with a rate")
    opt0 = optimizer_fn(min_lr)
    if not (hasattr(opt0, "init") and hasattr(opt0, "update")):
        raise TypeError(f"{name}: optimizer_fn(lr) must return an optimizer (init, update), got "
                        f"{type(opt0).__name__}; e.g. optimizer_fn=lambda lr: fnn.optimizers.adam(lr)")
    X, y = as_array(X), as_array(y)
    batch_size = check_data(X, y, batch_size, name)
    nb = X.shape[0] // batch_size
    epochs = -(-steps // nb)
    # every step's example indices, fit's batches: (steps, batch_size)
    idx = jnp.concatenate([batch_indices(epoch_keys(key, e)[0], X.shape[0], batch_size) for e in range(epochs)])
    rates = jnp.asarray(min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1)), jnp.float32)
    body = make_step_body(apply, loss, metrics=(), guard=False)
    beta = float(smooth)

    def run(params, state, X, y, idx, rates):
        def cond(c):
            return (c[0] < steps) & ~c[1]

        def one(c):
            i, _, ts, avg, best, losses, smoothed = c
            e_key = epoch_keys(key, i // nb)[1]
            b = idx[i]
            (new, _), stats = body(optimizer_fn(rates[i]), None, ts, jnp.int32(-1), i % nb, X[b], y[b],
                                   jax.random.fold_in(e_key, i % nb))
            value = stats["loss"].astype(jnp.float32)
            avg = beta * avg + (1 - beta) * value
            s = avg / (1 - beta ** (i + 1).astype(jnp.float32))
            stop = ~jnp.isfinite(s) | ((i >= 1) & (s > diverge * best))
            return (i + 1, stop, new, avg, jnp.minimum(best, s), losses.at[i].set(value), smoothed.at[i].set(s))

        nan = jnp.full((steps,), jnp.nan, jnp.float32)
        ts = TrainState(params, optimizer_fn(rates[0]).init(params), state)
        c = (jnp.int32(0), jnp.bool_(False), ts, jnp.float32(0), jnp.float32(jnp.inf), nan, nan)
        c = lax.while_loop(cond, one, c)
        return c[0], c[5], c[6]

    k, losses, smoothed = jax.jit(run)(params, state, X, y, idx, rates)
    k = int(k)
    rates, losses, smoothed = np.asarray(rates[:k]), np.asarray(losses[:k]), np.asarray(smoothed[:k])
    finite = np.where(np.isfinite(smoothed), smoothed, np.inf)
    return LRFinderResult(rates, losses, smoothed, float(rates[int(np.argmin(finite))]) / 10)


def plot_lr_finder(result: LRFinderResult, path: str) -> str:
    """Draw the range test as a PNG: loss against the rate on a log axis, raw (faint) and smoothed, with the
    suggested rate marked; read it as "train at a rate on the steep descending part, below the minimum".

    Args:
      result: what :func:`find_lr` returned.
      path: the PNG file to write (its folder must exist).

    Returns:
      ``path``.

    Example:
      >>> r = LRFinderResult(np.geomspace(1e-3, 1, 4), np.array([1.0, 0.5, 0.4, 9.0]), np.array([1.0, 0.7, 0.5, 3.0]),
      ...                    0.01)
      >>> import tempfile, os; d = tempfile.mkdtemp()
      >>> os.path.getsize(plot_lr_finder(r, os.path.join(d, "lr.png"))) > 0
      True
    """
    if not isinstance(result, LRFinderResult):
        raise TypeError(f"plot_lr_finder: expected the LRFinderResult that find_lr returns, got "
                        f"{type(result).__name__}; pass find_lr(...)'s result")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.rates, result.losses, color="0.75", lw=1, label="loss (one mini-batch)")
    ax.plot(result.rates, result.smoothed, color="C0", lw=2, label="smoothed loss")
    if math.isfinite(result.suggested):
        ax.axvline(result.suggested, color="C3", ls="--", label=f"suggested {result.suggested:.3g}")
    ax.set_xscale("log")
    finite = result.smoothed[np.isfinite(result.smoothed)]
    if finite.size:
        low, high = float(finite.min()), float(finite[0])
        ax.set_ylim(low - 0.1 * abs(high - low), max(high, low) + 0.5 * abs(high - low) + 1e-12)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("learning-rate range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
