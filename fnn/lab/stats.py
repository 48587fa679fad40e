"""Honest statistics for comparing optimizer rules: bootstrap intervals, paired tests, time-to-target, profiles.

Conventions (stated once, here): a *score* is a loss, lower is better; a run that diverged scores ``+inf``. Seeds
are paired across rules (seed i of A and seed i of B share initialisation and batch order), so comparisons use the
paired differences ``d = a - b`` (negative: A is better). Everything is NumPy on the host; every estimator is written
out (no SciPy call) so that the tests can check it against SciPy as an independent reference. Missing values (nan)
are handled as each function says. Same ``seed``, same result.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["bootstrap_ci", "wilcoxon_signed_rank", "paired_comparison", "holm", "verdict",
           "time_to_target", "kaplan_meier", "km_median", "km_median_ci", "performance_profile", "best_of_k",
           "tunability", "speedup"]

_EXACT_MAX_N = 50  # exact Wilcoxon null distribution up to this many non-zero differences
_HALF = 0.5 + 1e-12  # "survival <= 0.5", tolerant to the rounding of a product that is exactly 0.5


def _vector(where, name, x, fix="pass a 1-D array with one value per run"):
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{where}: expected {name} as a non-empty 1-D array, got shape {x.shape}; {fix}.")
    return x


def _check_resampling(where, level, n_resamples):
    if not (isinstance(level, (int, float, np.floating)) and 0 < level < 1):
        raise ValueError(f"{where}: level must lie in (0, 1), got level={level!r}; e.g. level=0.95 for a 95% interval.")
    if not (isinstance(n_resamples, (int, np.integer)) and not isinstance(n_resamples, bool) and n_resamples >= 1):
        raise ValueError(f"{where}: n_resamples must be a positive int, got n_resamples={n_resamples!r}; e.g. 2000.")


def _steps(where, steps):
    steps = _vector(where, "steps", steps, fix="pass the step count of each evaluation point")
    if np.any(np.diff(steps) <= 0) or steps[-1] <= 0:
        raise ValueError(f"{where}: expected strictly increasing steps ending above 0, got {steps}; sort them.")
    return steps


def _quantile(values, q):
    """Linear-interpolation quantile (NumPy's default) of ``values``, without ``inf - inf = nan`` at the ends."""
    s, pos = np.sort(values), (len(values) - 1) * q
    a, b = s[math.floor(pos)], s[math.ceil(pos)]
    return float(a) if a == b else float(a + (pos - math.floor(pos)) * (b - a))


def _apply(statistic, samples):
    """``statistic`` over the last axis of ``samples``: vectorised when it takes ``axis=``, else row by row."""
    try:
        return np.asarray(statistic(samples, axis=-1), dtype=float)
    except TypeError:
        return np.array([statistic(row) for row in samples], dtype=float)


def bootstrap_ci(x, statistic=np.median, *, level=0.95, n_resamples=10_000, seed=0):
    """Percentile bootstrap confidence interval of ``statistic`` over the runs ``x``.

    ``x*_b = x[I_b]``, ``I_b ~ Uniform{0..n-1}^n`` (b = 1..B); ``theta*_b = statistic(x*_b)``;
    ``(low, high) = quantile(theta*, (1 - level) / 2), quantile(theta*, (1 + level) / 2)`` (linear interpolation).

    ``inf`` scores (diverged runs) are kept: the median of runs some of which diverged is still defined, and a bound
    is ``inf`` when that many resamples have an infinite statistic. nan entries are missing values, dropped (all nan:
    ``(nan, nan, nan)``). ``statistic`` is called as ``statistic(samples, axis=-1)`` on a ``(B, n)`` batch when it
    accepts ``axis`` (``np.median``, ``np.mean``), else row by row.
    Args: ``x (n,)`` scores; ``level`` in (0, 1); ``n_resamples`` = B; ``seed`` of ``np.random.default_rng``.
    Returns: ``(estimate, low, high)`` floats, ``estimate = statistic(x)``.
    Reference: Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13.3 (the percentile interval).

    Example:
      >>> est, low, high = bootstrap_ci([1.0, 2.0, 3.0, 4.0, np.inf])
      >>> float(est), low <= est <= high, high
      (3.0, True, inf)
    """
    x = _vector("bootstrap_ci", "x", x)
    _check_resampling("bootstrap_ci", level, n_resamples)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    batch = max(1, 2**21 // x.size)  # resample in chunks of ~2M values
    with np.errstate(invalid="ignore"):
        estimate = float(statistic(x))
        thetas = np.concatenate([_apply(statistic, x[rng.integers(0, x.size, (min(batch, n_resamples - s), x.size))])
                                 for s in range(0, n_resamples, batch)])
    return estimate, _quantile(thetas, (1 - level) / 2), _quantile(thetas, (1 + level) / 2)


def _average_ranks(a):
    """1-based ranks of ``a`` with ties given their average rank (``inf`` ties with ``inf``), and the tie sizes."""
    s = a[order := np.argsort(a, kind="stable")]
    starts = np.r_[True, s[1:] != s[:-1]]
    first = np.flatnonzero(starts)
    sizes = np.diff(np.r_[first, s.size])
    ranks = np.empty(s.size)
    ranks[order] = (first + (sizes + 1) / 2)[np.cumsum(starts) - 1]
    return ranks, sizes


def wilcoxon_signed_rank(d):
    """Two-sided p-value of the Wilcoxon signed-rank test that the paired differences ``d`` are centred on 0.

    Zero differences are dropped (Wilcoxon's zero method); nan differences (``inf - inf``: both runs diverged) count
    as zero. ``R_i`` = average rank of ``|d_i|`` among the n remaining (``inf`` ranks highest), ``T+ = sum_{d_i>0}
    R_i``. For ``n <= 50`` the p-value is exact: the null distribution of ``T+`` (each sign +/- with probability
    1/2) is counted by dynamic programming over the doubled ranks, ``N_j(t) = N_{j-1}(t) + N_{j-1}(t - 2 R_j)``, and
    ``p = min(1, 2 min(P(T+ <= t), P(T+ >= t)))`` (exact also with ties, conditionally on the ranks). Beyond, the
    normal approximation with tie and continuity corrections: ``mu = n (n + 1) / 4``,
    ``sigma^2 = n (n + 1)(2n + 1) / 24 - sum_g (t_g^3 - t_g) / 48`` (t_g: tie sizes),
    ``z = max(|T+ - mu| - 1/2, 0) / sigma``, ``p = erfc(z / sqrt 2)``. All differences zero: ``p = 1``.
    Args: ``d (n,)`` paired differences ``a - b``. Returns: the p-value, a float in (0, 1].
    Reference: Wilcoxon, "Individual comparisons by ranking methods", Biometrics Bulletin 1(6), 1945;
    Hollander, Wolfe & Chicken, "Nonparametric Statistical Methods", 3rd ed., 2014, sec. 3.1 (ties: eq. 3.13).

    Example:
      >>> wilcoxon_signed_rank([-1.0, -2.0, -3.0, -4.0, -5.0])   # 2 * (1/2)^5
      0.0625
      >>> wilcoxon_signed_rank([0.0, 0.0])
      1.0
    """
    d = _vector("wilcoxon_signed_rank", "d", d, fix="pass the paired differences a - b as a vector")
    d = d[~np.isnan(d) & (d != 0)]
    if (n := d.size) == 0:
        return 1.0
    ranks, sizes = _average_ranks(np.abs(d))
    t_plus = float(ranks[d > 0].sum())
    if n <= _EXACT_MAX_N:
        r2 = np.rint(2 * ranks).astype(np.int64)  # ranks are multiples of 1/2
        counts = np.r_[1.0, np.zeros(int(r2.sum()))]  # counts[t] = #sign vectors with 2 T+ = t (exact: < 2^53)
        for r in r2:
            counts[r:] = counts[r:] + counts[:-r]
        t2 = int(round(2 * t_plus))
        return float(min(1.0, 2 * min(counts[: t2 + 1].sum(), counts[t2:].sum()) / 2.0**n))
    var = n * (n + 1) * (2 * n + 1) / 24 - float((sizes**3 - sizes).sum()) / 48
    z = max(abs(t_plus - n * (n + 1) / 4) - 0.5, 0.0) / math.sqrt(var)
    return float(min(1.0, math.erfc(z / math.sqrt(2))))


def paired_comparison(a, b, *, level=0.95, n_resamples=10_000, seed=0, tie=0.0):
    """Compare rule A with rule B over paired seeds: median difference, its interval, Wilcoxon p, P(A beats B).

    ``d = a - b`` (``inf - inf`` = nan counts as a zero difference: both diverged); ``diff = median(d)`` with the
    percentile bootstrap interval ``(low, high)``; ``p_value = wilcoxon_signed_rank(d)``;
    ``p_beats = (#{a_i < b_i} + #{a_i = b_i} / 2) / n`` (``inf = inf`` is a tie), the probability of superiority
    over the paired seeds. Pairs with a nan score are missing and dropped (``n`` counts the rest); no pair left gives
    nan statistics and ``p_value = 1``. With ``tie > 0`` a finite difference ``|d_i| <= tie`` counts as a tie
    (``d_i = 0``): float rounding amplified by training is not a win.
    Args: ``a, b (n,)`` scores of rules A and B, seed i in position i.
    Returns: ``{"n", "diff", "low", "high", "p_value", "p_beats", "median_a", "median_b"}``; ``diff < 0``: A better.
    Reference: Wilcoxon 1945 (see ``wilcoxon_signed_rank``); Vargha & Delaney, "A critique and improvement of the CL
    common language effect size statistics", J. Educ. Behav. Stat. 25(2), 2000 (the A measure, here over pairs).

    Example:
      >>> r = paired_comparison([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.5, 2.6, 3.7, 4.8, 5.9, np.inf], n_resamples=500)
      >>> r["n"], float(r["diff"]), r["p_value"], r["p_beats"], verdict(r["low"], r["high"], r["p_value"])
      (6, -0.75, 0.03125, 1.0, 'A better')
    """
    a, b = _vector("paired_comparison", "a", a), _vector("paired_comparison", "b", b)
    if a.shape != b.shape:
        raise ValueError(f"paired_comparison: expected a and b of the same shape (one score per seed), got "
                         f"{a.shape} and {b.shape}; pass the same seeds for both rules, in the same order.")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b, n = a[keep], b[keep], int(keep.sum())
    if n == 0:
        return {"n": 0, **dict.fromkeys(("diff", "low", "high", "p_beats", "median_a", "median_b"), math.nan),
                "p_value": 1.0}
    d = np.subtract(a, b, out=np.zeros(n), where=a != b)  # inf - inf (both diverged): 0
    tied = np.abs(d) <= tie  # inf (one run diverged) is never a tie

    a, d = np.where(tied, b, a), np.where(tied, 0.0, d)
    diff, low, high = bootstrap_ci(d, np.median, level=level, n_resamples=n_resamples, seed=seed)
    return {"n": n, "diff": diff, "low": low, "high": high, "p_value": wilcoxon_signed_rank(d),
            "p_beats": float((np.sum(a < b) + 0.5 * np.sum(a == b)) / n),
            "median_a": float(np.median(a)), "median_b": float(np.median(b))}


def holm(p_values):
    """Holm-Bonferroni adjusted p-values (step-down), in the order of the input.

    With ``p_(1) <= ... <= p_(m)`` sorted: ``p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))``. Rejecting where
    ``p~ < alpha`` controls the family-wise error rate at alpha under any dependence.
    Reference: Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6(2), 1979.

    Example:
      >>> holm([0.01, 0.04, 0.03])
      array([0.03, 0.06, 0.06])
    """
    p = _vector("holm", "p_values", p_values, fix="pass one p-value per comparison")
    if np.any(np.isnan(p) | (p < 0) | (p > 1)):
        raise ValueError(f"holm: expected p-values in [0, 1], got {p}; pass the raw p-values of the comparisons.")
    order = np.argsort(p, kind="stable")
    out = np.empty(p.size)
    out[order] = np.minimum(1.0, np.maximum.accumulate((p.size - np.arange(p.size)) * p[order]))
    return out


def verdict(low, high, p_adjusted, *, alpha=0.05, names=("A", "B")):
    """``"<A> better"`` if ``high < 0`` and ``p_adjusted < alpha``, ``"<B> better"`` if ``low > 0`` and
    ``p_adjusted < alpha``, else ``"inconclusive"`` (``(low, high)``: interval of the difference A - B of losses).

    Example:
      >>> verdict(-0.3, -0.1, 0.01, names=("adam", "sgd")), verdict(-0.3, 0.1, 0.01)
      ('adam better', 'inconclusive')
    """
    if not 0 < alpha < 1:
        raise ValueError(f"verdict: alpha must lie in (0, 1), got alpha={alpha!r}; e.g. alpha=0.05.")
    if high < 0 and p_adjusted < alpha:
        return f"{names[0]} better"
    if low > 0 and p_adjusted < alpha:
        return f"{names[1]} better"
    return "inconclusive"


def time_to_target(curves, steps, target):
    """Steps each run needs to reach a target loss, censored at the budget.

    ``times[r] = steps[min{e : curves[r, e] <= target}]`` (nan never reaches); a run that never reaches it gets
    ``times[r] = steps[-1]`` and ``reached[r] = False`` (right-censored at the budget).
    Args: ``curves (R, E)`` losses of R runs at E evaluation points; ``steps (E,)`` increasing; ``target`` a loss.
    Returns: ``(times (R,), reached (R,) bool)``.
    Reference: Dahl et al., "Benchmarking Neural Network Training Algorithms" (AlgoPerf), 2023, sec. 4 (time-to-result).

    Example:
      >>> time_to_target([[3.0, 1.0, 0.5], [3.0, 2.0, np.nan]], [0, 10, 20], 1.0)
      (array([10., 20.]), array([ True, False]))
    """
    curves = np.asarray(curves, dtype=float)
    steps = _steps("time_to_target", steps)
    if curves.ndim != 2 or curves.shape[1] != steps.size:
        raise ValueError(f"time_to_target: expected curves of shape (R, {steps.size}) (runs x evaluation points), got "
                         f"{curves.shape}; stack one curve per run, e.g. curves[None] for a single run.")
    hit = curves <= target  # nan: False
    reached = hit.any(axis=1)
    return np.where(reached, steps[np.argmax(hit, axis=1)], steps[-1]), reached


def _survival_data(where, times, reached):
    times = _vector(where, "times", times)
    reached = np.asarray(reached)
    if reached.shape != times.shape or reached.dtype != bool:
        raise ValueError(f"{where}: expected reached as a bool array of the times' shape {times.shape}, got "
                         f"{reached.dtype} {reached.shape}; pass the two arrays that time_to_target returns.")
    if np.any(~np.isfinite(times) | (times < 0)):
        raise ValueError(f"{where}: expected finite times >= 0, got {times}; censor runs at the budget instead.")
    return times, reached


def kaplan_meier(times, reached):
    """Kaplan-Meier (product-limit) estimate of the survival ``S(t) = P(T > t)``: runs not yet at the target.

    At the distinct event times ``u_1 < ... < u_K`` (times of runs with ``reached``):
    ``S(u_k) = prod_{j <= k} (1 - d_j / n_j)``, with ``d_j`` the runs reaching the target at ``u_j`` and ``n_j`` the
    runs at risk (``times >= u_j``; a censored run leaves the risk set after its time).
    Args: ``times (n,)`` and ``reached (n,) bool``, as ``time_to_target`` returns them.
    Returns: ``(t, survival)``: ``t = [0, u_1, ..., u_K]``, ``survival = [1, S(u_1), ..., S(u_K)]``, a step function
    constant between the points; when an event happens at 0 the leading ``(0, 1)`` is left out.
    Reference: Kaplan & Meier, "Nonparametric estimation from incomplete observations", JASA 53(282), 1958.

    Example:
      >>> t, s = kaplan_meier([10, 20, 20, 30], np.array([True, True, False, False]))
      >>> t.tolist(), s.tolist()
      ([0.0, 10.0, 20.0], [1.0, 0.75, 0.5])
    """
    times, reached = _survival_data("kaplan_meier", times, reached)
    u = np.unique(times[reached])
    at_risk = (times[None, :] >= u[:, None]).sum(axis=1)
    events = (reached[None, :] & (times[None, :] == u[:, None])).sum(axis=1)
    survival = np.cumprod(1.0 - events / at_risk)
    return (u, survival) if u.size and u[0] == 0 else (np.r_[0.0, u], np.r_[1.0, survival])


def km_median(times, reached):
    """Kaplan-Meier median time to target: the smallest ``t`` with ``S(t) <= 1/2``; ``inf`` if never.

    Reference: Klein & Moeschberger, "Survival Analysis", 2nd ed., 2003, sec. 4.5 (the median of ``kaplan_meier``).

    Example:
      >>> km_median([10, 20, 20, 30], np.array([True, True, False, False]))
      20.0
      >>> km_median([10, 30, 30], np.array([True, False, False]))
      inf
    """
    t, survival = kaplan_meier(times, reached)
    below = survival <= _HALF
    return float(t[np.argmax(below)]) if below.any() else math.inf


def _km_medians(times, reached, index):
    """``km_median`` of each resample ``times[index[b]]`` of a ``(B, n)`` index, vectorised over the B rows."""
    u, code = np.unique(times, return_inverse=True)
    B, K = index.shape[0], u.size
    flat = (np.arange(B)[:, None] * K + code[index]).ravel()
    total = np.bincount(flat, minlength=B * K).reshape(B, K)
    events = np.bincount(flat, weights=reached[index].ravel(), minlength=B * K).reshape(B, K)
    at_risk = np.cumsum(total[:, ::-1], axis=1)[:, ::-1]
    survival = np.cumprod(1.0 - events / np.maximum(at_risk, 1), axis=1)
    below = survival <= _HALF
    return np.where(below.any(axis=1), u[np.argmax(below, axis=1)], np.inf)


def km_median_ci(times, reached, *, level=0.95, n_resamples=2_000, seed=0):
    """Kaplan-Meier median time to target with a percentile bootstrap interval over runs (``inf`` allowed).

    Resample the runs ``(times, reached)[I_b]`` with replacement, take ``km_median`` of each, and the
    ``(1 -+ level) / 2`` quantiles as in ``bootstrap_ci``. Returns: ``(median, low, high)``.
    Reference: Efron, "Censored data and the bootstrap", JASA 76(374), 1981.

    Example:
      >>> med, low, high = km_median_ci([10, 20, 20, 30, 40], np.array([True, True, True, False, False]))
      >>> med, low <= med <= high
      (20.0, True)
    """
    times, reached = _survival_data("km_median_ci", times, reached)
    _check_resampling("km_median_ci", level, n_resamples)
    index = np.random.default_rng(seed).integers(0, times.size, (n_resamples, times.size))
    medians = _km_medians(times, reached, index)
    return km_median(times, reached), _quantile(medians, (1 - level) / 2), _quantile(medians, (1 + level) / 2)


def performance_profile(costs, taus):
    """Performance profiles: the fraction of problems each solver solves within a factor tau of the best solver.

    ``r[p, s] = costs[p, s] / min_s' costs[p, s']`` (``inf`` when nobody solved p); ``rho[s, j] = #{p : r[p, s] <=
    taus[j]} / P``. ``inf`` or nan cost = did not solve.
    Args: ``costs (P, S)`` positive costs (e.g. steps to target) of S solvers on P problems; ``taus (T,)``.
    Returns: ``rho``, ``(S, T)``.
    Reference: Dolan & More, "Benchmarking optimization software with performance profiles", Math. Program. 91,
    2002; Dahl et al., "Benchmarking Neural Network Training Algorithms" (AlgoPerf), 2023, sec. 4.

    Example:
      >>> performance_profile([[10, 20], [30, 15], [np.inf, 40]], [1, 2, 4])
      array([[0.333..., 0.666..., 0.666...],
             [0.666..., 1.        , 1.        ]])
    """
    costs = np.asarray(costs, dtype=float)
    taus = _vector("performance_profile", "taus", taus, fix="pass the factors tau >= 1 to evaluate the profile at")
    if costs.ndim != 2 or costs.size == 0:
        raise ValueError(f"performance_profile: expected costs of shape (problems, solvers), got {costs.shape}; "
                         f"stack one row per problem.")
    costs = np.where(np.isnan(costs), np.inf, costs)
    if np.any(costs <= 0):
        raise ValueError(f"performance_profile: expected positive costs, got a minimum of {costs.min()}; "
                         f"use steps or seconds to target (inf for a failure).")
    best = costs.min(axis=1, keepdims=True)
    ratio = np.divide(costs, best, out=np.full(costs.shape, np.inf), where=np.isfinite(best))
    return np.mean(ratio[:, :, None] <= taus[None, None, :], axis=0)


def _expected_min(x, k):
    """``sum_i w_i x_(i)`` over the sorted ``x`` with ``w_i = C(C - i, k - 1) / C(C, k)`` (the probability that the
    i-th smallest is the minimum of k draws), leaving out the terms of weight 0."""
    C, i = x.size, np.arange(1, x.size)
    w = k / C * np.cumprod(np.r_[1.0, np.maximum(C - i - k + 1, 0) / (C - i)])  # w_{i+1} / w_i = (C-i-k+1) / (C-i)
    return float(np.sum(w[w > 0] * x[w > 0]))


def best_of_k(scores, ks):
    """Expected best (minimum) score of k configurations drawn at random, without replacement, from the C tried.

    With ``x_(1) <= ... <= x_(C)`` the sorted scores: ``E[min_k] = sum_{i=1}^{C} x_(i) C(C - i, k - 1) / C(C, k)``
    (exact; terms of weight 0 are left out, so ``inf`` scores only count when they can be the minimum). nan scores
    count as ``inf`` (a configuration that gave no score failed).
    Args: ``scores (C,)``, one per configuration; ``ks`` an int or an array of ints in [1, C].
    Returns: an array of the shape of ``ks``.
    Reference: Dodge et al., "Show your work: improved reporting of experimental results", EMNLP 2019 (expected
    validation performance); David & Nagaraja, "Order Statistics", 3rd ed., 2003, sec. 2.1.

    Example:
      >>> best_of_k([4.0, 1.0, 3.0, 2.0], [1, 2, 4])   # k=2: (1*3 + 2*2 + 3*1) / 6
      array([2.5 , 1.66666667, 1.  ])
    """
    x = _vector("best_of_k", "scores", scores, fix="pass one score per configuration")
    x = np.sort(np.where(np.isnan(x), np.inf, x))
    ks_array = np.asarray(ks)
    C = x.size
    if not np.issubdtype(ks_array.dtype, np.integer) or np.any((ks_array < 1) | (ks_array > C)):
        raise ValueError(f"best_of_k: expected integer ks in [1, {C}] (the number of configurations), got {ks!r}; "
                         f"e.g. ks=np.arange(1, {C + 1}).")
    return np.array([_expected_min(x, int(k)) for k in ks_array.ravel()]).reshape(ks_array.shape)


def tunability(scores, *, within=0.10, offset=0.0):
    """How many random configurations are needed, in expectation, to get within ``within`` of the best one.

    The smallest k with ``best_of_k(scores, k) - offset <= (1 + within) (min(scores) - offset)``, i.e.
    ``sum_i (x_(i) - x_(1)) w_i(k) <= within (x_(1) - offset)`` with ``w_i`` the weights of ``best_of_k``; the gap is
    measured from ``offset``, the known optimum of the loss when there is one. All scores ``inf`` gives 1.
    Reference: Sivaprasad et al., "Optimizer benchmarking needs to account for hyperparameter tuning", ICML 2020.

    Example:
      >>> tunability([1.0, 1.05, 2.0, 3.0])   # best_of_k: 1.7625, 1.1833, 1.0125 at k = 1, 2, 3
      3
    """
    x = _vector("tunability", "scores", scores, fix="pass one score per configuration")
    x = np.sort(np.where(np.isnan(x), np.inf, x))
    if not within >= 0:
        raise ValueError(f"tunability: within must be >= 0, got within={within!r}; e.g. within=0.10 for 10%.")
    if not offset <= x[0]:
        raise ValueError(f"tunability: expected offset <= min(scores) = {x[0]}, got offset={offset!r}; pass the "
                         f"known optimum of the loss (0.0 for a non-negative loss).")
    if np.isinf(x[0]):
        return 1
    return next(k for k in range(1, x.size + 1) if _expected_min(x - x[0], k) <= within * (x[0] - offset))


def speedup(reference_curve, curve, steps, *, tie=0.0):
    """Speed-up over a tuned reference: how much sooner a rule reached the best loss it reached.

    On running minima (nan as ``inf``) ``r = cummin(curve)``, ``q = cummin(reference_curve)``, with ``L = r[-1]``:
    ``value = t_ref / t_rule``, ``t_rule = steps[min{e : r[e] <= L}]``, ``t_ref = steps[min{e : q[e] <= L}]``: > 1 if
    the rule is faster, 1 for identical curves. Reference never at L: ``(steps[-1] / t_rule, True)``, a censored lower
    bound; no finite loss: ``(0.0, False)``. Running minima keep a noisy curve from being judged by its last value;
    ``tie``: the reference reaches L when ``q <= L + tie`` (rounding-level differences are ties).
    Args: ``reference_curve, curve (E,)`` losses at the evaluation points; ``steps (E,)`` increasing, last > 0.
    Returns: ``(value, censored)``.
    Reference: Metz et al., "VeLO: Training versatile learned optimizers by scaling up", 2022, sec. 4 (speed-up).

    Example:
      >>> speedup([4.0, 2.0, 1.0, 0.5], [4.0, 3.0, 2.5, 2.0], [25, 50, 75, 100])
      (0.5, False)
    """
    steps = _steps("speedup", steps)
    ref, cur = (_vector("speedup", name, v, fix="pass the loss at each evaluation point")
                for name, v in (("reference_curve", reference_curve), ("curve", curve)))
    if not ref.shape == cur.shape == steps.shape:
        raise ValueError(f"speedup: expected reference_curve, curve and steps of one shape, got {ref.shape}, "
                         f"{cur.shape} and {steps.shape}; evaluate both rules at the same steps.")
    r = np.minimum.accumulate(np.where(np.isnan(cur), np.inf, cur))
    q = np.minimum.accumulate(np.where(np.isnan(ref), np.inf, ref))
    if not np.isfinite(r[-1]):
        return 0.0, False
    t_rule = steps[np.argmax(r <= r[-1])]
    hit = q <= r[-1] + tie
    if not hit.any():
        return float(steps[-1] / t_rule), True
    return float(steps[np.argmax(hit)] / t_rule), False
