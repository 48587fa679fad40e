"""Search spaces and samplers: what the lab tunes for each rule, and the configurations it tries.

The contract (stated once, here)::

    space = space_for("adam")                      # a tuple of Dim(name, low, high, scale, default)
    hp = sample(space, 16, "sobol", seed=0)        # {name: (C,) float32}: C configurations
    opt = make_factory("adam")(**hp_one)           # the rule, built from keyword hyper-parameters
    u = to_unit(space, hp); hp = from_unit(space, u)   # (C, d) points of the unit cube <-> configurations

A configuration batch is a dict of arrays ``{name: (C,) float32}`` whose names are the keyword names of the rule's
constructor, so the lab can ``jax.vmap`` ``make_optimizer(**hp)`` over the C configurations.

Scales map the unit interval ``u in [0, 1]`` onto ``[low, high]``:
  - ``"linear"``: ``v = low + u (high - low)``;
  - ``"log"``: ``log v = log low + u (log high - log low)`` (log-uniform; ``low > 0``);
  - ``"one_minus_log"``: ``log(1 - v) = log(1 - low) + u (log(1 - high) - log(1 - low))``, i.e. ``1 - v`` is
    log-uniform: for momentum-like values near 1 (``Dim("b1", 0.5, 0.999, "one_minus_log", 0.9)`` samples
    ``1 - b1`` log-uniformly in ``[0.001, 0.5]``; ``high < 1``). ``u`` grows with ``v`` on every scale.

The spaces (:data:`SPACES`) follow Schmidt, Schneider & Hennig, "Descending through a Crowded Valley - Benchmarking
Deep Learning Optimizers", ICML 2021 (random search over declared distributions): the learning rate is
log-uniform over ``[1e-4, 1]`` for every rule (Adadelta's too, whose default 1.0 is the upper end). Their momentum
and averaging parameters are tuned as well; the ranges below are this module's choices (the paper's exact ranges for
them were not at hand when this was written), all on the ``one_minus_log`` scale so that 0.9, 0.99 and 0.999 are
equally far apart:

  ==================  =========================================  ==========================================
  parameter           range                                      rules
  ==================  =========================================  ==========================================
  ``learning_rate``   log-uniform ``[1e-4, 1]``                  all (fnn's and their ``optax:`` twins)
  ``mu``/``momentum`` ``1 - mu`` log-uniform in ``[1e-3, 0.5]``  momentum, nesterov (optax: ``momentum``)
  ``decay``           ``1 - decay`` in ``[1e-3, 0.5]``           rmsprop
  ``rho``             ``1 - rho`` in ``[1e-3, 0.5]``             adadelta
  ``b1``              ``1 - b1`` in ``[1e-3, 0.5]``              adam, adamw, adamax, nadam
  ``b2``              ``1 - b2`` in ``[1e-4, 0.1]``              adam, adamw, adamax, nadam
  ==================  =========================================  ==========================================

Defaults (the budget-1 "one-shot" configuration) are the rule constructor's own defaults. Where the constructor has
none (fnn's ``sgd``, ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop`` and every optax rule's learning rate) this
module picks one and says so: 1e-2 for sgd, momentum, nesterov and adagrad (Keras' SGD and PyTorch's Adagrad
default), 1e-3 for rmsprop and adam/adamw (Keras' RMSprop; Kingma & Ba's Adam). ``optax.sgd``'s ``momentum``
defaults to None (no momentum); the lab's ``optax:momentum``/``optax:nesterov`` use 0.9, fnn's ``mu`` (as
:func:`fnn.optimizers.from_name` does). eps, weight decay and Adagrad's initial accumulator are not tuned.

Reference: Bergstra & Bengio, "Random search for hyper-parameter optimization", JMLR 2012 (grid vs random);
Owen, "Scrambling Sobol' and Niederreiter-Xing points", 1998 (scrambled quasi-random points, ``scipy.stats.qmc``).
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, NamedTuple

import numpy as np
import optax

from fnn import optimizers

__all__ = ["Dim", "SCALES", "SPACES", "METHODS", "check_dim", "space_for", "describe", "make_factory", "defaults",
           "sample", "grid_levels", "to_unit", "from_unit"]

SCALES = ("log", "linear", "one_minus_log")
METHODS = ("grid", "random", "sobol", "halton")


class Dim(NamedTuple):
    """One tuned hyper-parameter: its keyword ``name``, the range ``[low, high]``, the ``scale`` and the ``default``.

    Validated by :func:`check_dim` (called by every function of this module that takes a space).

    Example:
      >>> Dim("b1", 0.5, 0.999, "one_minus_log", 0.9).scale
      'one_minus_log'
    """
    name: str
    low: float
    high: float
    scale: str
    default: float


def check_dim(dim: Dim) -> Dim:
    """Check one :class:`Dim`: ``low < high``, a known scale, ``low > 0`` on ``"log"``, ``high < 1`` on
    ``"one_minus_log"`` and ``low <= default <= high``. Returns the Dim; raises ValueError saying how to fix it.

    Example:
      >>> check_dim(Dim("lr", 0.0, 1.0, "log", 0.1))
      Traceback (most recent call last):
      ...
      ValueError: Dim 'lr': a "log" scale needs low > 0, got low=0.0; use e.g. low=1e-4, or scale="linear".
    """
    name, low, high, scale, default = dim
    where = f"Dim {name!r}"
    if scale not in SCALES:
        raise ValueError(f"{where}: scale must be one of {', '.join(SCALES)}, got scale={scale!r}; pick one of those.")
    if not all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) for v in (low, high, default)):
        raise ValueError(f"{where}: low, high and default must be finite numbers, got low={low!r}, high={high!r}, "
                         f"default={default!r}; pass floats.")
    if not low < high:
        raise ValueError(f"{where}: expected low < high, got low={low!r}, high={high!r}; swap or widen the range.")
    if scale == "log" and low <= 0:
        raise ValueError(f'{where}: a "log" scale needs low > 0, got low={low!r}; use e.g. '
                         f'low=1e-4, or scale="linear".')
    if scale == "one_minus_log" and high >= 1:
        raise ValueError(f'{where}: a "one_minus_log" scale needs high < 1 (1 - v is log-uniform), got high={high!r}; '
                         f"use e.g. high=0.999.")
    if not low <= default <= high:
        raise ValueError(f"{where}: the default must lie in [low, high] = [{low!r}, {high!r}], got "
                         f"default={default!r}; widen the range or change the default.")
    return dim


def _lr(default: float) -> Dim:
    return Dim("learning_rate", 1e-4, 1.0, "log", default)


def _beta(name: str, default: float, low: float = 0.5, high: float = 0.999) -> Dim:
    return Dim(name, low, high, "one_minus_log", default)


_ADAM = (_lr(1e-3), _beta("b1", 0.9), _beta("b2", 0.999, 0.9, 0.9999))

#: The search space of each rule, by the names of :data:`fnn.optimizers.RULES` and ``"optax:<name>"`` (module doc).
SPACES: dict[str, tuple[Dim, ...]] = {
    "sgd": (_lr(1e-2),),
    "momentum": (_lr(1e-2), _beta("mu", 0.9)),
    "nesterov": (_lr(1e-2), _beta("mu", 0.9)),
    "adagrad": (_lr(1e-2),),
    "rmsprop": (_lr(1e-3), _beta("decay", 0.9)),
    "adadelta": (_lr(1.0), _beta("rho", 0.95)),
    "adam": _ADAM,
    "adamw": _ADAM,
    "adamax": (_lr(2e-3),) + _ADAM[1:],
    "nadam": _ADAM,
    "optax:sgd": (_lr(1e-2),),
    "optax:momentum": (_lr(1e-2), _beta("momentum", 0.9)),
    "optax:nesterov": (_lr(1e-2), _beta("momentum", 0.9)),
    "optax:adagrad": (_lr(1e-2),),
    "optax:rmsprop": (_lr(1e-3), _beta("decay", 0.9)),
    "optax:adam": _ADAM,
    "optax:adamw": _ADAM,
}

_OPTAX: dict[str, Callable[..., optax.GradientTransformation]] = {
    "optax:sgd": lambda learning_rate: optax.sgd(learning_rate),
    "optax:momentum": lambda learning_rate, momentum=0.9: optax.sgd(learning_rate, momentum=momentum),
    "optax:nesterov": lambda learning_rate, momentum=0.9: optax.sgd(learning_rate, momentum=momentum, nesterov=True),
    "optax:adagrad": optax.adagrad,
    "optax:rmsprop": optax.rmsprop,
    "optax:adam": optax.adam,
    "optax:adamw": optax.adamw,
}


def _unknown(where: str, rule) -> ValueError:
    return ValueError(f"{where}: unknown rule {rule!r}; valid names: {', '.join(SPACES)}.")


def space_for(rule: str) -> tuple[Dim, ...]:
    """The search space of ``rule`` (a key of :data:`SPACES`), each Dim validated.

    Example:
      >>> [d.name for d in space_for("adam")]
      ['learning_rate', 'b1', 'b2']
    """
    if rule not in SPACES:
        raise _unknown("space_for", rule)
    return tuple(check_dim(d) for d in SPACES[rule])


def make_factory(rule: str) -> Callable[..., optax.GradientTransformation]:
    """``make_optimizer(**hp)`` for ``rule``: builds the rule from keyword hyper-parameters (numbers or traced scalars).

    fnn names build ``fnn.optimizers.RULES[rule](**hp)``; optax names build the optax constructor
    (``optax:momentum`` and ``optax:nesterov`` are ``optax.sgd(learning_rate, momentum=momentum[, nesterov=True])``).
    Under ``jax.vmap`` over a configuration batch ``{name: (C,)}`` each call sees scalars, so one compiled program
    runs all C configurations.

    Example:
      >>> opt = make_factory("optax:momentum")(learning_rate=0.1, momentum=0.9)
      >>> u, _ = opt.update(np.ones(2, np.float32), opt.init(np.zeros(2, np.float32)))
      >>> [round(x, 6) for x in u.tolist()]
      [-0.1, -0.1]
    """
    if rule not in SPACES:
        raise _unknown("make_factory", rule)
    build = _OPTAX[rule] if rule.startswith("optax:") else optimizers.RULES[rule]

    def make_optimizer(**hp):
        return build(**hp)

    make_optimizer.__name__ = f"make_{rule.replace(':', '_')}"
    return make_optimizer


def describe(space: tuple[Dim, ...]) -> str:
    """The space as text, one line per Dim: name, scale, range and default (what the lab's report prints).

    Example:
      >>> print(describe(space_for("momentum")))
      learning_rate  log            [0.0001, 1]  default 0.01
      mu             one_minus_log  [0.5, 0.999]  default 0.9  (1 - mu log-uniform in [0.001, 0.5])
    """
    space = _checked("describe", space)
    width = max(len(d.name) for d in space)
    lines = []
    for d in space:
        line = f"{d.name:<{width}}  {d.scale:<13}  [{d.low:g}, {d.high:g}]  default {d.default:g}"
        if d.scale == "one_minus_log":
            line += f"  (1 - {d.name} log-uniform in [{1 - d.high:.6g}, {1 - d.low:.6g}])"
        lines.append(line)
    return "\n".join(lines)


def _checked(where: str, space) -> tuple[Dim, ...]:
    if not isinstance(space, (tuple, list)) or not space or not all(isinstance(d, Dim) for d in space):
        raise ValueError(f"{where}: expected a non-empty tuple of Dim (e.g. space_for('adam')), got {space!r}; "
                         f"build it with Dim(name, low, high, scale, default).")
    names = [d.name for d in space]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: expected distinct Dim names, got {names}; remove the duplicates.")
    return tuple(check_dim(d) for d in space)


def _f32(d: Dim, v) -> np.ndarray:
    """Values of ``d`` as float32, clipped into ``[float32(low), float32(high)]`` (rounding cannot leave the range)."""
    lo, hi = np.float32(d.low), np.float32(d.high)
    return np.clip(np.asarray(v, np.float64).astype(np.float32), lo, hi)


def defaults(space: tuple[Dim, ...]) -> dict[str, np.ndarray]:
    """The one-shot configuration: each Dim's default, as ``{name: (1,) float32}``.

    Example:
      >>> {k: v.tolist() for k, v in defaults(space_for("sgd")).items()}
      {'learning_rate': [0.009999999776482582]}
    """
    space = _checked("defaults", space)
    return {d.name: _f32(d, [d.default]) for d in space}


def _from_unit_1d(d: Dim, u: np.ndarray) -> np.ndarray:
    if d.scale == "linear":
        return d.low + u * (d.high - d.low)
    if d.scale == "log":
        return np.exp(np.log(d.low) + u * (np.log(d.high) - np.log(d.low)))
    return 1.0 - np.exp(np.log1p(-d.low) + u * (np.log1p(-d.high) - np.log1p(-d.low)))


def _to_unit_1d(d: Dim, v: np.ndarray) -> np.ndarray:
    if d.scale == "linear":
        return (v - d.low) / (d.high - d.low)
    if d.scale == "log":
        return (np.log(v) - np.log(d.low)) / (np.log(d.high) - np.log(d.low))
    return (np.log1p(-v) - np.log1p(-d.low)) / (np.log1p(-d.high) - np.log1p(-d.low))


def from_unit(space: tuple[Dim, ...], u) -> dict[str, np.ndarray]:
    """Map points of the unit cube to configurations through each Dim's scale (module doc).

    Args:
      space: tuple of d Dims.
      u: ``(n, d)`` array with entries in [0, 1] (clipped into it).

    Returns:
      ``{name: (n,) float32}``, each value inside ``[low, high]``.

    Example:
      >>> from_unit((Dim("lr", 1e-4, 1.0, "log", 1e-2),), np.array([[0.5]]))["lr"].tolist()
      [0.009999999776482582]
    """
    space = _checked("from_unit", space)
    u = np.asarray(u, np.float64)
    if u.ndim != 2 or u.shape[1] != len(space):
        raise ValueError(f"from_unit: expected u of shape (n, {len(space)}) for the dims "
                         f"{[d.name for d in space]}, got shape {u.shape}; pass one row per configuration.")
    u = np.clip(u, 0.0, 1.0)
    return {d.name: _f32(d, _from_unit_1d(d, u[:, j])) for j, d in enumerate(space)}


def to_unit(space: tuple[Dim, ...], hp: dict) -> np.ndarray:
    """Map configurations to the unit cube (the inverse of :func:`from_unit`), clipped into [0, 1].

    Args:
      space: tuple of d Dims.
      hp: ``{name: (n,) array}`` with exactly the space's names.

    Returns:
      ``(n, d)`` float64 array.

    Example:
      >>> to_unit((Dim("lr", 1e-4, 1.0, "log", 1e-2),), {"lr": np.array([1e-2])}).round(6).tolist()
      [[0.5]]
    """
    space = _checked("to_unit", space)
    names = [d.name for d in space]
    if not isinstance(hp, dict) or set(hp) != set(names):
        got = sorted(hp) if isinstance(hp, dict) else type(hp).__name__
        raise ValueError(f"to_unit: expected a dict with the keys {names}, got {got}; pass one array per Dim.")
    cols = [np.atleast_1d(np.asarray(hp[n], np.float64)) for n in names]
    if any(c.ndim != 1 or c.shape != cols[0].shape for c in cols):
        raise ValueError(f"to_unit: expected arrays of one common shape (n,), got shapes "
                         f"{[c.shape for c in cols]}; pass one value per configuration for every Dim.")
    u = np.stack([_to_unit_1d(d, c) for d, c in zip(space, cols)], axis=1)
    return np.clip(u, 0.0, 1.0)


def grid_levels(d: int, n: int) -> tuple[int, ...]:
    """Levels per dimension of the full factorial grid with at most ``n`` points in ``d`` dimensions.

    With ``n >= 2^d`` every Dim is varied: among the level vectors with product <= n choose the largest minimum level
    (balance), then the largest product, then the smallest maximum, then lexicographically the largest (extra levels
    go to the first Dim, the learning rate). With ``n < 2^d`` not every Dim can take 2 levels: all n go to the
    learning rate (the first Dim), the others stay at their defaults (the learning rate matters most; Schmidt et al.
    2021, section 4).

    Example:
      >>> grid_levels(3, 16), grid_levels(3, 26), grid_levels(3, 5), grid_levels(2, 10)
      ((4, 2, 2), (4, 3, 2), (5, 1, 1), (3, 3))
    """
    if n < 2 ** d:
        return (n,) + (1,) * (d - 1)
    best = None
    for k in _products(d, n):
        key = (min(k), math.prod(k), -max(k), k)
        best = key if best is None or key > best else best
    return best[-1]


def _products(d: int, n: int):
    """Every vector of d positive ints whose product is <= n (recursively, pruning on the product)."""
    if d == 0:
        yield ()
        return
    for k in range(1, n + 1):
        for rest in _products(d - 1, n // k):
            yield (k,) + rest


def _grid(space: tuple[Dim, ...], n: int) -> np.ndarray:
    levels = grid_levels(len(space), n)
    axes = []
    for d, k in zip(space, levels):
        if k == 1:   # an unvaried Dim stays at its default
            axes.append(_to_unit_1d(d, np.asarray([d.default], np.float64)))
        else:        # cell centres: evenly spaced in the scale, never the extreme ends
            axes.append((np.arange(k) + 0.5) / k)
    return np.array(list(itertools.product(*axes)), np.float64).reshape(-1, len(space))


def _qmc(engine, n: int) -> np.ndarray:
    if hasattr(engine, "random_base2"):   # Sobol': draw a power of 2 (balance properties), keep the first n
        return engine.random_base2(max(0, math.ceil(math.log2(n))))[:n]
    return engine.random(n)


def sample(space: tuple[Dim, ...], n: int, method: str, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Draw configurations: ``"grid"``, ``"random"``, ``"sobol"`` or ``"halton"``, mapped through the scales.

    - ``"grid"``: the full factorial of :func:`grid_levels`; a Dim with k > 1 levels takes the cell centres
      ``(i + 1/2) / k`` of the unit interval (evenly spaced in its scale), a Dim with one level its default. The grid
      has ``prod(levels) <= n`` points (e.g. 12 of n = 12 for 3 dims: (3, 2, 2)) and those are returned: exactly the
      points built, possibly fewer than n. ``seed`` is unused.
    - ``"random"``: i.i.d. uniform points of the unit cube (``np.random.default_rng(seed)``).
    - ``"sobol"``/``"halton"``: scrambled low-discrepancy points from ``scipy.stats.qmc`` seeded with ``seed``
      (Sobol' draws the next power of 2 and keeps the first n).

    Returns:
      ``{name: (C,) float32}``, values inside ``[low, high]``; C = n except for the grid.

    Example:
      >>> hp = sample(space_for("adam"), 16, "grid")
      >>> hp["learning_rate"].shape, len(np.unique(hp["learning_rate"])), len(np.unique(hp["b1"]))
      ((16,), 4, 2)

    Reference: Bergstra & Bengio, "Random search for hyper-parameter optimization", JMLR 2012, section 2 and 5.
    """
    space = _checked("sample", space)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"sample: n must be an int >= 1, got n={n!r}; pass the number of configurations.")
    if method not in METHODS:
        raise ValueError(f"sample: method must be one of {', '.join(METHODS)}, got method={method!r}; pick one.")
    d = len(space)
    if method == "grid":
        u = _grid(space, int(n))
    elif method == "random":
        u = np.random.default_rng(seed).random((int(n), d))
    else:
        from scipy.stats import qmc  # scipy loads only when quasi-random points are asked for
        engine = (qmc.Sobol if method == "sobol" else qmc.Halton)(d, scramble=True, rng=np.random.default_rng(seed))
        u = _qmc(engine, int(n))
    return from_unit(space, u)
