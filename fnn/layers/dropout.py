"""Dropout: randomly zero activations at train time; inverted (scale at train time) or vanilla (scale at test time);
and Monte-Carlo dropout prediction (the mean and spread over masked passes).

Follows the contract of :mod:`fnn.layers`; no params (``()``). Run-time keywords of ``apply``: ``train`` (default:
the constructor's ``mode``, itself defaulting to train) and ``key=`` (or stax's ``rng=``), needed in train mode.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from fnn.layers.base import Layer, run_key

__all__ = ["Dropout", "mc_dropout_predict"]

_MODES = (None, "train", "eval")
_SCALINGS = ("inverted", "vanilla")


def Dropout(rate: float, mode: str | None = None, scaling: str = "inverted") -> Layer:
    """Dropout: drop each entry with probability ``rate``; ``scaling`` says where the keep probability enters.

    With p = 1 - rate the keep probability and m ~ Bernoulli(p) independently per entry:

        scaling="inverted" (default)   train:  y = m * x / p      eval:  y = x
        scaling="vanilla"              train:  y = m * x          eval:  y = p * x

    Both give E_train[y] = eval(x): the test-time output is the expected training-time activation (tested by
    Monte Carlo). For a layer of softmax (or logistic) units after a dropout on its inputs, the test-time network is
    moreover *exactly* the normalised geometric mean of the predictions of all 2^n masked networks, each weighted by
    its probability (the weight-scaling rule; tested by enumeration). With the same key both scalings draw the same
    mask: vanilla's training output is ``p`` times inverted's.

    **Departure from stax:** ``rate`` is the probability of *dropping* (as in the paper's ``1 - p``, Keras,
    PyTorch and Haiku); stax's ``Dropout(rate)`` treats ``rate`` as the probability of *keeping* (jax issue
    849). ``stax.Dropout(0.9)`` is ``fnn.layers.Dropout(0.1)``: with the same key both draw the same mask.
    Train/eval is chosen per call by ``apply(..., train=...)`` (stax freezes it in the constructor, jax issue
    16218); the constructor's ``mode`` (``"train"``/``"eval"``, stax's argument) is only the default.

    Args:
      rate: probability of dropping an entry, in [0, 1).
      mode: default for ``train`` when ``apply`` is called without it: ``None`` or ``"train"`` -> train,
        ``"eval"`` -> eval.
      scaling: ``"inverted"`` (scale by 1 / p at train time; modern libraries) or ``"vanilla"`` (no scaling at train
        time, multiply by p at test time; the original paper's recipe).

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
      >>> vanilla = Dropout(0.5, scaling="vanilla")
      >>> vanilla.apply((), x, key=jax.random.key(0))     # the same mask, survivors unscaled
      Array([[0., 0., 1., 1.],
             [0., 1., 1., 0.]], dtype=float32)
      >>> vanilla.apply((), x, train=False)               # eval: p x
      Array([[0.5, 0.5, 0.5, 0.5],
             [0.5, 0.5, 0.5, 0.5]], dtype=float32)

    Reference: Srivastava et al., "Dropout: a simple way to prevent neural networks from overfitting", JMLR 2014,
    sec. 4 (p = 1 - rate is their retention probability; vanilla scales the weights by p at test time) and sec. 7.5
    (the weight-scaling rule vs Monte-Carlo averaging); Hinton et al., "Improving neural networks by preventing
    co-adaptation of feature detectors", arXiv:1207.0580, 2012 (the geometric mean of a softmax layer); Baldi &
    Sadowski, "Understanding dropout", NIPS 2013, sec. 3.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"Dropout: expected rate (the probability of dropping) in [0, 1), got {rate!r}; "
                         f"note fnn's rate is stax's 1 - rate")
    if mode not in _MODES:
        raise ValueError(f"Dropout: expected mode in {_MODES}, got {mode!r}; or pass train=True/False to apply")
    if scaling not in _SCALINGS:
        raise ValueError(f"Dropout: expected scaling in {_SCALINGS}, got {scaling!r}; 'inverted' scales by "
                         f"1 / (1 - rate) at train time, 'vanilla' by (1 - rate) at test time")
    default_train = mode != "eval"
    keep_prob = 1.0 - rate
    vanilla = scaling == "vanilla"

    def init(key, input_shape):
        return tuple(input_shape), ()

    def apply(params, inputs, **kwargs):
        train = kwargs.get("train", default_train)
        if not train:
            return inputs * keep_prob if vanilla and rate else inputs
        key = run_key(kwargs)
        if key is None:
            raise ValueError("Dropout: train mode needs a PRNG key: call apply(params, x, key=jax.random.key(0)) "
                             "(stax's rng= works too), or apply(params, x, train=False) for evaluation")
        keep = jax.random.bernoulli(key, keep_prob, inputs.shape)
        return jnp.where(keep, inputs if vanilla else inputs / keep_prob, jnp.zeros_like(inputs))

    return Layer(init, apply, keywords=())  # reads only the common keywords (key/rng, train)


def mc_dropout_predict(apply: Callable, params, x, key, *, samples: int = 50, **kwargs):
    """Monte-Carlo dropout: the mean and standard deviation of ``samples`` predictions with dropout on.

        keys = split(key, k);   y_s = apply(params, x, key=keys[s], train=True),   s = 1..k
        mean = 1/k sum_s y_s;   std = sqrt(1/k sum_s (y_s - mean)^2)

    The passes run in one ``jax.vmap`` over the keys. The mean is an unbiased estimate of the arithmetic average
    of the predictions over all masks (it converges to it as k grows; tested against enumeration); ``std`` measures
    the model's uncertainty. The weight-scaled (``train=False``) network instead gives the geometric average, which
    is exact only for one softmax/logistic layer.

    Args:
      apply: the model's apply (a model with at least one ``Dropout``). params: its params.
      x: inputs (n, ...). key: a PRNG key; pass a fresh one for fresh masks.
      samples: k, the number of masked passes (>= 1).
      **kwargs: other run-time keywords for ``apply`` (not ``key``, ``rng`` or ``train``).

    Returns:
      ``(mean, std)``, each shaped like one prediction ``apply(params, x)``.

    Example:
      >>> from fnn.layers import serial, Dropout, Dense
      >>> model = serial(Dropout(0.5), Dense(3))
      >>> _, params = model.init(jax.random.key(0), (-1, 4))
      >>> mean, std = mc_dropout_predict(model.apply, params, jnp.ones((2, 4)), jax.random.key(1), samples=100)
      >>> mean.shape, std.shape, bool((std > 0).all())
      ((2, 3), (2, 3), True)

    Reference: Gal & Ghahramani, "Dropout as a Bayesian approximation: representing model uncertainty in deep
    learning", ICML 2016, eq. (8) (predictive mean) and sec. 4 (variance); Srivastava et al., JMLR 2014, sec. 7.5.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"mc_dropout_predict: expected samples as a positive int (the number of masked passes), "
                         f"got {samples!r}")
    clash = sorted({"key", "rng", "train"} & set(kwargs))
    if clash:
        raise TypeError(f"mc_dropout_predict: got {clash} in kwargs; the key is the 4th argument (split once per "
                        f"pass) and train is always True; drop them from the call")
    keys = jax.random.split(key, samples)
    ys = jax.vmap(lambda k: apply(params, x, key=k, train=True, **kwargs))(keys)
    return jnp.mean(ys, axis=0), jnp.std(ys, axis=0)
