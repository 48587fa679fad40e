"""Compiled training: the step, the epoch, ``fit`` and ``evaluate``.

The model contract ``fit`` relies on (see ``fnn/layers/base.py``): ``apply(params, x, key=k, train=True)`` for a training
step, ``apply(params, x, train=False)`` for evaluation; a stateful model (BatchNorm) gets ``state=s`` as well and
returns ``(outputs, new_state)``. A loss is ``loss(outputs, targets) -> scalar`` (``fnn.losses``), a metric has the
same signature (``fnn.metrics``), an optimizer follows optax's protocol (``fnn.optimizers`` or any optax
``GradientTransformation``).

One step, compiled as one program: forward, loss, backward, update and metrics, ``(params, opt_state, state)``
donated so XLA updates them in place. One epoch: the data set is moved to the device once; each epoch draws a
permutation of the example indices on the device and each step gathers its batch ``X[idx]`` inside the compiled step,
so no shuffled copy of the data set is ever made. The epoch runs either as one ``lax.scan`` over the batches
(``epoch_mode="scan"``) or as a Python loop of compiled steps (``"loop"``); ``"auto"`` picks the loop on the CPU when
the step contains a convolution and the scan otherwise, which is what ``benchmarks/bench_train.py`` measured faster
(numbers in ``docs/training.md``). Both modes run the same step on the same batches with the same keys. The scanned
epoch of a network without convolutions runs 4 steps per loop iteration (``scan_unroll``, ``choose_scan_unroll``):
on a GPU a small step costs little more than the loop's own per-iteration work, which unrolling divides.

Randomness (what makes a resumed run equal the uninterrupted one): epoch ``e`` (0-based) uses
``k_e = fold_in(key, e)``, ``shuffle_key, step_key = split(k_e)``; the batch order is
``permutation(shuffle_key, n)`` and step ``i`` gets ``fold_in(step_key, i)`` (dropout). Nothing random is carried
from one epoch to the next.

Remainder rule: an epoch is ``n // batch_size`` full batches of its permutation; the last ``n % batch_size``
examples of the permutation sit that epoch out (a different random set each epoch). Every step thus has one
compiled shape and an unbiased mean gradient. ``evaluate`` uses every example (full batches plus one remainder).

Non-finite loss: the step keeps the old parameters when its loss or update is not finite and remembers the first
such step; ``fit`` then stops after that epoch, reports the epoch and step and returns the last good parameters.
"""
from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn.train.callbacks import Callback, History, copy_tree, format_epoch_line
from fnn.data import validate_xy
from fnn.train.distributed import batch_sharding, check_batch_size, replicate
from fnn.metrics import get_metric
from fnn.optimizers import apply_updates

__all__ = ["TrainState", "FitResult", "FitResultWithState", "make_train_step", "make_epoch", "make_evaluator",
           "evaluate", "predict", "fit", "epoch_keys", "choose_epoch_mode", "choose_scan_unroll", "checkpoint_tree",
           "SCAN_UNROLL", "EPOCH_MODES"]

EPOCH_MODES = ("auto", "scan", "loop")


class TrainState(NamedTuple):
    """Everything a step changes: the parameters, the optimizer state and the model state (``None`` if stateless)."""
    params: Any     # the model's parameter tree
    opt_state: Any  # optimizer.init(params), updated every step
    state: Any      # model state (BatchNorm running averages) or None


class FitResult(NamedTuple):
    """What ``fit`` returns for a stateless model: ``params, opt_state, history = fit(...)``."""
    params: Any
    opt_state: Any
    history: History


class FitResultWithState(NamedTuple):
    """What ``fit`` returns when it was given ``state=``: ``params, opt_state, history, state = fit(...)``."""
    params: Any
    opt_state: Any
    history: History
    state: Any


def _forward(apply, params, state, x, *, train, key=None):
    kwargs = {"train": train} if key is None else {"key": key, "train": train}
    if state is None:
        return apply(params, x, **kwargs), None
    return apply(params, x, state=state, **kwargs)


