"""Babysitting diagnostics: what to look at while a network learns (after the gradient check, fnn.debug.gradcheck).

In the order of the checklist (docs/debugging.md):

* :func:`overfit_small`: train on ~50 examples; a correct model and training loop reach 100% training accuracy.
* :func:`diagnose_loss`: a learning-rate sanity verdict from the loss history (too low / exploding or NaN /
  noisy / ok); :func:`update_ratios`: ||update|| / ||param|| per leaf (healthy near 1e-3).
* :func:`activation_stats`: per-layer mean, std, dead-ReLU and saturated-unit fractions, as a table
  (:func:`stats_table`) and histograms (:func:`plot_activation_histograms`); :func:`init_experiment` reproduces the
  10-layer tanh experiment; :func:`gradient_norms` and :func:`depth_gradient_norms` show vanishing gradients.
* Callbacks for ``fnn.train.fit`` (:class:`ActivationMonitor`, :class:`UpdateRatioMonitor`,
  :class:`LossMonitor`, :class:`GradientNormMonitor`), each run every ``every`` epochs, following the callback
  contract of :mod:`fnn.train.callbacks`.
* Plots: :func:`plot_decision_boundary` (2-D inputs), :func:`plot_first_layer_weights` (image inputs).

Per-layer views need the layers one by one: pass the sequence you gave to ``serial`` (``layers``) together with
the ``serial`` params (one entry per layer). :func:`mlp_layers` builds the list that ``fnn.mlp`` uses.

Reference: Karpathy et al., CS231n notes "Neural Networks Part 2: Setting up the Data and the Loss" and "Part 3:
Learning and Evaluation" (babysitting the learning process); Glorot & Bengio, AISTATS 2010 (activation statistics
by depth); LeCun et al., "Efficient BackProp", 1998.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from fnn import optimizers as _opt

from fnn import layers as core
from fnn import initializers as ini
from fnn.train.callbacks import Callback, copy_tree

__all__ = [
    "mlp_layers", "layer_outputs", "LayerStats", "activation_stats", "stats_table", "plot_activation_histograms",
    "INIT_EXPERIMENT", "init_experiment", "gradient_norms", "depth_gradient_norms", "update_ratios",
    "update_ratio_table", "LossDiagnosis", "diagnose_loss", "OverfitResult", "overfit_small", "ActivationMonitor",
    "UpdateRatioMonitor", "LossMonitor", "GradientNormMonitor", "plot_decision_boundary",
    "plot_first_layer_weights",
]

_NAMES = {id(core.Relu): "Relu", id(core.Tanh): "Tanh", id(core.Sigmoid): "Sigmoid", id(core.Elu): "Elu",
          id(core.LeakyRelu): "LeakyRelu", id(core.Softplus): "Softplus", id(core.Gelu): "Gelu",
          id(core.Selu): "Selu", id(core.Softmax): "Softmax", id(core.LogSoftmax): "LogSoftmax",
          id(core.Identity): "Identity", id(core.Flatten): "Flatten"}
_SATURATION = {"Tanh": lambda a: jnp.abs(a) > 0.99, "Sigmoid": lambda a: (a < 0.01) | (a > 0.99)}
_RELU_LIKE = ("Relu",)


def mlp_layers(sizes: Sequence[int], activation=core.Relu, output_activation=None, **dense_kwargs) -> list:
    """The layer list of ``fnn.mlp(sizes, activation, output_activation)``: ``serial(*mlp_layers(...))`` is that
    model, with the same params."""
    layers = []
    for i, width in enumerate(sizes):
        layers.append(core.Dense(width, **dense_kwargs))
        if i < len(sizes) - 1:
            layers.append(activation)
    if output_activation is not None:
        layers.append(output_activation)
    return layers


def _name(layer, params) -> str:
    if id(layer) in _NAMES:
        return _NAMES[id(layer)]
    if isinstance(params, core.DenseParams):
        return "Dense"
    if type(params) is tuple:  # () or a plain tuple: a parameter-free layer, a combinator, a stax layer
        return "layer"
    return type(params).__name__.removesuffix("Params") or "layer"


def layer_outputs(layers: Sequence, params, inputs, **kwargs) -> list:
    """Run ``layers`` one after the other and keep every output: ``[f_1(x), f_2(f_1(x)), ...]``.

    Args:
      layers: the sequence given to ``serial``. params: ``serial``'s params (one entry per layer).
      inputs: a batch. **kwargs: run-time arguments for every layer (``train=False``; ``key`` is not split).

    Returns:
      A list with one array per layer.
    """
    if len(layers) != len(params):
        raise ValueError(f"layer_outputs: expected one params entry per layer ({len(layers)}), got {len(params)}; "
                         f"pass the layers given to serial and serial's params")
    outs, x = [], inputs
    for layer, p in zip(layers, params):
        x = layer[1](p, x, **kwargs)
        outs.append(x)
    return outs


class LayerStats(NamedTuple):
    index: int            # position in the layer list
    name: str             # "Tanh", "Relu", "Dense", ...
    mean: float           # mean of the layer's outputs over the batch and units
    std: float            # their standard deviation
    dead: float           # fraction of units (last axis) whose output is exactly 0 for every example
    saturated: float      # Tanh: fraction of outputs with |a| > 0.99; Sigmoid: a < 0.01 or a > 0.99; else nan


def activation_stats(layers: Sequence, params, inputs, *, which: str = "activations", **kwargs) -> list:
    """Per-layer statistics of a batch's activations.

        mean = mean(a),  std = std(a),  dead = #{j : a_ij = 0 for all i} / d,  saturated = mean(|a| > 0.99) (tanh)

    Args:
      layers, params, inputs, **kwargs: as :func:`layer_outputs` (use ``train=False``).
      which: ``"activations"`` (the outputs of activation layers such as Tanh, Relu) or ``"all"``.

    Returns:
      A list of :class:`LayerStats`.

    Reference: CS231n notes, "Neural Networks Part 2" (weight initialization; the tanh histograms);
    Glorot & Bengio 2010, sec. 4.
    """
    if which not in ("activations", "all"):
        raise ValueError(f"activation_stats: expected which='activations' or 'all', got {which!r}")
    outs = layer_outputs(layers, params, inputs, **kwargs)
    stats = []
    for i, (layer, p, a) in enumerate(zip(layers, params, outs)):
        name = _name(layer, p)
        if which == "activations" and id(layer) not in _NAMES:
            continue
        a = jnp.asarray(a, jnp.float32)
        units = a.reshape(-1, a.shape[-1])
        dead = float(jnp.mean(jnp.all(units == 0, axis=0)))
        sat = float(jnp.mean(_SATURATION[name](a))) if name in _SATURATION else float("nan")
        stats.append(LayerStats(i, name, float(jnp.mean(a)), float(jnp.std(a)), dead, sat))
    return stats


def stats_table(stats: Sequence[LayerStats], title: str = "") -> str:
    """A fixed-width table of :class:`LayerStats`, one row per layer: ``#`` counts the rows (the depth of the
    activation layer), ``layer`` is the position in the layer list."""
    rows = [title] if title else []
    rows.append(f"{'#':>3} {'layer':>5} {'name':<10} {'mean':>10} {'std':>10} {'dead':>6} {'saturated':>9}")
    for k, s in enumerate(stats, 1):
        sat = "-" if math.isnan(s.saturated) else f"{s.saturated:9.3f}"
        rows.append(f"{k:>3} {s.index:>5} {s.name:<10} {s.mean:>10.2e} {s.std:>10.2e} {s.dead:>6.3f} {sat:>9}")
    return "\n".join(rows)


def plot_activation_histograms(layers: Sequence, params, inputs, path, *, title: str = "", bins: int = 50,
                               value_range=None, **kwargs) -> str:
    """Save one histogram per activation layer (a row of panels) to a PNG; return the path.

    Args:
      layers, params, inputs, **kwargs: as :func:`layer_outputs`.
      path: output file. title: figure title. bins: histogram bins. value_range: (lo, hi) of the histograms
        (default: each panel its own range).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outs = layer_outputs(layers, params, inputs, **kwargs)
    picked = [(i, _name(l, p), np.asarray(a, np.float32).ravel())
              for i, (l, p, a) in enumerate(zip(layers, params, outs)) if id(l) in _NAMES]
    fig, axes = plt.subplots(1, max(len(picked), 1), figsize=(1.6 * max(len(picked), 1) + 1, 2.2), sharey=True,
                             squeeze=False)
    for ax, (i, name, a) in zip(axes[0], picked):
        ax.hist(a, bins=bins, range=value_range, color="tab:blue")
        ax.set_title(f"{i}: {name}\nstd {a.std():.2g}", fontsize=7)
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


