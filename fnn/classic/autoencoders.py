"""Autoencoders and greedy layer-wise pre-training.

An autoencoder with one hidden layer of ``m`` units on inputs of width ``d`` (rows ``x`` of a batch ``X (n, d)``):

    h = f(x W + b)                      encoder   W (d, m), b (m,)
    a = h V + c,   r = g(a)             decoder   V (m, d), c (d,);  tied weights: V = W^T (no V is stored)

``m < d`` is undercomplete, ``m > d`` overcomplete (then a penalty or corruption keeps it from copying). The
training objective (:func:`autoencoder_objective`) adds to a reconstruction loss ``L(r, x)`` the regularizers of
the classic variants:

    denoising     L(g(f(x~)), x) with x~ ~ C(x~ | x)         (masking or Gaussian corruption, clean target)
    sparse        + beta * sum_j KL(rho || rho_hat_j)        rho_hat_j = mean_n h_nj   (or + beta * mean_n |h_n|_1)
    contractive   + lam * mean_n ||J_f(x_n)||_F^2           J_f = dh/dx, by jax.jacfwd inside jax.vmap

Greedy layer-wise pre-training (:func:`pretrain_stack`) trains one autoencoder per hidden layer on the previous
layer's codes; :func:`stack_encoders` stacks the encoders under a fresh output layer and :func:`fine_tune` trains
the whole network on labels (those three live in ``fnn/classic/pretraining.py``). Training runs through
``fnn.train.minimize`` (autoencoders) and ``fnn.train.fit`` (fine-tuning).

References: Bengio, Lamblin, Popovici & Larochelle, "Greedy layer-wise training of deep networks", NIPS 2006;
Vincent et al., "Stacked denoising autoencoders", JMLR 11, 2010; Rifai et al., "Contractive auto-encoders",
ICML 2011; Ng, "Sparse autoencoder", CS294A lecture notes, 2011; Goodfellow, Bengio & Courville, *Deep Learning*,
2016, ch. 14.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn import activations as act
from fnn import initializers as ini
from fnn import optimizers as _opt
from fnn.layers import Layer
from fnn.train import minimize

__all__ = [
    "AutoencoderParams", "Autoencoder", "autoencoder", "masking_noise", "gaussian_noise", "squared_error",
    "bernoulli_cross_entropy", "kl_sparsity", "l1_sparsity", "contractive_penalty", "autoencoder_objective",
    "train_autoencoder",
]


class AutoencoderParams(NamedTuple):
    W: jax.Array          # (d, m) encoder weights
    b: jax.Array          # (m,) encoder bias
    V: jax.Array | None   # (m, d) decoder weights; None when tied (the decoder uses W.T)
    c: jax.Array          # (d,) decoder bias


class Autoencoder(Layer):
    """An autoencoder layer: ``apply(params, x) = decode(params, encode(params, x))``; unpacks as ``init, apply``.

    Extra attributes: ``encode(params, x) -> h`` (n, m); ``decode(params, h) -> r`` (n, d);
    ``decode_logits(params, h) -> a`` (n, d), the decoder's pre-activation; ``output`` (``"sigmoid"``/``"linear"``);
    ``n_hidden``; ``tied``; ``activation`` (the encoder's elementwise function ``f``).
    """

    def __new__(cls, init, apply, *, encode, decode, decode_logits, output, n_hidden, tied, activation):
        self = super().__new__(cls, init, apply)
        self.encode, self.decode, self.decode_logits = encode, decode, decode_logits
        self.output, self.n_hidden, self.tied, self.activation = output, n_hidden, tied, activation
        return self


def _add_bias(z, b):
    """``z + b`` with ``b`` (k,) broadcast explicitly over ``z``'s leading axes (strict rank promotion)."""
    return z + jnp.reshape(b, (1,) * (z.ndim - 1) + b.shape)


_OUTPUTS = {"sigmoid": act.sigmoid, "linear": act.identity}


def autoencoder(n_hidden: int, *, tied: bool = False, activation: Callable = act.sigmoid, output: str = "sigmoid",
                W_init: Callable = ini.glorot_uniform(), b_init: Callable = ini.zeros) -> Autoencoder:
    """A one-hidden-layer autoencoder: ``h = f(x W + b)``, ``r = g(h V + c)`` with ``V = W^T`` when ``tied``.

    Undercomplete when ``n_hidden < d``, overcomplete when ``n_hidden > d``. With ``tied=True`` the parameter
    ``W`` is used twice (encoder ``x W``, decoder ``h W^T``) and ``jax.grad`` returns the sum of both uses'
    gradients, ``dL/dW = X^T delta_h + (H^T delta_r)^T`` (Vincent et al., JMLR 2010, sec. 2.3).

    Args:
      n_hidden: hidden width ``m`` (>= 1).
      tied: decoder weights are the encoder's transpose (``params.V`` is ``None``).
      activation: the encoder's elementwise ``f`` (default the logistic sigmoid).
      output: the decoder's ``g``: ``"sigmoid"`` (inputs in [0, 1], pair with :func:`bernoulli_cross_entropy`)
        or ``"linear"`` (real inputs, pair with :func:`squared_error`).
      W_init, b_init: initializers of the weights (both ``W`` and ``V``) and of the biases (``b`` and ``c``).

    Returns:
      An :class:`Autoencoder`; ``init(key, (n, d)) -> ((n, d), AutoencoderParams)``, ``apply(params, X (n, d))
      -> R (n, d)``.

    Example:
      >>> ae = autoencoder(32, tied=True)
      >>> _, params = ae.init(jax.random.key(0), (-1, 784))
      >>> ae.encode(params, jnp.zeros((5, 784))).shape
      (5, 32)

    Reference: Goodfellow, Bengio & Courville, *Deep Learning*, 2016, sec. 14.1 (undercomplete), 14.2.
    """
    if not (isinstance(n_hidden, int) and n_hidden >= 1):
        raise ValueError(f"autoencoder: expected a positive number of hidden units, got n_hidden={n_hidden!r}; "
                         f"pass an int >= 1")
    if output not in _OUTPUTS:
        raise ValueError(f"autoencoder: expected output in {sorted(_OUTPUTS)}, got {output!r}")
    g = _OUTPUTS[output]

    def init(key, input_shape):
        if len(input_shape) != 2 or input_shape[-1] in (None, -1):
            raise ValueError(f"autoencoder: expected an input shape (batch, d) with known d, got {input_shape!r}; "
                             f"flatten images first")
        d = int(input_shape[-1])
        k1, k2, k3, k4 = jax.random.split(key, 4)
        V = None if tied else W_init(k2, (n_hidden, d))
        return tuple(input_shape), AutoencoderParams(W_init(k1, (d, n_hidden)), b_init(k3, (n_hidden,)), V,
                                                     b_init(k4, (d,)))

    def encode(params, x):
        if x.shape[-1:] != params.W.shape[:1]:
            raise ValueError(f"autoencoder: expected inputs with last dimension {params.W.shape[0]}, got shape "
                             f"{x.shape}; initialize with the data's width")
        return activation(_add_bias(x @ params.W, params.b))

    def decode_logits(params, h):
        V = params.W.T if params.V is None else params.V
        return _add_bias(h @ V, params.c)

    def decode(params, h):
        return g(decode_logits(params, h))

    def apply(params, x, **kwargs):
        return decode(params, encode(params, x))

    return Autoencoder(init, apply, encode=encode, decode=decode, decode_logits=decode_logits, output=output,
                       n_hidden=n_hidden, tied=tied, activation=activation)


# ------------------------------------------------------------------------------------------------ corruption
def masking_noise(key, x, rate: float):
    """Masking noise: each entry is set to 0 with probability ``rate``: ``x~ = x * m``, ``m ~ Bernoulli(1 - rate)``.

    Args: key: PRNG key; x: array, any shape; rate: probability of zeroing an entry, in [0, 1).
    Returns: array of ``x``'s shape and dtype.
    Reference: Vincent et al., "Stacked denoising autoencoders", JMLR 11, 2010, sec. 4.2 ("masking noise").
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"masking_noise: expected rate (probability of zeroing) in [0, 1), got {rate!r}")
    keep = jax.random.bernoulli(key, 1.0 - rate, jnp.shape(x))
    return jnp.where(keep, x, jnp.zeros_like(x))


def gaussian_noise(key, x, stddev: float):
    """Additive isotropic Gaussian noise: ``x~ = x + stddev * eps``, ``eps ~ N(0, I)``.

    Args: key: PRNG key; x: array, any shape; stddev: noise standard deviation (>= 0).
    Returns: array of ``x``'s shape and dtype.
    Reference: Vincent et al., JMLR 11, 2010, sec. 4.2 ("additive isotropic Gaussian noise").
    """
    if not stddev >= 0.0:
        raise ValueError(f"gaussian_noise: expected stddev >= 0, got {stddev!r}")
    return x + stddev * jax.random.normal(key, jnp.shape(x), jnp.result_type(x))


# ------------------------------------------------------------------------------------------- losses, penalties
def squared_error(r, x):
    """Squared reconstruction error ``L = mean_n sum_j (r_nj - x_nj)^2``.

    Args: r: reconstructions (n, d); x: targets (n, d). Returns: scalar.
    Reference: Goodfellow et al., *Deep Learning*, 2016, eq. (14.1).
    """
    return jnp.mean(jnp.sum(jnp.square(r - x), axis=-1))


def bernoulli_cross_entropy(a, x):
    """Bernoulli cross-entropy of targets ``x`` in [0, 1] under ``r = sigmoid(a)``, computed from the logits ``a``.

    ``L = mean_n sum_j -[x log r + (1 - x) log(1 - r)] = mean_n sum_j [softplus(a) - x a]``; the right-hand form
    never takes ``log 0`` (stable for any ``a``).

    Args: a: decoder pre-activations (n, d); x: targets in [0, 1] (n, d). Returns: scalar.
    Reference: Vincent et al., JMLR 11, 2010, eq. (4) ("cross-entropy loss" for binary or [0, 1] inputs).
    """
    return jnp.mean(jnp.sum(jax.nn.softplus(a) - x * a, axis=-1))


def kl_sparsity(h, rho: float, eps: float = 1e-6):
    """KL sparsity penalty ``sum_j KL(rho || rho_hat_j)``, ``rho_hat_j = mean_n h_nj`` (hidden units in (0, 1)).

    ``KL(rho || q) = rho log(rho / q) + (1 - rho) log((1 - rho) / (1 - q))``; ``rho_hat`` is clipped to
    ``[eps, 1 - eps]``.

    Args: h: hidden activities (n, m) in (0, 1); rho: target mean activation in (0, 1). Returns: scalar.
    Reference: Ng, "Sparse autoencoder", CS294A lecture notes, 2011, sec. 3.
    """
    if not 0.0 < rho < 1.0:
        raise ValueError(f"kl_sparsity: expected the target rate rho in (0, 1), got {rho!r}")
    q = jnp.clip(jnp.mean(h, axis=0), eps, 1.0 - eps)
    return jnp.sum(rho * jnp.log(rho / q) + (1.0 - rho) * jnp.log((1.0 - rho) / (1.0 - q)))


def l1_sparsity(h):
    """L1 sparsity penalty ``mean_n sum_j |h_nj|``.  Args: h (n, m). Returns: scalar.

    Reference: Goodfellow et al., *Deep Learning*, 2016, eq. (14.2) with the Laplace prior of sec. 14.2.1.
    """
    return jnp.mean(jnp.sum(jnp.abs(h), axis=-1))


def contractive_penalty(encode: Callable, x):
    """Contractive penalty ``mean_n ||J_f(x_n)||_F^2 = mean_n sum_{j,i} (dh_j / dx_i)(x_n)^2``.

    ``J_f`` is computed per example with ``jax.jacfwd`` (forward mode: ``d`` JVPs, cheap for the encoder's
    ``d -> m`` map) and batched with ``jax.vmap``. For a sigmoid encoder it equals the closed form
    ``mean_n sum_j (h_nj (1 - h_nj))^2 sum_i W_ij^2`` of Rifai et al., eq. (5).

    Args:
      encode: ``encode(x (n, d)) -> h (n, m)`` acting row by row (e.g. ``lambda x: ae.encode(params, x)``).
      x: inputs (n, d).

    Returns: scalar.
    Reference: Rifai, Vincent, Muller, Glorot & Bengio, "Contractive auto-encoders", ICML 2011, eqs. (2)-(5).
    """
    J = jax.vmap(jax.jacfwd(lambda v: encode(v[None, :])[0]))(x)   # (n, m, d)
    return jnp.mean(jnp.sum(jnp.square(J), axis=(1, 2)))


_RECONSTRUCTIONS = ("bce", "mse")
_SPARSITY = (None, "kl", "l1")


def autoencoder_objective(ae: Autoencoder, *, reconstruction: str = "bce", noise: Callable | None = None,
                          sparsity: str | None = None, sparsity_weight: float = 0.0, sparsity_target: float = 0.05,
                          contractive_weight: float = 0.0) -> Callable:
    """The training objective ``J(params, x, key)`` of a (denoising / sparse / contractive) autoencoder.

    ``J = L(g(h V + c), x) + beta * Omega(h) + lam * mean_n ||J_f(x_n)||_F^2`` with ``h = f(x~ W + b)``,
    ``x~ = noise(key, x)`` (``x~ = x`` when ``noise`` is None), ``L`` the reconstruction loss against the *clean*
    ``x``, ``Omega`` the sparsity penalty on ``h``. The contractive term is taken at the clean ``x``.

    Args:
      ae: an :class:`Autoencoder`.
      reconstruction: ``"bce"`` (:func:`bernoulli_cross_entropy`, needs ``output="sigmoid"``) or ``"mse"``
        (:func:`squared_error`).
      noise: corruption ``noise(key, x) -> x~``, e.g. ``functools.partial(masking_noise, rate=0.25)``.
      sparsity: ``None``, ``"kl"`` (:func:`kl_sparsity` with ``rho = sparsity_target``) or ``"l1"``.
      sparsity_weight: ``beta``; contractive_weight: ``lam``.

    Returns: ``J(params, x (n, d), key) -> scalar``.
    Reference: Vincent et al., JMLR 2010, eq. (8) (denoising); Ng 2011 (sparse); Rifai et al., ICML 2011, eq. (6).
    """
    if reconstruction not in _RECONSTRUCTIONS:
        raise ValueError(f"autoencoder_objective: expected reconstruction in {_RECONSTRUCTIONS}, "
                         f"got {reconstruction!r}")
    if reconstruction == "bce" and ae.output != "sigmoid":
        raise ValueError(f"autoencoder_objective: reconstruction='bce' needs a sigmoid decoder, got "
                         f"output={ae.output!r}; build the autoencoder with output='sigmoid' or use 'mse'")
    if sparsity not in _SPARSITY:
        raise ValueError(f"autoencoder_objective: expected sparsity in {_SPARSITY}, got {sparsity!r}")
    if sparsity_weight < 0 or contractive_weight < 0:
        raise ValueError(f"autoencoder_objective: expected non-negative weights, got sparsity_weight="
                         f"{sparsity_weight}, contractive_weight={contractive_weight}")

    def objective(params, x, key):
        x_in = x if noise is None else noise(key, x)
        h = ae.encode(params, x_in)
        a = ae.decode_logits(params, h)
        loss = bernoulli_cross_entropy(a, x) if reconstruction == "bce" else squared_error(ae.decode(params, h), x)
        if sparsity == "kl":
            loss = loss + sparsity_weight * kl_sparsity(h, sparsity_target)
        elif sparsity == "l1":
            loss = loss + sparsity_weight * l1_sparsity(h)
        if contractive_weight:
            loss = loss + contractive_weight * contractive_penalty(lambda v: ae.encode(params, v), x)
        return loss

    return objective


# ------------------------------------------------------------------------------------------------ training
def train_autoencoder(key, ae: Autoencoder, params, X, *, objective: Callable | None = None,
                      optimizer=None, epochs: int = 10, batch_size: int = 128):
    """Minimize ``objective(params, x_batch, key)`` over random mini-batches of ``X`` with ``fnn.train.minimize``.

    ``epochs * (n // batch_size)`` steps; step ``t`` splits ``key_t = fold_in(key, t)`` into a key that draws its
    ``batch_size`` rows of ``X`` uniformly (with replacement, as in Goodfellow et al.'s "sample a minibatch") and
    one for the corruption. An "epoch" is ``n // batch_size`` such steps; its loss is their mean.

    Args:
      key: PRNG key (mini-batches and corruption).
      ae: the :class:`Autoencoder`; params: its :class:`AutoencoderParams`.
      X: training inputs (n, d).
      objective: from :func:`autoencoder_objective` (default: plain reconstruction, BCE for a sigmoid decoder,
        else squared error).
      optimizer: an optax-protocol optimizer (default ``fnn.optimizers.adam(1e-3)``).
      epochs, batch_size: number of epochs and mini-batch size (at most n).

    Returns: ``(params, losses)``: trained params and the mean objective per epoch, shape ``(epochs,)``.
    """
    if objective is None:
        objective = autoencoder_objective(ae, reconstruction="bce" if ae.output == "sigmoid" else "mse")
    optimizer = _opt.adam(1e-3) if optimizer is None else optimizer
    X = jnp.asarray(X)
    n = X.shape[0]
    if not (isinstance(epochs, int) and epochs >= 1 and isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"train_autoencoder: expected positive ints epochs and batch_size, got epochs={epochs!r}, "
                         f"batch_size={batch_size!r}")
    if n < 1:
        raise ValueError(f"train_autoencoder: expected at least one training example, got {n}")
    bs = min(batch_size, n)
    nb = n // bs

    def minibatch_objective(p, X, key_t):
        k_batch, k_noise = jax.random.split(key_t)
        return objective(p, X[jax.random.randint(k_batch, (bs,), 0, n)], k_noise)

    params, _, losses = minimize(minibatch_objective, params, optimizer, steps=epochs * nb, args=(X,), key=key)
    return params, jnp.mean(losses.reshape(epochs, nb), axis=1)