def _sum_squares(tree):
    return sum(jnp.sum(jnp.square(a)) for a in jax.tree.leaves(tree))


def _step_body(apply, loss, metrics, guard=True, mesh=None):
    """The un-compiled step shared by ``fit``, ``make_train_step`` and ``fnn.train.ensembles``.

    ``body(optimizer, l2, ts, bad, i, x, y, key) -> ((ts, bad), stats)``: the objective is
    ``J = loss(apply(params, x), y) + (l2 / 2) * sum(params ** 2)``; ``bad`` is the index of the first step whose
    loss (or, with ``guard``, update) was not finite (``-1`` while none was). With ``guard=True`` the train state is
    left unchanged from that step on (``jnp.where`` over the state: one extra pass over the parameters per step);
    ``fit``'s scanned epoch runs unguarded and, only when ``bad >= 0``, replays the epoch with the guarded step.
    """
    metric_fns = [get_metric(m) for m in metrics]

    def objective(params, state, x, y, key, l2):
        out, new_state = _forward(apply, params, state, x, train=True, key=key)
        value = loss(out, y)
        total = value if l2 is None else value + 0.5 * l2 * _sum_squares(params)
        return total, (value, out, new_state)

    def body(optimizer, l2, ts, bad, i, x, y, key):
        if mesh is not None:  # data parallelism: split the gathered batch over the mesh's data axis
            x, y = (lax.with_sharding_constraint(a, batch_sharding(mesh)) for a in (x, y))
        grad_fn = jax.value_and_grad(objective, has_aux=True)
        (_, (value, out, new_state)), grads = grad_fn(ts.params, ts.state, x, y, key, l2)
        updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
        new = TrainState(apply_updates(ts.params, updates), opt_state, new_state)
        finite = jnp.isfinite(value)
        if guard:
            finite = finite & jnp.isfinite(sum(jnp.sum(u) for u in jax.tree.leaves(updates)))
            ok = finite & (bad < 0)
            new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, ts)
        bad = jnp.where((bad < 0) & ~finite, i, bad)
        stats = {"loss": value, **{name: fn(out, y) for name, fn in metric_fns}}
        return (new, bad), stats

    return body


def epoch_keys(key, epoch: int):
    """The keys of epoch ``epoch`` (0-based): ``split(fold_in(key, epoch))`` -> ``(shuffle_key, step_key)``."""
    return jax.random.split(jax.random.fold_in(key, epoch))


def _batch_indices(shuffle_key, n: int, batch_size: int):
    nb = n // batch_size
    return jax.random.permutation(shuffle_key, n)[: nb * batch_size].reshape(nb, batch_size)


def _gather(a, idx):
    return a.at[idx].get(mode="promise_in_bounds", unique_indices=True)


def make_train_step(apply, loss, optimizer, *, metrics: Sequence = ("accuracy",), l2: float | None = None,
                    donate: bool = True):
    """One compiled training step: ``step(train_state, x, y, key) -> (train_state, stats)``.

    Computes ``J = loss(apply(params, x, key=key, train=True), y) [+ (l2 / 2) sum(params ** 2)]``, its gradient
    ``g = dJ/dparams``, ``updates, opt_state = optimizer.update(g, opt_state, params)`` and
    ``params + updates``, plus the metrics on the same outputs, all in one XLA program. When the loss or the update
    is not finite the returned state equals the input state and ``stats["finite"]`` is ``False``.

    Args:
      apply: the model's apply function (the contract in this module's docstring).
      loss: ``loss(outputs, targets) -> scalar``.
      optimizer: anything with optax's ``init``/``update`` protocol.
      metrics: names in ``fnn.metrics.METRICS`` or functions ``(outputs, targets) -> scalar``.
      l2: optional L2 strength ``lambda`` (weight decay in the objective, biases included).
      donate: donate the train state's buffers (the caller must not reuse the state it passed in).

    Returns:
      ``step(ts, x, y, key)`` with ``ts`` a ``TrainState``, ``x (B, ...)``, ``y (B, ...)``; returns the new
      ``TrainState`` and ``stats``: ``{"loss": scalar, <metric>: scalar, "finite": bool scalar}``.

    Example:
      >>> step = make_train_step(model.apply, losses.softmax_cross_entropy_with_integer_labels, optax.sgd(0.1))
      >>> ts, stats = step(TrainState(params, opt.init(params), None), x, y, key)   # doctest: +SKIP
    """
    body = _step_body(apply, loss, metrics)

    def step(ts, x, y, key):
        (ts, bad), stats = body(optimizer, l2, ts, jnp.int32(-1), jnp.int32(0), x, y, key)
        return ts, {**stats, "finite": bad < 0}

    return jax.jit(step, donate_argnums=(0,) if donate else ())


