"""A lab study as a report: paired comparisons with the reference, a Markdown page, a table of runs, files.

- ``compare(study)``: one row per workload and rule: median test loss and test metrics with bootstrap intervals,
  time to target (Kaplan-Meier median with an interval, in steps, gradient evaluations and seconds), tunability,
  speed-up over the reference, divergences; for every rule but the reference, the paired comparison of final test
  losses with the reference over the evaluation seeds, Holm-corrected within each workload, and its verdict.
- ``performance_profiles``, ``markdown`` and ``runs_table``; ``fnn/lab/output.py`` writes them to a folder.

The statistics are those of ``fnn/lab/stats.py`` (stated there once); a diverged run scores ``+inf``.
"""
from __future__ import annotations

import math
import re

import numpy as np

from fnn.lab import stats
from fnn.lab.results import score

__all__ = ["compare", "performance_profiles", "markdown", "runs_table", "fmt", "fmt_ci", "DEFAULT_TAUS",
           "TIE_FRACTION"]
DEFAULT_TAUS = (1.0, 1.5, 2.0, 4.0, 10.0)
TIE_FRACTION = 0.01  # differences under 1% of the seeds' spread are ties (fnn's and optax's Adam differ by rounding)


def fmt(x, digits: int = 3, *, sci: bool = False) -> str:
    """A number in ``digits`` significant digits, compactly: exponents without ``+`` and leading zeros, thousands
    written out (unless ``sci``), ``None`` as ``-``.

    Example:
      >>> [fmt(v) for v in (0.012345, 1234.5, 2.5e-7, 3e8, float("inf"), None, 7)], fmt(1.5e5, sci=True)
      (['0.0123', '1230', '2.5e-7', '3e8', 'inf', '-', '7'], '1.5e5')
    """
    if x is None:
        return "-"
    x = float(x)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    rounded = float(f"{x:.{digits}g}")
    if not sci and 1e3 <= abs(rounded) < 1e6:
        return f"{rounded:.0f}"
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2),
                  f"{rounded:.{digits}g}")


def fmt_ci(estimate, low, high) -> str:
    """``estimate [low, high]`` with ``fmt``.

    Example:
      >>> fmt_ci(0.51234, 0.4, 0.6789)
      '0.512 [0.4, 0.679]'
    """
    return f"{fmt(estimate)} [{fmt(low)}, {fmt(high)}]"


def _metrics(r) -> list[str]:
    return [k for k in r.eval_final if k.startswith("test_") and k != "test_loss"]


def _step_s(r):
    return None if not r.timing or r.timing.get("step_s") is None else float(r.timing["step_s"])


def _check_paired(study, workload, rule):
    a, b = study.get(workload, rule), study.get(workload, study.reference)
    if not np.array_equal(a.eval_seeds, b.eval_seeds):
        raise ValueError(f"compare: rule {rule!r} on {workload!r} was evaluated on seeds {a.eval_seeds.tolist()}, the "
                         f"reference {study.reference!r} on {b.eval_seeds.tolist()}; paired comparisons need the "
                         f"same seeds for every rule: re-run the study with one eval_seeds for all rules.")
    return a, b


