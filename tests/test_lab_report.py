"""fnn.lab.report and fnn.lab.figures on a synthetic study whose numbers the test controls.

Two workloads x three rules, reference "adam": "sgd" equals the reference exactly on every seed, "adam_bad" is the
reference + 0.3 on every seed (on the second workload its seed 0 also diverges). The expected p-values are closed
forms: 10 differences all of one sign give the exact Wilcoxon p = 2 / 2^10; all zero gives p = 1.
"""
import csv
import json

import matplotlib.image
import numpy as np
import pytest

from fnn.lab import output, report, stats
from fnn.lab.results import RuleResult, Study

RULES = ("sgd", "adam", "adam_bad")
WORKLOADS = ("quad", "mlp")
C, S_TUNE, S_EVAL, E = 5, 3, 10, 8
PNG = b"\x89PNG\r\n\x1a\n"


def make_result(workload, rule, w_index):
    rng = np.random.default_rng(10 * w_index)  # the same numbers for every rule of a workload: paired seeds
    steps = 20 * np.arange(1, E + 1)
    rates = rng.uniform(0.2, 0.6, S_EVAL)
    val = 0.1 + 2.0 * np.exp(-rates[:, None] * np.arange(1, E + 1)[None, :])  # (S_EVAL, E), decreasing
    test_loss = 0.2 + 0.05 * rng.random(S_EVAL)
    accuracy = 0.8 + 0.1 * rng.random(S_EVAL)
    lr = np.geomspace(1e-4, 1.0, C)
    tune_curves = 0.1 + 2.0 * np.exp(-rng.uniform(0.1, 0.5, (C, S_TUNE, 1)) * np.arange(1, E + 1))
    diverged = np.zeros(S_EVAL, bool)
    paths = None
    if rule == "adam_bad":
        val, test_loss, tune_curves = val + 0.3, test_loss + 0.3, tune_curves + 0.3
        tune_curves[-1, :, 3:] = np.nan  # the largest learning rate diverges while tuning
        if workload == "mlp":
            val[0, 4:], test_loss[0], accuracy[0], diverged[0] = np.nan, np.nan, np.nan, True
    if workload == "quad":
        t = np.linspace(0, 1, E + 1)[None, :, None]
        start = np.stack([-1.5 + 0.1 * np.arange(S_EVAL), np.full(S_EVAL, 1.5)], axis=-1)[:, None, :]
        paths = start * (1 - t) ** (2 if rule == "adam" else 1) + np.array([1.0, 1.0]) * (1 - (1 - t) ** 2)
    scores = np.median(np.where(np.isnan(tune_curves[:, :, -1]), np.inf, tune_curves[:, :, -1]), axis=1)
    best_i = int(np.argmin(scores))
    return RuleResult(
        workload=workload, rule=rule, space="learning_rate  log  [0.0001, 1]  default 0.001", search="random",
        tune_hparams={"learning_rate": lr}, tune_curves=tune_curves, tune_scores=scores,
        best={"learning_rate": float(lr[best_i])}, eval_seeds=1000 + np.arange(S_EVAL),
        eval_curves={"val_loss": val, "train_loss": val - 0.05},
        eval_final={"test_loss": test_loss, "test_accuracy": accuracy}, steps=steps, diverged=diverged,
        seconds={"compile": 1.0, "tune": 2.0, "eval": 0.5},
        timing={"compile_s": 0.8, "step_s": 2e-3, "step_s_iqr": (1.9e-3, 2.2e-3), "flops": 1.5e5}, paths=paths)