def make_epoch(apply, loss, optimizer, batch_size: int, *, metrics: Sequence = ("accuracy",),
               l2: float | None = None, guard: bool = True, mesh=None, unroll: int = 1):
    """One epoch as one pure function (a ``lax.scan`` over the batches), not yet compiled.

    ``epoch(ts, X, y, key_e) -> (ts, bad, stats)`` shuffles with ``key_e = fold_in(key, e)`` (see
    ``epoch_keys``), runs ``n // batch_size`` steps and returns per-step stats of shape ``(n // batch_size,)`` and
    ``bad``, the first non-finite step (``-1`` if none). ``fit`` jits it; ``fnn.train.ensembles`` vmaps it.

    Args:
      apply, loss, optimizer, metrics, l2: as ``make_train_step``; ``optimizer`` may be a function
        ``hp -> optimizer`` when ``epoch`` is called with ``hp=`` (hyper-parameter sweeps).
      batch_size: examples per step, ``1 <= batch_size <= n``.
      guard: keep the state of the last good step when a loss or update is not finite (see ``_step_body``);
        ``False`` only flags the first non-finite loss in ``bad`` (faster; ``fit`` then replays the epoch guarded).
      mesh: a 1-D ``jax.sharding.Mesh`` (``fnn.train.distributed.data_mesh()``): each batch is split over its devices.
      unroll: steps per iteration of the compiled loop (``lax.scan``'s ``unroll``): fewer loop iterations, the same
        arithmetic in the same order, so the same parameters up to float rounding of fused operations.

    Returns:
      The epoch function ``epoch(ts, X, y, key_e, hp=None, l2_value=l2)``.
    """
    body = _step_body(apply, loss, metrics, guard, mesh)

    def epoch(ts, X, y, key_e, hp=None, l2_value=l2):
        opt = optimizer if hp is None else optimizer(**hp)
        shuffle_key, step_key = jax.random.split(key_e)
        idx = _batch_indices(shuffle_key, X.shape[0], batch_size)

        def one(carry, inputs):
            i, b = inputs
            return body(opt, l2_value, *carry, i, _gather(X, b), _gather(y, b), jax.random.fold_in(step_key, i))

        steps = (jnp.arange(idx.shape[0], dtype=jnp.int32), idx)
        if guard:
            (ts, bad), stats = lax.scan(one, (ts, jnp.int32(-1)), steps, unroll=unroll)
            return ts, bad, stats
        # Unguarded, ``bad`` only reports the first non-finite loss: read it off the per-step losses after the
        # loop instead of carrying it through every step (one scalar kernel less per step on a GPU).
        def unguarded(ts, inputs):
            (ts, _), stats = one((ts, jnp.int32(-1)), inputs)
            return ts, stats

        ts, stats = lax.scan(unguarded, ts, steps, unroll=unroll)
        return ts, _first_nonfinite(stats["loss"]), stats

    return epoch


def _first_nonfinite(values):
    """Index of the first non-finite entry of a 1-D array, ``-1`` when all are finite."""
    bad = ~jnp.isfinite(values)
    return jnp.where(jnp.any(bad), jnp.argmax(bad), -1).astype(jnp.int32)