def compare(study, *, level: float = 0.95, alpha: float = 0.05, seed: int = 0, n_resamples: int = 10_000,
            tie_fraction: float = TIE_FRACTION) -> list:
    """Every rule on every workload, summarised and compared with ``study.reference`` over the paired seeds.

    Per row (workload, rule): ``test_loss`` (median of ``RuleResult.test_loss``, ``+inf`` = diverged) with its
    percentile bootstrap interval ``test_loss_low``/``test_loss_high``; ``metrics``: ``{name: (median, low, high)}``
    of each ``test_<metric>`` over the runs that did not diverge (``metric`` and ``metric_*`` repeat the first one);
    time to ``study.targets[workload]`` on the evaluation validation curves (``stats.time_to_target``), as the
    Kaplan-Meier median with its bootstrap interval in steps (``steps_to_target[_low|_high]``), in gradient
    evaluations (``grads_to_target*``: one per step for these first-order rules) and in seconds
    (``seconds_to_target*``: steps x the timing pass's median step time; ``None`` without timing), and ``reached``
    (the fraction of runs that reached it); ``tunability`` (``stats.tunability`` of ``tune_scores``, measured from
    ``study.optima[workload]`` when known, clipped to the best score); ``speedup`` and ``speedup_censored``
    (``stats.speedup`` of the median validation curves over the reference's; ``None`` for the reference);
    ``diverged`` (count). For rules other than the reference, the paired comparison of test losses
    (``stats.paired_comparison(rule, reference)``, ``d = rule - reference``): ``diff``, ``diff_low``, ``diff_high``,
    ``p_beats`` (P(rule beats reference)), ``p_value`` (Wilcoxon), ``p_holm`` (Holm over the comparisons of the
    same workload: one family per workload) and ``verdict`` (``stats.verdict`` with names ``(rule, reference)``);
    ``None`` for the reference.

    Args:
      study: a ``fnn.lab.results.Study``. level: interval coverage. alpha: family-wise error rate of the verdicts.
      seed: seed of every bootstrap. n_resamples: bootstrap resamples (Kaplan-Meier: a fifth of them, >= 200).
      tie_fraction: paired test losses closer than this fraction of the seeds' spread (the standard deviation of
        the reference's and the rule's finite test losses together) are ties, and so are speed-up levels within that
        fraction of the reference's final validation spread (``stats.paired_comparison``, ``stats.speedup``'s
        ``tie``): float rounding amplified by training is not a win, while a seed-to-seed effect is.

    Returns:
      A list of dicts, workloads in order, rules in order within each.
    """
    rows, tested = [], []
    for w in study.workloads:
        ref = study.get(w, study.reference)
        ref_median = np.median(score(ref.eval_curves["val_loss"]), axis=0)
        for rule in study.rules:
            r, _ = _check_paired(study, w, rule)
            row = {"workload": w, "rule": rule, "reference": study.reference, "n": int(r.test_loss.size),
                   "best": dict(r.best), "target": study.targets.get(w)}
            row["test_loss"], row["test_loss_low"], row["test_loss_high"] = stats.bootstrap_ci(
                r.test_loss, level=level, n_resamples=n_resamples, seed=seed)
            row["metrics"] = {}
            for name in _metrics(r):
                v = np.asarray(r.eval_final[name], float)
                v = v[np.isfinite(v)]
                row["metrics"][name[5:]] = (stats.bootstrap_ci(v, level=level, n_resamples=n_resamples, seed=seed)
                                            if v.size else (math.nan,) * 3)
            first = next(iter(row["metrics"].items()), (None, (None, None, None)))
            row["metric"], (row["metric_median"], row["metric_low"], row["metric_high"]) = first
            times, reached = stats.time_to_target(r.eval_curves["val_loss"], r.steps, study.targets[w])
            km = stats.km_median_ci(times, reached, level=level, n_resamples=max(200, n_resamples // 5), seed=seed)
            step_s, per_step = _step_s(r), 1.0
            for unit, factor in (("steps", 1.0), ("grads", per_step), ("seconds", step_s)):
                for suffix, value in zip(("", "_low", "_high"), km):
                    row[f"{unit}_to_target{suffix}"] = None if factor is None else value * factor
            row["reached"] = float(np.mean(reached))
            finite = score(r.tune_scores)
            opt = study.optima.get(w)
            offset = 0.0 if opt is None else min(float(opt), float(finite.min()))
            row["tunability"] = stats.tunability(r.tune_scores, offset=offset)
            if rule == study.reference:
                row["speedup"] = row["speedup_censored"] = None
            else:
                curve = np.median(score(r.eval_curves["val_loss"]), axis=0)
                row["speedup"], row["speedup_censored"] = stats.speedup(
                    ref_median, curve, r.steps, tie=tie_fraction * _spread(ref.final_val))
            row["diverged"] = int(np.sum(r.diverged))
            for key in ("diff", "diff_low", "diff_high", "p_beats", "p_value", "p_holm", "verdict"):
                row[key] = None
            if rule != study.reference:
                c = stats.paired_comparison(r.test_loss, ref.test_loss, level=level, n_resamples=n_resamples,
                                            seed=seed, tie=tie_fraction * _spread(r.test_loss, ref.test_loss))
                row.update(diff=c["diff"], diff_low=c["low"], diff_high=c["high"], p_beats=c["p_beats"],
                           p_value=c["p_value"])
                tested.append(row)
            rows.append(row)
    for w in study.workloads:  # one family per workload: its rules against the reference
        family = [row for row in tested if row["workload"] == w]
        for row, p in zip(family, stats.holm([row["p_value"] for row in family]) if family else ()):
            row["p_holm"] = float(p)
            row["verdict"] = stats.verdict(row["diff_low"], row["diff_high"], p, alpha=alpha,
                                           names=(row["rule"], study.reference))
    return rows


def _spread(*scores) -> float:
    """The standard deviation of the finite scores pooled (0 when fewer than two): the seed-to-seed scale."""
    v = np.concatenate([np.asarray(x, float) for x in scores])
    v = v[np.isfinite(v)]
    return float(np.std(v)) if v.size > 1 else 0.0


def _steps_to_target(study, workload, rule):
    r = study.get(workload, rule)
    return stats.time_to_target(r.eval_curves["val_loss"], r.steps, study.targets[workload])


def performance_profiles(study, taus=DEFAULT_TAUS):
    """Performance profiles of the rules over the workloads, the cost being the Kaplan-Meier median steps to target.

    ``costs[p, s] = km_median(time_to_target(...))`` of rule s on workload p (``inf`` when its median never reaches
    the target); ``rho = stats.performance_profile(costs, taus)``.

    Returns:
      ``(rules, rho)``: the rule names and the ``(S, len(taus))`` fractions.
    """
    costs = np.array([[stats.km_median(*_steps_to_target(study, w, rule)) for rule in study.rules]
                      for w in study.workloads])
    return list(study.rules), stats.performance_profile(costs, np.asarray(taus, dtype=float))


def _config(best: dict) -> str:
    return ", ".join(f"{k}={fmt(v, 4)}" for k, v in best.items()) or "-"  # 4 digits: b2 = 0.9999 is not 1


def _range(seeds) -> str:
    seeds = [int(s) for s in seeds]
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]} ({len(seeds)})"
    return ", ".join(map(str, seeds))


