"""Classification losses: two classes (on probabilities, logits or +-1 scores) and several classes (softmax
cross-entropy, negative log-likelihood, multiclass hinge).

Weights: every loss here accepts ``weights=None`` (one weight w_i >= 0 per example, shape (n,)) and
``class_weights=None`` (one weight c_k >= 0 per class, shape (classes,); (2,) for the two-class losses, class 0
then class 1, i.e. target 0 (or -1) then 1 (or +1)). The class weight of an entry is c at its label; for one-hot or
probability targets y it is sum_k y_k c_k (equal to c at the label for one-hot rows), for soft binary targets
(1 - y) c_0 + y c_1. The loss is the weighted mean of ``fnn.losses.base``: J = sum_i v_i C_i / sum_i v_i with
v_i = w_i c_(y_i) for one label per example.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn import checks
from fnn.activations import log_softmax, softplus
from fnn.losses.base import (
    check_class_weights,
    check_labels,
    check_signs,
    check_weights,
    nan_unless,
    same_shape,
    weighted_batch_mean,
)

__all__ = ["binary_cross_entropy", "sigmoid_binary_cross_entropy", "logistic_loss", "hinge",
           "softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels", "nll", "multiclass_hinge"]


def _reduce(where, per_entry, weights, class_weights, classes, entry_class_weights):
    """Weighted mean of ``per_entry`` (n, ...); ``entry_class_weights(c)`` maps the checked (classes,) vector c to
    the per-entry class weights of ``per_entry``'s shape."""
    w = check_weights(where, weights, per_entry.shape[0])
    c = check_class_weights(where, class_weights, classes)
    return weighted_batch_mean(per_entry, w, None if c is None else entry_class_weights(c))


# ---------------------------------------------------------------------------------------------------- two classes
def binary_cross_entropy(probs, targets, eps: float | None = None, weights=None, class_weights=None):
    """Binary cross-entropy on probabilities: C = -1/n sum_x sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)].

    dC/da_j = (a_j - y_j) / (n a_j (1 - a_j)). Probabilities are clipped to [eps, 1 - eps] (eps defaults to the
    dtype's machine epsilon) so that a = 0 or 1 gives a large finite loss, not inf; where the clip is active the
    gradient is 0. Prefer :func:`sigmoid_binary_cross_entropy` on logits: it needs no clipping.

    Args:
      probs: (n, ...) probabilities a in [0, 1] (sigmoid outputs).
      targets: same shape, in [0, 1] (soft labels allowed).
      eps: clipping margin.
      weights, class_weights: optional (n,) example weights and (2,) class weights (this module's docstring).
    Returns:
      scalar.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (63).
    """
    a, y = same_shape("binary_cross_entropy", probs, targets)
    a = a.astype(jnp.result_type(a, jnp.float32))
    eps = jnp.finfo(a.dtype).eps if eps is None else eps
    concrete = checks.concrete(y)
    if concrete is not None and concrete.size and (concrete.min() < 0 or concrete.max() > 1):
        raise ValueError(f"binary_cross_entropy: expected targets in [0, 1], got values in "
                         f"[{concrete.min()}, {concrete.max()}]")
    a = jnp.clip(a, eps, 1 - eps)
    return _reduce("binary_cross_entropy", -(y * jnp.log(a) + (1 - y) * jnp.log1p(-a)), weights, class_weights, 2,
                   lambda c: (1 - y) * c[0] + y * c[1])


def sigmoid_binary_cross_entropy(logits, targets, weights=None, class_weights=None):
    """Binary cross-entropy on logits z (a = sigma(z)), stable for any z.

    C = 1/n sum_x sum_j [y_j softplus(-z_j) + (1 - y_j) softplus(z_j)]  (= -[y ln sigma(z) + (1-y) ln(1-sigma(z))]);
    dC/dz_j = (sigma(z_j) - y_j) / n. softplus never overflows, so z = +-1e4 gives finite values and gradients.

    Args:
      logits: (n, ...) pre-sigmoid outputs z.
      targets: same shape, in [0, 1].
      weights, class_weights: optional (n,) example weights and (2,) class weights (this module's docstring).
    Returns:
      scalar.

    Example:
      >>> z, y = jnp.array([[0.0], [0.0], [0.0]]), jnp.array([[1.0], [0.0], [0.0]])
      >>> round(float(sigmoid_binary_cross_entropy(z, y, class_weights=jnp.array([1.0, 2.0]))), 6)  # all ln 2
      0.693147

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (63) and (72) (dC/dz = a - y);
    Bishop, *Pattern Recognition and Machine Learning*, 2006, eq. (4.90)-(4.91).
    """
    z, y = same_shape("sigmoid_binary_cross_entropy", logits, targets)
    return _reduce("sigmoid_binary_cross_entropy", y * softplus(-z) + (1 - y) * softplus(z), weights,
                   class_weights, 2, lambda c: (1 - y) * c[0] + y * c[1])