INIT_EXPERIMENT = {
    "N(0,1)*0.01": ini.normal(0.01),
    "N(0,1)": ini.standard_normal(),
    "Glorot": ini.glorot_normal(),
}


def init_experiment(key, *, depth: int = 10, width: int = 500, n: int = 1000, inits: dict | None = None,
                    activation=core.Tanh):
    """The classic initialization experiment: a ``depth``-layer ``activation`` net, ``width`` units per layer,
    unit-variance Gaussian inputs, zero biases, one forward pass per weight initialization.

    With tanh and width 500: N(0, 1) * 0.01 weights shrink the std by ~0.01 sqrt(500) = 0.22 per layer (activations
    collapse to zero); N(0, 1) weights make pre-activations of std ~sqrt(500) = 22 (every unit saturated at +-1);
    Glorot's variance 2 / (fan_in + fan_out) = 1/500 keeps the std of order one.

    Args:
      key: PRNG key (inputs and weights; the same inputs for every initialization).
      depth, width, n: layers, units per layer, examples.
      inits: name -> initializer (default :data:`INIT_EXPERIMENT`).
      activation: the activation layer.

    Returns:
      ``(results, layers, params_by_init, x)``: ``results[name]`` is the list of :class:`LayerStats`;
      the rest lets you plot (:func:`plot_activation_histograms`).

    Reference: CS231n notes "Neural Networks Part 2", and lecture 6 (2016) slides on weight initialization;
    Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks", 2010, fig. 3.
    """
    inits = INIT_EXPERIMENT if inits is None else inits
    k_x, k_w = jax.random.split(key)
    x = jax.random.normal(k_x, (n, width))
    results, all_params, layers = {}, {}, None
    for name, w_init in inits.items():
        layers = []
        for _ in range(depth):
            layers += [core.Dense(width, W_init=w_init, b_init=ini.zeros), activation]
        _, params = core.serial(*layers).init(k_w, (-1, width))
        results[name] = activation_stats(layers, params, x)
        all_params[name] = params
    return results, layers, all_params, x


