"""Transfer learning: reuse the first layers of a trained ``serial`` model in a new one, frozen or fine-tuned.

    model = reuse(source_model, k, Dense(5))                       # source's first k layers + new layers
    out_shape, params = init_transfer(model, source_params, k, key, input_shape)   # first k entries copied
    frozen = layer_mask(params, k)                                 # True on every leaf of the first k layers
    opt = freeze(adam(1e-3), frozen)                               # (b) frozen features, new head trained
    opt = chain(adam(1e-3), scale_where(0.1, frozen))              # (c) fine-tuned at 1/10 of the rate

``serial``'s params are a tuple with one entry per layer (``fnn/layers/base.py``), so "the first k layers" are the
first k entries of that tuple. :func:`freeze` is an optimizer wrapper in optax's protocol (``init``, ``update``):
the inner optimizer sees the params with the frozen leaves taken out, so it keeps no state for them, and their
updates are ``-0.0``, which leaves every frozen parameter bit-identical (``x + (-0.0) == x`` for every float
``x``, ``-0.0`` included; ``x + 0.0`` would turn ``-0.0`` into ``+0.0``).

Reference: Yosinski, Clune, Bengio & Lipson, "How transferable are features in deep neural networks?", NIPS 2014
(frozen "AnB" vs fine-tuned "AnB+" transfer, sec. 2 and fig. 2).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import layers as _layers
from fnn.optimizers import Optimizer, check_tree

__all__ = ["reuse", "init_transfer", "transfer_params", "layer_mask", "resolve_frozen", "freeze", "scale_where",
           "FreezeState", "ScaleWhereState", "Dropped"]


class Dropped(NamedTuple):
    """Placeholder for a frozen leaf in the tree the inner optimizer of :func:`freeze` sees: an empty pytree node,
    so the inner state holds nothing for it (optax's ``MaskedNode`` plays the same role)."""


class FreezeState(NamedTuple):
    inner: Any  # the inner optimizer's state for the trainable leaves only (frozen ones are Dropped())


class ScaleWhereState(NamedTuple):
    """State of :func:`scale_where` (stateless)."""


# ----------------------------------------------------------------------------------------- building the model
def _entries(where: str, params, what: str) -> tuple:
    if not isinstance(params, (tuple, list)):
        raise TypeError(f"{where}: expected {what} of a serial model (a tuple with one entry per layer), got "
                        f"{type(params).__name__}; pass the params of fnn.layers.serial(...) or stax.serial(...)")
    return tuple(params)


def _check_keep(where: str, keep, n: int, what: str) -> int:
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or not 0 <= keep <= n:
        raise ValueError(f"{where}: expected keep, the number of leading layers to reuse, as an int in [0, {n}] "
                         f"({what} has {n} layers), got {keep!r}")
    return int(keep)


def reuse(source: Any, keep: int, *new_layers) -> _layers.Layer:
    """The model ``serial(l_1, ..., l_keep, *new_layers)`` made of the first ``keep`` layers of ``source``.

    Args:
      source: an fnn ``serial`` model (its ``children`` are the layers).
      keep: how many leading layers to reuse, ``0 <= keep <= len(source.children)``.
      *new_layers: the layers that follow (e.g. a new output layer).

    Returns:
      A ``serial`` Layer whose params tuple has ``keep + len(new_layers)`` entries.

    Example:
      >>> from fnn.layers import Dense, Relu, mlp
      >>> [c.label for c in reuse(mlp([8, 5]), 2, Dense(3)).children]
      ['Dense', 'Relu', 'Dense']
    """
    children = getattr(source, "children", ())
    if getattr(source, "kind", None) not in ("serial", "mlp") or not children:
        raise TypeError(f"reuse: expected an fnn serial model (with .children), got {source!r}; build it with "
                        f"fnn.layers.serial or mlp, or write serial(*layers[:keep], *new_layers) by hand")
    keep = _check_keep("reuse", keep, len(children), "the source model")
    return _layers.serial(*children[:keep], *new_layers)


def transfer_params(params, source_params, keep: int):
    """``params`` with its first ``keep`` layer entries replaced by those of ``source_params``.

    ``theta_new = (theta_src[0], ..., theta_src[keep-1], theta_new[keep], ...)``: the arrays are the source's
    own (JAX arrays are immutable, and ``fit`` trains a copy), so the copied entries equal the source bit for bit.

    Args:
      params: the new model's params (a tuple, one entry per layer).
      source_params: the trained model's params (a tuple).
      keep: the number of leading entries to copy.

    Returns:
      A tuple like ``params``.

    Raises:
      ValueError: if an entry's tree structure, a leaf's shape or dtype differs (the layer, path and both are named).

    Example:
      >>> new = transfer_params((jnp.zeros(2), ()), (jnp.ones(2), (), jnp.ones(3)), 1)
      >>> new[0].tolist(), new[1]
      ([1.0, 1.0], ())
    """
    params, source = _entries("transfer_params", params, "params"), _entries("transfer_params", source_params,
                                                                            "source_params")
    keep = _check_keep("transfer_params", keep, min(len(params), len(source)), "the shorter of params/source_params")
    for i in range(keep):
        new_def, src_def = jax.tree.structure(params[i]), jax.tree.structure(source[i])
        if new_def != src_def:
            raise ValueError(f"transfer_params: layer {i} has a different params tree in the new model and in the "
                             f"source.\n  new:    {new_def}\n  source: {src_def}\nthe first keep layers must be the "
                             f"same layers; build the new model with reuse(source_model, keep, ...)")
        for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(params[i])[0], jax.tree.leaves(source[i])):
            if jnp.shape(a) != jnp.shape(b) or jnp.result_type(a) != jnp.result_type(b):
                raise ValueError(f"transfer_params: layer {i}{jax.tree_util.keystr(path)} is "
                                 f"{jnp.result_type(a)}{list(jnp.shape(a))} in the new model but "
                                 f"{jnp.result_type(b)}{list(jnp.shape(b))} in the source; initialise the new model "
                                 f"with the source's input shape and layer sizes (and dtype)")
    return tuple(source[:keep]) + tuple(params[keep:])


