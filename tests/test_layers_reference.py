"""Known answers: every layer's output against a NumPy loop written from the formula in its docstring (float64)."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers as L

RNG = np.random.default_rng(0)
KEY = jax.random.key(0, impl="rbg")  # init's draws compile much faster with "rbg" than with threefry on CPU


def randn(*shape):
    return RNG.standard_normal(shape)


def same_pads(n, k, s):
    """TensorFlow/XLA 'SAME': output ceil(n / s), the extra padding goes to the high side."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


# ----------------------------------------------------------------------------------------------- Dense, Maxout, RBF
def test_dense_matches_numpy_loop():
    x, W, b = randn(3, 4), randn(4, 2), randn(2)
    expected = np.array([[sum(x[n, i] * W[i, j] for i in range(4)) + b[j] for j in range(2)] for n in range(3)])
    with jax.enable_x64(True):
        y = L.Dense(2).apply(L.DenseParams(jnp.asarray(W), jnp.asarray(b)), jnp.asarray(x))
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_maxout_is_the_max_of_k_affine_pieces():
    k, d_in, d_out = 3, 4, 2
    x, W, b = randn(5, 2, d_in), randn(k, d_in, d_out), randn(k, d_out)
    expected = np.empty((5, 2, d_out))
    for n, t, j in itertools.product(range(5), range(2), range(d_out)):
        expected[n, t, j] = max(sum(x[n, t, i] * W[p, i, j] for i in range(d_in)) + b[p, j] for p in range(k))
    with jax.enable_x64(True):
        y = L.Maxout(d_out, k).apply(L.MaxoutParams(jnp.asarray(W), jnp.asarray(b)), jnp.asarray(x))
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_maxout_with_pieces_w_and_0_is_relu():
    W = np.stack([np.eye(3), np.zeros((3, 3))])
    x = randn(4, 3)
    with jax.enable_x64(True):
        y = L.Maxout(3, 2).apply(L.MaxoutParams(jnp.asarray(W), jnp.zeros((2, 3))), jnp.asarray(x))
    np.testing.assert_allclose(y, np.maximum(x, 0), rtol=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
def test_rbf_gaussian_units(normalize):
    units, d = 3, 2
    x, c, s = randn(4, d), randn(units, d), np.array([0.5, 1.0, 2.0])
    phi = np.array([[math.exp(-sum((x[n, i] - c[j, i]) ** 2 for i in range(d)) / (2 * s[j] ** 2))
                     for j in range(units)] for n in range(4)])
    expected = phi / phi.sum(axis=1, keepdims=True) if normalize else phi
    with jax.enable_x64(True):
        y = L.RBF(units, normalize=normalize).apply(L.RBFParams(jnp.asarray(c), jnp.asarray(s)), jnp.asarray(x))
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_normalized_rbf_far_from_every_center_stays_finite():
    params = L.RBFParams(jnp.array([[0.0], [1.0]]), jnp.array([0.1, 0.1]))
    y = L.RBF(2, normalize=True).apply(params, jnp.array([[1e3], [-1e3]]))  # every phi_j underflows to 0
    np.testing.assert_allclose(y, [[0.0, 1.0], [1.0, 0.0]], atol=1e-6)  # the nearest center takes it all


def test_embedding_is_one_hot_times_table():
    table, ids = randn(6, 3), RNG.integers(0, 6, (4, 2))
    with jax.enable_x64(True):
        y = L.Embedding(6, 3).apply(L.EmbeddingParams(jnp.asarray(table)), jnp.asarray(ids))
    np.testing.assert_allclose(y, np.eye(6)[ids] @ table, rtol=1e-12)
    assert y.shape == (4, 2, 3)


# ------------------------------------------------------------------------------------------------------- conv
def np_conv_nhwc(x, W, b, strides, pads):
    """y[n, i, j, o] = sum_{di, dj, c} xp[n, s_h i + di, s_w j + dj, c] W[di, dj, c, o] + b[o]."""
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw, _, co = W.shape
    oh, ow = (xp.shape[1] - kh) // strides[0] + 1, (xp.shape[2] - kw) // strides[1] + 1
    y = np.zeros((x.shape[0], oh, ow, co))
    for n, i, j, o in itertools.product(range(x.shape[0]), range(oh), range(ow), range(co)):
        patch = xp[n, i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw, :]
        y[n, i, j, o] = np.sum(patch * W[..., o]) + b[o]
    return y


@pytest.mark.parametrize("strides,padding", [((1, 1), "VALID"), ((2, 1), "VALID"), ((2, 2), "SAME"),
                                             ((1, 2), ((1, 0), (2, 1)))])
def test_conv_matches_numpy_loop(strides, padding):
    x, W, b = randn(2, 6, 5, 3), randn(3, 2, 3, 4), randn(4)
    if padding == "VALID":
        pads = ((0, 0), (0, 0))
    elif padding == "SAME":
        pads = (same_pads(6, 3, strides[0]), same_pads(5, 2, strides[1]))
    else:
        pads = padding
    layer = L.Conv(4, (3, 2), strides, padding)
    with jax.enable_x64(True):
        y = layer.apply(L.ConvParams(jnp.asarray(W), jnp.asarray(b.reshape(1, 1, 1, 4))), jnp.asarray(x))
        out_shape, _ = layer.init(KEY, (-1, 6, 5, 3))
    expected = np_conv_nhwc(x, W, b, strides, pads)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    assert out_shape == (-1,) + expected.shape[1:]


def test_general_conv_nchw_oihw_and_conv1d_conv3d_agree_with_the_nhwc_loop():
    x, W, b = randn(2, 5, 4, 2), randn(2, 3, 2, 3), randn(3)
    expected = np_conv_nhwc(x, W, b, (1, 1), ((0, 0), (0, 0)))
    with jax.enable_x64(True):
        nchw = L.GeneralConv(("NCHW", "OIHW", "NCHW"), 3, (2, 3))
        y = nchw.apply(L.ConvParams(jnp.asarray(W.transpose(3, 2, 0, 1)), jnp.asarray(b.reshape(1, 3, 1, 1))),
                       jnp.asarray(x.transpose(0, 3, 1, 2)))
        np.testing.assert_allclose(y, expected.transpose(0, 3, 1, 2), rtol=1e-10, atol=1e-12)
        # a 1-D conv is the 2-D one with a height-1 image; a 3-D one with depth 1 is the 2-D one too
        y1 = L.Conv1D(3, (3,)).apply(L.ConvParams(jnp.asarray(W[1]), jnp.asarray(b.reshape(1, 1, 3))),
                                     jnp.asarray(x[:, 0]))
        e1 = np_conv_nhwc(x[:, :1], W[1:2], b, (1, 1), ((0, 0), (0, 0)))[:, 0]
        np.testing.assert_allclose(y1, e1, rtol=1e-10, atol=1e-12)
        y3 = L.Conv3D(3, (1, 2, 3)).apply(L.ConvParams(jnp.asarray(W[None]), jnp.asarray(b.reshape(1, 1, 1, 1, 3))),
                                          jnp.asarray(x[:, None]))
        np.testing.assert_allclose(y3[:, 0], expected, rtol=1e-10, atol=1e-12)


def np_conv_transpose_1d(x, W, b, s):
    """VALID transposed conv as a scatter: y[n, s i + m, o] += sum_c x[n, i, c] W[k - 1 - m, c, o].

    Output length (l - 1) s + max(k, s): with s > k the last s - k entries receive no input (lax's convention).
    """
    n, length, _ = x.shape
    k, _, co = W.shape
    y = np.zeros((n, (length - 1) * s + max(k, s), co)) + b
    for b_, i, m in itertools.product(range(n), range(length), range(k)):
        y[b_, s * i + m] += x[b_, i] @ W[k - 1 - m]
    return y


@pytest.mark.parametrize("s", [1, 2, 3, 5])
def test_conv1d_transpose_matches_numpy_scatter(s):
    x, W, b = randn(2, 4, 3), randn(3, 3, 2), randn(2)
    layer = L.Conv1DTranspose(2, (3,), (s,))
    with jax.enable_x64(True):
        y = layer.apply(L.ConvParams(jnp.asarray(W), jnp.asarray(b.reshape(1, 1, 2))), jnp.asarray(x))
    expected = np_conv_transpose_1d(x, W, b, s)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    assert layer.init(KEY, (-1, 4, 3))[0] == (-1, (4 - 1) * s + max(3, s), 2)


def test_conv_transpose_is_the_gradient_of_conv_with_the_kernel_flipped():
    """ConvTranspose(W) x == vjp of Conv(W') at x, with W' = W flipped in space and its I/O axes swapped."""
    x, W = randn(1, 3, 4, 2), randn(3, 2, 2, 5)  # HWIO: 2 -> 5 channels
    W_flipped = W[::-1, ::-1].transpose(0, 1, 3, 2)  # a 5 -> 2 channel conv
    strides = (2, 3)
    with jax.enable_x64(True):
        y = L.ConvTranspose(5, (3, 2), strides).apply(L.ConvParams(jnp.asarray(W), jnp.zeros((1, 1, 1, 5))),
                                                      jnp.asarray(x))
        conv = L.Conv(2, (3, 2), strides)
        params = L.ConvParams(jnp.asarray(W_flipped), jnp.zeros((1, 1, 1, 2)))
        z = jnp.zeros((1,) + y.shape[1:])
        out, vjp = jax.vjp(lambda z: conv.apply(params, z), z)
        assert out.shape == x.shape
        (grad,) = vjp(jnp.asarray(x))
    np.testing.assert_allclose(y, grad, rtol=1e-10, atol=1e-12)
    assert y.shape == (1, (3 - 1) * 2 + 3, (4 - 1) * 3 + max(2, 3), 5)  # (n - 1) s + max(k, s)


# --------------------------------------------------------------------------------------------------- pooling
def np_pool_nhwc(x, window, strides, pads, kind):
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=fill)
    real = np.pad(np.ones(x.shape[1:3]), (pads[0], pads[1]))  # 1 where the entry is not padding
    oh, ow = (xp.shape[1] - window[0]) // strides[0] + 1, (xp.shape[2] - window[1]) // strides[1] + 1
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for n, i, j, c in itertools.product(range(x.shape[0]), range(oh), range(ow), range(x.shape[3])):
        rows = slice(i * strides[0], i * strides[0] + window[0])
        cols = slice(j * strides[1], j * strides[1] + window[1])
        patch = xp[n, rows, cols, c]
        if kind == "max":
            y[n, i, j, c] = patch.max()
        elif kind == "sum":
            y[n, i, j, c] = patch.sum()
        else:
            y[n, i, j, c] = patch.sum() / real[rows, cols].sum()
    return y


