"""fnn.lab.search and fnn.lab.bayes: search spaces, samplers, the Gaussian process, expected improvement, proposals.

References: the rule constructors' own signatures (inspect), unbatched runs (vmap parity), closed forms computed by
hand in NumPy float64, sklearn's GaussianProcessRegressor, scipy.stats.norm and Monte Carlo (EI), scipy.stats.qmc's
discrepancy, and random search with the same budget (Bayesian optimisation).
"""
import inspect
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import norm, qmc

from fnn import optimizers
from fnn.lab.bayes import bayes_schedule, expected_improvement, fit_gp, gp_posterior, propose
from fnn.lab.search import (
    SPACES,
    Dim,
    check_dim,
    defaults,
    describe,
    from_unit,
    grid_levels,
    make_factory,
    sample,
    space_for,
    to_unit,
)

# The one-shot learning rates this module documents for constructors that have no default (fnn's sgd, momentum,
# nesterov, adagrad, rmsprop; every optax rule), and optax.sgd's momentum (None there: 0.9, fnn's mu).
NO_DEFAULT = {"sgd": 1e-2, "momentum": 1e-2, "nesterov": 1e-2, "adagrad": 1e-2, "rmsprop": 1e-3, "adam": 1e-3,
              "adamw": 1e-3}
OPTAX_CTOR = {"optax:sgd": optax.sgd, "optax:momentum": optax.sgd, "optax:nesterov": optax.sgd,
              "optax:adagrad": optax.adagrad, "optax:rmsprop": optax.rmsprop, "optax:adam": optax.adam,
              "optax:adamw": optax.adamw}
RULES = list(SPACES)


def test_spaces_cover_the_rules():
    fnn_rules = {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "adamax", "nadam"}
    assert set(SPACES) == fnn_rules | set(OPTAX_CTOR)
    for rule in RULES:
        space = space_for(rule)
        assert space[0].name == "learning_rate" and (space[0].low, space[0].high, space[0].scale) == (1e-4, 1.0, "log")


@pytest.mark.parametrize("rule", RULES)
def test_defaults_are_the_constructors_defaults(rule):
    ctor = OPTAX_CTOR[rule] if rule.startswith("optax:") else optimizers.RULES[rule]
    params = inspect.signature(ctor).parameters
    one = defaults(space_for(rule))
    for dim in space_for(rule):
        assert dim.name in params, (rule, dim.name)
        declared = params[dim.name].default
        if declared is inspect.Parameter.empty:   # no default learning rate: the documented one-shot value
            expected = NO_DEFAULT[rule.split(":")[-1]]
        elif declared is None:                     # optax.sgd(momentum=None): the lab's 0.9 (fnn's mu)
            assert rule in ("optax:momentum", "optax:nesterov") and dim.name == "momentum"
            expected = inspect.signature(optimizers.momentum).parameters["mu"].default
        else:
            expected = declared
        assert dim.default == expected, (rule, dim.name)
        assert one[dim.name].shape == (1,) and one[dim.name].dtype == np.float32
        assert one[dim.name][0] == np.float32(expected)


def _run(factory, hp, steps=3):
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(3, 2), "b": jnp.asarray([0.5, -0.25])}
    opt = factory(**hp)
    state = opt.init(params)
    for t in range(steps):   # gradients of 0.5 |p|^2 plus a step-dependent term: a deterministic, nontrivial path
        grads = jax.tree.map(lambda p: p + 0.1 * (t + 1) * jnp.cos(p * (t + 1)), params)
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("rule", RULES)
def test_factory_runs_vmapped_over_configurations_like_unbatched_runs(rule):
    factory, space = make_factory(rule), space_for(rule)
    hp = sample(space, 3, "random", seed=1)
    hp = {k: np.concatenate([defaults(space)[k], v]) for k, v in hp.items()}   # the defaults plus 3 random configs
    batched = jax.jit(jax.vmap(lambda h: _run(factory, h)))({k: jnp.asarray(v) for k, v in hp.items()})
    for i in range(4):
        single = _run(factory, {k: float(v[i]) for k, v in hp.items()})
        for name in ("w", "b"):
            np.testing.assert_allclose(batched[name][i], single[name], rtol=2e-5, atol=1e-6, err_msg=f"{rule} {i}")


