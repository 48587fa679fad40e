"""The training engine: one compiled step, one epoch, and the epoch runner shared by ``fit``, ``fit_batch``,
``fit_ensemble`` and ``sweep``.

The model contract (see ``fnn/layers/base.py``): ``apply(params, x, key=k, train=True)`` for a training step,
``apply(params, x, train=False)`` for evaluation; a stateful model (BatchNorm) gets ``state=s`` as well and returns
``(outputs, new_state)``. A loss is ``loss(outputs, targets) -> scalar`` (``fnn.losses``), a metric has the same
signature (``fnn.metrics``), an optimizer follows optax's protocol (``fnn.optimizers`` or any optax
``GradientTransformation``).

One step, compiled as one program: forward, loss, backward, update and metrics. The objective is
``J = loss(apply(params, x), y) + fnn.losses.l2_penalty(params, l2)``, i.e. ``(l2 / 2) sum w^2`` over the weights
only (biases and normalization scales/shifts are not decayed; ``fnn.losses.weight_mask`` is the one definition).
One epoch: each epoch draws a permutation of the example indices on the device and each step gathers its batch
``X[idx]`` inside the compiled step, so no shuffled copy of the data set is ever made. The epoch runs either as one
``lax.scan`` over the batches (``epoch_mode="scan"``) or as a Python loop of compiled steps (``"loop"``); ``"auto"``
picks the loop on the CPU when the step contains a convolution and the scan otherwise (``benchmarks/bench_train.py``;
numbers in ``docs/training.md``). Both modes run the same step on the same batches with the same keys. The scanned
epoch of a network without convolutions runs 4 steps per loop iteration (``scan_unroll``, ``choose_scan_unroll``).

Randomness (what makes a resumed run equal the uninterrupted one): epoch ``e`` (0-based) uses
``k_e = fold_in(key, e)``, ``shuffle_key, step_key = split(k_e)``; the batch order is
``permutation(shuffle_key, n)`` and step ``i`` gets ``fold_in(step_key, i)`` (dropout). Nothing random is carried
from one epoch to the next.

Remainder rule: an epoch is ``n // batch_size`` full batches of its permutation; the last ``n % batch_size``
examples of the permutation sit that epoch out (a different random set each epoch).

Targets may be a pytree whose leaves all have the n examples on axis 0, gathered with the same batch indices:
``(y, v)`` with per-example weights ``v`` and the loss and metrics of ``fnn.train.weighting.weighted_objective``
(``fit(sample_weight=..., class_weight=...)``). Every function here passes ``y`` through unchanged.

Non-finite loss (``make_epoch_runner``, the same for one model and for a vmapped batch of models): the epoch runs
unguarded; if some step's loss was not finite, the epoch is replayed from its starting state with the guarded step,
which keeps the old parameters from the first bad step on. The run then stops after that epoch and each model keeps
its parameters from before its own first bad step.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn import losses
from fnn.metrics import get_metric
from fnn.optimizers import apply_updates
from fnn.train.distributed import batch_sharding

__all__ = ["TrainState", "forward", "make_step_body", "make_train_step", "make_epoch", "make_loop_epoch",
           "epoch_keys", "batch_indices", "choose_epoch_mode", "choose_scan_unroll", "step_has_convolution",
           "epoch_mode_for", "make_epoch_runner", "epoch_means", "SCAN_UNROLL", "EPOCH_MODES"]

EPOCH_MODES = ("auto", "scan", "loop")
SCAN_UNROLL = 4


class TrainState(NamedTuple):
    """Everything a step changes: the parameters, the optimizer state and the model state (``None`` if stateless)."""
    params: Any     # the model's parameter tree
    opt_state: Any  # optimizer.init(params), updated every step
    state: Any      # model state (BatchNorm running averages) or None


def forward(apply, params, state, x, *, train, key=None):
    """``(outputs, new_state)`` of ``apply`` on ``x``; ``new_state`` is ``None`` for a stateless model."""
    kwargs = {"train": train} if key is None else {"key": key, "train": train}
    if state is None:
        return apply(params, x, **kwargs), None
    return apply(params, x, state=state, **kwargs)


def make_step_body(apply, loss, metrics, guard=True, mesh=None):
    """The un-compiled step shared by every training entry point.

    ``body(optimizer, l2, ts, bad, i, x, y, key) -> ((ts, bad), stats)``: the objective is
    ``J = loss(apply(params, x), y) + fnn.losses.l2_penalty(params, l2)`` (no penalty when ``l2`` is ``None``);
    ``bad`` is the index of the first step whose loss (or, with ``guard``, update) was not finite (``-1`` while none
    was). With ``guard=True`` the train state is left unchanged from that step on (``jnp.where`` over the state).
    """
    metric_fns = [get_metric(m) for m in metrics]

    def objective(params, state, x, y, key, l2):
        out, new_state = forward(apply, params, state, x, train=True, key=key)
        value = loss(out, y)
        total = value if l2 is None else value + losses.l2_penalty(params, l2)
        return total, (value, out, new_state)

    def body(optimizer, l2, ts, bad, i, x, y, key):
        if mesh is not None:  # data parallelism: split the gathered batch over the mesh's data axis
            x, y = jax.tree.map(lambda a: lax.with_sharding_constraint(a, batch_sharding(mesh)), (x, y))
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


def batch_indices(shuffle_key, n: int, batch_size: int):
    """``(n // batch_size, batch_size)`` example indices: the epoch's permutation, remainder dropped."""
    nb = n // batch_size
    return jax.random.permutation(shuffle_key, n)[: nb * batch_size].reshape(nb, batch_size)


def _gather(a, idx):
    """``a[idx]`` for an array or a pytree of arrays (targets with weights, ``(y, v)``)."""
    return jax.tree.map(lambda leaf: leaf.at[idx].get(mode="promise_in_bounds", unique_indices=True), a)


def make_train_step(apply, loss, optimizer, *, metrics: Sequence = ("accuracy",), l2: float | None = None,
                    donate: bool = True):
    """One compiled training step: ``step(train_state, x, y, key) -> (train_state, stats)``.

    Computes ``J = loss(apply(params, x, key=key, train=True), y) [+ (l2 / 2) sum_w w^2]`` (weights only, see
    ``fnn.losses.l2_penalty``), its gradient ``g = dJ/dparams``, ``updates, opt_state = optimizer.update(g,
    opt_state, params)`` and ``params + updates``, plus the metrics on the same outputs, all in one XLA program.
    When the loss or the update is not finite the returned state equals the input state and ``stats["finite"]``
    is ``False``.

    Args:
      apply: the model's apply function (the contract in this module's docstring).
      loss: ``loss(outputs, targets) -> scalar``.
      optimizer: anything with optax's ``init``/``update`` protocol.
      metrics: names in ``fnn.metrics.METRICS`` or functions ``(outputs, targets) -> scalar``.
      l2: optional L2 strength ``lambda`` (weight decay in the objective, weights only: biases and normalization
        scales/shifts are not penalised).
      donate: donate the train state's buffers (the caller must not reuse the state it passed in).

    Returns:
      ``step(ts, x, y, key)`` with ``ts`` a ``TrainState``, ``x (B, ...)``, ``y (B, ...)``; returns the new
      ``TrainState`` and ``stats``: ``{"loss": scalar, <metric>: scalar, "finite": bool scalar}``.

    Example:
      >>> import jax, optax
      >>> from fnn import layers, losses
      >>> model = layers.Dense(2)
      >>> _, params = model.init(jax.random.key(0), (-1, 3))
      >>> step = make_train_step(model.apply, losses.quadratic_cost, optax.sgd(0.1), metrics=())
      >>> ts, stats = step(TrainState(params, optax.sgd(0.1).init(params), None), jax.numpy.ones((4, 3)),
      ...                  jax.numpy.zeros((4, 2)), jax.random.key(1))
      >>> bool(stats["finite"])
      True
    """
    body = make_step_body(apply, loss, metrics)

    def step(ts, x, y, key):
        (ts, bad), stats = body(optimizer, l2, ts, jnp.int32(-1), jnp.int32(0), x, y, key)
        return ts, {**stats, "finite": bad < 0}

    return jax.jit(step, donate_argnums=(0,) if donate else ())


def make_epoch(apply, loss, optimizer, batch_size: int, *, metrics: Sequence = ("accuracy",),
               l2: float | None = None, guard: bool = True, mesh=None, unroll: int = 1):
    """One epoch as one pure function (a ``lax.scan`` over the batches), not yet compiled.

    ``epoch(ts, X, y, key_e) -> (ts, bad, stats)`` shuffles with ``key_e = fold_in(key, e)`` (see
    ``epoch_keys``), runs ``n // batch_size`` steps and returns per-step stats of shape ``(n // batch_size,)`` and
    ``bad``, the first non-finite step (``-1`` if none). ``make_epoch_runner`` jits it, or vmaps it over models.

    Args:
      apply, loss, optimizer, metrics, l2: as ``make_train_step``; ``optimizer`` may be a function
        ``hp -> optimizer`` when ``epoch`` is called with ``hp=`` (hyper-parameter sweeps).
      batch_size: examples per step, ``1 <= batch_size <= n``.
      guard: keep the state of the last good step when a loss or update is not finite (see ``make_step_body``);
        ``False`` only flags the first non-finite loss in ``bad`` (faster; the runner then replays the epoch guarded).
      mesh: a 1-D ``jax.sharding.Mesh`` (``fnn.train.distributed.data_mesh()``): each batch is split over its devices.
      unroll: steps per iteration of the compiled loop (``lax.scan``'s ``unroll``): fewer loop iterations, the same
        arithmetic in the same order, so the same parameters up to float rounding of fused operations.

    Returns:
      The epoch function ``epoch(ts, X, y, key_e, hp=None, l2_value=l2)``.
    """
    body = make_step_body(apply, loss, metrics, guard, mesh)

    def epoch(ts, X, y, key_e, hp=None, l2_value=l2):
        opt = optimizer if hp is None else optimizer(**hp)
        shuffle_key, step_key = jax.random.split(key_e)
        idx = batch_indices(shuffle_key, X.shape[0], batch_size)

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


def make_loop_epoch(apply, loss, optimizer, batch_size, metrics, l2, mesh=None):
    """The epoch as a Python loop of compiled, donated, guarded steps (``epoch_mode="loop"``).

    Returns ``epoch(ts, X, y, key_e, on_step=None) -> (ts, bad, stats)`` with per-step stats, the same steps on
    the same batches with the same keys as ``make_epoch``; ``on_step()`` is called after every step (progress).
    """
    body = make_step_body(apply, loss, metrics, mesh=mesh)

    @functools.partial(jax.jit, static_argnums=(1,))
    def indices(key_e, n):
        shuffle_key, step_key = jax.random.split(key_e)
        return batch_indices(shuffle_key, n, batch_size), step_key

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(ts, bad, i, X, y, idx, step_key):
        b = lax.dynamic_index_in_dim(idx, i, keepdims=False)
        return body(optimizer, l2, ts, bad, i, _gather(X, b), _gather(y, b), jax.random.fold_in(step_key, i))

    def epoch(ts, X, y, key_e, on_step=None):
        idx, step_key = indices(key_e, X.shape[0])
        bad, stats = jnp.int32(-1), []
        for i in range(idx.shape[0]):
            (ts, bad), s = step(ts, bad, np.int32(i), X, y, idx, step_key)
            stats.append(s)
            if on_step is not None:
                on_step()
        return ts, bad, jax.tree.map(lambda *a: jnp.stack(a), *stats)

    return epoch


def epoch_means(stats, bad):
    """Per-epoch means of per-step stats over the steps before the first bad one (``nan`` if that is step 0).

    Args:
      stats: ``{name: (..., steps)}`` per-step values (a leading axis per model when batched).
      bad: the first non-finite step (``-1`` if none), a scalar or one per model.

    Returns:
      ``{name: float}`` for one model, ``{name: [float per model]}`` for a batch.
    """
    bad = np.asarray(bad)
    out = {}
    for k, v in stats.items():
        v = np.asarray(v).reshape((-1, np.shape(v)[-1]))
        means = [float(row[: len(row) if b < 0 else b].mean()) if b != 0 else float("nan")
                 for row, b in zip(v, bad.reshape(-1))]
        out[k] = means if bad.ndim else means[0]
    return out


def nonfinite_cause(stats, bad):
    """``"loss"`` when the first bad step's loss was not finite, else ``"gradient"`` (its loss was finite, its
    update was not); one per model for a batch, ``None`` where no step was bad."""
    loss = np.asarray(stats["loss"]).reshape((-1, np.shape(stats["loss"])[-1]))
    causes = [None if b < 0 else ("gradient" if np.isfinite(row[b]) else "loss")
              for row, b in zip(loss, np.asarray(bad).reshape(-1))]
    return causes if np.ndim(bad) else causes[0]


def make_epoch_runner(make_epoch_fn: Callable, *, batch_axes=None):
    """The one epoch runner: ``run(ts, X, y, key, e, *extra) -> (ts, bad, means)``, one model or a vmapped batch.

    ``make_epoch_fn(guard)`` returns ``epoch(ts, X, y, key_e, *extra) -> (ts, bad, stats)`` (``make_epoch``).
    ``run`` compiles ``epoch(ts, X, y, fold_in(key, e), *extra)`` together with the means of its stats (one
    transfer of a few scalars per epoch), unguarded. When some step's loss was not finite it replays the epoch from
    the starting state with the guarded epoch (the state is not donated, so it is still there) and averages the
    steps before the first bad one (``epoch_means``).

    Args:
      make_epoch_fn: ``guard -> epoch``.
      batch_axes: ``None`` for one model; for a batch of B models, the ``vmap`` axes of ``(key, *extra)``: ``0``
        for a per-model argument (a ``(B,)`` array of keys, per-model hyper-parameters), ``None`` for a shared one.
        The train state is always mapped over its leading axis and the data ``X, y`` are shared.

    Returns:
      ``run``; ``bad`` is an int (one model) or a ``(B,)`` array, ``means`` as ``epoch_means``, plus, after a
      non-finite step, ``means["nonfinite"]``: ``nonfinite_cause`` (whether the loss or the gradient went bad).
    """
    def build(guard):
        epoch = make_epoch_fn(guard)

        def one(ts, X, y, key, e, *extra):
            ts, bad, stats = epoch(ts, X, y, jax.random.fold_in(key, e), *extra)
            return ts, bad, (stats if guard else {k: jnp.mean(v) for k, v in stats.items()})

        if batch_axes is not None:
            key_axis, *extra_axes = batch_axes
            one = jax.vmap(one, in_axes=(0, None, None, key_axis, None, *extra_axes))
        return jax.jit(one)  # not donated: the starting state is kept for a replay

    fast, guarded = build(False), functools.cache(lambda: build(True))

    def run(ts, X, y, key, e, *extra):
        new, bad, means = fast(ts, X, y, key, e, *extra)
        bad, means = jax.device_get((bad, means))
        if np.any(bad >= 0):
            new, bad, stats = guarded()(ts, X, y, key, e, *extra)
            bad, stats = jax.device_get((bad, stats))
            means = dict(epoch_means(stats, bad), nonfinite=nonfinite_cause(stats, bad))
            return new, (bad if batch_axes is not None else int(bad)), means
        if batch_axes is None:
            return new, int(bad), {k: float(v) for k, v in means.items()}
        return new, bad, {k: [float(x) for x in np.asarray(v)] for k, v in means.items()}

    return run


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


def step_has_convolution(apply, loss, optimizer, ts, x, y, key, metrics=("accuracy",)) -> bool:
    """Whether one training step (traced, not compiled) contains a convolution."""
    body = make_step_body(apply, loss, metrics)
    jaxpr = jax.make_jaxpr(lambda t, a, b, k: body(optimizer, None, t, jnp.int32(-1), jnp.int32(0), a, b, k))(
        ts, x, y, key)
    return _has_convolution(jaxpr.jaxpr)


def choose_scan_unroll(apply, loss, optimizer, ts, x, y, key, *, metrics=("accuracy",)) -> int:
    """Steps per iteration of the scanned epoch: ``SCAN_UNROLL`` (4) for a step without convolutions, else 1.

    A small dense step is bound by the per-iteration cost of the compiled loop (on a GPU, kernel launches and the
    loop's own bookkeeping), which unrolling divides; a convolutional step is dominated by its arithmetic and would
    only compile longer. Measured in ``benchmarks/run.py`` (docs/benchmarks.md).
    """
    return 1 if step_has_convolution(apply, loss, optimizer, ts, x, y, key, metrics) else SCAN_UNROLL


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
    return epoch_mode_for(step_has_convolution(apply, loss, optimizer, ts, x, y, key, metrics), backend)


def epoch_mode_for(has_convolution: bool, backend: str) -> str:
    """The rule of ``choose_epoch_mode`` on its two inputs."""
    return "loop" if backend == "cpu" and has_convolution else "scan"
