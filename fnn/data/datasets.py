"""Real data sets: the bundled 8x8 digits, and MNIST-format IDX files (MNIST, Fashion-MNIST).

Contract (every loader and generator in ``fnn.data``): features ``X`` are ``float32`` with the example axis first,
labels ``y`` are ``int32`` class indices (regression targets are ``float32``). Nothing here touches a device; the
trainer moves the arrays once.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist/"
MNIST_DIR = "/usr/share/datasets/mnist/"

# IDX type codes (LeCun et al., "The MNIST database", file-format section): code -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


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
      >>> import struct
      >>> with open("labels-idx1-ubyte", "wb") as f:   # zero, zero, type 0x08 (u8), 1 dimension, size 3, the items
      ...     _ = f.write(struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + bytes([7, 2, 1]))
      >>> read_idx("labels-idx1-ubyte")
      array([7, 2, 1], dtype=uint8)

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
