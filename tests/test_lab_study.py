"""The lab's protocol end to end: the budget is respected, tuning picks the best validation score, evaluation seeds
are fresh and paired, a planted difference is found while identical rules are "inconclusive", Bayesian search runs,
and the command line reports mistakes in one line."""
import json

import numpy as np
import pytest

import fnn.optimizers as fo
from fnn.cli import main
from fnn.lab import Dim, Rule, compare, run_study, workloads
from fnn.lab.study import EVAL_SEED_OFFSET

LR = (Dim("learning_rate", 1e-4, 1.0, "log", 0.1),)


@pytest.fixture(scope="module")
def logreg():
    return workloads.get("logreg_digits")


@pytest.fixture(scope="module")
def small(logreg):
    return run_study([logreg, "rosenbrock"], ["sgd", "momentum"], budget=4, tuning_seeds=2, eval_seeds=3,
                     reference="sgd", epochs=3, timing=False, progress=False)


def test_every_rule_gets_the_budget_and_the_best_validation_score_wins(small):
    for (w, rule), r in small.results.items():
        assert len(r.tune_scores) == 4 and r.tune_curves.shape == (4, 2, 3)
        # a configuration's score is the median over its tuning seeds of the final validation loss
        final = np.where(np.isnan(r.tune_curves[:, :, -1]), np.inf, r.tune_curves[:, :, -1])
        np.testing.assert_allclose(r.tune_scores, np.median(final, axis=1))
        i = int(np.argmin(r.tune_scores))
        assert r.best == {k: float(v[i]) for k, v in r.tune_hparams.items()}
        assert r.eval_seeds.tolist() == list(range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + 3))
        assert r.eval_curves["val_loss"].shape == (3, 3) and r.steps[-1] == 3 * r.steps[0]
    assert small.rules == ["sgd", "momentum"] and small.workloads == ["logreg_digits", "rosenbrock"]
    assert small.targets["logreg_digits"] == float(np.median(small.get("logreg_digits", "sgd").final_val))
    assert small.optima["rosenbrock"] == 0.0
    assert small.get("rosenbrock", "sgd").paths.shape == (3, 4, 2)
    assert small.get("logreg_digits", "sgd").paths is None


def test_seeds_are_paired_across_rules(small):
    a, b = small.get("rosenbrock", "sgd"), small.get("rosenbrock", "momentum")
    np.testing.assert_array_equal(a.paths[:, 0], b.paths[:, 0])   # the same starting points
    assert len({tuple(p) for p in a.paths[:, 0]}) == 3              # and a different one per seed


def test_same_seed_same_study(small, logreg):
    again = run_study([logreg, "rosenbrock"], ["sgd", "momentum"], budget=4, tuning_seeds=2, eval_seeds=3,
                      reference="sgd", epochs=3, timing=False, progress=False)
    for key, r in small.results.items():
        np.testing.assert_array_equal(again.results[key].eval_curves["val_loss"], r.eval_curves["val_loss"])
        np.testing.assert_array_equal(again.results[key].tune_scores, r.tune_scores)


def test_a_planted_difference_is_found_and_identical_rules_are_inconclusive(logreg):
    rules = [Rule("sgd", fo.sgd, LR), Rule("sgd_copy", fo.sgd, LR),
             Rule("sgd_slow", fo.sgd, (Dim("learning_rate", 1e-4, 1.0, "log", 0.003),))]
    study = run_study([logreg], rules, budget=1, eval_seeds=10, reference="sgd", epochs=4, timing=False,
                      progress=False)
    rows = {row["rule"]: row for row in compare(study)}
    assert rows["sgd_copy"]["diff"] == 0 and rows["sgd_copy"]["verdict"] == "inconclusive"
    slow = rows["sgd_slow"]
    assert slow["diff_low"] > 0 and slow["p_beats"] == 0 and slow["verdict"] == "sgd better", slow


