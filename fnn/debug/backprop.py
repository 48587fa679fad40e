"""Backpropagation written out by hand: teaching references, checked against ``jax.grad``.

Two backward passes in the textbooks' own notation, side by side with what autodiff computes:

* :func:`mlp_backprop`: the four equations of backpropagation for a multi-layer perceptron (Nielsen, *Neural
  Networks and Deep Learning*, 2015, ch. 2, eqs. BP1-BP4)::

      delta^L = grad_a C * sigma'(z^L)                                  (BP1)
      delta^l = ((W^{l+1})^T delta^{l+1}) * sigma'(z^l)                 (BP2)
      dC/db^l = delta^l                                                 (BP3)
      dC/dW^l = delta^l (a^{l-1})^T                                     (BP4)

  Two more cases the notes derive by hand: a **softmax output with the log-likelihood cost** (Nielsen ch. 3, eqs.
  (78)-(84)), where BP1 collapses to ``delta^L = a^L - y``, and **dropout masks** on the hidden activations
  (Srivastava et al. 2014, sec. 5), where the mask multiplies the forward activation and BP2 alike::

      a^l = m^l * sigma(z^l)          delta^l = ((W^{l+1})^T delta^{l+1}) * m^l * sigma'(z^l)

* :func:`batchnorm_forward` / :func:`batchnorm_backward`: the chain rule through batch normalization (Ioffe &
  Szegedy, 2015, sec. 3): d/dx_hat, d/dvar, d/dmean, d/dx, d/dgamma, d/dbeta.

Layout. Nielsen's ``W^l`` has shape (d_l, d_{l-1}) and acts on a column vector ``a^{l-1}``; fnn's ``Dense`` stores
``W = (W^l)^T`` with shape (d_in, d_out) and acts on a batch of rows ``A`` (n, d_in): ``Z = A W + b``. The equations
above, transposed for rows and summed over the batch, read in the code as::

      Delta^L = grad_A C * sigma'(Z^L)                   (n, d_L)
      Delta^l = (Delta^{l+1} W^{l+1}^T) * sigma'(Z^l)    (n, d_l)       [(W^{l+1})^T delta == delta-row times W^T]
      dC/db^l = sum_rows Delta^l                          (d_l,)
      dC/dW^l = A^{l-1}^T Delta^l                         (d_{l-1}, d_l) [the transpose of delta a^T, summed]

The tests (tests/test_reference.py) show both equal ``jax.grad`` to 1e-10 in float64 and pass
:func:`fnn.debug.gradcheck.check_grads` with ``grad_fn=`` these functions.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax.numpy as jnp

from fnn import activations as act
from fnn.layers.dense import DenseParams

__all__ = ["COSTS", "OUTPUTS", "mlp_forward", "mlp_backprop", "BatchNormCache", "batchnorm_forward",
           "batchnorm_backward"]


def _quadratic(a, y):
    """C = 1/(2n) sum ||a - y||^2;  grad_a C = (a - y) / n."""
    n = a.shape[0]
    return 0.5 * jnp.sum(jnp.square(a - y)) / n, (a - y) / n


def _cross_entropy(a, y):
    """C = -1/n sum [y ln a + (1 - y) ln(1 - a)];  grad_a C = (a - y) / (a (1 - a) n)  (Nielsen eq. (63))."""
    n = a.shape[0]
    c = -jnp.sum(y * jnp.log(a) + (1 - y) * jnp.log1p(-a)) / n
    return c, (a - y) / (a * (1 - a) * n)


def _log_likelihood(a, y):
    """C = -1/n sum y ln a (Nielsen eq. (80), y one-hot or a distribution);  grad_a C = -y / (a n)."""
    n = a.shape[0]
    return -jnp.sum(y * jnp.log(a)) / n, -y / (a * n)


COSTS = {"quadratic": _quadratic, "cross_entropy": _cross_entropy, "log_likelihood": _log_likelihood}
OUTPUTS = ("softmax",)   # output activations besides those of fnn.activations.DERIVATIVES


def _softmax(z):
    e = jnp.exp(z - jnp.max(z, axis=-1, keepdims=True))
    return e / jnp.sum(e, axis=-1, keepdims=True)


def _softmax_delta(a, grad_a):
    """delta_j = sum_k grad_a_k da_k/dz_j with da_k/dz_j = a_k (1[j=k] - a_j): delta = a * (grad_a - <grad_a, a>).

    With the log-likelihood cost (grad_a = -y / (a n), rows of y summing to 1) this is exactly (a - y) / n
    (Nielsen eq. (84)): the softmax's Jacobian cancels the 1/a of the cost."""
    return a * (grad_a - jnp.sum(grad_a * a, axis=-1, keepdims=True))


