"""RBMs (fnn/classic/rbm.py) and DBNs (fnn/classic/dbn.py) against enumeration of every state of a tiny RBM.

The references are NumPy loops over all 2^(4+3) joint states (v, h) of a 4-visible, 3-hidden RBM: the energy, the
free energy -log sum_h exp(-E), log Z, the conditionals, the exact log-likelihood gradient (data term minus model
expectation) and the pseudo-likelihood from its definition.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import optimizers as opt
from fnn.classic import dbn, pretraining, rbm
from fnn.layers import DenseParams

D, M = 4, 3
STATES_V = np.array(list(itertools.product((0.0, 1.0), repeat=D)))
STATES_H = np.array(list(itertools.product((0.0, 1.0), repeat=M)))
DATA = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1], [1, 1, 0, 0], [0, 1, 1, 1]], np.float32)


@pytest.fixture(scope="module")
def params():
    k1, k2, k3 = jax.random.split(jax.random.key(7), 3)
    return rbm.RBMParams(jax.random.normal(k1, (D, M)), 0.5 * jax.random.normal(k2, (D,)),
                         0.5 * jax.random.normal(k3, (M,)))


def np_params(p):
    return tuple(np.asarray(x, np.float64) for x in p)


def np_energy(p, v, h):
    W, a, b = np_params(p)
    return -(a @ v) - (b @ h) - v @ W @ h


def np_free_energy(p, v):
    return -np.log(sum(np.exp(-np_energy(p, v, h)) for h in STATES_H))


def np_joint(p):
    """p(v, h) for every joint state, as a (2^D, 2^M) table."""
    E = np.array([[np_energy(p, v, h) for h in STATES_H] for v in STATES_V])
    w = np.exp(-E)
    return w / w.sum(), np.log(w.sum())


def test_energy_free_energy_and_partition_by_enumeration(params):
    V = jnp.asarray(STATES_V, jnp.float32)
    H = jnp.asarray(STATES_H[[1, 5, 7, 2, 0, 3] * 3][:16], jnp.float32)
    got = jax.jit(lambda p: (rbm.free_energy(p, V), rbm.log_partition(p), rbm.energy(p, V, H),
                             rbm.log_likelihood(p, DATA)))(params)
    F = np.array([np_free_energy(params, v) for v in STATES_V])
    np.testing.assert_allclose(got[0], F, rtol=1e-5, atol=1e-5)
    _, logZ = np_joint(params)
    np.testing.assert_allclose(float(got[1]), logZ, rtol=1e-5)
    E = [np_energy(params, v, h) for v, h in zip(STATES_V, np.asarray(H))]
    np.testing.assert_allclose(got[2], E, rtol=1e-5, atol=1e-5)
    ll = np.mean([-np_free_energy(params, v) for v in DATA]) - logZ
    np.testing.assert_allclose(float(got[3]), ll, rtol=1e-5)


def test_conditionals_against_numpy_and_enumeration(params):
    W, a, b = np_params(params)
    ph, pv, (h, p) = jax.jit(lambda q: (rbm.hidden_probs(q, STATES_V), rbm.visible_probs(q, STATES_H),
                                        rbm.sample_hidden(jax.random.key(0), q, jnp.ones((20000, D)))))(params)
    np.testing.assert_allclose(ph, 1 / (1 + np.exp(-(STATES_V @ W + b))), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pv, 1 / (1 + np.exp(-(STATES_H @ W.T + a))), rtol=1e-5, atol=1e-6)
    joint, _ = np_joint(params)   # p(h_j = 1 | v) = sum_h h_j p(v, h) / p(v)
    np.testing.assert_allclose(ph, (joint @ STATES_H) / joint.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.mean(np.asarray(h), 0), np.asarray(p[0]), atol=0.015)


def exact_nll_gradient(p, V):
    """-d mean log p(v)/d theta = -(E_data[v h^T] - E_model[v h^T]), every expectation by enumeration."""
    W, a, b = np_params(p)
    joint, _ = np_joint(p)
    model = (np.einsum("vh,vi,hj->ij", joint, STATES_V, STATES_H), joint.sum(1) @ STATES_V, joint.sum(0) @ STATES_H)
    data_W, data_a, data_b = 0, 0, 0
    for v in np.asarray(V, np.float64):
        w = np.exp([-np_energy(p, v, h) for h in STATES_H])
        Eh = (w / w.sum()) @ STATES_H
        data_W, data_a, data_b = data_W + np.outer(v, Eh), data_a + v, data_b + Eh
    n = len(V)
    return [-(d / n - m) for d, m in zip((data_W, data_a, data_b), model)]


def test_exact_gradient_equals_jax_grad_of_log_likelihood(params):
    ref = exact_nll_gradient(params, DATA)
    g, jg, fg = jax.jit(lambda p: (jax.grad(lambda p: -rbm.log_likelihood(p, DATA))(p),
                                   jax.grad(lambda p: jnp.mean(rbm.free_energy(p, DATA)))(p),
                                   rbm.free_energy_grad(p, DATA)))(params)
    for got, want in zip(g, ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # the data term alone is the free energy's gradient (the positive phase of CD)
    for got, want in zip(fg, jg):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gibbs_cd_k_and_pcd_approach_the_model_and_cd_1_does_not(params):
    ref = exact_nll_gradient(params, DATA)
    V = np.tile(DATA, (100, 1))   # 600 chains per estimate, R = 16 estimates
    noise = np.random.default_rng(1).integers(0, 2, (600, D)).astype(np.float32)

    def three(seed):
        k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
        return (rbm.cd_gradient(k1, params, V, k=20), rbm.pcd_gradient(k2, params, V, noise, k=20)[0],
                rbm.cd_gradient(k3, params, V, k=1))

    R = 16
    chains = np.zeros((20000, D), np.float32)   # and 20,000 Gibbs chains of 30 steps, in the same compiled call
    (cd20, pcd20, cd1), V30 = jax.jit(lambda: (jax.vmap(three)(np.arange(R)),
                                               rbm.gibbs_chain(jax.random.key(5), params, chains, 30)[0]))()
    joint, _ = np_joint(params)   # Gibbs sampling reaches the model's p(v): total variation distance < 0.02
    freq = np.bincount(np.asarray(V30, int) @ (2 ** np.arange(D)[::-1]), minlength=2 ** D) / 20000
    assert 0.5 * np.abs(freq - joint.sum(1)).sum() < 0.02
    for est in (cd20, pcd20):
        for x, want in zip(est, ref):
            mean, se = np.mean(x, 0), np.std(x, 0) / np.sqrt(R)
            assert np.all(np.abs(mean - want) < 4 * se + 2e-3), (mean, want, se)
    z = max(np.max(np.abs(np.mean(x, 0) - want) / (np.std(x, 0) / np.sqrt(R) + 1e-6)) for x, want in zip(cd1, ref))
    assert z > 10   # CD-1 is biased: its chains have not left the data yet


def test_pcd_returns_the_advanced_chains(params):
    noise = (np.arange(7 * D).reshape(7, D) % 3 == 0).astype(np.float32)
    chains, chains2 = jax.jit(lambda: (rbm.pcd_gradient(jax.random.key(2), params, DATA, noise, k=2)[1],
                                       rbm.gibbs_chain(jax.random.key(2), params, noise, 2)[0]))()
    np.testing.assert_array_equal(chains, chains2)


def test_pseudo_likelihood_against_its_definition(params):
    want = []
    for v in DATA.astype(np.float64):
        s = 0.0
        for i in range(D):
            u = v.copy()
            u[i] = 1 - u[i]
            pv, pu = np.exp(-np_free_energy(params, v)), np.exp(-np_free_energy(params, u))
            s += np.log(pv / (pv + pu))
        want.append(s)
    pl, rec_got = jax.jit(lambda p: (rbm.pseudo_likelihood(p, DATA), rbm.reconstruction_error(p, DATA)))(params)
    np.testing.assert_allclose(float(pl), np.mean(want), rtol=1e-5)
    W, a, b = np_params(params)
    rec = np.mean(np.sum((DATA - 1 / (1 + np.exp(-(1 / (1 + np.exp(-(DATA @ W + b))) @ W.T + a)))) ** 2, 1))
    np.testing.assert_allclose(float(rec_got), rec, rtol=1e-5)


def test_dbn_training_raises_the_exact_likelihood_loads_into_an_mlp_and_samples():
    X = np.tile(DATA, (8, 1))   # layer 1 is a train_rbm run (CD-1) on the 4-unit data
    rbms, hist = dbn.pretrain_dbn(jax.random.key(0), X, [M], optimizer=opt.adam(0.1), epochs=100, batch_size=12)
    rbms = rbms + [rbm.init_rbm(jax.random.key(4), M, 2, scale=1.0)]   # a second layer, untrained (compiles less)
    p0 = rbm.init_rbm(jax.random.split(jax.random.key(0), 3)[1], D, M, data=X)   # pretrain_dbn's first init
    ll0, ll1 = map(float, jax.jit(lambda p, q: (rbm.log_likelihood(p, X), rbm.log_likelihood(q, X)))(p0, rbms[0]))
    q = np.array([2, 1, 1, 1, 1]) / 6
    assert ll1 > ll0 + 0.5 and ll1 > q @ np.log(q) - 0.4, (ll0, ll1, q @ np.log(q))   # the best is -H(data)
    assert hist[0]["pseudo_likelihood"].shape == (100,)
    assert hist[0]["reconstruction"][-1] < hist[0]["reconstruction"][0]
    shapes = [(D, M), (M, 2), (2, 2)]   # the params of stack_encoders(key, D, [M, 2], 2), built without compiling
    params = pretraining.load_encoders(sum(((DenseParams(np.ones(s), np.ones(s[1])), ()) for s in shapes), ())[:-1],
                                       rbms)
    np.testing.assert_allclose(params[0].W, rbms[0].W)
    W, b = np.asarray(params[0].W, np.float64), np.asarray(params[0].b, np.float64)
    first = 1 / (1 + np.exp(-(X @ W + b)))   # the MLP's first hidden layer
    V, P, trace, ph = jax.jit(lambda r: (*dbn.dbn_sample(jax.random.key(2), r, 5, 4, trace=True),
                                         rbm.hidden_probs(r[0], X)))(rbms)
    np.testing.assert_allclose(first, ph, rtol=1e-5)
    V, P = np.asarray(V), np.asarray(P)
    assert V.shape == P.shape == (5, D) and trace.shape == (4, 5, D)
    assert np.all((V == 0) | (V == 1)) and np.all((P > 0) & (P < 1))


def test_bad_input_errors(params):
    with pytest.raises(ValueError, match="positive number of units, got n_hidden=0"):
        rbm.init_rbm(jax.random.key(0), 4, 0)
    with pytest.raises(ValueError, match=r"expected data of shape \(n, 4\), got \(6, 5\)"):
        rbm.cd_gradient(jax.random.key(0), params, jnp.zeros((6, 5)))
    with pytest.raises(ValueError, match="expected k >= 1 Gibbs steps, got k=0"):
        rbm.cd_gradient(jax.random.key(0), params, DATA, k=0)
    with pytest.raises(ValueError, match=r"shape \(n, 4\), got \(4,\); pass a batch"):
        rbm.free_energy(params, jnp.zeros(4))
    with pytest.raises(ValueError, match="at most 20 visible units"):
        rbm.log_partition(rbm.init_rbm(jax.random.key(0), 21, 2))
    with pytest.raises(ValueError, match="batch_size <= n = 6, got batch_size=7"):
        rbm.train_rbm(jax.random.key(0), params, DATA, batch_size=7)
    with pytest.raises(ValueError, match=r"positive hidden sizes, got \[3, 0\]"):
        dbn.pretrain_dbn(jax.random.key(0), DATA, [3, 0])