def _table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def _header(study) -> list[str]:
    m = study.manifest or {}
    first = study.get(study.workloads[0], study.rules[0])
    lines = ["# fnn lab report", "",
             f"Rules: {', '.join(f'`{r}`' + (' (reference)' if r == study.reference else '') for r in study.rules)}."
             f" Search: {m.get('search', first.search)}, budget {m.get('budget', first.tune_scores.size)} "
             f"configuration(s) per rule and workload, tuning seeds "
             f"{_range(m.get('tuning_seeds', range(first.tune_curves.shape[1])))}, evaluation seeds "
             f"{_range(first.eval_seeds)} (fresh, paired across rules)."]
    if m.get("versions") or m.get("device"):
        versions = ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())
        device = m.get("device") or {}
        lines.append(f"Run with {versions or 'unknown versions'} on {device.get('kind', '?')} "
                     f"({device.get('platform', '?')} x{device.get('count', '?')})"
                     + (f", {fmt(m['wall_s'])} s in all" if m.get("wall_s") is not None else "")
                     + (f"; started {m['started_utc']}" if m.get("started_utc") else "") + ".")
    if m.get("command"):
        lines.append(f"Command: `{m['command']}`.")
    lines += ["", "## Workloads", ""]
    descriptions, epochs = m.get("descriptions") or {}, m.get("epochs") or {}
    for w in study.workloads:
        extra = [f"{epochs[w]} epochs"] if w in epochs else []
        extra.append(f"target validation loss {fmt(study.targets.get(w))}")
        if study.optima.get(w) is not None:
            extra.append(f"optimum {fmt(study.optima[w])}")
        desc = f": {descriptions[w]}" if descriptions.get(w) else ""
        lines.append(f"- `{w}`{desc} ({'; '.join(extra)})")
    lines += ["", "## Search spaces", ""]
    spaces = m.get("spaces") or {}
    for rule in study.rules:
        space = spaces.get(rule) or study.get(study.workloads[0], rule).space
        lines += [f"`{rule}`:", "", "```", space, "```", ""]
    return lines