def _dense_layers(params) -> list:
    """The DenseParams of an ``fnn.mlp`` params tuple (activation layers have ``()`` params)."""
    layers = [p for p in params if p != ()]
    if not layers or not all(isinstance(p, DenseParams) for p in layers):
        raise ValueError(f"reference: expected the params of fnn.mlp (DenseParams and () entries), got "
                         f"{[type(p).__name__ for p in params]}")
    return layers


def _activation(name: str, *, output: bool = False):
    if output and name == "softmax":
        return _softmax, None
    if name not in act.DERIVATIVES:
        extra = ' (and "softmax" for the output layer)' if output else ""
        raise ValueError(f"reference: unknown activation {name!r}; choose one of {sorted(act.DERIVATIVES)}{extra}")
    return getattr(act, name), act.DERIVATIVES[name]


def _check_masks(masks, layers, x):
    """One mask per hidden layer, each (n, d_l): ``masks[l]`` multiplies the activation of hidden layer l."""
    if masks is None or all(m is None for m in masks):
        return [None] * (len(layers) - 1)
    masks = list(masks)
    want = [(x.shape[0], W.shape[1]) for W, _ in layers[:-1]]
    got = [tuple(jnp.shape(m)) for m in masks]
    if got != want:
        raise ValueError(f"reference: expected one dropout mask per hidden layer with shapes {want}, got {got}; "
                         "draw them as jax.random.bernoulli(key, keep, shape) / keep (inverted dropout)")
    return masks


def mlp_forward(params, x, activation: str = "sigmoid", output_activation: str = "sigmoid", masks=None):
    """Feedforward, keeping every weighted input and activation: ``z^l = a^{l-1} W^l + b^l``, ``a^l = sigma(z^l)``
    (times the dropout mask ``m^l`` of hidden layer l when ``masks`` is given).

    Args:
      params: the params of ``fnn.mlp(sizes, Activation, output_activation=OutputActivation)`` (a tuple of
        ``DenseParams(W (d_in, d_out), b (d_out,))`` and ``()`` for the activation layers).
      x: inputs, shape (n, d_0).
      activation: name (in ``fnn.activations.DERIVATIVES``) of sigma for the hidden layers.
      output_activation: name of sigma for the last layer (``"identity"`` for none, ``"softmax"``).
      masks: optional dropout masks, one per hidden layer, shape (n, d_l), already scaled (``bernoulli / keep``
        for inverted dropout, as ``fnn.layers.Dropout`` draws them); ``None`` for no dropout.

    Returns:
      ``(zs, activations)``: lists of length L and L + 1, ``zs[l]`` (n, d_{l+1}), ``activations[0] = x``.
    """
    layers = _dense_layers(params)
    sigma, _ = _activation(activation)
    sigma_out, _ = _activation(output_activation, output=True)
    masks = _check_masks(masks, layers, x)
    a, zs, activations = x, [], [x]
    for l, (W, b) in enumerate(layers):
        z = jnp.dot(a, W) if b is None else jnp.dot(a, W) + b[None, :]    # b broadcast over the rows explicitly
        if l == len(layers) - 1:
            a = sigma_out(z)
        else:
            a = sigma(z) if masks[l] is None else masks[l] * sigma(z)      # dropout: a^l = m^l * sigma(z^l)
        zs.append(z)
        activations.append(a)
    return zs, activations


