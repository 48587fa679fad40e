"""On-device image augmentation: random crops with padding and random horizontal flips, keyed and reproducible.

Two forms of the same operations on NHWC image batches ``(n, H, W, C)``:

- pure functions ``random_crop(key, images, padding)``, ``random_flip(key, images, p)`` and ``augment_images``
  (both, with split keys): one key gives one batch, on any device, under ``jit``/``vmap``;
- layers ``RandomCrop(padding)`` and ``RandomFlip(p)`` that follow the contract of :mod:`fnn.layers` like
  ``Dropout``: no params (``()``), the identity when ``apply(..., train=False)``, and a draw from ``key=`` (stax's
  ``rng=``) when training. Put first in a ``serial`` model they run inside ``fit``'s compiled step with its
  per-batch keys: each epoch sees fresh crops and flips, and the data on the host never change.

They live here, on the layers floor, rather than in :mod:`fnn.data` (NumPy in, NumPy out): layers and data are the
same floor and may not import each other, and the layer form needs the functions.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fnn.layers.base import Layer, run_key

__all__ = ["random_crop", "random_flip", "augment_images", "RandomCrop", "RandomFlip"]

_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _check_images(name: str, images):
    if jnp.ndim(images) != 4:
        raise ValueError(f"{name}: expected images of rank 4 (n, height, width, channels), got shape "
                         f"{jnp.shape(images)}; add the missing axes, e.g. X.reshape(-1, 28, 28, 1) for flat "
                         f"28x28 gray images (load_fashion_mnist(flatten=False) gives this shape)")


def _check_padding(name: str, padding, mode: str):
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"{name}: expected padding as an int >= 0 (pixels added on each side of H and W), got "
                         f"{padding!r}; e.g. padding=4 for 32x32 CIFAR images, 2 for 28x28 Fashion-MNIST")
    if mode not in _PAD_MODES:
        raise ValueError(f"{name}: expected mode in {_PAD_MODES} (jnp.pad's modes), got {mode!r}")


def _check_p(name: str, p):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{name}: expected p (the probability of flipping an image) in [0, 1], got {p!r}")


def random_crop(key, images, padding: int, *, mode: str = "constant"):
    """Pad H and W by ``padding`` pixels on each side, then crop back to (H, W) at a random offset per image.

        P = pad(x_i, padding)                        (H + 2p) x (W + 2p), zeros for mode="constant"
        (r_i, c_i) ~ U{0..2p} x U{0..2p}             independently per image
        y_i = P[r_i : r_i + H, c_i : c_i + W, :]

    so y_i is x_i shifted by (p - r_i, p - c_i) pixels, the uncovered border filled by ``mode``. The offsets are
    ``jax.random.randint(key, (n, 2), 0, 2p + 1)``; the crop is ``jax.lax.dynamic_slice`` under ``jax.vmap``.

    Args:
      key: a ``jax.random`` key. images: ``(n, H, W, C)``.
      padding: p >= 0 (0 returns the images unchanged).
      mode: ``jnp.pad``'s mode for the border: "constant" (zeros), "edge", "reflect", "symmetric" or "wrap".

    Returns:
      ``(n, H, W, C)``, the dtype of ``images``.

    Example:
      >>> x = jnp.arange(1.0, 10.0).reshape(1, 3, 3, 1)
      >>> random_crop(jax.random.key(0), x, 1)[0, :, :, 0]      # offset (1, 0): shifted right, zeros come in
      Array([[0., 1., 2.],
             [0., 4., 5.],
             [0., 7., 8.]], dtype=float32)

    Reference: Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional neural networks",
    NIPS 2012, sec. 4.1 (random crops and horizontal reflections); He et al., "Deep residual learning for image
    recognition", CVPR 2016, sec. 4.2 (pad 4 pixels, random 32x32 crop, flip).
    """
    _check_images("random_crop", images)
    _check_padding("random_crop", padding, mode)
    return images if padding == 0 else _crop(key, images, padding, mode)


@functools.partial(jax.jit, static_argnums=(2, 3))  # one compiled program per shape (eager use compiles once)
def _crop(key, images, padding: int, mode: str):
    n, h, w, c = images.shape
    pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    padded = jnp.pad(images, pad, mode=mode)
    offsets = jax.random.randint(key, (n, 2), 0, 2 * padding + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets)


def random_flip(key, images, p: float = 0.5):
    """Flip each image left-right (along W) with probability ``p``.

        f_i ~ Bernoulli(p) independently per image;   y_i = x_i[:, ::-1, :] if f_i else x_i

    Args:
      key: a ``jax.random`` key. images: ``(n, H, W, C)``. p: the flip probability, in [0, 1].

    Returns:
      ``(n, H, W, C)``, the dtype of ``images``.

    Example:
      >>> x = jnp.arange(6.0).reshape(2, 1, 3, 1)
      >>> random_flip(jax.random.key(0), x, p=1.0)[..., 0]        # p = 1: every image reversed
      Array([[[2., 1., 0.]],
      <BLANKLINE>
             [[5., 4., 3.]]], dtype=float32)

    Reference: Krizhevsky, Sutskever & Hinton, NIPS 2012, sec. 4.1.
    """
    _check_images("random_flip", images)
    _check_p("random_flip", p)
    return _flip(key, images, p)


@jax.jit  # p traced: one compiled program per shape, whatever p
def _flip(key, images, p):
    flips = jax.random.bernoulli(key, p, (images.shape[0],))
    return jnp.where(flips[:, None, None, None], images[:, :, ::-1, :], images)


def augment_images(key, images, *, crop_padding: int = 0, flip: float = 0.5, mode: str = "constant"):
    """``random_flip(k2, random_crop(k1, images, crop_padding, mode=mode), flip)`` with ``k1, k2 = split(key)``.

    Args:
      key: a ``jax.random`` key. images: ``(n, H, W, C)``.
      crop_padding: ``random_crop``'s padding (0: no crop). flip: ``random_flip``'s p (0: no flip).
      mode: ``random_crop``'s border mode.

    Returns:
      ``(n, H, W, C)``.

    Example:
      >>> x = jnp.ones((4, 8, 8, 3))
      >>> augment_images(jax.random.key(0), x, crop_padding=2).shape
      (4, 8, 8, 3)
    """
    _check_images("augment_images", images)
    _check_padding("augment_images", crop_padding, mode)
    _check_p("augment_images", flip)
    k_crop, k_flip = jax.random.split(key)
    out = random_crop(k_crop, images, crop_padding, mode=mode)
    return random_flip(k_flip, out, flip) if flip else out


def _augment_layer(name: str, fn):
    def init(key, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{name}: expected an input shape of rank 4 (batch, height, width, channels), got "
                             f"{tuple(input_shape)}; put a Reshape((-1, H, W, C)) before it for flat images")
        return tuple(input_shape), ()

    def apply(params, inputs, **kwargs):
        if not kwargs.get("train", True):
            return inputs
        key = run_key(kwargs)
        if key is None:
            raise ValueError(f"{name}: train mode needs a PRNG key: call apply(params, x, key=jax.random.key(0)) "
                             f"(fit passes one per batch), or apply(params, x, train=False) for evaluation")
        return fn(key, inputs)

    return Layer(init, apply, kind=name, keywords=())  # reads only the common keywords (key/rng, train)


def RandomCrop(padding: int, mode: str = "constant") -> Layer:
    """Layer form of :func:`random_crop`: the identity at ``train=False``, a random padded crop when training.

    Args:
      padding: pixels added on each side of H and W before cropping back (int >= 0).
      mode: the border's ``jnp.pad`` mode ("constant": zeros).

    Returns:
      ``Layer`` with params ``()``; y has the shape of x ``(n, H, W, C)``.

    Example:
      >>> init, apply = RandomCrop(1)
      >>> x = jnp.ones((1, 2, 2, 1))
      >>> apply((), x, key=jax.random.key(0))[0, :, :, 0]        # shifted right: a column of zero padding
      Array([[0., 1.],
             [0., 1.]], dtype=float32)
      >>> bool((apply((), x, train=False) == x).all())             # eval: y == x, no key needed
      True
    """
    _check_padding("RandomCrop", padding, mode)
    return _augment_layer("RandomCrop", lambda key, x: random_crop(key, x, padding, mode=mode))


def RandomFlip(p: float = 0.5) -> Layer:
    """Layer form of :func:`random_flip`: the identity at ``train=False``, a left-right flip with probability ``p``
    per image when training.

    Args:
      p: the flip probability, in [0, 1].

    Returns:
      ``Layer`` with params ``()``; y has the shape of x ``(n, H, W, C)``.

    Example:
      >>> init, apply = RandomFlip(1.0)
      >>> x = jnp.arange(3.0).reshape(1, 1, 3, 1)
      >>> apply((), x, key=jax.random.key(0))[0, 0, :, 0], apply((), x, train=False)[0, 0, :, 0]
      (Array([2., 1., 0.], dtype=float32), Array([0., 1., 2.], dtype=float32))
    """
    _check_p("RandomFlip", p)
    return _augment_layer("RandomFlip", lambda key, x: random_flip(key, x, p))