POOLS = {"max": L.MaxPool, "sum": L.SumPool, "avg": L.AvgPool}


@pytest.mark.parametrize("kind", ["max", "sum", "avg"])
@pytest.mark.parametrize("window,strides,padding", [((2, 2), (2, 2), "VALID"), ((3, 2), (1, 2), "VALID"),
                                                    ((3, 3), (2, 2), "SAME"), ((2, 3), (1, 1), ((1, 1), (0, 2)))])
def test_pooling_matches_numpy_loop(kind, window, strides, padding):
    x = randn(2, 5, 6, 2)
    if padding == "VALID":
        pads = ((0, 0), (0, 0))
    elif padding == "SAME":
        pads = (same_pads(5, window[0], strides[0]), same_pads(6, window[1], strides[1]))
    else:
        pads = padding
    layer = POOLS[kind](window, strides, padding)
    with jax.enable_x64(True):
        y = layer.apply((), jnp.asarray(x))
    expected = np_pool_nhwc(x, window, strides, pads, kind)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    assert layer.init(None, (-1, 5, 6, 2))[0] == (-1,) + expected.shape[1:]


@pytest.mark.parametrize("kind", ["max", "sum", "avg"])
@pytest.mark.parametrize("spec", ["NCHW", "HWNC"])
def test_pooling_spec_strings_move_the_batch_and_channel_axes(kind, spec):
    x = randn(2, 5, 4, 3)  # NHWC
    expected = np_pool_nhwc(x, (2, 2), (1, 2), (same_pads(5, 2, 1), same_pads(4, 2, 2)), kind)
    perm = ["NHWC".index(c) for c in spec]
    layer = POOLS[kind]((2, 2), (1, 2), "SAME", spec=spec)
    with jax.enable_x64(True):
        y = layer.apply((), jnp.asarray(x.transpose(perm)))
    np.testing.assert_allclose(y, expected.transpose(perm), rtol=1e-12)
    assert layer.init(None, x.transpose(perm).shape)[0] == expected.transpose(perm).shape


