"""Hand-written optimizers in optax's protocol.

The contract (stated once, here):

    opt = rule(learning_rate, ...)            # an Optimizer(init, update)
    state = opt.init(params)                  # params: any pytree of float arrays
    updates, state = opt.update(grads, state, params)   # grads: same tree as params
    params = apply_updates(params, updates)   # updates are *added*: descent steps are negative

This is optax's ``GradientTransformation`` protocol, so an fnn rule can sit inside ``optax.chain`` and any
optax transform inside :func:`chain`. Every rule keeps its state in a NamedTuple with commented fields and a
step counter ``count`` (the first step is step 0, as in optax); every hyper-parameter accepts a number or a
schedule ``step -> value`` (see ``fnn.optimizers.schedules``), evaluated at ``count``, and may be a traced value or a
0-d array (a rule built inside ``jit``/``vmap``, or by ``optax.inject_hyperparams``): values are checked on the host
when concrete and let through when traced; only sizes (``lbfgs``' ``memory_size``) must be concrete. The per-leaf
math of each rule is written once, in the symbols of its docstring, and lifted over the pytree in one place
(:func:`lift`), which also rejects a gradient tree whose structure differs from the parameter/state tree, printing
both.

This module is the bottom of the package (it imports no other optimizer module). The rules live in
``first_order.py`` (sgd, momentum, nesterov, delta_bar_delta), ``adaptive.py`` (adagrad, rmsprop, adadelta, adam,
adamw, adamax, nadam), ``second_order.py`` (L-BFGS, BFGS, Newton), the transforms in ``transforms.py`` and the schedules
in ``schedules.py``; the package front ``fnn/optimizers/__init__.py`` re-exports them and holds the name registry
(:data:`RULES`, :func:`from_name`). Hyper-parameters are validated with :mod:`fnn.checks`.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["Optimizer", "apply_updates", "chain", "expect_state", "lift", "check_tree", "value_at", "step_count",
           "zeros_like", "static_flags", "Schedule", "ScalarOrSchedule"]

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | Schedule


class Optimizer(NamedTuple):
    """An optimizer: ``init(params) -> state``; ``update(grads, state, params=None) -> (updates, state)``."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


# ----------------------------------------------------------------------------------------- shared helpers
def apply_updates(params, updates):
    """Return ``params + updates`` leaf by leaf, keeping each parameter's dtype.

    Formula: ``x_new = x + u`` for every leaf.

    Args:
      params: pytree of arrays, any shapes.
      updates: pytree of the same structure and shapes (as returned by an ``update``).

    Returns:
      The new parameters, same structure, shapes and dtypes as ``params``.

    Example:
      >>> apply_updates({"w": jnp.ones(2)}, {"w": -0.5 * jnp.ones(2)})["w"].tolist()
      [0.5, 0.5]

    Reference: optax ``apply_updates`` (same contract).
    """
    check_tree("apply_updates", updates, params, "params")
    return jax.tree.map(lambda x, u: (x + u).astype(x.dtype), params, updates)


def check_tree(name: str, grads, other, what: str) -> None:
    """Raise a ValueError if ``grads`` and ``other`` are different pytrees (both structures are printed) or if a
    gradient leaf's shape differs from the matching array leaf's (the leaf's path and both shapes are named).

    Shapes are checked, not only structures, because a broadcastable gradient would otherwise be broadcast: a
    (4, 3, 2) gradient for a (3, 2) weight would silently turn the weight into a (4, 3, 2) array.

    Example:
      >>> check_tree("sgd", {"W": jnp.ones((4, 3, 2))}, {"W": jnp.ones((3, 2))}, "params")
      Traceback (most recent call last):
      ...
      ValueError: sgd: the gradient of ['W'] has shape (4, 3, 2) but its params leaf has shape (3, 2); ...
    """
    g_def, o_def = jax.tree.structure(grads), jax.tree.structure(other)
    if g_def != o_def:
        raise ValueError(
            f"{name}: the gradient tree does not match the {what} tree.\n  gradients: {g_def}\n  {what}: {o_def}\n"
            f"Pass gradients with exactly the structure of the parameters given to init "
            f"(e.g. jax.grad(loss)(params))."
        )
    for (path, g), o in zip(jax.tree_util.tree_flatten_with_path(grads)[0], jax.tree.leaves(other)):
        if hasattr(g, "shape") and hasattr(o, "shape") and tuple(g.shape) != tuple(o.shape):
            raise ValueError(f"{name}: the gradient of {jax.tree_util.keystr(path) or '<root>'} has shape "
                             f"{tuple(g.shape)} but its {what} leaf has shape {tuple(o.shape)}; pass gradients of the "
                             f"parameters' own shapes (e.g. jax.grad(loss)(params)); a broadcastable shape would "
                             f"silently change the parameter's shape")


def expect_state(name: str, state, cls) -> None:
    """Raise a TypeError naming both types if ``state`` is not the ``cls`` state this rule's ``init`` makes (a state
    of another optimizer would otherwise fail deep inside the update, or mix two runs).

    Example:
      >>> from typing import NamedTuple
      >>> class SgdState(NamedTuple):
      ...     count: int
      >>> expect_state("sgd", (0, 1), SgdState)
      Traceback (most recent call last):
      ...
      TypeError: sgd: expected the SgdState that sgd's init returns, got tuple; ...
    """
    if not isinstance(state, cls):
        raise TypeError(f"{name}: expected the {cls.__name__} that {name}'s init returns, got "
                        f"{type(state).__name__}; pass the state made by this optimizer's init (a state of another "
                        f"optimizer does not fit)")


