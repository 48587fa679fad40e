"""Adversarial examples and adversarial training: the fast gradient sign method and Goodfellow's mixed objective.

    x_adv = x + eps sign(grad_x J(theta, x, y))                                (Goodfellow et al. 2015, eq. 3)
    J~(theta, x, y) = alpha J(theta, x, y) + (1 - alpha) J(theta, x_adv, y)    (eq. 6)

``J`` is the training loss ``loss(apply(params, x), y)`` of one batch, ``eps >= 0`` the size of the perturbation in
the units of the inputs (max norm: every input moves by exactly ``eps`` or, where its gradient is exactly 0, not
at all), ``clip=(lo, hi)`` optionally puts ``x_adv`` back into the data range (pixels in [0, 1]).

The perturbation is a constant of the objective (``lax.stop_gradient``): ``grad_theta J~`` differentiates ``J`` at
the fixed point ``x_adv``, as in the paper's practice ("continually update the supply of adversarial examples").
Since ``d sign(u)/du = 0`` wherever it exists, this changes neither the value nor the gradient of ``J~``; it only
spares the second-order pass through ``grad_x J`` (tested against the closed form for logistic regression).

``fit`` takes the objective through a pair of wrappers. Its step computes ``loss(apply(params, x), y)``: the model
sees the inputs but not the labels, the loss sees the labels but not the parameters, and the perturbation needs
all three. ``adversarial_training`` lets the labels ride along with the inputs as one more column, so ``fit`` and
``evaluate`` run unchanged::

    adv = adversarial_training(model.apply, loss, eps=0.1, alpha=0.5, clip=(0.0, 1.0))
    fit(adv.apply, params, opt, adv.loss, adv.pack(X, y), y, metrics=adv.metrics, ...)

``adv.apply`` returns ``(n, 2, C)`` outputs: ``[:, 0]`` on the clean inputs, ``[:, 1]`` on their FGSM versions;
``adv.loss`` is ``J~`` on them; ``adv.metrics`` reports ``clean_accuracy`` and ``fgsm_accuracy`` (the history gets
both, and ``val_*`` of both for packed validation data). The trained ``params`` are the model's own.

Reference: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015, sec. 4
(eq. 3) and sec. 6 (eq. 6, alpha = 0.5).
"""
from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn import checks, losses
from fnn.metrics import accuracy, labels_of

__all__ = ["fgsm", "adversarial_loss", "adversarial_accuracy", "adversarial_training", "AdversarialTraining",
           "pack_labels", "clean_accuracy", "fgsm_accuracy"]

CE = losses.softmax_cross_entropy_with_integer_labels


def _check(where, eps, alpha=None, clip=None):
    checks.non_negative(where, eps=eps, fix="pass the perturbation size in input units, e.g. eps=0.1 for pixels "
                                           "in [0, 1] (0: no perturbation).")
    checks.finite(where, eps=eps)
    if alpha is not None:
        checks.probability(where, alpha=alpha, fix="alpha weighs the clean loss against the adversarial one; the "
                                                   "paper uses alpha=0.5 (1: clean training only).")
    if clip is not None:
        ok = isinstance(clip, (tuple, list)) and len(clip) == 2 and all(
            isinstance(c, (int, float, np.number)) and not isinstance(c, bool) for c in clip)
        if not (ok and clip[0] < clip[1]):
            raise ValueError(f"{where}: clip must be None or a pair (lo, hi) with lo < hi (the data range), got "
                             f"clip={clip!r}; e.g. clip=(0.0, 1.0) for pixels in [0, 1]")


def _call(apply, params, state, x, kwargs):
    """``(outputs, new_state)``; ``new_state`` is ``None`` for a stateless model (``state=None``)."""
    if state is None:
        return apply(params, x, **kwargs), None
    return apply(params, x, state=state, **kwargs)


def _perturb(x, grad_x, eps, clip):
    x_adv = x + eps * jnp.sign(grad_x).astype(x.dtype)
    return x_adv if clip is None else jnp.clip(x_adv, clip[0], clip[1])


def _clean_and_adversarial(apply, loss, params, x, y, eps, clip, state, kwargs):
    """``(outputs on x, outputs on x_adv, new state of the clean pass)``; one forward and one backward pass make
    ``x_adv``, one more forward pass its outputs. ``x_adv`` is held constant (``stop_gradient``)."""
    def J(x_):
        out, new_state = _call(apply, params, state, x_, kwargs)
        return loss(out, y), (out, new_state)

    grad_x, (out, new_state) = jax.grad(J, has_aux=True)(x)
    x_adv = lax.stop_gradient(_perturb(x, grad_x, eps, clip))
    out_adv, _ = _call(apply, params, state, x_adv, kwargs)
    return out, out_adv, new_state


