"""Data sets and preprocessing: NumPy arrays in, NumPy arrays out.

Contract (every loader and generator here): features ``X`` are ``float32`` with the example axis first, labels ``y``
are ``int32`` class indices (regression targets are ``float32``). Nothing here touches a device; the trainer moves
the arrays once. Random generators take an explicit ``jax.random`` key (typed ``jax.random.key`` or raw
``jax.random.PRNGKey``), draw with ``jax.random`` and convert with ``np.asarray``, so one key gives one data set.

Contents
  real data      ``load_digits``, ``load_mnist``, ``load_fashion_mnist``, ``read_idx`` (the IDX parser)
  toy problems   ``xor``, ``two_spirals``, ``moons``, ``logistic_map``, ``logistic_map_pairs``
  preprocessing  ``numpy_rng``, ``train_val_test_split``, ``fit_standardizer`` / ``standardize`` / ``unstandardize`` (``Stats``),
                 ``one_hot``, ``validate_xy`` (the checks the trainer runs before compiling)
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist/"
MNIST_DIR = "/usr/share/datasets/mnist/"

# IDX type codes (LeCun et al., "The MNIST database", file-format section): code -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


# --------------------------------------------------------------------------------------------------- real data
def load_digits(*, flatten=True):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), scaled to [0, 1].

    ``X = pixels / 16`` (the raw pixels are counts 0..16 of a 4x4 block of the 32x32 original).

    Args:
      flatten: ``True`` gives ``X`` of shape ``(1797, 64)``; ``False`` gives NHWC images ``(1797, 8, 8, 1)``.

    Returns:
      ``(X, y)``: ``X`` float32 in [0, 1] as above, ``y`` int32 of shape ``(1797,)`` with values 0..9.

    Example:
      >>> X, y = load_digits()
      >>> X.shape, y.shape, float(X.max())
      ((1797, 64), (1797,), 1.0)

    Reference: Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI repository, 1998.
    """
    from sklearn.datasets import load_digits as _sk_load_digits  # imported lazily: sklearn is slow to import

    bunch = _sk_load_digits()
    X = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    return (X, y) if flatten else (X.reshape(-1, 8, 8, 1), y)


