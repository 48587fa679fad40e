"""fnn.initializers: statistics against the formulas, orthogonality, exact sparsity, error messages."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import initializers as I

DENSE = (300, 200)          # fan_in 300, fan_out 200: 60,000 draws
CONV = (5, 5, 24, 40)       # HWIO: fan_in 5*5*24 = 600, fan_out 5*5*40 = 1000: 24,000 draws
FANS = {DENSE: (300, 200), CONV: (600, 1000)}


def _n(mode, shape):
    fan_in, fan_out = FANS[shape]
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def _check_variance(w, variance):
    """Mean 0 within 5 standard errors; variance within 5 standard errors (sd of a sample variance ~ sqrt(2/N))."""
    w = np.asarray(w, np.float64)
    assert abs(w.mean()) < 5 * math.sqrt(variance / w.size)
    assert w.var() == pytest.approx(variance, rel=5 * math.sqrt(2 / w.size))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["normal", "uniform", "truncated_normal"])
def test_variance_scaling_statistics(key, mode, distribution):
    """Every mode and distribution on a conv kernel (so the receptive field enters the fans)."""
    shape = CONV
    scale = 1.7
    w = I.variance_scaling(scale, mode, distribution)(key, shape)
    assert w.shape == shape and w.dtype == jnp.float32
    variance = scale / _n(mode, shape)
    _check_variance(w, variance)
    a = np.abs(np.asarray(w))
    if distribution == "uniform":
        b = math.sqrt(3 * variance)
        assert a.max() <= b and a.max() > 0.99 * b
    if distribution == "truncated_normal":
        bound = 2 * math.sqrt(variance) / 0.87962566103423978
        assert a.max() <= bound * (1 + 1e-6) and a.max() > 0.98 * bound


# name -> (variance as a function of (fan_in, fan_out), uniform?)
NAMED = {
    "glorot_normal": (lambda i, o: 2 / (i + o), False),
    "glorot_uniform": (lambda i, o: 2 / (i + o), True),
    "xavier_normal": (lambda i, o: 2 / (i + o), False),
    "xavier_uniform": (lambda i, o: 2 / (i + o), True),
    "he_normal": (lambda i, o: 2 / i, False),
    "he_uniform": (lambda i, o: 2 / i, True),
    "kaiming_normal": (lambda i, o: 2 / i, False),
    "kaiming_uniform": (lambda i, o: 2 / i, True),
    "lecun_normal": (lambda i, o: 1 / i, False),
    "lecun_uniform": (lambda i, o: 1 / i, True),
}


@pytest.mark.parametrize("name,shape", [(n, DENSE) for n in sorted(NAMED)]
                         + [("glorot_uniform", CONV), ("he_normal", CONV), ("lecun_normal", CONV)])
def test_named_schemes(key, name, shape):
    var_fn, is_uniform = NAMED[name]
    variance = var_fn(*FANS[shape])
    w = np.asarray(getattr(I, name)()(key, shape))
    _check_variance(w, variance)
    if is_uniform:  # e.g. glorot_uniform: U[-b, b] with b = sqrt(6 / (fan_in + fan_out))
        b = math.sqrt(3 * variance)
        assert np.abs(w).max() <= b and np.abs(w).max() > 0.99 * b
    else:  # a plain normal reaches beyond 2 std in ~4.6% of the draws (a truncated one never does)
        assert np.mean(np.abs(w) > 2 * math.sqrt(variance)) == pytest.approx(0.0455, abs=0.006)


def test_glorot_uniform_bound_is_the_papers():
    w = np.asarray(I.glorot_uniform()(jax.random.key(1), (30, 70)))
    assert np.abs(w).max() <= math.sqrt(6 / 100)
    assert np.abs(w).max() > 0.98 * math.sqrt(6 / 100)


def test_fans_rule():
    assert I.fans((300, 200)) == (300, 200)
    assert I.fans((3, 3, 16, 32)) == (144, 288)
    assert I.fans((7,)) == (7, 7)
    assert I.fans((32, 16, 3, 3), in_axis=1, out_axis=0) == (144, 288)  # OIHW
    assert I.fans((10, 50, 60), batch_axis=(0,)) == (50, 60)
    assert I.fans((10, 50, 60)) == (500, 600)


def test_batch_axis_and_custom_axes(key):
    w = I.variance_scaling(1.0, "fan_in", "normal", batch_axis=(0,))(key, CONV)  # fan_in = 24 * 5 (axis 0 left out)
    _check_variance(w, 1 / 120)
    w = I.he_normal(in_axis=1, out_axis=0)(key, CONV)  # read as OIHW: fan_in = 5 * 24 * 40
    _check_variance(w, 2 / 4800)


def test_simple_initializers(key):
    assert np.array_equal(I.zeros(key, (2, 3)), np.zeros((2, 3)))
    assert np.array_equal(I.ones(key, (4,)), np.ones(4))
    assert np.array_equal(I.constant(0.25)(key, (2, 2)), np.full((2, 2), 0.25))
    _check_variance(I.normal(0.3)(key, DENSE), 0.09)
    _check_variance(I.standard_normal()(key, DENSE), 1.0)
    u = np.asarray(I.uniform(0.5)(key, DENSE))
    _check_variance(u, 0.25 / 3)
    assert u.min() >= -0.5 and u.max() <= 0.5 and u.min() < -0.49  # symmetric, unlike jax's U[0, scale)


def test_dtype_and_determinism(key):
    with jax.enable_x64(True):
        assert I.glorot_uniform()(key, (3, 4), jnp.float64).dtype == jnp.float64
    assert I.he_normal()(key, (3, 4), jnp.bfloat16).dtype == jnp.bfloat16
    assert I.orthogonal()(key, (3, 4), jnp.bfloat16).dtype == jnp.bfloat16
    np.testing.assert_array_equal(I.lecun_normal()(key, (5, 6)), I.lecun_normal()(key, (5, 6)))
    assert not np.array_equal(I.lecun_normal()(key, (5, 6)), I.lecun_normal()(jax.random.key(1), (5, 6)))


@pytest.mark.parametrize("shape,column_axis", [((20, 50), -1), ((3, 3, 8, 16), -1), ((6, 40), 0)])
def test_orthogonal(key, shape, column_axis):
    with jax.enable_x64(True):
        w = np.asarray(I.orthogonal(scale=1.5, column_axis=column_axis)(key, shape, jnp.float64))
    assert w.shape == shape
    m = np.moveaxis(w, column_axis, -1).reshape(-1, shape[column_axis])  # (rows, columns)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, 1.5 ** 2 * np.eye(gram.shape[0]), atol=1e-12)


def test_orthogonal_is_haar_distributed():
    """With the sign correction, Q[0, 0] of a Haar 2x2 rotation/reflection has mean 0 and E[Q00^2] = 1/2."""
    qs = jax.vmap(lambda k: I.orthogonal()(k, (2, 2)))(jax.random.split(jax.random.key(3), 4000))
    q00 = np.asarray(qs[:, 0, 0], np.float64)
    assert abs(q00.mean()) < 0.05
    assert np.mean(q00 ** 2) == pytest.approx(0.5, abs=0.03)
    dets = np.linalg.det(np.asarray(qs, np.float64))
    assert np.mean(dets > 0) == pytest.approx(0.5, abs=0.05)


def test_sparse_exact_count_and_statistics(key):
    fan_in, fan_out, k = 40, 800, 5
    w = np.asarray(I.sparse(nonzero=k, stddev=0.5)(key, (fan_in, fan_out)))
    assert w.shape == (fan_in, fan_out)
    np.testing.assert_array_equal((w != 0).sum(axis=0), np.full(fan_out, k))  # exactly k per unit
    _check_variance(w[w != 0], 0.25)
    # The connections are uniform over the inputs: each input is chosen by k / fan_in of the units.
    per_input = (w != 0).sum(axis=1)
    assert np.all(np.abs(per_input - fan_out * k / fan_in) < 5 * math.sqrt(fan_out * k / fan_in))
    wt = np.asarray(I.sparse(nonzero=3, in_axis=-1)(key, (7, 12)))  # (fan_out, fan_in) layout
    np.testing.assert_array_equal((wt != 0).sum(axis=1), np.full(7, 3))


def test_initializers_work_in_jax_and_fnn_layers(key):
    from jax.example_libraries import stax

    from fnn.layers import Dense
    _, (W, b) = stax.Dense(7, W_init=I.he_uniform(), b_init=I.zeros)[0](key, (-1, 5))
    assert W.shape == (5, 7) and np.all(np.asarray(b) == 0)
    _, p = Dense(7, W_init=jax.nn.initializers.orthogonal(), b_init=jax.nn.initializers.zeros).init(key, (-1, 5))
    np.testing.assert_allclose(np.asarray(p.W @ p.W.T), np.eye(5), atol=1e-5)


@pytest.mark.parametrize("make,shape,match", [
    (lambda: I.variance_scaling(0.0, "fan_in", "normal"), None, r"variance_scaling: expected scale > 0, got 0.0"),
    (lambda: I.variance_scaling(1.0, "fan_max", "normal"), None, r"variance_scaling: mode must be one of .*'fan_max'"),
    (lambda: I.variance_scaling(1.0, "fan_in", "cauchy"), None, r"distribution must be one of .*'cauchy'"),
    (lambda: I.normal(-1.0), None, r"normal: expected stddev >= 0, got -1.0"),
    (lambda: I.uniform(-1.0), None, r"uniform: expected scale >= 0, got -1.0"),
    (lambda: I.orthogonal(0.0), None, r"orthogonal: expected scale > 0"),
    (lambda: I.sparse(0), None, r"sparse: expected nonzero >= 1 .* got 0"),
    (lambda: I.sparse(3, stddev=0.0), None, r"sparse: expected stddev > 0"),
    (I.orthogonal, (5,), r"orthogonal: expected a weight with at least 2 dimensions, got shape \(5,\)"),
    (lambda: I.sparse(20), (10, 4), r"sparse: 20 non-zero weights per unit .* only 10 inputs; pass nonzero <= 10"),
    (lambda: I.sparse(2), (3, 3, 4), r"sparse: expected a 2-D \(fan_in, fan_out\) weight, got shape \(3, 3, 4\)"),
    (lambda: I.he_normal(in_axis=-3), (4, 5), r"fans: in_axis=-3 is out of range for a weight of shape \(4, 5\)"),
    (lambda: I.he_normal(in_axis=-1), (4, 5), r"fans: in_axis and out_axis must differ"),
    (I.glorot_normal, (), r"fans: a weight needs at least one dimension, got shape \(\)"),
    (I.glorot_normal, 5, r"variance_scaling: expected a shape \(a tuple of ints\), got 5"),
    (I.glorot_normal, (2, -3), r"variance_scaling: expected non-negative sizes, got shape \(2, -3\)"),
])
def test_errors(key, make, shape, match):
    with pytest.raises((ValueError, TypeError), match=match):
        init = make()
        init(key, shape)


def test_choice_messages_come_from_fnn_checks():
    with pytest.raises(ValueError, match=r"^variance_scaling: mode must be one of 'fan_in', 'fan_out', 'fan_avg', "
                                         r"got 'fan_max'; pick one\.$"):
        I.variance_scaling(1.0, "fan_max", "normal")
    with pytest.raises(ValueError, match=r"^sparse: in_axis must be one of -2, -1, 0, 1, got 2; in_axis is an axis"):
        I.sparse(3, in_axis=2)