@pytest.fixture(scope="module")
def study():
    results = {(w, r): make_result(w, r, i) for i, w in enumerate(WORKLOADS) for r in RULES}
    targets = {w: float(np.median(results[(w, "adam")].final_val)) for w in WORKLOADS}
    manifest = {"rules": list(RULES), "workloads": list(WORKLOADS), "budget": C, "search": "random",
                "tuning_seeds": list(range(S_TUNE)), "descriptions": {"quad": "a bowl in the plane",
                                                                       "mlp": "a small MLP on digits"},
                "spaces": {r: "learning_rate  log  [0.0001, 1]  default 0.001" for r in RULES}}
    return Study(results, list(RULES), list(WORKLOADS), "adam", targets, {"quad": 0.0, "mlp": None}, manifest)


@pytest.fixture(scope="module")
def rows(study):
    return report.compare(study, n_resamples=2000)


def row_of(rows, workload, rule):
    (row,) = [r for r in rows if r["workload"] == workload and r["rule"] == rule]
    return row


def test_compare_verdicts_and_holm(study, rows):
    assert [(r["workload"], r["rule"]) for r in rows] == [(w, r) for w in WORKLOADS for r in RULES]
    expected_raw = {"sgd": 1.0, "adam_bad": 2 / 2**10}  # all zero / all 10 differences positive
    tested = [r for r in rows if r["rule"] != "adam"]
    for r in tested:
        assert r["p_value"] == pytest.approx(expected_raw[r["rule"]], rel=1e-12)
    # Holm within each workload (a family of 2 comparisons): the smaller p gets 2p = 4 / 1024, the other stays 1
    for w in WORKLOADS:
        family = [r for r in tested if r["workload"] == w]
        np.testing.assert_allclose([r["p_holm"] for r in family], stats.holm([r["p_value"] for r in family]))
    np.testing.assert_allclose([r["p_holm"] for r in tested], [1.0, 4 / 1024, 1.0, 4 / 1024])
    for w in WORKLOADS:
        bad, sgd, ref = row_of(rows, w, "adam_bad"), row_of(rows, w, "sgd"), row_of(rows, w, "adam")
        assert bad["verdict"] == "adam better" and bad["diff"] == pytest.approx(0.3) and bad["diff_low"] > 0
        assert bad["p_beats"] == 0.0
        assert sgd["verdict"] == "inconclusive" and sgd["diff"] == 0 and sgd["p_beats"] == 0.5
        assert ref["verdict"] is None and ref["p_holm"] is None and ref["speedup"] is None
    assert row_of(rows, "mlp", "adam_bad")["diverged"] == 1 and row_of(rows, "quad", "adam_bad")["diverged"] == 0
    # a stricter alpha than the adjusted p turns the verdict inconclusive
    strict = report.compare(study, alpha=0.003, n_resamples=500)
    assert row_of(strict, "quad", "adam_bad")["verdict"] == "inconclusive"


def test_compare_summaries_match_stats(study, rows):
    for w in WORKLOADS:
        for rule in RULES:
            r, row = study.get(w, rule), row_of(rows, w, rule)
            times, reached = stats.time_to_target(r.eval_curves["val_loss"], r.steps, study.targets[w])
            assert row["steps_to_target"] == stats.km_median(times, reached)
            assert row["grads_to_target"] == row["steps_to_target"]
            assert row["seconds_to_target"] == pytest.approx(row["steps_to_target"] * 2e-3)
            assert row["reached"] == reached.mean()
            assert row["test_loss"] == np.median(r.test_loss)
            assert row["test_loss_low"] <= row["test_loss"] <= row["test_loss_high"]
            acc = r.eval_final["test_accuracy"]
            assert row["metric"] == "accuracy" and row["metric_median"] == np.median(acc[np.isfinite(acc)])
            offset = 0.0 if study.optima[w] is None else study.optima[w]
            assert row["tunability"] == stats.tunability(r.tune_scores, offset=offset)
    # the reference itself: half its runs end at or below its median, so they reach the target at the budget or before
    assert row_of(rows, "quad", "adam")["reached"] >= 0.5
    # adam_bad is 0.3 above the reference everywhere, so it never reaches the target; sgd is the reference
    assert row_of(rows, "quad", "adam_bad")["reached"] == 0 and row_of(rows, "quad", "adam_bad")["steps_to_target"] \
        == np.inf
    assert row_of(rows, "quad", "sgd")["speedup"] == stats.speedup(
        np.median(study.get("quad", "adam").eval_curves["val_loss"], axis=0),
        np.median(study.get("quad", "sgd").eval_curves["val_loss"], axis=0), study.get("quad", "sgd").steps)[0]


