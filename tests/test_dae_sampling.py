"""Tests of fnn.classic.dae_sampling: the corruption/reconstruction chain of Bengio, Yao, Alain & Vincent (2013).

References: the chain's step and key schedule against a NumPy loop with the same random draws; its stationary
distribution against the exact transition matrix T(x'|x) = sum_x~ P(x'|x~) C(x~|x) enumerated over 3-4 binary
variables (eigen-decomposition, chi-square test of independent chains' final states); Bengio et al.'s consistency
result (exact posterior => stationary distribution = data distribution) by enumeration.
"""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from fnn.classic import autoencoders
from fnn.classic import dae_sampling as ds


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ----------------------------------------------------------------------------------------- enumeration helpers
def _states(d):
    return np.array(list(itertools.product([0.0, 1.0], repeat=d)))          # (2^d, d), row i = bits of i


def _index(x):
    """Row index in _states of binary vectors x (..., d) (first bit most significant)."""
    d = x.shape[-1]
    return x.astype(jnp.int32) @ (2 ** jnp.arange(d - 1, -1, -1, dtype=jnp.int32))


def _corruption_matrix(S, rate):
    """C[x, x~] for salt-and-pepper on bits: keep with probability 1 - rate/2, flip with rate/2, per bit."""
    same = (S[:, None, :] == S[None, :, :])
    return np.prod(np.where(same, 1.0 - rate / 2, rate / 2), axis=2)


def _stationary(T):
    """The left eigenvector of T (rows: x, columns: x') for eigenvalue 1, normalized; and |second eigenvalue|."""
    w, v = np.linalg.eig(T.T)
    order = np.argsort(-np.abs(w))
    pi = np.real(v[:, order[0]])
    return pi / pi.sum(), np.abs(w[order[1]])


def _chi2(counts, p):
    n = counts.sum()
    return float(np.sum((counts - n * p) ** 2 / (n * p)))


