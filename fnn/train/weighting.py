"""Per-example and per-class weights for training: ``fit(sample_weight=..., class_weight=...)``.

The weighted objective of one batch B is the weighted mean of ``fnn.losses``:

    J_B = sum_{i in B} v_i C_i / sum_{i in B} v_i,    v_i = s_i c_(y_i),

s_i the example's ``sample_weight``, c_k the ``class_weight`` of class k, C_i the example's loss. The weights ride
along with the targets: the engine's targets are the pair ``(y, v)`` (every leaf has the n examples on axis 0 and
is gathered with the same batch indices), and :func:`weighted_objective` turns ``loss(outputs, y, weights=...)`` into
``loss(outputs, (y, v))``. Metrics stay unweighted (they see ``y`` only), and so does the validation pass.

Why sum v rather than n as the denominator (PyTorch's ``CrossEntropyLoss(weight=...)``, not Keras'
``sample_weight``, which divides by n): weights all equal to any constant give exactly the unweighted loss (the
learning rate keeps its meaning when the weights are rescaled), and an integer weight m on an example equals m
copies of it in the batch. The price: in a mini-batch the normalisation is per batch, a ratio estimate of the
full-data weighted mean (exact for the full batch).
"""
from __future__ import annotations

import functools
import inspect
from typing import Sequence

import numpy as np

from fnn.metrics import get_metric

__all__ = ["class_weight_vector", "balanced_class_weight", "example_weights", "weighted_objective",
           "with_weights"]


def _class_of_each_example(y, where):
    """``(n,)`` integer classes of integer labels ``(n,)``, one-hot rows ``(n, K)``, or 0/1 targets ``(n,)``/``(n, 1)``;
    ``None`` for probability rows (their class weight is ``y @ c``)."""
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer) and y.ndim == 1:
        return y
    if y.ndim == 2 and y.shape[1] > 1:
        is_one_hot = np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)
        return np.argmax(y, axis=1) if is_one_hot else None
    flat = y.reshape(y.shape[0], -1) if y.ndim else y
    if y.ndim in (1, 2) and flat.shape[-1] == 1 or y.ndim == 1:
        if np.all((y == 0) | (y == 1)):
            return y.reshape(-1).astype(np.int64)
    raise ValueError(f"{where}: class_weight needs one class per example: integer labels (n,), one-hot rows (n, K) "
                     f"or 0/1 targets (n,)/(n, 1), got targets of shape {y.shape} and dtype {y.dtype}; pass "
                     f"sample_weight instead")


def balanced_class_weight(labels) -> dict:
    """scikit-learn's ``"balanced"`` class weights: c_k = n / (K count_k) over the K classes present in ``labels``.

    Example:
      >>> balanced_class_weight([0, 0, 0, 1])  # 4 / (2 * 3), 4 / (2 * 1)
      {0: 0.6666666666666666, 1: 2.0}

    Reference: King & Zeng, "Logistic regression in rare events data", Political Analysis 9, 2001, eq. (8);
    scikit-learn ``sklearn.utils.class_weight.compute_class_weight``.
    """
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    n = counts.sum()
    return {int(k): float(n / (len(classes) * c)) for k, c in zip(classes, counts)}


def class_weight_vector(class_weight, num_classes: int, where: str = "class_weight_vector") -> np.ndarray:
    """A ``{class: weight}`` dict (missing classes weigh 1, as in Keras and scikit-learn) or a sequence of
    ``num_classes`` weights as a float32 ``(num_classes,)`` array of finite weights >= 0.

    Example:
      >>> class_weight_vector({1: 5.0}, 3).tolist()
      [1.0, 5.0, 1.0]
    """
    if isinstance(class_weight, dict):
        bad = [k for k in class_weight if not (isinstance(k, (int, np.integer)) and 0 <= k < num_classes)]
        if bad:
            raise ValueError(f"{where}: class_weight keys must be classes in [0, {num_classes}), got {bad[0]!r}")
        c = np.ones(num_classes, np.float32)
        for k, v in class_weight.items():
            c[int(k)] = v
    else:
        c = np.asarray(class_weight, np.float32)
        if c.shape != (num_classes,):
            raise ValueError(f"{where}: expected class_weight of shape ({num_classes},), one per class, got shape "
                             f"{c.shape}; or pass a {{class: weight}} dict or \"balanced\"")
    if not (np.all(np.isfinite(c)) and c.min(initial=0) >= 0):
        raise ValueError(f"{where}: expected finite class weights >= 0, got {c.tolist()}")
    return c


