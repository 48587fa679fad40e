"""fnn.lab.stats against independent references: SciPy (bootstrap, wilcoxon, ecdf), enumeration, loops, hand sums."""
import itertools

import numpy as np
import pytest
import scipy.stats

from fnn.lab import stats

# ---------------------------------------------------------------------------------------------------------------------
# bootstrap_ci


def test_bootstrap_mean_matches_scipy_percentile_interval():
    x = np.random.default_rng(1).normal(size=30)
    _, low, high = stats.bootstrap_ci(x, np.mean, n_resamples=20_000, seed=3)
    ref = scipy.stats.bootstrap((x,), np.mean, method="percentile", n_resamples=20_000, rng=7).confidence_interval
    # Monte-Carlo sd of a 2.5% quantile of the bootstrap mean: sqrt(q (1-q) / B) / phi(1.96) * s / sqrt(n)
    # = 0.0011 / 0.058 * s / sqrt(n) ~ 0.019 s / sqrt(n); two independent estimates: allow 5 sd of the difference.
    atol = 5 * np.sqrt(2) * 0.019 * x.std() / np.sqrt(x.size)
    np.testing.assert_allclose([low, high], [ref.low, ref.high], atol=atol)


def test_bootstrap_median_matches_scipy_up_to_one_order_statistic():
    # n odd: every bootstrap median is a data point, so the bounds fall between consecutive order statistics; two
    # Monte-Carlo runs may pick neighbouring ones (spacing ~ s / (n phi) is far above the sd of the quantile's rank).
    x = np.sort(np.random.default_rng(2).normal(size=31))
    est, low, high = stats.bootstrap_ci(x, np.median, n_resamples=20_000, seed=5)
    ref = scipy.stats.bootstrap((x,), np.median, method="percentile", n_resamples=20_000, rng=9).confidence_interval
    assert est == np.median(x)
    for mine, theirs in ((low, ref.low), (high, ref.high)):
        assert abs(np.searchsorted(x, mine) - np.searchsorted(x, theirs)) <= 1, (mine, theirs)
    assert low < est < high


def test_bootstrap_median_coverage_is_near_nominal():
    rng = np.random.default_rng(0)
    hits = []
    for rep in range(200):
        x = rng.normal(loc=1.0, size=25)
        _, low, high = stats.bootstrap_ci(x, level=0.9, n_resamples=1000, seed=rep)
        hits.append(low <= 1.0 <= high)
    # binomial sd at 200 repetitions ~ 0.021: the 0.9 interval of a median should cover 0.84 .. 0.97 of the time
    assert 0.84 <= np.mean(hits) <= 0.97, np.mean(hits)


def test_bootstrap_with_diverged_runs_and_missing_values():
    x = np.array([1.0, 2.0, 3.0, np.inf, np.inf, np.inf, np.inf])
    est, low, high = stats.bootstrap_ci(x, n_resamples=2000)
    assert est == np.inf and high == np.inf and 1.0 <= low  # median of a majority of diverged runs: inf
    est, low, high = stats.bootstrap_ci([1.0, 2.0, np.nan, 3.0], n_resamples=2000)
    assert (est, np.isfinite([low, high]).all()) == (2.0, True)
    assert np.isnan(stats.bootstrap_ci([np.nan, np.nan])).all()
    assert stats.bootstrap_ci(x, seed=4) == stats.bootstrap_ci(x, seed=4)


def test_bootstrap_statistic_without_axis():
    x = np.random.default_rng(3).normal(size=12)
    by_row = stats.bootstrap_ci(x, lambda v: float(np.median(v)), n_resamples=300, seed=1)
    assert by_row == stats.bootstrap_ci(x, np.median, n_resamples=300, seed=1)