def _make_loop_epoch(apply, loss, optimizer, batch_size, metrics, l2, mesh=None):
    body = _step_body(apply, loss, metrics, mesh=mesh)

    @functools.partial(jax.jit, static_argnums=(1,))
    def indices(key_e, n):
        shuffle_key, step_key = jax.random.split(key_e)
        return _batch_indices(shuffle_key, n, batch_size), step_key

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(ts, bad, i, X, y, idx, step_key):
        b = lax.dynamic_index_in_dim(idx, i, keepdims=False)
        return body(optimizer, l2, ts, bad, i, _gather(X, b), _gather(y, b), jax.random.fold_in(step_key, i))

    def epoch(ts, X, y, key_e, on_step=None, steps=None):
        idx, step_key = indices(key_e, X.shape[0])
        bad, stats = jnp.int32(-1), []
        for i in range(idx.shape[0] if steps is None else steps):
            (ts, bad), s = step(ts, bad, np.int32(i), X, y, idx, step_key)
            stats.append(s)
            if on_step is not None:
                on_step()
        return ts, bad, jax.tree.map(lambda *a: jnp.stack(a), *stats)

    return epoch, step


def _has_convolution(jaxpr) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            return True
        for v in eqn.params.values():
            for j in (v if isinstance(v, (list, tuple)) else (v,)):
                inner = getattr(j, "jaxpr", j)
                if hasattr(inner, "eqns") and _has_convolution(inner):
                    return True
    return False


def _step_has_convolution(apply, loss, optimizer, ts, x, y, key, metrics) -> bool:
    body = _step_body(apply, loss, metrics)
    jaxpr = jax.make_jaxpr(lambda t, a, b, k: body(optimizer, None, t, jnp.int32(-1), jnp.int32(0), a, b, k))(
        ts, x, y, key)
    return _has_convolution(jaxpr.jaxpr)


SCAN_UNROLL = 4


def choose_scan_unroll(apply, loss, optimizer, ts, x, y, key, *, metrics=("accuracy",)) -> int:
    """Steps per iteration of the scanned epoch: ``SCAN_UNROLL`` (4) for a step without convolutions, else 1.

    A small dense step is bound by the per-iteration cost of the compiled loop (on a GPU, kernel launches and the
    loop's own bookkeeping), which unrolling divides; a convolutional step is dominated by its arithmetic and would
    only compile longer. Measured in ``benchmarks/run.py`` (docs/benchmarks.md).
    """
    return 1 if _step_has_convolution(apply, loss, optimizer, ts, x, y, key, metrics) else SCAN_UNROLL


def choose_epoch_mode(apply, loss, optimizer, ts, x, y, key, *, metrics=("accuracy",), backend=None) -> str:
    """``"loop"`` when the step contains a convolution and runs on the CPU, else ``"scan"`` (what the benchmark
    in ``benchmarks/bench_train.py`` measured faster; see ``docs/training.md``).

    Args:
      apply, loss, optimizer, metrics: as ``make_train_step``.
      ts, x, y, key: a train state, one batch and a key (only their shapes and dtypes are used).
      backend: ``jax.default_backend()`` if ``None``.

    Returns:
      ``"scan"`` or ``"loop"``.
    """
    backend = jax.default_backend() if backend is None else backend
    return _epoch_mode(_step_has_convolution(apply, loss, optimizer, ts, x, y, key, metrics), backend)


def _epoch_mode(has_convolution: bool, backend: str) -> str:
    return "loop" if backend == "cpu" and has_convolution else "scan"


def make_evaluator(apply, loss, *, metrics: Sequence = ("accuracy",), batch_size: int = 1024):
    """A compiled ``run(params, state, X, y) -> {"loss": scalar, <metric>: scalar}`` over a whole data set.

    The outputs are computed ``batch_size`` examples at a time (``lax.map`` over the full batches, then the
    remainder), concatenated to ``(n, ...)``, and the loss and metrics are taken over all ``n`` examples at once, so
    the result equals ``loss(apply(params, X, train=False), y)`` exactly up to float rounding.
    """
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"make_evaluator: expected a positive integer batch_size, got {batch_size!r}")
    metric_fns = [get_metric(m) for m in metrics]
    predict_fn = _make_predict(apply, batch_size)

    @jax.jit
    def run(params, state, X, y):
        out = predict_fn(params, state, X)
        return {"loss": loss(out, y), **{name: fn(out, y) for name, fn in metric_fns}}

    return run