def _leaf_paths(tree) -> list:
    out = []
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        s = jax.tree_util.keystr(path)
        out.append((s[1:] if s.startswith(".") else s, x))
    return out


def gradient_norms(grads, *, weights_only: bool = False) -> dict:
    """The L2 norm of every leaf of a gradient tree: ``{path: ||g||_2}``, in tree order.

    Args:
      grads: a gradient pytree (e.g. ``jax.grad(loss)(params)``).
      weights_only: keep only leaves named ``W`` (one number per layer).
    """
    return {p: float(jnp.linalg.norm(jnp.ravel(g))) for p, g in _leaf_paths(grads)
            if not weights_only or p.endswith(".W")}


def depth_gradient_norms(key, activation=core.Sigmoid, W_init=None, *, depth: int = 8, width: int = 64,
                         n: int = 128, classes: int = 10) -> list:
    """||dC/dW^l|| for every layer l of a deep MLP on random data with softmax cross-entropy, at initialization.

    With sigmoid units (sigma' <= 1/4) the norms shrink layer by layer towards the input (the vanishing gradient
    problem); with ReLU and He initialization they stay of the same order.

    Args:
      key: PRNG key. activation: the hidden activation layer. W_init: weight initializer (default Glorot).
      depth: hidden layers. width: units per hidden layer. n: examples. classes: outputs.

    Returns:
      A list of ``depth + 1`` norms, input layer first.

    Reference: Nielsen, *Neural Networks and Deep Learning*, ch. 5 ("Why are deep neural networks hard to train?");
    He et al., ICCV 2015, sec. 2.2.
    """
    k_x, k_y, k_w = jax.random.split(key, 3)
    kw = {} if W_init is None else {"W_init": W_init}
    model = core.mlp([width] * depth + [classes], activation, **kw)
    _, params = model.init(k_w, (-1, width))
    x = jax.random.normal(k_x, (n, width))
    y = jax.random.randint(k_y, (n,), 0, classes)

    def loss(p):
        logp = jax.nn.log_softmax(model.apply(p, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    return list(gradient_norms(jax.jit(jax.grad(loss))(params), weights_only=True).values())


def update_ratios(params, updates) -> dict:
    """The ratio of update size to parameter size per leaf: ``{path: ||u||_2 / ||w||_2}`` (healthy near 1e-3).

    Args:
      params: the parameters before the step. updates: the step (``new_params - params``, or an optimizer's
        ``updates``), same tree.

    Reference: CS231n notes "Neural Networks Part 3", "Ratio of weights:updates".
    """
    pu = jax.tree_util.tree_structure(params), jax.tree_util.tree_structure(updates)
    if pu[0] != pu[1]:
        raise ValueError(f"update_ratios: params and updates have different structures: {pu[0]} vs {pu[1]}")
    out = {}
    for (p, w), u in zip(_leaf_paths(params), jax.tree_util.tree_leaves(updates)):
        wn = float(jnp.linalg.norm(jnp.ravel(w)))
        out[p] = float(jnp.linalg.norm(jnp.ravel(u))) / wn if wn > 0 else float("inf")
    return out


def update_ratio_table(ratios: dict, low: float = 1e-4, high: float = 1e-2) -> str:
    """A table of update ratios with a flag per leaf: ``< low`` "rate too low?", ``> high`` "rate too high?"."""
    rows = [f"{'leaf':<24} {'||update||/||param||':>21}  note"]
    for p, r in ratios.items():
        note = "rate too low?" if r < low else "rate too high?" if r > high else "ok"
        rows.append(f"{p:<24} {r:>21.2e}  {note}")
    return "\n".join(rows)


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


# ------------------------------------------------------------------------------------------------------ callbacks
class _Every(Callback):
    def __init__(self, every: int, print_fn: Callable | None):
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"{type(self).__name__}: expected every >= 1 (epochs), got {every!r}")
        self.every, self.print_fn, self.records = every, print_fn, []

    def _due(self, epoch: int) -> bool:
        return epoch % self.every == 0

    def _print(self, text: str):
        if self.print_fn is not None:
            self.print_fn(text)


class ActivationMonitor(_Every):
    """Every ``every`` epochs: :func:`activation_stats` of ``x`` through ``layers``; ``records`` holds
    ``(epoch, stats)``."""

    def __init__(self, layers: Sequence, x, every: int = 1, print_fn: Callable | None = print):
        super().__init__(every, print_fn)
        self.layers, self.x = list(layers), x

    def on_epoch_end(self, epoch, record, train_state) -> bool:
        if self._due(epoch):
            stats = activation_stats(self.layers, train_state.params, self.x, train=False)
            self.records.append((epoch, stats))
            self._print(stats_table(stats, f"epoch {epoch}: activation statistics"))
        return False


class UpdateRatioMonitor(_Every):
    """Every ``every`` epochs: :func:`update_ratios` of the change since the last check, divided by the steps taken
    (``record["steps"]`` per epoch), i.e. the mean per-step update ratio; ``records`` holds ``(epoch, ratios)``."""

    def __init__(self, every: int = 1, print_fn: Callable | None = print):
        super().__init__(every, print_fn)
        self._prev, self._steps = None, 0

    def on_train_begin(self, history) -> None:
        self._prev, self._steps = None, 0

    def on_epoch_end(self, epoch, record, train_state) -> bool:
        self._steps += int(record.get("steps", 1))
        if self._prev is None:  # first epoch: nothing to compare with yet
            self._prev, self._steps = copy_tree(train_state.params), 0
            return False
        if self._due(epoch):
            delta = jax.tree_util.tree_map(lambda a, b: (a - b) / max(self._steps, 1), train_state.params,
                                           self._prev)
            ratios = update_ratios(self._prev, delta)
            self.records.append((epoch, ratios))
            self._print(f"epoch {epoch}: mean per-step update ratios\n{update_ratio_table(ratios)}")
            self._prev, self._steps = copy_tree(train_state.params), 0
        return False


class LossMonitor(_Every):
    """Every ``every`` epochs: :func:`diagnose_loss` of the per-epoch training losses so far (4 epochs at least);
    ``records`` holds ``(epoch, diagnosis)``."""

    def __init__(self, every: int = 5, print_fn: Callable | None = print, **diagnose_kwargs):
        super().__init__(every, print_fn)
        self.losses, self.kwargs = [], diagnose_kwargs

    def on_train_begin(self, history) -> None:
        self.losses = [r["loss"] for r in getattr(history, "records", []) if "loss" in r]

    def on_epoch_end(self, epoch, record, train_state) -> bool:
        self.losses.append(float(record["loss"]))
        if self._due(epoch) and len(self.losses) >= 4:
            d = diagnose_loss(self.losses, **self.kwargs)
            self.records.append((epoch, d))
            self._print(f"epoch {epoch}: loss check: {d.verdict}: {d.message}")
        return False


class GradientNormMonitor(_Every):
    """Every ``every`` epochs: per-layer :func:`gradient_norms` of ``loss_fn(params)`` (e.g. on a fixed batch);
    ``records`` holds ``(epoch, norms)``."""

    def __init__(self, loss_fn: Callable, every: int = 1, print_fn: Callable | None = print):
        super().__init__(every, print_fn)
        self.grad = jax.jit(jax.grad(loss_fn))

    def on_epoch_end(self, epoch, record, train_state) -> bool:
        if self._due(epoch):
            norms = gradient_norms(self.grad(train_state.params), weights_only=True)
            self.records.append((epoch, norms))
            self._print(f"epoch {epoch}: gradient norms " + ", ".join(f"{k} {v:.2e}" for k, v in norms.items()))
        return False


# ---------------------------------------------------------------------------------------------------------- plots
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
