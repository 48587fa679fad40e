"""The RBF article's methods against independent references: NumPy loops, lstsq, greedy refitting, closed forms."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import data
from fnn.classic import rbf
from fnn.classic import rbf_article as ra
from fnn.classic import rbf_dynamics as rd


def test_gaussian_units_match_numpy_formula():
    rng = np.random.default_rng(0)
    X, C, beta = rng.normal(size=(7, 2)), rng.normal(size=(3, 2)), np.array([0.5, 2.0, 5.0])
    with jax.enable_x64(True):
        got = np.asarray(ra.gaussian_units(X, C, beta))
        got_n = np.asarray(ra.gaussian_units(X, C, beta, normalized=True))
    want = np.array([[np.exp(-beta[k] * np.sum((x - c) ** 2)) for k, c in enumerate(C)] for x in X])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got_n, want / want.sum(1, keepdims=True), rtol=1e-12)


def _numpy_projection(R, Y, nu, passes):
    W = np.zeros((R.shape[1], Y.shape[1]))
    for _ in range(passes):
        for rho, y in zip(R, Y):
            W = W + nu * np.outer(rho, y - rho @ W) / (rho @ rho)
    return W


def test_projection_training_matches_numpy_loop_and_is_newton_for_one_unit():
    rng = np.random.default_rng(1)
    R, Y = rng.uniform(size=(30, 4)), rng.normal(size=(30, 2))
    with jax.enable_x64(True):
        for nu, passes in ((0.3, 1), (1.0, 3)):
            np.testing.assert_allclose(np.asarray(ra.projection_train(R, Y, nu=nu, passes=passes)),
                                       _numpy_projection(R, Y, nu, passes), rtol=1e-10)
        # one unit, nu = 1: Newton's step w - E'/E'' on E = (y - w rho)^2 / 2 fits the example exactly
        w0, rho, y = 0.7, 0.3, 2.0
        newton = w0 - (-(y - w0 * rho) * rho) / rho ** 2
        w = ra.projection_train(jnp.array([[rho]]), jnp.array([[y]]), nu=1.0, W0=jnp.array([[w0]]))
        assert float(w[0, 0]) == pytest.approx(newton, rel=1e-12) and float(w[0, 0]) * rho == pytest.approx(y)


def _greedy_refit(P, d, k):
    """Brute force: at each step add the candidate whose least-squares refit leaves the smallest residual."""
    chosen = []
    for _ in range(k):
        best = min((i for i in range(P.shape[1]) if i not in chosen),
                   key=lambda i: np.sum((d - P[:, chosen + [i]] @ np.linalg.lstsq(P[:, chosen + [i]], d,
                                                                                  rcond=None)[0]) ** 2))
        chosen.append(best)
    return chosen


def test_ols_selects_the_greedy_refit_sequence_and_err_sums_to_explained_fraction():
    X, Y = data.logistic_map_pairs(40, x0=0.3)
    with jax.enable_x64(True):
        X, d = np.asarray(X, np.float64), np.asarray(Y[:, 0], np.float64) + 0.05 * np.sin(20 * np.asarray(X[:, 0]))
        P = np.asarray(ra.gaussian_units(X, X, 5.0))
        res = ra.ols_select(P, d, 6)
        idx = [int(i) for i in res.indices]
        assert idx == _greedy_refit(P, d, 6)
        S = P[:, idx]
        resid = d - S @ np.linalg.lstsq(S, d, rcond=None)[0]
        np.testing.assert_allclose(float(jnp.sum(res.err)), 1 - resid @ resid / (d @ d), rtol=1e-10)
        assert len(set(idx)) == 6


def _numpy_mahalanobis(X, C, S):
    return np.array([[np.exp(-0.5 * (x - c) @ np.linalg.inv(S[k]) @ (x - c)) for k, c in enumerate(C)] for x in X])


def test_mahalanobis_units_match_numpy_loop_and_reduce_to_gaussian():
    rng = np.random.default_rng(2)
    X, C = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    A = rng.normal(size=(4, 3, 3))
    S = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(3)
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(ra.mahalanobis_units(X, C, S)), _numpy_mahalanobis(X, C, S),
                                   rtol=1e-10)
        shared = np.asarray(ra.mahalanobis_units(X, C, S[0], normalized=True))
        want = _numpy_mahalanobis(X, C, np.broadcast_to(S[0], S.shape))
        np.testing.assert_allclose(shared, want / want.sum(1, keepdims=True), rtol=1e-10)
        sigma = 0.8
        np.testing.assert_allclose(np.asarray(ra.mahalanobis_units(X, C, sigma ** 2 * np.eye(3))),
                                   np.asarray(rbf.rbf_features(X, C, jnp.full((4,), sigma))), rtol=1e-12)


def test_local_linear_fit_matches_numpy_lstsq_on_the_same_design():
    rng = np.random.default_rng(3)
    X, C, beta = rng.uniform(size=(40, 2)), rng.uniform(size=(3, 2)), 4.0
    Y = np.sin(3 * X[:, :1]) + X[:, 1:] ** 2
    rho = np.exp(-beta * ((X[:, None, :] - C[None]) ** 2).sum(-1))
    psi = rho / rho.sum(1, keepdims=True)
    D = np.array([[v for k in range(3) for v in (psi[n, k], *(psi[n, k] * (X[n] - C[k])))] for n in range(40)])
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(ra.local_linear_design(X, C, beta)), D, rtol=1e-12)
        theta = ra.fit_local_linear(X, Y, C, beta)
        want = np.linalg.lstsq(D, Y, rcond=None)[0]
        np.testing.assert_allclose(np.asarray(theta).reshape(-1, 1), want, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(np.asarray(ra.local_linear_apply(theta, X, C, beta)), D @ want, atol=1e-10)


def test_curvature_rows_match_finite_differences_and_regularized_solve_matches_augmented_lstsq():
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        C, beta, w = rng.uniform(size=(5, 1)), 5.0, rng.normal(size=5)
        G = np.linspace(0, 1, 11)[:, None]
        h = 1e-4

        def f(x):
            return np.asarray(ra.gaussian_units(x, C, beta)) @ w
        fd = (f(G + h) - 2 * f(G) + f(G - h)) / h ** 2
        np.testing.assert_allclose(np.asarray(ra.curvature_penalty(G, C, beta)) @ w, fd, rtol=1e-5, atol=1e-4)
        X = rng.uniform(size=(30, 1))
        Phi, Y = np.asarray(ra.gaussian_units(X, C, beta)), np.sin(4 * X)
        for L in (np.eye(5), np.asarray(ra.curvature_penalty(G, C, beta))):
            lam = 1e-3
            got = np.asarray(ra.regularized_weights(Phi, Y, lam, None if L.shape == (5, 5) else L))
            aug = np.linalg.lstsq(np.vstack([Phi, np.sqrt(lam) * L]), np.vstack([Y, np.zeros((len(L), 1))]),
                                  rcond=None)[0]
            np.testing.assert_allclose(got, aug, rtol=1e-8)


def test_logistic_protocol_matches_an_independent_numpy_run():
    x0 = 0.37
    for normalized, beta in ((False, 5.0), (True, 6.0)):
        x = [x0]
        for _ in range(200):
            x.append(4.0 * x[-1] * (1.0 - x[-1]))
        x = np.asarray(x, np.float32).astype(np.float64)
        X, Y, C = x[:-1], x[1:], x[:5]
        R = np.exp(-beta * (X[:, None] - C[None]) ** 2)
        R = R / R.sum(1, keepdims=True) if normalized else R
        W = _numpy_projection(R[:100], Y[:100, None], 0.3, 1)
        want = np.sqrt(np.mean((R[100:] @ W - Y[100:, None]) ** 2))
        got = ra.logistic_protocol(x0, normalized=normalized)
        assert got["projection"] == pytest.approx(want, rel=1e-3)
        assert got["least_squares"] < got["projection"]


def test_lyapunov_of_the_map_is_ln2_and_of_an_affine_map_is_exact():
    with jax.enable_x64(True):
        lam = float(rd.lyapunov_exponent(lambda x: 4.0 * x * (1.0 - x), 0.2, 5000, burn=100))
        assert abs(lam - math.log(2.0)) < 1e-2
        assert float(rd.lyapunov_exponent(lambda x: -3.0 * x, 0.1, 7)) == pytest.approx(math.log(3.0), rel=1e-12)


def test_model_lyapunov_matches_numpy_orbit_with_finite_differences():
    X, Y = data.logistic_map_pairs(100, x0=0.2)
    C, beta = X[::20], 5.0
    with jax.enable_x64(True):
        W = np.asarray(rbf.solve_output_weights(ra.gaussian_units(X, C, beta), jnp.asarray(Y, jnp.float64)))[:, 0]
        c = np.asarray(C[:, 0], np.float64)

        def f(x):
            return float(np.exp(-beta * (x - c) ** 2) @ W)
        def F(x):
            return (ra.gaussian_units(jnp.reshape(x, (1, 1)), C, beta) @ W)[0]
        got = float(rd.lyapunov_exponent(F, 0.2, 30, burn=5))     # short: rounding differences stay below 1e-6
        long = float(rd.lyapunov_exponent(F, 0.2, 3000, burn=100))
    x, logs = 0.2, []
    for t in range(35):
        if t >= 5:
            logs.append(np.log(abs((f(x + 1e-6) - f(x - 1e-6)) / 2e-6)))
        x = f(x)
    assert got == pytest.approx(np.mean(logs), abs=1e-6)
    assert 0.3 < long < 0.9             # the fitted map is chaotic too, near ln 2


def test_prediction_horizon_of_a_perturbed_orbit_matches_ln_ratio_over_lambda():
    eps0 = 1e-6
    with jax.enable_x64(True):
        steps = []
        for x0 in np.linspace(0.11, 0.89, 25):
            truth = rd.iterate_map(lambda x: 4.0 * x * (1.0 - x), x0, 40)
            pert = rd.iterate_map(lambda x: 4.0 * x * (1.0 - x), x0 + eps0, 40)
            steps.append(rd.steps_to_error(pert, truth, 0.1))
    assert -1 not in steps
    assert abs(np.mean(steps) - rd.predicted_horizon(eps0, math.log(2.0))) < 3.0     # 16.6 predicted
    assert rd.steps_to_error(np.zeros(3), np.zeros(3)) == -1


def test_control_with_exact_model_matches_numpy_loop_and_learned_model_settles():
    def exact(x, d):
        return (4.0 + d) * x * (1.0 - x)
    with jax.enable_x64(True):
        xs, ds = rd.control_orbit(exact, 0.2, 200, start=50)
    x, ref = 0.2, [0.2]
    for t in range(200):
        d = 0.0
        if t >= 50 and abs(x - 0.75) < 0.02:
            d = float(np.clip((0.75 - 4 * x * (1 - x)) / (x * (1 - x)), -0.2, 0.2))
        x = (4.0 + d) * x * (1 - x)
        ref.append(x)
    np.testing.assert_allclose(np.asarray(xs), ref, atol=1e-12)
    assert abs(ref[-1] - 0.75) < 1e-12

    Xc, Yc = rd.control_data(jax.random.key(0), 400)
    G = rd.fit_control_model(jax.random.key(1), Xc, Yc)
    xs, ds = rd.control_orbit(G, 0.2, 500, start=100)
    free, _ = rd.control_orbit(G, 0.2, 500, start=10 ** 6)
    assert float(jnp.max(jnp.abs(xs[-100:] - 0.75))) < 5e-3         # settles at the unstable fixed point
    assert float(jnp.std(free[-100:])) > 0.2                         # uncontrolled: wanders over [0, 1]
    assert float(jnp.max(jnp.abs(ds))) <= 0.2 and float(jnp.max(jnp.abs(ds[-100:]))) < 0.05   # small perturbations


def test_errors_say_what_was_expected():
    with pytest.raises(ValueError, match=r"projection_train: expected 0 < nu < 2"):
        ra.projection_train(jnp.ones((2, 2)), jnp.ones((2, 1)), nu=2.5)
    with pytest.raises(ValueError, match=r"projection_train: expected Rho \(N, K\) and Y \(N, p\)"):
        ra.projection_train(jnp.ones((2, 2)), jnp.ones(2))
    with pytest.raises(ValueError, match=r"ols_select: expected 1 <= n_select <= 3"):
        ra.ols_select(jnp.ones((4, 3)), jnp.ones(4), 4)
    with pytest.raises(ValueError, match=r"mahalanobis_units: expected inputs \(n, 2\) and Sigma of shape"):
        ra.mahalanobis_units(jnp.ones((3, 2)), jnp.ones((2, 2)), jnp.eye(3))
    with pytest.raises(ValueError, match=r"regularized_weights: expected lam >= 0"):
        ra.regularized_weights(jnp.ones((3, 2)), jnp.ones((3, 1)), -1.0)
    with pytest.raises(ValueError, match=r"curvature_penalty: expected 1-D inputs"):
        ra.curvature_penalty(jnp.ones((3, 2)), jnp.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match=r"logistic_protocol: expected centers in"):
        ra.logistic_protocol(0.2, normalized=False, centers="kmeans")
    with pytest.raises(ValueError, match=r"predicted_horizon: expected eps0, lam and threshold > 0"):
        rd.predicted_horizon(0.01, -0.1)