def read_idx(path):
    """Read one IDX file (gzip-compressed or plain) into a NumPy array of its native shape.

    Layout: bytes 0-1 are zero, byte 2 the type code (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64),
    byte 3 the number of dimensions ``ndim``, then ``ndim`` big-endian uint32 sizes, then ``prod(sizes)`` big-endian
    items. Compression is recognised by the gzip magic ``1f 8b``, not by the file name.

    Args:
      path: file to read.

    Returns:
      array of shape ``sizes`` in native byte order (``uint8`` for image and label files).

    Raises:
      ValueError: the file is not IDX (bad magic/type code), is truncated, or has trailing bytes.

    Example:
      >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape   # doctest: +SKIP
      (10000,)

    Reference: LeCun, Cortes & Burges, "The MNIST database of handwritten digits", 1998 ("file formats" section).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(f"read_idx: {path!r} is a gzip file that cannot be decompressed ({e}); it is truncated "
                             f"or corrupt: download it again") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"read_idx: {path!r} is not an IDX file: expected the magic bytes 00 00 <type code in "
                         f"{sorted(_IDX_DTYPES)}> <ndim>, got {raw[:4].hex(' ') or 'an empty file'}; pass an MNIST-"
                         f"style *-ubyte file")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {path!r} is truncated: its header announces {ndim} dimensions ({header} bytes) "
                         f"but the file has {len(raw)} bytes; download it again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(f"read_idx: {path!r} is {what}: header says shape {shape} of {dtype.name} "
                         f"({expected} bytes in all), the file has {len(raw)} bytes; download it again")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(directory, stem):
    for name in (f"{stem}.gz", stem):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _load_idx_pair(loader, path, env_var, default_dir, split, flatten, install_hint):
    if split not in ("train", "test"):
        raise ValueError(f"{loader}: split must be 'train' or 'test', got {split!r}")
    directory = os.fspath(path) if path is not None else os.environ.get(env_var) or default_dir
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    found = [_find_idx(directory, s) for s in stems]
    if None in found:
        missing = [s for s, p in zip(stems, found) if p is None]
        source = "the path argument" if path is not None else (
            f"${env_var}" if os.environ.get(env_var) else f"the default directory (${env_var} is not set)")
        raise FileNotFoundError(
            f"{loader}: cannot find {' and '.join(m + '[.gz]' for m in missing)} in {directory!r} (from {source}); "
            f"put the four IDX files (train-/t10k-images-idx3-ubyte, train-/t10k-labels-idx1-ubyte, gzip or plain) "
            f"there, pass path=..., or set {env_var} to their directory{install_hint}")
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{loader}: expected images of shape (n, rows, cols) and labels of shape (n,), got "
                         f"{images.shape} from {found[0]!r} and {labels.shape} from {found[1]!r}; the files do not "
                         f"belong together")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{loader}: expected labels 0..9 in {found[1]!r}, got values {labels.min()}..{labels.max()}")
    X = (images.astype(np.float32) / np.float32(255.0))
    X = X.reshape(X.shape[0], -1) if flatten else X[..., None]
    return X, labels.astype(np.int32)


def load_fashion_mnist(path=None, *, split="train", flatten=True):
    """Fashion-MNIST from its four IDX files: 60,000 train / 10,000 test 28x28 grey images of 10 clothing classes.

    ``X = pixels / 255``. The directory is ``path`` if given, else ``$FNN_FASHION_MNIST_DIR``, else the Debian package
    ``dataset-fashion-mnist``'s ``/usr/share/datasets/fashion-mnist/``. File names are the original ones,
    ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, each with or without ``.gz``.

    Args:
      path: directory holding the files (optional).
      split: ``"train"`` (60,000 examples) or ``"test"`` (10,000, the ``t10k-`` files).
      flatten: ``True`` gives ``X`` of shape ``(n, 784)``; ``False`` gives NHWC ``(n, 28, 28, 1)``.

    Returns:
      ``(X, y)``: ``X`` float32 in [0, 1], ``y`` int32 of shape ``(n,)`` with values 0..9.

    Raises:
      FileNotFoundError: a file is missing (the message says where to put it and what installs it).
      ValueError: a file is truncated or not IDX (see ``read_idx``).

    Example:
      >>> X, y = load_fashion_mnist(split="test")   # doctest: +SKIP
      >>> X.shape                                   # doctest: +SKIP
      (10000, 784)

    Reference: Xiao, Rasul & Vollgraf, "Fashion-MNIST: a novel image dataset for benchmarking machine learning
    algorithms", arXiv:1708.07747, 2017.
    """
    return _load_idx_pair("load_fashion_mnist", path, "FNN_FASHION_MNIST_DIR", FASHION_MNIST_DIR, split, flatten,
                          "; on Debian/Ubuntu `apt-get install dataset-fashion-mnist` installs them in the default "
                          "directory")


def load_mnist(path=None, *, split="train", flatten=True):
    """MNIST handwritten digits from its four IDX files: 60,000 train / 10,000 test 28x28 grey images.

    Same contract as ``load_fashion_mnist``; the directory is ``path``, else ``$FNN_MNIST_DIR``, else
    ``/usr/share/datasets/mnist/``.

    Args:
      path: directory holding the files (optional).
      split: ``"train"`` or ``"test"``.
      flatten: ``True`` gives ``(n, 784)``; ``False`` gives ``(n, 28, 28, 1)``.

    Returns:
      ``(X, y)``: ``X`` float32 in [0, 1], ``y`` int32 of shape ``(n,)`` with values 0..9.

    Example:
      >>> X, y = load_mnist("/data/mnist", split="test", flatten=False)   # doctest: +SKIP
      >>> X.shape                                                         # doctest: +SKIP
      (10000, 28, 28, 1)

    Reference: LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition",
    Proc. IEEE 86(11), 1998.
    """
    return _load_idx_pair("load_mnist", path, "FNN_MNIST_DIR", MNIST_DIR, split, flatten,
                          " (the files are published at https://yann.lecun.com/exdb/mnist/ and its mirrors)")


# ------------------------------------------------------------------------------------------------ toy problems
def xor():
    """The four XOR points: the smallest problem a linear model cannot solve.

    Returns:
      ``(X, y)``: ``X`` float32 ``(4, 2)`` = [[0,0],[0,1],[1,0],[1,1]], ``y`` int32 ``(4,)`` = ``X[:,0] xor X[:,1]``.

    Example:
      >>> xor()[1].tolist()
      [0, 1, 1, 0]

    Reference: Minsky & Papert, "Perceptrons", 1969; Rumelhart, Hinton & Williams, Nature 323, 1986.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return X, np.array([0, 1, 1, 0], dtype=np.int32)