def logistic_loss(scores, targets, weights=None, class_weights=None):
    """Logistic loss with +-1 labels: C = 1/n sum_x sum_j -ln sigma(y_j f_j) = 1/n sum softplus(-y_j f_j).

    dC/df_j = -y_j sigma(-y_j f_j) / n. Equals :func:`sigmoid_binary_cross_entropy` with labels (y + 1) / 2.

    Args:
      scores: (n, ...) real-valued scores f.
      targets: same shape, each -1 or +1 (checked when concrete; NaN under jit otherwise).
      weights, class_weights: optional (n,) example weights and (2,) class weights for -1, +1.
    Returns:
      scalar.

    Reference: Hastie, Tibshirani, Friedman, *The Elements of Statistical Learning*, 2nd ed., 2009, sec. 10.6,
    table 10.2 (binomial deviance log(1 + exp(-y f))).
    """
    f, y = same_shape("logistic_loss", scores, targets)
    valid = check_signs("logistic_loss", y)
    return _reduce("logistic_loss", nan_unless(valid, softplus(-y * f)), weights, class_weights, 2,
                   lambda c: jnp.where(y > 0, c[1], c[0]))


def hinge(scores, targets, margin: float = 1.0, weights=None, class_weights=None):
    """Hinge loss (binary SVM) with +-1 labels: C = 1/n sum_x sum_j max(0, margin - y_j f_j).

    dC/df_j = -y_j / n where y_j f_j < margin, else 0. With class weights this is the class-weighted SVM.

    Args:
      scores: (n, ...) real-valued scores f.
      targets: same shape, each -1 or +1 (checked when concrete; NaN under jit otherwise).
      margin: the margin (1 in the standard SVM).
      weights, class_weights: optional (n,) example weights and (2,) class weights for -1, +1.
    Returns:
      scalar.

    Reference: Cortes & Vapnik, "Support-vector networks", Machine Learning 20, 1995; Hastie et al., *The Elements
    of Statistical Learning*, 2009, eq. (12.25).
    """
    f, y = same_shape("hinge", scores, targets)
    valid = check_signs("hinge", y)
    return _reduce("hinge", nan_unless(valid, jax.nn.relu(margin - y * f)), weights, class_weights, 2,
                   lambda c: jnp.where(y > 0, c[1], c[0]))


# ---------------------------------------------------------------------------------------------------- several classes
def softmax_cross_entropy(logits, targets, weights=None, class_weights=None):
    """Softmax cross-entropy with one-hot (or probability) targets: C = -1/n sum_x sum_k y_k ln softmax(z)_k.

    dC/dz_k = (softmax(z)_k - y_k) / n (when sum_k y_k = 1). Uses the stable ``log_softmax``; logits of +-1e4 are
    fine. A row's class weight is sum_k y_k c_k (c at the label for a one-hot row, so this equals
    :func:`softmax_cross_entropy_with_integer_labels` with the same weights). For soft targets this departs from
    PyTorch, which weights each term y_k ln p_k by c_k and divides by n.

    Args:
      logits: (n, ..., classes) scores z.
      targets: same shape; each row a one-hot vector or a probability distribution.
      weights, class_weights: optional (n,) example weights and (classes,) class weights.
    Returns:
      scalar.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (80) with the softmax (78);
    Bishop, *Pattern Recognition and Machine Learning*, 2006, eq. (4.108).
    """
    z, y = same_shape("softmax_cross_entropy", logits, targets)
    if z.ndim < 2:
        raise ValueError(f"softmax_cross_entropy: expected logits of shape (n, classes), got shape {z.shape}")
    # y * log p with y = 0 and log p finite is 0: no masking needed because log_softmax is finite.
    per = jnp.sum(-y * log_softmax(z, axis=-1), axis=-1)
    return _reduce("softmax_cross_entropy", per, weights, class_weights, z.shape[-1], lambda c: y @ c.astype(y.dtype))


