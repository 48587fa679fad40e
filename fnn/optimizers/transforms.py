"""Gradient transforms to chain with the rules: clipping, weight decay, gradient noise, parameter averaging, a guard.

Each is an ``Optimizer(init, update)`` (contract in ``fnn/optimizers/base.py``) that maps gradients to modified
gradients, so it composes with ``fnn.optimizers.chain`` or ``optax.chain``: transforms that change the
gradient go *before* the rule (``chain(clip_by_global_norm(1.0), adam(1e-3))``), ``average_params`` goes *last*
(it needs the final updates), and ``guard`` wraps the whole chain.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn import checks, losses
from fnn.optimizers.base import Optimizer, check_tree, lift, step_count

__all__ = ["global_norm", "clip_by_global_norm", "clip_by_value", "weight_decay", "gradient_noise",
           "average_params", "guard", "EmptyState", "NoiseState", "AverageState", "GuardState"]


class EmptyState(NamedTuple):
    """State of a stateless transform."""


def global_norm(tree) -> jax.Array:
    """``||g|| = sqrt(sum over leaves of sum(g_leaf^2))``."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def clip_by_global_norm(max_norm: float) -> Optimizer:
    """Rescale the whole gradient when its norm is too large: ``g = g * min(1, max_norm / ||g||)``.

    ``||g||`` is the norm of all leaves together, so the direction is kept. optax: ``clip_by_global_norm``.

    Args:
      max_norm: > 0.

    Returns:
      A stateless Optimizer; updates have the shapes of the gradients.

    Example:
      >>> opt = clip_by_global_norm(1.0)

    Reference: Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks",
    ICML 2013, Algorithm 1.
    """
    checks.positive("clip_by_global_norm", max_norm=max_norm)

    def update(grads, state, params=None):
        norm = global_norm(grads)
        u, _ = lift("clip_by_global_norm", lambda g, *, norm: jnp.where(norm < max_norm, g, g / norm * max_norm),
                    grads, (), {"norm": norm})
        return u, state

    return Optimizer(lambda params: EmptyState(), update)


def clip_by_value(limit: float) -> Optimizer:
    """Clip every gradient entry to ``[-limit, limit]``: ``g = clip(g, -limit, limit)``. optax: ``optax.clip``.

    Args:
      limit: > 0.

    Returns:
      A stateless Optimizer.

    Example:
      >>> opt = clip_by_value(5.0)
    """
    checks.positive("clip_by_value", limit=limit)

    def update(grads, state, params=None):
        u, _ = lift("clip_by_value", lambda g, *, limit: jnp.clip(g, -limit, limit), grads, (), {"limit": limit})
        return u, state

    return Optimizer(lambda params: EmptyState(), update)


def weight_decay(rate: float, mask: Callable | Any | None = None) -> Optimizer:
    """L2 weight decay added to the gradient: ``g = g + rate * x`` where ``mask`` is True, ``g`` elsewhere.

    Placed before a rule it is the gradient of ``losses.l2_penalty(params, rate)`` (coupled, as in "Adam + L2"),
    with the same default mask; placed after a direction it is decoupled decay (``adamw`` is
    ``chain(scale_by_adam(), weight_decay(wd), sgd(lr))``). The mask is fnn's one weight-decay mask
    (:func:`fnn.losses.resolve_mask`): by default the weights only, not biases nor BatchNorm/LayerNorm
    ``gamma``/``beta``. optax: ``optax.add_decayed_weights(rate, mask=fnn.losses.weight_mask)``; optax's own
    default (``mask=None``) decays every leaf, which is ``mask=True`` here.

    Args:
      rate: >= 0.
      mask: None (weights only, :func:`fnn.losses.weight_mask`), True (every leaf), a pytree of bools like
        params, or a callable ``params -> pytree of bools``.

    Returns:
      A stateless Optimizer; ``update`` needs ``params``.

    Example:
      >>> opt = weight_decay(1e-4)

    Reference: Krogh & Hertz, "A simple weight decay can improve generalization", NIPS 1991.
    """
    checks.non_negative("weight_decay", rate=rate)

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("weight_decay: update needs params; call update(grads, state, params).")
        check_tree("weight_decay", grads, params, "params")
        where = losses.resolve_mask(params, mask, "weight_decay")
        u, _ = lift("weight_decay", lambda g, x, on, *, rate: g + rate * x if on else g, grads, (params, where),
                    {"rate": rate}, what="params")
        return u, state

    return Optimizer(lambda params: EmptyState(), update)


class NoiseState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter t
    key: jax.Array  # PRNG key, split at every step


