"""Second-order rules: Newton's method (full Hessian), BFGS (dense quasi-Newton) and L-BFGS (limited memory).

All three follow the Optimizer contract of ``fnn/optimizers/base.py`` (``init(params) -> state``,
``update(grads, state, params) -> (updates, state)``, updates added with ``apply_updates``) and need ``params``
in ``update``. They are full-batch methods: ``fun`` (the loss as a function of the parameters alone) is closed
over at construction, which keeps the protocol unchanged and lets the rules sit inside any ``chain``.
Newton and BFGS work on the flattened parameter vector (``jax.flatten_util.ravel_pytree``; O(n^2) memory); L-BFGS
works leaf by leaf with tree inner products, so it scales to models whose Hessian could never be formed. All three
want full-batch gradients: :func:`full_batch_rule` names them, and ``fnn.train.fit`` warns when one is given
mini-batches.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from fnn import checks
from fnn.optimizers.base import Optimizer, ScalarOrSchedule, check_tree, expect_state, step_count, value_at

__all__ = ["newton", "bfgs", "lbfgs", "full_batch_rule", "FULL_BATCH_RULES", "NewtonState", "BfgsState",
           "LbfgsState"]

#: The ``update`` functions (by ``__qualname__``, in this module) of the rules that need full-batch gradients.
FULL_BATCH_RULES = frozenset({"newton.<locals>.update", "bfgs.<locals>.update", "lbfgs.<locals>.update"})


def full_batch_rule(optimizer) -> str | None:
    """The name of the full-batch second-order rule ``optimizer`` is (``"newton"``, ``"bfgs"``, ``"lbfgs"``), else None.

    Only fnn's own rules are recognised, as built (not inside a ``chain`` or an optax wrapper).

    Example:
      >>> full_batch_rule(lbfgs()), full_batch_rule(newton(jnp.sum)), full_batch_rule(object())
      ('lbfgs', 'newton', None)
    """
    update = getattr(optimizer, "update", None)
    if getattr(update, "__module__", None) == __name__ and getattr(update, "__qualname__", "") in FULL_BATCH_RULES:
        return update.__qualname__.split(".")[0]
    return None


class NewtonState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter


def newton(fun: Callable, learning_rate: ScalarOrSchedule = 1.0, damping: float = 1e-4) -> Optimizer:
    """Damped Newton's method: ``x += -lr * (H + damping * I)^{-1} g`` with ``H = hessian(fun)(x)``.

    The Hessian of the flattened parameters (``n x n``, ``n`` = number of parameters) is formed with
    ``jax.hessian`` and the system solved by LU, so this is for small models (n up to a few thousand).
    ``damping`` (Levenberg-Marquardt style) keeps the system solvable where ``H`` is singular or indefinite.
    ``damping = 0`` is the plain Newton step ``x += -lr * H^+ g`` with the Moore-Penrose pseudo-inverse ``H^+``
    (``jnp.linalg.pinv``, symmetric): ``H^{-1} g`` for a nonsingular ``H``; for a singular ``H`` the
    minimum-norm least-squares step, finite, with no motion along ``H``'s null space (never a silent nan).
    No optax twin; tested against a NumPy loop.

    Args:
      fun: the loss ``fun(params) -> scalar``, full batch.
      learning_rate: ``lr`` > 0 (1 is the pure Newton step), number or schedule.
      damping: ``damping`` >= 0 added to the Hessian's diagonal (0: the pseudo-inverse step above).

    Returns:
      An Optimizer with state ``NewtonState(count)``; ``update(grads, state, params)`` needs ``params``.

    Example:
      >>> opt = newton(lambda x: jnp.sum(x ** 2), damping=0.0)
      >>> u, _ = opt.update(jnp.asarray([2.0, -4.0]), opt.init(jnp.ones(2)), jnp.asarray([1.0, -2.0]))
      >>> u.tolist()  # H = 2 I: one step lands on the minimum
      [-1.0, 2.0]

    Reference: Nocedal & Wright, Numerical Optimization, 2nd ed., 2006, eq. (3.30) (Newton step) and section 3.4
    (Hessian modification).
    """
    checks.positive("newton", learning_rate=learning_rate)
    checks.non_negative("newton", fix="pass 0 (the plain Newton step) or a small number such as 1e-4.",
                        damping=damping)

    def init(params):
        return NewtonState(count=jnp.zeros([], jnp.int32))

    def update(grads, state, params=None):
        expect_state("newton", state, NewtonState)
        x, g, unravel = _flat("newton", grads, params, "to evaluate the Hessian")
        H = jax.hessian(lambda flat: fun(unravel(flat)))(x)
        lr = value_at(learning_rate, state.count)
        eye = jnp.eye(x.size, dtype=x.dtype)
        dx = -lr * jax.lax.cond(damping == 0, lambda: jnp.linalg.pinv((H + H.T) / 2, hermitian=True) @ g,
                                lambda: jnp.linalg.solve(H + damping * eye, g))
        return unravel(dx.astype(x.dtype)), NewtonState(count=step_count(state.count))

    return Optimizer(init, update)


class LbfgsState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    x_prev: Any  # parameters at the previous update (params tree)
    g_prev: Any  # gradient at the previous update (params tree)
    S: Any  # ring buffer of steps s_i = x_{i+1} - x_i; each leaf (memory_size, *leaf.shape)
    Y: Any  # ring buffer of gradient changes y_i = g_{i+1} - g_i, same layout as S
    rho: jax.Array  # (memory_size,) 1 / <y_i, s_i>, 0 for an empty slot
    eta: jax.Array  # step size accepted by the last line search (1 before the first)


def _flat(name: str, grads, params, why: str):
    """``(x, g, unravel)``: params and gradients as flat vectors (the full-matrix rules work on them), after checking
    that ``params`` was passed and that the gradient tree matches it."""
    if params is None:
        raise ValueError(f"{name}: update needs params {why}; call update(grads, state, params).")
    check_tree(name, grads, params, "params")
    x, unravel = ravel_pytree(params)
    return x, ravel_pytree(grads)[0], unravel


def _vdot(a, b):
    """Inner product of two pytrees: sum over leaves of ``<a_leaf, b_leaf>`` (contracted like optax's ``tree.vdot``)."""
    return sum(jnp.tensordot(x, y, jnp.ndim(x)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _sqnorm(a):
    """Squared norm of a pytree, ``sum of g_leaf^2`` (reduced like optax's ``tree.norm``, for bit-level parity)."""
    return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(a))


def _axpy(alpha, x, y):
    """``y + alpha * x`` leaf by leaf, keeping ``y``'s dtypes."""
    return jax.tree.map(lambda xi, yi: (yi + alpha * xi).astype(yi.dtype), x, y)


def _backtracking(fun, params, d, g, eta_prev, c1, shrink, grow, max_steps):
    """Backtracking (Armijo) line search along ``d``: the step ``eta`` that ``lbfgs`` and ``bfgs`` take.

    Trials start at ``min(grow * eta_prev, 1)`` and shrink by ``shrink`` until ``fun(x + eta d) <= fun(x) + c1 eta
    <g, d>``, at most ``max_steps`` times; the last trial is kept, or ``eta = 0`` if ``fun`` was never finite.
    ``params``, ``d`` and ``g`` are pytrees of one structure. Matches ``optax.scale_by_backtracking_linesearch``.
    """
    f0, slope = fun(params), _vdot(d, g)

    def excess(eta):  # how far fun(x + eta d) lies above the Armijo line; 0 when accepted
        e = fun(_axpy(eta, d, params)) - f0 - eta * c1 * slope
        return jnp.where(jnp.isnan(e), jnp.inf, jnp.maximum(e, 0.0))

    def body(carry):
        eta, _, i = carry
        eta = jnp.where(i > 0, shrink * eta, eta).astype(eta.dtype)
        return eta, excess(eta).astype(eta.dtype), i + 1

    start = jnp.minimum(grow * eta_prev, 1.0).astype(eta_prev.dtype)  # keeps the loop's carry type
    eta, err, _ = jax.lax.while_loop(lambda c: (c[1] > 0) & (c[2] <= max_steps), body,
                                     (start, jnp.asarray(jnp.inf, start.dtype), 0))
    return jnp.where(jnp.isinf(err), 0.0, eta).astype(eta_prev.dtype)


def _static_int(value, name: str, rule: str = "lbfgs", static: str = '"memory_size", "max_backtracking_steps"'):
    """A size or loop bound given as a concrete integer 0-d array (as ``optax.inject_hyperparams`` passes every
    number) as the Python int it holds; other values unchanged, for the checks; a traced one is refused."""
    if isinstance(value, jax.core.Tracer):
        raise ValueError(f"{rule}: {name} sets array shapes and loop bounds and cannot be traced, got a traced "
                         f"{name}; pass it as a Python int, and to optax.inject_hyperparams as static: "
                         f"optax.inject_hyperparams(fnn.optimizers.{rule}, static_args=({static})).")
    if getattr(value, "shape", None) == () and jnp.issubdtype(getattr(value, "dtype", float), jnp.integer):
        return int(value)
    return value


def lbfgs(learning_rate: ScalarOrSchedule = 1.0, memory_size: int = 10, fun: Callable | None = None,
          max_backtracking_steps: int = 15, c1: float = 1e-4, shrink: float = 0.8, grow: float = 1.5) -> Optimizer:
    """L-BFGS: a quasi-Newton direction from the last ``memory_size`` pairs, then (optionally) a line search.

    Memory update with ``s = x - x_prev``, ``y = g - g_prev``, ``rho = 1 / <y, s>`` (0 if ``<y, s> = 0``).
    Two-loop recursion (Nocedal & Wright, Algorithm 7.4), pairs newest first::

        q = g;  for i newest..oldest:  alpha_i = rho_i <s_i, q>;  q -= alpha_i y_i
        r = gamma q,  gamma = <s, y> / <y, y> (newest pair; min(1, 1/|g|) at the first step)
        for i oldest..newest:  beta = rho_i <y_i, r>;  r += (alpha_i - beta) s_i
        d = -lr * r

    Without ``fun`` the update is ``d`` (fixed step); its exact twin is ``optax.lbfgs(lr, memory_size,
    linesearch=None)``. With ``fun`` a backtracking (Armijo) line search picks ``eta``: trials start at
    ``min(grow * eta_prev, 1)`` and shrink by ``shrink`` until ``fun(x + eta d) <= fun(x) + c1 eta <g, d>``
    (at most ``max_backtracking_steps`` shrinks; the last trial is kept, or ``eta = 0`` if ``fun`` was not
    finite); the update is ``eta d``. This matches ``optax.lbfgs(lr, memory_size,
    linesearch=optax.scale_by_backtracking_linesearch(max_backtracking_steps))``. Like optax, pairs with
    ``<y, s> < 0`` are kept (no curvature skip).

    Args:
      learning_rate: ``lr`` > 0 scaling the direction, number or schedule.
      memory_size: number of (s, y) pairs kept, >= 1.
      fun: full-batch loss ``fun(params) -> scalar`` for the line search, or None for fixed steps.
      max_backtracking_steps, c1, shrink, grow: line-search settings (c1 and shrink in (0, 1), grow >= 1).
        ``memory_size`` and ``max_backtracking_steps`` set shapes and loop bounds: Python ints or concrete 0-d
        integer arrays, never traced (``optax.inject_hyperparams(lbfgs, static_args=("memory_size",
        "max_backtracking_steps"))``); the other hyper-parameters may be traced.

    Returns:
      An Optimizer with state ``LbfgsState``; ``update(grads, state, params)`` needs ``params``.

    Example:
      >>> opt = lbfgs(fun=lambda x: jnp.sum((x - 1.0) ** 2))

    Reference: Nocedal & Wright, Numerical Optimization, 2nd ed., 2006, Algorithms 7.4-7.5 and eq. (7.20);
    Liu & Nocedal, "On the limited memory BFGS method for large scale optimization", 1989.
    """
    checks.positive("lbfgs", learning_rate=learning_rate, c1=c1, shrink=shrink)
    memory_size = _static_int(memory_size, "memory_size")
    max_backtracking_steps = _static_int(max_backtracking_steps, "max_backtracking_steps")
    known = all(checks.concrete(v) is not None for v in (c1, shrink, grow))  # traced: checked by the caller
    if memory_size < 1 or max_backtracking_steps < 0 or (known and not (c1 < 1 and shrink < 1 and grow >= 1)):
        raise ValueError(f"lbfgs: need memory_size >= 1, max_backtracking_steps >= 0, 0 < c1 < 1, 0 < shrink < 1 "
                         f"and grow >= 1; got memory_size={memory_size}, max_backtracking_steps="
                         f"{max_backtracking_steps}, c1={c1}, shrink={shrink}, grow={grow}.")
    checks.positive_int("lbfgs", memory_size=memory_size)
    checks.non_negative_int("lbfgs", max_backtracking_steps=max_backtracking_steps)

    def init(params):
        stack = jax.tree.map(lambda x: jnp.zeros((memory_size,) + jnp.shape(x), x.dtype), params)
        dtype = jax.tree.leaves(params)[0].dtype
        return LbfgsState(count=jnp.zeros([], jnp.int32), x_prev=jax.tree.map(jnp.zeros_like, params),
                          g_prev=jax.tree.map(jnp.zeros_like, params), S=stack, Y=stack,
                          rho=jnp.zeros(memory_size), eta=jnp.ones([], dtype))

    def update(grads, state, params=None):
        expect_state("lbfgs", state, LbfgsState)
        if params is None:
            raise ValueError("lbfgs: update needs params to form s = x - x_prev; call update(grads, state, params).")
        check_tree("lbfgs", grads, params, "params")
        first = state.count == 0
        s = jax.tree.map(lambda x, xp: jnp.where(first, 0, x - xp), params, state.x_prev)
        y = jax.tree.map(lambda g, gp: jnp.where(first, 0, g - gp), grads, state.g_prev)
        sy = _vdot(y, s)
        # Ring buffers, written in place: the pair made at step k goes to slot (k - 1) mod m, so that
        # slots (k, k + 1, ..., k - 1) mod m run from the oldest pair to the newest.
        slot = (state.count - 1) % memory_size
        S = jax.tree.map(lambda M, v: M.at[slot].set(v), state.S, s)
        Y = jax.tree.map(lambda M, v: M.at[slot].set(v), state.Y, y)
        rho = state.rho.at[slot].set(jnp.where(sy == 0, 0.0, 1.0 / sy))
        oldest_to_newest = (state.count + jnp.arange(memory_size)) % memory_size

        def pair(i):
            return jax.tree.map(lambda M: M[i], S), jax.tree.map(lambda M: M[i], Y), rho[i]

        def newest_first(q, i):  # alpha_i = rho_i <s_i, q>;  q -= alpha_i y_i
            s_i, y_i, rho_i = pair(i)
            alpha = rho_i * _vdot(s_i, q)
            return _axpy(-alpha, y_i, q), alpha

        def oldest_first(r, i_alpha):  # beta = rho_i <y_i, r>;  r += (alpha_i - beta) s_i
            i, alpha = i_alpha
            s_i, y_i, rho_i = pair(i)
            beta = rho_i * _vdot(y_i, r)
            return _axpy(alpha - beta, s_i, r), beta

        q, alphas = jax.lax.scan(newest_first, grads, oldest_to_newest, reverse=True)
        yy = _sqnorm(y)
        gamma = jnp.where(first, jnp.minimum(1.0, 1.0 / jnp.sqrt(_sqnorm(grads))),
                          jnp.where(yy > 0, sy / jnp.where(yy > 0, yy, 1.0), 1.0))
        r = jax.tree.map(lambda v: (gamma * v).astype(v.dtype), q)
        r, _ = jax.lax.scan(oldest_first, r, (oldest_to_newest, alphas))

        lr = value_at(learning_rate, state.count)
        d = jax.tree.map(lambda v: (-lr * v).astype(v.dtype), r)
        eta = state.eta if fun is None else _backtracking(fun, params, d, grads, state.eta, c1, shrink, grow,
                                                          max_backtracking_steps)
        updates = d if fun is None else jax.tree.map(lambda v: (eta * v).astype(v.dtype), d)
        return updates, LbfgsState(count=step_count(state.count), x_prev=params, g_prev=grads, S=S, Y=Y,
                                   rho=rho, eta=eta)

    return Optimizer(init, update)


class BfgsState(NamedTuple):
    count: jax.Array  # int32 scalar, step counter
    x_prev: jax.Array  # (n,) flattened parameters at the previous update
    g_prev: jax.Array  # (n,) flattened gradient at the previous update
    H: jax.Array  # (n, n) inverse-Hessian approximation (the identity before the first pair)
    skipped: jax.Array  # int32 scalar, pairs skipped because <y, s> <= 0
    eta: jax.Array  # step size accepted by the last line search (1 before the first)


def bfgs(learning_rate: ScalarOrSchedule = 1.0, fun: Callable | None = None, max_backtracking_steps: int = 15,
         c1: float = 1e-4, shrink: float = 0.8, grow: float = 1.5) -> Optimizer:
    """BFGS: a dense inverse-Hessian approximation ``H`` (``n x n`` over the flattened parameters), rank two per step.

    With ``s = x - x_prev``, ``y = g - g_prev``, ``rho = 1 / <y, s>``::

        H = (I - rho s y^T) H (I - rho y s^T) + rho s s^T      (computed as H - rho (s Hy^T + Hy s^T)
                                                                 + (rho^2 <y, Hy> + rho) s s^T, O(n^2))
        d = -lr * H g;   x += d  (or eta d with a line search)

    ``H`` starts as ``I``; before the first update it is rescaled to ``<y, s> / <y, y> I`` (Nocedal & Wright eq.
    (6.20)); the first direction is ``-lr min(1, 1/|g|) g``, as in :func:`lbfgs`. A pair with ``<y, s> <= 0``
    (possible with fixed steps, Armijo-only searches or noisy gradients) would make ``H`` indefinite: it is
    skipped, ``H`` kept, and ``state.skipped`` counts it. With ``fun``, the backtracking (Armijo) line search of
    :func:`lbfgs` picks ``eta`` (same settings). Memory O(n^2): for small models. No optax twin; tested against
    SciPy's ``minimize(method="BFGS")`` and the exact ``H = A^{-1}`` after n exact line searches on a quadratic.

    Args:
      learning_rate: ``lr`` > 0 scaling the direction, number or schedule.
      fun: full-batch loss ``fun(params) -> scalar`` for the line search, or None for fixed steps.
      max_backtracking_steps, c1, shrink, grow: line-search settings as in :func:`lbfgs`
        (``max_backtracking_steps`` a Python int, static under ``optax.inject_hyperparams``).

    Returns:
      An Optimizer with state ``BfgsState(count, x_prev, g_prev, H, skipped, eta)``; ``update`` needs ``params``.

    Example:
      >>> opt = bfgs(fun=lambda x: jnp.sum((x - 1.0) ** 2))
      >>> opt.init(jnp.zeros(3)).H.shape
      (3, 3)

    Reference: Nocedal & Wright, Numerical Optimization, 2nd ed., 2006, eq. (6.17) (the update), (6.20) (the
    initial scaling) and Algorithm 6.1.
    """
    checks.positive("bfgs", learning_rate=learning_rate, c1=c1, shrink=shrink)
    max_backtracking_steps = _static_int(max_backtracking_steps, "max_backtracking_steps", "bfgs",
                                         '"max_backtracking_steps",')
    checks.non_negative_int("bfgs", max_backtracking_steps=max_backtracking_steps)
    known = all(checks.concrete(v) is not None for v in (c1, shrink, grow))  # traced: checked by the caller
    if known and not (c1 < 1 and shrink < 1 and grow >= 1):
        raise ValueError(f"bfgs: need 0 < c1 < 1, 0 < shrink < 1 and grow >= 1; got c1={c1}, shrink={shrink}, "
                         f"grow={grow}; e.g. the defaults c1=1e-4, shrink=0.8, grow=1.5.")

    def init(params):
        x, _ = ravel_pytree(params)
        return BfgsState(count=jnp.zeros([], jnp.int32), x_prev=jnp.zeros_like(x), g_prev=jnp.zeros_like(x),
                         H=jnp.eye(x.size, dtype=x.dtype), skipped=jnp.zeros([], jnp.int32),
                         eta=jnp.ones([], x.dtype))

    def update(grads, state, params=None):
        expect_state("bfgs", state, BfgsState)
        x, g, unravel = _flat("bfgs", grads, params, "to form s = x - x_prev")
        s, y = x - state.x_prev, g - state.g_prev
        sy, yy = jnp.vdot(y, s), jnp.vdot(y, y)
        accept = (state.count > 0) & (sy > 0)
        skipped = state.skipped + ((state.count > 0) & ~accept).astype(jnp.int32)
        untouched = state.count - 1 == state.skipped  # every earlier pair skipped: H is still I
        H = jnp.where(accept & untouched, sy / jnp.where(yy > 0, yy, 1) * jnp.eye(x.size, dtype=x.dtype), state.H)
        rho = 1 / jnp.where(accept, sy, 1)
        Hy = H @ y
        H_new = H - rho * (jnp.outer(s, Hy) + jnp.outer(Hy, s)) + (rho * rho * jnp.vdot(y, Hy) + rho) * jnp.outer(s, s)
        H = jnp.where(accept, H_new, H).astype(x.dtype)
        gamma = jnp.where(state.count == 0, jnp.minimum(1.0, 1.0 / jnp.linalg.norm(g)), 1.0)
        lr = value_at(learning_rate, state.count)
        d = unravel((-lr * gamma * (H @ g)).astype(x.dtype))
        eta = state.eta if fun is None else _backtracking(fun, params, d, grads, state.eta, c1, shrink, grow,
                                                          max_backtracking_steps)
        updates = d if fun is None else jax.tree.map(lambda v: (eta * v).astype(v.dtype), d)
        return updates, BfgsState(count=step_count(state.count), x_prev=x, g_prev=g, H=H, skipped=skipped, eta=eta)

    return Optimizer(init, update)