def test_one_dimensional_pooling():
    x = randn(2, 7, 3)
    y = L.MaxPool((3,), (2,)).apply((), jnp.asarray(x))
    expected = np.stack([x[:, 2 * i:2 * i + 3].max(axis=1) for i in range(3)], axis=1)
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("layer,reduce", [(L.GlobalAvgPool, np.mean), (L.GlobalMaxPool, np.max)])
def test_global_pooling(layer, reduce):
    x = randn(2, 3, 4, 5)
    expected = np.array([[reduce(x[n, :, :, c]) for c in range(5)] for n in range(2)])
    # atol: a float32 mean of 12 normals near 0 has an absolute, not a relative, rounding error (~1e-7); with rtol
    # alone the test failed for some draws of the shared RNG (it depends on which tests ran before in the worker)
    np.testing.assert_allclose(layer().apply((), jnp.asarray(x)), expected, rtol=1e-6, atol=1e-6)
    # NCHW: channels on axis 1, the output is still (n, c)
    np.testing.assert_allclose(layer("NCHW").apply((), jnp.asarray(x.transpose(0, 3, 1, 2))), expected, rtol=1e-6,
                               atol=1e-6)
    # CN...: channels first, batch second
    np.testing.assert_allclose(layer("CNHW").apply((), jnp.asarray(x.transpose(3, 0, 1, 2))), expected, rtol=1e-6,
                               atol=1e-6)


