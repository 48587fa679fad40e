"""Losses (cost functions) and weight penalties.

Contract: ``loss(outputs, targets, ..., weights=None[, class_weights=None]) -> scalar``. Axis 0 of ``outputs``
indexes the n examples of the batch; the loss of one example sums over all its other axes (output units, classes),
and the batch loss is the mean over the n examples. ``mse`` is the one exception: it is the mean over every entry,
as its name says.

Weights: ``weights`` (n,) weighs each example, ``class_weights`` (classes,) each class (the classification losses);
the batch loss is then the weighted mean J = sum_i v_i C_i / sum_i v_i with v_i = w_i c_(y_i), PyTorch's
``reduction="mean"`` with ``weight=``: weights all equal give the unweighted loss, and an integer weight m on an
example equals m copies of it. The one definition is ``fnn.losses.base.weighted_batch_mean``.

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
# isort: skip_file
# the shared checks and the one (weighted) reduction live in fnn.losses.base
from fnn.losses import base
# two classes, several classes
from fnn.losses.classification import (
    binary_cross_entropy,
    hinge,
    logistic_loss,
    multiclass_hinge,
    nll,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
)
# weight penalties and the weight-decay mask
from fnn.losses.penalties import BIAS_NAMES, l1_penalty, l2_penalty, resolve_mask, weight_mask
# regression
from fnn.losses.regression import huber, mse, quadratic_cost

__all__ = [
    "quadratic_cost", "mse", "binary_cross_entropy", "sigmoid_binary_cross_entropy", "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels", "nll", "logistic_loss", "hinge", "multiclass_hinge", "huber",
    "l2_penalty", "l1_penalty", "weight_mask", "resolve_mask", "BIAS_NAMES",
]