def static_flags(name: str, **flags) -> None:
    """Raise a TypeError unless every flag is a Python bool: a switch between two formulas (``eps_in_sqrt``,
    ``bias_correction``) is chosen when the rule is built, so it cannot be traced or be an array.

    Example:
      >>> static_flags("rmsprop", eps_in_sqrt=jnp.asarray(True))
      Traceback (most recent call last):
      ...
      TypeError: rmsprop: eps_in_sqrt must be a Python bool (it selects the formula when the rule is built), got ...
    """
    for key, flag in flags.items():
        if not isinstance(flag, bool):
            raise TypeError(f"{name}: {key} must be a Python bool (it selects the formula when the rule is built), "
                            f"got {type(flag).__name__} {flag!r}; pass True or False (optax.inject_hyperparams keeps "
                            f"bools static)")


def value_at(h: ScalarOrSchedule, count):
    """Evaluate a hyper-parameter at step ``count``: ``h(count)`` if ``h`` is a schedule, else ``h``."""
    return h(count) if callable(h) else h


def lift(name: str, leaf_fn: Callable, grads, trees: tuple = (), hypers: dict | None = None, *,
         what: str = "state", params=None):
    """Apply per-array math ``leaf_fn`` to every leaf of a pytree: the one place rules meet pytrees.

    ``leaf_fn(g, *tree_leaves, **hypers) -> u`` or ``(u, *new_tree_leaves)`` is called once per leaf of
    ``grads``, with the matching leaf of each tree in ``trees`` (state moments, params) positionally and the
    hyper-parameters *by name*: per-leaf functions declare them keyword-only (``def leaf(g, m, v, *, lr, b1,
    ...)``), so a misspelt or missing one is a ``TypeError``, never a silently permuted tuple. Python numbers
    are passed as they are (weakly typed, so ``1 - b1`` is computed in double precision as in optax); arrays
    (schedule values, bias corrections) are cast to the leaf's dtype, so float32, float64 and bfloat16
    parameters keep their dtype.

    Args:
      name: the rule's name, for error messages.
      leaf_fn: the per-leaf update.
      grads: pytree of gradient arrays.
      trees: tuple of pytrees with the structure of ``grads``.
      hypers: ``{name: scalar}`` (Python numbers or 0-d arrays), passed to ``leaf_fn`` as keyword arguments.
      what: what ``trees`` are, for error messages.
      params: optional parameter tree that ``grads`` must also match (for rules without per-leaf state).

    Returns:
      ``(updates, new_trees)``: the updates pytree and a tuple with one new pytree per output after ``u``.

    Raises:
      ValueError: if a tree's structure differs from ``grads``'s; both structures are printed.

    Example:
      >>> def leaf(g, m, *, b):  # one step of a running mean m of g; the update is g - m
      ...     return g - m, b * m + (1 - b) * g
      >>> u, (m,) = lift("mean", leaf, jnp.ones(2), (jnp.zeros(2),), {"b": 0.5})
      >>> u.tolist(), m.tolist()
      ([1.0, 1.0], [0.5, 0.5])
    """
    if params is not None:
        check_tree(name, grads, params, "params")
    for tree in trees:
        check_tree(name, grads, tree, what)
    hypers = hypers or {}
    g_def = jax.tree.structure(grads)
    g_leaves = jax.tree.leaves(grads)
    t_leaves = [g_def.flatten_up_to(tree) for tree in trees]
    outs = []
    for i, g in enumerate(g_leaves):
        h = {k: c if isinstance(c, (bool, int, float)) else jnp.asarray(c, dtype=g.dtype) for k, c in hypers.items()}
        out = leaf_fn(g, *[leaves[i] for leaves in t_leaves], **h)
        outs.append(out if isinstance(out, tuple) else (out,))
    columns = list(zip(*outs)) if outs else [() for _ in range(1 + len(trees))]
    trees_out = tuple(g_def.unflatten(list(col)) for col in columns)
    return trees_out[0], trees_out[1:]


def zeros_like(params):
    """Zeros with the structure, shapes and dtypes of ``params``."""
    return jax.tree.map(jnp.zeros_like, params)


def step_count(count):
    """``count + 1`` saturating at the int32 maximum (the next value of a state's step counter)."""
    return jnp.where(count < jnp.iinfo(jnp.int32).max, count + 1, count)


# ----------------------------------------------------------------------------------------- composition
def chain(*transforms) -> Optimizer:
    """Compose transforms left to right: the updates of one are the gradients of the next.

    Formula: ``u = T_n(... T_2(T_1(g)))``; the state is the tuple of the members' states.

    Args:
      *transforms: fnn Optimizers or optax ``GradientTransformation``s (both follow the same protocol).
        Extra keyword arguments of ``update`` (e.g. optax's ``value=, grad=, value_fn=`` for line searches)
        are forwarded to the optax members that accept them (``GradientTransformationExtraArgs``).

    Returns:
      An Optimizer whose state is a tuple with one entry per transform.

    Example:
      >>> from fnn.optimizers import sgd
      >>> opt = chain(optax.clip_by_global_norm(1.0), sgd(0.1))

    Reference: optax ``chain`` (same semantics).
    """

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(grads, state, params=None, **extra):
        if len(state) != len(transforms):
            raise ValueError(f"chain: expected a state with {len(transforms)} entries, got {len(state)}; "
                             f"pass the state returned by this chain's init.")
        new_state = []
        for t, s in zip(transforms, state):
            if extra and isinstance(t, optax.GradientTransformationExtraArgs):
                grads, s = t.update(grads, s, params, **extra)
            else:
                grads, s = t.update(grads, s, params)
            new_state.append(s)
        return grads, tuple(new_state)

    return Optimizer(init, update)
