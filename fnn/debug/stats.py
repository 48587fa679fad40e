"""Statistics of a network's insides: per-layer activation statistics, the initialization experiment, gradient
norms by depth, update ratios (items 3 and 4 of the checklist in docs/debugging.md).

Per-layer views take the model as built by ``serial`` (or ``mlp``, ``residual``): its ``children`` are the
layers, or pass the sequence you gave to ``serial``, with ``serial``'s params (one entry per layer). Layers are
identified by path: the name given with ``layer.named("fc1")``, else ``"<position>/<kind>"`` (``"0/Dense"``,
``"1/Tanh"``). A stateful model (BatchNorm) takes its state tree (``fnn.layers.init_with_state``, or fit's
``TrainState.state``) as ``state=``, so ``train=False`` normalizes with the running averages.

Reference: Karpathy et al., CS231n notes "Neural Networks Part 2" and "Part 3"; Glorot & Bengio, AISTATS 2010
(activation statistics by depth); LeCun et al., "Efficient BackProp", 1998.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from fnn import initializers as ini
from fnn import layers as core

__all__ = [
    "ACTIVATION_KINDS", "mlp_layers", "layer_list", "layer_path", "layer_outputs", "LayerStats", "activation_stats",
    "stats_table", "INIT_EXPERIMENT", "init_experiment", "gradient_norms", "depth_gradient_norms", "update_ratios",
    "update_ratio_table",
]

ACTIVATION_KINDS = ("Relu", "Tanh", "Sigmoid", "Elu", "LeakyRelu", "Softplus", "Gelu", "Selu", "Softmax",
                    "LogSoftmax", "Identity", "Flatten")  # the layers ``which="activations"`` reports
_SATURATION = {"Tanh": lambda a: jnp.abs(a) > 0.99, "Sigmoid": lambda a: (a < 0.01) | (a > 0.99)}


def mlp_layers(sizes: Sequence[int], activation=core.Relu, output_activation=None, **dense_kwargs) -> list:
    """The layer list of ``fnn.mlp(sizes, activation, output_activation)``: ``serial(*mlp_layers(...))`` is that
    model, with the same params (``fnn.mlp(...).children`` holds the same layers)."""
    layers = []
    for i, width in enumerate(sizes):
        layers.append(core.Dense(width, **dense_kwargs))
        if i < len(sizes) - 1:
            layers.append(activation)
    if output_activation is not None:
        layers.append(output_activation)
    return layers


def layer_list(layers, where: str = "layer_list") -> tuple:
    """The layers of a sequential model: a ``serial`` model's ``children``, or a sequence of layers as given."""
    if isinstance(layers, core.Layer):
        if not layers.children or layers.kind == "parallel":
            raise TypeError(f"{where}: expected a serial model or the sequence of layers given to serial, got a "
                            f"{layers.label} layer; wrap it: serial({layers.label}, ...)")
        return layers.children
    return tuple(core.as_layer(l, f"{where} (layer {i})") for i, l in enumerate(layers))


def layer_path(index: int, layer) -> str:
    """How diagnostics name a layer: its given name, else ``"<index>/<kind>"`` (e.g. ``"0/Dense"``)."""
    return layer.name if layer.name is not None else f"{index}/{layer.kind or 'layer'}"