def _check_count(fn, n, minimum):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{fn}: n must be an integer >= {minimum}, got {n!r}")
    return int(n)


def two_spirals(key, n, *, turns=1.5, noise=0.0):
    """Two interleaved spirals, class 0 and class 1, each the other rotated by pi.

    For ``t ~ U(0, 1)``: ``r = t``, ``theta = 2*pi*turns*t``; class 0 is ``(r cos theta, r sin theta)``, class 1 is
    its negation; then Gaussian noise of standard deviation ``noise`` is added to both coordinates.

    Args:
      key: ``jax.random`` key.
      n: total number of points (class 0 gets ``n // 2``, class 1 the rest), ``n >= 2``.
      turns: how many full turns each spiral makes.
      noise: standard deviation of the added Gaussian noise.

    Returns:
      ``(X, y)``: ``X`` float32 ``(n, 2)`` inside the disc of radius ``1 + O(noise)``, ``y`` int32 ``(n,)``,
      ordered class 0 then class 1.

    Example:
      >>> X, y = two_spirals(jax.random.key(0), 200, noise=0.02)
      >>> X.shape, int(y.sum())
      ((200, 2), 100)

    Reference: Lang & Witbrock, "Learning to tell two spirals apart", Proc. Connectionist Models Summer School, 1988
    (their set is 2x97 fixed points; this one samples positions along the same curves).
    """
    n = _check_count("two_spirals", n, 2)
    if turns <= 0 or noise < 0:
        raise ValueError(f"two_spirals: expected turns > 0 and noise >= 0, got turns={turns}, noise={noise}")
    k_t, k_noise = jax.random.split(key)
    t = np.asarray(jax.random.uniform(k_t, (n,)), dtype=np.float64)
    theta = 2.0 * np.pi * turns * t
    X = np.stack([t * np.cos(theta), t * np.sin(theta)], axis=1)
    n0 = n // 2
    X[n0:] *= -1.0
    X += noise * np.asarray(jax.random.normal(k_noise, (n, 2)), dtype=np.float64)
    y = np.concatenate([np.zeros(n0, np.int32), np.ones(n - n0, np.int32)])
    return X.astype(np.float32), y