def _make_predict(apply, batch_size):
    def predict_fn(params, state, X):
        n = X.shape[0]
        size = min(batch_size, n)
        nb = n // size
        f = lambda x: _forward(apply, params, state, x, train=False)[0]  # noqa: E731
        head = lax.map(f, X[: nb * size].reshape((nb, size) + X.shape[1:]))
        out = head.reshape((nb * size,) + head.shape[2:])
        return out if nb * size == n else jnp.concatenate([out, f(X[nb * size:])])
    return predict_fn


def predict(apply, params, X, *, state=None, batch_size: int = 1024):
    """Model outputs ``apply(params, X, train=False)`` for a whole data set, computed in compiled batches.

    Args:
      apply, params, state: the model (``state`` for stateful models).
      X: ``(n, ...)`` inputs.
      batch_size: examples per compiled batch.

    Returns:
      ``(n, ...)`` outputs.
    """
    return jax.jit(_make_predict(apply, batch_size))(params, state, jnp.asarray(X))


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
    validate_xy(X, y, name="evaluate")
    run = make_evaluator(apply, loss, metrics=metrics, batch_size=batch_size)
    return {k: float(v) for k, v in run(params, state, jnp.asarray(X), jnp.asarray(y)).items()}


# ---------------------------------------------------------------------------------------------------------- fit
def _check_positive_int(name, value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"fit: {name} must be a positive integer ({what}), got {value!r}")


def _check_model(apply, loss, metric_fns, params, state, X, y, batch_size, name):
    """Trace (without compiling) one batch through the model, the loss and the metrics: clear errors up front."""
    x = jax.ShapeDtypeStruct((batch_size,) + tuple(X.shape[1:]), X.dtype)
    t = jax.ShapeDtypeStruct((batch_size,) + tuple(y.shape[1:]), y.dtype)
    try:
        out = jax.eval_shape(lambda p, s, a: _forward(apply, p, s, a, train=False)[0], params, state, x)
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
        for metric_name, fn in metric_fns:
            jax.eval_shape(fn, out, t)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{name}: the model's output of shape {out.shape} does not fit the loss/metrics with "
                         f"targets of shape {t.shape} ({e}); make the last layer's width match the targets "
                         f"(e.g. Dense(num_classes) for integer labels) or pick the loss that fits them") from e
    if getattr(value, "shape", None) != ():
        raise ValueError(f"{name}: expected the loss to return a scalar, got shape {getattr(value, 'shape', value)}; "
                         f"average over the batch inside the loss")


def _find_learning_rate(opt_state):
    """The learning rate stored by ``optax.inject_hyperparams`` anywhere in ``opt_state``, else ``None``."""
    for node in jax.tree.leaves(opt_state, is_leaf=lambda n: hasattr(n, "hyperparams")):
        if hasattr(node, "hyperparams") and "learning_rate" in node.hyperparams:
            return float(node.hyperparams["learning_rate"])
    return None


def _lr(learning_rate, opt_state, step):
    if learning_rate is None:
        return _find_learning_rate(opt_state)
    return float(learning_rate(step)) if callable(learning_rate) else float(learning_rate)


def _progress_bar(progress, total, desc):
    show = sys.stdout.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, unit="step", dynamic_ncols=True)


def checkpoint_tree(ts, epoch, key):
    """The tree ``fit`` saves in a checkpoint: ``{"train_state": ts, "epoch": epoch, "key": key_data(key)}``."""
    return {"train_state": ts, "epoch": epoch, "key": jax.random.key_data(key)}