def mlp_backprop(params, x, y, activation: str = "sigmoid", output_activation: str = "sigmoid",
                 cost: str = "quadratic", masks=None):
    """The gradient of the cost of an MLP by the four backpropagation equations (BP1-BP4), batched over rows.

        Delta^L = grad_A C * sigma_L'(Z^L)                     (BP1)
        Delta^l = (Delta^{l+1} (W^{l+1})^T) * sigma'(Z^l)      (BP2; fnn's W is Nielsen's W^T)
        dC/db^l = sum over rows of Delta^l                     (BP3)
        dC/dW^l = (A^{l-1})^T Delta^l                          (BP4)

    with C the mean cost over the n examples (``"quadratic"``: 1/(2n) sum ||a^L - y||^2, Nielsen eq. (6);
    ``"cross_entropy"``: Nielsen eq. (63), for sigmoid outputs in (0, 1); ``"log_likelihood"``: -1/n sum y ln a,
    Nielsen eq. (80), for a softmax output, where BP1 becomes Delta^L = (A^L - Y) / n, eq. (84)). With dropout
    ``masks``, BP2 gains the mask: Delta^l = (Delta^{l+1} (W^{l+1})^T) * M^l * sigma'(Z^l).

    Args:
      params: ``fnn.mlp`` params (see :func:`mlp_forward`).
      x: inputs (n, d_0). y: targets (n, d_L).
      activation, output_activation: names in ``fnn.activations.DERIVATIVES``.
      cost: ``"quadratic"``, ``"cross_entropy"`` or ``"log_likelihood"``.
      masks: dropout masks, one (n, d_l) array per hidden layer (see :func:`mlp_forward`), or ``None``.

    Returns:
      ``(cost_value, grads)``: the scalar cost and a tree with the structure of ``params`` (``()`` entries kept),
      equal to ``jax.grad`` of the same cost.

    Example:
      >>> import jax
      >>> from fnn import layers
      >>> model = layers.mlp([30, 10], layers.Sigmoid, output_activation=layers.Sigmoid)  # Nielsen's 784-30-10
      >>> _, params = model.init(jax.random.key(0), (-1, 784))
      >>> x, y = jax.random.uniform(jax.random.key(1), (5, 784)), jnp.eye(10)[:5]
      >>> c, g = mlp_backprop(params, x, y)
      >>> cost = lambda p: 0.5 * jnp.mean(jnp.sum((model.apply(p, x) - y) ** 2, axis=-1))
      >>> bool(jnp.isclose(c, cost(params), rtol=1e-5)), jax.tree.structure(g) == jax.tree.structure(params)
      (True, True)
      >>> bool(jnp.allclose(g[0].W, jax.grad(cost)(params)[0].W, atol=1e-6))   # equal to jax.grad
      True

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 2 ("The four fundamental equations behind
    backpropagation"); Rumelhart, Hinton, Williams, Nature 323, 1986.
    """
    if cost not in COSTS:
        raise ValueError(f"mlp_backprop: unknown cost {cost!r}; choose one of {sorted(COSTS)}")
    layers = _dense_layers(params)
    _, d_sigma = _activation(activation)
    _, d_sigma_out = _activation(output_activation, output=True)
    masks = _check_masks(masks, layers, x)
    zs, activations = mlp_forward(params, x, activation, output_activation, masks)
    c, grad_a = COSTS[cost](activations[-1], y)

    L = len(layers)
    grads = [None] * L
    if d_sigma_out is None:                                                  # BP1 for softmax (a Jacobian)
        delta = _softmax_delta(activations[-1], grad_a)
    else:
        delta = grad_a * d_sigma_out(zs[-1])                                 # BP1
    for l in range(L - 1, -1, -1):
        grads[l] = DenseParams(W=jnp.dot(activations[l].T, delta),           # BP4 (a^{l-1} is activations[l])
                               b=None if layers[l].b is None else jnp.sum(delta, axis=0))      # BP3
        if l > 0:
            delta = jnp.dot(delta, layers[l].W.T) * d_sigma(zs[l - 1])       # BP2
            if masks[l - 1] is not None:
                delta = delta * masks[l - 1]                                 # dropout: the mask gates BP2 too
    it = iter(grads)
    return c, tuple(next(it) if p != () else () for p in params)


class BatchNormCache(NamedTuple):
    x: jnp.ndarray        # inputs
    x_hat: jnp.ndarray    # normalized inputs (x - mu) / sqrt(var + eps)
    mu: jnp.ndarray       # batch mean over `axes` (kept dims)
    var: jnp.ndarray      # biased batch variance over `axes` (kept dims)
    gamma: jnp.ndarray    # scale, reshaped to broadcast against x
    eps: float            # epsilon
    axes: tuple           # the reduced axes
    m: int                # values per feature (product of the reduced axes' sizes)


