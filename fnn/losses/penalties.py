"""Weight penalties and fnn's one weight-decay mask.

``l2_penalty``/``l1_penalty(params, lam, mask=None)`` penalise the weights only by default: :func:`weight_mask` (no
biases, no BatchNorm/LayerNorm gamma and beta) is the one definition, shared by ``fit(l2=...)``, ``adamw`` and
``transforms.weight_decay``.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["l2_penalty", "l1_penalty", "weight_mask", "resolve_mask", "BIAS_NAMES"]


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