# ----------------------------------------------------------------------------------------------- normalization
def test_batchnorm_train_and_eval_match_numpy():
    x, beta, gamma = randn(8, 3, 2, 4), randn(4), randn(4)
    mu = np.array([x[..., c].mean() for c in range(4)])
    var = np.array([((x[..., c] - mu[c]) ** 2).mean() for c in range(4)])
    expected_train = gamma * (x - mu) / np.sqrt(var + 1e-5) + beta
    run_mean, run_var = randn(4), np.abs(randn(4)) + 0.5
    expected_eval = gamma * (x - run_mean) / np.sqrt(run_var + 1e-5) + beta
    layer = L.BatchNorm()  # axis (0, 1, 2): per channel of NHWC
    with jax.enable_x64(True):
        params = L.BatchNormParams(jnp.asarray(beta), jnp.asarray(gamma))
        np.testing.assert_allclose(layer.apply(params, jnp.asarray(x)), expected_train, rtol=1e-10)
        state = L.BatchNormState(jnp.asarray(run_mean), jnp.asarray(run_var), jnp.asarray(3))
        y, new_state = layer.apply(params, jnp.asarray(x), state=state, train=False)
    np.testing.assert_allclose(y, expected_eval, rtol=1e-10)
    assert new_state is state


@pytest.mark.parametrize("axis", [-1, (1, 2)])
def test_layernorm_matches_numpy(axis):
    x = randn(3, 4, 5)
    axes = (2,) if axis == -1 else axis
    shape = tuple(x.shape[a] for a in axes)
    beta, gamma = randn(*shape), randn(*shape)
    expected = np.empty_like(x)
    for n in range(3):
        for t in range(4 if axis == -1 else 1):
            row = x[n, t] if axis == -1 else x[n]
            z = (row - row.mean()) / np.sqrt(row.var() + 1e-5)
            if axis == -1:
                expected[n, t] = gamma * z + beta
            else:
                expected[n] = gamma * z + beta
    with jax.enable_x64(True):
        y = L.LayerNorm(axis).apply(L.LayerNormParams(jnp.asarray(beta), jnp.asarray(gamma)), jnp.asarray(x))
    np.testing.assert_allclose(y, expected, rtol=1e-10)
