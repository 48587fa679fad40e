"""A model summary: each layer's name, output shape and parameter count, and the totals (as Keras'
``model.summary()`` or torchinfo's ``summary``), computed without running the model.

Every count comes from ``jax.eval_shape`` of the layer's ``init`` (``init_with_state`` for a model with state):
JAX traces the initializers abstractly, so nothing is compiled or computed and the summary is instant even for a
large model. The parameter count of a layer is the sum of the sizes of its params' leaves; state (BatchNorm's
running averages) is counted apart, as non-trainable. ``serial`` and ``parallel`` (and ``residual``, a
``serial``) are expanded into their ``children``, one indented row each, with paths that index the params tree:
row ``"2/0"`` is ``params[2][0]``.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax

from fnn.layers.base import as_layer, init_with_state

__all__ = ["SummaryRow", "Summary", "summary"]


class SummaryRow(NamedTuple):
    """One row of a :func:`summary`: a layer at ``path`` (``"2/0"``: ``params[2][0]``; ``""`` for the model)."""
    path: str
    level: int            # nesting level: 0 for the model's own layers, 1 inside a nested serial, ...
    name: str | None      # the user's label (``layer.named``), else None
    kind: str             # "Dense", "serial", ...
    output_shape: Any     # a shape tuple (-1 marks the batch), or a list of them after FanOut / parallel
    params: int           # number of trainable parameters (sum of the params' leaf sizes)
    state: int            # number of state entries (BatchNorm's running statistics): non-trainable


class Summary(str):
    """The table as a string (``print(s)`` shows it) that also carries the numbers: ``rows`` (a list of
    :class:`SummaryRow`), ``params`` and ``state`` (totals), ``param_bytes``, ``output_shape``."""
    rows: list
    params: int
    state: int
    param_bytes: int
    output_shape: Any


def _sizes(tree) -> tuple[int, int]:
    leaves = jax.tree.leaves(tree)
    count = sum(math.prod(leaf.shape) for leaf in leaves)
    return count, sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in leaves)


def _abstract_init(layer, key, input_shape, path: str):
    """``(output_shape, params, state)`` of ``layer`` with params and state as ``ShapeDtypeStruct`` trees."""
    box = {}

    def init(k):
        box["out"], params, state = init_with_state(layer, k, input_shape)
        return params, state

    try:
        params, state = jax.eval_shape(init, key)
    except Exception as error:
        error.add_note(f"summary: raised while initializing the layer at path {path or '(model)'!r} "
                       f"({layer.label}) on input shape {input_shape!r}")
        raise
    return box["out"], params, state


def _walk(layer, key, input_shape, path: str, level: int, rows: list) -> tuple:
    """Append the rows of ``layer`` and its children to ``rows``; return its output shape and abstract trees.

    The children go first, so an error names the innermost layer that raised."""
    at = len(rows)
    rows.append(None)
    try:
        mine = _expand(layer, key, input_shape, path, level, rows) if layer.children else None
        failure = None
    except Exception as error:  # re-raised below unless the layer as a whole initializes
        mine, failure = None, error
    try:
        out, params, state = _abstract_init(layer, key, input_shape, path)
    except Exception:
        if failure is not None:
            raise failure from None
        raise
    rows[at] = SummaryRow(path, level, layer.name, layer.kind or "layer", out, _sizes(params)[0], _sizes(state)[0])
    if mine is not None:  # what the children add up to: the sums of their counts and the last (all) output(s)
        mine = (sum(r.params for r in mine), sum(r.state for r in mine),
                _norm([r.output_shape for r in mine] if layer.kind == "parallel" else mine[-1].output_shape))
    if mine != (rows[at].params, rows[at].state, _norm(out)):
        del rows[at + 1:]  # the children do not add up to the layer (a composition other than serial's): keep it whole
    return out, params, state


def _expand(layer, key, input_shape, path: str, level: int, rows: list) -> list:
    """The children's rows, threading shapes through them as ``serial`` does (as ``parallel`` for that kind)."""
    parallel, mine, shape = layer.kind == "parallel", [], input_shape
    if parallel and not (isinstance(input_shape, (list, tuple)) and len(input_shape) == len(layer.children)):
        return None
    for i, child in enumerate(layer.children):
        sub = f"{path}/{i}" if path else str(i)
        at = len(rows)
        shape, _, _ = _walk(child, key, input_shape[i] if parallel else shape, sub, level + 1, rows)
        mine.append(rows[at])
    return mine