def test_optax_factories_build_the_named_optax_rule():
    hp = {"learning_rate": 0.05, "momentum": 0.8}
    got = _run(make_factory("optax:nesterov"), hp)
    want = _run(lambda **h: optax.sgd(h["learning_rate"], momentum=h["momentum"], nesterov=True), hp)
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)
    plain = _run(lambda **h: optax.sgd(h["learning_rate"], momentum=h["momentum"]), hp)
    assert not np.allclose(got["w"], plain["w"])   # nesterov really is on


def test_unknown_rule_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"make_factory: unknown rule 'adamm'; valid names: sgd, momentum"):
        make_factory("adamm")
    with pytest.raises(ValueError, match=r"space_for: unknown rule 'optax:lamb'.*optax:adamw"):
        space_for("optax:lamb")


@pytest.mark.parametrize("dim, match", [
    (Dim("lr", 1.0, 1.0, "log", 1.0), "expected low < high, got low=1.0, high=1.0"),
    (Dim("lr", 0.0, 1.0, "log", 0.1), 'a "log" scale needs low > 0, got low=0.0; use e.g. low=1e-4'),
    (Dim("b1", 0.5, 1.0, "one_minus_log", 0.9), 'needs high < 1 .* got high=1.0; use e.g. high=0.999'),
    (Dim("lr", 1e-4, 1.0, "log", 2.0), r"default must lie in \[low, high\] = \[0.0001, 1.0\], got default=2.0"),
    (Dim("lr", 1e-4, 1.0, "exp", 0.1), "scale must be one of log, linear, one_minus_log, got scale='exp'"),
])
def test_dim_validation_messages(dim, match):
    with pytest.raises(ValueError, match=match):
        check_dim(dim)
    with pytest.raises(ValueError, match=match):
        sample((dim,), 4, "random")


def test_describe_prints_one_line_per_dim():
    text = describe(space_for("adam"))
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].split()[:4] == ["learning_rate", "log", "[0.0001,", "1]"] and "default 0.001" in lines[0]
    assert "one_minus_log" in lines[1] and "default 0.9" in lines[1] and "[0.001, 0.5]" in lines[1]
    assert "default 0.999" in lines[2] and "[0.0001, 0.1]" in lines[2]


# ---------------------------------------------------------------------------------------------------------------------
# Samplers and the unit-cube maps

@pytest.mark.parametrize("method", ["random", "sobol", "halton"])
def test_sample_counts_dtype_and_range(method):
    space = space_for("adam")
    hp = sample(space, 37, method, seed=3)   # 37: not a power of 2 (Sobol' must not warn: warnings are errors)
    assert set(hp) == {"learning_rate", "b1", "b2"}
    for d in space:
        v = hp[d.name]
        assert v.shape == (37,) and v.dtype == np.float32
        assert np.all(v >= np.float32(d.low)) and np.all(v <= np.float32(d.high))
        assert len(np.unique(v)) == 37


def test_grid_is_a_full_factorial():
    space = space_for("adam")
    hp = sample(space, 16, "grid")
    levels = [np.unique(hp[d.name]) for d in space]
    assert [len(x) for x in levels] == [4, 2, 2]
    got = set(zip(*(hp[d.name].tolist() for d in space)))
    assert len(got) == 16 and got == set(itertools.product(*(x.tolist() for x in levels)))
    lr = np.log(levels[0].astype(np.float64))          # evenly spaced in the log scale: cell centres
    np.testing.assert_allclose(np.diff(lr), (math.log(1.0) - math.log(1e-4)) / 4, rtol=1e-5)
    np.testing.assert_allclose(lr[0], math.log(1e-4) + (math.log(1.0) - math.log(1e-4)) / 8, rtol=1e-5)


def test_grid_with_fewer_points_than_two_per_dim_varies_the_learning_rate():
    space = space_for("adam")
    hp = sample(space, 5, "grid")            # 5 < 2^3: levels (5, 1, 1); b1 and b2 stay at their defaults
    assert hp["learning_rate"].shape == (5,) and len(np.unique(hp["learning_rate"])) == 5
    assert np.all(hp["b1"] == np.float32(0.9)) and np.all(hp["b2"] == np.float32(0.999))