def test_performance_profiles(study):
    names, rho = report.performance_profiles(study, [1.0, 2.0])
    assert names == list(RULES) and rho.shape == (3, 2)
    np.testing.assert_array_equal(rho[0], rho[1])  # sgd == adam
    np.testing.assert_array_equal(rho[1], [1.0, 1.0])
    np.testing.assert_array_equal(rho[2], [0.0, 0.0])  # never reaches the target


def test_runs_table(study):
    table = report.runs_table(study)
    assert len(table) == len(WORKLOADS) * len(RULES) * (C * S_TUNE + S_EVAL)
    columns = ["workload", "rule", "phase", "config", "seed", "learning_rate", "final_val_loss", "test_loss",
               "test_accuracy", "diverged", "steps_to_target", "reached"]
    assert all(list(row) == columns for row in table)
    mine = [row for row in table if row["workload"] == "mlp" and row["rule"] == "adam_bad"]
    tune, ev = [row for row in mine if row["phase"] == "tune"], [row for row in mine if row["phase"] == "eval"]
    assert len(tune) == C * S_TUNE and len(ev) == S_EVAL
    r = study.get("mlp", "adam_bad")
    assert [(row["config"], row["seed"]) for row in tune] == [(c, s) for c in range(C) for s in range(S_TUNE)]
    assert tune[4]["final_val_loss"] == r.tune_curves[1, 1, -1] and tune[4]["learning_rate"] == r.tune_hparams[
        "learning_rate"][1]
    assert [row["diverged"] for row in tune] == [False] * (C - 1) * S_TUNE + [True] * S_TUNE
    assert [row["seed"] for row in ev] == list(range(1000, 1000 + S_EVAL))
    assert ev[0]["diverged"] and np.isnan(ev[0]["test_loss"]) and not ev[1]["diverged"]
    assert ev[1]["test_loss"] == r.eval_final["test_loss"][1] and ev[1]["test_accuracy"] == r.eval_final[
        "test_accuracy"][1]
    assert {row["config"] for row in ev} == {int(np.argmin(r.tune_scores))}
    assert all(row["test_loss"] is None and row["reached"] is None for row in tune)


def test_markdown(study, rows):
    text = report.markdown(study, rows)
    for rule in RULES:
        assert f"`{rule}`" in text
    assert text.count("**adam better**") == 2 and text.count("**inconclusive**") == 2
    assert "a bowl in the plane" in text and "learning_rate  log" in text
    bad = row_of(rows, "quad", "adam_bad")
    assert report.fmt_ci(bad["diff"], bad["diff_low"], bad["diff_high"]) in text
    assert report.fmt_ci(bad["test_loss"], bad["test_loss_low"], bad["test_loss_high"]) in text
    assert "[" in report.fmt_ci(1, 0, 2) and "Holm" in text and "Kaplan-Meier" in text and "percentile" in text
    assert "| `quad` | `adam` | 0.8 | 2 &plusmn; 0.3 | 1.5e5 |" in text  # the timing table
    assert report.fmt(0.012345) == "0.0123" and report.fmt(123456) == "123000" and report.fmt(1.5e-7) == "1.5e-7"


