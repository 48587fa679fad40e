"""Classification metrics on model outputs: accuracy, top-k accuracy, confusion matrix, precision/recall/F1.

The contract (stated once, here): a metric is ``metric(outputs, targets) -> scalar``, the mean over the batch, with

    outputs  (n, C)   scores, logits or probabilities (any monotone map of them gives the same result)
    targets  (n,)     integer class labels in [0, C), or (n, C) one-hot / probability rows (their argmax is the label)

so a metric takes the same arguments as a loss (``fnn.losses``) and ``fit``/``evaluate`` call both the same way.
Everything is pure ``jax.numpy``: metrics run inside the compiled training step. ``METRICS`` maps the names accepted
by ``fit(metrics=...)`` to the functions.
"""
from __future__ import annotations

import jax.numpy as jnp

from fnn import checks

__all__ = ["labels_of", "accuracy", "error_rate", "top_k_accuracy", "confusion_matrix",
           "precision_recall_f1", "METRICS", "get_metric"]


def labels_of(outputs, targets):
    """Integer class labels of ``targets``: the labels themselves, or the argmax of one-hot/probability rows.

    Args:
      outputs: ``(n, C)`` model outputs (used only to tell labels from rows by rank).
      targets: ``(n,)`` integer labels or ``(n, C)`` rows.

    Returns:
      ``(n,)`` int32 labels.
    """
    if targets.ndim == outputs.ndim:
        if targets.shape != outputs.shape:
            raise ValueError(f"metrics: expected one-hot targets of the outputs' shape {outputs.shape}, got "
                             f"{targets.shape}; pass integer labels (n,) or rows (n, C)")
        return jnp.argmax(targets, axis=-1).astype(jnp.int32)
    if targets.ndim != outputs.ndim - 1 or targets.shape != outputs.shape[:-1]:
        raise ValueError(f"metrics: expected integer labels of shape {outputs.shape[:-1]} for outputs of shape "
                         f"{outputs.shape}, got {targets.shape}")
    return targets.astype(jnp.int32)


def accuracy(outputs, targets):
    """Fraction of examples whose highest-scoring class is the target class.

    ``acc = mean_i [argmax_c outputs[i, c] == t_i]`` with ``t_i`` the label of example i.

    Args:
      outputs: ``(n, C)`` scores.
      targets: ``(n,)`` integer labels or ``(n, C)`` one-hot rows.

    Returns:
      Scalar float32 in [0, 1].

    Example:
      >>> float(accuracy(jnp.array([[0.1, 0.9], [0.8, 0.2]]), jnp.array([1, 1])))
      0.5

    Reference: Bishop, "Pattern Recognition and Machine Learning", 2006, sec. 1.5 (misclassification rate).
    Ties go to the lowest class index (``jnp.argmax``'s rule).
    """
    hits = jnp.argmax(outputs, axis=-1) == labels_of(outputs, targets)
    return jnp.mean(hits.astype(jnp.float32))


def error_rate(outputs, targets):
    """Misclassification rate ``1 - accuracy(outputs, targets)`` (shapes as ``accuracy``)."""
    return 1.0 - accuracy(outputs, targets)


def top_k_accuracy(outputs, targets, k: int = 5):
    """Fraction of examples whose target class is among the ``k`` highest scores.

    ``acc_k = mean_i [#{c : outputs[i, c] > outputs[i, t_i]} < k]`` (ties counted in the target's favour).

    Args:
      outputs: ``(n, C)`` scores.
      targets: ``(n,)`` integer labels or ``(n, C)`` one-hot rows.
      k: ``1 <= k``; ``k >= C`` gives 1.

    Returns:
      Scalar float32 in [0, 1]; ``top_k_accuracy(o, t, 1)`` equals ``accuracy(o, t)`` when scores have no ties.

    Reference: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep CNNs", NeurIPS 2012, sec. 6.
    """
    checks.positive_int("top_k_accuracy", k=k)
    t = labels_of(outputs, targets)
    target_score = jnp.take_along_axis(outputs, t[..., None], axis=-1)
    rank = jnp.sum(outputs > target_score, axis=-1)
    return jnp.mean((rank < k).astype(jnp.float32))