def fgsm(apply, loss, params, x, y, eps, *, clip=None, state=None, **apply_kwargs):
    """The fast gradient sign method: ``x_adv = x + eps sign(grad_x loss(apply(params, x), y))``.

    The gradient is that of the batch's loss (a mean over the batch: the factor ``1/n`` does not change a sign);
    an input whose gradient is exactly 0 (a saturated softmax) is not moved. Without ``clip``,
    ``max |x_adv - x| = eps``.

    Args:
      apply: the model's apply function; params: its parameters.
      loss: ``loss(outputs, targets) -> scalar`` (``fnn.losses``).
      x: ``(n, ...)`` inputs; y: their targets (``(n,)`` labels or as the loss wants them).
      eps: ``>= 0``, the perturbation in input units.
      clip: ``None`` or ``(lo, hi)``: clip ``x_adv`` to the data range.
      state: the model state of a stateful model (its new state is discarded).
      **apply_kwargs: passed to ``apply``; ``train=False`` unless given (the attack sees the evaluated model).

    Returns:
      ``x_adv``, the shape and dtype of ``x``.

    Example:
      >>> import jax.numpy as jnp
      >>> from fnn import layers, losses
      >>> model = layers.Dense(1)
      >>> params = layers.DenseParams(jnp.array([[2.0], [-1.0]]), jnp.zeros(1))
      >>> # label 1: grad_x J = (sigmoid(w.x + b) - 1) w points against w = (2, -1), and so does the step
      >>> fgsm(model.apply, losses.sigmoid_binary_cross_entropy, params, jnp.zeros((1, 2)), jnp.ones((1, 1)), 0.1)
      Array([[-0.1,  0.1]], dtype=float32)

    Reference: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015, eq. 3.
    """
    _check("fgsm", eps, clip=clip)
    kwargs = {"train": False, **apply_kwargs}

    def J(x_):
        return loss(_call(apply, params, state, x_, kwargs)[0], y)

    return _perturb(x, jax.grad(J)(x), eps, clip)


def adversarial_loss(apply, loss, params, x, y, *, eps, alpha=0.5, clip=None, state=None, **apply_kwargs):
    """Goodfellow's adversarial objective ``J~ = alpha J(x, y) + (1 - alpha) J(x + eps sign(grad_x J), y)``.

    Both terms use the same model call (``apply_kwargs``, e.g. ``train=True, key=k``: the same dropout mask);
    the perturbation is computed at the current ``params`` and held constant (see the module docstring).
    ``alpha=1`` is the clean loss exactly. Usable wherever an objective of ``params`` is (``jax.grad``,
    ``fnn.train.minimize``); for ``fit`` use ``adversarial_training``.

    Args:
      apply, loss, params, x, y, eps, clip, state: as ``fgsm``.
      alpha: weight of the clean loss, in ``[0, 1]`` (the paper: 0.5).
      **apply_kwargs: passed to ``apply`` as given (``fit`` passes ``train=True, key=k``).

    Returns:
      The scalar ``J~``; ``(J~, new_state)`` when ``state`` is given (the clean pass's new state).

    Example:
      >>> import jax.numpy as jnp
      >>> from fnn import layers, losses
      >>> model = layers.Dense(1)
      >>> params = layers.DenseParams(jnp.array([[2.0], [-1.0]]), jnp.zeros(1))
      >>> x, y = jnp.zeros((1, 2)), jnp.ones((1, 1))
      >>> J = adversarial_loss(model.apply, losses.sigmoid_binary_cross_entropy, params, x, y, eps=0.1, alpha=1.0)
      >>> bool(J == losses.sigmoid_binary_cross_entropy(model.apply(params, x), y))
      True

    Reference: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015, eq. 6.
    """
    _check("adversarial_loss", eps, alpha, clip)
    out, out_adv, new_state = _clean_and_adversarial(apply, loss, params, x, y, eps, clip, state, apply_kwargs)
    value = alpha * loss(out, y) + (1 - alpha) * loss(out_adv, y)
    return value if state is None else (value, new_state)