def is_png_with_content(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG, path
    image = matplotlib.image.imread(path)
    return image.ndim == 3 and float(image[..., :3].var()) > 0


def test_write_reads_back_and_refuses_foreign_files(study, rows, tmp_path):
    out = tmp_path / "report"
    bowl = {"quad": lambda p: (p[..., 0] - 1) ** 2 + (p[..., 1] - 1) ** 2}
    paths = output.write(study, out, objectives=bowl, comparisons=rows)
    for name in output.OUTPUTS:
        assert (out / name).is_file()
    table = report.runs_table(study)
    with open(paths["runs"], newline="") as f:
        back = list(csv.DictReader(f))
    assert back == [{k: "" if v is None else str(v) for k, v in row.items()} for row in table]
    again = Study.from_json((out / "study.json").read_text())
    assert Study.load(out / "study.json").to_json() == again.to_json()
    assert again.rules == study.rules and again.targets == study.targets and again.reference == study.reference
    for key, r in study.results.items():
        a = again.results[key]
        for field in ("tune_curves", "tune_scores", "eval_seeds", "steps", "diverged"):
            np.testing.assert_array_equal(getattr(a, field), getattr(r, field))
        for field in ("tune_hparams", "eval_curves", "eval_final"):
            assert set(getattr(a, field)) == set(getattr(r, field))
            for k in getattr(r, field):
                np.testing.assert_array_equal(getattr(a, field)[k], getattr(r, field)[k])
        assert (a.paths is None) == (r.paths is None) and (r.paths is None or np.array_equal(a.paths, r.paths))
        assert a.best == r.best
    assert json.loads((out / "manifest.json").read_text()) == study.manifest
    figures = {k: p for k, p in paths.items() if k not in ("report", "runs", "study", "manifest")}
    assert set(figures) == {f"{k}_{w}" for k in ("curves", "km", "tuning", "lr") for w in WORKLOADS} | {
        "race_quad", "profiles"}
    for p in figures.values():
        assert is_png_with_content(p)
    assert "![race_quad](figures/race_quad.png)" in (out / "report.md").read_text()
    with pytest.raises(FileExistsError, match="already holds a lab report; pass a new folder, or overwrite=True"):
        output.write(study, out, figures=False, comparisons=rows)  # a previous report is never replaced silently
    assert len(list((out / "figures").iterdir())) == len(figures)
    output.write(study, out, figures=False, comparisons=rows, overwrite=True)  # replaced, old figures removed
    assert not list((out / "figures").iterdir())
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds 'notes.txt', which is not a file of a lab report.*new or empty"):
        output.write(study, out, figures=False, comparisons=rows)
    assert (out / "notes.txt").read_text() == "mine"


def test_race_without_objective_and_errors(study, tmp_path):
    from fnn.lab import figures

    assert is_png_with_content(figures.race(study, "quad", tmp_path / "race.png"))
    with pytest.raises(ValueError, match="race: workload 'mlp' has no paths"):
        figures.race(study, "mlp", tmp_path / "race_mlp.png")
    with pytest.raises(ValueError, match="profile_plot: expected rho of shape"):
        figures.profile_plot(["a", "b"], [1, 2], np.zeros((3, 2)), tmp_path / "p.png")


def test_the_report_says_when_no_verdict_is_possible(study):
    import dataclasses

    def first(r, k):
        return dataclasses.replace(r, eval_seeds=r.eval_seeds[:k], diverged=r.diverged[:k],
                                   eval_curves={n: v[:k] for n, v in r.eval_curves.items()},
                                   eval_final={n: v[:k] for n, v in r.eval_final.items()},
                                   paths=None if r.paths is None else r.paths[:k])

    few = dataclasses.replace(study, results={key: first(r, 4) for key, r in study.results.items()})
    text = report.markdown(few)
    # 4 seeds: the smallest Wilcoxon p is 2/2^4 = 0.125; Holm over 2 comparisons needs 2/2^n < 0.025: n = 7
    assert "No verdict is possible here" in text and "--eval-seeds 7 or more" in text
    assert all(r["verdict"] in (None, "inconclusive") for r in report.compare(few, n_resamples=300))
    assert "No verdict is possible" not in report.markdown(study)
