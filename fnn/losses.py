"""Losses (cost functions) and weight penalties.

Contract: ``loss(outputs, targets, ...) -> scalar``. Axis 0 of ``outputs`` indexes the n examples of the batch; the
loss of one example sums over all its other axes (output units, classes), and the batch loss is the mean over the n
examples. ``mse`` is the one exception: it is the mean over every entry, as its name says.

Shapes must agree exactly: ``outputs`` and ``targets`` of different shapes raise ``ValueError`` instead of
broadcasting (a (n,) target against (n, 1) predictions would silently broadcast to an (n, n) loss). Losses that take
integer class labels want ``labels.shape == outputs.shape[:-1]``.

Label checks: labels outside [0, classes), or +-1 targets that are not +-1, raise ``ValueError`` naming the bad value
when the labels are concrete (eager calls, and inside ``jax.grad`` of the outputs). Under ``jax.jit`` (or ``vmap``)
the labels are traced and cannot be inspected; the loss is then NaN, never a silently wrong finite number. All losses
are stable for outputs (logits) up to ``|z| = 1e4``: finite values and finite gradients.

Penalties ``l2_penalty``/``l1_penalty(params, lam, mask=None)`` penalise the weights only by default: fnn's one
weight-decay mask, :func:`weight_mask` (no biases, no BatchNorm/LayerNorm gamma and beta), defined here.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn import checks
from fnn.activations import log_softmax, softplus

__all__ = [
    "quadratic_cost", "mse", "binary_cross_entropy", "sigmoid_binary_cross_entropy", "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels", "nll", "logistic_loss", "hinge", "multiclass_hinge", "huber",
    "l2_penalty", "l1_penalty", "weight_mask", "resolve_mask", "BIAS_NAMES",
]


# ---------------------------------------------------------------------------------------------------- checks
def _same_shape(where: str, outputs, targets):
    outputs, targets = jnp.asarray(outputs), jnp.asarray(targets)
    if outputs.ndim < 1:
        raise ValueError(f"{where}: expected outputs with a batch axis (n, ...), got a scalar; "
                         f"wrap a single example as outputs[None]")
    if outputs.shape != targets.shape:
        o, t = outputs.shape, targets.shape
        if o == t + (1,):
            fix = "use targets[..., None] (or outputs[..., 0])"
        elif t == o + (1,):
            fix = "use targets[..., 0] (or outputs[..., None])"
        else:
            fix = f"reshape one of them, e.g. targets.reshape({o})"
        raise ValueError(f"{where}: outputs have shape {o} but targets have shape {t}; shapes must match exactly "
                         f"(fnn never broadcasts a loss): {fix}")
    return outputs, targets


def _batch_mean(per_entry):
    """Sum over all non-batch axes, mean over the batch axis 0."""
    return jnp.mean(jnp.sum(per_entry.reshape(per_entry.shape[0], -1), axis=1))


def _check_labels(where: str, logits, labels):
    """Integer labels of shape ``logits.shape[:-1]`` in [0, classes); returns ``(labels, valid)``."""
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if logits.ndim < 2:
        raise ValueError(f"{where}: expected outputs of shape (n, classes), got shape {logits.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{where}: expected integer class labels, got dtype {labels.dtype}; for one-hot targets "
                        f"use softmax_cross_entropy, or convert with labels.astype(int)")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"{where}: expected labels of shape {logits.shape[:-1]} for outputs of shape "
                         f"{logits.shape}, got shape {labels.shape}; pass one integer label per example "
                         f"(labels.reshape({logits.shape[:-1]}) or one_hot.argmax(-1))")
    k = logits.shape[-1]
    concrete = checks.concrete(labels)
    if concrete is not None:
        bad = concrete[(concrete < 0) | (concrete >= k)]
        if bad.size:
            raise ValueError(f"{where}: labels must lie in [0, {k}) for {k} classes, got label {int(bad[0])} "
                             f"({bad.size} bad label(s) in all)")
    zero, classes = np.zeros((), labels.dtype), np.asarray(k, labels.dtype)  # typed: no weak-type promotion
    return logits, labels, (labels >= zero) & (labels < classes)


def _check_signs(where: str, targets):
    concrete = checks.concrete(targets)
    if concrete is not None:
        bad = concrete[(concrete != 1) & (concrete != -1)]
        if bad.size:
            raise ValueError(f"{where}: expected targets in {{-1, +1}}, got {bad.flat[0].item()!r}; map 0/1 labels "
                             f"with 2 * y - 1")
    return (targets == 1) | (targets == -1)


def _nan_unless(valid, x):
    return jnp.where(valid, x, jnp.nan)


# ---------------------------------------------------------------------------------------------------- regression
def quadratic_cost(outputs, targets):
    """Quadratic cost: C = 1/(2n) sum_x ||y(x) - a(x)||^2 (a = ``outputs``, y = ``targets``).

    dC/da = (a - y) / n.

    Args:
      outputs: (n, ...) network outputs a.
      targets: desired outputs y, same shape.
    Returns:
      scalar.

    Example:
      >>> round(float(quadratic_cost(jnp.array([[0.8], [0.1]]), jnp.array([[1.0], [0.0]]))), 6)  # (0.04 + 0.01) / 4
      0.0125

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1, eq. (6).
    """
    a, y = _same_shape("quadratic_cost", outputs, targets)
    return 0.5 * _batch_mean(jnp.square(y - a))


def mse(outputs, targets):
    """Mean squared error over every entry: MSE = 1/(n d) sum_x sum_j (a_j - y_j)^2.

    With d entries per example, ``quadratic_cost = d / 2 * mse``.

    Args:
      outputs: (n, ...) predictions a.
      targets: same shape.
    Returns:
      scalar.

    Reference: Bishop, *Pattern Recognition and Machine Learning*, 2006, sec. 1.1, eq. (1.2) (the sum-of-squares
    error, here averaged).
    """
    a, y = _same_shape("mse", outputs, targets)
    return jnp.mean(jnp.square(a - y))


def huber(outputs, targets, delta: float = 1.0):
    """Huber loss: per entry, with r = a - y, L = r^2 / 2 if |r| <= delta else delta (|r| - delta / 2).

    dL/dr = r if |r| <= delta else delta sign(r). Summed over entries of an example, averaged over the batch.

    Args:
      outputs: (n, ...) predictions a.
      targets: same shape.
      delta: the threshold (> 0) between the quadratic and the linear part.
    Returns:
      scalar.

    Reference: Huber, "Robust estimation of a location parameter", Annals of Mathematical Statistics, 1964, eq. (9).
    """
    if isinstance(delta, (int, float)) and not delta > 0:
        raise ValueError(f"huber: expected delta > 0, got {delta!r}")
    a, y = _same_shape("huber", outputs, targets)
    abs_r = jnp.abs(a - y)
    quad = jnp.minimum(abs_r, delta)  # = |r| inside, delta outside
    return _batch_mean(0.5 * quad * quad + delta * (abs_r - quad))


# ---------------------------------------------------------------------------------------------------- binary
def binary_cross_entropy(probs, targets, eps: float | None = None):
    """Binary cross-entropy on probabilities: C = -1/n sum_x sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)].

    dC/da_j = (a_j - y_j) / (n a_j (1 - a_j)). Probabilities are clipped to [eps, 1 - eps] (eps defaults to the
    dtype's machine epsilon) so that a = 0 or 1 gives a large finite loss, not inf; where the clip is active the
    gradient is 0. Prefer :func:`sigmoid_binary_cross_entropy` on logits: it needs no clipping.

    Args:
      probs: (n, ...) probabilities a in [0, 1] (sigmoid outputs).
      targets: same shape, in [0, 1] (soft labels allowed).
      eps: clipping margin.
    Returns:
      scalar.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (63).
    """
    a, y = _same_shape("binary_cross_entropy", probs, targets)
    a = a.astype(jnp.result_type(a, jnp.float32))
    eps = jnp.finfo(a.dtype).eps if eps is None else eps
    concrete = checks.concrete(y)
    if concrete is not None and concrete.size and (concrete.min() < 0 or concrete.max() > 1):
        raise ValueError(f"binary_cross_entropy: expected targets in [0, 1], got values in "
                         f"[{concrete.min()}, {concrete.max()}]")
    a = jnp.clip(a, eps, 1 - eps)
    return _batch_mean(-(y * jnp.log(a) + (1 - y) * jnp.log1p(-a)))


def sigmoid_binary_cross_entropy(logits, targets):
    """Binary cross-entropy on logits z (a = sigma(z)), stable for any z.

    C = 1/n sum_x sum_j [y_j softplus(-z_j) + (1 - y_j) softplus(z_j)]  (= -[y ln sigma(z) + (1-y) ln(1-sigma(z))]);
    dC/dz_j = (sigma(z_j) - y_j) / n. softplus never overflows, so z = +-1e4 gives finite values and gradients.

    Args:
      logits: (n, ...) pre-sigmoid outputs z.
      targets: same shape, in [0, 1].
    Returns:
      scalar.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (63) and (72) (dC/dz = a - y);
    Bishop, *Pattern Recognition and Machine Learning*, 2006, eq. (4.90)-(4.91).
    """
    z, y = _same_shape("sigmoid_binary_cross_entropy", logits, targets)
    return _batch_mean(y * softplus(-z) + (1 - y) * softplus(z))


def logistic_loss(scores, targets):
    """Logistic loss with +-1 labels: C = 1/n sum_x sum_j -ln sigma(y_j f_j) = 1/n sum softplus(-y_j f_j).

    dC/df_j = -y_j sigma(-y_j f_j) / n. Equals :func:`sigmoid_binary_cross_entropy` with labels (y + 1) / 2.

    Args:
      scores: (n, ...) real-valued scores f.
      targets: same shape, each -1 or +1 (checked when concrete; NaN under jit otherwise).
    Returns:
      scalar.

    Reference: Hastie, Tibshirani, Friedman, *The Elements of Statistical Learning*, 2nd ed., 2009, sec. 10.6,
    table 10.2 (binomial deviance log(1 + exp(-y f))).
    """
    f, y = _same_shape("logistic_loss", scores, targets)
    valid = _check_signs("logistic_loss", y)
    return _batch_mean(_nan_unless(valid, softplus(-y * f)))


def hinge(scores, targets, margin: float = 1.0):
    """Hinge loss (binary SVM) with +-1 labels: C = 1/n sum_x sum_j max(0, margin - y_j f_j).

    dC/df_j = -y_j / n where y_j f_j < margin, else 0.

    Args:
      scores: (n, ...) real-valued scores f.
      targets: same shape, each -1 or +1 (checked when concrete; NaN under jit otherwise).
      margin: the margin (1 in the standard SVM).
    Returns:
      scalar.

    Reference: Cortes & Vapnik, "Support-vector networks", Machine Learning 20, 1995; Hastie et al., *The Elements
    of Statistical Learning*, 2009, eq. (12.25).
    """
    f, y = _same_shape("hinge", scores, targets)
    valid = _check_signs("hinge", y)
    return _batch_mean(_nan_unless(valid, jax.nn.relu(margin - y * f)))


# ---------------------------------------------------------------------------------------------------- multiclass
def softmax_cross_entropy(logits, targets):
    """Softmax cross-entropy with one-hot (or probability) targets: C = -1/n sum_x sum_k y_k ln softmax(z)_k.

    dC/dz_k = (softmax(z)_k - y_k) / n (when sum_k y_k = 1). Uses the stable ``log_softmax``; logits of +-1e4 are
    fine.

    Args:
      logits: (n, ..., classes) scores z.
      targets: same shape; each row a one-hot vector or a probability distribution.
    Returns:
      scalar.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (80) with the softmax (78);
    Bishop, *Pattern Recognition and Machine Learning*, 2006, eq. (4.108).
    """
    z, y = _same_shape("softmax_cross_entropy", logits, targets)
    if z.ndim < 2:
        raise ValueError(f"softmax_cross_entropy: expected logits of shape (n, classes), got shape {z.shape}")
    # y * log p with y = 0 and log p finite is 0: no masking needed because log_softmax is finite.
    return _batch_mean(-y * log_softmax(z, axis=-1))


def softmax_cross_entropy_with_integer_labels(logits, labels):
    """Softmax cross-entropy with integer labels: C = 1/n sum_x [ln sum_k exp(z_k) - z_label].

    dC/dz_k = (softmax(z)_k - [k = label]) / n.

    Args:
      logits: (n, ..., classes) scores z.
      labels: integer array of shape ``logits.shape[:-1]``, each in [0, classes) (a ValueError names the first bad
        label when the labels are concrete; under jit a bad label makes the loss NaN).
    Returns:
      scalar.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (80) ("log-likelihood cost").
    """
    z, labels, valid = _check_labels("softmax_cross_entropy_with_integer_labels", logits, labels)
    return _nll_of_log_probs(log_softmax(z, axis=-1), labels, valid)


def nll(log_probs, labels):
    """Negative log-likelihood of integer labels under log-probabilities: C = -1/n sum_x ln p(label | x).

    ``log_probs`` are log-probabilities (e.g. the output of a ``LogSoftmax`` layer); dC/d(log p)_k = -[k = label]/n.
    ``nll(log_softmax(z), labels) == softmax_cross_entropy_with_integer_labels(z, labels)``.

    Args:
      log_probs: (n, ..., classes) log-probabilities.
      labels: integer array of shape ``log_probs.shape[:-1]`` in [0, classes) (checked as in
        :func:`softmax_cross_entropy_with_integer_labels`).
    Returns:
      scalar.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (80); Bishop, *Pattern Recognition
    and Machine Learning*, 2006, sec. 4.3.4.
    """
    lp, labels, valid = _check_labels("nll", log_probs, labels)
    return _nll_of_log_probs(lp, labels, valid)


def _nll_of_log_probs(log_p, labels, valid):
    safe = jnp.where(valid, labels, 0)
    picked = jnp.take_along_axis(log_p, safe[..., None], axis=-1)[..., 0]
    return _batch_mean(_nan_unless(valid, -picked)[..., None])


def multiclass_hinge(scores, labels, margin: float = 1.0, kind: str = "weston_watkins"):
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
    Returns:
      scalar.

    Reference: Weston & Watkins, "Support vector machines for multi-class pattern recognition", ESANN 1999, eq. (5);
    Crammer & Singer, "On the algorithmic implementation of multiclass kernel-based vector machines", JMLR 2001,
    eq. (9).
    """
    checks.one_of("multiclass_hinge", ("weston_watkins", "crammer_singer"), kind=kind)
    f, labels, valid = _check_labels("multiclass_hinge", scores, labels)
    k = f.shape[-1]
    is_label = jax.nn.one_hot(jnp.where(valid, labels, 0), k, dtype=bool)
    f_y = jnp.sum(jnp.where(is_label, f, 0), axis=-1, keepdims=True)
    if kind == "weston_watkins":
        per = jnp.sum(jnp.where(is_label, 0, jax.nn.relu(margin + f - f_y)), axis=-1)
    else:
        rival = jnp.max(jnp.where(is_label, -jnp.inf, f), axis=-1, keepdims=True)
        per = jax.nn.relu(margin + rival - f_y)[..., 0]
    return _batch_mean(_nan_unless(valid, per)[..., None])


# ---------------------------------------------------------------------------------------------------- penalties
#: Leaf names of biases, never decayed: Dense/Conv ``b``, BatchNorm/LayerNorm ``beta``, attention ``bq``, ...
BIAS_NAMES = ("b", "beta", "bias", "bq", "bk", "bv", "bo")


def _last_name(path) -> str | None:
    k = path[-1] if path else None  # GetAttrKey (NamedTuple fields, dataclasses) has .name, DictKey has .key
    name = getattr(k, "name", getattr(k, "key", None))
    return None if name is None else str(name)


def weight_mask(params) -> Any:
    """fnn's one weight-decay mask: a pytree of bools like ``params``, True for weights, False for the rest.

    A leaf is *not* decayed (False) when its tree path ends with a field or dict key in ``BIAS_NAMES`` (``b``,
    ``beta``, ``bias``, attention's ``bq``/``bk``/``bv``/``bo``), or when it has fewer than 2 dimensions (biases,
    BatchNorm/LayerNorm ``gamma`` and ``beta``, scalars). Everything else (``W``, conv kernels, recurrent ``U``,
    embedding tables) is a weight (True). The default of ``l2_penalty``, ``l1_penalty``, ``fit(l2=...)``, ``adamw``
    and ``transforms.weight_decay``, and a valid optax mask (``optax.adamw(..., mask=weight_mask)``).

    Example:
      >>> weight_mask({"W": jnp.ones((3, 2)), "b": jnp.ones(2), "gamma": jnp.ones(2)})
      {'W': True, 'b': False, 'gamma': False}

    Reference: Goodfellow, Bengio & Courville, *Deep Learning*, 2016, sec. 7.1 (biases are not regularized).
    """
    def is_weight(path, leaf):
        return not (_last_name(path) in BIAS_NAMES or jnp.ndim(leaf) < 2)
    return jax.tree_util.tree_map_with_path(is_weight, params)


def resolve_mask(params, mask: Any = None, where: str = "resolve_mask") -> Any:
    """Turn any ``mask=`` argument of fnn into a pytree of bools like ``params`` (True: decay/penalise the leaf).

    ``mask`` is None (the default, :func:`weight_mask`: weights only), True (every leaf), False (none), a pytree of
    bools with ``params``'s structure, or a callable ``params -> pytree of bools`` (optax's convention). A mask
    whose tree structure differs from ``params``'s raises ``ValueError``, printing both.

    Example:
      >>> resolve_mask({"W": jnp.ones((3, 2)), "b": jnp.ones(2)}, True)
      {'W': True, 'b': True}
    """
    if mask is None:
        return weight_mask(params)
    if isinstance(mask, bool):
        return jax.tree.map(lambda _: mask, params)
    if callable(mask):
        mask = mask(params)
    p_def, m_def = jax.tree_util.tree_structure(params), jax.tree_util.tree_structure(mask)
    if p_def != m_def:
        raise ValueError(f"{where}: mask must have the same tree structure as params; params: {p_def}, mask: "
                         f"{m_def}; build one with fnn.losses.weight_mask(params) and edit it, or pass a callable "
                         f"params -> pytree of bools")
    return mask


def _penalty(where, params, lam, mask, per_leaf):
    if isinstance(lam, (int, float)) and not lam >= 0:  # a traced lam (under jit) is not checked
        raise ValueError(f"{where}: expected lam >= 0, got {lam!r}")
    flags = jax.tree_util.tree_leaves(resolve_mask(params, mask, where))
    terms = [jnp.sum(per_leaf(jnp.asarray(w))) for w, keep in zip(jax.tree_util.tree_leaves(params), flags) if keep]
    return sum(terms[1:], terms[0]) if terms else jnp.zeros(())


def l2_penalty(params, lam: float, mask: Any = None):
    """L2 weight penalty (weight decay): R = lam / 2 * sum_w w^2 over the masked leaves; dR/dw = lam w.

    Nielsen's regularized cost is C = C_0 + lam / (2 n) sum_w w^2 with n the training-set size: pass
    ``lam / n_train`` as ``lam`` to get it. Its gradient is what ``optimizers.transforms.weight_decay(lam)`` adds.

    Args:
      params: a params pytree (e.g. from ``serial(...).init``).
      lam: the regularization strength lambda >= 0.
      mask: as in :func:`resolve_mask`; default None: weights only (:func:`weight_mask`).
    Returns:
      scalar.

    Example:
      >>> float(l2_penalty({"W": jnp.ones((2, 2)), "b": jnp.ones(2)}, 0.5))  # 0.5 / 2 * 4, the bias is skipped
      1.0

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (85); Krogh & Hertz, "A simple
    weight decay can improve generalization", NIPS 1991.
    """
    return 0.5 * lam * _penalty("l2_penalty", params, lam, mask, jnp.square)


def l1_penalty(params, lam: float, mask: Any = None):
    """L1 weight penalty: R = lam * sum_w |w| over the masked leaves; dR/dw = lam sgn(w), with sgn(0) = 0.

    Nielsen's form is C = C_0 + lam / n sum_w |w|: pass ``lam / n_train`` as ``lam``.

    Args:
      params: a params pytree.
      lam: the regularization strength lambda >= 0.
      mask: as in :func:`l2_penalty`.
    Returns:
      scalar.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (95); Tibshirani, "Regression
    shrinkage and selection via the lasso", JRSS B, 1996.
    """
    # |w| written as w sgn(w) so that the gradient is sgn(w) with sgn(0) = 0, as in Nielsen's eq. (97).
    return lam * _penalty("l1_penalty", params, lam, mask, lambda w: w * jnp.sign(w))
