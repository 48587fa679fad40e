"""What every loss shares: the shape and label checks, and the (weighted) mean over the examples of a batch.

Reduction (the one definition, used by every loss in ``fnn.losses``): a loss computes a per-entry value l_ij for
example i and entry j (output unit, class position, time step; d entries per example) and returns

    J = sum_i sum_j v_ij l_ij / (sum_i sum_j v_ij / d),    v_ij = w_i c_ij,

where w_i is the example's weight (``weights=``, shape (n,)) and c_ij the weight of the class of entry (i, j)
(``class_weights=``, shape (classes,)). Without weights (v = 1) this is ``1/n sum_i sum_j l_ij``, the mean over the
examples of the per-example sum; ``mse`` divides by d once more (the mean over every entry). A batch whose weights
are all 0 has J = 0 (and gradient 0) instead of 0/0.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fnn import checks

__all__ = ["same_shape", "check_labels", "check_signs", "nan_unless", "batch_mean", "check_weights",
           "check_class_weights", "weighted_batch_mean"]


def same_shape(where: str, outputs, targets):
    """``(outputs, targets)`` as arrays of exactly the same shape ``(n, ...)``, else a ``ValueError`` with the fix."""
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


def batch_mean(per_entry):
    """Sum over all non-batch axes, mean over the batch axis 0 (the unweighted reduction)."""
    return jnp.mean(jnp.sum(per_entry.reshape(per_entry.shape[0], -1), axis=1))


def check_labels(where: str, logits, labels):
    """Integer labels of shape ``logits.shape[:-1]`` in [0, classes); returns ``(logits, labels, valid)``."""
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


def check_signs(where: str, targets):
    """``valid``: True where a target is -1 or +1; concrete targets with another value raise ``ValueError``."""
    concrete = checks.concrete(targets)
    if concrete is not None:
        bad = concrete[(concrete != 1) & (concrete != -1)]
        if bad.size:
            raise ValueError(f"{where}: expected targets in {{-1, +1}}, got {bad.flat[0].item()!r}; map 0/1 labels "
                             f"with 2 * y - 1")
    return (targets == 1) | (targets == -1)


def nan_unless(valid, x):
    """``x`` where ``valid``, NaN elsewhere (a bad label under ``jit`` gives NaN, never a wrong finite loss)."""
    return jnp.where(valid, x, jnp.nan)


def _check_nonnegative(where: str, name: str, w, fix: str):
    concrete = checks.concrete(w)
    if concrete is not None and concrete.size and not (np.all(np.isfinite(concrete)) and concrete.min() >= 0):
        bad = concrete[~(np.isfinite(concrete) & (concrete >= 0))]
        raise ValueError(f"{where}: expected finite {name} >= 0, got {bad.flat[0].item()!r}; {fix}")


def check_weights(where: str, weights, n: int):
    """Per-example weights as a float ``(n,)`` array (or None): finite and >= 0 when concrete.

    Example:
      >>> check_weights("demo", [1, 2], 2).tolist()
      [1.0, 2.0]
    """
    if weights is None:
        return None
    w = jnp.asarray(weights)
    if w.shape != (n,):
        raise ValueError(f"{where}: expected weights of shape ({n},), one per example of the batch, got shape "
                         f"{w.shape}; pass a flat array (weights.reshape(-1)) or None")
    if not jnp.issubdtype(w.dtype, jnp.floating):
        w = w.astype(jnp.float32)
    _check_nonnegative(where, "weights", w, "weights scale each example's loss and must not be negative")
    return w


def check_class_weights(where: str, class_weights, classes: int):
    """Class weights as a float ``(classes,)`` array (or None): finite and >= 0 when concrete."""
    if class_weights is None:
        return None
    c = jnp.asarray(class_weights)
    if c.shape != (classes,):
        raise ValueError(f"{where}: expected class_weights of shape ({classes},), one per class, got shape "
                         f"{c.shape}; a {{class: weight}} dict goes through fnn.train.weighting.class_weight_vector")
    if not jnp.issubdtype(c.dtype, jnp.floating):
        c = c.astype(jnp.float32)
    _check_nonnegative(where, "class_weights", c, "use 0 to ignore a class")
    return c


def weighted_batch_mean(per_entry, weights=None, entry_weights=None):
    """The reduction of every loss: ``J = sum_ij v_ij l_ij / (sum_ij v_ij / d)`` with ``v_ij = w_i c_ij``.

    Args:
      per_entry: ``(n, ...)`` per-entry losses l (d entries per example).
      weights: ``(n,)`` example weights w (checked by ``check_weights``) or None (all 1).
      entry_weights: per-entry class weights c of ``per_entry``'s shape, or None (all 1).
    Returns:
      scalar; ``batch_mean(per_entry)`` itself when both are None (bit for bit the unweighted loss); 0 when every
      v is 0.

    Example:
      >>> float(weighted_batch_mean(jnp.array([1.0, 4.0]), jnp.array([3.0, 1.0])))  # (3 * 1 + 1 * 4) / 4
      1.75
    """
    if weights is None and entry_weights is None:
        return batch_mean(per_entry)
    n = per_entry.shape[0]
    flat = per_entry.reshape(n, -1)
    v = jnp.ones_like(flat) if entry_weights is None else jnp.reshape(entry_weights, flat.shape).astype(flat.dtype)
    if weights is not None:
        v = v * weights.astype(flat.dtype)[:, None]
    total = jnp.sum(v) / flat.shape[1]
    return jnp.sum(v * flat) / jnp.where(total > 0, total, 1)
