"""The babysitting checklist's verdicts and pictures: check the initialisation, overfit a small set, read the loss
curve, look at the activations, the first-layer weights and the decision boundary (items 0 and 2-4 of
docs/debugging.md).

* :func:`check_symmetry`: weight matrices that are all zero or have identical units (symmetry never broken).
* :func:`check_initial_loss`: a softmax classifier's loss at initialisation should be about ln C.
* :func:`overfit_small`: train on ~50 examples; a correct model and training loop reach 100% training accuracy.
* :func:`diagnose_loss`: a learning-rate sanity verdict from the loss history (too low / exploding or NaN /
  noisy / ok).
* Plots: :func:`plot_activation_histograms` (one panel per activation layer), :func:`plot_decision_boundary`
  (2-D inputs), :func:`plot_first_layer_weights` (image inputs).

The numbers behind them live in :mod:`fnn.debug.stats` (activation statistics, gradient norms, update ratios),
the callbacks for ``fnn.train.fit`` in :mod:`fnn.debug.monitors`.

Reference: Karpathy et al., CS231n notes "Neural Networks Part 2: Setting up the Data and the Loss" and "Part 3:
Learning and Evaluation" (babysitting the learning process).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn import losses
from fnn import optimizers as _opt
from fnn.debug.stats import ACTIVATION_KINDS, layer_list, layer_outputs, layer_path

__all__ = ["SymmetryWarning", "SymmetryFinding", "check_symmetry", "InitialLoss", "check_initial_loss",
           "LossDiagnosis", "diagnose_loss", "OverfitResult", "overfit_small", "plot_activation_histograms",
           "plot_decision_boundary", "plot_first_layer_weights"]


# ------------------------------------------------------------------------------------------ before training
class SymmetryWarning(UserWarning):
    """Issued by :func:`check_symmetry` for a weight matrix whose units cannot become different."""


class SymmetryFinding(NamedTuple):
    path: str           # the leaf's tree path, e.g. "[0].W"
    problem: str        # "zero" (all weights 0) | "identical" (two or more units with the same incoming weights)
    units: tuple        # indices of the units that equal another (every unit for "zero")
    message: str        # why it matters and the fix


_FIX = "initialise the weights randomly, e.g. W_init=fnn.initializers.glorot_normal() (the default of Dense/Conv)"


def check_symmetry(params, *, warn: bool = True) -> list[SymmetryFinding]:
    """Flag weight matrices whose units start (and so stay) identical: the symmetry that random init breaks.

    A weight leaf of shape (..., units) (Dense (d_in, d_out), conv HWIO; leaves with fewer than 2 dimensions or a
    single incoming weight per unit, such as biases and BatchNorm's gamma/beta, are skipped) is viewed as the
    matrix V = W.reshape(-1, units), one column per unit:

        zero        V == 0 everywhere: every unit outputs the same value; with tanh (tanh(0) = 0) and zero weights
                    after it, dC/dW = a_prev^T delta = 0 for every hidden layer, so the hidden weights never move
        identical   V[:, j] == V[:, k] for some j != k: units j and k compute the same function, receive the same
                    gradient (when their outgoing weights are equal too, as with a constant init), and stay equal
                    after every step: the layer has fewer distinct units than it seems

    Args:
      params: any params tree (a model's init output).
      warn: also issue one :class:`SymmetryWarning` per finding.

    Returns:
      A list of :class:`SymmetryFinding` (empty when every weight matrix has distinct units).

    Example:
      >>> from fnn import initializers as ini
      >>> from fnn.layers import Dense
      >>> _, params = Dense(4, W_init=ini.zeros).init(jax.random.key(0), (-1, 3))
      >>> [(f.path, f.problem) for f in check_symmetry(params, warn=False)]
      [('.W', 'zero')]

    Reference: Goodfellow, Bengio & Courville, *Deep Learning*, 2016, sec. 8.4 ("break symmetry"); CS231n notes
    "Neural Networks Part 2", "Pitfall: all zero initialization".
    """
    findings = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        W = np.asarray(leaf)
        if W.ndim < 2 or W.size // W.shape[-1] < 2 or not np.issubdtype(W.dtype, np.floating):
            continue
        name, V = jax.tree_util.keystr(path), W.reshape(-1, W.shape[-1])
        if not V.any():
            findings.append(SymmetryFinding(name, "zero", tuple(range(V.shape[1])), (
                f"check_symmetry: {name} {W.shape} is all zeros: every unit of the layer computes the same output "
                f"and gets the same gradient (with tanh and zero weights around it, a zero gradient), so the units "
                f"never become different; {_FIX}")))
            continue
        _, first, counts = np.unique(V.T, axis=0, return_inverse=True, return_counts=True)
        twins = tuple(int(j) for j in np.flatnonzero(counts[first.reshape(-1)] > 1))
        if twins:
            findings.append(SymmetryFinding(name, "identical", twins, (
                f"check_symmetry: {name} {W.shape} has units with identical incoming weights (units {list(twins)[:8]}"
                f"{' ...' if len(twins) > 8 else ''}): they compute the same output, get the same gradient and stay "
                f"equal after every step (symmetry is never broken); {_FIX}")))
    if warn:
        for f in findings:
            warnings.warn(f.message, SymmetryWarning, stacklevel=2)
    return findings


class InitialLoss(NamedTuple):
    verdict: str        # "ok" | "high" | "low"
    message: str        # what a departure means
    loss: float         # the loss of the initial model on the batch
    expected: float     # ln C for softmax cross-entropy (or the value passed)


def check_initial_loss(apply: Callable, params, x, y, *, loss: Callable | None = None,
                       expected: float | None = None, rtol: float = 0.25, **kwargs) -> InitialLoss:
    """Compare a classifier's loss at initialisation with what chance predicts: ln C for softmax cross-entropy.

    Small random weights give small scores z, so softmax(z) ~ 1/C for every class and

        L_0 = -1/n sum_i ln softmax(z_i)_{y_i} ~ -ln(1/C) = ln C        (2.3026 for C = 10)

    whatever the label distribution. Verdict: ``ok`` if |L_0 - ln C| <= rtol ln C; ``high`` if above (scores too
    large: weights too large; or a bug in the loss; or a regularisation term dominating the data loss); ``low`` if
    below (the untrained model beats chance: a bug in the loss, such as a wrong sign or reduction, or labels leaking
    into the inputs).

    Args:
      apply: the model's apply, returning (n, C) scores (logits); called as ``apply(params, x, train=False,
        **kwargs)`` (no dropout).
      params: the initial params. x: a batch of inputs (n, ...).
      y: integer labels (n,) or one-hot targets (n, C).
      loss: ``loss(scores, y) -> scalar`` (default: fnn's softmax cross-entropy; a custom loss, e.g. with a
        penalty, is compared with ``expected``).
      expected: the loss of a chance-level model (default ln C, C = the scores' last dimension).
      rtol: relative tolerance of the comparison.

    Returns:
      :class:`InitialLoss` (verdict, message, loss, expected).

    Example:
      >>> from fnn.layers import mlp
      >>> model = mlp([32, 10], output_activation=None)
      >>> _, params = model.init(jax.random.key(0), (-1, 20))
      >>> x, y = jax.random.normal(jax.random.key(1), (256, 20)), jnp.arange(256) % 10
      >>> report = check_initial_loss(model.apply, params, x, y)
      >>> report.verdict, round(report.expected, 4)
      ('ok', 2.3026)

    Reference: CS231n notes "Neural Networks Part 3", "Sanity checks" ("look for correct loss at chance
    performance"); Karpathy, "A recipe for training neural networks", 2019 ("verify loss @ init").
    """
    kwargs.setdefault("train", False)
    out = apply(params, jnp.asarray(x), **kwargs)
    scores = out[0] if isinstance(out, tuple) else out  # a stateful call returns (outputs, state)
    if scores.ndim != 2 or scores.shape[-1] < 2:
        raise ValueError(f"check_initial_loss: expected scores of shape (n, C) with C >= 2 classes, got shape "
                         f"{scores.shape}; pass the model's logits (no softmax layer at the end)")
    C = scores.shape[-1]
    y = jnp.asarray(y)
    if loss is None:
        loss = (losses.softmax_cross_entropy if y.ndim == 2 else losses.softmax_cross_entropy_with_integer_labels)
    L = float(loss(scores, y))
    ref = math.log(C) if expected is None else float(expected)
    what = f"initial loss {L:.4g}, expected about {ref:.4g}" + (f" = ln {C}" if expected is None else "")
    if not math.isfinite(L) or L > ref * (1 + rtol):
        return InitialLoss("high", f"check_initial_loss: {what}: the initial scores are too confident; the weights "
                           f"are too large (scale the init down: fnn.initializers.glorot_normal / lecun_normal), or "
                           f"the loss has a bug, or a regularisation term dominates (check the loss with the penalty "
                           f"set to 0)", L, ref)
    if L < ref * (1 - rtol):
        return InitialLoss("low", f"check_initial_loss: {what}: the untrained model already beats chance; look for a "
                           f"bug in the loss (sign, log, mean over the wrong axis) or labels leaking into the "
                           f"inputs", L, ref)
    return InitialLoss("ok", f"check_initial_loss: {what}: ok", L, ref)


class LossDiagnosis(NamedTuple):
    verdict: str        # "ok" | "too_low" | "exploding" | "noisy"
    message: str        # what it means and what to try
    decrease: float     # (first - smoothed last) / |first|
    noise: float        # std of (loss - moving average) / |first - smoothed last|


def diagnose_loss(losses: Sequence[float], *, min_decrease: float = 0.05, max_noise: float = 0.25,
                  window: int | None = None) -> LossDiagnosis:
    """A learning-rate sanity report from a loss history (per step or per epoch).

        exploding  any loss is NaN/inf, or the smoothed last loss exceeds the first  -> lower the learning rate
        too_low    decrease = (L_0 - mean(last window)) / |L_0| < min_decrease       -> raise the learning rate
        noisy      noise = std(L - moving_average(L)) / (L_0 - mean(last window)) > max_noise
                                                                         -> lower the rate or raise the batch size
        ok         otherwise

    Args:
      losses: the history, oldest first (at least 4 values).
      min_decrease: relative decrease below which the loss is "barely moving".
      max_noise: fluctuation (relative to the total decrease) above which it is "noisy".
      window: moving-average window (default ``max(3, len // 10)``).

    Returns:
      A :class:`LossDiagnosis`.

    Reference: CS231n notes "Neural Networks Part 3", "Loss function" (the four loss-curve shapes).
    """
    L = np.asarray(losses, np.float64)
    if L.ndim != 1 or L.size < 4:
        raise ValueError(f"diagnose_loss: expected a 1-D history of at least 4 losses, got shape {L.shape}")
    if not np.all(np.isfinite(L)):
        i = int(np.argmin(np.isfinite(L)))
        return LossDiagnosis("exploding", f"loss became {L[i]} at entry {i}: the learning rate is too high (or the "
                             f"loss is not numerically stable); lower it by 3-10x", float("nan"), float("nan"))
    w = window or max(3, L.size // 10)
    smooth = np.convolve(L, np.ones(w) / w, mode="valid")
    first, last = L[0], smooth[-1]
    decrease = (first - last) / max(abs(first), 1e-12)
    resid = L[w - 1:] - smooth
    noise = float(np.std(resid) / max(abs(first - last), 1e-12))
    if last > first or L.max() > 10 * max(abs(first), 1e-12):
        return LossDiagnosis("exploding", f"the loss grew from {first:.4g} to {last:.4g}: the learning rate is too "
                             f"high; lower it by 3-10x", float(decrease), noise)
    if decrease < min_decrease:
        return LossDiagnosis("too_low", f"the loss barely moved ({100 * decrease:.2f}% decrease): the learning rate "
                             f"is too low (or the gradients vanish); raise it by 3-10x", float(decrease), noise)
    if noise > max_noise:
        return LossDiagnosis("noisy", f"the loss fluctuates by {noise:.2f} of its total decrease: lower the "
                             f"learning rate or raise the batch size", float(decrease), noise)
    return LossDiagnosis("ok", f"the loss fell by {100 * decrease:.1f}% smoothly", float(decrease), noise)


class OverfitResult(NamedTuple):
    accuracy: float     # training accuracy on the small set at the end
    loss: float         # final training loss
    steps: int          # full-batch steps taken
    passed: bool        # accuracy reached 100%
    params: object      # the trained params


def overfit_small(apply: Callable, params, x, y, *, n: int = 50, steps: int = 500, optimizer=None,
                  loss: Callable | None = None) -> OverfitResult:
    """The sanity check before a long run: train on the first ``n`` examples until they are memorized.

    Full-batch steps of ``optimizer`` (default ``fnn.optimizers.adam(1e-2)``) on ``loss`` (default softmax cross-entropy
    with integer labels), no regularization, ``train=False`` (no dropout); stops as soon as training accuracy is
    100%. A model that cannot overfit 50 examples has a bug (or far too little capacity).

    Args:
      apply: the model's apply. params: initial params.
      x: inputs (N, ...). y: integer labels (N,).
      n: examples used (the first n). steps: maximum number of steps.
      optimizer: an optax-protocol optimizer. loss: ``loss(outputs, labels) -> scalar``.

    Returns:
      :class:`OverfitResult` (accuracy, loss, steps, passed, params).

    Reference: CS231n notes "Neural Networks Part 3", "Sanity checks" (overfit a tiny subset of data).
    """
    x, y = jnp.asarray(x)[:n], jnp.asarray(y)[:n]
    if y.ndim != 1 or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"overfit_small: expected integer labels of shape (n,), got {y.dtype} {y.shape}")
    opt = _opt.adam(1e-2) if optimizer is None else optimizer
    if loss is None:
        def loss(logits, labels):
            logp = jax.nn.log_softmax(logits)
            return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    def objective(p):
        out = apply(p, x, train=False)
        return loss(out, y), jnp.mean(jnp.argmax(out, axis=-1) == y)

    @jax.jit
    def run(p):
        def cond(c):
            _, _, k, acc, _ = c
            return (k < steps) & (acc < 1.0)

        def body(c):
            p, s, k, _, _ = c
            (l, acc), g = jax.value_and_grad(objective, has_aux=True)(p)
            u, s = opt.update(g, s, p)
            return _opt.apply_updates(p, u), s, k + 1, acc, l

        (l0, acc0) = objective(p)
        p, _, k, _, _ = jax.lax.while_loop(cond, body, (p, opt.init(p), jnp.zeros((), jnp.int32), acc0, l0))
        l, acc = objective(p)
        return p, k, acc, l

    p, k, acc, l = run(params)
    return OverfitResult(float(acc), float(l), int(k), bool(acc == 1.0), p)


# ---------------------------------------------------------------------------------------------------------- plots
def plot_activation_histograms(layers, params, inputs, path, *, title: str = "", bins: int = 50,
                               value_range=None, **kwargs) -> str:
    """Save one histogram per activation layer (a row of panels) to a PNG; return the path.

    Args:
      layers, params, inputs, **kwargs: as :func:`~fnn.debug.stats.layer_outputs` (a model or its layers).
      path: output file. title: figure title. bins: histogram bins. value_range: (lo, hi) of the histograms
        (default: each panel its own range).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = layer_list(layers, "plot_activation_histograms")
    outs = layer_outputs(layers, params, inputs, **kwargs)
    picked = [(layer_path(i, l), np.asarray(a, np.float32).ravel())
              for i, (l, a) in enumerate(zip(layers, outs)) if l.kind in ACTIVATION_KINDS]
    fig, axes = plt.subplots(1, max(len(picked), 1), figsize=(1.6 * max(len(picked), 1) + 1, 2.2), sharey=True,
                             squeeze=False)
    for ax, (path_i, a) in zip(axes[0], picked):
        ax.hist(a, bins=bins, range=value_range, color="tab:blue")
        ax.set_title(f"{path_i}\nstd {a.std():.2g}", fontsize=7)
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_decision_boundary(predict: Callable, x, y, path, *, resolution: int = 200, margin: float = 0.5,
                           title: str = "") -> str:
    """Colour the plane by the predicted class of 2-D inputs and overlay the data; save a PNG, return the path.

    Args:
      predict: ``(m, 2) -> (m, classes)`` scores (argmax taken) or ``(m,)`` / ``(m, 1)`` scores (threshold 0.5).
      x: (n, 2) inputs. y: (n,) labels. path: output file.
      resolution: grid points per axis. margin: padding around the data. title: plot title.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: expected 2-D inputs (n, 2), got shape {x.shape}")
    (x0, y0), (x1, y1) = x.min(0) - margin, x.max(0) + margin
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    scores = np.asarray(predict(jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1), jnp.float32)))
    cls = scores.argmax(-1) if scores.ndim == 2 and scores.shape[1] > 1 else (scores.reshape(-1) > 0.5)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.contourf(gx, gy, cls.reshape(gx.shape).astype(float), alpha=0.3, cmap="coolwarm")
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=20)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_first_layer_weights(W, image_shape: Sequence[int], path, *, max_units: int = 64, title: str = "") -> str:
    """Draw each first-layer unit's incoming weights as an image (a grid of tiles); save a PNG, return the path.

    Args:
      W: first Dense layer's weights (d_in, units) with d_in = prod(image_shape), or a conv kernel (h, w, c, units).
      image_shape: (h, w) or (h, w, c) of one unit's weights.
      max_units: at most this many tiles. title: figure title.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    W = np.asarray(W)
    W = W.reshape(-1, W.shape[-1])
    if W.shape[0] != math.prod(image_shape):
        raise ValueError(f"plot_first_layer_weights: each unit has {W.shape[0]} weights, which cannot be drawn as "
                         f"an image of shape {tuple(image_shape)}; pass the input image shape")
    k = min(W.shape[1], max_units)
    cols = int(math.ceil(math.sqrt(k)))
    rows = int(math.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9), squeeze=False)
    for j, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if j < k:
            tile = W[:, j].reshape(image_shape)
            lo, hi = tile.min(), tile.max()
            ax.imshow((tile - lo) / (hi - lo + 1e-12), cmap="gray" if tile.ndim == 2 else None)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
