"""Reduce the step size on a plateau: a transform that scales updates by a running ``scale``, cut by ``factor`` when
the monitored value (a validation loss, the training loss) has stopped improving.

Unlike the other transforms it needs a number besides the gradients, passed by name as optax's extra argument:
``update(updates, state, params, value=loss)``. It is therefore an ``optax.GradientTransformationExtraArgs`` (the
same ``(init, update)`` pair as ``fnn.optimizers.Optimizer``), so ``fnn.optimizers.chain`` and ``optax.chain``
forward ``value=`` to it and to no other member. Place it *after* the rule: it scales the rule's steps.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fnn import checks
from fnn.optimizers.base import expect_state, step_count

__all__ = ["reduce_on_plateau", "PlateauState"]


class PlateauState(NamedTuple):
    count: jax.Array  # int32 scalar, number of updates done so far
    scale: jax.Array  # float32 scalar s, multiplies every update; starts at 1
    best: jax.Array  # float32 scalar, best (lowest) value seen so far; starts at +inf
    plateau_count: jax.Array  # int32 scalar, consecutive calls without improvement (outside cooldowns)
    cooldown_count: jax.Array  # int32 scalar, calls left in the cooldown after the last cut


def reduce_on_plateau(factor: float = 0.1, patience: int = 10, threshold: float = 1e-4, cooldown: int = 0,
                      min_scale: float = 0.0):
    """Scale updates by ``s``; ``s = max(factor * s, min_scale)`` after ``patience`` calls without improvement.

    Each call gets the monitored value ``v`` (lower is better). With ``best`` the lowest value so far (``+inf`` at
    first), ``v`` *improves* when ``v < (1 - threshold) * best`` (a relative threshold: meant for non-negative
    values such as losses), and then ``best = v``. Outside a cooldown the plateau counter ``p`` becomes 0 on an
    improvement and ``p + 1`` otherwise; when ``p`` reaches ``patience`` the scale is cut,
    ``s = max(factor * s, min_scale)``, ``p = 0`` and a cooldown of ``cooldown`` calls starts, during which ``p``
    stays 0 (``best`` still follows improvements). The update of this call is already scaled by the new ``s``:
    ``u = s * g``. Same rule as ``optax.contrib.reduce_on_plateau(factor, patience, rtol=threshold, atol=0,
    cooldown, accumulation_size=1, min_scale)`` (tests/test_lr_finder.py checks every step). Departure from
    PyTorch's ``ReduceLROnPlateau``: there the rate is cut on the ``(patience + 1)``-th bad call, here (as in optax)
    on the ``patience``-th, so torch's ``patience=p`` is ``patience=p + 1`` here.

    Feed it a value that moves slowly: a validation loss once per epoch, or a smoothed training loss. The raw loss
    of one mini-batch is noisy, so ``best`` is a lucky batch and the scale falls too soon.

    Args:
      factor: the cut, in (0, 1).
      patience: calls without improvement before a cut, an integer >= 1.
      threshold: relative improvement needed, in [0, 1).
      cooldown: calls after a cut during which no plateau is counted, an integer >= 0.
      min_scale: floor of the scale, >= 0.

    Returns:
      An ``optax.GradientTransformationExtraArgs``: ``init(params) -> PlateauState``; ``update(updates, state,
      params=None, *, value) -> (updates * s, state)``, updates of the shapes and dtypes given.

    Raises:
      ValueError: a hyper-parameter out of range, or ``update`` called without ``value=``.

    Example:
      >>> from fnn.optimizers import chain, sgd
      >>> opt = chain(sgd(0.1), reduce_on_plateau(factor=0.5, patience=1))
      >>> s = opt.init(jnp.zeros(2))
      >>> for loss in [3.0, 2.0, 2.5]:   # the third value does not improve on 2.0: the scale halves
      ...     u, s = opt.update(jnp.ones(2), s, value=loss)
      >>> u.tolist(), float(s[1].scale)
      ([-0.05000000074505806, -0.05000000074505806], 0.5)

    Reference: PyTorch ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (the rule's usual form); optax
    ``optax.contrib.reduce_on_plateau`` (the protocol and the patience convention followed here).
    """
    name = "reduce_on_plateau"
    checks.in_range(name, 0, 1, fix="a cut such as factor=0.1 or 0.5 (1 would never change the scale).",
                    factor=factor)
    checks.positive(name, factor=factor)
    checks.positive_int(name, fix="e.g. patience=10 (calls without improvement before a cut).", patience=patience)
    checks.in_range(name, 0, 1, fix="e.g. threshold=1e-4 (a relative improvement).", threshold=threshold)
    checks.non_negative_int(name, cooldown=cooldown)
    checks.non_negative(name, fix="pass 0 (no floor) or e.g. 1e-3.", min_scale=min_scale)

    def init(params):
        zero = jnp.zeros([], jnp.int32)
        return PlateauState(count=zero, scale=jnp.ones([], jnp.float32), best=jnp.full([], jnp.inf, jnp.float32),
                            plateau_count=zero, cooldown_count=zero)

    def update(updates, state, params=None, *, value=None, **extra):
        expect_state(name, state, PlateauState)
        if value is None:
            raise ValueError(f"{name}: update needs the monitored value; call update(updates, state, params, "
                             f"value=loss) (inside fnn.optimizers.chain or optax.chain, pass value= to the chain)")
        v = jnp.asarray(value, jnp.float32)
        if v.shape != ():
            raise ValueError(f"{name}: value must be a scalar (one loss), got shape {v.shape}; pass e.g. the mean "
                             f"loss of the epoch")
        improved = v < (1 - threshold) * state.best
        best = jnp.where(improved, v, state.best)
        cooling = state.cooldown_count > 0
        p = jnp.where(cooling | improved, 0, state.plateau_count + 1)
        cut = p >= patience
        scale = jnp.where(cut, jnp.maximum(state.scale * factor, min_scale), state.scale).astype(jnp.float32)
        cooldown_count = jnp.where(cut, cooldown, jnp.where(cooling, state.cooldown_count - 1, 0))
        new = PlateauState(count=step_count(state.count), scale=scale, best=best,
                           plateau_count=jnp.where(cut, 0, p).astype(jnp.int32),
                           cooldown_count=cooldown_count.astype(jnp.int32))
        return jax.tree.map(lambda u: (scale * u).astype(u.dtype), updates), new

    return optax.GradientTransformationExtraArgs(init, update)
