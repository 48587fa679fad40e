"""Hyper-parameter sweeps in one compiled program per epoch: one model per setting, all ``vmap``-ed together.

``sweep`` trains one copy of one model per setting from the same initial params on the same batches, so the
differences come from the hyper-parameters alone; it is ``fit_batch`` (``fnn/train/batched.py``) with the params
broadcast and one shared key. For configurations x seeds (other initialisations and batch orders too) use
``cross_seeds`` with ``fit_batch``.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from fnn.train.batched import fit_batch

__all__ = ["grid", "sweep"]


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

    Setting ``k`` trains ``fit(apply, params, make_optimizer(**hp_k), loss, X, y, key=key, l2=hparams["l2"][k])``
    with ``hp_k = {name: hparams[name][k]}`` minus ``"l2"`` (the L2 strength of ``fnn.train.fit``: weights only,
    ``(l2 / 2) sum_w w^2``). Every setting starts from the same ``params`` and sees the same batches.

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
    if len(set(sizes.values())) != 1 or any(len(s) != 1 for s in sizes.values()):
        raise ValueError(f"sweep: expected every hyper-parameter to be a 1-D list of the same length, got shapes "
                         f"{sizes}; use grid(...) for all combinations")
    k = next(iter(sizes.values()))[0]
    stacked = jax.tree.map(lambda a: jnp.broadcast_to(a, (k,) + jnp.shape(a)), (params, state))
    return fit_batch(apply, stacked[0], make_optimizer, loss, X, y, epochs=epochs, batch_size=batch_size, keys=key,
                     hparams=hp, state=stacked[1], validation=validation, metrics=metrics,
                     eval_batch_size=eval_batch_size, verbose=verbose, print_fn=print_fn, name="sweep")