def moons(key, n, noise=0.1):
    """Two interleaving half circles ("moons"), as in scikit-learn's ``make_moons`` but at random angles.

    For ``t ~ U(0, pi)``: class 0 is ``(cos t, sin t)``, class 1 is ``(1 - cos t, 0.5 - sin t)``; then Gaussian noise
    of standard deviation ``noise`` is added to both coordinates. (scikit-learn spaces ``t`` evenly instead.)

    Args:
      key: ``jax.random`` key.
      n: total number of points (class 0 gets ``n // 2``, class 1 the rest), ``n >= 2``.
      noise: standard deviation of the Gaussian noise.

    Returns:
      ``(X, y)``: ``X`` float32 ``(n, 2)``, ``y`` int32 ``(n,)``, ordered class 0 then class 1.

    Example:
      >>> X, y = moons(jax.random.key(0), 101)
      >>> X.shape, int(y.sum())
      ((101, 2), 51)

    Reference: Pedregosa et al., "Scikit-learn: machine learning in Python", JMLR 12, 2011 (``make_moons``).
    """
    n = _check_count("moons", n, 2)
    if noise < 0:
        raise ValueError(f"moons: noise must be >= 0, got {noise}")
    k_t, k_noise = jax.random.split(key)
    t = np.pi * np.asarray(jax.random.uniform(k_t, (n,)), dtype=np.float64)
    n0 = n // 2
    X = np.stack([np.cos(t), np.sin(t)], axis=1)
    X[n0:] = np.stack([1.0 - np.cos(t[n0:]), 0.5 - np.sin(t[n0:])], axis=1)
    X += noise * np.asarray(jax.random.normal(k_noise, (n, 2)), dtype=np.float64)
    y = np.concatenate([np.zeros(n0, np.int32), np.ones(n - n0, np.int32)])
    return X.astype(np.float32), y


def logistic_map(n, x0=0.2, r=4.0):
    """The logistic-map time series ``x[t+1] = r * x[t] * (1 - x[t])``, chaotic for ``r = 4``.

    The recursion runs in float64 (chaos doubles rounding errors each step) and the result is cast to float32.

    Args:
      n: number of values, ``x[0] = x0`` included (``n >= 1``).
      x0: initial value in [0, 1].
      r: growth rate in [0, 4] (keeps the series in [0, 1]).

    Returns:
      float32 array ``x`` of shape ``(n,)``.

    Example:
      >>> logistic_map(3, x0=0.5, r=4.0).tolist()
      [0.5, 1.0, 0.0]

    Reference: May, "Simple mathematical models with very complicated dynamics", Nature 261, 1976, eq. (3).
    """
    n = _check_count("logistic_map", n, 1)
    if not 0.0 <= x0 <= 1.0 or not 0.0 <= r <= 4.0:
        raise ValueError(f"logistic_map: expected x0 in [0, 1] and r in [0, 4] (so the series stays in [0, 1]), "
                         f"got x0={x0}, r={r}")
    x = np.empty(n, dtype=np.float64)
    x[0] = x0
    for t in range(n - 1):
        x[t + 1] = r * x[t] * (1.0 - x[t])
    return x.astype(np.float32)


def logistic_map_pairs(n, x0=0.2, r=4.0):
    """One-step-ahead regression pairs ``(x[t], x[t+1])`` from ``logistic_map(n + 1, x0, r)``.

    Args:
      n: number of pairs.
      x0, r: as in ``logistic_map``.

    Returns:
      ``(X, Y)``: float32 arrays of shape ``(n, 1)`` with ``Y[i] = r * X[i] * (1 - X[i])`` (up to float32 rounding).

    Example:
      >>> X, Y = logistic_map_pairs(2, x0=0.5)
      >>> X.ravel().tolist(), Y.ravel().tolist()
      ([0.5, 1.0], [1.0, 0.0])

    Reference: May, Nature 261, 1976; Lapedes & Farber, "Nonlinear signal processing using neural networks",
    Los Alamos LA-UR-87-2662, 1987 (the map as a neural-network benchmark).
    """
    n = _check_count("logistic_map_pairs", n, 1)
    x = logistic_map(n + 1, x0, r)
    return x[:-1, None], x[1:, None]


