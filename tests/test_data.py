"""Tests for fnn.data: loaders against scikit-learn and hand-written IDX files, toy sets against their closed forms,
splits and preprocessing against NumPy, and every error path by its message."""
import gzip
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import data


# ------------------------------------------------------------------------------------------------------- digits
def test_load_digits_matches_sklearn_pixels_over_16():
    from sklearn.datasets import load_digits as sk_load

    bunch = sk_load()
    X, y = data.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(X, bunch.data / 16.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(y, bunch.target)
    assert X.min() == 0.0 and X.max() == 1.0
    images, y2 = data.load_digits(flatten=False)
    assert images.shape == (1797, 8, 8, 1)
    np.testing.assert_allclose(images[..., 0], bunch.images / 16.0, atol=1e-7)
    np.testing.assert_array_equal(y2, y)


# ------------------------------------------------------------------------------------------------- IDX parsing
def _idx_bytes(array, code):
    """An IDX file written independently of fnn: 00 00 code ndim, big-endian uint32 dims, big-endian items."""
    be = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    head = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return head + np.asarray(array).astype(be).tobytes()


def _write(path, payload, gz):
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("code,dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                                        (0x0D, np.float32), (0x0E, np.float64)])
def test_read_idx_round_trip_all_type_codes(tmp_path, gz, code, dtype):
    rng = np.random.default_rng(code)
    a = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / "a.idx"
    _write(path, _idx_bytes(a, code), gz)
    b = data.read_idx(path)
    assert b.shape == (3, 4, 5) and b.dtype == np.dtype(dtype) and b.dtype.isnative
    np.testing.assert_array_equal(b, a)


def _fake_mnist(directory, n_train=7, n_test=5, gz_train=True, gz_test=False, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n, gz in (("train", n_train, gz_train), ("t10k", n_test, gz_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        _write(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"), _idx_bytes(images, 0x08), gz)
        _write(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"), _idx_bytes(labels, 0x08), gz)
        out[prefix] = (images, labels)
    return out


@pytest.mark.parametrize("loader", [data.load_fashion_mnist, data.load_mnist])
def test_idx_loaders_scale_and_shape_gzip_and_plain(tmp_path, loader):
    truth = _fake_mnist(tmp_path)
    X, y = loader(tmp_path)                                    # gzip files
    images, labels = truth["train"]
    assert X.shape == (7, 784) and X.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(X, images.reshape(7, -1) / 255.0, atol=1e-7)
    np.testing.assert_array_equal(y, labels)
    Xt, yt = loader(str(tmp_path), split="test", flatten=False)  # plain files
    images, labels = truth["t10k"]
    assert Xt.shape == (5, 28, 28, 1)
    np.testing.assert_allclose(Xt[..., 0], images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(yt, labels)


def test_environment_variable_then_default(tmp_path, monkeypatch):
    truth = _fake_mnist(tmp_path, seed=3)
    monkeypatch.setenv("FNN_MNIST_DIR", str(tmp_path))
    X, y = data.load_mnist(split="test")
    np.testing.assert_array_equal(y, truth["t10k"][1])
    monkeypatch.setenv("FNN_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"nowhere.*\$FNN_MNIST_DIR.*set FNN_MNIST_DIR"):
        data.load_mnist()


def test_missing_fashion_files_say_where_and_what_installs_them(tmp_path, monkeypatch):
    monkeypatch.delenv("FNN_FASHION_MNIST_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[\.gz\] and t10k-labels.*"
                                                r"FNN_FASHION_MNIST_DIR.*apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist(tmp_path, split="test")
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'valid'"):
        data.load_fashion_mnist(tmp_path, split="valid")


def test_truncated_and_foreign_idx_files(tmp_path):
    payload = _idx_bytes(np.arange(100, dtype=np.uint8).reshape(10, 10), 0x08)
    (tmp_path / "short").write_bytes(payload[:-7])
    with pytest.raises(ValueError, match=r"short' is truncated: header says shape \(10, 10\)"):
        data.read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(payload + b"xx")
    with pytest.raises(ValueError, match="longer than its header says"):
        data.read_idx(tmp_path / "long")
    gz = gzip.compress(payload)
    (tmp_path / "short.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match=r"short\.gz' is a gzip file that cannot be decompressed"):
        data.read_idx(tmp_path / "short.gz")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(ValueError, match=r"image\.png' is not an IDX file.*got 89 50 4e 47"):
        data.read_idx(tmp_path / "image.png")
    (tmp_path / "head").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="truncated: its header announces 3 dimensions"):
        data.read_idx(tmp_path / "head")


def test_images_and_labels_that_do_not_belong_together(tmp_path):
    _fake_mnist(tmp_path, n_train=4)
    _write(tmp_path / "train-labels-idx1-ubyte.gz", _idx_bytes(np.zeros(3, np.uint8), 0x08), True)
    with pytest.raises(ValueError, match=r"got \(4, 28, 28\) from .* and \(3,\) from .*do not belong together"):
        data.load_fashion_mnist(tmp_path)


def test_real_fashion_mnist_test_split():
    directory = os.environ.get("FNN_FASHION_MNIST_DIR") or data.FASHION_MNIST_DIR
    if not os.path.exists(os.path.join(directory, "t10k-images-idx3-ubyte.gz")) and not os.path.exists(
            os.path.join(directory, "t10k-images-idx3-ubyte")):
        pytest.skip(f"Fashion-MNIST not found in {directory}; `apt-get install dataset-fashion-mnist` provides it")
    X, y = data.load_fashion_mnist(split="test")
    assert X.shape == (10000, 784) and X.dtype == np.float32
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, 1000))  # the published class balance
    assert X.min() == 0.0 and X.max() == 1.0
    assert 0.2 < X.mean() < 0.4  # published mean pixel of Fashion-MNIST is about 0.286


# ---------------------------------------------------------------------------------------------------- toy sets
def test_xor_is_the_truth_table():
    X, y = data.xor()
    np.testing.assert_array_equal(y, np.logical_xor(X[:, 0] > 0.5, X[:, 1] > 0.5).astype(np.int32))
    assert X.dtype == np.float32 and y.dtype == np.int32


def test_two_spirals_lie_on_their_curves():
    X, y = data.two_spirals(jax.random.key(0), 301, turns=1.5, noise=0.0)
    assert X.shape == (301, 2) and np.bincount(y).tolist() == [150, 151]
    x64 = X.astype(np.float64)
    x64[y == 1] *= -1.0                                 # class 1 is class 0 rotated by pi
    r = np.hypot(x64[:, 0], x64[:, 1])
    angle_from_radius = 2 * np.pi * 1.5 * r
    diff = np.angle(np.exp(1j * (np.arctan2(x64[:, 1], x64[:, 0]) - angle_from_radius)))
    assert np.max(np.abs(diff)[r > 1e-3]) < 1e-4
    X2, _ = data.two_spirals(jax.random.key(0), 301)
    np.testing.assert_array_equal(X, X2)
    assert not np.allclose(X, data.two_spirals(jax.random.key(1), 301)[0])


def test_moons_on_circles_and_noise_has_the_right_scale():
    X, y = data.moons(jax.random.key(0), 8000, noise=0.0)     # one size throughout: one compilation
    x64 = X.astype(np.float64)
    np.testing.assert_allclose(np.hypot(*x64[y == 0].T), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.hypot(x64[y == 1, 0] - 1.0, x64[y == 1, 1] - 0.5), 1.0, atol=1e-6)
    assert np.all(x64[y == 0, 1] >= 0) and np.all(x64[y == 1, 1] <= 0.5 + 1e-7)
    sigma = 0.05
    X, y = data.moons(jax.random.key(1), 8000, noise=sigma)
    radial = np.hypot(*X[y == 0].astype(np.float64).T) - 1.0   # ~ N(0, sigma^2) to first order
    assert abs(radial.std() / sigma - 1.0) < 0.06
    assert abs(radial.mean()) < 0.01


def test_logistic_map_matches_the_r4_closed_form():
    # For r = 4: x(t) = sin^2(2^t * arcsin(sqrt(x0))) (Schroeder 1870 / Ulam-von Neumann 1947).
    x0, T = 0.2, 16
    x = data.logistic_map(T, x0=x0)
    t = np.arange(T)
    closed = np.sin(2.0 ** t * np.arcsin(np.sqrt(x0))) ** 2
    np.testing.assert_allclose(x, closed, rtol=1e-5, atol=1e-6)
    X, Y = data.logistic_map_pairs(500, x0=0.3)
    assert X.shape == Y.shape == (500, 1) and X.dtype == np.float32
    np.testing.assert_allclose(Y, 4.0 * X.astype(np.float64) * (1 - X.astype(np.float64)), atol=2e-6)
    assert np.all((0 <= X) & (X <= 1)) and X.std() > 0.2          # chaotic: fills [0, 1]
    with pytest.raises(ValueError, match=r"x0 in \[0, 1\] and r in \[0, 4\].*got x0=1.5"):
        data.logistic_map(10, x0=1.5)


# ------------------------------------------------------------------------------------------------ preprocessing
def test_numpy_rng_is_a_function_of_the_key():
    a = data.numpy_rng(jax.random.key(4)).random(5)
    np.testing.assert_array_equal(a, data.numpy_rng(jax.random.key(4)).random(5))
    assert not np.array_equal(a, data.numpy_rng(jax.random.key(5)).random(5))
    raw = data.numpy_rng(jax.random.PRNGKey(4)).random(5)    # raw uint32 keys hold the same bits as typed ones
    np.testing.assert_array_equal(raw, a)


def test_split_is_a_partition_with_rounded_sizes():
    n = 103
    X = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(n, dtype=np.int32)
    (Xa, ya), (Xb, yb), (Xc, yc) = data.train_val_test_split(X, y, (0.7, 0.2, 0.1), key=jax.random.key(0))
    assert (len(ya), len(yb), len(yc)) == (72, 21, 10)   # 72.1, 20.6, 10.3 -> largest remainder
    np.testing.assert_array_equal(np.sort(np.concatenate([ya, yb, yc])), np.arange(n))
    for Xp, yp in ((Xa, ya), (Xb, yb), (Xc, yc)):
        np.testing.assert_array_equal(Xp[:, 0], yp)      # rows stay aligned
    assert not np.array_equal(ya, np.sort(ya))           # shuffled
    again = data.train_val_test_split(X, y, (0.7, 0.2, 0.1), key=jax.random.key(0))
    np.testing.assert_array_equal(again[0][1], ya)
    with pytest.raises(ValueError, match=r"three numbers >= 0 summing to 1.*got \(0.5, 0.2\)"):
        data.train_val_test_split(X, y, (0.5, 0.2), key=jax.random.key(0))


def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(3, dtype=np.int32), [50, 30, 20])
    X = np.arange(100, dtype=np.float32)[:, None]
    parts = data.train_val_test_split(X, y, (0.6, 0.2, 0.2), key=jax.random.key(1), stratify=True)
    for (Xp, yp), frac in zip(parts, (0.6, 0.2, 0.2)):
        np.testing.assert_array_equal(y[Xp[:, 0].astype(int)], yp)
        assert np.all(np.abs(np.bincount(yp, minlength=3) - frac * np.array([50, 30, 20])) <= 1)
    all_rows = np.concatenate([p[0][:, 0] for p in parts]).astype(int)
    np.testing.assert_array_equal(np.sort(all_rows), np.arange(100))


def test_standardizer_fits_on_train_and_guards_constant_features():
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(50, 4)).astype(np.float32)
    train[:, 2] = 7.0                                              # constant feature
    val = rng.normal(3.0, 2.0, size=(20, 4)).astype(np.float32)
    stats = data.fit_standardizer(train)
    mean = train.astype(np.float64).mean(0)
    std = np.sqrt(((train - mean) ** 2).mean(0))
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(stats.std[[0, 1, 3]], std[[0, 1, 3]], rtol=1e-5)
    Z = data.standardize(train, stats)
    assert Z.dtype == np.float32 and np.all(np.isfinite(Z))
    np.testing.assert_allclose(Z[:, [0, 1, 3]].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(Z[:, [0, 1, 3]].std(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(Z[:, 2], 0.0)
    Zv = data.standardize(val, stats)                              # validation uses the training statistics
    np.testing.assert_allclose(Zv[:, 0], (val[:, 0] - mean[0]) / std[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(data.unstandardize(Zv, stats), val, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"expected features of shape \(n, 4\).*got \(20, 3\)"):
        data.standardize(val[:, :3], stats)
    with pytest.raises(ValueError, match=r"n >= 1, got shape \(0, 4\)"):
        data.fit_standardizer(np.zeros((0, 4)))


def test_one_hot_against_eye_and_bad_labels():
    y = np.array([[2, 0], [1, 2]], dtype=np.int32)
    np.testing.assert_array_equal(data.one_hot(y, 3), np.eye(3, dtype=np.float32)[y])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got label 5 at index \(1, 0\)"):
        data.one_hot(np.array([[0, 1], [5, 2]]), 3)
    with pytest.raises(ValueError, match="got label -1 at index 2"):
        data.one_hot(np.array([0, 1, -1]), 3)
    with pytest.raises(ValueError, match="expected integer labels, got dtype float32"):
        data.one_hot(np.array([0.0, 1.0], np.float32), 3)


# ------------------------------------------------------------------------------------------------- validate_xy
def test_validate_xy_accepts_good_data_numpy_and_jax():
    X, y = np.ones((5, 3), np.float32), np.array([0, 1, 2, 1, 0], np.int32)
    assert data.validate_xy(X, y, num_classes=3) is None
    assert data.validate_xy(jnp.asarray(X), jnp.asarray(y), num_classes=3) is None
    assert data.validate_xy(X, np.eye(3, dtype=np.float32)[y], num_classes=3) is None   # one-hot targets
    assert data.validate_xy(X, np.zeros((5, 2), np.float32)) is None                     # regression


@pytest.mark.parametrize("as_jax", [False, True])
def test_validate_xy_errors_name_the_problem(as_jax):
    wrap = jnp.asarray if as_jax else np.asarray
    X = np.ones((6, 2), np.float32)
    y = np.array([0, 1, 2, 0, 1, 2], np.int32)
    with pytest.raises(ValueError, match=r"fit: X has 6 examples but y has 5 .*same length"):
        data.validate_xy(wrap(X), wrap(y[:5]))
    with pytest.raises(ValueError, match=r"trainer: empty data set \(X has shape \(0, 2\)\)"):
        data.validate_xy(wrap(X[:0]), wrap(y[:0]), name="trainer")
    Xn = X.copy()
    Xn[3, 1] = np.nan
    Xn[4, 0] = np.inf
    with pytest.raises(ValueError, match=r"X contains 2 NaN/inf values in 2 examples \(first at index 3\)"):
        data.validate_xy(wrap(Xn), wrap(y))
    with pytest.raises(ValueError, match=r"X contains 2 NaN/inf values"):          # bfloat16 is checked too
        data.validate_xy(wrap(Xn.astype(jnp.bfloat16)), wrap(y))
    with pytest.raises(ValueError, match=r"y contains 1 NaN/inf values in 1 examples \(first at index 0\)"):
        data.validate_xy(wrap(X), wrap(np.array([np.nan, 1, 2, 3, 4, 5], np.float32)))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\).*got label 2 at index 2.*span 0..2"):
        data.validate_xy(wrap(X), wrap(y), num_classes=2)
    with pytest.raises(ValueError, match="got label -3 at index 1"):
        data.validate_xy(wrap(X), wrap(np.array([0, -3, 1, 1, 0, 0], np.int32)), num_classes=3)
    with pytest.raises(ValueError, match="expected integer class labels .* got dtype float32; convert"):
        data.validate_xy(wrap(X), wrap(y.astype(np.float32)), num_classes=3)
    with pytest.raises(ValueError, match=r"expected labels of shape \(6,\) or targets of shape \(6, 3\)"):
        data.validate_xy(wrap(X), wrap(np.zeros((6, 2), np.float32)), num_classes=3)
