"""Autoencoders and greedy pre-training: shapes, jit, gradients against independent references, denoising works."""
import functools
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn.classic import autoencoders as A
from fnn.classic import pretraining as P
from fnn.layers import DenseParams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("tied, m", [(False, 3), (True, 12)])   # undercomplete and overcomplete on d = 7
def test_shapes_jit_grad(key, tied, m):
    ae = A.autoencoder(m, tied=tied)
    out_shape, p = ae.init(key, (-1, 7))
    assert out_shape == (-1, 7)
    assert p.W.shape == (7, m) and p.b.shape == (m,) and p.c.shape == (7,)
    assert (p.V is None) == tied and (tied or p.V.shape == (m, 7))
    x = jax.random.uniform(jax.random.key(1), (5, 7))
    assert ae.encode(p, x).shape == (5, m)
    r = ae.apply(p, x)
    assert r.shape == (5, 7) and bool(jnp.all((r > 0) & (r < 1)))
    np.testing.assert_allclose(jax.jit(ae.apply)(p, x), r, rtol=1e-6)
    init_fun, apply_fun = ae                       # still unpacks like a stax pair
    assert apply_fun is ae.apply
    objective = A.autoencoder_objective(ae, noise=functools.partial(A.masking_noise, rate=0.2), sparsity="kl",
                                        sparsity_weight=0.1, contractive_weight=0.1)
    g = jax.jit(jax.grad(objective))(p, x, jax.random.key(2))
    assert jax.tree.structure(g) == jax.tree.structure(p)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(g))


def test_tied_gradient_is_sum_of_both_uses():
    """d/dW L(W, W^T) = dL/dW_enc + (dL/dV_dec)^T, each use's gradient computed separately (untied copy)."""
    with jax.enable_x64(True):
        ks = jax.random.split(jax.random.key(3), 3)
        x = jax.random.uniform(ks[0], (6, 5), jnp.float64)
        tied = A.autoencoder(4, tied=True)
        untied = A.autoencoder(4, tied=False)
        _, p = tied.init(ks[1], (-1, 5))
        p = jax.tree.map(lambda a: a.astype(jnp.float64), p)
        p = p._replace(b=0.1 * jax.random.normal(ks[2], (4,), jnp.float64))
        for recon in ("bce", "mse"):
            g_tied = jax.grad(A.autoencoder_objective(tied, reconstruction=recon))(p, x, None)
            q = A.AutoencoderParams(p.W, p.b, p.W.T, p.c)         # the same function with the two uses untied
            g_untied = jax.grad(A.autoencoder_objective(untied, reconstruction=recon))(q, x, None)
            np.testing.assert_allclose(g_tied.W, g_untied.W + g_untied.V.T, rtol=1e-12, atol=1e-14)
            assert not np.allclose(g_untied.W, 0) and not np.allclose(g_untied.V, 0)
            # and against hand-written backprop (squared error, NumPy): dW = X^T dZ + dA^T H
            if recon == "mse":
                X, W, b, c = map(np.asarray, (x, p.W, p.b, p.c))
                H = _sigmoid(X @ W + b)
                R = _sigmoid(H @ W.T + c)
                dA = 2 * (R - X) * R * (1 - R) / X.shape[0]
                dZ = (dA @ W) * H * (1 - H)
                np.testing.assert_allclose(g_tied.W, X.T @ dZ + dA.T @ H, rtol=1e-10)


def test_contractive_penalty_matches_finite_differences_and_closed_form():
    with jax.enable_x64(True):
        ae = A.autoencoder(3)
        _, p = ae.init(jax.random.key(4), (-1, 4))
        p = jax.tree.map(lambda a: None if a is None else a.astype(jnp.float64), p)
        x = np.asarray(jax.random.uniform(jax.random.key(5), (5, 4), jnp.float64))
        got = float(A.contractive_penalty(lambda v: ae.encode(p, v), jnp.asarray(x)))
        f = lambda v: np.asarray(ae.encode(p, jnp.asarray(v)))       # noqa: E731
        eps, total = 1e-6, 0.0
        for n in range(x.shape[0]):
            for i in range(x.shape[1]):
                e = np.zeros(4)
                e[i] = eps
                col = (f(x[n] + e) - f(x[n] - e)) / (2 * eps)     # dh/dx_i at x_n, central difference
                total += np.sum(col ** 2)
        np.testing.assert_allclose(got, total / x.shape[0], rtol=1e-7)
        H = _sigmoid(x @ np.asarray(p.W) + np.asarray(p.b))
        closed = np.mean(np.sum((H * (1 - H)) ** 2 * np.sum(np.asarray(p.W) ** 2, axis=0), axis=1))
        np.testing.assert_allclose(got, closed, rtol=1e-10)