def _resume(checkpoint_dir, ts, key, history):
    from fnn.train import checkpoint
    if checkpoint.latest_step(checkpoint_dir) is None:
        return ts, 0
    target = checkpoint_tree(ts, 0, key)
    saved = checkpoint.restore(checkpoint_dir, target)
    if not np.array_equal(np.asarray(saved["key"]), np.asarray(jax.random.key_data(key))):
        raise ValueError(f"fit: the checkpoint in {os.fspath(checkpoint_dir)!r} was written by a run with another "
                         f"key; resume with the same key (seed) or start a new checkpoint directory")
    start = int(saved["epoch"])
    path = os.path.join(os.fspath(checkpoint_dir), "history.json")
    if os.path.exists(path):
        history.records = History.load(path).records[:start]
    return saved["train_state"], start


def fit(apply, params, optimizer, loss, X, y, *, epochs: int, batch_size: int, key, state=None, validation=None,
        metrics: Sequence = ("accuracy",), callbacks: Sequence[Callback] = (), epoch_mode: str = "auto",
        scan_unroll: int | None = None,
        progress: bool | None = None, verbose: bool = True, learning_rate=None, l2: float | None = None,
        opt_state=None, eval_batch_size: int = 1024, checkpoint_dir=None, checkpoint_every: int = 1,
        keep_checkpoints: int = 3, resume: bool = False, print_fn: Callable[[str], None] = print, mesh=None):
    """Train a model with mini-batch gradient steps, compiled; return the trained params, optimizer state, history.

    Each epoch ``e`` shuffles on the device with ``fold_in(key, e)`` and runs ``n // batch_size`` steps of
    ``params <- params + optimizer.update(grad J)``, ``J = loss(apply(params, X[b], key=k, train=True), y[b])
    [+ (l2 / 2) sum(params ** 2)]`` (module docstring: randomness, remainder rule, non-finite loss). Everything is
    checked before compiling: data (``fnn.data.validate_xy``), batch size, and one batch traced through model, loss
    and metrics with ``jax.eval_shape``.

    Args:
      apply: the model's apply function. params: its parameters (not modified; fit works on a copy).
      optimizer: an fnn optimizer or any optax ``GradientTransformation``.
      loss: ``loss(outputs, targets) -> scalar``.
      X: ``(n, ...)`` inputs; y: ``(n,)`` integer labels or ``(n, ...)`` targets (NumPy or JAX).
      epochs: number of epochs (the total, when resuming). batch_size: ``1 <= batch_size <= n``.
      key: a ``jax.random`` key: shuffling, dropout.
      state: the model state for stateful models (``fnn.layers.init_with_state``); then the result has ``state``.
      validation: ``(X_val, y_val)`` evaluated after every epoch with ``train=False``.
      metrics: names in ``fnn.metrics.METRICS`` or functions ``(outputs, targets) -> scalar``.
      callbacks: ``fnn.train.callbacks.Callback`` objects (e.g. ``EarlyStopping``).
      epoch_mode: ``"scan"`` (one compiled program per epoch), ``"loop"`` (a Python loop of compiled steps) or
        ``"auto"`` (``choose_epoch_mode``).
      scan_unroll: steps per iteration of the scanned epoch (``lax.scan``'s ``unroll``); ``None``:
        ``choose_scan_unroll`` (4 without convolutions, else 1).
      progress: a tqdm bar (per step in loop mode, per epoch in scan mode); ``None``: only when stdout is a terminal.
      verbose: print the babysitting line after every epoch (through ``print_fn``).
      learning_rate: the learning rate (number or schedule ``step -> lr``) shown in the line and history; found in
        ``optax.inject_hyperparams`` state when not given.
      l2: optional L2 strength added to the objective. opt_state: continue from this optimizer state.
      eval_batch_size: batch size of the validation pass.
      checkpoint_dir: save ``{train_state, epoch, key}`` there every ``checkpoint_every`` epochs (and at the end),
        keeping the newest ``keep_checkpoints``; ``history.json`` is written beside them.
      resume: continue from the newest checkpoint in ``checkpoint_dir`` (same key required); the result equals the
        uninterrupted run's.
      print_fn: where the lines go.
      mesh: a 1-D ``jax.sharding.Mesh`` (``fnn.train.distributed.data_mesh()``) for data parallelism: params and
        optimizer state replicated, every batch split over the devices (``batch_size`` must divide by their
        number), gradients and BatchNorm statistics over the global batch; equal to one device up to rounding.

    Returns:
      ``FitResult(params, opt_state, history)``, or ``FitResultWithState(params, opt_state, history, state)`` when
      ``state`` was given.

    Example:
      >>> _, params = model.init(key, (-1, 64))                                          # doctest: +SKIP
      >>> params, opt_state, history = fit(model.apply, params, optax.adam(1e-3),
      ...     losses.softmax_cross_entropy_with_integer_labels, X, y, epochs=10, batch_size=32, key=key)

    Reference: Bottou, "Stochastic Gradient Descent Tricks", in Neural Networks: Tricks of the Trade, 2012, sec. 2-3.
    """
    _check_positive_int("epochs", epochs, "the number of passes over the data")
    if scan_unroll is not None and (isinstance(scan_unroll, bool) or not isinstance(scan_unroll, int)
                                    or scan_unroll < 1):
        raise ValueError(f"fit: scan_unroll must be a positive int (steps per loop iteration) or None (automatic), "
                         f"got {scan_unroll!r}")
    if epoch_mode not in EPOCH_MODES:
        raise ValueError(f"fit: epoch_mode must be one of {EPOCH_MODES}, got {epoch_mode!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs checkpoint_dir= (the directory the interrupted run wrote to)")
    _check_positive_int("checkpoint_every", checkpoint_every, "epochs between checkpoints")
    validate_xy(X, y, name="fit")
    n = int(X.shape[0])
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= n:
        raise ValueError(f"fit: batch_size must be an integer in [1, {n}] (the number of training examples), got "
                         f"{batch_size!r}; lower it or pass more data")
    batch_size = int(batch_size)
    metric_fns = [get_metric(m) for m in metrics]
    _check_model(apply, loss, metric_fns, params, state, X, y, batch_size, "fit")
    if validation is not None:
        if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
            raise ValueError(f"fit: validation must be a pair (X_val, y_val), got {type(validation).__name__}")
        validate_xy(*validation, name="fit (validation)")
        _check_model(apply, loss, metric_fns, params, state, *validation, 1, "fit (validation)")
        Xv, yv = jnp.asarray(validation[0]), jnp.asarray(validation[1])
        evaluator = make_evaluator(apply, loss, metrics=metrics, batch_size=eval_batch_size)

    X, y = jnp.asarray(X), jnp.asarray(y)
    if opt_state is None:
        opt_state = optimizer.init(params)
    ts = copy_tree(TrainState(params, opt_state, state))
    if mesh is not None:
        # Data parallelism: the data set and the train state are copied to every device once; each step gathers
        # its batch and splits it over the data axis, and XLA all-reduces the gradient (fnn/train/distributed.py).
        check_batch_size(batch_size, mesh, "fit")
        X, y, ts = replicate((X, y, ts), mesh)
        if validation is not None:
            Xv, yv = replicate((Xv, yv), mesh)
    history = History()
    start = _resume(checkpoint_dir, ts, key, history) if resume else (ts, 0)
    ts, start = start
    nb = n // batch_size

    if epoch_mode == "auto" or (epoch_mode == "scan" and scan_unroll is None):  # trace the step once for both
        has_conv = _step_has_convolution(apply, loss, optimizer, ts, X[:batch_size], y[:batch_size], key, metrics)
        if epoch_mode == "auto":
            epoch_mode = _epoch_mode(has_conv, jax.default_backend())
        if scan_unroll is None:
            scan_unroll = 1 if has_conv else SCAN_UNROLL
    loop_epoch = _make_loop_epoch(apply, loss, optimizer, batch_size, metrics, l2, mesh)[0]
    if epoch_mode == "scan":
        # Not donated: the input state stays alive until the epoch is known to be finite (else it is replayed
        # guarded from there), which costs the same memory as a copy plus donation and one dispatch less.
        epoch_fn = make_epoch(apply, loss, optimizer, batch_size, metrics=metrics, l2=l2, guard=False, mesh=mesh,
                              unroll=scan_unroll)

        def scan_epoch_fn(ts, X, y, key, e):  # the epoch's key and the means of its stats, in the same program
            ts, bad, stats = epoch_fn(ts, X, y, jax.random.fold_in(key, e))
            return ts, bad, {k: jnp.mean(v) for k, v in stats.items()}

        scan_epoch = jax.jit(scan_epoch_fn)

    for cb in callbacks:
        cb.on_train_begin(history)
    epoch_bar = _progress_bar(progress, epochs, "epochs") if epoch_mode == "scan" else None
    if epoch_bar is not None:
        epoch_bar.update(start)
    for e in range(start, epochs):
        t0 = time.perf_counter()
        stats = None
        if epoch_mode == "scan":
            start_ts = ts  # the scan is unguarded: on a non-finite loss, replay from here, guarded
            ts, bad, means = scan_epoch(ts, X, y, key, e)
            bad, means = jax.device_get((bad, means))  # one transfer of a few scalars per epoch
            if bad >= 0:
                ts, bad, stats = loop_epoch(start_ts, X, y, jax.random.fold_in(key, e), steps=int(bad) + 1)
            del start_ts
        else:
            bar = _progress_bar(progress, nb, f"epoch {e + 1}/{epochs}")
            ts, bad, stats = loop_epoch(ts, X, y, jax.random.fold_in(key, e), None if bar is None else bar.update)
            if bar is not None:
                bar.close()
        bad = int(bad)
        record = {"epoch": e + 1}
        if stats is None:
            record.update({k: float(v) for k, v in means.items()})
        else:  # per-step stats: average the steps before the first non-finite one
            for k, v in stats.items():
                vals = np.asarray(v)[: nb if bad < 0 else bad]
                record[k] = float(vals.mean()) if vals.size else float("nan")
        if validation is not None:
            record.update({f"val_{k}": float(v) for k, v in evaluator(ts.params, ts.state, Xv, yv).items()})
        lr = _lr(learning_rate, ts.opt_state, (e + 1) * nb)
        if lr is not None:
            record["lr"] = lr
        record["steps"] = (e + 1) * nb if bad < 0 else e * nb + bad
        record["time"] = time.perf_counter() - t0
        history.append(record)
        if epoch_bar is not None:
            epoch_bar.update(1)
        if verbose:
            print_fn(format_epoch_line(record, epochs))
        last = bad >= 0 or e + 1 == epochs
        if bad >= 0:
            history.stop_reason = (f"non-finite loss at epoch {e + 1}, step {bad} (of {nb} steps, 0-based); "
                                   f"stopped and kept the parameters from before that step; lower the learning rate "
                                   f"or check the data and the loss")
            if verbose:
                print_fn(f"fit: {history.stop_reason}")
        stop = any([bool(cb.on_epoch_end(e + 1, record, ts)) for cb in callbacks]) if bad < 0 else True
        if checkpoint_dir is not None and bad < 0 and (last or stop or (e + 1) % checkpoint_every == 0):
            from fnn.train import checkpoint
            history.save(os.path.join(os.fspath(checkpoint_dir), "history.json"))
            checkpoint.save(checkpoint_dir, e + 1, checkpoint_tree(ts, e + 1, key), keep=keep_checkpoints)
        if stop:
            break
    if epoch_bar is not None:
        epoch_bar.close()
    for cb in callbacks:
        ts = cb.on_train_end(ts, history)
    if state is None:
        return FitResult(ts.params, ts.opt_state, history)
    return FitResultWithState(ts.params, ts.opt_state, history, ts.state)