def _workload_section(study, w, rows) -> list[str]:
    ref = study.reference
    metric = next((row["metric"] for row in rows if row["metric"]), None)
    header = ["rule", "best config", "median test loss [CI]", *([f"test {metric} [CI]"] if metric else []),
              "steps to target: KM median [CI]", "reached", "tunability", f"speed-up vs {ref}", "diverged"]
    body = []
    for row in rows:
        speed = "1 (reference)" if row["rule"] == ref else \
            ("&ge; " if row["speedup_censored"] else "") + fmt(row["speedup"]) + "x"
        m = [fmt_ci(*row["metrics"][metric])] if metric and metric in row["metrics"] else (["-"] if metric else [])
        body.append([f"`{row['rule']}`", _config(row["best"]), fmt_ci(row["test_loss"], row["test_loss_low"],
                     row["test_loss_high"]), *m, fmt_ci(row["steps_to_target"], row["steps_to_target_low"],
                     row["steps_to_target_high"]), f"{100 * row['reached']:.0f}%",
                     f"{row['tunability']}/{len(study.get(w, row['rule']).tune_scores)}", speed,
                     f"{row['diverged']}/{row['n']}"])
    n = rows[0]["n"]
    return [f"## `{w}`", "", f"Target: validation loss {fmt(study.targets.get(w))}, the level the tuned {ref} reaches "
            f"by the end of the budget (its median final validation loss; so about half of {ref}'s own runs reach it "
            f"only at the end); {n} evaluation seeds per rule.", "", *_table(header, body), ""]


def _seeds_needed(m: int, alpha: float) -> int:
    """The fewest seeds n with ``m * 2 / 2^n < alpha``: Holm over m comparisons can then reach a verdict."""
    return next(n for n in range(1, 64) if m * 2.0 ** (1 - n) < alpha)


def markdown(study, comparisons=None, *, taus=DEFAULT_TAUS, level: float = 0.95, alpha: float = 0.05) -> str:
    """The report as Markdown: what was run, a table per workload, the paired comparisons, performance profiles,
    timings and how to read them.

    Args:
      study: a ``Study``. comparisons: ``compare(study)`` (computed with ``level``/``alpha`` when ``None``).
      taus: where to read the performance profiles.

    Returns:
      The Markdown text.
    """
    rows = compare(study, level=level, alpha=alpha) if comparisons is None else comparisons
    pct, ref = f"{100 * level:g}%", study.reference
    lines = _header(study)
    for w in study.workloads:
        lines += _workload_section(study, w, [row for row in rows if row["workload"] == w])
    lines += ["## Paired comparisons with the reference", "",
              f"Final test loss, rule - `{ref}`, over the paired evaluation seeds (negative: the rule is better).", ""]
    body = [[f"`{row['workload']}`", f"`{row['rule']}` vs `{ref}`", fmt_ci(row["diff"], row["diff_low"],
             row["diff_high"]), fmt(row["p_beats"]), fmt(row["p_value"]), fmt(row["p_holm"]), f"**{row['verdict']}**"]
            for row in rows if row["verdict"] is not None]
    lines += [*_table(["workload", "comparison", f"median difference [{pct} CI]", "P(rule beats ref)",
                       "Wilcoxon p", "Holm p", "verdict"], body), ""]
    names, rho = performance_profiles(study, taus)
    lines += ["## Performance profiles", "",
              f"Fraction of the {len(study.workloads)} workload(s) on which a rule's Kaplan-Meier median steps to "
              f"target is within tau times the fastest rule's (figures/profiles.png).", "",
              *_table(["rule", *(f"tau={fmt(t)}" for t in taus)],
                      [[f"`{n}`", *(fmt(v) for v in rho[i])] for i, n in enumerate(names)]), ""]
    body = []
    for row in rows:
        t = study.get(row["workload"], row["rule"]).timing
        if not t:
            body.append([f"`{row['workload']}`", f"`{row['rule']}`", "-", "-", "-", "-"])
            continue
        iqr = t.get("step_s_iqr")
        spread = f" &plusmn; {fmt(1e3 * (iqr[1] - iqr[0]))}" if iqr is not None else ""
        body.append([f"`{row['workload']}`", f"`{row['rule']}`", fmt(t.get("compile_s")),
                     fmt(1e3 * t["step_s"]) + spread, fmt(t.get("flops"), sci=True),
                     fmt_ci(row["seconds_to_target"], row["seconds_to_target_low"], row["seconds_to_target_high"])])
    lines += ["## Timing", "", "One training step of each rule's best configuration, compiled alone (fnn.lab.timing).",
              "", *_table(["workload", "rule", "compile s", "step ms (median &plusmn; IQR)", "FLOPs/step",
                           "seconds to target: KM median [CI]"], body), ""]
    m = max((sum(1 for r in rows if r["workload"] == w and r["verdict"] is not None) for w in study.workloads),
            default=0)
    n = min((r["n"] for r in rows if r["verdict"] is not None), default=0)
    if m and m * 2.0 ** (1 - n) >= alpha:  # the smallest exact two-sided Wilcoxon p with n seeds is 2 / 2^n
        lines += [f"**No verdict is possible here**: with {n} evaluation seeds the smallest Wilcoxon p is "
                  f"2/2^{n} = {fmt(2.0 ** (1 - n))}, and Holm over {m} comparisons needs it below {alpha:g} / {m}; "
                  f"run more evaluation seeds (--eval-seeds {_seeds_needed(m, alpha)} or more).", ""]
    lines += ["## How to read this", "",
              f"Every interval is a {pct} percentile bootstrap interval over the evaluation seeds. Comparisons are "
              f"paired: seed s of every rule starts from the same initialisation and sees the same batch order, so "
              f"each rule is compared with `{ref}` seed by seed (median of the differences, Wilcoxon signed-rank "
              f"test, P(rule beats ref) = share of seeds where the rule's test loss is lower, ties counting half). "
              f"Paired differences smaller than {fmt(100 * TIE_FRACTION)}% of the seeds' spread (the standard "
              f"deviation of the two rules' test losses) count as ties: float rounding, amplified by training, is "
              f"not a win. The p-values are Holm-corrected within each workload (its "
              f"{m} comparison(s) with the reference); a verdict is \"inconclusive\" when the interval of the "
              f"difference contains 0 or the adjusted p is >= {alpha:g}. A diverged run scores +inf (worst). Time "
              f"to target counts optimizer steps (= gradient evaluations for these first-order rules) until the "
              f"validation loss first reaches the workload's target; runs that never reach it are censored at the "
              f"budget and enter the Kaplan-Meier estimate as such, so a median of inf means fewer than half of "
              f"the runs got there. Tunability k/C: the expected best of k configurations drawn from the C tried "
              f"comes within 10% of the best one's gap to the workload's optimum (to 0 when none is known); C/C "
              f"means only the best configuration will do. Speed-up is the reference's steps to reach the "
              f"best median validation loss the rule reached over the rule's steps to it (> 1: faster; &ge;: the "
              f"reference never got there). Step times come from one process on a possibly shared machine (10-40% "
              f"noise between runs): compare them within one report. Numbers have 3 significant digits.", ""]
    return "\n".join(lines)