def adversarial_accuracy(apply, params, X, y, eps, *, loss=CE, clip=None, state=None, batch_size: int = 1024,
                         **apply_kwargs) -> float:
    """Accuracy on FGSM-perturbed inputs: ``mean_i [argmax apply(params, fgsm(x_i)) == y_i]``, in batches.

    Each batch is attacked with the gradient of its own loss; with ``train=False`` (the default) examples do not
    interact, so the result does not depend on ``batch_size``. ``eps=0`` gives the clean accuracy.

    Args:
      apply, params, state: the model; its outputs are ``(n, C)`` class scores.
      X: ``(n, ...)`` inputs; y: ``(n,)`` integer labels (or ``(n, C)`` one-hot rows, with a loss to match).
      eps, clip: as ``fgsm``.
      loss: the loss whose gradient the attack follows (softmax cross-entropy with integer labels by default).
      batch_size: examples per compiled batch (the remainder is one more, smaller batch).
      **apply_kwargs: passed to ``apply``; ``train=False`` unless given.

    Returns:
      A Python float in [0, 1].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from fnn import layers
      >>> model = layers.Dense(2)
      >>> params = layers.DenseParams(jnp.array([[1.0, -1.0]]), jnp.zeros(2))
      >>> X, y = jnp.array([[0.5], [-2.0]]), jnp.array([0, 1])
      >>> adversarial_accuracy(model.apply, params, X, y, 0.0), adversarial_accuracy(model.apply, params, X, y, 1.0)
      (1.0, 0.5)
    """
    _check("adversarial_accuracy", eps, clip=clip)
    checks.positive_int("adversarial_accuracy", batch_size=batch_size)
    X, y = jnp.asarray(X), jnp.asarray(y)
    if X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"adversarial_accuracy: expected X and y with the same number of examples (> 0), got "
                         f"{X.shape} and {y.shape}; pass the inputs and their labels")
    kwargs = {"train": False, **apply_kwargs}
    arrays = {k: v for k, v in kwargs.items() if isinstance(v, jax.Array)}         # traced (keys, masks)
    static = tuple(sorted((k, v) for k, v in kwargs.items() if k not in arrays))   # part of the program
    clip = None if clip is None else tuple(clip)
    n, eps = int(X.shape[0]), jnp.float32(eps)
    total = sum(int(_hits(params, state, X[i:i + batch_size], y[i:i + batch_size], eps, arrays, apply=apply,
                          loss=loss, clip=clip, static=static)) for i in range(0, n, batch_size))
    return total / n


@functools.partial(jax.jit, static_argnames=("apply", "loss", "clip", "static"))
def _hits(params, state, x, t, eps, arrays, *, apply, loss, clip, static):
    """The number of examples of one batch that the model classifies right after the FGSM attack (compiled once
    per model, loss, clip and batch shape: ``eps`` is an argument)."""
    kwargs = {**dict(static), **arrays}
    x_adv = fgsm(apply, loss, params, x, t, eps, clip=clip, state=state, **kwargs)
    out = _call(apply, params, state, x_adv, kwargs)[0]
    return jnp.sum(jnp.argmax(out, axis=-1) == labels_of(out, t))


# ------------------------------------------------------------------------------------------------ fit's wrappers
def pack_labels(X, y):
    """The inputs with their labels as one more column: ``(n, D + 1)`` float32, ``D = prod(X.shape[1:])``.

    The input that ``adversarial_training``'s ``apply`` unpacks (float32 holds every integer label below 2^24
    exactly).

    Args:
      X: ``(n, ...)`` inputs. y: ``(n,)`` integer labels.

    Returns:
      ``concatenate([X.reshape(n, -1), y[:, None]], axis=1)`` as float32.

    Example:
      >>> import numpy as np
      >>> pack_labels(np.zeros((2, 3)), np.array([4, 7]))[:, -1]
      array([4., 7.], dtype=float32)
    """
    X, y = np.asarray(X), np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or X.ndim < 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"pack_labels: expected X (n, ...) and integer labels y (n,), got X {X.shape} and y "
                         f"{y.shape} of dtype {y.dtype}; pass class labels (np.argmax of one-hot rows)")
    return np.concatenate([X.reshape(X.shape[0], -1), y[:, None]], axis=1).astype(np.float32)


def _pair(outputs, where):
    if outputs.ndim < 2 or outputs.shape[1] != 2:
        raise ValueError(f"{where}: expected the (n, 2, ...) outputs of adversarial_training's apply (clean, "
                         f"adversarial), got shape {outputs.shape}; use adv.apply with adv.loss and adv.metrics")
    return outputs[:, 0], outputs[:, 1]


def clean_accuracy(outputs, targets):
    """Accuracy of the clean half ``outputs[:, 0]`` of ``adversarial_training``'s ``(n, 2, C)`` outputs."""
    return accuracy(_pair(outputs, "clean_accuracy")[0], targets)