def test_losses_and_penalties_against_numpy():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        a, x = rng.normal(size=(4, 6)) * 3, rng.uniform(size=(4, 6))
        r = _sigmoid(a)
        np.testing.assert_allclose(A.bernoulli_cross_entropy(jnp.asarray(a), jnp.asarray(x)),
                                   np.mean(np.sum(-(x * np.log(r) + (1 - x) * np.log(1 - r)), axis=1)), rtol=1e-12)
        np.testing.assert_allclose(A.squared_error(jnp.asarray(r), jnp.asarray(x)),
                                   np.mean(np.sum((r - x) ** 2, axis=1)), rtol=1e-12)
        h, rho = rng.uniform(0.01, 0.99, size=(8, 5)), 0.1
        q = h.mean(axis=0)
        kl = np.sum(rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q)))
        np.testing.assert_allclose(A.kl_sparsity(jnp.asarray(h), rho), kl, rtol=1e-12)
        np.testing.assert_allclose(A.l1_sparsity(jnp.asarray(h - 0.5)), np.mean(np.sum(np.abs(h - 0.5), 1)))
    big = jnp.array([[-200.0, 200.0]])
    assert bool(jnp.isfinite(A.bernoulli_cross_entropy(big, jnp.array([[1.0, 0.0]]))))   # no log(0)


def test_objective_adds_the_weighted_penalties(key):
    ae = A.autoencoder(4, output="linear")
    _, p = ae.init(key, (-1, 6))
    x = jax.random.uniform(jax.random.key(7), (10, 6))
    base = A.autoencoder_objective(ae, reconstruction="mse")(p, x, None)
    h = ae.encode(p, x)
    full = A.autoencoder_objective(ae, reconstruction="mse", sparsity="l1", sparsity_weight=0.3,
                                   contractive_weight=0.2)(p, x, None)
    expected = base + 0.3 * A.l1_sparsity(h) + 0.2 * A.contractive_penalty(lambda v: ae.encode(p, v), x)
    np.testing.assert_allclose(full, expected, rtol=1e-6)
    np.testing.assert_allclose(base, np.mean(np.sum((np.asarray(ae.apply(p, x)) - np.asarray(x)) ** 2, 1)),
                               rtol=1e-6)


def test_noise_statistics():
    x = jnp.ones((400, 500))
    masked = A.masking_noise(jax.random.key(8), x, 0.3)
    frac, sd = float(jnp.mean(masked == 0)), np.sqrt(0.3 * 0.7 / x.size)
    assert abs(frac - 0.3) < 5 * sd
    assert set(np.unique(np.asarray(masked)).tolist()) == {0.0, 1.0}
    g = A.gaussian_noise(jax.random.key(9), jnp.zeros((400, 500)), 0.5) / 0.5
    assert abs(float(jnp.mean(g))) < 5 / np.sqrt(g.size) and abs(float(jnp.std(g)) - 1) < 0.01


def test_denoising_autoencoder_lowers_reconstruction_error():
    """Trained on masked inputs it reconstructs held-out masked inputs better than before, and than the input."""
    rng = np.random.default_rng(1)
    protos = (rng.uniform(size=(5, 30)) > 0.5).astype(np.float32)   # binary patterns, 5 prototypes
    X = protos[rng.integers(0, 5, 600)]
    Xtr, Xte = X[:500], X[500:]
    ae = A.autoencoder(10)
    _, p0 = ae.init(jax.random.key(10), Xtr.shape)
    noise = functools.partial(A.masking_noise, rate=0.3)
    objective = A.autoencoder_objective(ae, noise=noise)
    p, losses = A.train_autoencoder(jax.random.key(11), ae, p0, Xtr, objective=objective,
                                    optimizer=optax.adam(1e-2), epochs=30, batch_size=50)
    assert losses[-1] < 0.5 * losses[0]
    Xc = noise(jax.random.key(12), Xte)
    err = lambda params: float(jnp.mean((ae.apply(params, Xc) - Xte) ** 2))   # noqa: E731
    assert err(p) < 0.3 * err(p0)
    assert err(p) < 0.5 * float(jnp.mean((Xc - Xte) ** 2))          # it denoises: better than the corrupted input


