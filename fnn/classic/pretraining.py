"""Greedy layer-wise pre-training: a stack of autoencoders trained one layer at a time, stacked under an output
layer and fine-tuned on labels with ``fnn.train.fit``.

    params_list, losses = pretrain_stack(key, X, [m_1, ..., m_L])      # AE_k trained on h_{k-1}, then frozen
    model, params = stack_encoders(key, d, [m_1, ..., m_L], K, pretrained=params_list)
    params, losses = fine_tune(key, model, params, X_labelled, y)

References: Bengio, Lamblin, Popovici & Larochelle, "Greedy layer-wise training of deep networks", NIPS 2006;
Vincent et al., "Stacked denoising autoencoders", JMLR 11, 2010, sec. 3.5.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from fnn import activations as act
from fnn import losses as _losses
from fnn import optimizers as _opt
from fnn.classic.autoencoders import AutoencoderParams, autoencoder, autoencoder_objective, train_autoencoder
from fnn.layers import Dense, DenseParams, Layer, elementwise, serial
from fnn.train import fit

__all__ = ["pretrain_stack", "stack_encoders", "load_encoders", "fine_tune"]


def _check_hidden_sizes(where, hidden_sizes):
    sizes = list(hidden_sizes)
    if not sizes or any(not (isinstance(s, int) and s >= 1) for s in sizes):
        raise ValueError(f"{where}: expected a non-empty list of positive hidden sizes, got {sizes!r}; "
                         f"every layer needs at least one unit")
    return sizes


def pretrain_stack(key, X, hidden_sizes: Sequence[int], *, tied: bool = True, activation: Callable = act.sigmoid,
                   noise: Callable | None = None, optimizer=None, epochs: int = 5, batch_size: int = 128,
                   **objective_kwargs):
    """Greedy layer-wise unsupervised pre-training of a stack of autoencoders.

    Layer ``k`` is an autoencoder ``h_k = f(h_{k-1} W_k + b_k)`` trained to reconstruct its own input
    ``h_{k-1}`` (``h_0 = X``) with a sigmoid decoder and Bernoulli cross-entropy (the codes lie in (0, 1) when
    ``f`` is the sigmoid); once trained it is frozen and its codes ``h_k`` become the next layer's data.

    Args:
      key: PRNG key.
      X: unlabeled inputs (n, d) in [0, 1].
      hidden_sizes: widths ``[m_1, ..., m_L]`` (each >= 1).
      tied, activation: as in :func:`autoencoder`.
      noise: corruption for stacked *denoising* autoencoders (applied at every layer), or None.
      optimizer, epochs, batch_size: per layer, as in :func:`train_autoencoder`.
      **objective_kwargs: passed to :func:`autoencoder_objective` (``sparsity=``, ``contractive_weight=``, ...).

    Returns:
      ``(params_list, losses_list)``: one :class:`AutoencoderParams` and one ``(epochs,)`` loss history per layer.

    Example:
      >>> X = jax.random.uniform(jax.random.key(0), (256, 20))
      >>> aes, losses = pretrain_stack(jax.random.key(1), X, [12, 6], epochs=2, batch_size=64)
      >>> [p.W.shape for p in aes]
      [(20, 12), (12, 6)]
      >>> model, params = stack_encoders(jax.random.key(2), 20, [12, 6], 3, pretrained=aes)
      >>> model.apply(params, X).shape
      (256, 3)

    Reference: Bengio et al., "Greedy layer-wise training of deep networks", NIPS 2006, Algorithm TrainUnsupervised;
    Vincent et al., JMLR 2010, sec. 3.5 (stacking denoising autoencoders).
    """
    sizes = _check_hidden_sizes("pretrain_stack", hidden_sizes)
    codes = jnp.asarray(X)
    if codes.ndim != 2:
        raise ValueError(f"pretrain_stack: expected X of shape (n, d), got {codes.shape}; flatten images first")
    params_list, losses_list = [], []
    for m in sizes:
        key, k_init, k_train = jax.random.split(key, 3)
        ae = autoencoder(m, tied=tied, activation=activation, output="sigmoid")
        params = jax.jit(lambda k: ae.init(k, codes.shape)[1])(k_init)   # one compiled call, not op by op
        objective = autoencoder_objective(ae, reconstruction="bce", noise=noise, **objective_kwargs)
        params, losses = train_autoencoder(k_train, ae, params, codes, objective=objective, optimizer=optimizer,
                                           epochs=epochs, batch_size=batch_size)
        params_list.append(params)
        losses_list.append(losses)
        codes = jax.jit(ae.encode)(params, codes)
    return params_list, losses_list


def stack_encoders(key, input_dim: int, hidden_sizes: Sequence[int], n_out: int, *, activation=act.sigmoid,
                   pretrained: Sequence[AutoencoderParams] | None = None):
    """The deep network ``Dense(m_1), f, ..., Dense(m_L), f, Dense(n_out)`` with pre-trained or random weights.

    With ``pretrained`` the ``k``-th hidden ``Dense`` gets the ``k``-th autoencoder's encoder ``(W_k, b_k)``; the
    output layer (and, without ``pretrained``, every layer) keeps its random ``Dense`` initialization, so the two
    networks of a pre-training comparison differ only in the hidden layers' starting point.

    Args:
      key: PRNG key. input_dim: ``d``. hidden_sizes: ``[m_1, ..., m_L]``. n_out: outputs (logits).
      activation: elementwise ``f``. pretrained: output of :func:`pretrain_stack` (or None for random init).

    Returns: ``(model, params)``: an fnn ``serial`` layer mapping (n, d) to logits (n, n_out), and its params.
    """
    sizes = _check_hidden_sizes("stack_encoders", hidden_sizes)
    if not (isinstance(n_out, int) and n_out >= 1):
        raise ValueError(f"stack_encoders: expected a positive number of outputs, got n_out={n_out!r}")
    f = elementwise(activation)
    layers = []
    for m in sizes:
        layers += [Dense(m), f]
    model = serial(*layers, Dense(n_out))
    params = jax.jit(lambda k: model.init(k, (-1, input_dim))[1])(key)   # one compiled call, not op by op
    return model, (params if pretrained is None else load_encoders(params, pretrained))


def load_encoders(params, pretrained: Sequence[AutoencoderParams]):
    """Copy pre-trained encoders into a :func:`stack_encoders` network's params: ``Dense_k <- (W_k, b_k)``.

    The ``k``-th hidden ``Dense`` (entry ``2k`` of the ``serial`` params) gets the ``k``-th autoencoder's encoder;
    the output layer is kept. Returns new params (the input is not modified).

    Args: params: params of ``Dense(m_1), f, ..., Dense(m_L), f, Dense(n_out)``. pretrained: from
      :func:`pretrain_stack`, one per hidden layer.
    """
    pretrained = list(pretrained)
    hidden = [params[2 * k].W.shape for k in range(len(params) // 2)]
    shapes = [tuple(p.W.shape) for p in pretrained]
    if shapes != [tuple(s) for s in hidden]:
        raise ValueError(f"load_encoders: expected pretrained encoder weights of shapes {hidden}, got {shapes}; "
                         f"pre-train with the same input width and hidden sizes")
    params = list(params)
    for k, p in enumerate(pretrained):
        params[2 * k] = DenseParams(p.W, p.b)
    return tuple(params)


def fine_tune(key, model: Layer, params, X, y, *, optimizer=None, epochs: int = 50, batch_size: int = 100):
    """Supervised fine-tuning of every layer: minimize the softmax cross-entropy of ``model``'s logits.

    ``J = -mean_n log softmax(model(params, x_n))[y_n]``, mini-batch steps of ``optimizer`` (default
    ``fnn.optimizers.adam(1e-3)``): ``fnn.train.fit`` with ``min(batch_size, n)`` examples per batch.

    Args: key: PRNG key. model, params: an fnn layer producing logits (n, K) and its params. X: inputs (n, d).
      y: int labels (n,) in [0, K). optimizer, epochs, batch_size: as in
      :func:`fnn.classic.autoencoders.train_autoencoder`.
    Returns: ``(params, losses)`` with the mean loss per epoch ``(epochs,)``.
    Reference: Bengio et al., NIPS 2006, sec. 2 (supervised fine-tuning of the pre-trained stack).
    """
    X, y = jnp.asarray(X), jnp.asarray(y, jnp.int32)
    result = fit(model.apply, params, _opt.adam(1e-3) if optimizer is None else optimizer,
                 _losses.softmax_cross_entropy_with_integer_labels, X, y, epochs=epochs,
                 batch_size=min(batch_size, max(int(X.shape[0]), 1)), key=key, metrics=(), verbose=False,
                 progress=False)
    return result.params, jnp.asarray(result.history["loss"])
