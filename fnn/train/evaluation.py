"""Evaluation and prediction over whole data sets, and the checks every training entry point runs before compiling.

``evaluate``/``predict`` run the model with ``train=False`` in large compiled batches (``lax.map`` over the full
batches, then the remainder), so every example is used. ``check_data`` and ``check_model`` are what ``fit``,
``fit_batch``, ``fit_ensemble`` and ``sweep`` share to report bad input before anything is compiled.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn.data import validate_xy
from fnn.metrics import get_metric
from fnn.train.engine import forward

__all__ = ["make_evaluator", "make_predict", "predict", "evaluate", "check_data", "check_model", "as_array"]


def make_predict(apply, batch_size: int):
    """The un-compiled ``predict_fn(params, state, X) -> outputs (n, ...)``, ``batch_size`` examples at a time."""
    def predict_fn(params, state, X):
        n = X.shape[0]
        size = min(batch_size, n)
        nb = n // size
        f = lambda x: forward(apply, params, state, x, train=False)[0]  # noqa: E731
        head = lax.map(f, X[: nb * size].reshape((nb, size) + X.shape[1:]))
        out = head.reshape((nb * size,) + head.shape[2:])
        return out if nb * size == n else jnp.concatenate([out, f(X[nb * size:])])
    return predict_fn


def make_evaluator(apply, loss, *, metrics: Sequence = ("accuracy",), batch_size: int = 1024):
    """A compiled ``run(params, state, X, y) -> {"loss": scalar, <metric>: scalar}`` over a whole data set.

    The outputs are computed ``batch_size`` examples at a time, concatenated to ``(n, ...)``, and the loss and
    metrics are taken over all ``n`` examples at once, so the result equals ``loss(apply(params, X, train=False),
    y)`` exactly up to float rounding.
    """
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"make_evaluator: expected a positive integer batch_size, got {batch_size!r}")
    metric_fns = [get_metric(m) for m in metrics]
    predict_fn = make_predict(apply, batch_size)

    @jax.jit
    def run(params, state, X, y):
        out = predict_fn(params, state, X)
        return {"loss": loss(out, y), **{name: fn(out, y) for name, fn in metric_fns}}

    return run


def predict(apply, params, X, *, state=None, batch_size: int = 1024):
    """Model outputs ``apply(params, X, train=False)`` for a whole data set, computed in compiled batches.

    Args:
      apply, params, state: the model (``state`` for stateful models).
      X: ``(n, ...)`` inputs.
      batch_size: examples per compiled batch.

    Returns:
      ``(n, ...)`` outputs.
    """
    return jax.jit(make_predict(apply, batch_size))(params, state, jnp.asarray(X))


def evaluate(apply, params, loss, X, y, *, state=None, metrics: Sequence = ("accuracy",), batch_size: int = 1024):
    """Loss and metrics of a model over a whole data set, in large compiled batches (``train=False``).

    ``{"loss": loss(outputs, y), m: m(outputs, y) for m in metrics}`` with ``outputs = apply(params, X,
    train=False)``; see ``make_evaluator``.

    Args:
      apply, params, state: the model (``state`` for stateful models).
      loss: ``loss(outputs, targets) -> scalar``.
      X: ``(n, ...)`` inputs; y: ``(n,)`` labels or ``(n, ...)`` targets.
      metrics: names or functions as in ``make_train_step``.
      batch_size: examples per compiled batch.

    Returns:
      A dict of Python floats.
    """
    X, y = as_array(X), as_array(y)
    validate_xy(X, y, name="evaluate")
    # the same checks as fit's, labels against the model's output width included (out of range: an error, not
    # accuracy 0.0 and loss NaN)
    check_model(apply, loss, metrics, params, state, X, y, min(int(X.shape[0]), batch_size), "evaluate")
    run = make_evaluator(apply, loss, metrics=metrics, batch_size=batch_size)
    return {k: float(v) for k, v in run(params, state, jnp.asarray(X), jnp.asarray(y)).items()}


def as_array(a):
    """Python lists (and tuples) as NumPy arrays of JAX's default dtypes (float32, int32 without x64), as
    ``jnp.asarray`` gives them; arrays pass unchanged. ``fit`` and ``evaluate`` accept lists through this."""
    return np.asarray(jnp.asarray(a)) if isinstance(a, (list, tuple)) else a


def check_data(X, y, batch_size, name: str) -> int:
    """Validate the data (``fnn.data.validate_xy``) and ``1 <= batch_size <= n``; return ``batch_size`` as an int.

    ``y`` may be a pytree of targets (``(y, v)``, targets with weights): each leaf is validated against ``X``."""
    for leaf in jax.tree.leaves(y):
        validate_xy(X, leaf, name=name)
    n = int(X.shape[0])
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= n:
        raise ValueError(f"{name}: batch_size must be an integer in [1, {n}] (the number of training examples), got "
                         f"{batch_size!r}; lower it or pass more data")
    return int(batch_size)


def check_model(apply, loss, metrics, params, state, X, y, batch_size, name):
    """Trace (without compiling) one batch through the model, the loss and the metrics: clear errors up front.

    Args:
      apply, loss, metrics: as ``fnn.train.fit`` (metric names or functions). params, state: one model's.
      X, y: the data (only shapes and dtypes are used; ``y`` may be a pytree such as ``(y, v)``, whose first leaf is
        checked as the labels). batch_size: the batch to trace. name: for the messages.
    """
    metric_fns = [get_metric(m) for m in metrics]
    x = jax.ShapeDtypeStruct((batch_size,) + tuple(X.shape[1:]), X.dtype)
    t = jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch_size,) + tuple(a.shape[1:]), a.dtype), y)
    t_shape = jax.tree.map(lambda a: a.shape, t)
    y = jax.tree.leaves(y)[0]
    try:
        out = jax.eval_shape(lambda p, s, a: forward(apply, p, s, a, train=False)[0], params, state, x)
    except Exception as e:  # noqa: BLE001  (re-raised with the shapes that explain it)
        raise ValueError(f"{name}: the model cannot be applied to a batch of shape {x.shape}: {e}; check the "
                         f"input shape given to init and the data's feature shape {tuple(X.shape[1:])}") from e
    if not hasattr(out, "shape"):
        raise ValueError(f"{name}: expected the model to return one array, got {jax.tree.structure(out)}; pass "
                         f"state= to fit if the model is stateful (it then returns (outputs, state))")
    int_labels = jnp.issubdtype(y.dtype, jnp.integer) and y.ndim == 1
    if int_labels and len(out.shape) == 2:
        validate_xy(X, y, num_classes=int(out.shape[-1]), name=name)
    try:
        value = jax.eval_shape(loss, out, t)
        for _, fn in metric_fns:
            jax.eval_shape(fn, out, t)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{name}: the model's output of shape {out.shape} does not fit the loss/metrics with "
                         f"targets of shape {t_shape} ({e}); make the last layer's width match the targets "
                         f"(e.g. Dense(num_classes) for integer labels) or pick the loss that fits them") from e
    if getattr(value, "shape", None) != ():
        raise ValueError(f"{name}: expected the loss to return a scalar, got shape {getattr(value, 'shape', value)}; "
                         f"average over the batch inside the loss")