def test_rounding_level_differences_are_ties_with_a_tolerance():
    a = np.array([0.00187, 0.0021, 0.0019, 0.0030, 0.0018, 0.0025, 0.0022, 0.0020, 0.0028, 0.0017])
    b = a + 1e-6 * np.array([1, 2, 3, 1, 2, 3, 1, 2, 3, 1])  # A lower by 1e-6 to 3e-6 on every seed
    strict = stats.paired_comparison(a, b)
    assert strict["high"] < 0 and strict["p_value"] < 0.01   # without a tolerance: a "win" made of rounding
    tied = stats.paired_comparison(a, b, tie=1e-5)
    assert (tied["diff"], tied["low"], tied["high"], tied["p_value"], tied["p_beats"]) == (0, 0, 0, 1.0, 0.5)
    planted = stats.paired_comparison(a, a * 1.5, tie=1e-5)
    assert planted["high"] < 0 and planted["p_value"] < 0.01 and planted["p_beats"] == 1.0
    both = stats.paired_comparison([1.0, np.inf], [1.0 + 1e-9, 2.0], tie=1e-5)   # a diverged run is never a tie
    assert both["p_beats"] == 0.25 and both["high"] == np.inf
    steps = [25, 50, 75, 100]
    ref = [4.0, 2.0, 1.0, 0.5]
    assert stats.speedup(ref, [4.0, 2.0, 1.0, 0.4999], steps) == (1.0, True)          # 1e-4 below: "at least"
    assert stats.speedup(ref, [4.0, 2.0, 1.0, 0.4999], steps, tie=1e-3) == (1.0, False)  # a tie: exactly 1


@pytest.mark.parametrize("call, match", [
    (lambda: stats.bootstrap_ci([]), r"bootstrap_ci: expected x as a non-empty 1-D array, got shape \(0,\)"),
    (lambda: stats.bootstrap_ci([[1.0]]), r"got shape \(1, 1\)"),
    (lambda: stats.bootstrap_ci([1.0], level=1.0), r"level must lie in \(0, 1\), got level=1.0"),
    (lambda: stats.bootstrap_ci([1.0], n_resamples=0), "n_resamples must be a positive int"),
    (lambda: stats.paired_comparison([1.0, 2.0], [1.0]), r"same shape.*\(2,\) and \(1,\)"),
    (lambda: stats.holm([0.5, 1.5]), r"holm: expected p-values in \[0, 1\]"),
    (lambda: stats.verdict(-1, -0.5, 0.01, alpha=0), r"alpha must lie in \(0, 1\)"),
    (lambda: stats.time_to_target([1.0, 2.0], [1, 2], 1.0), r"curves of shape \(R, 2\)"),
    (lambda: stats.time_to_target([[1.0, 2.0]], [2, 1], 1.0), "strictly increasing steps"),
    (lambda: stats.kaplan_meier([1.0, 2.0], [1, 0]), "reached as a bool array"),
    (lambda: stats.kaplan_meier([np.inf], [True]), "finite times >= 0"),
    (lambda: stats.km_median_ci([1.0], [True], level=0), "level must lie in"),
    (lambda: stats.performance_profile([[0.0, 1.0]], [1.0]), "positive costs"),
    (lambda: stats.performance_profile([1.0, 2.0], [1.0]), r"costs of shape \(problems, solvers\)"),
    (lambda: stats.best_of_k([1.0, 2.0], 3), r"integer ks in \[1, 2\]"),
    (lambda: stats.best_of_k([1.0, 2.0], 1.5), "integer ks"),
    (lambda: stats.tunability([1.0, 2.0], offset=1.5), r"offset <= min\(scores\) = 1.0"),
    (lambda: stats.speedup([1.0, 2.0], [1.0], [1, 2]), "of one shape"),
])
def test_bad_input_is_explained(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------------------------------
# Wilcoxon, Holm, paired comparisons


@pytest.mark.parametrize("n", [5, 8, 13, 20])
def test_wilcoxon_exact_matches_scipy(n):
    rng = np.random.default_rng(n)
    for shift in (0.0, 0.4, 1.0):
        d = rng.normal(loc=shift, size=n)
        ref = scipy.stats.wilcoxon(d, method="exact").pvalue
        assert stats.wilcoxon_signed_rank(d) == pytest.approx(ref, rel=1e-10)


def test_wilcoxon_normal_approximation_matches_scipy():
    rng = np.random.default_rng(60)
    for shift in (0.0, 0.2, 0.5):
        d = rng.normal(loc=shift, size=60)
        ref = scipy.stats.wilcoxon(d, method="asymptotic", correction=True).pvalue
        assert stats.wilcoxon_signed_rank(d) == pytest.approx(ref, rel=1e-8)
    d = np.round(rng.normal(loc=0.3, size=80), 1)  # ties: the variance correction must match SciPy's
    d = d[d != 0]
    ref = scipy.stats.wilcoxon(d, method="asymptotic", correction=True).pvalue
    assert stats.wilcoxon_signed_rank(d) == pytest.approx(ref, rel=1e-8)


def test_wilcoxon_exact_with_ties_zeros_and_inf_by_enumeration():
    d = np.array([1.0, -1.0, 2.0, 2.0, 2.0, -3.0, 4.0, 5.0, 0.0, np.nan, 6.0, np.inf])
    kept = d[~np.isnan(d) & (d != 0)]
    ranks = scipy.stats.rankdata(np.abs(kept))  # inf ranks highest
    t_obs = ranks[kept > 0].sum()
    sums = np.array([ranks[np.array(signs, bool)].sum() for signs in itertools.product((0, 1), repeat=kept.size)])
    ref = min(1.0, 2 * min(np.mean(sums <= t_obs + 1e-9), np.mean(sums >= t_obs - 1e-9)))
    assert stats.wilcoxon_signed_rank(d) == pytest.approx(ref, rel=1e-12)
    assert stats.wilcoxon_signed_rank(np.where(np.isinf(d), 100.0, d)) == stats.wilcoxon_signed_rank(d)
    assert stats.wilcoxon_signed_rank(np.zeros(7)) == 1.0
    assert stats.wilcoxon_signed_rank([np.nan, 0.0]) == 1.0


def test_holm_by_hand_and_monotone():
    # p = [0.01, 0.04, 0.03, 0.20], m = 4; sorted 0.01, 0.03, 0.04, 0.20 times 4, 3, 2, 1 = 0.04, 0.09, 0.08, 0.20;
    # running max: 0.04, 0.09, 0.09, 0.20 -> back in input order [0.04, 0.09, 0.09, 0.20].
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.20]), [0.04, 0.09, 0.09, 0.20])
    np.testing.assert_allclose(stats.holm([0.5, 0.4]), [0.8, 0.8])  # 2 * 0.4 = 0.8; max(0.8, 0.5) = 0.8
    assert stats.holm([0.9, 0.6]).tolist() == [1.0, 1.0]  # clipped at 1
    p = np.random.default_rng(0).uniform(size=40) ** 3
    adjusted = stats.holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0) and np.all(adjusted >= p) and np.all(adjusted <= 1)


