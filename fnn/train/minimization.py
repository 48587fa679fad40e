"""Full-batch minimization of any differentiable objective: ``minimize``, one compiled ``lax.scan`` over the steps.

``fit`` trains a model ``apply`` on a loss of its outputs in mini-batches; ``minimize`` takes the whole objective
``J(params, *args)`` (a least-squares fit, an RBF network's error, a reconstruction cost) and runs
``params <- params + optimizer.update(grad J(params))`` ``steps`` times. ``gradient_step`` is that one step, for
training loops that alternate several objectives (a GAN's discriminator and generator).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from fnn.optimizers import apply_updates

__all__ = ["MinimizeResult", "minimize", "gradient_step"]


class MinimizeResult(NamedTuple):
    """What ``minimize`` returns: ``params, opt_state, losses = minimize(...)``."""
    params: Any       # the parameters after the last step
    opt_state: Any    # the optimizer state after the last step
    losses: jax.Array  # (steps,): losses[t] = J(params_t), the objective before step t


def gradient_step(loss_fn: Callable, optimizer) -> Callable:
    """One gradient step on ``loss_fn``: ``step(params, opt_state, *args) -> (params, opt_state, loss)``.

    ``loss, g = value_and_grad(loss_fn)(params, *args)``; ``u, opt_state = optimizer.update(g, opt_state,
    params)``; ``params + u``. Not compiled: call it inside ``jax.jit`` / ``lax.scan``.

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``.
      optimizer: anything with optax's ``init``/``update`` protocol.

    Returns:
      ``step``; ``loss`` is the objective at the parameters before the step.
    """
    def step(params, opt_state, *args):
        value, grads = jax.value_and_grad(loss_fn)(params, *args)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return apply_updates(params, updates), opt_state, value

    return step


def minimize(loss_fn: Callable, params, optimizer, *, steps: int, args: tuple = (), key=None,
             opt_state=None) -> MinimizeResult:
    """Minimize ``loss_fn`` with ``steps`` full-batch steps of ``optimizer``, compiled as one ``lax.scan``.

    ``params_{t+1} = params_t + optimizer.update(grad_params J(params_t, *args [, key_t]))`` for
    ``t = 0 .. steps - 1``, with ``key_t = fold_in(key, t)`` when a key is given (a stochastic objective: noise,
    dropout, sampled batches). The data go in ``args`` (arguments of the compiled program, not constants baked
    into it).

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``, or ``loss_fn(params, *args, key_t)`` when ``key`` is given.
      params: the starting parameters (any pytree).
      optimizer: an fnn optimizer or any optax ``GradientTransformation``.
      steps: number of steps (>= 1).
      args: extra arguments of ``loss_fn`` (arrays or pytrees of arrays).
      key: a ``jax.random`` key, or ``None`` for a deterministic objective.
      opt_state: continue from this optimizer state (default ``optimizer.init(params)``).

    Returns:
      ``MinimizeResult(params, opt_state, losses)`` with ``losses (steps,)`` the objective before each step.

    Example:
      >>> import jax.numpy as jnp
      >>> from fnn import optimizers
      >>> result = minimize(lambda w: jnp.sum((w - 3.0) ** 2), jnp.zeros(2), optimizers.sgd(0.25), steps=3)
      >>> result.params.tolist(), result.losses.tolist()        # w_t = 3 (1 - 0.5^t), J = 2 (3 - w_t)^2
      ([2.625, 2.625], [18.0, 4.5, 1.125])

    Reference: Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, ch. 2-3 (iterative descent methods).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"minimize: expected steps to be a positive int, got {steps!r}; pass the number of "
                         f"optimizer steps")
    step = gradient_step(loss_fn, optimizer)

    @jax.jit
    def run(params, opt_state, args, key):
        def body(carry, t):
            p, s = carry
            p, s, value = step(p, s, *args, *(() if key is None else (jax.random.fold_in(key, t),)))
            return (p, s), value

        (p, s), losses = lax.scan(body, (params, opt_state), jnp.arange(steps, dtype=jnp.int32))
        return MinimizeResult(p, s, losses)

    return run(params, optimizer.init(params) if opt_state is None else opt_state, tuple(args), key)
