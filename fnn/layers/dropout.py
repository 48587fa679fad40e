"""Dropout: randomly zero activations at train time, identity at eval time.

Follows the contract of :mod:`fnn.layers`; no params (``()``). Run-time keywords of ``apply``: ``train`` (default:
the constructor's ``mode``, itself defaulting to train) and ``key=`` (or stax's ``rng=``), needed in train mode.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn.layers.base import Layer, run_key

__all__ = ["Dropout"]

_MODES = (None, "train", "eval")


def Dropout(rate: float, mode: str | None = None) -> Layer:
    """Inverted dropout: drop each entry with probability ``rate`` and scale the survivors by ``1 / (1 - rate)``.

        train:  y = m * x / (1 - rate),   m ~ Bernoulli(1 - rate) independently per entry,  so E[y] = x
        eval:   y = x

    **Departure from stax:** ``rate`` is the probability of *dropping* (as in the paper's ``1 - p``, Keras,
    PyTorch and Haiku); stax's ``Dropout(rate)`` treats ``rate`` as the probability of *keeping* (jax issue
    849). ``stax.Dropout(0.9)`` is ``fnn.layers.Dropout(0.1)``: with the same key both draw the same mask.
    Train/eval is chosen per call by ``apply(..., train=...)`` (stax freezes it in the constructor, jax issue
    16218); the constructor's ``mode`` (``"train"``/``"eval"``, stax's argument) is only the default.

    Args:
      rate: probability of dropping an entry, in [0, 1).
      mode: default for ``train`` when ``apply`` is called without it: ``None`` or ``"train"`` -> train,
        ``"eval"`` -> eval.

    Returns:
      ``Layer`` with params ``()``; y has the shape of x.

    Example:
      >>> init, apply = Dropout(0.5)
      >>> x = jnp.ones((2, 4))
      >>> apply((), x, key=jax.random.key(0))             # train: about half the entries are 0, the rest 2 x
      Array([[0., 0., 2., 2.],
             [0., 2., 2., 0.]], dtype=float32)
      >>> bool((apply((), x, train=False) == x).all())    # eval: y == x, no key needed
      True

    Reference: Srivastava et al., "Dropout: a simple way to prevent neural networks from overfitting", JMLR 2014,
    sec. 4 (p = 1 - rate is their retention probability; we scale at train time instead of at test time).
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"Dropout: expected rate (the probability of dropping) in [0, 1), got {rate!r}; "
                         f"note fnn's rate is stax's 1 - rate")
    if mode not in _MODES:
        raise ValueError(f"Dropout: expected mode in {_MODES}, got {mode!r}; or pass train=True/False to apply")
    default_train = mode != "eval"

    def init(key, input_shape):
        return tuple(input_shape), ()

    def apply(params, inputs, **kwargs):
        train = kwargs.get("train", default_train)
        if not train:
            return inputs
        key = run_key(kwargs)
        if key is None:
            raise ValueError("Dropout: train mode needs a PRNG key: call apply(params, x, key=jax.random.key(0)) "
                             "(stax's rng= works too), or apply(params, x, train=False) for evaluation")
        keep = jax.random.bernoulli(key, 1.0 - rate, inputs.shape)
        return jnp.where(keep, inputs / (1.0 - rate), jnp.zeros_like(inputs))

    return Layer(init, apply, keywords=())  # reads only the common keywords (key/rng, train)