def test_paired_comparison_finds_a_planted_difference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=10)
    b = a + 0.5 + 0.05 * rng.normal(size=10)
    r = stats.paired_comparison(a, b)
    assert r["n"] == 10 and r["high"] < 0 and r["p_value"] < 0.05 and r["p_beats"] == 1.0
    assert r["low"] <= r["diff"] <= r["high"] and r["diff"] == pytest.approx(np.median(a - b))
    assert (r["median_a"], r["median_b"]) == (np.median(a), np.median(b))
    assert stats.verdict(r["low"], r["high"], r["p_value"], names=("adam", "sgd")) == "adam better"
    flipped = stats.paired_comparison(b, a)
    assert flipped["low"] > 0 and stats.verdict(flipped["low"], flipped["high"], flipped["p_value"]) == "B better"


def test_paired_comparison_of_identical_runs_is_inconclusive():
    a = np.random.default_rng(1).normal(size=8)
    r = stats.paired_comparison(a, a.copy())
    assert (r["diff"], r["low"], r["high"], r["p_value"], r["p_beats"]) == (0.0, 0.0, 0.0, 1.0, 0.5)
    assert stats.verdict(r["low"], r["high"], r["p_value"]) == "inconclusive"


def test_paired_comparison_with_diverged_and_missing_runs():
    a = np.array([1.0, 2.0, 3.0, np.inf, 5.0, np.nan])
    b = np.array([2.0, 3.0, np.inf, np.inf, 4.0, 1.0])
    r = stats.paired_comparison(a, b, n_resamples=500)
    d = np.array([-1.0, -1.0, -np.inf, 0.0, 1.0])  # inf - inf counts as 0; the nan pair is dropped
    assert r["n"] == 5 and r["diff"] == np.median(d) == -1.0
    assert r["p_beats"] == (3 + 0.5 * 1) / 5  # a < b on seeds 0, 1, 2; a tie (both diverged) on seed 3
    assert r["p_value"] == stats.wilcoxon_signed_rank(d) and r["median_b"] == 4.0
    assert stats.paired_comparison([np.nan], [1.0])["n"] == 0


