"""Hand-written optimizers in optax's protocol: the front of ``fnn.optimizers``.

The contract is stated once, in :mod:`fnn.optimizers.base`::

    opt = rule(learning_rate, ...)            # an Optimizer(init, update)
    state = opt.init(params)                  # params: any pytree of float arrays
    updates, state = opt.update(grads, state, params)   # grads: same tree as params
    params = apply_updates(params, updates)   # updates are *added*: descent steps are negative

This file only re-exports, grouped by module, and holds the name registry (:data:`RULES`, :func:`from_name`) used
by ``fnn compare`` and by the shared contract tests.
"""
# isort: skip_file
from typing import Callable

import optax

# --- the contract and its helpers (fnn/optimizers/base.py) -----------------------------------------------------
from fnn.optimizers.base import (
    Optimizer, apply_updates, chain, lift, check_tree, value_at, step_count, zeros_like, Schedule, ScalarOrSchedule,
)

# --- first-order rules (fnn/optimizers/first_order.py) ---------------------------------------------------------
from fnn.optimizers.first_order import (
    sgd, momentum, nesterov, delta_bar_delta, SgdState, MomentumState, DeltaBarDeltaState,
)

# --- adaptive rules (fnn/optimizers/adaptive.py) ---------------------------------------------------------------
from fnn.optimizers.adaptive import (
    adagrad, rmsprop, adadelta, adam, adamw, adamax, nadam, scale_by_adam, adam_moments, ema, AdamState,
)

# --- second-order rules (fnn/optimizers/second_order.py) -------------------------------------------------------
from fnn.optimizers.second_order import (
    lbfgs, bfgs, newton, full_batch_rule, FULL_BATCH_RULES, LbfgsState, BfgsState, NewtonState,
)

# --- gradient transforms and schedules -------------------------------------------------------------------------
from fnn.optimizers import schedules, transforms

# --- reduce the step size on a plateau of the monitored value (fnn/optimizers/plateau.py) ------------------------
from fnn.optimizers.plateau import reduce_on_plateau, PlateauState

__all__ = ["Optimizer", "apply_updates", "chain", "lift", "check_tree", "value_at", "step_count", "zeros_like",
           "Schedule", "ScalarOrSchedule", "RULES", "from_name",
           "sgd", "momentum", "nesterov", "delta_bar_delta", "SgdState", "MomentumState", "DeltaBarDeltaState",
           "adagrad", "rmsprop", "adadelta", "adam", "adamw", "adamax", "nadam", "scale_by_adam", "adam_moments",
           "ema", "AdamState", "lbfgs", "bfgs", "newton", "full_batch_rule", "FULL_BATCH_RULES",
           "LbfgsState", "BfgsState", "NewtonState",
           "schedules", "transforms", "reduce_on_plateau", "PlateauState"]

#: Every rule that can be built from a learning rate alone, by name. ``newton`` needs the loss (``fun=``) and is
#: therefore not listed; ``lbfgs`` and ``bfgs`` here take fixed steps of size ``learning_rate`` (no line search;
#: pass ``fun=`` for one). ``bfgs`` keeps a dense n x n matrix: meant for small problems.
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
    "bfgs": bfgs,
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