def confusion_matrix(outputs, targets, num_classes: int | None = None):
    """Counts ``M[i, j]`` of examples of true class ``i`` predicted as class ``j``.

    ``M[i, j] = #{n : t_n = i and argmax_c outputs[n, c] = j}``; rows sum to the class counts.

    Args:
      outputs: ``(n, C)`` scores, or ``(n,)`` integer predictions (then pass ``num_classes``).
      targets: ``(n,)`` integer labels or ``(n, C)`` one-hot rows.
      num_classes: ``C``; defaults to ``outputs.shape[-1]``.

    Returns:
      ``(C, C)`` int32 matrix.

    Reference: Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters 27, 2006, sec. 2.
    """
    if outputs.ndim == 1:
        if num_classes is None:
            raise ValueError("confusion_matrix: integer predictions of shape (n,) need num_classes=C")
        checks.positive_int("confusion_matrix", num_classes=num_classes)
        pred, t, c = outputs.astype(jnp.int32), targets.astype(jnp.int32), num_classes
        if t.ndim != 1:
            t = jnp.argmax(targets, axis=-1)
    else:
        pred, t = jnp.argmax(outputs, axis=-1), labels_of(outputs, targets)
        c = outputs.shape[-1] if num_classes is None else num_classes
    return jnp.zeros((c, c), jnp.int32).at[t, pred].add(1)


def precision_recall_f1(matrix):
    """Per-class precision, recall and F1 score from a confusion matrix ``M`` (rows true, columns predicted).

    ``precision_j = M[j, j] / sum_i M[i, j]``, ``recall_j = M[j, j] / sum_k M[j, k]``,
    ``f1_j = 2 precision_j recall_j / (precision_j + recall_j)``; a class never predicted (or never present) gets 0.

    Args:
      matrix: ``(C, C)`` counts, e.g. from ``confusion_matrix``.

    Returns:
      ``(precision, recall, f1)``, each ``(C,)`` float32.

    Reference: van Rijsbergen, "Information Retrieval", 2nd ed., 1979, ch. 7 (the F measure).
    """
    m = jnp.asarray(matrix, jnp.float32)
    tp = jnp.diagonal(m)
    pred, true = m.sum(axis=0), m.sum(axis=1)
    precision = jnp.where(pred > 0, tp / jnp.maximum(pred, 1.0), 0.0)
    recall = jnp.where(true > 0, tp / jnp.maximum(true, 1.0), 0.0)
    denom = precision + recall
    f1 = jnp.where(denom > 0, 2 * precision * recall / jnp.where(denom > 0, denom, 1.0), 0.0)
    return precision, recall, f1


METRICS = {"accuracy": accuracy, "error_rate": error_rate, "top_5_accuracy": top_k_accuracy}


def get_metric(metric):
    """Resolve ``metric`` to ``(name, fn)``: a name in ``METRICS``, ``"top_<k>_accuracy"`` for any k >= 1 (e.g.
    ``"top_3_accuracy"``; ``"top_k_accuracy"`` is k = 5, the function's default), or a function
    ``(outputs, targets) -> scalar`` (its ``__name__`` becomes the history key).

    Example:
      >>> import jax.numpy as jnp
      >>> name, fn = get_metric("top_2_accuracy")
      >>> name, float(fn(jnp.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]]), jnp.array([2, 2])))
      ('top_2_accuracy', 0.5)
    """
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    if metric in METRICS:
        return metric, METRICS[metric]
    if metric == "top_k_accuracy":
        return metric, top_k_accuracy
    parts = metric.split("_") if isinstance(metric, str) else []
    if len(parts) == 3 and parts[0] == "top" and parts[1].isdigit() and int(parts[1]) >= 1 and parts[2] == "accuracy":
        k = int(parts[1])
        return metric, lambda outputs, targets: top_k_accuracy(outputs, targets, k)
    raise ValueError(f"get_metric: unknown metric {metric!r}; valid names: {', '.join(sorted(METRICS))}, "
                     f"top_k_accuracy (k=5) or top_<k>_accuracy for any k >= 1 (e.g. top_3_accuracy), or pass a "
                     f"function (outputs, targets) -> scalar")