def layer_outputs(layers, params, inputs, **kwargs) -> list:
    """Run the layers one after the other and keep every output: ``[f_1(x), f_2(f_1(x)), ...]``.

    Each layer receives what ``serial`` would pass it: the keywords it accepts, the key under the names it reads
    (one key per layer) and, with ``state=``, its own entry of the state tree.

    Args:
      layers: a ``serial`` model or the sequence given to ``serial``. params: ``serial``'s params (one per layer).
      inputs: a batch. **kwargs: run-time keywords (``train=False``; ``state=`` for a stateful model, ``key=``).

    Returns:
      A list with one array per layer.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from fnn.layers import Dense, Relu, serial
      >>> from fnn.debug import layer_outputs
      >>> model = serial(Dense(3), Relu)
      >>> _, params = model.init(jax.random.key(0), (-1, 2))
      >>> [y.shape for y in layer_outputs(model, params, jnp.ones((4, 2)))]
      [(4, 3), (4, 3)]
    """
    layers = layer_list(layers, "layer_outputs")
    n = len(layers)
    if len(params) != n:
        raise ValueError(f"layer_outputs: expected one params entry per layer ({n}), got {len(params)}; "
                         f"pass the model (or the layers given to serial) and the model's params")
    state = kwargs.pop("state", None)
    if state is None and kwargs.get("train", True) is False and any(l.stateful for l in layers):
        which = [layer_path(i, l) for i, l in enumerate(layers) if l.stateful]
        raise ValueError(f"layer_outputs: the layers {which} carry state and train=False normalizes with it, but "
                         f"no state= was given; pass state= (fnn.layers.init_with_state, or fit's result .state)")
    if state is not None and not (isinstance(state, tuple) and len(state) == n):
        raise ValueError(f"layer_outputs: expected state with one entry per layer ({n}), got {state!r}; pass the "
                         f"state tree of serial(*layers)")
    model = core.serial(*layers)
    unknown = sorted(set(kwargs) - model.accepts)
    if unknown:
        raise TypeError(f"layer_outputs: got the keyword argument(s) {unknown}, which no layer accepts; accepted: "
                        f"{sorted(model.accepts)}")
    key = core.run_key(kwargs)
    keys = [None] * n if key is None else list(jax.random.split(key, n))
    kw = {k: v for k, v in kwargs.items() if k not in ("key", "rng")}
    outs, x = [], inputs
    for i, (layer, p) in enumerate(zip(layers, params)):
        one = core.serial(layer)  # applies the layer exactly as serial applies its children
        mine = {k: v for k, v in kw.items() if k in one.accepts}
        if keys[i] is not None:
            mine["key"] = keys[i]
        if state is None or state[i] is None:
            x = one.apply((p,), x, **mine)
        else:
            x, _ = one.apply((p,), x, state=(state[i],), **mine)
        outs.append(x)
    return outs


class LayerStats(NamedTuple):
    index: int            # position in the layer list
    name: str             # the layer's name if given, else its kind: "Tanh", "Relu", "Dense", ...
    mean: float           # mean of the layer's outputs over the batch and units
    std: float            # their standard deviation
    dead: float           # fraction of units (last axis) whose output is exactly 0 for every example
    saturated: float      # Tanh: fraction of outputs with |a| > 0.99; Sigmoid: a < 0.01 or a > 0.99; else nan
    path: str = ""        # the layer's path: its name, else "<index>/<kind>" ("1/Tanh")


def activation_stats(layers, params, inputs, *, which: str = "activations", **kwargs) -> list:
    """Per-layer statistics of a batch's activations.

        mean = mean(a),  std = std(a),  dead = #{j : a_ij = 0 for all i} / d,  saturated = mean(|a| > 0.99) (tanh)

    Args:
      layers, params, inputs, **kwargs: as :func:`layer_outputs` (use ``train=False``, with ``state=`` for a
        model with BatchNorm).
      which: ``"activations"`` (the outputs of activation layers: :data:`ACTIVATION_KINDS`) or ``"all"``.

    Returns:
      A list of :class:`LayerStats`.

    Example:
      >>> import jax
      >>> from fnn.layers import Dense, Tanh, BatchNorm, serial, init_with_state
      >>> from fnn.debug import activation_stats
      >>> model = serial(Dense(8), BatchNorm(axis=0), Tanh.named("h1"))
      >>> _, params, state = init_with_state(model, jax.random.key(0), (-1, 4))
      >>> x = jax.random.normal(jax.random.key(1), (32, 4))
      >>> [s.path for s in activation_stats(model, params, x, state=state, train=False, which="all")]
      ['0/Dense', '1/BatchNorm', 'h1']

    Reference: CS231n notes, "Neural Networks Part 2" (weight initialization; the tanh histograms);
    Glorot & Bengio 2010, sec. 4.
    """
    if which not in ("activations", "all"):
        raise ValueError(f"activation_stats: expected which='activations' or 'all', got {which!r}")
    layers = layer_list(layers, "activation_stats")
    outs = layer_outputs(layers, params, inputs, **kwargs)
    stats = []
    for i, (layer, a) in enumerate(zip(layers, outs)):
        if which == "activations" and layer.kind not in ACTIVATION_KINDS:
            continue
        a = jnp.asarray(a, jnp.float32)
        units = a.reshape(-1, a.shape[-1])
        dead = float(jnp.mean(jnp.all(units == 0, axis=0)))
        sat = float(jnp.mean(_SATURATION[layer.kind](a))) if layer.kind in _SATURATION else float("nan")
        stats.append(LayerStats(i, layer.label, float(jnp.mean(a)), float(jnp.std(a)), dead, sat,
                                layer_path(i, layer)))
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