def runs_table(study) -> list:
    """One row per run of the study: every tuning run (configuration x tuning seed) and every evaluation run.

    Columns: ``workload, rule, phase ("tune" | "eval"), config`` (index into ``tune_hparams``; for evaluation runs
    the chosen configuration's), ``seed``, one column per hyper-parameter of the study (``None`` where the rule has
    none), ``final_val_loss`` (``nan`` if diverged), ``test_loss`` and ``test_<metric>`` (evaluation runs),
    ``diverged``, ``steps_to_target`` and ``reached`` (evaluation runs; censored runs at the budget).
    """
    results = [study.get(w, rule) for w in study.workloads for rule in study.rules]
    hp_names = list(dict.fromkeys(k for r in results for k in r.tune_hparams))
    metrics = list(dict.fromkeys(k for r in results for k in r.eval_final if k.startswith("test_")))
    tune_seeds = (study.manifest or {}).get("tuning_seeds")
    rows = []

    def row(r, phase, c, seed, hp, final, **extra):
        out = {"workload": r.workload, "rule": r.rule, "phase": phase, "config": c, "seed": int(seed)}
        out.update({k: (None if hp.get(k) is None else float(hp[k])) for k in hp_names})
        out["final_val_loss"] = float(final)
        out.update({k: None for k in metrics})
        out.update(diverged=not math.isfinite(float(final)), steps_to_target=None, reached=None)
        out.update(extra)
        return out

    for r in results:
        C, S, _ = r.tune_curves.shape
        seeds = tune_seeds if tune_seeds is not None and len(tune_seeds) == S else range(S)
        for c in range(C):
            hp = {k: v[c] for k, v in r.tune_hparams.items()}
            rows += [row(r, "tune", c, s, hp, r.tune_curves[c, i, -1]) for i, s in enumerate(seeds)]
        chosen = int(np.argmin(score(r.tune_scores)))
        times, reached = stats.time_to_target(r.eval_curves["val_loss"], r.steps, study.targets[r.workload])
        for i, s in enumerate(r.eval_seeds):
            rows.append(row(r, "eval", chosen, s, r.best, r.eval_curves["val_loss"][i, -1],
                            **{k: float(r.eval_final[k][i]) for k in metrics if k in r.eval_final},
                            diverged=bool(r.diverged[i]), steps_to_target=float(times[i]), reached=bool(reached[i])))
    return rows
