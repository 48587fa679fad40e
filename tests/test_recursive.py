"""Recursive networks (fnn.classic.recursive): the padded, level-scanned batch against a plain Python recursion over
each tree (NumPy values, jax.grad gradients), padding invariance, one compilation per padding, the generator's labels
against Python's evaluation of the infix string, bad input."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import classic
from fnn.classic import recursive as rec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATES = jax.jit(rec.node_states)  # one compilation per (params structure, padding), shared by the tests
TREES = [((1, 2), 3), (0, ((4, 1), (2, (3, 0)))), 2, (((0, 1), 2), 3)]


def params(tensor=False, d=3):
    return rec.init_recursive(jax.random.key(0), 5, d, 2, tensor=tensor)


def np_root(p, tree):
    """Plain recursion in NumPy float64: the reference."""
    E, W, b = (np.asarray(a, np.float64) for a in (p.E, p.W, p.b))
    V = None if p.V is None else np.asarray(p.V, np.float64)

    def h(t):
        if not isinstance(t, tuple):
            return E[t]
        x = np.concatenate([h(t[0]), h(t[1])])
        z = x @ W + b
        if V is not None:
            z = z + np.array([x @ V[:, :, k] @ x for k in range(V.shape[2])])
        return np.tanh(z)
    return h(tree)


def jnp_root(p, tree):
    """The same recursion in jax.numpy, for jax.grad."""
    if not isinstance(tree, tuple):
        return p.E[tree]
    x = jnp.concatenate([jnp_root(p, tree[0]), jnp_root(p, tree[1])])
    z = x @ p.W + p.b
    if p.V is not None:
        z = z + jnp.einsum("i,ijk,j->k", x, p.V, x)
    return jnp.tanh(z)


def test_batched_level_scan_equals_python_recursion():
    # the RNTN here; the plain composition (tensor=False) is checked against np_root in the one-compilation test
    p = params(True)
    h = np.asarray(STATES(p, rec.encode_trees(TREES)))
    got = h[np.arange(len(TREES)), [rec.tree_size(t) - 1 for t in TREES]]
    want = np.stack([np_root(p, t) for t in TREES])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # every node, not only the root: node i of tree 1 in post-order is the subtree rooted there
    h = h[1]
    subtrees = [0, 4, 1, (4, 1), 2, 3, 0, (3, 0), (2, (3, 0)), ((4, 1), (2, (3, 0))), TREES[1]]
    np.testing.assert_allclose(h, np.stack([np_root(p, t) for t in subtrees]), rtol=1e-5, atol=1e-6)


def test_padding_does_not_change_results():
    p = params(True)
    alone = np.asarray(STATES(p, rec.encode_trees([TREES[0]])))[0]          # 5 nodes, 2 levels
    padded = rec.encode_trees(TREES)                                         # 13 nodes, 4 levels, bigger trees
    h = np.asarray(STATES(p, padded))
    np.testing.assert_allclose(h[0, :5], alone, rtol=1e-6, atol=1e-7)
    assert np.all(h[~np.asarray(padded.mask)] == 0) and np.all(h[0, 5:] == 0) and np.any(h[1, 5:] != 0)


def test_gradients_equal_grad_through_python_recursion():
    p = params(True)
    trees, labels = TREES[:2], jnp.array([0, 1])

    def loss_batched(p):
        return jnp.sum(jax.nn.log_softmax(rec.tree_logits(p, rec.encode_trees(trees)))[jnp.arange(2), labels])

    def loss_python(p):
        logits = jnp.stack([jnp_root(p, t) for t in trees]) @ p.U + p.c[None]
        return jnp.sum(jax.nn.log_softmax(logits)[jnp.arange(2), labels])

    got, want = jax.jit(jax.grad(loss_batched))(p), jax.jit(jax.grad(loss_python))(p)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-6)
    assert float(jnp.abs(got.E[4]).sum()) > 0 and float(jnp.abs(got.V).sum()) > 0  # reached leaves and the tensor


def test_one_compilation_for_differently_shaped_trees_with_the_same_padding():
    traces = []

    @jax.jit
    def f(p, batch):
        traces.append(1)
        return rec.tree_logits(p, batch)

    p = params()
    rng = np.random.default_rng(0)
    outs = []
    for _ in range(3):
        trees = [rec.random_expression(rng, int(rng.integers(1, 6)), 5) for _ in range(4)]
        batch = rec.encode_trees(trees, n_nodes=9, n_levels=4)
        outs.append((f(p, batch), trees))
    assert len(traces) == 1
    out, trees = outs[-1]
    np.testing.assert_allclose(np.asarray(out), np.stack([np_root(p, t) for t in trees]) @ np.asarray(p.U),
                               rtol=1e-5, atol=1e-6)


def test_generator_labels_equal_python_evaluation_of_the_expression():
    m = 7
    trees, labels = rec.expression_dataset(3, 50, m, 1, 8)
    names = {**{k: str(k) for k in range(m)}, m: "-", m + 1: "(", m + 2: ")"}
    for tree, label in zip(trees, labels):
        text = "".join(names[k] for k in rec.expression_tokens(tree, m))
        assert eval(text) % m == label  # Python's own parser and arithmetic on the bracketed string
        assert rec.expression_tokens(tree, m, brackets=False) == [k for k in rec.expression_tokens(tree, m)
                                                                   if k < m + 1]
    sizes = [rec.tree_size(t) for t in trees]
    assert min(sizes) == 1 and max(sizes) == 15
    assert len(set(labels.tolist())) == m  # all residues occur
    # structure matters: the same digits in two shapes give different labels
    assert rec.expression_value(((1, 2), 3), 5) == 1 and rec.expression_value((1, (2, 3)), 5) == 2
    tokens, lengths = rec.encode_sequences(trees[:3], m, brackets=True, length=40)
    assert tokens.shape == (3, 40) and lengths.tolist() == [len(rec.expression_tokens(t, m)) for t in trees[:3]]


def test_error_messages():
    with pytest.raises(ValueError, match=r"n_nodes=4 but tree 0 has 5 nodes; pass n_nodes >= 5"):
        rec.encode_trees([((1, 2), 3)], n_nodes=4)
    with pytest.raises(ValueError, match=r"n_levels=1 but tree 1 has height 2; pass n_levels >= 2"):
        rec.encode_trees([(1, 2), ((1, 2), 3)], n_levels=1)
    with pytest.raises(TypeError, match=r"expected a leaf token \(int >= 0\) or a pair \(left, right\), "
                                        r"got \(1, 2, 3\)"):
        rec.encode_trees([(1, 2, 3)])
    with pytest.raises(ValueError, match=r"leaf tokens must be ints >= 0, got -1"):
        rec.encode_trees([(1, -1)])
    with pytest.raises(ValueError, match=r"expected a non-empty list of trees"):
        rec.encode_trees([])
    with pytest.raises(ValueError, match=r"a leaf token is 9 but the embedding has 5 rows; init_recursive with "
                                         r"vocab_size > 9"):
        rec.node_states(params(), rec.encode_trees([(9, 1)]))
    with pytest.raises(TypeError, match=r"expected a TreeBatch \(from encode_trees\), got tuple"):
        rec.node_states(params(), ((1, 2), 3))
    with pytest.raises(ValueError, match=r"hidden must be a positive int, got 0"):
        rec.init_recursive(jax.random.key(0), 5, 0, 2)
    with pytest.raises(ValueError, match=r"modulus must be an int >= 2, got 1"):
        rec.random_expression(0, 3, 1)
    with pytest.raises(ValueError, match=r"length=3 but a sequence has 5 tokens; pass length >= 5"):
        rec.encode_sequences([((1, 2), 3)], 5, brackets=False, length=3)
    assert classic.tree_logits is rec.tree_logits


def test_example_runs_in_quick_mode():
    spec = importlib.util.spec_from_file_location("recursive_trees", os.path.join(ROOT, "examples",
                                                                                  "recursive_trees.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    trees, labels = rec.expression_dataset(0, 32, 3, 2, 3)
    tests = {"test": (trees, labels, 3)}
    acc, loss, _ = example.train_and_test("tree-RNN", 0, ((trees, labels), tests), m=3, hidden=4, steps=3, batch=8,
                                          lr=1e-2, train_leaves=(2, 3))
    assert 0 <= acc["test"] <= 1 and np.isfinite(loss)