def test_verdict_rules():
    assert stats.verdict(-0.3, -0.1, 0.01) == "A better"
    assert stats.verdict(-0.3, -0.1, 0.06) == "inconclusive"  # interval excludes 0 but p not small enough
    assert stats.verdict(0.1, 0.3, 0.01, names=("x", "y")) == "y better"
    assert stats.verdict(-0.1, 0.3, 0.001) == "inconclusive"
    assert stats.verdict(np.nan, np.nan, 1.0) == "inconclusive"


# ---------------------------------------------------------------------------------------------------------------------
# Time to target, Kaplan-Meier


def test_time_to_target_matches_a_loop():
    rng = np.random.default_rng(0)
    curves = np.cumsum(-rng.uniform(size=(30, 12)), axis=1) + rng.uniform(3, 9, size=(30, 1))
    curves[3, 1:] = np.nan  # a run that diverged
    steps = np.arange(12) * 100 + 50
    times, reached = stats.time_to_target(curves, steps, target=0.5)
    for r in range(30):
        expected, hit = steps[-1], False
        for e in range(12):
            if curves[r, e] <= 0.5:
                expected, hit = steps[e], True
                break
        assert (times[r], reached[r]) == (expected, hit)
    assert reached.any() and not reached.all()


def test_kaplan_meier_matches_scipy_ecdf_with_ties_and_censoring():
    rng = np.random.default_rng(0)
    for _ in range(5):
        times = rng.integers(1, 8, size=25).astype(float)
        reached = rng.uniform(size=25) < 0.7
        t, s = stats.kaplan_meier(times, reached)
        ref = scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=times[reached], right=times[~reached])).sf
        assert (t[0], s[0]) == (0.0, 1.0)
        np.testing.assert_array_equal(t[1:], np.unique(times[reached]))
        np.testing.assert_allclose(s[1:], ref.evaluate(t[1:]), rtol=1e-12)


def test_km_median_by_hand():
    # times 1 2 3 3 4 5, reached T T F T T F: at 1: 6 at risk, S = 5/6; at 2: 5 at risk, S = 5/6 * 4/5 = 2/3;
    # 3 is censored for one run and an event for another: 4 at risk, S = 2/3 * 3/4 = 1/2 <= 1/2 -> median 3.
    times, reached = [1, 2, 3, 3, 4, 5], np.array([True, True, False, True, True, False])
    t, s = stats.kaplan_meier(times, reached)
    np.testing.assert_allclose(s, [1, 5 / 6, 2 / 3, 1 / 2, 1 / 4])
    assert stats.km_median(times, reached) == 3.0
    assert stats.km_median([5, 5, 5], np.zeros(3, bool)) == np.inf
    t, s = stats.kaplan_meier([0, 2], np.array([True, False]))  # an event at 0: no leading (0, 1)
    assert (t.tolist(), s.tolist()) == ([0.0], [0.5]) and stats.km_median([0, 2], np.array([True, False])) == 0.0


def test_km_median_ci_matches_a_loop_over_the_same_resamples():
    rng = np.random.default_rng(0)
    times = rng.integers(1, 10, size=15).astype(float)
    reached = rng.uniform(size=15) < 0.9  # most resamples have a finite median, so np.percentile is defined
    med, low, high = stats.km_median_ci(times, reached, level=0.8, n_resamples=300, seed=4)
    index = np.random.default_rng(4).integers(0, 15, size=(300, 15))  # the resampling the docstring states
    medians = np.array([stats.km_median(times[i], reached[i]) for i in index])
    assert np.isfinite(medians).all()
    assert (med, low, high) == pytest.approx((stats.km_median(times, reached), *np.percentile(medians, [10, 90])))
    assert low < high
    med, low, high = stats.km_median_ci([3, 9, 9, 9], np.array([True, False, False, False]), n_resamples=200)
    assert (med, high) == (np.inf, np.inf)