def test_pretrain_stack_and_stack_encoders(key):
    X = jax.random.uniform(key, (64, 9))
    params, losses = P.pretrain_stack(jax.random.key(13), X, [6, 4], epochs=3, batch_size=16,
                                      optimizer=optax.adam(1e-2))
    assert [p.W.shape for p in params] == [(9, 6), (6, 4)] and all(p.V is None for p in params)
    assert all(l.shape == (3,) and l[-1] < l[0] for l in losses)
    model, random_p = P.stack_encoders(jax.random.key(14), 9, [6, 4], 3)
    mp = P.load_encoders(random_p, params)
    for k in (0, 1):
        assert isinstance(mp[2 * k], DenseParams)
        np.testing.assert_array_equal(mp[2 * k].W, params[k].W)
        np.testing.assert_array_equal(mp[2 * k].b, params[k].b)
    np.testing.assert_array_equal(mp[4].W, random_p[4].W)             # same output layer as the control
    h2 = jax.nn.sigmoid(jax.nn.sigmoid(X @ params[0].W + params[0].b[None]) @ params[1].W + params[1].b[None])
    np.testing.assert_allclose(model.apply(mp, X), h2 @ mp[4].W + mp[4].b[None], rtol=1e-5, atol=1e-6)
    y = jnp.arange(64) % 3
    _, ft_losses = P.fine_tune(jax.random.key(15), model, mp, X, y, epochs=20, batch_size=16,
                               optimizer=optax.adam(1e-2))
    assert ft_losses[-1] < ft_losses[0]


def test_bad_input():
    with pytest.raises(ValueError, match=r"autoencoder: expected a positive number of hidden units, got n_hidden=0"):
        A.autoencoder(0)
    with pytest.raises(ValueError, match=r"pretrain_stack: expected a non-empty list of positive hidden sizes, got "
                                         r"\[8, 0\]"):
        P.pretrain_stack(jax.random.key(0), jnp.zeros((4, 3)), [8, 0])
    with pytest.raises(ValueError, match=r"stack_encoders: expected .* got \[\]"):
        P.stack_encoders(jax.random.key(0), 3, [], 2)
    with pytest.raises(ValueError, match=r"autoencoder_objective: reconstruction='bce' needs a sigmoid decoder"):
        A.autoencoder_objective(A.autoencoder(2, output="linear"))
    with pytest.raises(ValueError, match=r"masking_noise: expected rate .* in \[0, 1\), got 1.0"):
        A.masking_noise(jax.random.key(0), jnp.ones(3), 1.0)
    ae = A.autoencoder(2)
    _, p = ae.init(jax.random.key(0), (-1, 3))
    with pytest.raises(ValueError, match=r"autoencoder: expected inputs with last dimension 3, got shape \(2, 4\)"):
        ae.apply(p, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"load_encoders: expected pretrained encoder weights of shapes \[\(5, 2\)\], "
                                         r"got \[\(3, 2\)\]"):
        P.stack_encoders(jax.random.key(0), 5, [2], 2, pretrained=[p])


def test_examples_run_quickly(tmp_path, fashion_mnist):
    mse = _example("denoising_autoencoder").run(quick=True, out=str(tmp_path))
    assert (tmp_path / "denoising_autoencoder.png").exists()
    assert set(mse) == {"corrupted input", "plain AE", "denoising AE"} and all(np.isfinite(list(mse.values())))
    acc = _example("pretraining").run(quick=True)
    assert all(0.0 <= a <= 1.0 for v in acc.values() for a in v) and len(acc["pre-trained"]) == 1