# ------------------------------------------------------------------------------------------------ the step
def test_chain_equals_numpy_loop_with_the_same_draws():
    d, m, rate, n_chains, n_steps, thin = 6, 4, 0.3, 2, 2, 2
    ae = autoencoders.autoencoder(m)
    rng = np.random.default_rng(1)
    W, b, V, c = rng.normal(size=(d, m)), rng.normal(size=m), rng.normal(size=(m, d)), rng.normal(size=d)
    params = autoencoders.AutoencoderParams(*(jnp.asarray(p, jnp.float32) for p in (W, b, V, c)))
    corrupt = functools.partial(ds.salt_and_pepper_noise, rate=rate)
    x0 = rng.uniform(size=(n_chains, d)).astype(np.float32)
    key = jax.random.key(5)
    res = ds.dae_chain(key, x0, corrupt, ds.dae_reconstruction(ae, params), n_steps, thin=thin)
    assert res.states.shape == (n_chains, n_steps, d) and res.recon.shape == (n_chains, n_steps, d)

    @jax.jit
    def draws(key_i, t):       # the documented schedule: k_c, k_s = split(fold_in(key_i, t)); k1, k2 = split(k_c)
        k_c, k_s = jax.random.split(jax.random.fold_in(key_i, t))
        k1, k2 = jax.random.split(k_c)
        return (jax.random.uniform(k1, (d,)) < rate, jax.random.bernoulli(k2, 0.5, (d,)),
                jax.random.uniform(k_s, (d,)))

    for i, key_i in enumerate(jax.random.split(key, n_chains)):
        x = x0[i].astype(np.float64)
        for t in range(1, n_steps * thin + 1):
            hit, salt, u = (np.asarray(a, np.float64) for a in draws(key_i, t))
            x_tilde = np.where(hit > 0, salt, x)
            r = _sigmoid(_sigmoid(x_tilde @ W + b) @ V + c)
            x = (u < r).astype(np.float64)
            if t % thin == 0:
                np.testing.assert_allclose(res.recon[i, t // thin - 1], r, rtol=1e-5, atol=1e-6)
                np.testing.assert_array_equal(res.states[i, t // thin - 1], x)


def test_same_key_same_chain_and_mean_variant():
    corrupt = functools.partial(ds.salt_and_pepper_noise, rate=0.5)
    rec = lambda xt: 0.2 + 0.6 * xt[::-1]                                   # noqa: E731
    x0 = jnp.zeros((4, 5))
    a = ds.dae_chain(jax.random.key(0), x0, corrupt, rec, 6)
    b = ds.dae_chain(jax.random.key(0), x0, corrupt, rec, 6)
    c = ds.dae_chain(jax.random.key(1), x0, corrupt, rec, 6)
    np.testing.assert_array_equal(a.states, b.states)
    assert not np.array_equal(a.states, c.states)
    assert set(np.unique(a.states)) <= {0.0, 1.0}
    mean = ds.dae_chain(jax.random.key(0), x0, corrupt, rec, 6, sample="mean")
    np.testing.assert_array_equal(mean.states, mean.recon)                   # x_{t+1} = r
    assert np.all((np.asarray(mean.states) >= 0.2) & (np.asarray(mean.states) <= 0.8))


# ------------------------------------------------------------------------------------- stationary distribution
def test_stationary_distribution_of_factorial_bernoulli_chain_matches_enumeration():
    d, rate, n_chains, burn = 4, 0.5, 4000, 30
    rng = np.random.default_rng(0)
    A, a = 2.0 * rng.normal(size=(d, d)), rng.normal(size=d)
    S = _states(d)
    R = _sigmoid(S @ A + a)                                                 # (x~, j): the means of P(x'|x~)
    P_rec = np.prod(np.where(S[None, :, :] == 1.0, R[:, None, :], 1.0 - R[:, None, :]), axis=2)   # [x~, x']
    T = _corruption_matrix(S, rate) @ P_rec                                 # T[x, x'] = sum_x~ C(x~|x) P(x'|x~)
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-12)
    pi, lam2 = _stationary(T)
    assert lam2 ** burn < 1e-6                                              # the chains forget x0 = 0 by step 30
    corrupt = functools.partial(ds.salt_and_pepper_noise, rate=rate)
    rec = lambda xt: jax.nn.sigmoid(xt @ jnp.asarray(A, jnp.float32) + jnp.asarray(a, jnp.float32))  # noqa: E731
    res = ds.dae_chain(jax.random.key(0), jnp.zeros((n_chains, d)), corrupt, rec, 1, thin=burn)
    counts = np.bincount(np.asarray(_index(res.states[:, -1])), minlength=2 ** d)
    assert _chi2(counts, pi) < stats.chi2.ppf(0.999, 2 ** d - 1)
    # power: the stationary law of the same reconstruction under a weaker corruption is rejected
    pi_other, _ = _stationary(_corruption_matrix(S, 0.1) @ P_rec)
    assert _chi2(counts, pi_other) > 2 * stats.chi2.ppf(0.999, 2 ** d - 1)


def test_exact_posterior_makes_the_data_distribution_stationary():
    d, rate, n_chains, burn = 3, 0.6, 4000, 20
    S = _states(d)
    P = np.random.default_rng(1).dirichlet(np.ones(2 ** d))               # the data distribution
    C = _corruption_matrix(S, rate)                                         # C[x, x~]
    post = C * P[:, None]
    post = (post / post.sum(axis=0, keepdims=True)).T                       # post[x~, x] = P(x | x~) ∝ C(x~|x) P(x)
    T = C @ post
    pi, lam2 = _stationary(T)
    np.testing.assert_allclose(pi, P, atol=1e-10)                           # Bengio et al. 2013, Theorem 1
    np.testing.assert_allclose(P @ T, P, atol=1e-12)
    # control: the factorial (mean-field) reconstruction with the posterior's marginals is not consistent
    R = post @ S                                                            # (x~, j): P(x_j = 1 | x~)
    P_fact = np.prod(np.where(S[None, :, :] == 1.0, R[:, None, :], 1.0 - R[:, None, :]), axis=2)
    assert 0.5 * np.abs(_stationary(C @ P_fact)[0] - P).sum() > 0.2        # measured 0.248
    # the sampled chain, with a categorical draw over the enumerated states
    log_post, S_j = jnp.log(jnp.asarray(post, jnp.float32)), jnp.asarray(S, jnp.float32)
    rec = lambda xt: log_post[_index(xt)]                                   # noqa: E731
    draw = lambda k, logits: S_j[jax.random.categorical(k, logits)]        # noqa: E731
    corrupt = functools.partial(ds.salt_and_pepper_noise, rate=rate)
    res = ds.dae_chain(jax.random.key(2), jnp.ones((n_chains, d)), corrupt, rec, 1, thin=burn, sample=draw)
    assert lam2 ** burn < 1e-6
    counts = np.bincount(np.asarray(_index(res.states[:, -1])), minlength=2 ** d)
    assert _chi2(counts, P) < stats.chi2.ppf(0.999, 2 ** d - 1)


# -------------------------------------------------------------------------------------------- quality measures
def test_nearest_distance_and_class_histogram_match_numpy():
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    ref = np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(ds.nearest_distance(A, B, block=3), ref, rtol=1e-4)
    p = rng.dirichlet(np.ones(4), size=50)
    h = ds.class_histogram(p)
    counts = np.bincount(p.argmax(1), minlength=4)
    np.testing.assert_array_equal(h["counts"], counts)
    assert h["confidence"] == pytest.approx(p.max(1).mean(), rel=1e-5)
    assert h["entropy"] == pytest.approx(stats.entropy(counts / 50), rel=1e-5)
    assert h["chi2"] == pytest.approx(stats.chisquare(counts).statistic, rel=1e-5)


def test_errors_by_message():
    corrupt, rec = (lambda k, x: x), (lambda xt: xt)
    with pytest.raises(ValueError, match=r"expected rate .* in \[0, 1\], got 1.5"):
        ds.salt_and_pepper_noise(jax.random.key(0), jnp.zeros(3), 1.5)
    with pytest.raises(ValueError, match=r"expected sample in \['bernoulli', 'mean'\] or a function .* got 'gauss'"):
        ds.dae_chain(jax.random.key(0), jnp.zeros((2, 3)), corrupt, rec, 3, sample="gauss")
    with pytest.raises(ValueError, match=r"expected a positive int n_steps, got n_steps=0"):
        ds.dae_chain(jax.random.key(0), jnp.zeros((2, 3)), corrupt, rec, 0)
    with pytest.raises(ValueError, match=r"expected a positive int thin, got thin=1.5"):
        ds.dae_chain(jax.random.key(0), jnp.zeros((2, 3)), corrupt, rec, 2, thin=1.5)
    with pytest.raises(ValueError, match=r"shape \(n_chains, d\), got shape \(3,\); use x0\[None\]"):
        ds.dae_chain(jax.random.key(0), jnp.zeros(3), corrupt, rec, 2)
    with pytest.raises(ValueError, match=r"same width, got shapes \(2, 3\) and \(4, 5\)"):
        ds.nearest_distance(jnp.zeros((2, 3)), jnp.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"shape \(n, K\), got shape \(4,\)"):
        ds.class_histogram(jnp.zeros(4))

