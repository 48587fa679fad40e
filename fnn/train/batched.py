"""A batch of training runs in one compiled program per epoch: ``fit_batch``, the engine ``fit_ensemble`` and
``sweep`` stand on, and the entry point for configurations x seeds.

Run ``b`` of ``fit_batch`` is exactly ``fit(apply, params[b], optimizer_b, loss, X, y, key=keys[b], l2=l2_b)``: the
same epoch of ``fnn.train.engine`` (``make_epoch_runner``) is ``vmap``-ed over the runs' train states, keys and
hyper-parameters, sharing one copy of the data, with the same non-finite-loss rule (the epoch is replayed guarded,
each run keeps its parameters from before its own first bad step, the batch stops after that epoch).

    hp, run_keys = cross_seeds(grid(learning_rate=[0.01, 0.1]), jax.random.split(key, 3))   # 2 configs x 3 seeds
    params = init_ensemble(model.init, run_keys, (-1, 64))                                   # one init per run
    result = fit_batch(model.apply, params, make_optimizer, loss, X, y, keys=run_keys, hparams=hp, ...)
    np.reshape(result.history["loss"][-1], (2, 3))                                          # config x seed
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn.metrics import get_metric
from fnn.train.callbacks import History, format_epoch_line
from fnn.train.engine import TrainState, choose_scan_unroll, make_epoch, make_epoch_runner
from fnn.train.evaluation import check_data, check_model, make_predict
from fnn.train.loop import FitResult, non_finite_message

__all__ = ["fit_batch", "num_members", "cross_seeds"]


def num_members(tree, what):
    """The common leading (member) axis of every leaf of ``tree``; a clear error when there is none."""
    sizes = {np.shape(a)[0] if np.ndim(a) else None for a in jax.tree.leaves(tree)}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"{what}: expected every leaf to have the same leading (member) axis, got leading sizes "
                         f"{sorted(s for s in sizes if s is not None)}; build the params with init_ensemble")
    return sizes.pop()


def cross_seeds(hparams: dict, keys):
    """Every configuration with every seed: run ``b`` is configuration ``b // S`` with ``keys[b % S]``.

    Args:
      hparams: ``{name: (C,) values}`` (e.g. from ``grid``).
      keys: ``(S,)`` keys (``jax.random.split(key, S)``).

    Returns:
      ``(hparams, keys)`` with ``C * S`` entries each, configuration-major (reshape results to ``(C, S)``).

    Example:
      >>> import jax
      >>> hp, ks = cross_seeds({"learning_rate": [0.5, 0.25]}, jax.random.split(jax.random.key(0), 3))
      >>> hp["learning_rate"].tolist(), ks.shape
      ([0.5, 0.5, 0.5, 0.25, 0.25, 0.25], (6,))
    """
    hp = {n: jnp.asarray(v, jnp.float32) for n, v in hparams.items()}
    sizes = {np.shape(v) for v in hp.values()}
    if not hp or len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise ValueError(f"cross_seeds: expected hparams {{name: 1-D values}} of one length, got shapes "
                         f"{ {n: np.shape(v) for n, v in hp.items()} }; use grid(...) to build them")
    s = np.shape(keys)[0]
    return {n: jnp.repeat(v, s) for n, v in hp.items()}, jnp.tile(keys, next(iter(sizes))[0])


def _validation_evaluator(apply, loss, metrics, batch_size):
    metric_fns = [get_metric(m) for m in metrics]
    predict_fn = make_predict(apply, batch_size)

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


def _is_key_batch(keys, size, name):
    typed = jax.dtypes.issubdtype(jnp.asarray(keys).dtype, jax.dtypes.prng_key)
    shape = np.shape(keys) if typed else np.shape(keys)[:-1]
    if shape not in ((), (size,)):
        raise ValueError(f"{name}: expected {size} keys (one per member, the params' leading axis) or one shared "
                         f"key, got keys of shape {np.shape(keys)}; pass jax.random.split(key, {size})")
    return shape == (size,)


def fit_batch(apply, params, optimizer, loss, X, y, *, epochs: int, batch_size: int, keys, hparams: dict | None = None,
              state=None, validation=None, metrics: Sequence = ("accuracy",), l2: float | None = None,
              eval_batch_size: int = 1024, verbose: bool = True, print_fn: Callable[[str], None] = print,
              name: str = "fit_batch"):
    """Train B models (members, configurations, seeds) in one compiled program per epoch.

    Run ``b`` equals ``fit(apply, params[b], opt_b, loss, X, y, key=keys[b], l2=l2_b)`` with
    ``opt_b = optimizer`` or, given ``hparams``, ``opt_b = optimizer(**{n: hparams[n][b]})`` and
    ``l2_b = hparams["l2"][b]`` when that entry is there (else ``l2``).

    Args:
      apply, loss, X, y, epochs, batch_size, metrics, l2, eval_batch_size, verbose, print_fn: as ``fnn.train.fit``.
      params: stacked params, leading axis B (``init_ensemble``). state: stacked model state or ``None``.
      optimizer: an optimizer shared by all runs, or ``(**hp) -> optimizer`` with ``hparams`` (called with traced
        scalars: the optimizer must take numbers, not branch on them in Python).
      keys: ``(B,)`` keys (run b shuffles and drops out with ``keys[b]``) or one key shared by all runs (same
        batches for every run).
      hparams: ``{name: (B,) values}`` (``grid``, ``cross_seeds``), or ``None``.
      validation: ``(X_val, y_val)``; records then hold per-run ``val_loss``/``val_<metric>`` lists and
        ``val_ensemble_<metric>``, the metric of the runs' mean softmax output.
      name: the name errors and messages use.

    Returns:
      ``FitResult(params, opt_state, history)`` stacked over the B runs; history values are per-run lists.

    Example:
      >>> import jax, optax
      >>> from fnn import layers, losses
      >>> from fnn.data import load_digits
      >>> from fnn.train import grid, init_ensemble
      >>> X, y = load_digits()
      >>> model = layers.mlp([8, 10], layers.Tanh)
      >>> hp, run_keys = cross_seeds(grid(learning_rate=[0.05, 0.2]), jax.random.split(jax.random.key(0), 2))
      >>> params = init_ensemble(model.init, run_keys, (-1, 64))
      >>> result = fit_batch(model.apply, params, lambda learning_rate: optax.sgd(learning_rate),
      ...     losses.softmax_cross_entropy_with_integer_labels, X[:200], y[:200], epochs=2, batch_size=50,
      ...     keys=run_keys, hparams=hp, verbose=False)
      >>> len(result.history["loss"][-1])                        # 2 configurations x 2 seeds
      4
    """
    b = num_members(params, name)
    per_run_keys = _is_key_batch(keys, b, name)
    batch_size = check_data(X, y, batch_size, name)
    hp, lam = None, l2
    if hparams is not None:
        hp = {n: jnp.asarray(v, jnp.float32) for n, v in hparams.items()}
        if any(np.shape(v) != (b,) for v in hp.values()):
            raise ValueError(f"{name}: expected every hyper-parameter to be a 1-D list of {b} values (one per run), "
                             f"got shapes { {n: np.shape(v) for n, v in hp.items()} }; use grid(...) for all "
                             f"combinations")
        lam = hp.pop("l2", l2)
    member = jax.tree.map(lambda a: a[0], (params, state))
    check_model(apply, loss, metrics, *member, X, y, batch_size, name)
    if validation is not None:
        check_data(*validation, 1, f"{name} (validation)")
        validation = (jnp.asarray(validation[0]), jnp.asarray(validation[1]))
    X, y = jnp.asarray(X), jnp.asarray(y)
    first = optimizer if hp is None else optimizer(**{n: v[0] for n, v in hp.items()})
    opt_state = jax.vmap(optimizer.init)(params) if hp is None else jax.vmap(lambda h, p: optimizer(**h).init(p))(
        hp, params)
    ts = TrainState(params, opt_state, state)  # nothing is donated: the caller's params stay
    unroll = choose_scan_unroll(apply, loss, first, jax.tree.map(lambda a: a[0], ts), X[:batch_size],
                                y[:batch_size], jax.random.key(0), metrics=metrics)

    def make(guard):
        epoch = make_epoch(apply, loss, optimizer, batch_size, metrics=metrics, guard=guard, unroll=unroll)
        return lambda t, a, c, k, h, l2_value: epoch(t, a, c, k, hp=h, l2_value=l2_value)

    lam_axis = 0 if lam is not None and np.ndim(lam) == 1 else None
    run = make_epoch_runner(make, batch_axes=(0 if per_run_keys else None, 0, lam_axis))
    evaluator = _validation_evaluator(apply, loss, metrics, eval_batch_size)
    history, nb = History(), int(X.shape[0]) // batch_size
    for e in range(epochs):
        t0 = time.perf_counter()
        ts, bad, means = run(ts, X, y, keys, e, hp, lam)
        causes = means.pop("nonfinite", None) or ["loss"] * len(bad)
        record = {"epoch": e + 1, **means, "steps": [(e + 1) * nb if m < 0 else e * nb + int(m) for m in bad]}
        if validation is not None:
            record.update(evaluator(ts, *validation))
        record["time"] = time.perf_counter() - t0
        history.append(record)
        if verbose:
            mean = {k: float(np.mean(v)) if isinstance(v, list) else v for k, v in record.items()}
            print_fn(format_epoch_line(mean, epochs) + "  (member means)")
        if np.any(bad >= 0):
            m = int(np.flatnonzero(bad >= 0)[0])
            history.stop_reason = non_finite_message(e, int(bad[m]), nb, member=m, cause=causes[m] or "loss")
            if verbose:
                print_fn(f"{name}: {history.stop_reason}")
            break
    return FitResult(ts.params, ts.opt_state, history)
