"""Many models in one compiled program with ``vmap``: ensembles, hyper-parameter sweeps, and parameter averages.

    params = init_ensemble(model.init, keys, input_shape)          # K models, every leaf gets a leading axis K
    params, opt_state, history = fit_ensemble(model.apply, params, opt, loss, X, y, keys=keys, ...)
    probs = predict_ensemble(model.apply, params, X)                # mean of the K members' softmax outputs

Member ``k`` of ``fit_ensemble`` is exactly ``fit(apply, params[k], opt, loss, X, y, key=keys[k], ...)`` (same
initialisation from ``keys[k]``, same batch order ``fold_in(keys[k], e)``): the ``fnn.train`` epoch is ``vmap``-ed
over the members, so all K train in one program per epoch sharing one copy of the data. ``sweep`` instead vmaps over
hyper-parameters (learning rate, momentum, L2 strength, ...): one model per setting, same initial params, same
batches. ``average_checkpoints`` and ``with_ema``/``ema_params`` give the two classic parameter averages: over the
checkpoints of one run, and the exponential moving average kept during training.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn.train.callbacks import History, copy_tree, format_epoch_line
from fnn.data import validate_xy
from fnn.metrics import get_metric
from fnn.optimizers import Optimizer
from fnn.train.loop import FitResult, TrainState, _check_model, _make_predict, choose_scan_unroll, make_epoch

__all__ = ["init_ensemble", "fit_ensemble", "predict_ensemble", "evaluate_ensemble", "grid", "sweep",
           "average_trees", "average_checkpoints", "EmaState", "with_ema", "ema_params"]


def init_ensemble(init, keys, input_shape):
    """Initialise K models at once: leaf ``i`` of the result is ``stack([init(keys[k], input_shape)[1][i]])``.

    Args:
      init: a layer's ``init(key, input_shape) -> (output_shape, params)``.
      keys: ``(K,)`` array of keys (``jax.random.split(key, K)``).
      input_shape: as for ``init``.

    Returns:
      The stacked params: every leaf has a leading axis of size K.
    """
    return jax.vmap(lambda k: init(k, input_shape)[1])(keys)


def _num_members(tree, what):
    sizes = {np.shape(a)[0] if np.ndim(a) else None for a in jax.tree.leaves(tree)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"{what}: expected every leaf to have the same leading (member) axis, got leading sizes "
                         f"{sorted(s for s in sizes if s is not None)}; build the params with init_ensemble")
    return sizes.pop()


def _unroll(apply, loss, optimizer, ts, X, y, batch_size, metrics):
    """``fnn.train.choose_scan_unroll`` for one member (the members share the step)."""
    member = jax.tree.map(lambda a: a[0], ts)
    return choose_scan_unroll(apply, loss, optimizer, member, X[:batch_size], y[:batch_size], jax.random.key(0),
                              metrics=metrics)


def _vmapped_run(make, in_axes, ts, X, y, *, epochs, key_fn, extra, evaluator, validation, verbose, print_fn, nb):
    """Drive a vmapped epoch ``make(guard)(ts, X, y, key_e, *extra)``; records hold per-member lists.

    The epochs run unguarded (no per-step ``jnp.where`` over every member's parameters); an epoch in which some
    member met a non-finite loss is replayed from its starting state (kept: the epoch is not donated) with the
    guarded step, so each such member keeps its parameters from before its first bad step and the others are
    unaffected.
    """
    run = jax.jit(jax.vmap(make(False), in_axes=in_axes))  # not donated: ``start`` is the state to replay from
    history = History()
    for e in range(epochs):
        t0 = time.perf_counter()
        start = ts
        ts, bad, stats = run(ts, X, y, key_fn(e), *extra)
        bad = np.asarray(bad)
        if np.any(bad >= 0):
            ts, bad, stats = jax.jit(jax.vmap(make(True), in_axes=in_axes))(start, X, y, key_fn(e), *extra)
            bad = np.asarray(bad)
        del start
        record = {"epoch": e + 1}
        for k, v in stats.items():
            v = np.asarray(v)
            record[k] = [float(v[m, : nb if bad[m] < 0 else bad[m]].mean()) if bad[m] != 0 else float("nan")
                         for m in range(v.shape[0])]
        if validation is not None:
            record.update(evaluator(ts, *validation))
        record["time"] = time.perf_counter() - t0
        history.append(record)
        if verbose:
            mean = {k: float(np.mean(v)) if isinstance(v, list) else v for k, v in record.items()}
            print_fn(format_epoch_line(mean, epochs) + "  (member means)")
        if np.any(bad >= 0):
            m = int(np.flatnonzero(bad >= 0)[0])
            history.stop_reason = (f"non-finite loss in member {m} at epoch {e + 1}, step {int(bad[m])}; that member "
                                   f"kept its parameters from before the step; stopped")
            if verbose:
                print_fn(history.stop_reason)
            break
    return ts, history


def _validation_evaluator(apply, loss, metrics, batch_size):
    metric_fns = [get_metric(m) for m in metrics]
    predict_fn = _make_predict(apply, batch_size)

    @jax.jit
    def outputs(ts, X):
        return jax.vmap(predict_fn, in_axes=(0, 0, None))(ts.params, ts.state, X)

    def evaluator(ts, X, y):
        out = outputs(ts, X)
        rec = {"val_loss": [float(loss(o, y)) for o in out]}
        for name, fn in metric_fns:
            rec[f"val_{name}"] = [float(fn(o, y)) for o in out]
            rec[f"val_ensemble_{name}"] = float(fn(jnp.mean(jax.nn.softmax(out, axis=-1), axis=0), y))
        return rec

    return evaluator


def _prepare(apply, params, state, loss, X, y, batch_size, metrics, validation, name):
    validate_xy(X, y, name=name)
    n = int(X.shape[0])
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= n:
        raise ValueError(f"{name}: batch_size must be an integer in [1, {n}] (the number of training examples), "
                         f"got {batch_size!r}")
    one = jax.tree.map(lambda a: a[0], params)
    one_state = None if state is None else jax.tree.map(lambda a: a[0], state)
    metric_fns = [get_metric(m) for m in metrics]
    _check_model(apply, loss, metric_fns, one, one_state, X, y, int(batch_size), name)
    if validation is not None:
        validate_xy(*validation, name=f"{name} (validation)")
        validation = (jnp.asarray(validation[0]), jnp.asarray(validation[1]))
    return jnp.asarray(X), jnp.asarray(y), n // int(batch_size), validation


def fit_ensemble(apply, params, optimizer, loss, X, y, *, epochs: int, batch_size: int, keys, data_key=None,
                 state=None,
                 validation=None, metrics: Sequence = ("accuracy",), l2: float | None = None,
                 eval_batch_size: int = 1024, verbose: bool = True, print_fn: Callable[[str], None] = print):
    """Train K models in one compiled program per epoch; member k equals ``fit(..., key=keys[k])``.

    The ``fnn.train`` epoch ``epoch(ts, X, y, fold_in(key, e))`` is mapped with ``jax.vmap`` over the members'
    train states and keys (the data is shared, not copied K times).

    Args:
      apply, optimizer, loss, X, y, epochs, batch_size, metrics, l2, eval_batch_size, verbose, print_fn: as
        ``fnn.train.fit``.
      params: stacked params (``init_ensemble``), leading axis K. state: stacked model state or ``None``.
      keys: ``(K,)`` keys; member k shuffles (and drops out) with ``keys[k]`` exactly as ``fit(key=keys[k])``.
      data_key: if given, every member shuffles (and drops out) with this one key instead, so member k equals
        ``fit(params[k], key=data_key)``: the members then see the same batches, differ only by their
        initialisation, and the batched first layer becomes one wide matrix product (several times faster on the
        CPU; see docs/training.md).
      validation: ``(X_val, y_val)``; the records then hold per-member ``val_loss``/``val_<metric>`` lists and
        ``val_ensemble_<metric>``, the metric of the mean softmax output of the members.

    Returns:
      ``FitResult(params, opt_state, history)`` with stacked params/opt_state; history values are per-member lists.

    Reference: Dietterich, "Ensemble Methods in Machine Learning", MCS 2000 (independent initialisations).
    """
    k = _num_members(params, "fit_ensemble")
    if np.shape(keys)[:1] != (k,):
        raise ValueError(f"fit_ensemble: expected {k} keys (one per member, the params' leading axis), got keys of "
                         f"shape {np.shape(keys)}; pass jax.random.split(key, {k})")
    X, y, nb, validation = _prepare(apply, params, state, loss, X, y, batch_size, metrics, validation,
                                    "fit_ensemble")
    ts = TrainState(params, jax.vmap(optimizer.init)(params), state)  # nothing is donated: the caller's params stay
    unroll = _unroll(apply, loss, optimizer, ts, X, y, batch_size, metrics)

    def make(guard):
        return make_epoch(apply, loss, optimizer, int(batch_size), metrics=metrics, l2=l2, guard=guard, unroll=unroll)

    evaluator = _validation_evaluator(apply, loss, metrics, eval_batch_size)
    if data_key is None:
        fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))
        in_axes, key_fn = (0, None, None, 0), lambda e: fold(keys, e)
    else:
        in_axes, key_fn = (0, None, None, None), lambda e: jax.random.fold_in(data_key, e)
    ts, history = _vmapped_run(make, in_axes, ts, X, y, epochs=epochs, key_fn=key_fn,
                               extra=(), evaluator=evaluator, validation=validation, verbose=verbose,
                               print_fn=print_fn, nb=nb)
    return FitResult(ts.params, ts.opt_state, history)


def predict_ensemble(apply, params, X, *, state=None, batch_size: int = 1024, average: str = "probs"):
    """The ensemble's prediction: the mean over members of ``softmax(apply(params[k], X))`` (or of the raw outputs).

    ``p(x) = 1/K sum_k softmax(f_k(x))`` for ``average="probs"``; ``1/K sum_k f_k(x)`` for ``average="outputs"``.

    Args:
      apply: the model's apply. params: stacked params (leading axis K). state: stacked state or ``None``.
      X: ``(n, ...)`` inputs. batch_size: examples per compiled batch.
      average: ``"probs"`` (classification) or ``"outputs"`` (regression, or outputs that already are probabilities).

    Returns:
      ``(n, C)`` averaged probabilities / outputs.

    Reference: Lakshminarayanan, Pritzel & Blundell, "Simple and Scalable Predictive Uncertainty Estimation using
    Deep Ensembles", NeurIPS 2017, sec. 2.4 (uniformly weighted mixture).
    """
    if average not in ("probs", "outputs"):
        raise ValueError(f"predict_ensemble: average must be 'probs' or 'outputs', got {average!r}")
    predict_fn = _make_predict(apply, batch_size)
    out = jax.jit(jax.vmap(predict_fn, in_axes=(0, 0 if state is not None else None, None)))(
        params, state, jnp.asarray(X))
    return jnp.mean(jax.nn.softmax(out, axis=-1) if average == "probs" else out, axis=0)


def evaluate_ensemble(apply, params, X, y, *, state=None, metric="accuracy", batch_size: int = 1024):
    """Each member's metric, the ensemble's (``predict_ensemble``) and the gain over the average member.

    Returns:
      ``{"members": [K floats], "mean_member": float, "ensemble": float, "gain": ensemble - mean_member}``.
    """
    _, fn = get_metric(metric)
    predict_fn = _make_predict(apply, batch_size)
    out = jax.jit(jax.vmap(predict_fn, in_axes=(0, 0 if state is not None else None, None)))(
        params, state, jnp.asarray(X))
    y = jnp.asarray(y)
    members = [float(fn(o, y)) for o in out]
    ensemble = float(fn(jnp.mean(jax.nn.softmax(out, axis=-1), axis=0), y))
    return {"members": members, "mean_member": float(np.mean(members)), "ensemble": ensemble,
            "gain": ensemble - float(np.mean(members))}


def grid(**values):
    """All combinations of the given values, as one array per name (the input ``sweep`` takes).

    ``grid(learning_rate=[0.1, 0.01], momentum=[0.0, 0.9])`` gives 4 settings: ``{"learning_rate": [0.1, 0.1,
    0.01, 0.01], "momentum": [0.0, 0.9, 0.0, 0.9]}`` (as float32 arrays), the first name varying slowest.
    """
    if not values:
        raise ValueError("grid: expected at least one hyper-parameter, e.g. grid(learning_rate=[0.1, 0.01])")
    names = list(values)
    rows = list(itertools.product(*(list(values[n]) for n in names)))
    return {n: jnp.asarray([r[i] for r in rows], jnp.float32) for i, n in enumerate(names)}


def sweep(apply, params, make_optimizer, loss, X, y, *, hparams: dict, epochs: int, batch_size: int, key,
          state=None, validation=None, metrics: Sequence = ("accuracy",), eval_batch_size: int = 1024,
          verbose: bool = True, print_fn: Callable[[str], None] = print):
    """Train one model per hyper-parameter setting, all in one compiled program per epoch (``vmap``).

    Setting ``k`` trains ``fit(apply, params, make_optimizer(**hp_k), loss_k, X, y, key=key)`` with
    ``hp_k = {name: hparams[name][k]}`` minus ``"l2"``, and ``loss_k = loss + (hparams["l2"][k] / 2) sum(params**2)``
    when ``"l2"`` is given. Every setting starts from the same ``params`` and sees the same batches, so the
    differences come from the hyper-parameters alone.

    Args:
      apply, params, loss, X, y, epochs, batch_size, key, state, validation, metrics: as ``fnn.train.fit``
        (``params``/``state`` are one model's, shared by all settings).
      make_optimizer: ``(**hp) -> optimizer``, e.g. ``lambda learning_rate, momentum: optax.sgd(learning_rate,
        momentum)``; it is called with traced scalars, so the optimizer must take numbers (not Python branches on
        them).
      hparams: ``{name: (K,) values}`` (equal lengths; ``grid`` builds a Cartesian product).

    Returns:
      ``FitResult(params, opt_state, history)`` stacked over the K settings; history values are per-setting lists.

    Reference: Bergstra & Bengio, "Random Search for Hyper-Parameter Optimization", JMLR 13, 2012 (grid vs random).
    """
    if not hparams:
        raise ValueError("sweep: expected hparams={name: values}, got none")
    hp = {n: jnp.asarray(v, jnp.float32) for n, v in hparams.items()}
    sizes = {n: v.shape for n, v in hp.items()}
    if len({s for s in sizes.values()}) != 1 or any(len(s) != 1 for s in sizes.values()):
        raise ValueError(f"sweep: expected every hyper-parameter to be a 1-D list of the same length, got shapes "
                         f"{sizes}; use grid(...) for all combinations")
    k = next(iter(sizes.values()))[0]
    l2 = hp.pop("l2", None)
    stacked = jax.tree.map(lambda a: jnp.broadcast_to(a, (k,) + jnp.shape(a)), params)
    stacked_state = None if state is None else jax.tree.map(lambda a: jnp.broadcast_to(a, (k,) + jnp.shape(a)), state)
    X, y, nb, validation = _prepare(apply, stacked, stacked_state, loss, X, y, batch_size, metrics, validation, "sweep")
    opt_state = jax.vmap(lambda h, p: make_optimizer(**h).init(p))(hp, stacked)
    ts = TrainState(stacked, opt_state, stacked_state)
    unroll = _unroll(apply, loss, make_optimizer(**{n: v[0] for n, v in hp.items()}), ts, X, y, batch_size, metrics)

    def make(guard):
        epoch = make_epoch(apply, loss, make_optimizer, int(batch_size), metrics=metrics, guard=guard, unroll=unroll)
        if l2 is not None:
            return lambda t, a, b, ke, h, lam: epoch(t, a, b, ke, hp=h, l2_value=lam)
        return lambda t, a, b, ke, h: epoch(t, a, b, ke, hp=h)

    extra = (hp, l2) if l2 is not None else (hp,)
    in_axes = (0, None, None, None) + (0,) * len(extra)
    evaluator = _validation_evaluator(apply, loss, metrics, eval_batch_size)
    ts, history = _vmapped_run(make, in_axes, ts, X, y, epochs=epochs, key_fn=lambda e: jax.random.fold_in(key, e),
                               extra=extra, evaluator=evaluator, validation=validation, verbose=verbose,
                               print_fn=print_fn, nb=nb)
    return FitResult(ts.params, ts.opt_state, history)


def average_trees(trees: Sequence):
    """The leaf-wise mean ``1/m sum_j tree_j`` of m trees of one structure (accumulated in float32 or wider)."""
    trees = list(trees)
    if not trees:
        raise ValueError("average_trees: expected at least one tree, got none")
    return jax.tree.map(lambda *a: (sum(jnp.asarray(x, jnp.promote_types(x.dtype, jnp.float32)) for x in a)
                                    / len(a)).astype(a[0].dtype), *trees)


def average_checkpoints(directory, params, optimizer=None, *, state=None, steps: Sequence[int] | None = None):
    """Average the parameters of several checkpoints of one run (e.g. the last few epochs).

    ``theta_avg = 1/m sum_j theta_{s_j}`` over the checkpoints of ``steps`` (default: all kept in ``directory``).

    Args:
      directory: a checkpoint directory.
      params: a params tree of the model (its structure, shapes and dtypes are used, not its values).
      optimizer: for checkpoints written by ``fit(checkpoint_dir=...)``: the run's optimizer (its state is part of
        the saved tree); leave ``None`` when the checkpoints hold the params tree alone (``checkpoint.save(dir, step,
        params)``).
      state: the model state template for stateful models trained with ``fit``.
      steps: which checkpoint steps to average.

    Returns:
      The averaged params.

    Reference: Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization", UAI 2018.
    """
    from fnn.train import checkpoint
    from fnn.train.loop import checkpoint_tree
    steps = checkpoint.all_steps(directory) if steps is None else list(steps)
    if not steps:
        raise ValueError(f"average_checkpoints: no checkpoints in {os.fspath(directory)!r}; train with "
                         f"checkpoint_dir= first")
    if optimizer is None:
        trees = [checkpoint.restore(directory, params, step=s) for s in steps]
    else:
        target = checkpoint_tree(TrainState(params, optimizer.init(params), state), 0, jax.random.key(0))
        trees = [checkpoint.restore(directory, target, step=s)["train_state"].params for s in steps]
    return average_trees(trees)


class EmaState(NamedTuple):
    """State of ``with_ema``: the wrapped optimizer's state and the moving average of the parameters."""
    inner: Any  # the wrapped optimizer's state
    ema: Any    # exponential moving average of the parameters, same tree as params


def with_ema(optimizer, decay: float = 0.999) -> Optimizer:
    """Wrap an optimizer so its state also tracks the parameters' exponential moving average.

    After every update ``ema <- decay * ema + (1 - decay) * (params + updates)``, starting from ``ema = params``;
    the updates themselves are the wrapped optimizer's, unchanged. Read the average with ``ema_params``.

    Args:
      optimizer: any optax-protocol optimizer.
      decay: ``0 <= decay < 1``; the average spans about ``1 / (1 - decay)`` steps.

    Returns:
      An ``Optimizer`` whose state is ``EmaState(inner, ema)``.

    Reference: Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control Optim.
    30(4), 1992 (iterate averaging); exponential form as in optax ``ema``.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"with_ema: decay must lie in [0, 1), got {decay!r}")

    def init(params):
        return EmaState(optimizer.init(params), copy_tree(params))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("with_ema: update needs params (the average tracks params + updates); pass "
                             "update(grads, state, params)")
        updates, inner = optimizer.update(grads, state.inner, params)
        ema = jax.tree.map(lambda m, p, u: (decay * m + (1 - decay) * (p + u)).astype(m.dtype),
                           state.ema, params, updates)
        return updates, EmaState(inner, ema)

    return Optimizer(init, update)


def ema_params(opt_state):
    """The moving-average parameters kept by ``with_ema`` (search ``opt_state`` for the ``EmaState``)."""
    for node in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, EmaState)):
        if isinstance(node, EmaState):
            return node.ema
    raise ValueError("ema_params: no EmaState in this optimizer state; build the optimizer with "
                     "with_ema(optimizer, decay)")
