"""Argument validators shared by the whole package: one wording for one kind of mistake.

Every validator takes the name of the caller (``where``) and the values to check as keywords, so the message
can name both, and raises one ``ValueError`` of the form::

    <where>: <name> must <requirement>, got <name>=<value>; <how to fix>

(``one_of`` says ``got <value>``: the name is already in the sentence). ``fix=`` replaces the default hint.
Values that cannot be inspected are let through: callables (schedules ``step -> value``, which optimizers accept
for any hyper-parameter) and traced arrays (under ``jit``/``vmap`` a batch of configurations is checked by the
caller before tracing, or not at all). This module is a foundation: it imports nothing from ``fnn``.

Example:
  >>> from fnn import checks
  >>> checks.positive("adam", learning_rate=1e-3, eps=1e-8)   # passes silently
  >>> checks.unit_interval("adam", b1=1.0)
  Traceback (most recent call last):
  ...
  ValueError: adam: b1 must lie in [0, 1), got b1=1.0; e.g. b1=0.9.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import jax
import numpy as np

__all__ = ["positive", "non_negative", "positive_int", "non_negative_int", "in_range", "unit_interval",
           "probability", "one_of", "finite", "concrete"]


def _skip(value) -> bool:
    """True for values a validator cannot inspect: schedules and traced arrays."""
    return callable(value) or isinstance(value, jax.core.Tracer)


def _show(value):
    """``value`` for the message: 0-d arrays and NumPy scalars as the Python number they hold."""
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        return value.item()
    return value


def _number(value) -> float | None:
    """``value`` as a float, or None when it is not a real number (strings, None, complex, arrays of size > 1)."""
    if isinstance(value, (str, bytes)) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _require(where: str, name: str, value, ok: bool, requirement: str, fix: str) -> None:
    if not ok:
        raise ValueError(f"{where}: {name} must {requirement}, got {name}={_show(value)!r}; {fix}")


def positive(where: str, /, fix: str | None = None, **values) -> None:
    """Each value is a finite real number ``> 0`` (learning rates, eps, widths, scales).

    Args:
      where: the caller's name, first word of the message.
      fix: the hint after ``;`` (default: ``pass a number > 0``).
      **values: ``name=value`` pairs.

    Raises:
      ValueError: ``"<where>: <name> must be > 0, got <name>=<value>; ..."`` for the first bad value.

    Example:
      >>> positive("sgd", learning_rate=0.0)
      Traceback (most recent call last):
      ...
      ValueError: sgd: learning_rate must be > 0, got learning_rate=0.0; pass a number > 0.
    """
    for name, v in values.items():
        if not _skip(v):
            x = _number(v)
            if x is not None and math.isinf(x):   # inf: a run with it "finishes" uselessly (nan fails "> 0")
                _require(where, name, v, False, "be finite", fix or "pass a number > 0.")
            _require(where, name, v, x is not None and x > 0, "be > 0", fix or "pass a number > 0.")


def non_negative(where: str, /, fix: str | None = None, **values) -> None:
    """Each value is a real number ``>= 0`` (weight decay, penalties, accumulators).

    Example:
      >>> non_negative("weight_decay", rate=-1.0)
      Traceback (most recent call last):
      ...
      ValueError: weight_decay: rate must be >= 0, got rate=-1.0; pass 0 (off) or a small number such as 1e-4.
    """
    for name, v in values.items():
        if not _skip(v):
            x = _number(v)
            _require(where, name, v, x is not None and x >= 0, "be >= 0",
                     fix or "pass 0 (off) or a small number such as 1e-4.")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def positive_int(where: str, /, fix: str | None = None, **values) -> None:
    """Each value is an integer ``>= 1`` (counts, sizes, periods); bools and floats such as ``3.0`` are refused.

    Example:
      >>> positive_int("top_k_accuracy", k=0)
      Traceback (most recent call last):
      ...
      ValueError: top_k_accuracy: k must be a positive integer (k >= 1), got k=0; e.g. k=1.
    """
    for name, v in values.items():
        if not _skip(v):
            _require(where, name, v, _is_int(v) and v >= 1, f"be a positive integer ({name} >= 1)",
                     fix or f"e.g. {name}=1.")


def non_negative_int(where: str, /, fix: str | None = None, **values) -> None:
    """Each value is an integer ``>= 0`` (steps, offsets, number of retries)."""
    for name, v in values.items():
        if not _skip(v):
            _require(where, name, v, _is_int(v) and v >= 0, "be an integer >= 0", fix or f"e.g. {name}=0.")


def in_range(where: str, low: float, high: float, /, closed: bool = False, fix: str | None = None,
             **values) -> None:
    """Each value lies in ``[low, high)`` (or ``[low, high]`` with ``closed=True``).

    Example:
      >>> in_range("momentum_annealing", 0.5, 1, mu_max=1.0)
      Traceback (most recent call last):
      ...
      ValueError: momentum_annealing: mu_max must lie in [0.5, 1), got mu_max=1.0; pick a value inside the interval.
    """
    bracket = "]" if closed else ")"
    for name, v in values.items():
        if not _skip(v):
            x = _number(v)
            ok = x is not None and low <= x and (x <= high if closed else x < high)
            _require(where, name, v, ok, f"lie in [{low}, {high}{bracket}",
                     fix or "pick a value inside the interval.")


def unit_interval(where: str, /, fix: str | None = None, **values) -> None:
    """Each value lies in ``[0, 1)``: decay rates, momentum, betas, the probability of dropping a unit.

    Example:
      >>> unit_interval("rmsprop", decay=0.9)   # passes
    """
    for name, v in values.items():
        if not _skip(v):
            x = _number(v)
            _require(where, name, v, x is not None and 0 <= x < 1, "lie in [0, 1)", fix or f"e.g. {name}=0.9.")


def probability(where: str, /, fix: str | None = None, **values) -> None:
    """Each value lies in ``[0, 1]`` (probabilities, fractions, mixing weights).

    Example:
      >>> probability("cosine", alpha=2.0)
      Traceback (most recent call last):
      ...
      ValueError: cosine: alpha must lie in [0, 1], got alpha=2.0; pass a fraction such as 0.5.
    """
    for name, v in values.items():
        if not _skip(v):
            x = _number(v)
            _require(where, name, v, x is not None and 0 <= x <= 1, "lie in [0, 1]",
                     fix or "pass a fraction such as 0.5.")


def one_of(where: str, choices: Iterable[Any], /, fix: str | None = None, **values) -> None:
    """Each value is one of ``choices`` (compared with ``==``).

    Example:
      >>> one_of("variance_scaling", ("fan_in", "fan_out", "fan_avg"), mode="fan_max")
      Traceback (most recent call last):
      ...
      ValueError: variance_scaling: mode must be one of 'fan_in', 'fan_out', 'fan_avg', got 'fan_max'; pick one.
    """
    choices = tuple(choices)
    listed = ", ".join(repr(c) for c in choices)
    for name, v in values.items():
        if not any(_same(v, c) for c in choices):
            raise ValueError(f"{where}: {name} must be one of {listed}, got {v!r}; {fix or 'pick one.'}")


def _same(v, c) -> bool:
    """``v == c`` without ``True == 1`` and without failing on values that do not compare to a bool."""
    if isinstance(v, bool) != isinstance(c, bool):
        return False
    try:
        return bool(v == c)
    except (TypeError, ValueError):
        return False


def finite(where: str, /, fix: str | None = None, **values) -> None:
    """Each value is a finite real number (not NaN, not +-inf, not a string).

    Example:
      >>> finite("constant", value=float("nan"))
      Traceback (most recent call last):
      ...
      ValueError: constant: value must be a finite number, got value=nan; pass a real number.
    """
    for name, v in values.items():
        if not _skip(v):
            x = _number(v)
            _require(where, name, v, x is not None and math.isfinite(x), "be a finite number",
                     fix or "pass a real number.")


def concrete(x) -> np.ndarray | None:
    """``x`` as a NumPy array, or None when it is traced (under ``jit``/``vmap``) and cannot be inspected.

    Validators of data (labels in range, targets in {-1, +1}) use it to check what they can and let traced values
    through.

    Example:
      >>> concrete([1, 2]).tolist()
      [1, 2]
      >>> seen = []
      >>> _ = jax.jit(lambda x: seen.append(concrete(x)) or x)(1.0)  # traced: nothing to inspect
      >>> seen
      [None]
    """
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None
