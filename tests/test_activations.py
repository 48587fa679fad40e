"""fnn.activations: values against NumPy/SciPy, jax.grad against the documented derivatives, extremes stay finite."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from fnn import activations as A

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848, 1.0507009873554804934  # Klambauer et al. 2017, eq. (14)

# name -> (kwargs, NumPy/SciPy reference of f)
ELEMENTWISE = {
    "step": ({}, lambda x: (x > 0).astype(float)),
    "sign": ({}, lambda x: np.where(x >= 0, 1.0, -1.0)),
    "sigmoid": ({}, special.expit),
    "tanh": ({}, np.tanh),
    "relu": ({}, lambda x: np.maximum(x, 0)),
    "leaky_relu": ({}, lambda x: np.where(x >= 0, x, 0.01 * x)),
    "elu": ({}, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    "softplus": ({}, lambda x: np.logaddexp(x, 0)),
    "gelu": ({}, lambda x: x * stats.norm.cdf(x)),
    "selu": ({}, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))),
    "gaussian": ({}, lambda x: np.exp(-x ** 2 / 2)),
    "identity": ({}, lambda x: x),
}
VARIANTS = [  # (name, kwargs, reference) with non-default hyper-parameters
    ("leaky_relu", {"negative_slope": 0.2}, lambda x: np.where(x >= 0, x, 0.2 * x)),
    ("elu", {"alpha": 0.5}, lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0)))),
    ("gaussian", {"width": 2.0}, lambda x: np.exp(-x ** 2 / 8)),
    ("gelu", {"approximate": True},
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
]
CASES = [(n, kw, ref) for n, (kw, ref) in ELEMENTWISE.items()] + VARIANTS
IDS = [n + ("" if not kw else "-" + "-".join(f"{k}={v}" for k, v in kw.items())) for n, kw, _ in CASES]

GRID = np.concatenate([np.linspace(-6, 6, 97), [0.0, -1e-3, 1e-3]])


@functools.lru_cache(maxsize=None)
def _compiled(name, kw_items):
    """One jitted function per activation: x -> (f(x), jax.grad of f at each x, documented f'(x))."""
    f, df, kw = getattr(A, name), A.DERIVATIVES[name], dict(kw_items)
    return jax.jit(lambda x: (f(x, **kw), jax.vmap(jax.grad(lambda t: f(t, **kw)))(x), df(x, **kw)))


def evaluate(name, kw, x):
    return _compiled(name, tuple(sorted(kw.items())))(x)


EXTREMES = np.array([-1e4, -1e3, -100.0, -30.0, 0.0, 30.0, 100.0, 1e3, 1e4])  # 0: the kinks
# One float32 evaluation per activation covers the grid and the extremes (one compilation each).
ALL = np.concatenate([GRID, EXTREMES]).astype(np.float32)
ON_GRID = np.arange(ALL.size) < GRID.size


def test_registry_covers_every_activation():
    elementwise = set(A.__all__) - {"softmax", "log_softmax", "DERIVATIVES", "JACOBIANS"}
    assert set(A.DERIVATIVES) == elementwise == set(ELEMENTWISE)
    assert set(A.JACOBIANS) == {"softmax", "log_softmax"}


@pytest.mark.parametrize("name,kw,ref", CASES, ids=IDS)
def test_values_match_numpy(name, kw, ref):
    got, _, _ = evaluate(name, kw, jnp.asarray(ALL))
    assert got.dtype == jnp.float32 and got.shape == ALL.shape
    with np.errstate(over="ignore"):  # the NumPy reference may overflow internally; the true values are finite
        want = ref(ALL.astype(np.float64))
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name,kw,ref", CASES, ids=IDS)
def test_grad_equals_documented_derivative(name, kw, ref):
    _, grad, documented = evaluate(name, kw, jnp.asarray(ALL))
    np.testing.assert_allclose(np.asarray(grad), np.asarray(documented), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kw,ref", CASES, ids=IDS)
def test_documented_derivative_matches_finite_differences(name, kw, ref):
    """Independent check of DERIVATIVES: central differences of the NumPy reference (float64), away from kinks."""
    x = ALL.astype(np.float64)
    away = ON_GRID & (np.abs(x) > 1e-2)
    h = 1e-6
    fd = (ref(x[away] + h) - ref(x[away] - h)) / (2 * h)
    _, _, documented = evaluate(name, kw, jnp.asarray(ALL))
    np.testing.assert_allclose(np.asarray(documented)[away], fd, rtol=1e-5, atol=1e-6)


def test_kink_conventions():
    """The values of f'(0) stated in the docstrings."""
    i = int(np.flatnonzero(ALL == 0)[0])
    at0 = {name: float(evaluate(name, {}, jnp.asarray(ALL))[1][i]) for name in ELEMENTWISE}
    assert at0["relu"] == 0.0 and at0["leaky_relu"] == 1.0 and at0["step"] == 0.0 and at0["sign"] == 0.0
    assert at0["elu"] == pytest.approx(1.0) and at0["selu"] == pytest.approx(SELU_SCALE * SELU_ALPHA)
    assert at0["sigmoid"] == pytest.approx(0.25) and at0["gelu"] == pytest.approx(0.5)
    assert float(A.sign(0.0)) == 1.0 and float(A.step(0.0)) == 0.0


@pytest.mark.parametrize("name,kw,ref", CASES, ids=IDS)
def test_extremes_are_finite(name, kw, ref):
    """At |x| up to 1e4 (float32) neither the value nor jax.grad is NaN or inf (the values are checked above)."""
    y, g, _ = evaluate(name, kw, jnp.asarray(ALL))
    assert np.all(np.isfinite(np.asarray(y)[~ON_GRID])) and np.all(np.isfinite(np.asarray(g)[~ON_GRID]))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_values_and_jacobian(name):
    f = getattr(A, name)
    ref = {"softmax": special.softmax, "log_softmax": special.log_softmax}[name]
    with jax.enable_x64(True):
        x = np.random.default_rng(0).normal(size=(4, 5)) * 3
        np.testing.assert_allclose(np.asarray(f(jnp.asarray(x))), ref(x, axis=-1), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(f(jnp.asarray(x), axis=0)), ref(x, axis=0), rtol=1e-12, atol=1e-14)
        v = jnp.asarray(x[0])
        jac = jax.jacobian(f)(v)
        np.testing.assert_allclose(np.asarray(jac), np.asarray(A.JACOBIANS[name](v)), rtol=1e-10, atol=1e-12)
        h = 1e-6  # finite differences of the SciPy reference, column j = d f / d x_j
        fd = np.stack([(ref(x[0] + h * e) - ref(x[0] - h * e)) / (2 * h) for e in np.eye(5)], axis=1)
        np.testing.assert_allclose(np.asarray(jac), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_extremes_finite(name):
    f = getattr(A, name)
    x = jnp.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 3.0]], dtype=jnp.float32)
    y = f(x)
    g = jax.grad(lambda t: jnp.sum(f(t) * jnp.arange(3.0)[None, :]))(x)
    assert np.all(np.isfinite(np.asarray(y))) and np.all(np.isfinite(np.asarray(g)))
    with jax.enable_x64(True):
        ref = {"softmax": special.softmax, "log_softmax": special.log_softmax}[name]
        np.testing.assert_allclose(np.asarray(y), ref(np.asarray(x, np.float64), axis=-1), rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("name", ["sigmoid", "elu", "gelu", "softplus"])
def test_eager_equals_jit_and_dtype_kept(name):
    f = getattr(A, name)
    x = jnp.linspace(-3, 3, 13, dtype=jnp.float32)
    np.testing.assert_allclose(np.asarray(f(x)), np.asarray(evaluate(name, {}, x)[0]), rtol=1e-6, atol=1e-7)
    assert jax.jit(f)(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