def test_bayesian_search_tries_the_budget_in_rounds(logreg):
    study = run_study([logreg], ["sgd"], budget=6, tuning_seeds=1, eval_seeds=2, search="bayes", epochs=2,
                      timing=False, progress=False)
    r = study.get("logreg_digits", "sgd")
    assert r.search == "bayes" and len(r.tune_scores) == 6 and len(np.unique(r.tune_hparams["learning_rate"])) == 6


def test_timing_pass_and_manifest(logreg):
    study = run_study([logreg], ["adam"], budget=1, tuning_seeds=1, eval_seeds=2, epochs=1, progress=False)
    t = study.get("logreg_digits", "adam").timing
    assert t["step_s"] > 0 and t["compile_s"] > 0 and t["step_s_iqr"][0] <= t["step_s"] <= t["step_s_iqr"][1]
    assert t["flops"] is None or t["flops"] > 64 * 10 * 64   # at least the forward matmul of one batch
    m = study.manifest
    assert m["search"] == "defaults" and m["budget"] == 1 and m["eval_seeds"] == [1000, 1001]
    assert set(m["versions"]) >= {"jax", "jaxlib", "optax", "numpy", "python", "fnn"}
    assert "learning_rate" in m["spaces"]["adam"]


@pytest.mark.parametrize("kwargs, message", [
    ({"rules": ["sgd", "adamm"]}, "unknown rule 'adamm'"),
    ({"rules": ["sgd"], "reference": "adam"}, "reference rule 'adam' is not among the rules"),
    ({"rules": ["sgd", "sgd"]}, "each rule once"),
    ({"rules": ["sgd"], "budget": 0}, "budget must be a positive integer"),
    ({"rules": ["sgd"], "search": "grids"}, "search must be one of"),
    ({"rules": ["sgd"], "workloads": ["mnist_cnn"]}, "mnist_cnn"),
    ({"rules": ["sgd"], "epochs": "3"}, r"epochs must be a positive integer .* got epochs='3'"),
    ({"rules": ["sgd"], "epochs": {"rosenbrok": 2}}, r"unknown names \['rosenbrok'\]"),
    ({"rules": [Rule("bad", fo.adam, (Dim("lr", 1e-4, 1.0, "log", 1e-3),))]},
     r"rule 'bad' cannot be built from its search space \['lr'\] .*name each Dim after a keyword"),
])
def test_mistakes_are_named_before_anything_runs(kwargs, message):
    kwargs = {"workloads": ["rosenbrock"], **kwargs}
    with pytest.raises(ValueError, match=message):
        run_study(kwargs.pop("workloads"), progress=False, timing=False, **kwargs)


def test_cli_runs_a_small_study_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "lab"
    args = ["lab", "--workloads", "rosenbrock", "--rules", "sgd,adam", "--budget", "2", "--tuning-seeds", "1",
            "--eval-seeds", "2", "--epochs", "2", "--no-timing", "--out", str(out)]
    assert main(args) == 0
    assert "report written to" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rules"] == ["sgd", "adam"] and manifest["command"].startswith("fnn lab --workloads rosenbrock")
    assert (out / "figures" / "race_rosenbrock.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "already holds a lab report" in err and "--overwrite" in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--rules", "sgd,nope"], "unknown rule 'nope'; valid names: sgd"),
    (["--workloads", "rosenbrok"], "fnn lab: "),
    (["--budget", "0"], "expected a whole number >= 1"),
    (["--rules", "sgd,,adam"], "expected comma-separated names"),
    (["--search", "grids"], "invalid choice"),
    (["--rules", "sgd,adam,sgd"], "--rules lists sgd more than once; give each rule once"),
    (["--rules", "sgd,momentum", "--reference", "adam"], "--reference adam is not one of --rules sgd,momentum"),
])
def test_cli_mistakes_are_one_line(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["lab", *args, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_list(capsys):
    assert main(["lab", "--list"]) == 0
    out = capsys.readouterr().out
    assert "noisy_quadratic" in out and "quick:" in out and "optax:adam" in out