def softmax_cross_entropy_with_integer_labels(logits, labels, weights=None, class_weights=None):
    """Softmax cross-entropy with integer labels: C = 1/n sum_x [ln sum_k exp(z_k) - z_label].

    dC/dz_k = (softmax(z)_k - [k = label]) / n. With weights: C = sum_x v_x C_x / sum_x v_x, v_x = w_x c_label,
    which is PyTorch's ``CrossEntropyLoss(weight=c, reduction="mean")``.

    Args:
      logits: (n, ..., classes) scores z.
      labels: integer array of shape ``logits.shape[:-1]``, each in [0, classes) (a ValueError names the first bad
        label when the labels are concrete; under jit a bad label makes the loss NaN).
      weights, class_weights: optional (n,) example weights and (classes,) class weights.
    Returns:
      scalar.

    Example:
      >>> z = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]]))
      >>> round(float(softmax_cross_entropy_with_integer_labels(z, jnp.array([0, 1]), weights=jnp.array([1, 3]))), 4)
      1.9002

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (80) ("log-likelihood cost").
    """
    where = "softmax_cross_entropy_with_integer_labels"
    z, labels, valid = check_labels(where, logits, labels)
    return _nll_of_log_probs(where, log_softmax(z, axis=-1), labels, valid, weights, class_weights)


def nll(log_probs, labels, weights=None, class_weights=None):
    """Negative log-likelihood of integer labels under log-probabilities: C = -1/n sum_x ln p(label | x).

    ``log_probs`` are log-probabilities (e.g. the output of a ``LogSoftmax`` layer); dC/d(log p)_k = -[k = label]/n.
    ``nll(log_softmax(z), labels) == softmax_cross_entropy_with_integer_labels(z, labels)``, with weights as well.

    Args:
      log_probs: (n, ..., classes) log-probabilities.
      labels: integer array of shape ``log_probs.shape[:-1]`` in [0, classes) (checked as in
        :func:`softmax_cross_entropy_with_integer_labels`).
      weights, class_weights: optional (n,) example weights and (classes,) class weights.
    Returns:
      scalar.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (80); Bishop, *Pattern Recognition
    and Machine Learning*, 2006, sec. 4.3.4.
    """
    lp, labels, valid = check_labels("nll", log_probs, labels)
    return _nll_of_log_probs("nll", lp, labels, valid, weights, class_weights)


def _label_weights(labels, valid):
    safe = jnp.where(valid, labels, 0)
    return lambda c: c[safe]


def _nll_of_log_probs(where, log_p, labels, valid, weights, class_weights):
    safe = jnp.where(valid, labels, 0)
    picked = jnp.take_along_axis(log_p, safe[..., None], axis=-1)[..., 0]
    return _reduce(where, nan_unless(valid, -picked), weights, class_weights, log_p.shape[-1],
                   _label_weights(labels, valid))


def multiclass_hinge(scores, labels, margin: float = 1.0, kind: str = "weston_watkins", weights=None,
                     class_weights=None):
    """Multiclass hinge loss (multiclass SVM) with integer labels y.

    ``kind="weston_watkins"`` (default): L = sum_{k != y} max(0, margin + f_k - f_y).
    ``kind="crammer_singer"``:           L = max(0, margin + max_{k != y} f_k - f_y).
    C = 1/n sum_x L. Gradient (Weston-Watkins): dL/df_k = [margin + f_k - f_y > 0] for k != y, and
    dL/df_y = -(number of such k).

    Args:
      scores: (n, ..., classes) scores f.
      labels: integer array of shape ``scores.shape[:-1]`` in [0, classes).
      margin: the margin (1 in both papers).
      kind: ``"weston_watkins"`` or ``"crammer_singer"``.
      weights, class_weights: optional (n,) example weights and (classes,) class weights.
    Returns:
      scalar.

    Reference: Weston & Watkins, "Support vector machines for multi-class pattern recognition", ESANN 1999, eq. (5);
    Crammer & Singer, "On the algorithmic implementation of multiclass kernel-based vector machines", JMLR 2001,
    eq. (9).
    """
    checks.one_of("multiclass_hinge", ("weston_watkins", "crammer_singer"), kind=kind)
    f, labels, valid = check_labels("multiclass_hinge", scores, labels)
    k = f.shape[-1]
    is_label = jax.nn.one_hot(jnp.where(valid, labels, 0), k, dtype=bool)
    f_y = jnp.sum(jnp.where(is_label, f, 0), axis=-1, keepdims=True)
    if kind == "weston_watkins":
        per = jnp.sum(jnp.where(is_label, 0, jax.nn.relu(margin + f - f_y)), axis=-1)
    else:
        rival = jnp.max(jnp.where(is_label, -jnp.inf, f), axis=-1, keepdims=True)
        per = jax.nn.relu(margin + rival - f_y)[..., 0]
    return _reduce("multiclass_hinge", nan_unless(valid, per), weights, class_weights, k,
                   _label_weights(labels, valid))
