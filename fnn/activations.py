"""Activation functions, each beside its derivative.

Every function is elementwise (except ``softmax``/``log_softmax``, which act along ``axis``), pure, keeps the
input's shape and floating dtype, and is numerically stable for inputs up to ``|x| = 1e4``: neither the value nor
``jax.grad`` of it is NaN or inf where the true value is finite.

Notation: ``f(x)`` is the activation, ``f'(x)`` its derivative, ``sigma`` the logistic sigmoid, ``Phi``/``phi``
the standard normal CDF/density. ``DERIVATIVES[name](x, **kwargs)`` evaluates the documented ``f'`` of each
elementwise activation (same keyword arguments as the activation); ``JACOBIANS[name](x)`` the Jacobian of softmax and
log-softmax of a vector. The tests check ``jax.grad`` against both.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

__all__ = [
    "step", "sign", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "selu",
    "softmax", "log_softmax", "gaussian", "identity", "DERIVATIVES", "JACOBIANS",
]


@jax.custom_jvp
def step(x, at_zero=0.0):
    """Heaviside step, the perceptron's threshold unit.

    f(x) = 1 if x > 0, at_zero if x = 0, 0 if x < 0;  f'(x) = 0 (everywhere we use 0, including at x = 0).
    ``at_zero`` is the threshold convention: 0 (the default, Nielsen's eq. (2): fire on x > 0), 1 (fire on x >= 0,
    the McCulloch-Pitts unit and many slides) or 1/2 (the symmetric Heaviside value). The two conventions differ
    only at x == 0 exactly.

    Args:
      x: array of any shape.
      at_zero: the value at x == 0 (a number, usually 0, 1 or 0.5).
    Returns:
      array of x's shape and dtype with entries in {0, at_zero, 1}.

    Example:
      >>> step(jnp.array([-1.0, 0.0, 2.0])).tolist()
      [0.0, 0.0, 1.0]
      >>> step(jnp.array([-1.0, 0.0, 2.0]), at_zero=1.0).tolist()
      [0.0, 1.0, 1.0]

    Reference: Rosenblatt, "The perceptron: a probabilistic model for information storage and organization in the
    brain", Psychological Review 65(6), 1958; Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1, eq. (2).
    """
    return jnp.where(x > 0, jnp.ones_like(x), jnp.where(x < 0, jnp.zeros_like(x), jnp.full_like(x, at_zero)))


@step.defjvp
def _step_jvp(primals, tangents):
    y = step(*primals)
    return y, jnp.zeros_like(y)


@jax.custom_jvp
def sign(x):
    """Sign unit with +-1 outputs (threshold logic unit, perceptron with labels in {-1, +1}).

    f(x) = +1 if x >= 0 else -1;  f'(x) = 0 (everywhere we use 0, including at x = 0).
    Departure from ``jnp.sign``: f(0) = +1, so the output is always one of the two classes.

    Args:
      x: array of any shape.
    Returns:
      array of x's shape and dtype with entries in {-1, +1}.

    Reference: Minsky & Papert, *Perceptrons*, 1969, ch. 0 (threshold units with +-1 outputs).
    """
    return jnp.where(x >= 0, jnp.ones_like(x), -jnp.ones_like(x))


@sign.defjvp
def _sign_jvp(primals, tangents):
    y = sign(primals[0])
    return y, jnp.zeros_like(y)


def sigmoid(x):
    """Logistic sigmoid.

    f(x) = 1 / (1 + exp(-x));  f'(x) = f(x) (1 - f(x)).
    Stable: ``jax.nn.sigmoid`` (``lax.logistic``) never evaluates ``exp`` of a large positive number; at
    ``x = -1e4`` it returns 0 and at ``x = +1e4`` it returns 1, with derivative 0 in both places.

    Args:
      x: array of any shape.
    Returns:
      array of x's shape with entries in [0, 1].

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1, eq. (3)-(4); ch. 2, eq. (BP1) uses f'.
    """
    return jax.nn.sigmoid(x)


def tanh(x):
    """Hyperbolic tangent.

    f(x) = tanh(x) = 2 sigma(2x) - 1;  f'(x) = 1 - tanh(x)^2.

    Args:
      x: array of any shape.
    Returns:
      array of x's shape with entries in [-1, 1].

    Reference: LeCun, Bottou, Orr, Mueller, "Efficient BackProp", 1998, sec. 4.4.
    """
    return jnp.tanh(x)


def relu(x):
    """Rectified linear unit.

    f(x) = max(x, 0);  f'(x) = 1 if x > 0 else 0 (0 at x = 0, as ``jax.nn.relu``).

    Args:
      x: array of any shape.
    Returns:
      array of x's shape, non-negative.

    Reference: Nair & Hinton, "Rectified linear units improve restricted Boltzmann machines", ICML 2010;
    Glorot, Bordes, Bengio, "Deep sparse rectifier neural networks", AISTATS 2011.
    """
    return jax.nn.relu(x)


def leaky_relu(x, negative_slope: float = 0.01):
    """Leaky ReLU.

    f(x) = x if x >= 0 else a x;  f'(x) = 1 if x >= 0 else a   (a = ``negative_slope``; f'(0) = 1).

    Args:
      x: array of any shape.
      negative_slope: slope ``a`` for negative inputs (default 0.01, as in the paper and ``jax.nn.leaky_relu``).
    Returns:
      array of x's shape.

    Reference: Maas, Hannun, Ng, "Rectifier nonlinearities improve neural network acoustic models", ICML 2013,
    eq. (3).
    """
    return jnp.where(x >= 0, x, negative_slope * x)


def elu(x, alpha: float = 1.0):
    """Exponential linear unit.

    f(x) = x if x > 0 else alpha (exp(x) - 1);  f'(x) = 1 if x > 0 else alpha exp(x) = f(x) + alpha (f'(0) = alpha).
    Stable: ``expm1`` is evaluated on ``x`` only where ``x <= 0`` (0 elsewhere), so the unused branch never
    overflows and its gradient never produces ``0 * inf``.

    Args:
      x: array of any shape.
      alpha: the negative saturation value is ``-alpha`` (default 1).
    Returns:
      array of x's shape, >= -alpha.

    Reference: Clevert, Unterthiner, Hochreiter, "Fast and accurate deep network learning by exponential linear
    units (ELUs)", ICLR 2016, eq. (1)-(2).
    """
    negative = jnp.where(x > 0, jnp.zeros_like(x), x)
    return jnp.where(x > 0, x, alpha * jnp.expm1(negative))


def softplus(x):
    """Softplus, the smooth ReLU.

    f(x) = log(1 + exp(x));  f'(x) = sigma(x).
    Stable: computed as ``logaddexp(x, 0) = max(x, 0) + log1p(exp(-|x|))``, so f(1e4) = 1e4 and f(-1e4) = 0.

    Args:
      x: array of any shape.
    Returns:
      array of x's shape, positive.

    Reference: Dugas et al., "Incorporating second-order functional knowledge for better option pricing",
    NIPS 2000; Glorot, Bordes, Bengio, AISTATS 2011, sec. 2.
    """
    return jnp.logaddexp(x, jnp.zeros_like(x))


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x, approximate: bool = False):
    """Gaussian error linear unit.

    Exact (default): f(x) = x Phi(x) = (x / 2) (1 + erf(x / sqrt 2));  f'(x) = Phi(x) + x phi(x).
    ``approximate=True``: f(x) = (x / 2) (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3);
    f'(x) = (1 + tanh(u)) / 2 + (x / 2) (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    The approximation is computed as x sigma(2u) (the identity (1 + tanh u) / 2 = sigma(2u)), which keeps its tiny
    left-tail values accurate in float32 where 1 + tanh(u) cancels to 0.
    Departure from ``jax.nn.gelu``: the exact form is the default, as in the paper's definition.

    Args:
      x: array of any shape.
      approximate: use the tanh approximation.
    Returns:
      array of x's shape.

    Reference: Hendrycks & Gimpel, "Gaussian error linear units (GELUs)", arXiv:1606.08415, 2016, sec. 2.
    """
    if approximate:
        return x * jax.nn.sigmoid(2 * _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
    return jax.nn.gelu(x, approximate=False)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    """Scaled exponential linear unit.

    f(x) = lambda x if x > 0 else lambda alpha (exp(x) - 1);  f'(x) = lambda if x > 0 else f(x) + lambda alpha,
    with alpha = 1.6732632... and lambda = 1.0507009... (the fixed point for zero mean, unit variance).

    Args:
      x: array of any shape.
    Returns:
      array of x's shape.

    Reference: Klambauer, Unterthiner, Mayr, Hochreiter, "Self-normalizing neural networks", NIPS 2017, eq. (2).
    """
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def softmax(x, axis: int = -1):
    """Softmax along ``axis``.

    f(x)_i = exp(x_i) / sum_j exp(x_j);  df_i/dx_j = f_i (delta_ij - f_j).
    Stable: ``m = max_j x_j`` is subtracted first (softmax is invariant to the shift), so every exponent is <= 0.

    Args:
      x: array of any shape; ``axis`` indexes the classes.
      axis: the axis to normalize over (default -1).
    Returns:
      array of x's shape; entries in [0, 1] summing to 1 along ``axis``.

    Reference: Bridle, "Probabilistic interpretation of feedforward classification network outputs", 1990;
    Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (78).
    """
    z = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(z)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis: int = -1):
    """Log-softmax along ``axis``.

    f(x)_i = x_i - log sum_j exp(x_j);  df_i/dx_j = delta_ij - softmax(x)_j.
    Stable: with m = max_j x_j, f(x)_i = (x_i - m) - log sum_j exp(x_j - m); the sum is >= 1, so the log is finite.

    Args:
      x: array of any shape; ``axis`` indexes the classes.
      axis: the axis to normalize over (default -1).
    Returns:
      array of x's shape, entries <= 0.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 3, eq. (80) (the log-likelihood cost uses it).
    """
    z = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True))


def gaussian(x, width: float = 1.0):
    """Gaussian radial basis function of a distance ``x``.

    f(x) = exp(-x^2 / (2 s^2));  f'(x) = -(x / s^2) f(x)   (s = ``width`` > 0).

    Args:
      x: array of any shape (typically the distance ``||u - c||`` to a center c).
      width: the width s (a positive scalar or an array broadcastable to x).
    Returns:
      array of x's shape with entries in [0, 1].

    Reference: Broomhead & Lowe, "Multivariable functional interpolation and adaptive networks", Complex Systems 2,
    1988; Bishop, *Neural Networks for Pattern Recognition*, 1995, sec. 5.1, eq. (5.7).
    """
    return jnp.exp(-jnp.square(x) / (2.0 * width * width))


def identity(x):
    """Identity (linear unit).  f(x) = x;  f'(x) = 1."""
    return x


