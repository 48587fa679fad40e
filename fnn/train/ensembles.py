"""Ensembles: K models with independent initialisations trained in one compiled program, and their prediction.

    params = init_ensemble(model.init, keys, input_shape)          # K models, every leaf gets a leading axis K
    params, opt_state, history = fit_ensemble(model.apply, params, opt, loss, X, y, keys=keys, ...)
    probs = predict_ensemble(model.apply, params, X)                # mean of the K members' softmax outputs

Member ``k`` of ``fit_ensemble`` is exactly ``fit(apply, params[k], opt, loss, X, y, key=keys[k], ...)`` (same
initialisation from ``keys[k]``, same batch order ``fold_in(keys[k], e)``): ``fit_ensemble`` is ``fit_batch``
(``fnn/train/batched.py``), the ``fnn.train`` epoch engine ``vmap``-ed over the members.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn.metrics import get_metric
from fnn.train.batched import fit_batch, num_members
from fnn.train.evaluation import make_predict

__all__ = ["init_ensemble", "fit_ensemble", "predict_ensemble", "evaluate_ensemble"]


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


def fit_ensemble(apply, params, optimizer, loss, X, y, *, epochs: int, batch_size: int, keys, data_key=None,
                 state=None, validation=None, metrics: Sequence = ("accuracy",), l2: float | None = None,
                 eval_batch_size: int = 1024, verbose: bool = True, print_fn: Callable[[str], None] = print):
    """Train K models in one compiled program per epoch; member k equals ``fit(..., key=keys[k])``.

    ``fit_batch`` with one optimizer for all members: the ``fnn.train`` epoch ``epoch(ts, X, y, fold_in(key, e))``
    mapped with ``jax.vmap`` over the members' train states and keys (the data is shared, not copied K times).

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
    k = num_members(params, "fit_ensemble")
    if np.shape(keys)[:1] != (k,):
        raise ValueError(f"fit_ensemble: expected {k} keys (one per member, the params' leading axis), got keys of "
                         f"shape {np.shape(keys)}; pass jax.random.split(key, {k})")
    return fit_batch(apply, params, optimizer, loss, X, y, epochs=epochs, batch_size=batch_size,
                     keys=keys if data_key is None else data_key, state=state, validation=validation,
                     metrics=metrics, l2=l2, eval_batch_size=eval_batch_size, verbose=verbose, print_fn=print_fn,
                     name="fit_ensemble")


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
    predict_fn = make_predict(apply, batch_size)
    out = jax.jit(jax.vmap(predict_fn, in_axes=(0, 0 if state is not None else None, None)))(
        params, state, jnp.asarray(X))
    return jnp.mean(jax.nn.softmax(out, axis=-1) if average == "probs" else out, axis=0)


def evaluate_ensemble(apply, params, X, y, *, state=None, metric="accuracy", batch_size: int = 1024):
    """Each member's metric, the ensemble's (``predict_ensemble``) and the gain over the average member.

    Returns:
      ``{"members": [K floats], "mean_member": float, "ensemble": float, "gain": ensemble - mean_member}``.
    """
    _, fn = get_metric(metric)
    predict_fn = make_predict(apply, batch_size)
    out = jax.jit(jax.vmap(predict_fn, in_axes=(0, 0 if state is not None else None, None)))(
        params, state, jnp.asarray(X))
    y = jnp.asarray(y)
    members = [float(fn(o, y)) for o in out]
    ensemble = float(fn(jnp.mean(jax.nn.softmax(out, axis=-1), axis=0), y))
    return {"members": members, "mean_member": float(np.mean(members)), "ensemble": ensemble,
            "gain": ensemble - float(np.mean(members))}
