"""Hand-written optimizers in optax's protocol.

The contract (stated once, here):

    opt = rule(learning_rate, ...)            # an Optimizer(init, update)
    state = opt.init(params)                  # params: any pytree of float arrays
    updates, state = opt.update(grads, state, params)   # grads: same tree as params
    params = apply_updates(params, updates)   # updates are *added*: descent steps are negative

This is optax's ``GradientTransformation`` protocol, so an fnn rule can sit inside ``optax.chain`` and any
optax transform inside :func:`chain`. Every rule keeps its state in a NamedTuple with commented fields and a
step counter ``count`` (the first step is step 0, as in optax); every hyper-parameter accepts a number or a
schedule ``step -> value`` (see ``fnn.schedules``), evaluated at ``count``. The per-leaf math of each rule is
written once, in the symbols of its docstring, and lifted over the pytree in one place (:func:`lift`), which
also rejects a gradient tree whose structure differs from the parameter/state tree, printing both.

First-order rules live in this file (sgd, momentum, nesterov, delta_bar_delta); the adaptive ones (adagrad,
rmsprop, adadelta, adam, adamw, adamax, nadam) in ``fnn/adaptive.py`` and L-BFGS / Newton in
``fnn/second_order.py``; all are re-exported here. :data:`RULES` and :func:`from_name` are the name registry used
by ``fnn compare`` and by the shared contract tests.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["Optimizer", "apply_updates", "chain", "lift", "check_tree", "value_at", "RULES", "from_name",
           "sgd", "momentum", "nesterov", "delta_bar_delta", "adagrad", "rmsprop", "adadelta", "adam", "adamw",
           "adamax", "nadam", "skip_biases", "lbfgs", "newton"]

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
    """Raise a ValueError, printing both structures, if ``grads`` and ``other`` are different pytrees."""
    g_def, o_def = jax.tree.structure(grads), jax.tree.structure(other)
    if g_def != o_def:
        raise ValueError(
            f"{name}: the gradient tree does not match the {what} tree.\n  gradients: {g_def}\n  {what}: {o_def}\n"
            f"Pass gradients with exactly the structure of the parameters given to init "
            f"(e.g. jax.grad(loss)(params))."
        )


def value_at(h: ScalarOrSchedule, count):
    """Evaluate a hyper-parameter at step ``count``: ``h(count)`` if ``h`` is a schedule, else ``h``."""
    return h(count) if callable(h) else h


def lift(name: str, leaf_fn: Callable, grads, trees: tuple, scalars: tuple = (), what: str = "state",
         params=None):
    """Apply per-array math ``leaf_fn`` to every leaf of a pytree: the one place rules meet pytrees.

    ``leaf_fn(g, *tree_leaves, *scalars) -> (u, *new_tree_leaves)`` is called once per leaf of ``grads``, with
    the matching leaf of each tree in ``trees`` (state moments, params) and the scalar hyper-parameters: Python
    numbers are passed as they are (weakly typed, so ``1 - b1`` is computed in double precision as in optax),
    arrays (schedule values, bias corrections) are cast to the leaf's dtype, so float32, float64 and bfloat16
    parameters keep their dtype.

    Args:
      name: the rule's name, for error messages.
      leaf_fn: the per-leaf update.
      grads: pytree of gradient arrays.
      trees: tuple of pytrees with the structure of ``grads``.
      scalars: tuple of scalars (Python numbers or 0-d arrays).
      what: what ``trees`` are, for error messages.
      params: optional parameter tree that ``grads`` must also match (for rules without per-leaf state).

    Returns:
      ``(updates, new_trees)``: the updates pytree and a tuple with one new pytree per output after ``u``.

    Raises:
      ValueError: if a tree's structure differs from ``grads``'s; both structures are printed.
    """
    if params is not None:
        check_tree(name, grads, params, "params")
    for tree in trees:
        check_tree(name, grads, tree, what)
    g_def = jax.tree.structure(grads)
    g_leaves = jax.tree.leaves(grads)
    t_leaves = [g_def.flatten_up_to(tree) for tree in trees]
    outs = []
    for i, g in enumerate(g_leaves):
        s = [c if isinstance(c, (bool, int, float)) else jnp.asarray(c, dtype=g.dtype) for c in scalars]
        out = leaf_fn(g, *[leaves[i] for leaves in t_leaves], *s)
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


def check_positive(name: str, **values) -> None:
    """ValueError unless every non-schedule value is > 0 (learning rates, eps, ...)."""
    for key, v in values.items():
        if not callable(v) and not float(v) > 0:
            raise ValueError(f"{name}: {key} must be > 0, got {key}={v!r}; pass a positive number or a schedule.")


def check_unit(name: str, **values) -> None:
    """ValueError unless every non-schedule value lies in [0, 1) (betas, momentum, decay rates)."""
    for key, v in values.items():
        if not callable(v) and not 0.0 <= float(v) < 1.0:
            raise ValueError(f"{name}: {key} must lie in [0, 1), got {key}={v!r}; e.g. {key}=0.9.")


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


# ----------------------------------------------------------------------------------------- first-order rules
class SgdState(NamedTuple):
    count: jax.Array  # int32 scalar, number of updates done so far (step of the next one)


def sgd(learning_rate: ScalarOrSchedule) -> Optimizer:
    """Stochastic gradient descent: ``x += -lr * g``.

    The same rule serves full-batch, mini-batch and single-example training: only the gradient you pass
    changes.

    Args:
      learning_rate: ``lr`` > 0, a number or a schedule ``step -> lr``.

    Returns:
      An Optimizer; its state is ``SgdState(count)``. Updates have the shapes of the gradients.

    Example:
      >>> opt = sgd(0.1); s = opt.init(jnp.ones(3)); u, s = opt.update(jnp.ones(3), s)

    Reference: Robbins & Monro, "A stochastic approximation method", 1951; optax ``sgd`` (twin, exact).
    """
    check_positive("sgd", learning_rate=learning_rate)

    def init(params):
        return SgdState(count=jnp.zeros([], jnp.int32))

    def update(grads, state, params=None):
        lr = value_at(learning_rate, state.count)
        u, _ = lift("sgd", lambda g, lr: -lr * g, grads, (), (lr,), params=params)
        return u, SgdState(count=step_count(state.count))

    return Optimizer(init, update)


class MomentumState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    v: Any  # velocity, same tree as params: the last step taken


def momentum(learning_rate: ScalarOrSchedule, mu: ScalarOrSchedule = 0.9) -> Optimizer:
    """Classical (heavy-ball) momentum: ``v = mu * v - lr * g;  x += v``.

    Departure from optax: optax's ``sgd(lr, momentum=mu)`` keeps ``t = g + mu * t`` and steps ``-lr * t``.
    With a constant ``lr`` the two are the same (``v = -lr * t``); under a learning-rate *schedule* they differ:
    here ``lr_t`` scales only the newest gradient, there it rescales the whole trace. The exact optax twin of
    this rule is ``optax.chain(optax.scale_by_schedule(lambda t: -lr(t)), optax.trace(mu))``.

    Args:
      learning_rate: ``lr`` > 0, number or schedule.
      mu: momentum in [0, 1), number or schedule (e.g. ``fnn.schedules.momentum_annealing``).

    Returns:
      An Optimizer with state ``MomentumState(count, v)``.

    Example:
      >>> opt = momentum(0.1, mu=0.9)

    Reference: Polyak, "Some methods of speeding up the convergence of iteration methods", 1964;
    Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013, eq. (1)-(2).
    """
    check_positive("momentum", learning_rate=learning_rate)
    check_unit("momentum", mu=mu)

    def init(params):
        return MomentumState(count=jnp.zeros([], jnp.int32), v=zeros_like(params))

    def leaf(g, v, lr, mu):
        v = mu * v - lr * g
        return v, v

    def update(grads, state, params=None):
        lr, m = value_at(learning_rate, state.count), value_at(mu, state.count)
        u, (v,) = lift("momentum", leaf, grads, (state.v,), (lr, m))
        return u, MomentumState(count=step_count(state.count), v=v)

    return Optimizer(init, update)


def nesterov(learning_rate: ScalarOrSchedule, mu: ScalarOrSchedule = 0.9) -> Optimizer:
    """Nesterov momentum, practical rewrite: ``v_prev = v;  v = mu v - lr g;  x += -mu v_prev + (1 + mu) v``.

    The gradient is taken at the current ``x``; the rewrite tracks the look-ahead point, so no second gradient
    evaluation is needed. Substituting ``v = mu * v_prev - lr * g`` the step is also ``mu * v - lr * g``, which
    is what the code computes: it needs no copy of ``v_prev``, which makes it twice as fast under ``jit`` (the
    velocity buffer is updated in place). Relation to optax's ``sgd(lr, momentum=mu, nesterov=True)``
    (``t = g + mu t``, step ``-lr (g + mu t)``): substituting ``v = -lr t`` gives the same step
    ``-(1 + mu) lr g - mu^2 lr t_prev``, so the two agree exactly for a constant ``lr``; under a schedule the
    exact twin is ``optax.chain(optax.scale_by_schedule(lambda t: -lr(t)), optax.trace(mu, nesterov=True))``.

    Args:
      learning_rate: ``lr`` > 0, number or schedule.
      mu: momentum in [0, 1), number or schedule.

    Returns:
      An Optimizer with state ``MomentumState(count, v)``.

    Example:
      >>> opt = nesterov(0.1, mu=0.9)

    Reference: Nesterov, "A method for solving the convex programming problem with convergence rate
    O(1/k^2)", 1983; Bengio et al., "Advances in optimizing recurrent networks", 2013, eq. (7) (the rewrite).
    """
    check_positive("nesterov", learning_rate=learning_rate)
    check_unit("nesterov", mu=mu)

    def init(params):
        return MomentumState(count=jnp.zeros([], jnp.int32), v=zeros_like(params))

    def leaf(g, v, lr, mu):
        v = mu * v - lr * g  # v = mu * v_prev - lr * g
        return mu * v - lr * g, v  # = -mu * v_prev + (1 + mu) * v, without keeping v_prev

    def update(grads, state, params=None):
        lr, m = value_at(learning_rate, state.count), value_at(mu, state.count)
        u, (v,) = lift("nesterov", leaf, grads, (state.v,), (lr, m))
        return u, MomentumState(count=step_count(state.count), v=v)

    return Optimizer(init, update)


class DeltaBarDeltaState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    gain: Any  # per-weight local gain, starts at 1
    bar_delta: Any  # exponential average of past gradients ("delta bar")


def delta_bar_delta(learning_rate: ScalarOrSchedule, kappa: float = 0.05, phi: float = 0.95,
                    theta: float = 0.0, min_gain: float = 0.1, max_gain: float = 10.0) -> Optimizer:
    """Delta-bar-delta: per-weight gains multiply a global rate, growing additively while the sign holds.

    Per weight, with ``bar_delta`` the average of past gradients (just the previous gradient when ``theta = 0``)::

        gain = clip(where(g * bar_delta > 0, gain + kappa,
                          where(g * bar_delta < 0, gain * phi, gain)), min_gain, max_gain)
        bar_delta = (1 - theta) * g + theta * bar_delta
        x += -lr * gain * g

    Departures: Jacobs decreases with ``gain * (1 - phi)``; here ``phi`` is the factor itself (Hinton's 0.95).
    The clip to ``[min_gain, max_gain]`` follows Hinton's lecture notes. No optax twin (tested against NumPy).

    Args:
      learning_rate: global ``lr`` > 0, number or schedule.
      kappa: additive gain increase (> 0).
      phi: multiplicative gain decrease in (0, 1).
      theta: averaging of the reference gradient, in [0, 1).
      min_gain, max_gain: bounds of each gain, ``0 < min_gain <= 1 <= max_gain``.

    Returns:
      An Optimizer with state ``DeltaBarDeltaState(count, gain, bar_delta)``.

    Example:
      >>> opt = delta_bar_delta(0.01)

    Reference: Jacobs, "Increased rates of convergence through learning rate adaptation", Neural Networks 1988,
    eq. (4)-(5); Hinton, Neural Networks for Machine Learning, lecture 6d, 2012.
    """
    check_positive("delta_bar_delta", learning_rate=learning_rate, kappa=kappa, phi=phi, min_gain=min_gain)
    check_unit("delta_bar_delta", theta=theta)
    if not (phi < 1.0 and min_gain <= 1.0 <= max_gain):
        raise ValueError(f"delta_bar_delta: need phi < 1 and min_gain <= 1 <= max_gain, got phi={phi}, "
                         f"min_gain={min_gain}, max_gain={max_gain}; e.g. phi=0.95, min_gain=0.1, max_gain=10.")

    def init(params):
        return DeltaBarDeltaState(count=jnp.zeros([], jnp.int32), gain=jax.tree.map(jnp.ones_like, params),
                                  bar_delta=zeros_like(params))

    def leaf(g, gain, bar_delta, lr, kappa, phi, theta, min_gain, max_gain):
        agree = g * bar_delta
        gain = jnp.clip(jnp.where(agree > 0, gain + kappa, jnp.where(agree < 0, gain * phi, gain)),
                        min_gain, max_gain)
        bar_delta = (1 - theta) * g + theta * bar_delta
        return -lr * gain * g, gain, bar_delta

    def update(grads, state, params=None):
        lr = value_at(learning_rate, state.count)
        u, (gain, bar) = lift("delta_bar_delta", leaf, grads, (state.gain, state.bar_delta),
                              (lr, kappa, phi, theta, min_gain, max_gain))
        return u, DeltaBarDeltaState(count=step_count(state.count), gain=gain, bar_delta=bar)

    return Optimizer(init, update)


# ----------------------------------------------------------------------------------------- registry
from fnn.adaptive import adadelta, adagrad, adam, adamax, adamw, nadam, rmsprop, skip_biases  # noqa: E402
from fnn.second_order import lbfgs, newton  # noqa: E402

#: Every rule that can be built from a learning rate alone, by name. ``newton`` needs the loss (``fun=``) and is
#: therefore not listed; ``lbfgs`` here takes fixed steps of size ``learning_rate`` (no line search).
RULES: dict[str, Callable[..., Optimizer]] = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adadelta": adadelta,
    "adam": adam,
    "adamw": adamw,
    "adamax": adamax,
    "nadam": nadam,
    "delta_bar_delta": delta_bar_delta,
    "lbfgs": lbfgs,
}


def from_name(name: str, learning_rate: float) -> Optimizer:
    """Build a rule from its name: ``"adam"`` -> ``fnn`` rule, ``"optax:adam"`` -> optax's transform.

    Args:
      name: a key of :data:`RULES`, or ``"optax:<name>"`` for any optax alias taking a learning rate
        (``optax:lbfgs`` is built without line search, like fnn's ``lbfgs``; ``optax:momentum`` and
        ``optax:nesterov`` are ``optax.sgd`` with momentum 0.9, fnn's default ``mu``).
      learning_rate: passed as the rule's first argument.

    Returns:
      An Optimizer (or an optax ``GradientTransformation``; same protocol).

    Raises:
      ValueError: for an unknown name, listing the valid ones.
    """
    if name.startswith("optax:"):
        alias = name.split(":", 1)[1]
        known = sorted(n for n in RULES if n not in ("delta_bar_delta",))
        if alias == "lbfgs":
            return optax.lbfgs(learning_rate, linesearch=None)
        twins = {"momentum": lambda lr: optax.sgd(lr, momentum=0.9),
                 "nesterov": lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True)}
        if alias in twins:
            return twins[alias](learning_rate)
        fn = getattr(optax, alias, None)
        if fn is None or not callable(fn):
            raise ValueError(f"from_name: unknown optax optimizer {alias!r}; try one of "
                             f"{', '.join('optax:' + n for n in known)}.")
        return fn(learning_rate)
    if name not in RULES:
        raise ValueError(f"from_name: unknown optimizer {name!r}; valid names: {', '.join(sorted(RULES))} "
                         f"(or 'optax:<name>').")
    return RULES[name](learning_rate)