def _like(x, value):
    return jnp.full_like(x, value)


def _gelu_prime(x, approximate: bool = False):
    if not approximate:
        return 0.5 * (1 + erf(x / math.sqrt(2))) + x * jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    # (1 + tanh u) / 2 = s and (1 - tanh(u)^2) / 2 = 2 s (1 - s), with s = sigma(2u).
    s = jax.nn.sigmoid(2 * _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
    return s + 2 * x * s * (1 - s) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)


# The derivatives f'(x) exactly as the docstrings state them (same keyword arguments as the activation).
DERIVATIVES = {
    "step": lambda x, at_zero=0.0: jnp.zeros_like(x),
    "sign": lambda x: jnp.zeros_like(x),
    "sigmoid": lambda x: sigmoid(x) * (1 - sigmoid(x)),
    "tanh": lambda x: 1 - jnp.tanh(x) ** 2,
    "relu": lambda x: jnp.where(x > 0, _like(x, 1), _like(x, 0)),
    "leaky_relu": lambda x, negative_slope=0.01: jnp.where(x >= 0, _like(x, 1), _like(x, negative_slope)),
    "elu": lambda x, alpha=1.0: jnp.where(x > 0, _like(x, 1), elu(x, alpha) + alpha),
    "softplus": lambda x: sigmoid(x),
    "gelu": _gelu_prime,
    "selu": lambda x: jnp.where(x > 0, _like(x, _SELU_SCALE), selu(x) + _SELU_SCALE * _SELU_ALPHA),
    "gaussian": lambda x, width=1.0: -(x / (width * width)) * gaussian(x, width),
    "identity": lambda x: jnp.ones_like(x),
}

# Jacobians J[i, j] = df_i/dx_j of softmax and log-softmax of a vector x of shape (k,), as documented.
JACOBIANS = {
    "softmax": lambda x: softmax(x)[:, None] * (jnp.eye(x.shape[-1], dtype=x.dtype) - softmax(x)[None, :]),
    "log_softmax": lambda x: jnp.eye(x.shape[-1], dtype=x.dtype) - softmax(x)[None, :],
}
