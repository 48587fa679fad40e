"""RBF networks: features, k-means, widths and closed-form weights against NumPy; fine-tuning; the example."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.classic import rbf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _numpy_lloyd(X, C, iters):
    """Textbook Lloyd loop, one point and one cluster at a time."""
    C = C.copy()
    for _ in range(iters):
        labels = np.array([int(np.argmin([np.sum((x - c) ** 2) for c in C])) for x in X])
        for k in range(C.shape[0]):
            members = X[labels == k]
            if len(members):
                C[k] = members.mean(axis=0)
    labels = np.array([int(np.argmin([np.sum((x - c) ** 2) for c in C])) for x in X])
    return C, labels


def test_kmeans_matches_numpy_lloyd():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        X = np.concatenate([rng.normal(m, 0.5, size=(40, 2)) for m in ((0, 0), (3, 0), (0, 3), (3, 3))])
        init = X[rng.choice(len(X), 4, replace=False)]
        for iters in (1, 3, 20):
            C, labels = rbf.kmeans(None, jnp.asarray(X), 4, iters=iters, init_centers=init)
            C_ref, labels_ref = _numpy_lloyd(X, init, iters)
            np.testing.assert_allclose(C, C_ref, rtol=1e-12)
            np.testing.assert_array_equal(labels, labels_ref)
        # an empty cluster keeps its center: a far-away starting center attracts no point
        far = np.concatenate([init[:3], [[100.0, 100.0]]])
        C, _ = rbf.kmeans(None, jnp.asarray(X), 4, iters=5, init_centers=far)
        np.testing.assert_allclose(C, _numpy_lloyd(X, far, 5)[0], rtol=1e-12)
        np.testing.assert_array_equal(C[3], [100.0, 100.0])
        # with a random start: centers are distinct data points at first, and the result is a Lloyd fixed point
        C, labels = rbf.kmeans(jax.random.key(0), jnp.asarray(X), 4, iters=50)
        np.testing.assert_allclose(_numpy_lloyd(X, np.asarray(C), 1)[0], C, rtol=1e-12)
        assert len(set(map(tuple, np.asarray(rbf.sample_centers(jax.random.key(1), jnp.asarray(X), 160))))) == 160


def test_features_and_widths_against_numpy():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        X, C = rng.normal(size=(7, 3)), rng.normal(size=(4, 3))
        s = np.array([0.5, 1.0, 1.5, 2.0])
        phi = np.array([[np.exp(-np.sum((x - c) ** 2) / (2 * sk ** 2)) for c, sk in zip(C, s)] for x in X])
        np.testing.assert_allclose(rbf.rbf_features(X, jnp.asarray(C), jnp.asarray(s)), phi, rtol=1e-12)
        np.testing.assert_allclose(rbf.rbf_features(X, jnp.asarray(C), jnp.asarray(s), normalized=True),
                                   phi / phi.sum(axis=1, keepdims=True), rtol=1e-12)
        far = rbf.rbf_features(jnp.full((1, 3), 1e3), jnp.asarray(C), jnp.asarray(s), normalized=True)
        assert bool(jnp.all(jnp.isfinite(far))) and abs(float(far.sum()) - 1) < 1e-12   # no 0 / 0 far away
        D = np.sqrt(((C[:, None] - C[None]) ** 2).sum(-1))
        np.testing.assert_allclose(rbf.rbf_widths(jnp.asarray(C)), np.full(4, D.max() / np.sqrt(8)), rtol=1e-12)
        nn = np.array([min(D[k, j] for j in range(4) if j != k) for k in range(4)])
        np.testing.assert_allclose(rbf.rbf_widths(jnp.asarray(C), "nearest", scale=2.0), 2 * nn, rtol=1e-12)


def test_closed_form_weights_match_numpy_lstsq():
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        X = rng.uniform(size=(50, 2))
        Y = np.stack([np.sin(3 * X[:, 0]) + X[:, 1], X[:, 0] * X[:, 1]], axis=1)
        for normalized in (False, True):
            p = rbf.fit_rbf(jax.random.key(3), jnp.asarray(X), jnp.asarray(Y), 6, normalized=normalized)
            Phi = np.asarray(rbf.design_matrix(X, p.centers, p.sigma, normalized=normalized))
            A_ref = np.linalg.lstsq(Phi, Y, rcond=None)[0]
            np.testing.assert_allclose(np.vstack([p.W, p.b[None]]), A_ref, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(rbf.rbf_apply(p, jnp.asarray(X), normalized=normalized), Phi @ A_ref,
                                       rtol=1e-8, atol=1e-10)
        Phi = rng.normal(size=(30, 5))
        A = rbf.solve_output_weights(jnp.asarray(Phi), jnp.asarray(Y[:30]), ridge=0.7)
        np.testing.assert_allclose(A, np.linalg.solve(Phi.T @ Phi + 0.7 * np.eye(5), Phi.T @ Y[:30]), rtol=1e-10)


def test_lms_matches_numpy_loop_and_approaches_least_squares():
    with jax.enable_x64(True):
        rng = np.random.default_rng(4)
        Phi, Y = rng.uniform(size=(20, 3)), rng.normal(size=(20, 2))
        A = np.zeros((3, 2))
        for _ in range(2):
            for phi, y in zip(Phi, Y):
                A = A + 0.1 * np.outer(phi, y - phi @ A)
        np.testing.assert_allclose(rbf.lms_output_weights(jnp.asarray(Phi), jnp.asarray(Y), eta=0.1, passes=2), A,
                                   rtol=1e-12)
        many = rbf.lms_output_weights(jnp.asarray(Phi), jnp.asarray(Y), eta=0.02, passes=20000)
        A_ls = np.linalg.lstsq(Phi, Y, rcond=None)[0]
        assert np.linalg.norm(many - A_ls) < 0.1 * np.linalg.norm(A_ls)


def test_layer_jit_grad_and_fine_tuning(key):
    net = rbf.RBFNetwork(5, 2, normalized=True)
    out_shape, p = net.init(key, (-1, 3))
    assert out_shape == (-1, 2) and p.centers.shape == (5, 3) and p.sigma.shape == (5,) and p.W.shape == (5, 2)
    X = jax.random.uniform(jax.random.key(1), (40, 3))
    np.testing.assert_allclose(jax.jit(net.apply)(p, X), net.apply(p, X), rtol=1e-6)
    Y = jnp.stack([jnp.sin(3 * X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
    p0 = rbf.fit_rbf(jax.random.key(2), X, Y, 5, centers="random", width_rule="nearest")
    g = jax.grad(lambda q: jnp.sum(rbf.rbf_apply(q, X) ** 2))(p0)
    assert all(bool(jnp.any(leaf != 0)) for leaf in jax.tree.leaves(g))       # all parameters get gradients
    p1, losses = rbf.fine_tune_rbf(p0, X, Y, steps=200)
    assert losses.shape == (200,) and float(losses[-1]) < 0.9 * float(losses[0])
    assert not np.allclose(p1.centers, p0.centers) and not np.allclose(p1.sigma, p0.sigma)


def test_bad_input():
    X, Y = jnp.zeros((4, 1)), jnp.zeros((4, 1))
    with pytest.raises(ValueError, match=r"fit_rbf: expected between 1 and n = 4 centers .*, got 5"):
        rbf.fit_rbf(jax.random.key(0), X, Y, 5)
    with pytest.raises(ValueError, match=r"kmeans: expected between 1 and n = 4 centers .*, got 0"):
        rbf.kmeans(jax.random.key(0), X, 0)
    with pytest.raises(ValueError, match=r"fit_rbf: expected targets of shape \(4, p\), got \(4,\)"):
        rbf.fit_rbf(jax.random.key(0), X, jnp.zeros(4), 2)
    with pytest.raises(ValueError, match=r"fit_rbf: expected centers in"):
        rbf.fit_rbf(jax.random.key(0), jnp.arange(4.0)[:, None], Y, 2, centers="grid")
    with pytest.raises(ValueError, match=r"rbf_widths: expected at least 2 centers"):
        rbf.rbf_widths(jnp.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"rbf_widths: expected rule in"):
        rbf.rbf_widths(jnp.zeros((2, 2)), "mean")
    with pytest.raises(ValueError, match=r"RBFNetwork: expected positive ints n_centers and n_out, got n_centers=0"):
        rbf.RBFNetwork(0, 1)
    with pytest.raises(ValueError, match=r"rbf_features: expected inputs of shape \(n, 2\), got \(3, 5\)"):
        rbf.rbf_features(jnp.zeros((3, 5)), jnp.zeros((4, 2)), jnp.ones(4))


def test_example_runs_quickly(tmp_path):
    spec = importlib.util.spec_from_file_location("rbf_example", os.path.join(ROOT, "examples",
                                                                              "rbf_logistic_map.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.run(quick=True, out=str(tmp_path))
    assert (tmp_path / "rbf_logistic_map.png").exists()
    for r in results.values():
        assert r["least_squares"] < 0.05 and r["fine_tuned"] <= r["least_squares"] * 1.01
        assert r["steps_to_0.1_error"] is not None        # chaos: the iterated prediction diverges