def test_grid_levels_balance_then_size():
    assert grid_levels(3, 2) == (2, 1, 1) and grid_levels(1, 7) == (7,) and grid_levels(2, 10) == (3, 3)
    for d, n in [(1, 7), (2, 20), (3, 8), (3, 30), (3, 64), (3, 100)]:
        k = grid_levels(d, n)
        feasible = [c for c in itertools.product(range(1, n + 1), repeat=d) if math.prod(c) <= n]
        top = max(min(c) for c in feasible)
        assert min(k) == top >= 2 or d == 1
        assert math.prod(k) == max(math.prod(c) for c in feasible if min(c) == top) <= n
        assert k[0] == max(k)   # spare levels go to the learning rate first


def test_random_log_scales_are_uniform_in_the_log():
    space = space_for("momentum")
    hp = sample(space, 4000, "random", seed=0)
    mean_log_lr = np.mean(np.log(hp["learning_rate"].astype(np.float64)))
    se = (math.log(1.0) - math.log(1e-4)) / math.sqrt(12 * 4000)
    assert abs(mean_log_lr - 0.5 * math.log(1e-4)) < 4 * se
    one_minus = np.log(1.0 - hp["mu"].astype(np.float64))     # 1 - mu log-uniform in [0.001, 0.5]
    se = (math.log(0.5) - math.log(1e-3)) / math.sqrt(12 * 4000)
    assert abs(np.mean(one_minus) - 0.5 * (math.log(0.5) + math.log(1e-3))) < 4 * se
    assert abs(np.median(hp["learning_rate"]) - 1e-2) < 3e-3   # log-uniform's median is the geometric midpoint


def test_quasi_random_points_have_lower_discrepancy():
    space = space_for("adam")
    random = np.mean([qmc.discrepancy(to_unit(space, sample(space, 64, "random", seed=s))) for s in range(5)])
    for method in ("sobol", "halton"):
        assert qmc.discrepancy(to_unit(space, sample(space, 64, method, seed=0))) < 0.2 * random, method


@pytest.mark.parametrize("method", ["random", "sobol", "halton"])
def test_same_seed_same_points(method):
    space = space_for("rmsprop")
    a, b, c = (sample(space, 8, method, seed=s) for s in (5, 5, 6))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a[k], c[k])