def _norm(shape):
    return tuple(_norm(s) for s in shape) if isinstance(shape, (list, tuple)) else shape


def _shape_str(shape) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_shape_str(s) for s in shape) + "]"
    return str(tuple(shape)) if isinstance(shape, tuple) else str(shape)


def _table(rows: list, model_row: SummaryRow, param_bytes: int) -> str:
    show_state = model_row.state > 0
    head = ["Path", "Layer (kind)", "Output shape", "Params"] + (["State"] if show_state else [])
    body = []
    for r in rows:
        label = f"{r.name} ({r.kind})" if r.name else r.kind
        cells = [r.path or "-", "  " * r.level + label, _shape_str(r.output_shape), f"{r.params:,}"]
        body.append(cells + ([f"{r.state:,}"] if show_state else []))
    widths = [max(len(c[j]) for c in [head] + body) for j in range(len(head))]

    def line(cells):
        return "  ".join(c.rjust(w) if j >= 3 else c.ljust(w) for j, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "=" * len(line(head))
    text = [line(head), rule] + [line(c) for c in body] + [rule]
    text.append(f"Params: {model_row.params:,} trainable ({param_bytes:,} bytes)")
    if show_state:
        text.append(f"State: {model_row.state:,} non-trainable (running statistics)")
    text.append(f"Output shape: {_shape_str(model_row.output_shape)}")
    return "\n".join(text)


def summary(model, input_shape, *, key=None, depth: int | None = None) -> Summary:
    """A table of the model's layers: path, name (kind), output shape, parameter count; then the totals.

    Counts are the sums of the leaf sizes of ``model.init(key, input_shape)[1]`` (params, trainable) and of the
    state tree of ``init_with_state`` (non-trainable; a "State" column appears when the model has state). Nothing
    runs: every layer's ``init`` goes through ``jax.eval_shape``.

    Args:
      model: a layer (``serial(...)``, ``mlp(...)``, any ``(init, apply)`` pair).
      input_shape: the input shape, -1 (or None) marking the batch: ``(-1, 784)``; a list of shapes for a model
        that takes several inputs (``parallel``).
      key: the PRNG key passed to ``init`` (only its type matters: shapes do not depend on it); default
        ``jax.random.key(0)``.
      depth: the deepest nesting level shown (0: only the model's own layers); default None: all levels. Hidden
        levels still count in their parent's row and in the totals.

    Returns:
      A :class:`Summary`: the table as a string, with ``.rows`` (a list of :class:`SummaryRow`, the model's own
      layers at level 0; the model itself when it is not ``serial``/``parallel``), ``.params``, ``.state``,
      ``.param_bytes`` and ``.output_shape``.

    Example:
      >>> from fnn.layers import Dense, Relu, serial, summary
      >>> s = summary(serial(Dense(16).named("fc1"), Relu, Dense(3)), (-1, 4))
      >>> print(s)
      Path  Layer (kind)  Output shape  Params
      ========================================
      0     fc1 (Dense)   (-1, 16)          80
      1     Relu          (-1, 16)           0
      2     Dense         (-1, 3)           51
      ========================================
      Params: 131 trainable (524 bytes)
      Output shape: (-1, 3)
      >>> s.params, [r.params for r in s.rows]
      (131, [80, 0, 51])
    """
    model = as_layer(model, "summary")
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"summary: expected input_shape as a tuple such as (-1, 784) (-1 or None marks the batch), "
                        f"or a list of them for several inputs, got {type(input_shape).__name__}: {input_shape!r}")
    if depth is not None and not (isinstance(depth, int) and depth >= 0):
        raise ValueError(f"summary: expected depth as a non-negative int (0: only the model's own layers) or None "
                         f"(all levels), got {depth!r}")
    key = jax.eval_shape(lambda: jax.random.key(0)) if key is None else key
    rows: list = []
    _, params, _ = _walk(model, key, input_shape, "", -1, rows)
    model_row, param_bytes = rows[0], _sizes(params)[1]
    rows = [r for r in rows[1:] if depth is None or r.level <= depth] or [model_row._replace(level=0)]
    out = Summary(_table(rows, model_row, param_bytes))
    out.rows, out.params, out.state = rows, model_row.params, model_row.state
    out.param_bytes, out.output_shape = param_bytes, model_row.output_shape
    return out