# ---------------------------------------------------------------------------------------------------------------------
# Performance profiles, best-of-k, tunability, speed-up


def test_performance_profile_by_hand():
    # problem 0: best 10, ratios (1, 2); problem 1: best 15, ratios (2, 1); problem 2: A failed, ratios (inf, 1).
    # tau = 1: A 1/3, B 2/3; tau = 1.5: same; tau = 2: A 2/3, B 1; tau = 100: same.
    costs = [[10.0, 20.0], [30.0, 15.0], [np.inf, 40.0]]
    expected = [[1 / 3, 1 / 3, 2 / 3, 2 / 3], [2 / 3, 2 / 3, 1.0, 1.0]]
    np.testing.assert_allclose(stats.performance_profile(costs, [1.0, 1.5, 2.0, 100.0]), expected)
    unsolved = stats.performance_profile([[np.inf, np.nan], [1.0, 2.0]], [1.0, 10.0])
    np.testing.assert_allclose(unsolved, [[0.5, 0.5], [0.0, 0.5]])


def test_best_of_k_matches_enumeration_of_subsets():
    scores = np.random.default_rng(0).uniform(size=7)
    scores[4] = np.inf
    ks = np.arange(1, 8)
    expected = [np.mean([min(c) for c in itertools.combinations(scores, k)]) for k in ks]
    np.testing.assert_allclose(stats.best_of_k(scores, ks), expected, rtol=1e-12)
    assert stats.best_of_k(scores, 1) == np.mean(scores) == np.inf  # k = 1 can draw the diverged configuration
    assert stats.best_of_k(scores, 7) == scores.min()


def test_tunability_by_hand():
    # sorted 1, 1.05, 2, 3. k=1: mean = 1.7625; k=2: (1*3 + 1.05*2 + 2*1) / 6 = 1.18333; k=3: (1*3 + 1.05*1) / 4 =
    # 1.0125. Within 10% of 1 (<= 1.1): k = 3; within 20% (<= 1.2): k = 2; within 80%: k = 1.
    scores = [3.0, 1.0, 2.0, 1.05]
    np.testing.assert_allclose(stats.best_of_k(scores, [1, 2, 3]), [1.7625, 7.1 / 6, 1.0125])
    assert [stats.tunability(scores, within=w) for w in (0.1, 0.2, 0.8, 0.0)] == [3, 2, 1, 4]
    # measured from the optimum 0.9: best gap 0.1, 10% of it 0.01: k = 4 (1.0125 - 1 = 0.0125 > 0.01)
    assert stats.tunability(scores, offset=0.9) == 4
    assert stats.tunability([2.0, 2.0, 5.0], within=0.0) == 2 and stats.tunability([np.inf, np.inf]) == 1


def test_speedup_by_hand():
    steps = [25, 50, 75, 100]
    reference = [4.0, 2.0, 1.0, 0.5]
    assert stats.speedup(reference, [4.0, 3.0, 2.5, 2.0], steps) == (0.5, False)  # reference at 2.0 after 50 steps
    assert stats.speedup(reference, [4.0, 3.0, 1.0, 0.5], steps) == (1.0, False)  # same best loss, same time
    assert stats.speedup(reference, reference, steps) == (1.0, False)              # identical curves: exactly 1
    assert stats.speedup(reference, [4.0, 1.0, 0.5, 0.6], steps) == (100 / 75, False)  # best 0.5 at 75, ref at 100
    # a noisy curve that dips early: its best (0.9 at step 50) counts, not its last value (1.5)
    assert stats.speedup(reference, [4.0, 0.9, 1.5, 1.5], steps) == (100 / 50, False)  # ref <= 0.9 only at 100
    assert stats.speedup(reference, [4.0, 2.0, 0.5, 0.4], steps) == (1.0, True)  # reference never gets to 0.4
    assert stats.speedup(reference, [4.0, 2.0, 0.4, 0.4], steps) == (100 / 75, True)  # at least 100 / 75
    assert stats.speedup(reference, [4.0, 5.0, 9.0, np.nan], steps) == (1.0, False)  # its best was its start
    assert stats.speedup(reference, [np.nan] * 4, steps) == (0.0, False)  # never a finite loss