def test_unit_maps_round_trip_and_known_values():
    space = space_for("adam")
    u = np.random.default_rng(0).random((50, 3))
    hp = from_unit(space, u)
    np.testing.assert_allclose(to_unit(space, hp), u, atol=3e-4)
    again = from_unit(space, to_unit(space, hp))
    for k in hp:
        np.testing.assert_allclose(again[k], hp[k], rtol=1e-6)
    mid = from_unit(space, np.full((1, 3), 0.5))
    np.testing.assert_allclose(mid["learning_rate"], [1e-2], rtol=1e-6)
    np.testing.assert_allclose(1 - mid["b1"].astype(np.float64), [math.sqrt(0.5 * 1e-3)], rtol=1e-5)
    ends = from_unit(space, np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(ends["b2"], [0.9, 0.9999], rtol=1e-7)
    lin = (Dim("x", -2.0, 6.0, "linear", 0.0),)
    np.testing.assert_allclose(to_unit(lin, {"x": np.array([-2.0, 0.0, 6.0])})[:, 0], [0.0, 0.25, 1.0])
    with pytest.raises(ValueError, match=r"to_unit: expected a dict with the keys \['learning_rate', 'b1', 'b2'\]"):
        to_unit(space, {"learning_rate": np.ones(2)})
    with pytest.raises(ValueError, match=r"from_unit: expected u of shape \(n, 3\)"):
        from_unit(space, np.zeros((4, 2)))


# ---------------------------------------------------------------------------------------------------------------------
# The Gaussian process and expected improvement

def matern52_np(A, B, ell, var):
    out = np.empty((len(A), len(B)))
    for i, a in enumerate(A):
        for j, b in enumerate(B):
            r = math.sqrt(sum(((a[k] - b[k]) / ell[k]) ** 2 for k in range(len(a))))
            out[i, j] = var * (1 + math.sqrt(5) * r + 5 * r * r / 3) * math.exp(-math.sqrt(5) * r)
    return out


def test_gp_posterior_matches_the_closed_form():
    X = np.array([[0.1], [0.4], [0.9]])
    y = np.array([1.0, -0.5, 2.0])
    Xs = np.array([[0.0], [0.4], [0.6], [1.3]])
    ell, var, noise = [0.3], 1.7, 1e-3
    K = matern52_np(X, X, ell, var) + noise * np.eye(3)
    Ks = matern52_np(Xs, X, ell, var)
    mean = Ks @ np.linalg.solve(K, y)
    cov = matern52_np(Xs, Xs, ell, var) - Ks @ np.linalg.solve(K, Ks.T)
    mu, sd = gp_posterior(X, y, Xs, lengthscale=0.3, variance=var, noise=noise)
    assert mu.dtype == np.float64 and mu.shape == sd.shape == (4,)
    np.testing.assert_allclose(mu, mean, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(sd, np.sqrt(np.diag(cov)), rtol=1e-6, atol=1e-7)
    shifted, _ = gp_posterior(X, y + 3.0, Xs, lengthscale=0.3, variance=var, noise=noise, mean=3.0)
    np.testing.assert_allclose(shifted, mean + 3.0, rtol=1e-7)


def test_gp_posterior_matches_sklearn():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    rng = np.random.default_rng(0)
    X, Xs = rng.random((20, 2)), rng.random((30, 2))
    y = np.sin(4 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.standard_normal(20)
    ell, var, noise = np.array([0.3, 0.7]), 2.0, 1e-2
    kernel = ConstantKernel(var, "fixed") * Matern(length_scale=ell, length_scale_bounds="fixed", nu=2.5)
    ref = GaussianProcessRegressor(kernel, alpha=noise, optimizer=None).fit(X, y)
    want_mu, want_sd = ref.predict(Xs, return_std=True)
    mu, sd = gp_posterior(X, y, Xs, lengthscale=ell, variance=var, noise=noise)
    np.testing.assert_allclose(mu, want_mu, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(sd, want_sd, rtol=1e-5, atol=1e-7)


def test_gp_keeps_fnn_float32():
    gp_posterior(np.zeros((2, 1)), np.ones(2), np.zeros((1, 1)), lengthscale=1.0, variance=1.0, noise=0.1)
    assert jnp.asarray(1.0).dtype == jnp.float32   # the x64 context did not leak


def test_expected_improvement_formula_and_monte_carlo():
    rng = np.random.default_rng(1)
    mu, sd, best = rng.normal(size=50), rng.uniform(0.1, 2.0, 50), 0.3
    z = (best - mu) / sd
    np.testing.assert_allclose(expected_improvement(mu, sd, best), (best - mu) * norm.cdf(z) + sd * norm.pdf(z),
                               rtol=1e-10, atol=1e-12)
    f = 0.2 + 0.5 * rng.standard_normal(400_000)
    gains = np.maximum(best - f, 0.0)
    mc, se = gains.mean(), gains.std() / math.sqrt(len(f))
    assert abs(expected_improvement(np.array([0.2]), np.array([0.5]), best)[0] - mc) < 4 * se
    np.testing.assert_allclose(expected_improvement(np.array([1.0, -1.0]), np.zeros(2), 0.0), [0.0, 1.0])


@pytest.mark.parametrize("true_ell", [0.1, 0.4])
def test_fit_gp_recovers_the_lengthscale(true_ell):
    from sklearn.gaussian_process.kernels import Matern

    rng = np.random.default_rng(2)
    X = rng.random((60, 1))
    cov = 3.0 * Matern(length_scale=true_ell, nu=2.5)(X) + 1e-4 * np.eye(60)
    fitted = []
    for _ in range(3):
        y = 5.0 + np.linalg.cholesky(cov) @ rng.standard_normal(60)
        h = fit_gp(X, y)
        fitted.append(h["lengthscale"][0])
        assert h["noise"] >= 0 and h["variance"] > 0 and np.isfinite(h["mean"])
    assert true_ell / 2 < np.median(fitted) < true_ell * 2, fitted


def test_fit_gp_ard_finds_the_irrelevant_dimension():
    rng = np.random.default_rng(3)
    X = rng.random((30, 2))
    h = fit_gp(X, np.sin(6 * X[:, 0]))                    # varies along dim 0 only
    assert h["lengthscale"][1] > 3 * h["lengthscale"][0]
    with pytest.raises(ValueError, match=r"fit_gp: expected X of shape \(n, d\) and finite y"):
        fit_gp(X, np.full(30, np.inf))


# ---------------------------------------------------------------------------------------------------------------------
# Proposals

def bowl(hp):
    """A loss over sgd's space: quadratic in log10(lr) around 1e-2, diverged (inf) above 0.3."""
    lr = hp["learning_rate"].astype(np.float64)
    return np.where(lr > 0.3, np.inf, (np.log10(lr) + 2.0) ** 2)


def bayes_search(space, loss, budget, q, seed):
    sizes = bayes_schedule(budget, q)
    hp = sample(space, sizes[0], "sobol", seed=seed)
    scores = loss(hp)
    for size in sizes[1:]:
        new = propose(space, hp, scores, size, seed=seed)
        hp = {k: np.concatenate([hp[k], new[k]]) for k in hp}
        scores = np.concatenate([scores, loss(new)])
    return hp, scores


def test_bayes_beats_random_search_on_a_bowl():
    space = space_for("sgd")
    bo, rs = [], []
    for seed in range(4):
        hp, scores = bayes_search(space, bowl, 12, 3, seed)
        assert hp["learning_rate"].shape == (12,)
        bo.append(np.min(scores))
        rs.append(np.min(bowl(sample(space, 12, "random", seed=seed))))
    assert np.mean(bo) < 0.25 * np.mean(rs), (bo, rs)
    assert np.max(np.sqrt(bo)) < 0.1   # within a tenth of a decade of lr = 1e-2


def test_proposals_concentrate_near_the_optimum_in_two_dims():
    space = space_for("momentum")

    def loss(hp):
        lr, mu = hp["learning_rate"].astype(np.float64), hp["mu"].astype(np.float64)
        return (np.log10(lr) + 2.0) ** 2 + 0.5 * (np.log10(1 - mu) + 1.0) ** 2   # optimum: lr 1e-2, mu 0.9

    hp, scores = bayes_search(space, loss, 16, 4, seed=0)
    last = {k: v[-4:] for k, v in hp.items()}
    first = {k: v[:8] for k, v in hp.items()}
    assert np.median(loss(last)) < 0.25 * np.median(loss(first))
    assert np.min(scores) < 0.2   # the initial 8 Sobol' points alone: median loss above 1


def test_propose_handles_diverged_runs_and_is_seeded():
    space = space_for("adam")
    hp = sample(space, 8, "sobol", seed=0)
    scores = np.array([np.inf, 0.5, np.nan, 0.2, np.inf, 1.0, 0.3, np.inf])
    a = propose(space, hp, scores, 4, seed=1)
    b = propose(space, hp, scores, 4, seed=1)
    for d in space:
        assert a[d.name].shape == (4,) and a[d.name].dtype == np.float32 and np.all(np.isfinite(a[d.name]))
        assert np.all(a[d.name] >= np.float32(d.low)) and np.all(a[d.name] <= np.float32(d.high))
        np.testing.assert_array_equal(a[d.name], b[d.name])
    assert len({tuple(r) for r in to_unit(space, a).round(6)}) == 4   # the believer spreads the batch
    few = propose(space, hp, np.array([np.inf] * 7 + [0.4]), 3, seed=1)   # < 2 finite scores: Sobol' points
    assert few["b1"].shape == (3,) and np.all(few["b1"] >= np.float32(0.5))
    with pytest.raises(ValueError, match="propose: expected one score per configuration"):
        propose(space, hp, scores[:5], 2)


def test_bayes_schedule():
    assert bayes_schedule(16, 4) == [8, 4, 4]
    assert bayes_schedule(10, 4) == [5, 4, 1] and bayes_schedule(1, 4) == [1] and bayes_schedule(2, 1) == [1, 1]
    for budget, q in itertools.product(range(1, 30), range(1, 6)):
        sizes = bayes_schedule(budget, q)
        assert sum(sizes) == budget and sizes[0] == math.ceil(budget / 2) and max(sizes[1:], default=1) <= q
    with pytest.raises(ValueError, match="bayes_schedule: q must be an int >= 1, got q=0"):
        bayes_schedule(16, 0)