# ------------------------------------------------------------------------------------------------ preprocessing
def numpy_rng(key):
    """A NumPy ``Generator`` (PCG64) seeded with 128 bits drawn from the ``jax.random`` key ``key``.

    Used for host-side shuffles (splits, folds, search samples): one compiled ``jax.random.bits`` call of a fixed
    shape serves every data-set size, whereas ``jax.random.permutation(key, n)`` compiles once per ``n``.

    Args:
      key: ``jax.random`` key (typed or raw).

    Returns:
      ``np.random.Generator``; the same key always gives the same stream.

    Example:
      >>> numpy_rng(jax.random.key(0)).permutation(5).shape
      (5,)

    Reference: O'Neill, "PCG: a family of simple fast space-efficient statistically good algorithms for random
    number generation", HMC-CS-2014-0905, 2014.
    """
    words = np.asarray(jax.random.bits(key, (4,), dtype=np.uint32))
    return np.random.default_rng([int(w) for w in words])


def _split_counts(n, fractions):
    """Largest-remainder rounding of ``n * fractions`` to integers that sum to ``n``."""
    exact = n * np.asarray(fractions, dtype=np.float64)
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def train_val_test_split(X, y, fractions=(0.8, 0.1, 0.1), *, key, stratify=False):
    """Shuffle ``(X, y)`` with ``numpy_rng(key)`` and cut it into train, validation and test parts.

    The sizes are ``n * fractions`` rounded by largest remainder so they sum to ``n``. With ``stratify=True`` each
    class is cut separately in the same fractions (so every part keeps the class proportions up to one example per
    class) and each part is then shuffled.

    Args:
      X: array ``(n, ...)``.
      y: array ``(n, ...)``; integer class labels ``(n,)`` when ``stratify=True``.
      fractions: three non-negative numbers summing to 1 (a zero gives an empty part).
      key: ``jax.random`` key.
      stratify: keep class proportions in each part.

    Returns:
      ``((X_train, y_train), (X_val, y_val), (X_test, y_test))``, rows taken from ``X`` and ``y`` (same dtypes).

    Example:
      >>> X, y = load_digits()
      >>> train, val, test = train_val_test_split(X, y, (0.8, 0.1, 0.1), key=jax.random.key(0))
      >>> len(train[0]), len(val[0]), len(test[0])
      (1437, 180, 180)

    Reference: Hastie, Tibshirani & Friedman, "The Elements of Statistical Learning", 2nd ed., 2009, sec. 7.2.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(f"train_val_test_split: expected X and y with the same first dimension, got shapes "
                         f"{X.shape} and {y.shape}")
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(f < 0) or abs(f.sum() - 1.0) > 1e-6:
        raise ValueError(f"train_val_test_split: fractions must be three numbers >= 0 summing to 1 (train, val, "
                         f"test), got {fractions}")
    n = X.shape[0]
    f = f / f.sum()  # exactly 1, so the rounded counts can never exceed n
    if not stratify:
        perm = numpy_rng(key).permutation(n)
        bounds = np.cumsum(_split_counts(n, f))[:-1]
        parts = np.split(perm, bounds)
    else:
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"train_val_test_split: stratify=True needs integer class labels of shape (n,), got "
                             f"{y.dtype} of shape {y.shape}")
        rng = numpy_rng(key)
        parts = [[], [], []]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            for p, chunk in zip(parts, np.split(idx, np.cumsum(_split_counts(idx.size, f))[:-1])):
                p.append(chunk)
        parts = [rng.permutation(np.concatenate(p)) for p in parts]
    return tuple((X[p], y[p]) for p in parts)


class Stats(NamedTuple):
    """Per-feature statistics for ``standardize``: ``mean`` and ``std`` of shape ``X.shape[1:]`` (float32)."""
    mean: np.ndarray  # feature means over the training examples
    std: np.ndarray   # feature standard deviations (ddof=0); ones where a feature is (nearly) constant


def fit_standardizer(X, *, eps=1e-7):
    """Per-feature mean and standard deviation of the training split.

    ``mean = X.mean(0)``, ``std = X.std(0)`` (population, ``ddof=0``), accumulated in float64; where
    ``std <= eps`` the feature is constant and ``std`` is set to 1 so ``standardize`` maps it to 0 instead of
    dividing by zero.

    Args:
      X: training features ``(n, ...)``, ``n >= 1``; fit on the training split only, never on validation or test.
      eps: threshold below which a standard deviation counts as zero.

    Returns:
      ``Stats(mean, std)``, float32 arrays of shape ``X.shape[1:]``.

    Example:
      >>> stats = fit_standardizer(np.array([[1.0, 5.0], [3.0, 5.0]]))
      >>> stats.mean.tolist(), stats.std.tolist()
      ([2.0, 5.0], [1.0, 1.0])

    Reference: LeCun, Bottou, Orr & Mueller, "Efficient BackProp", 1998, sec. 4.3 (normalising the inputs).
    """
    X = np.asarray(X)
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"fit_standardizer: expected training features of shape (n, ...) with n >= 1, got shape "
                         f"{X.shape}")
    X64 = X.astype(np.float64)
    mean, std = X64.mean(axis=0), X64.std(axis=0)
    std = np.where(std <= eps, 1.0, std)
    return Stats(mean.astype(np.float32), std.astype(np.float32))


def _check_stats(fn, X, stats):
    if X.shape[1:] != np.shape(stats.mean):
        raise ValueError(f"{fn}: expected features of shape (n, {', '.join(map(str, np.shape(stats.mean)))}) to "
                         f"match the fitted statistics, got {X.shape}; fit and apply on the same feature layout")


def standardize(X, stats):
    """``(X - stats.mean) / stats.std`` feature by feature, as float32.

    Args:
      X: features ``(n, ...)`` with ``X.shape[1:] == stats.mean.shape``.
      stats: ``Stats`` from ``fit_standardizer`` on the training split.

    Returns:
      float32 array of the shape of ``X``.

    Example:
      >>> X = np.array([[1.0, 5.0], [3.0, 5.0]])
      >>> standardize(X, fit_standardizer(X)).tolist()
      [[-1.0, 0.0], [1.0, 0.0]]

    Reference: LeCun et al., "Efficient BackProp", 1998, sec. 4.3.
    """
    X = np.asarray(X)
    _check_stats("standardize", X, stats)
    return ((X - stats.mean) / stats.std).astype(np.float32)


def unstandardize(Z, stats):
    """Inverse of ``standardize``: ``Z * stats.std + stats.mean`` (e.g. to read regression outputs in data units).

    Args:
      Z: standardized values ``(n, ...)``.
      stats: the ``Stats`` used to standardize.

    Returns:
      float32 array of the shape of ``Z``.

    Reference: LeCun et al., "Efficient BackProp", 1998, sec. 4.3.
    """
    Z = np.asarray(Z)
    _check_stats("unstandardize", Z, stats)
    return (Z * stats.std + stats.mean).astype(np.float32)


def one_hot(y, num_classes, *, dtype=np.float32):
    """One-hot rows: ``Y[i, c] = 1`` if ``y[i] == c`` else 0.

    Args:
      y: integer labels of any shape ``s`` with values in ``[0, num_classes)``.
      num_classes: number of classes ``C >= 1``.
      dtype: output dtype.

    Returns:
      array of shape ``s + (C,)``.

    Raises:
      ValueError: a label outside ``[0, num_classes)`` (the message names it) or non-integer labels.

    Example:
      >>> one_hot(np.array([2, 0]), 3).tolist()
      [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]

    Reference: Bishop, "Pattern Recognition and Machine Learning", 2006, sec. 4.1 (1-of-K coding).
    """
    y = np.asarray(y)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be an integer >= 1, got {num_classes!r}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"one_hot: expected integer labels, got dtype {y.dtype}; convert with y.astype(np.int32)")
    bad = (y < 0) | (y >= num_classes)
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"one_hot: labels must lie in [0, {num_classes}), got label {y[first]} at index "
                         f"{first if len(first) != 1 else first[0]}; remap the labels or raise num_classes")
    return (y[..., None] == np.arange(num_classes)).astype(dtype)


def _xp(a):
    return jnp if isinstance(a, jax.Array) else np


def validate_xy(X, y, *, num_classes=None, name="fit"):
    """Check a data set before any compiling, raising one clear ``ValueError`` per problem.

    Checks, in order: ``X`` and ``y`` have a first (example) dimension of equal length ``n``; ``n >= 1``; ``X`` is
    numeric and finite (no NaN/inf); a floating ``y`` is finite. When ``num_classes`` is given, ``y`` must be either
    integer labels of shape ``(n,)`` with values in ``[0, num_classes)``, or targets of shape ``(n, num_classes)``
    (one-hot or probabilities). NumPy and JAX arrays are accepted; JAX arrays are checked on their device.

    Args:
      X: features ``(n, ...)``.
      y: labels ``(n,)`` or targets ``(n, ...)``.
      num_classes: number of classes for classification, or ``None`` for regression/unchecked targets.
      name: the caller's name, put at the front of every message.

    Returns:
      ``None``; raises ``ValueError`` on the first problem found.

    Example:
      >>> validate_xy(np.zeros((3, 2)), np.array([0, 1, 2]), num_classes=2)
      Traceback (most recent call last):
      ...
      ValueError: fit: labels must lie in [0, 2) for num_classes=2, got label 2 at index 2 (labels span 0..2); remap the labels to 0..1 or set num_classes to match the model's output

    Reference: the issue's "bad input" list (docs/data.md); no paper.
    """
    xp_x, xp_y = _xp(X), _xp(y)
    X = X if xp_x is not np else np.asarray(X)
    y = y if xp_y is not np else np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{name}: expected X of shape (n, ...) and y of shape (n, ...), got shapes {X.shape} and "
                         f"{y.shape}; put the examples along the first axis")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: X has {X.shape[0]} examples but y has {y.shape[0]} (shapes {X.shape} and "
                         f"{y.shape}); expected one target per example, pass X and y of the same length")
    if X.shape[0] == 0:
        raise ValueError(f"{name}: empty data set (X has shape {X.shape}); expected at least one example, check the "
                         f"loading and splitting code")
    if not (jnp.issubdtype(X.dtype, jnp.number) or jnp.issubdtype(X.dtype, jnp.bool_)):  # jnp: knows bfloat16
        raise ValueError(f"{name}: expected numeric X, got dtype {X.dtype}; convert with X.astype(np.float32)")
    for arr, label, xp in ((X, "X", xp_x), (y, "y", xp_y)):
        if jnp.issubdtype(arr.dtype, jnp.inexact):
            bad = ~xp.isfinite(arr)
            if bool(xp.any(bad)):
                rows = np.flatnonzero(np.asarray(bad.reshape(arr.shape[0], -1).any(axis=1)))
                raise ValueError(f"{name}: {label} contains {int(xp.sum(bad))} NaN/inf values in {rows.size} "
                                 f"examples (first at index {rows[0]}); expected finite numbers, drop or impute "
                                 f"those examples")
    if num_classes is None:
        return None
    if y.ndim == 2 and y.shape[1] == num_classes:
        return None
    if y.ndim != 1:
        raise ValueError(f"{name}: expected labels of shape ({y.shape[0]},) or targets of shape ({y.shape[0]}, "
                         f"{num_classes}) for num_classes={num_classes}, got shape {y.shape}")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"{name}: expected integer class labels for num_classes={num_classes}, got dtype "
                         f"{y.dtype}; convert with y.astype(np.int32)")
    lo, hi = int(xp_y.min(y)), int(xp_y.max(y))
    if lo < 0 or hi >= num_classes:
        bad_label = lo if lo < 0 else hi
        index = int(np.flatnonzero(np.asarray(y) == bad_label)[0])
        raise ValueError(f"{name}: labels must lie in [0, {num_classes}) for num_classes={num_classes}, got label "
                         f"{bad_label} at index {index} (labels span {lo}..{hi}); remap the labels to "
                         f"0..{num_classes - 1} or set num_classes to match the model's output")
    return None