def batchnorm_forward(x, gamma, beta, eps: float = 1e-5, axes: Sequence[int] = (0,)):
    """Batch normalization in training mode (Ioffe & Szegedy 2015, Algorithm 1).

        mu = 1/m sum_i x_i;  var = 1/m sum_i (x_i - mu)^2;  x_hat_i = (x_i - mu) / sqrt(var + eps);
        y_i = gamma x_hat_i + beta

    Args:
      x: inputs, e.g. (n, d) with ``axes=(0,)`` or (n, h, w, c) with ``axes=(0, 1, 2)``.
      gamma, beta: scale and shift with the shape of the kept axes (e.g. (d,) or (c,)).
      eps: added to the variance.
      axes: the axes averaged over; m is the product of their sizes.

    Returns:
      ``(y, cache)``: y has the shape of x; the cache feeds :func:`batchnorm_backward`.
    """
    axes = tuple(a % x.ndim for a in axes)
    m = 1
    for a in axes:
        m *= x.shape[a]
    mu = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mu), axis=axes, keepdims=True)
    x_hat = (x - mu) / jnp.sqrt(var + eps)
    gamma, beta = _kept(gamma, x.ndim), _kept(beta, x.ndim)
    return gamma * x_hat + beta, BatchNormCache(x, x_hat, mu, var, gamma, eps, axes, m)


def _kept(v, ndim: int):
    """Reshape a per-feature vector to broadcast against rank-``ndim`` inputs (strict rank promotion)."""
    v = jnp.asarray(v)
    return jnp.reshape(v, (1,) * (ndim - v.ndim) + v.shape)


def batchnorm_backward(dy, cache: BatchNormCache):
    """The backward pass of batch normalization, equation by equation (Ioffe & Szegedy 2015, sec. 3).

        dl/dx_hat_i = dl/dy_i * gamma
        dl/dvar     = sum_i dl/dx_hat_i (x_i - mu) * (-1/2) (var + eps)^(-3/2)
        dl/dmu      = (sum_i dl/dx_hat_i * (-1 / sqrt(var + eps))) + dl/dvar * (sum_i -2 (x_i - mu)) / m
        dl/dx_i     = dl/dx_hat_i / sqrt(var + eps) + dl/dvar * 2 (x_i - mu) / m + dl/dmu / m
        dl/dgamma   = sum_i dl/dy_i x_hat_i
        dl/dbeta    = sum_i dl/dy_i

    The sums run over the reduced axes (the batch, and the spatial positions for images). The ``sum_i (x_i - mu)``
    term of dl/dmu is zero in exact arithmetic; it is kept as the paper writes it.

    Args:
      dy: the upstream gradient dl/dy, shape of x.
      cache: from :func:`batchnorm_forward`.

    Returns:
      ``(dx, dgamma, dbeta)``: dx has the shape of x; dgamma and dbeta have the shape of the kept axes
      (e.g. (d,) for x (n, d) with ``axes=(0,)``, (c,) for x (n, h, w, c) with ``axes=(0, 1, 2)``).

    Reference: Ioffe & Szegedy, "Batch normalization: accelerating deep network training by reducing internal
    covariate shift", ICML 2015, sec. 3 (the chain-rule equations after Algorithm 1).
    """
    x, x_hat, mu, var, gamma, eps, axes, m = cache
    dx_hat = dy * gamma
    dvar = jnp.sum(dx_hat * (x - mu), axis=axes, keepdims=True) * -0.5 * (var + eps) ** -1.5
    dmu = (jnp.sum(dx_hat * -1.0 / jnp.sqrt(var + eps), axis=axes, keepdims=True)
           + dvar * jnp.sum(-2.0 * (x - mu), axis=axes, keepdims=True) / m)
    dx = dx_hat / jnp.sqrt(var + eps) + dvar * 2.0 * (x - mu) / m + dmu / m
    dgamma = jnp.sum(dy * x_hat, axis=axes)
    dbeta = jnp.sum(dy, axis=axes)
    return dx, dgamma, dbeta