def gradient_noise(key: jax.Array, eta: float = 0.01, gamma: float = 0.55) -> Optimizer:
    """Annealed Gaussian gradient noise: ``g = g + N(0, sigma_t^2)``, ``sigma_t^2 = eta / (1 + t)^gamma``.

    ``t`` is the step counter (0 at the first update); each step splits the key in the state, so the same key
    gives the same noise. optax's ``add_noise`` is the same rule with a different random stream.

    Args:
      key: a ``jax.random`` key.
      eta: noise variance at step 0 (> 0); the paper uses 0.01, 0.3 or 1.
      gamma: annealing exponent (> 0), 0.55 in the paper.

    Returns:
      An Optimizer with state ``NoiseState(count, key)``.

    Example:
      >>> opt = gradient_noise(jax.random.key(0), eta=0.01)

    Reference: Neelakantan et al., "Adding gradient noise improves learning for very deep networks", 2015, eq. (1).
    """
    checks.positive("gradient_noise", eta=eta, gamma=gamma)

    def init(params):
        return NoiseState(count=jnp.zeros([], jnp.int32), key=key)

    def update(grads, state, params=None):
        key_next, sub = jax.random.split(state.key)
        leaves, treedef = jax.tree.flatten(grads)
        keys = jax.random.split(sub, max(len(leaves), 1))
        sigma = jnp.sqrt(eta / (1.0 + state.count) ** gamma)
        noisy = [g + (sigma * jax.random.normal(k, jnp.shape(g))).astype(g.dtype) for g, k in zip(leaves, keys)]
        return treedef.unflatten(noisy), NoiseState(count=step_count(state.count), key=key_next)

    return Optimizer(init, update)


class AverageState(NamedTuple):
    count: jax.Array  # int32 scalar, number of iterates averaged so far
    average: Any  # the averaged parameters x_test (params tree)


def average_params(decay: float | None = None) -> Optimizer:
    """Average of the parameter iterates, kept in the state for evaluation: updates pass through unchanged.

    With ``x = params + u`` the parameters after this step (so place this transform *last* in the chain):
    ``decay=None`` is Polyak averaging ``x_test = x_test + (x - x_test) / t`` (the mean of ``x_1..x_t``);
    a float is the exponential moving average ``x_test = decay * x_test + (1 - decay) * x``
    (e.g. ``decay=0.995``: ``x_test = 0.995 x_test + 0.005 x``). ``x_test`` starts at the initial params.
    Read it as ``state.average`` (``state[-1].average`` inside a chain).

    Args:
      decay: None (Polyak) or a float in [0, 1).

    Returns:
      An Optimizer with state ``AverageState(count, average)``; ``update`` needs ``params``.

    Example:
      >>> opt = average_params(0.995)

    Reference: Polyak & Juditsky, "Acceleration of stochastic approximation by averaging", SIAM J. Control
    Optim. 1992; CS231n notes, "Model ensembles" (running average of parameters).
    """
    if decay is not None:
        checks.unit_interval("average_params", fix="pass None (Polyak) or e.g. decay=0.995.", decay=decay)

    def init(params):
        return AverageState(count=jnp.zeros([], jnp.int32), average=jax.tree.map(jnp.asarray, params))

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("average_params: update needs params; call update(grads, state, params).")
        t = step_count(state.count)
        w = (1 - decay) if decay is not None else 1.0 / t.astype(jnp.result_type(float))

        def leaf(u, x, avg, *, w):
            return u, (avg + w * (x + u - avg)).astype(avg.dtype)

        u, (avg,) = lift("average_params", leaf, grads, (params, state.average), {"w": w}, what="params")
        return u, AverageState(count=t, average=avg)

    return Optimizer(init, update)


class GuardState(NamedTuple):
    inner: Any  # state of the wrapped optimizer, unchanged by a skipped step
    skipped: jax.Array  # int32 scalar, total number of skipped steps
    consecutive: jax.Array  # int32 scalar, skipped steps since the last finite one


def guard(inner: Optimizer) -> Optimizer:
    """Skip any update whose gradients are not all finite: ``u = 0`` and the inner state is kept.

    If every entry of ``grads`` is finite the wrapped optimizer runs as usual; otherwise the updates are zeros
    (the parameters do not move, so a NaN/inf gradient never reaches them) and the inner state is left as it
    was. The counters say how often this happened. optax's ``apply_if_finite(inner, n)`` is the same rule but
    gives up after ``n`` consecutive bad steps and then applies them; ``guard`` never does.

    Args:
      inner: the optimizer (or chain) to protect.

    Returns:
      An Optimizer with state ``GuardState(inner, skipped, consecutive)``.

    Example:
      >>> from fnn.optimizers import adam
      >>> opt = guard(adam(1e-3))
    """

    def init(params):
        zero = jnp.zeros([], jnp.int32)
        return GuardState(inner=inner.init(params), skipped=zero, consecutive=zero)

    def update(grads, state, params=None):
        if params is not None:
            check_tree("guard", grads, params, "params")
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        safe = jax.tree.map(lambda g: jnp.where(finite, g, jnp.zeros_like(g)), grads)
        u, new_inner = inner.update(safe, state.inner, params)
        u = jax.tree.map(lambda x: jnp.where(finite, x, jnp.zeros_like(x)), u)
        new_inner = jax.lax.cond(finite, lambda: new_inner, lambda: state.inner)  # works for PRNG keys too
        return u, GuardState(inner=new_inner, skipped=state.skipped + (~finite).astype(jnp.int32),
                             consecutive=jnp.where(finite, 0, state.consecutive + 1))

    return Optimizer(init, update)
