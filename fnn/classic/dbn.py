"""Deep belief nets: greedy layer-wise pre-training of stacked RBMs, then fine-tuning as an MLP.

    rbms, history = pretrain_dbn(key, X, [m_1, ..., m_L])        # RBM_k trained on p(h_{k-1} | ...), then frozen
    model, params = stack_encoders(key, d, [m_1, ..., m_L], K, pretrained=rbms)     # fnn.classic.pretraining
    params, losses = fine_tune(key, model, params, X_labelled, y)                     # fnn.classic.pretraining
    V, P = dbn_sample(key, rbms, n, k)                                                # fantasies from the top RBM

The API mirrors :mod:`fnn.classic.pretraining` (autoencoder pre-training): an :class:`~fnn.classic.rbm.RBMParams`
has the ``W`` and hidden bias ``b`` of a ``Dense`` layer, and ``p(h | v) = sigmoid(vW + b)`` is the MLP's hidden
layer, so :func:`fnn.classic.pretraining.stack_encoders` and :func:`~fnn.classic.pretraining.load_encoders` take
the RBMs as they are. Departure from Hinton, Osindero & Teh: the paper's fine-tuning is the generative up-down
algorithm; here, as in their MNIST discriminative experiments and Bengio et al. 2006, the stack is fine-tuned by
back-propagation of the softmax cross-entropy.

References: Hinton, Osindero & Teh, "A fast learning algorithm for deep belief nets", Neural Computation 18(7),
2006, pp. 1527-1554 (sec. 4, greedy learning); Bengio, Lamblin, Popovici & Larochelle, "Greedy layer-wise training
of deep networks", NIPS 2006 (the propagated mean-field codes, supervised fine-tuning).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from fnn.classic.rbm import RBMParams, gibbs_chain, hidden_probs, init_rbm, train_rbm, visible_probs

__all__ = ["pretrain_dbn", "dbn_sample"]


def pretrain_dbn(key, X, hidden_sizes: Sequence[int], *, k: int = 1, persistent: bool = False, optimizer=None,
                 epochs: int = 10, batch_size: int = 100):
    """Greedy layer-wise training of a stack of RBMs: RBM_k models the codes ``h_{k-1} = p(h | h_{k-2})``.

    ``h_0 = X``; RBM_k (``m_{k-1}`` visible, ``m_k`` hidden units) is trained by :func:`fnn.classic.rbm.train_rbm`
    on ``h_{k-1}``, frozen, and its hidden probabilities ``h_k = sigmoid(h_{k-1} W_k + b_k)`` (mean-field, not
    samples) become the next RBM's data.

    Args: key: PRNG key. X: unlabeled data (n, d) in [0, 1]. hidden_sizes: ``[m_1, ..., m_L]`` (each >= 1).
      k, persistent, optimizer, epochs, batch_size: per layer, as in :func:`fnn.classic.rbm.train_rbm`.
    Returns: ``(rbms, histories)``: one :class:`~fnn.classic.rbm.RBMParams` and one history dict per layer.

    Example (not run here, to keep the docs fast: ``tests/test_rbm.py`` runs it)::

      rbms, _ = pretrain_dbn(key, X, [128, 64], optimizer=fnn.optimizers.momentum(0.05, 0.9), epochs=50)
      model, params = fnn.classic.pretraining.stack_encoders(key, 64, [128, 64], 10, pretrained=rbms)

    Reference: Hinton, Osindero & Teh 2006, sec. 4.
    """
    sizes = list(hidden_sizes)
    if not sizes or any(not (isinstance(s, int) and s >= 1) for s in sizes):
        raise ValueError(f"pretrain_dbn: expected a non-empty list of positive hidden sizes, got {sizes!r}; "
                         f"every layer needs at least one unit")
    codes = jnp.asarray(X)
    if codes.ndim != 2:
        raise ValueError(f"pretrain_dbn: expected X of shape (n, d), got {codes.shape}; flatten images first")
    rbms, histories = [], []
    for m in sizes:
        key, k_init, k_train = jax.random.split(key, 3)
        params = init_rbm(k_init, int(codes.shape[1]), m, data=codes)
        result = train_rbm(k_train, params, codes, k=k, persistent=persistent, optimizer=optimizer, epochs=epochs,
                           batch_size=min(batch_size, int(codes.shape[0])))
        rbms.append(result.params)
        histories.append(result.history)
        codes = jax.jit(hidden_probs)(result.params, codes)
    return rbms, histories


def dbn_sample(key, rbms: Sequence[RBMParams], n: int, k: int = 1000, *, trace: bool = False):
    """Fantasies of a DBN: ``k`` Gibbs steps in the top RBM, then one top-down pass of ``p(v | h)`` to the pixels.

    The top RBM's chains start from ``Bernoulli(1/2)`` noise; each lower layer maps its hidden probabilities down
    with ``p(v | h) = sigmoid(a + W h)`` (the directed generative connections of the DBN, Hinton et al. 2006, fig. 1).
    With one RBM this is plain Gibbs sampling of that RBM.

    Args: key: PRNG key. rbms: from :func:`pretrain_dbn`. n: chains. k: Gibbs steps in the top RBM.
      trace: also return every step's pixels (k, n, d) (the top-level trace mapped down).
    Returns: ``(V, P)``: binary samples and probabilities of the bottom layer (n, d); ``trace=True`` adds the trace.
    """
    rbms = list(rbms)
    if not rbms:
        raise ValueError("dbn_sample: expected at least one RBM, got an empty list; pass pretrain_dbn's output")
    top = rbms[-1]
    k_init, k_chain, k_down = jax.random.split(key, 3)
    V0 = jax.random.bernoulli(k_init, 0.5, (n, top.W.shape[0])).astype(top.W.dtype)
    V, P, probs = gibbs_chain(k_chain, top, V0, k, trace=True)

    def down(P):
        for params in reversed(rbms[:-1]):
            P = visible_probs(params, P)
        return P

    P = down(P)
    V = jax.random.bernoulli(k_down, P).astype(P.dtype)
    return (V, P, jax.vmap(down)(probs)) if trace else (V, P)