def init_transfer(model, source_params, keep: int, key, input_shape):
    """Initialise ``model`` and put the trained params of its first ``keep`` layers in place.

    ``(output_shape, params) = model.init(key, input_shape)``, then :func:`transfer_params`; the new layers keep
    their fresh initialisation.

    Args:
      model: a serial model whose first ``keep`` layers are the source's (e.g. from :func:`reuse`).
      source_params: the trained source params (a tuple, one entry per layer).
      keep: the number of leading layers to transfer.
      key: PRNG key for the new layers. input_shape: as for ``model.init`` (the source's input shape).

    Returns:
      ``(output_shape, params)``.

    Example:
      >>> from fnn.layers import Dense, mlp
      >>> source = mlp([8, 5])
      >>> _, trained = source.init(jax.random.key(0), (-1, 4))
      >>> shape, params = init_transfer(reuse(source, 2, Dense(3)), trained, 2, jax.random.key(1), (-1, 4))
      >>> shape, bool((params[0].W == trained[0].W).all())
      ((-1, 3), True)
    """
    output_shape, params = model.init(key, input_shape)
    return output_shape, transfer_params(params, source_params, keep)


def layer_mask(params, layers) -> tuple:
    """A mask like ``params`` (a serial tuple): True on every leaf of the chosen layers, False elsewhere.

    Args:
      params: a serial model's params.
      layers: an int ``k`` (the first ``k`` layers) or a collection of layer indices.

    Returns:
      A tuple of bool pytrees with ``params``'s structure.

    Example:
      >>> layer_mask((jnp.ones(2), (), jnp.ones(3)), 1)
      (True, (), False)
    """
    params = _entries("layer_mask", params, "params")
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        chosen = set(range(_check_keep("layer_mask", layers, len(params), "params")))
    else:
        chosen = set(layers)
        if not all(isinstance(i, (int, np.integer)) and 0 <= i < len(params) for i in chosen):
            raise ValueError(f"layer_mask: expected layer indices in [0, {len(params)}), got {sorted(chosen)!r}")
    return tuple(jax.tree.map(lambda _, on=i in chosen: on, p) for i, p in enumerate(params))


# ----------------------------------------------------------------------------------------- the optimizer wrappers
def resolve_frozen(where: str, mask, tree) -> list:
    """The mask as one Python bool per leaf of ``tree``.

    ``mask``: a pytree of bools with ``tree``'s structure, a prefix of it (``(True, True, False)`` for a 3-layer
    serial model: one bool per layer), or a callable ``tree -> mask``. Bools must be concrete (they decide which
    leaves the inner optimizer sees, i.e. the structure of its state), so a traced mask is a TypeError.
    """
    if callable(mask):
        mask = mask(tree)
    try:
        full = jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), mask, tree)
    except ValueError as err:
        raise ValueError(f"{where}: the mask does not match the params tree (it must have its structure or be a "
                         f"prefix of it, e.g. one bool per layer).\n  mask:   {jax.tree.structure(mask)}\n"
                         f"  params: {jax.tree.structure(tree)}\nbuild it with "
                         f"fnn.train.transfer.layer_mask(params, k) ({str(err).splitlines()[0]})") from None
    flags = jax.tree.leaves(full)
    for f in flags:
        if not isinstance(f, (bool, np.bool_)):
            raise TypeError(f"{where}: expected the mask's leaves to be Python bools, got {type(f).__name__} {f!r}; "
                            f"the mask chooses which leaves are trained and must be known when the optimizer is "
                            f"built (not a traced or device array)")
    return [bool(f) for f in flags]


