"""Augmentation (fnn/layers/augment.py): crops against NumPy padding + slicing, offsets and flips by their
statistics (chi-square, binomial), the layers' train/eval behaviour, and the layers inside serial under jit/grad."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from fnn import layers as L


def _images(n, h, w, c=1, seed=0):
    """Positive values, all distinct: each crop / flip of an image is identifiable."""
    return np.random.default_rng(seed).uniform(1.0, 2.0, (n, h, w, c)).astype(np.float32)


X = _images(1800, 4, 5)  # one shape for most tests: each compiled program is reused


def _numpy_crops(x, p, mode="constant"):
    """``{(r, c): crops}``: every (2p+1)^2 crop of the NumPy-padded images, by offset."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode)
    return {(r, c): padded[:, r:r + h, c:c + w] for r in range(2 * p + 1) for c in range(2 * p + 1)}


def _offsets(y, crops):
    """The offset whose NumPy crop each output image equals exactly (fails if an image matches none)."""
    keys = list(crops)
    match = np.stack([np.all(np.asarray(y) == crops[k], axis=(1, 2, 3)) for k in keys], 1)  # (n, offsets)
    assert match.any(1).all(), "an output image is none of the (2p+1)^2 padded crops"
    return [keys[i] for i in match.argmax(1)]


def test_crops_are_numpy_crops_at_uniform_offsets():
    p, (n, *_) = 1, X.shape
    x = X
    key = jax.random.key(0)
    y = L.random_crop(key, jnp.asarray(x), p)
    found = _offsets(y, _numpy_crops(x, p))
    # the documented draw: offsets = randint(key, (n, 2), 0, 2p + 1)
    drawn = np.asarray(jax.jit(jax.random.randint, static_argnums=(1, 2, 3))(key, (n, 2), 0, 2 * p + 1))
    assert [tuple(o) for o in drawn.tolist()] == found
    counts = np.array([found.count((r, c)) for r in range(3) for c in range(3)])
    chi2 = np.sum((counts - n / 9) ** 2 / (n / 9))
    assert chi2 < stats.chi2.ppf(0.999, df=8), counts


def test_crop_border_mode_matches_numpy_pad():
    x = X
    y = L.random_crop(jax.random.key(1), jnp.asarray(x), 1, mode="reflect")
    found = _offsets(y, _numpy_crops(x, 1, "reflect"))
    assert len(set(found)) == 9  # every shift occurred


def test_flips_are_identity_or_reversed_with_frequency_p():
    p, (n, *_) = 0.3, X.shape
    x = X
    y = np.asarray(L.random_flip(jax.random.key(2), jnp.asarray(x), p))
    same = np.all(y == x, axis=(1, 2, 3))
    flipped = np.all(y == x[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same ^ flipped)
    k = flipped.sum()
    assert stats.binom(n, p).cdf(k) > 5e-4 and stats.binom(n, p).sf(k - 1) > 5e-4, k
    x1 = jnp.asarray(x)
    assert np.array_equal(L.random_flip(jax.random.key(3), x1, 0.0), x1)
    assert np.array_equal(L.random_flip(jax.random.key(3), x1, 1.0), x1[:, :, ::-1])


def test_same_key_same_output_and_augment_images_composes_with_split_keys():
    x = jnp.asarray(X)
    key = jax.random.key(4)
    a = L.augment_images(key, x, crop_padding=1, flip=0.5)
    assert np.array_equal(a, L.augment_images(key, x, crop_padding=1, flip=0.5))
    assert not np.array_equal(a, L.augment_images(jax.random.key(5), x, crop_padding=1, flip=0.5))
    k1, k2 = jax.random.split(key)
    assert np.array_equal(a, L.random_flip(k2, L.random_crop(k1, x, 1), 0.5))
    assert L.random_crop(key, x, 0) is x


def test_layers_identity_at_eval_and_the_functions_in_train():
    x = jnp.asarray(X)
    key = jax.random.key(6)
    for layer, fn in [(L.RandomCrop(1, mode="reflect"), lambda k, x: L.random_crop(k, x, 1, mode="reflect")),
                      (L.RandomFlip(0.7), lambda k, x: L.random_flip(k, x, 0.7))]:
        shape, params = layer.init(key, (-1, 4, 5, 1))
        assert shape == (-1, 4, 5, 1) and params == ()
        assert layer.apply(params, x, train=False) is x
        assert np.array_equal(layer.apply(params, x, key=key), fn(key, x))
        assert np.array_equal(layer.apply(params, x, rng=key, train=True), fn(key, x))


def test_layers_in_serial_under_jit_and_grad():
    model = L.serial(L.RandomCrop(1), L.RandomFlip(), L.Flatten, L.Dense(3))
    _, params = model.init(jax.random.key(0), (-1, 4, 4, 1))
    x = jnp.asarray(_images(6, 4, 4))

    @jax.jit
    def run(params, x, key):
        loss = lambda params, x: jnp.sum(jnp.sin(model.apply(params, x, key=key)))  # noqa: E731
        g = jax.grad(loss)(params, x)
        # reference: the same draws by hand (serial splits the key into one per layer), then the dense layer
        k = jax.random.split(key, 4)
        z = L.random_flip(k[1], L.random_crop(k[0], x, 1), 0.5).reshape(6, -1)
        W, b = params[3]
        g_ref = jax.grad(lambda W, b: jnp.sum(jnp.sin(z @ W + b[None])), argnums=(0, 1))(W, b)
        eval_gap = model.apply(params, x, train=False) - (x.reshape(6, -1) @ W + b[None])  # eval: raw images
        return g[3], g_ref, eval_gap

    g, g_ref, eval_gap = run(params, x, jax.random.key(7))
    np.testing.assert_allclose(g.W, g_ref[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g.b, g_ref[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(eval_gap, 0, atol=1e-6)


def test_bad_inputs_say_what_was_expected():
    x = jnp.ones((2, 4, 4, 1))
    with pytest.raises(ValueError, match=r"rank 4 \(n, height, width, channels\), got shape \(4, 4, 1\)"):
        L.random_crop(jax.random.key(0), x[0], 1)
    with pytest.raises(ValueError, match=r"rank 4.*got shape \(2, 16\)"):
        L.random_flip(jax.random.key(0), x.reshape(2, 16))
    with pytest.raises(ValueError, match=r"padding as an int >= 0.*got -1"):
        L.random_crop(jax.random.key(0), x, -1)
    with pytest.raises(ValueError, match=r"RandomCrop: expected padding as an int >= 0.*got 1.5"):
        L.RandomCrop(1.5)
    with pytest.raises(ValueError, match=r"mode in \('constant'.*got 'mirror'"):
        L.RandomCrop(1, mode="mirror")
    with pytest.raises(ValueError, match=r"RandomFlip: expected p .* in \[0, 1\], got 1.5"):
        L.RandomFlip(1.5)
    with pytest.raises(ValueError, match=r"RandomFlip: train mode needs a PRNG key"):
        L.RandomFlip().apply((), x)
    with pytest.raises(ValueError, match=r"RandomCrop: expected an input shape of rank 4.*got \(-1, 16\)"):
        L.RandomCrop(1).init(jax.random.key(0), (-1, 16))
