"""The optimizer lab: a whole tuning study (rules x workloads x configurations x seeds) as compiled programs.

    from fnn import lab
    study = lab.run_study("quick", ["sgd", "momentum", "adam", "optax:adam"], budget=16, eval_seeds=10)
    lab.write(study, "runs/lab")                      # report.md, runs.csv, study.json, manifest.json, figures/

The same from the command line: ``fnn lab --suite quick --out runs/lab``. The protocol and the statistics are
explained, with the formulas, in docs/lab.md. This file only re-exports, grouped by module: the table of contents.
"""
# isort: skip_file
# --- workloads: the problems, a registry, your own (fnn/lab/workloads.py, fnn/lab/problems.py) ----------------------
from fnn.lab.workloads import Workload, WORKLOADS, SUITES, get, from_model, from_function
# --- search spaces and samplers (fnn/lab/search.py); Bayesian optimisation (fnn/lab/bayes.py) ------------------------
from fnn.lab.search import Dim, SPACES, space_for, make_factory, describe, defaults, sample
from fnn.lab.bayes import gp_posterior, fit_gp, expected_improvement, propose
# --- the compiled programs: configurations x seeds in one vmap (fnn/lab/programs.py) -------------------------------
from fnn.lab.programs import make_program, run_program, run_keys
# --- the protocol (fnn/lab/study.py) and what it returns (fnn/lab/results.py) -------------------------------------
from fnn.lab.study import Rule, run_study, tune, DEFAULT_RULES, SEARCH_METHODS
from fnn.lab.results import RuleResult, Study
# --- statistics (fnn/lab/stats.py) ----------------------------------------------------------------------------------
from fnn.lab import stats
# --- the timing pass (fnn/lab/timing.py) ----------------------------------------------------------------------------
from fnn.lab.timing import time_rule
# --- the report, its figures and files (fnn/lab/report.py, figures.py, output.py) -----------------------------------
from fnn.lab.report import compare, markdown, runs_table, performance_profiles
from fnn.lab.output import write, check_out_dir
# --- the modules themselves ---------------------------------------------------------------------------------------
from fnn.lab import workloads, problems, search, bayes, programs, study, results, timing, report, figures, output

__all__ = [
    "Workload", "WORKLOADS", "SUITES", "get", "from_model", "from_function", "Dim", "SPACES", "space_for",
    "make_factory", "describe", "defaults", "sample", "gp_posterior", "fit_gp", "expected_improvement", "propose",
    "make_program", "run_program", "run_keys", "Rule", "run_study", "tune", "DEFAULT_RULES", "SEARCH_METHODS",
    "RuleResult", "Study", "stats", "time_rule", "compare", "markdown", "runs_table", "performance_profiles", "write",
    "check_out_dir", "workloads", "problems", "search", "bayes", "programs", "study", "results", "timing", "report",
    "figures", "output",
]
