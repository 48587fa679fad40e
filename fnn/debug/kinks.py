"""The kink recorder of the gradient checker: re-run ``f``'s jaxpr and record which side won every kink.

Every ``max``/``min``, comparison, ``abs``, ``sign``, ``clamp``, ``reduce_max``/``reduce_min`` and
``argmax``/``argmin`` on floating inputs whose result reaches the output other than through ``stop_gradient`` is a
kink site. :func:`instrument` returns ``f`` together with the record of which branch each site took; the checker
compares the records at ``x - h e_j`` and ``x + h e_j`` to see whether a finite difference straddled a kink.
Loops (``scan``, ``while``, ``cond``) are evaluated as a whole: kinks inside them are not seen.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

__all__ = ["instrument", "is_float"]

_COMPARISONS = {"gt", "ge", "lt", "le", "eq", "ne"}
_CALLS = {"jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr",
          "remat", "checkpoint", "custom_lin"}


def is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _record(name: str, invals, outvals, params, rec: list):
    """Append the boolean 'which side won' pattern of one kink-making primitive to ``rec``."""
    if not invals or not is_float(invals[0]):
        return
    if name in ("max", "min"):
        a, b = jnp.broadcast_arrays(*invals)
        rec.append(jnp.ravel(a > b))
    elif name in _COMPARISONS:
        rec.append(jnp.ravel(outvals[0]))
    elif name in ("abs", "sign"):
        rec.append(jnp.ravel(invals[0] > 0))
        rec.append(jnp.ravel(invals[0] < 0))
    elif name == "clamp":  # clamp(lo, x, hi)
        lo, x, hi = jnp.broadcast_arrays(*invals)
        rec.append(jnp.ravel(x < lo))
        rec.append(jnp.ravel(x > hi))
    elif name in ("reduce_max", "reduce_min", "argmax", "argmin"):
        axes = params.get("axes", ())
        x = invals[0]
        if name.startswith("reduce"):
            winner = outvals[0]
        else:
            winner = (jnp.max if name == "argmax" else jnp.min)(x, axis=tuple(axes))
        rec.append(jnp.ravel(x == jnp.expand_dims(winner, tuple(axes))))


def _live(jaxpr, live_out) -> set:
    """Variables through which the live outputs depend on the inputs, not counting paths cut by stop_gradient."""
    live = {v for v, keep in zip(jaxpr.outvars, live_out) if keep and not isinstance(v, jcore.Literal)}
    for eqn in reversed(jaxpr.eqns):
        if eqn.primitive.name != "stop_gradient" and any(v in live for v in eqn.outvars):
            live.update(v for v in eqn.invars if not isinstance(v, jcore.Literal))
    return live


def _eval_recording(jaxpr, consts, args, rec: list, live_out=None):
    env = {}
    live = _live(jaxpr, [True] * len(jaxpr.outvars) if live_out is None else live_out)

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
        if name in _CALLS and sub is not None:
            closed = sub if isinstance(sub, jcore.ClosedJaxpr) else jcore.ClosedJaxpr(sub, ())
            if len(closed.jaxpr.invars) == len(invals):
                outvals = _eval_recording(closed.jaxpr, closed.consts, invals, rec,
                                          [v in live for v in eqn.outvars])
                for v, x in zip(eqn.outvars, outvals):
                    env[v] = x
                continue
        out = eqn.primitive.bind(*invals, **eqn.params)
        outvals = out if eqn.primitive.multiple_results else [out]
        if any(v in live for v in eqn.outvars):  # a kink only matters where it reaches the output
            _record(name, invals, outvals, eqn.params, rec)
        for v, x in zip(eqn.outvars, outvals):
            env[v] = x
    return [read(v) for v in jaxpr.outvars]


def instrument(f: Callable, example_params) -> Callable:
    """Wrap ``f`` so that it also returns its kink pattern: ``g(params) -> (f(params), pattern)``.

    ``pattern`` is a boolean vector with one entry per comparison outcome of every ``max``/``min``/``abs``/
    ``sign``/``clamp``/comparison/``reduce_max``/``argmax`` on floating values met while evaluating ``f`` (ReLU is
    ``max(x, 0)``). Two points whose patterns differ lie on different sides of a kink.

    Args:
      f: scalar function of a pytree of arrays (traceable by JAX).
      example_params: a pytree with the shapes and dtypes ``g`` will be called with.

    Returns:
      ``g``, a traceable function of the same pytree.
    """
    closed = jax.make_jaxpr(f)(example_params)
    treedef = jax.tree_util.tree_structure(example_params)

    def g(params):
        leaves = jax.tree_util.tree_leaves(params)
        if jax.tree_util.tree_structure(params) != treedef:
            raise ValueError(f"instrument: expected params with structure {treedef}, got "
                             f"{jax.tree_util.tree_structure(params)}")
        rec: list = []
        outs = _eval_recording(closed.jaxpr, closed.consts, leaves, rec)
        pattern = jnp.concatenate(rec) if rec else jnp.zeros((0,), bool)
        return outs[0], pattern

    return g
