"""Parameter averages over the checkpoints of one run (the running average during training is the optimizer
transform ``fnn.optimizers.transforms.average_params``).
"""
from __future__ import annotations

import os
from typing import Sequence

import jax
import jax.numpy as jnp

from fnn.train.engine import TrainState
from fnn.train.loop import checkpoint_tree

__all__ = ["average_trees", "average_checkpoints"]


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