def _split(tree, flags):
    """``tree`` with every leaf whose flag is True replaced by ``Dropped()``."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([Dropped() if f else x for x, f in zip(leaves, flags)])


def freeze(optimizer: Optimizer, frozen: Callable | Any) -> Optimizer:
    """Train only the leaves where ``frozen`` is False: ``u_i = -0.0`` on frozen leaves, the inner rule elsewhere.

    With ``T`` the trainable leaves, ``u_T, s = inner.update(g_T, s, x_T)`` and ``u_i = -0.0`` for ``i`` not in
    ``T``: the inner optimizer (any fnn rule, chain or optax transform) is initialised and updated on the params with
    the frozen leaves replaced by an empty node, so it keeps no state for them (Adam's moments exist only for the
    trainable leaves) and never sees their gradients; a frozen parameter stays bit-identical. With no leaf frozen
    the updates and the state are the inner optimizer's exactly. Works under ``jit``: the mask is static.

    optax: ``multi_transform({"train": inner, "frozen": set_to_zero()}, labels)`` is the same rule;
    ``optax.masked(inner, trainable)`` alone keeps the same inner state but passes the frozen leaves' gradients
    through *as updates* (it does not zero them).

    Args:
      optimizer: the inner optimizer.
      frozen: True for the leaves to freeze: a pytree of bools like params, a prefix of it (one bool per layer of
        a serial model, e.g. :func:`layer_mask`), or a callable ``params -> mask``.

    Returns:
      An Optimizer with state ``FreezeState(inner)``.

    Raises:
      ValueError: if the mask's tree does not match the params' (both structures are printed).

    Example:
      >>> from fnn.optimizers import adam, apply_updates
      >>> params = (jnp.ones(2), jnp.ones(3))
      >>> opt = freeze(adam(0.1), (True, False))
      >>> u, state = opt.update((jnp.ones(2), jnp.ones(3)), opt.init(params), params)
      >>> u[0].tolist(), [round(v, 4) for v in u[1].tolist()], state.inner[0].m
      ([-0.0, -0.0], [-0.1, -0.1, -0.1], (Dropped(), Array([0.1, 0.1, 0.1], dtype=float32)))
    """
    def init(params):
        return FreezeState(inner=optimizer.init(_split(params, resolve_frozen("freeze", frozen, params))))

    def update(grads, state, params=None):
        if params is not None:
            check_tree("freeze", grads, params, "params")
        flags = resolve_frozen("freeze", frozen, grads if params is None else params)
        u_sub, inner = optimizer.update(_split(grads, flags), state.inner,
                                        None if params is None else _split(params, flags))
        g_leaves, treedef = jax.tree.flatten(grads)
        u_leaves = iter(jax.tree.leaves(u_sub))
        updates = [jnp.full_like(g, -0.0) if f else next(u_leaves) for g, f in zip(g_leaves, flags)]
        return treedef.unflatten(updates), FreezeState(inner=inner)

    return Optimizer(init, update)


def scale_where(factor: float, mask: Callable | Any) -> Optimizer:
    """Multiply the updates by ``factor`` where ``mask`` is True: ``u_i = factor * u_i`` (else ``u_i``).

    Placed *last* in a chain it gives those leaves the learning rate ``factor * lr`` for every rule whose update
    is proportional to ``lr`` (sgd, momentum, adam, rmsprop, ...): fine-tuning the transferred layers more gently
    than the new ones, ``chain(adam(1e-3), scale_where(0.1, layer_mask(params, k)))``. ``factor = 0`` stops those
    leaves but (unlike :func:`freeze`) the inner rule still keeps state for them. optax: ``multi_transform`` with
    two copies of the rule at two learning rates.

    Args:
      factor: a number >= 0.
      mask: as ``frozen`` in :func:`freeze`.

    Returns:
      A stateless Optimizer.

    Example:
      >>> opt = scale_where(0.5, (True, False))
      >>> u, _ = opt.update((jnp.ones(2), jnp.ones(2)), opt.init(None))
      >>> u[0].tolist(), u[1].tolist()
      ([0.5, 0.5], [1.0, 1.0])
    """
    if isinstance(factor, (int, float)) and not factor >= 0:
        raise ValueError(f"scale_where: expected factor >= 0 (the multiplier of the masked updates), got {factor!r}")

    def update(updates, state, params=None):
        flags = resolve_frozen("scale_where", mask, updates)
        leaves, treedef = jax.tree.flatten(updates)
        return treedef.unflatten([(factor * u).astype(u.dtype) if f else u for u, f in zip(leaves, flags)]), state

    return Optimizer(lambda params: ScaleWhereState(), update)
