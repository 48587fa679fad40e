"""Activation functions, each with its derivative in the docstring.

Every function is elementwise (except ``softmax``/``log_softmax``, which act along ``axis``), pure, and
numerically stable for inputs up to ``|x| = 1e4``: no NaN or inf where the true value is finite.

Notation: ``f(x)`` is the activation, ``f'(x)`` its derivative, ``sigma`` the logistic sigmoid.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = [
    "step", "sign", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu", "selu",
    "softmax", "log_softmax", "gaussian", "identity",
]


@jax.custom_jvp
def step(x):
    """Heaviside step, the perceptron's threshold unit.

    f(x) = 1 if x > 0 else 0;  f'(x) = 0 (almost everywhere; we use 0 at x = 0 too).

    Reference: Rosenblatt, "The perceptron", Psychological Review, 1958.
    """
    return jnp.where(x > 0, jnp.ones_like(x), jnp.zeros_like(x))


@step.defjvp
def _step_jvp(primals, tangents):
    (x,), _ = primals, tangents
    y = step(x)
    return y, jnp.zeros_like(y)


@jax.custom_jvp
def sign(x):
    """Sign unit of the classic threshold logic unit with +-1 outputs.

    f(x) = +1 if x >= 0 else -1;  f'(x) = 0 almost everywhere.
    Departure from ``jnp.sign``: f(0) = +1, so the output is always one of two classes.
    """
    return jnp.where(x >= 0, jnp.ones_like(x), -jnp.ones_like(x))


@sign.defjvp
def _sign_jvp(primals, tangents):
    (x,), _ = primals, tangents
    y = sign(x)
    return y, jnp.zeros_like(y)


def sigmoid(x):
    """Logistic sigmoid.

    f(x) = 1 / (1 + exp(-x));  f'(x) = f(x) (1 - f(x)).
    Stable: computed as ``0.5 * (tanh(x / 2) + 1)``, which never overflows.

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1, eq. (3).
    """
    return jax.nn.sigmoid(x)


def tanh(x):
    """Hyperbolic tangent.  f(x) = tanh(x);  f'(x) = 1 - tanh(x)^2."""
    return jnp.tanh(x)


def relu(x):
    """Rectified linear unit.  f(x) = max(x, 0);  f'(x) = 1 if x > 0 else 0 (0 at x = 0)."""
    return jax.nn.relu(x)


def leaky_relu(x, negative_slope: float = 0.01):
    """Leaky ReLU.  f(x) = x if x >= 0 else a x;  f'(x) = 1 if x >= 0 else a  (a = ``negative_slope``).

    Reference: Maas, Hannun, Ng, "Rectifier nonlinearities improve neural network acoustic models", 2013.
    """
    return jnp.where(x >= 0, x, negative_slope * x)


def elu(x, alpha: float = 1.0):
    """Exponential linear unit.

    f(x) = x if x > 0 else alpha (exp(x) - 1);  f'(x) = 1 if x > 0 else f(x) + alpha.
    Stable: ``expm1`` is evaluated on ``min(x, 0)`` so the unused branch never overflows.

    Reference: Clevert, Unterthiner, Hochreiter, "Fast and accurate deep network learning by ELUs", 2016, eq. (1).
    """
    safe = jnp.minimum(x, 0.0)
    return jnp.where(x > 0, x, alpha * jnp.expm1(safe))


def softplus(x):
    """Softplus, the smooth ReLU.

    f(x) = log(1 + exp(x));  f'(x) = sigma(x).
    Stable: computed as ``logaddexp(x, 0)``.
    """
    return jnp.logaddexp(x, 0.0)


def gelu(x, approximate: bool = False):
    """Gaussian error linear unit.

    f(x) = x Phi(x) with Phi the standard normal CDF;  f'(x) = Phi(x) + x phi(x), phi the normal density.
    With ``approximate=True``: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    Departure from ``jax.nn.gelu``: the exact form is the default here, as in the paper's definition.

    Reference: Hendrycks, Gimpel, "Gaussian error linear units (GELUs)", 2016, sec. 2.
    """
    return jax.nn.gelu(x, approximate=approximate)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    """Scaled ELU.

    f(x) = lambda x if x > 0 else lambda alpha (exp(x) - 1);  f'(x) = lambda if x > 0 else f(x) + lambda alpha,
    with alpha ~ 1.6733 and lambda ~ 1.0507.

    Reference: Klambauer et al., "Self-normalizing neural networks", 2017, eq. (2).
    """
    return _SELU_SCALE * elu(x, _SELU_ALPHA)


def softmax(x, axis: int = -1):
    """Softmax along ``axis``.

    f(x)_i = exp(x_i) / sum_j exp(x_j);  df_i/dx_j = f_i (delta_ij - f_j).
    Stable: the maximum is subtracted first.
    """
    z = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(z)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis: int = -1):
    """Log-softmax along ``axis``.

    f(x)_i = x_i - log sum_j exp(x_j);  df_i/dx_j = delta_ij - softmax(x)_j.
    Stable: the maximum is subtracted before the exponential.
    """
    z = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return z - jnp.log(jnp.sum(jnp.exp(z), axis=axis, keepdims=True))


def gaussian(x, width: float = 1.0):
    """Gaussian radial basis function of a distance ``x``.

    f(x) = exp(-x^2 / (2 s^2));  f'(x) = -(x / s^2) f(x)   (s = ``width``).
    """
    return jnp.exp(-jnp.square(x) / (2.0 * width * width))


def identity(x):
    """Identity.  f(x) = x;  f'(x) = 1."""
    return x


# Derivatives as the docstrings state them; used by the tests and by the hand-written backprop reference.
DERIVATIVES = {
    "step": lambda x: jnp.zeros_like(x),
    "sign": lambda x: jnp.zeros_like(x),
    "sigmoid": lambda x: sigmoid(x) * (1 - sigmoid(x)),
    "tanh": lambda x: 1 - jnp.tanh(x) ** 2,
    "relu": lambda x: jnp.where(x > 0, 1.0, 0.0).astype(jnp.result_type(x)),
    "leaky_relu": lambda x: jnp.where(x >= 0, 1.0, 0.01).astype(jnp.result_type(x)),
    "elu": lambda x: jnp.where(x > 0, 1.0, elu(x) + 1.0).astype(jnp.result_type(x)),
    "softplus": lambda x: sigmoid(x),
    "gelu": lambda x: 0.5 * (1 + jax.scipy.special.erf(x / math.sqrt(2)))
    + x * jnp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),
    "selu": lambda x: jnp.where(x > 0, _SELU_SCALE, selu(x) + _SELU_SCALE * _SELU_ALPHA).astype(
        jnp.result_type(x)),
    "gaussian": lambda x: -x * gaussian(x),
    "identity": lambda x: jnp.ones_like(x),
}