def example_weights(y, sample_weight=None, class_weight=None, *, num_classes: int | None = None,
                    where: str = "fit") -> np.ndarray | None:
    """The per-example weights v_i = s_i c_(y_i) of ``fit``: a float32 ``(n,)`` array, or ``None`` when both are None.

    Args:
      y: the training targets, ``(n,)`` integer labels, ``(n, K)`` one-hot or probability rows, or ``(n,)``/
        ``(n, 1)`` 0/1 targets (for ``class_weight``; ``sample_weight`` alone accepts any targets).
      sample_weight: ``(n,)`` finite weights s_i >= 0, or None.
      class_weight: ``{class: weight}``, a ``(K,)`` array, ``"balanced"`` (:func:`balanced_class_weight`) or None.
        For probability rows the class weight is ``sum_k y_k c_k``.
      num_classes: K; default ``y.shape[1]`` for rows, else ``max(y) + 1``.
      where: the caller's name in error messages.

    Example:
      >>> example_weights(np.array([0, 1, 1, 1]), sample_weight=[1, 1, 2, 0], class_weight="balanced").tolist()
      [2.0, 0.6666666865348816, 1.3333333730697632, 0.0]
    """
    if sample_weight is None and class_weight is None:
        return None
    y = np.asarray(y)
    n = y.shape[0]
    v = np.ones(n, np.float32)
    if sample_weight is not None:
        s = np.asarray(sample_weight)
        if s.shape != (n,):
            raise ValueError(f"{where}: expected sample_weight of shape ({n},), one per training example, got shape "
                             f"{s.shape}; pass a flat array (sample_weight.reshape(-1))")
        if not (np.issubdtype(s.dtype, np.number) and np.all(np.isfinite(s)) and s.min(initial=0) >= 0):
            raise ValueError(f"{where}: expected finite sample_weight >= 0, got values in "
                             f"[{s.min(initial=0)}, {s.max(initial=0)}] of dtype {s.dtype}")
        v = v * s.astype(np.float32)
    if class_weight is not None:
        labels = _class_of_each_example(y, where)
        k = num_classes or (y.shape[1] if labels is None or y.ndim == 2 and y.shape[1] > 1 else int(labels.max()) + 1)
        if isinstance(class_weight, str):
            if class_weight != "balanced":
                raise ValueError(f"{where}: class_weight must be a dict, an array or \"balanced\", got "
                                 f"{class_weight!r}")
            if labels is None:
                raise ValueError(f"{where}: class_weight=\"balanced\" needs hard labels, got probability rows")
            class_weight = balanced_class_weight(labels)
        c = class_weight_vector(class_weight, k, where)
        v = v * (c[labels] if labels is not None else y.astype(np.float32) @ c)
    if not v.sum() > 0:
        raise ValueError(f"{where}: the example weights sum to 0: every example would be ignored; give some "
                         f"example a positive weight")
    return v.astype(np.float32)


def _accepts_weights(loss) -> bool:
    try:
        return "weights" in inspect.signature(loss).parameters
    except (TypeError, ValueError):
        return False


def weighted_objective(loss, metrics: Sequence = ("accuracy",)):
    """``(loss_w, metrics_w)`` for targets that are the pair ``(y, v)``: ``loss_w(out, (y, v)) = loss(out, y,
    weights=v)``; every metric sees ``y`` only (metrics stay unweighted) and keeps its name (the history keys).

    Example:
      >>> import jax.numpy as jnp
      >>> from fnn import losses
      >>> loss_w, metrics_w = weighted_objective(losses.quadratic_cost, ["accuracy"])
      >>> float(loss_w(jnp.zeros((2, 1)), (jnp.array([[1.0], [2.0]]), jnp.array([1.0, 0.0]))))  # 1/2 * 1
      0.5
    """
    if not _accepts_weights(loss):
        raise TypeError(f"weighted_objective: the loss {getattr(loss, '__name__', loss)!r} takes no weights= "
                        f"argument, so sample_weight/class_weight cannot be applied; use a loss of fnn.losses or "
                        f"add weights=None (the (n,) example weights) to yours")

    @functools.wraps(loss)
    def loss_w(outputs, targets):
        y, v = targets
        return loss(outputs, y, weights=v)

    def unweighted(name, fn):
        def metric(outputs, targets):
            return fn(outputs, targets[0])
        metric.__name__ = name
        return metric

    return loss_w, [unweighted(*get_metric(m)) for m in metrics]


def with_weights(y, v):
    """The engine's targets: ``y`` itself when ``v`` is None, else the pair ``(y, v)`` (see
    :func:`weighted_objective`)."""
    return y if v is None else (y, v)
