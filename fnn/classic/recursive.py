"""Recursive (tree-structured) networks: one shared composition module applied up a binary tree, batched.

A binary tree is a nested tuple: a leaf is a token id ``k >= 0`` (an int), an internal node a pair ``(left, right)``.
Every node gets a vector ``h`` in R^d:

==============  ==================================================================================================
leaf            h = E[k]                                      (a learned embedding, row k of E (V, d))
internal node   h = tanh(W [h_left; h_right] + b)              W (2d, d), b (d,)     (Socher et al. 2011, eq. 1)
  ``tensor``    h = tanh(W [h_l; h_r] + sum_ij [h_l; h_r]_i V_ijk [h_l; h_r]_j + b)_k,  V (2d, 2d, d)  (RNTN)
readout         logits = U h_root + c                           U (d, C), c (C,)
==============  ==================================================================================================

The encoding (:func:`encode_trees`), a :class:`TreeBatch` of B trees padded to N nodes each: nodes in topological
order (children before parents, the root last among a tree's real nodes), and per node its token id (``-1`` for
internal and padding nodes), its children's indices ``left``, ``right`` (``0`` at leaves and padding), its
*level* = height above the leaves (leaves 0, a parent 1 + the larger of its children's levels) and a ``mask``
(False at padding). ``steps`` is ``arange(1, L + 1)`` for the padded number of levels L; only its length is used.

The computation (:func:`node_states`) is a ``lax.scan`` over the levels t = 1..L: at step t every node of level t,
in every tree at once, is composed from its children, which all have smaller levels and so are final. The trees are
handled by ``jax.vmap``; the program depends only on (B, N, L), so batches of differently shaped trees with the same
padding run through one compilation. Cost: L steps of B N compositions (all nodes are computed at each step and
only the level-t ones kept), instead of N sequential steps for a scan over nodes in topological order.

The synthetic task (:func:`random_expression`, :func:`expression_value`): leaves are digits 0..m-1 and every internal
node means "left minus right", the label is the value mod m. The answer depends on the structure:
((a - b) - c) != a - (b - c). :func:`expression_tokens` flattens a tree to the infix token sequence with
brackets (from which the structure can in principle be recovered) or without (from which it cannot).

References: Pollack, "Recursive distributed representations", Artificial Intelligence 46, 1990; Socher, Lin, Ng &
Manning, "Parsing natural scenes and natural language with recursive neural networks", ICML 2011, sec. 3 (eq. 1);
Socher et al., "Recursive deep models for semantic compositionality over a sentiment treebank", EMNLP 2013,
sec. 4.4 (the tensor layer, eq. 2); Looks et al., "Deep learning with dynamic computation graphs", ICLR 2017
(batching differently shaped trees by depth).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import initializers as ini

__all__ = ["TreeBatch", "RecursiveParams", "tree_size", "tree_height", "encode_trees", "init_recursive",
           "node_states", "root_states", "tree_logits", "random_expression", "expression_value", "expression_tokens",
           "encode_sequences", "expression_dataset"]


class TreeBatch(NamedTuple):
    tokens: jax.Array   # (B, N) int: leaf token id, -1 at internal and padding nodes
    left: jax.Array     # (B, N) int: index of the left child (0 at leaves and padding)
    right: jax.Array    # (B, N) int: index of the right child (0 at leaves and padding)
    level: jax.Array    # (B, N) int: height above the leaves (0 at leaves and padding)
    mask: jax.Array     # (B, N) bool: True at real nodes
    root: jax.Array     # (B,) int: index of each tree's root (its last real node)
    steps: jax.Array    # (L,) int: arange(1, L + 1); its length L is the number of scan steps


class RecursiveParams(NamedTuple):
    E: jax.Array        # (V, d) leaf embeddings
    W: jax.Array        # (2d, d) composition weights
    b: jax.Array        # (d,) composition bias
    V: jax.Array | None  # (2d, 2d, d) tensor of the RNTN, or None for the plain recursive net
    U: jax.Array        # (d, C) readout weights
    c: jax.Array        # (C,) readout bias


def _check_tree(tree, where: str = "encode_trees"):
    if isinstance(tree, (bool, np.bool_)):
        raise TypeError(f"{where}: expected a leaf token (int >= 0) or a pair (left, right), got the bool {tree}")
    if isinstance(tree, (int, np.integer)):
        if tree < 0:
            raise ValueError(f"{where}: leaf tokens must be ints >= 0, got {tree}; -1 is reserved for internal "
                             f"nodes and padding")
        return
    if not isinstance(tree, tuple) or len(tree) != 2:
        raise TypeError(f"{where}: expected a leaf token (int >= 0) or a pair (left, right), got {tree!r}; "
                        f"write a binary tree as nested 2-tuples, e.g. ((1, 2), 3)")
    _check_tree(tree[0], where)
    _check_tree(tree[1], where)


def tree_size(tree) -> int:
    """The number of nodes of a binary tree (leaves + internal nodes).

    Example:
      >>> tree_size(((1, 2), 3))
      5
    """
    return 1 if not isinstance(tree, tuple) else 1 + tree_size(tree[0]) + tree_size(tree[1])


def tree_height(tree) -> int:
    """Height of a binary tree: 0 for a leaf, 1 + the larger child height for a pair.

    Example:
      >>> tree_height(((1, 2), 3))
      2
    """
    return 0 if not isinstance(tree, tuple) else 1 + max(tree_height(tree[0]), tree_height(tree[1]))


def _post_order(tree, rows: list) -> tuple[int, int]:
    """Append ``(token, left, right, level)`` rows in post-order (children first); returns (index, level)."""
    if not isinstance(tree, tuple):
        rows.append((int(tree), 0, 0, 0))
        return len(rows) - 1, 0
    i_left, lv_left = _post_order(tree[0], rows)
    i_right, lv_right = _post_order(tree[1], rows)
    level = 1 + max(lv_left, lv_right)
    rows.append((-1, i_left, i_right, level))
    return len(rows) - 1, level


def encode_trees(trees, n_nodes: int | None = None, n_levels: int | None = None) -> TreeBatch:
    """Encode a list of binary trees as one padded :class:`TreeBatch` (nodes in post-order: children first).

    Args:
      trees: a list of B trees, each a leaf token (int >= 0) or a nested pair ``(left, right)``.
      n_nodes: N, the padded number of nodes (default: the largest tree's size). Fix it (and ``n_levels``) to reuse
        one compiled program for batches of differently shaped trees.
      n_levels: L, the padded number of levels = scan steps (default: the largest tree's height).

    Returns:
      :class:`TreeBatch` with arrays of shape (B, N), ``root`` (B,) and ``steps`` (L,).

    Example:
      >>> batch = encode_trees([((1, 2), 3), 4], n_nodes=6)
      >>> batch.tokens.tolist(), batch.level[0].tolist(), batch.root.tolist()
      ([[1, 2, -1, 3, -1, -1], [4, -1, -1, -1, -1, -1]], [0, 0, 1, 0, 2, 0], [4, 0])
    """
    if not isinstance(trees, (list, tuple)) or len(trees) == 0:
        raise ValueError(f"encode_trees: expected a non-empty list of trees, got {type(trees).__name__} "
                         f"{trees!r:.60}; wrap a single tree in a list: encode_trees([tree])")
    for tree in trees:
        _check_tree(tree)
    sizes = [tree_size(t) for t in trees]
    heights = [tree_height(t) for t in trees]
    N = max(sizes) if n_nodes is None else n_nodes
    L = max(heights) if n_levels is None else n_levels
    if max(sizes) > N:
        raise ValueError(f"encode_trees: n_nodes={N} but tree {int(np.argmax(sizes))} has {max(sizes)} nodes; "
                         f"pass n_nodes >= {max(sizes)} (or leave it None)")
    if max(heights) > L:
        raise ValueError(f"encode_trees: n_levels={L} but tree {int(np.argmax(heights))} has height "
                         f"{max(heights)}; pass n_levels >= {max(heights)} (or leave it None)")
    arr = np.zeros((len(trees), N, 4), np.int32)
    arr[:, :, 0] = -1
    for i, tree in enumerate(trees):
        rows: list = []
        _post_order(tree, rows)
        arr[i, :len(rows)] = rows
    sizes = np.asarray(sizes)
    mask = np.arange(N)[None, :] < sizes[:, None]
    return TreeBatch(jnp.asarray(arr[..., 0]), jnp.asarray(arr[..., 1]), jnp.asarray(arr[..., 2]),
                     jnp.asarray(arr[..., 3]), jnp.asarray(mask), jnp.asarray(sizes - 1, jnp.int32),
                     jnp.arange(1, L + 1, dtype=jnp.int32))


def init_recursive(key, vocab_size: int, hidden: int, n_classes: int, tensor: bool = False) -> RecursiveParams:
    """Initial :class:`RecursiveParams`: E ~ N(0, 1), W and U Glorot-uniform, V ~ N(0, 1/(4 d)), zero biases.

    Args:
      key: a PRNG key. vocab_size: V, leaf tokens in [0, V). hidden: d. n_classes: C.
      tensor: add the RNTN tensor V (2d, 2d, d) to the composition.

    Returns:
      :class:`RecursiveParams` (``V`` is None when ``tensor`` is False).

    Example:
      >>> p = init_recursive(jax.random.key(0), 5, 8, 3, tensor=True)
      >>> p.E.shape, p.W.shape, p.V.shape, p.U.shape
      ((5, 8), (16, 8), (16, 16, 8), (8, 3))
    """
    for name, value in (("vocab_size", vocab_size), ("hidden", hidden), ("n_classes", n_classes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"init_recursive: {name} must be a positive int, got {value!r}")
    d = int(hidden)
    kE, kW, kV, kU = jax.random.split(key, 4)
    glorot = ini.glorot_uniform()
    V = jax.random.normal(kV, (2 * d, 2 * d, d)) / (2.0 * np.sqrt(d)) if tensor else None
    return RecursiveParams(jax.random.normal(kE, (vocab_size, d)), glorot(kW, (2 * d, d)), jnp.zeros(d), V,
                           glorot(kU, (d, n_classes)), jnp.zeros(n_classes))


def _compose(params: RecursiveParams, h_left, h_right):
    x = jnp.concatenate([h_left, h_right], -1)
    z = x @ params.W + jnp.expand_dims(params.b, tuple(range(x.ndim - 1)))
    if params.V is not None:
        z = z + jnp.einsum("...i,ijk,...j->...k", x, params.V, x)
    return jnp.tanh(z)


def _check_batch(where: str, params, batch):
    if not isinstance(batch, TreeBatch):
        raise TypeError(f"{where}: expected a TreeBatch (from encode_trees), got {type(batch).__name__}")
    if not isinstance(params, RecursiveParams):
        raise TypeError(f"{where}: expected RecursiveParams (from init_recursive), got {type(params).__name__}")
    if batch.tokens.ndim != 2 or batch.left.shape != batch.tokens.shape or batch.mask.shape != batch.tokens.shape:
        raise ValueError(f"{where}: expected tokens, left, right, level and mask of one shape (B, N), got "
                         f"tokens {batch.tokens.shape}, left {batch.left.shape}, mask {batch.mask.shape}")
    try:
        top = int(np.max(np.asarray(batch.tokens)))
    except jax.errors.TracerArrayConversionError:  # under jit: unchecked; out-of-range ids are clipped by take
        return
    if top >= params.E.shape[0]:
        raise ValueError(f"{where}: a leaf token is {top} but the embedding has {params.E.shape[0]} rows; "
                         f"init_recursive with vocab_size > {top}")


def _one_tree_states(params: RecursiveParams, tokens, left, right, level, mask, steps):
    leaf = (tokens >= 0) & mask
    h = jnp.where(leaf[:, None], params.E[jnp.maximum(tokens, 0)], 0.0)

    def step(h, t):
        new = _compose(params, h[left], h[right])
        return jnp.where(((level == t) & ~leaf & mask)[:, None], new, h), None

    h, _ = jax.lax.scan(step, h, steps)
    return h


def node_states(params: RecursiveParams, batch: TreeBatch) -> jax.Array:
    """Every node's vector, composed level by level: a ``lax.scan`` over levels, ``vmap`` over trees.

    Args:
      params: :class:`RecursiveParams`. batch: :class:`TreeBatch` from :func:`encode_trees`.

    Returns:
      ``(B, N, d)``: ``h`` of each node (zeros at padding nodes).

    Example:
      >>> p = init_recursive(jax.random.key(0), 4, 3, 2)
      >>> node_states(p, encode_trees([((1, 2), 3), 0])).shape
      (2, 5, 3)
    """
    _check_batch("node_states", params, batch)
    return jax.vmap(_one_tree_states, in_axes=(None, 0, 0, 0, 0, 0, None))(
        params, batch.tokens, batch.left, batch.right, batch.level, batch.mask, batch.steps)


def root_states(params: RecursiveParams, batch: TreeBatch) -> jax.Array:
    """``(B, d)``: the root vector of each tree (see :func:`node_states`)."""
    h = node_states(params, batch)
    return jnp.take_along_axis(h, batch.root[:, None, None], axis=1)[:, 0]


def tree_logits(params: RecursiveParams, batch: TreeBatch) -> jax.Array:
    """``(B, C)`` class scores ``U h_root + c`` of each tree.

    Example:
      >>> p = init_recursive(jax.random.key(0), 4, 3, 2)
      >>> tree_logits(p, encode_trees([((1, 2), 3), 0])).shape
      (2, 2)
    """
    return root_states(params, batch) @ params.U + params.c[None]


# --- the synthetic task: subtraction trees mod m ---------------------------------------------------------------------

def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def random_expression(rng, n_leaves: int, modulus: int):
    """A random binary expression tree: ``n_leaves`` digits in [0, m), the split point uniform at every node.

    Args:
      rng: a ``numpy.random.Generator`` or an int seed. n_leaves: >= 1. modulus: m >= 2.

    Returns:
      A nested-tuple tree (see :func:`encode_trees`).

    Example:
      >>> tree = random_expression(0, 4, 5)
      >>> tree_size(tree)
      7
    """
    if isinstance(n_leaves, bool) or not isinstance(n_leaves, (int, np.integer)) or n_leaves < 1:
        raise ValueError(f"random_expression: n_leaves must be an int >= 1, got {n_leaves!r}")
    if isinstance(modulus, bool) or not isinstance(modulus, (int, np.integer)) or modulus < 2:
        raise ValueError(f"random_expression: modulus must be an int >= 2, got {modulus!r}")
    rng = _rng(rng)

    def build(n):
        if n == 1:
            return int(rng.integers(modulus))
        k = int(rng.integers(1, n))
        return build(k), build(n - k)
    return build(int(n_leaves))


def expression_value(tree, modulus: int) -> int:
    """The value of a subtraction tree mod m: a leaf is its digit, ``(l, r)`` is ``(value(l) - value(r)) mod m``.

    Example:
      >>> expression_value(((1, 2), 3), 5), expression_value((1, (2, 3)), 5)
      (1, 2)
    """
    if not isinstance(tree, tuple):
        return int(tree) % modulus
    return (expression_value(tree[0], modulus) - expression_value(tree[1], modulus)) % modulus


def expression_tokens(tree, modulus: int, brackets: bool = True) -> list[int]:
    """The infix token sequence of a tree: digits 0..m-1, ``-`` = m, ``(`` = m + 1, ``)`` = m + 2.

    With brackets every internal node is written ``( left - right )``, so the tree can be read back; without them
    only ``left - right`` remains and different trees over the same digits give the same sequence.

    Example:
      >>> expression_tokens(((1, 2), 3), 5), expression_tokens(((1, 2), 3), 5, brackets=False)
      ([6, 6, 1, 5, 2, 7, 5, 3, 7], [1, 5, 2, 5, 3])
    """
    if not isinstance(tree, tuple):
        return [int(tree)]
    inner = expression_tokens(tree[0], modulus, brackets) + [modulus] + expression_tokens(tree[1], modulus, brackets)
    return [modulus + 1] + inner + [modulus + 2] if brackets else inner


def encode_sequences(trees, modulus: int, brackets: bool = True, length: int | None = None):
    """The trees as padded token sequences for a sequence model: ``(tokens (B, T), lengths (B,))``.

    Padding uses the token m + 3 (so a vocabulary of m + 4 ids covers everything) and sits at the end.

    Example:
      >>> tokens, lengths = encode_sequences([(1, 2), 3], 5, brackets=False)
      >>> tokens.tolist(), lengths.tolist()
      ([[1, 5, 2], [3, 8, 8]], [3, 1])
    """
    seqs = [expression_tokens(t, modulus, brackets) for t in trees]
    lengths = np.array([len(s) for s in seqs], np.int32)
    T = int(lengths.max()) if length is None else length
    if lengths.max() > T:
        raise ValueError(f"encode_sequences: length={T} but a sequence has {lengths.max()} tokens; pass length >= "
                         f"{lengths.max()} (or leave it None)")
    out = np.full((len(seqs), T), modulus + 3, np.int32)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return jnp.asarray(out), jnp.asarray(lengths)


def expression_dataset(rng, n: int, modulus: int, min_leaves: int, max_leaves: int):
    """``n`` random subtraction trees with ``min_leaves..max_leaves`` leaves (uniform), and their labels (n,).

    Example:
      >>> trees, labels = expression_dataset(0, 3, 5, 2, 4)
      >>> [expression_value(t, 5) for t in trees] == labels.tolist()
      True
    """
    if not 1 <= min_leaves <= max_leaves:
        raise ValueError(f"expression_dataset: expected 1 <= min_leaves <= max_leaves, got min_leaves={min_leaves}, "
                         f"max_leaves={max_leaves}")
    rng = _rng(rng)
    trees = [random_expression(rng, int(rng.integers(min_leaves, max_leaves + 1)), modulus) for _ in range(n)]
    return trees, np.array([expression_value(t, modulus) for t in trees], np.int32)