def fgsm_accuracy(outputs, targets):
    """Accuracy of the FGSM half ``outputs[:, 1]`` of ``adversarial_training``'s ``(n, 2, C)`` outputs."""
    return accuracy(_pair(outputs, "fgsm_accuracy")[1], targets)


class AdversarialTraining(NamedTuple):
    """What ``adversarial_training`` returns: the pieces to hand to ``fit`` / ``evaluate``."""
    apply: Callable     # apply(params, pack(X, y), **kw) -> (n, 2, C): outputs on x and on x_adv
    loss: Callable      # loss(outputs, y) -> alpha J(clean) + (1 - alpha) J(adversarial)
    pack: Callable      # pack(X, y) -> (n, D + 1): the inputs with the labels as the last column
    metrics: tuple      # (clean_accuracy, fgsm_accuracy)


def adversarial_training(apply, loss, *, eps, alpha=0.5, clip=None, input_shape=None) -> AdversarialTraining:
    """Goodfellow's objective ``J~`` (eq. 6) as a model, a loss and metrics that ``fit`` takes unchanged.

    ``adv.apply(params, xy, **kw)`` splits the packed batch ``xy = pack(X, y)`` into ``x`` and the labels, makes
    ``x_adv = x + eps sign(grad_x loss(apply(params, x, **kw), y))`` (held constant) and returns the model's
    outputs on both, stacked: ``(n, 2, C)``. ``adv.loss(outputs, y) = alpha loss(outputs[:, 0], y) + (1 - alpha)
    loss(outputs[:, 1], y)`` equals ``adversarial_loss``. In training ``fit`` passes ``train=True, key=k``: both
    passes share the dropout mask; a stateful model (``state=``) keeps the state of the clean pass. In evaluation
    (``train=False``, validation, ``fnn.train.evaluate``) the outputs are the clean and the FGSM-attacked ones of
    the evaluated model. The labels in ``xy`` drive the attack, the ``y`` given to ``fit`` the loss: the same labels.

    Args:
      apply: the model's apply function (``(n, C)`` class scores).
      loss: ``loss(outputs, labels) -> scalar`` (e.g. ``fnn.losses.softmax_cross_entropy_with_integer_labels``).
      eps: ``>= 0``, the perturbation in input units. alpha: ``[0, 1]``, the clean loss's weight.
      clip: ``None`` or ``(lo, hi)``, the data range.
      input_shape: the model's feature shape, e.g. ``(8, 8, 1)``; ``None``: flat ``(n, D)`` inputs.

    Returns:
      ``AdversarialTraining(apply, loss, pack, metrics)``.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from fnn import layers, losses
      >>> model = layers.Dense(3)
      >>> params = layers.DenseParams(jnp.ones((4, 3)), jnp.zeros(3))
      >>> adv = adversarial_training(model.apply, losses.softmax_cross_entropy_with_integer_labels, eps=0.1)
      >>> xy = adv.pack(np.ones((5, 4)), np.array([0, 1, 2, 0, 1]))      # what fit gets in place of X
      >>> jax.jit(lambda p, xy: adv.apply(p, xy, train=False))(params, xy).shape   # (n, clean/FGSM, C)
      (5, 2, 3)
      >>> # fit(adv.apply, params, opt, adv.loss, xy, y, metrics=adv.metrics, ...): docs/adversarial.md

    Reference: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015, eq. 6.
    """
    _check("adversarial_training", eps, alpha, clip)
    shape = None if input_shape is None else tuple(int(s) for s in input_shape)

    def adv_apply(params, xy, *, state=None, **kwargs):
        width = None if shape is None else math.prod(shape) + 1
        if xy.ndim != 2 or (width is not None and xy.shape[1] != width):
            want = "(n, D + 1)" if width is None else f"(n, {width})"
            raise ValueError(f"adversarial_training: expected the packed inputs {want} (features and a label "
                             f"column), got shape {xy.shape}; pass adv.pack(X, y) to fit and evaluate, not X")
        x = xy[:, :-1] if shape is None else xy[:, :-1].reshape((-1,) + shape)
        labels = jnp.round(xy[:, -1]).astype(jnp.int32)
        out, out_adv, new_state = _clean_and_adversarial(apply, loss, params, x, labels, eps, clip, state, kwargs)
        both = jnp.stack([out, out_adv], axis=1)
        return both if state is None else (both, new_state)

    def adv_loss(outputs, targets):
        clean, adversarial = _pair(outputs, "adversarial_training loss")
        return alpha * loss(clean, targets) + (1 - alpha) * loss(adversarial, targets)

    return AdversarialTraining(adv_apply, adv_loss, pack_labels, (clean_accuracy, fgsm_accuracy))
