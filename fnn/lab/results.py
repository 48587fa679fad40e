"""What a lab study returns: one ``RuleResult`` per workload and rule, gathered in a ``Study``.

Everything here is plain NumPy on the host, so a study can be saved (``Study.to_json``), read back
(``Study.from_json``), compared and reported (``fnn/lab/report.py``) without JAX.

Conventions (every array is indexed this way):

- a *run* is one configuration trained from one seed; seeds are paired across rules: seed ``s`` of every rule on a
  workload starts from the same initialisation and sees the same batch order;
- losses are "lower is better"; a run that diverged (a non-finite loss or update) is frozen at its last finite
  parameters and its values from then on are ``nan``; scores used for ranking treat ``nan`` as ``+inf``;
- ``steps[e]`` is the number of optimizer steps done when evaluation ``e`` happened (one evaluation per epoch).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

__all__ = ["RuleResult", "Study", "score"]


def score(values) -> np.ndarray:
    """Losses as scores: ``nan`` (a diverged run) becomes ``+inf``, so that it ranks last.

    Example:
      >>> score([0.5, float("nan")]).tolist()
      [0.5, inf]
    """
    v = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(v), np.inf, v)


@dataclasses.dataclass
class RuleResult:
    """One rule on one workload: its tuning (configurations x tuning seeds) and its evaluation (best x fresh seeds).

    Fields:
      workload, rule: names.
      space: the search space as printed (``fnn.lab.search.describe``).
      search: the tuning method (``"defaults"``, ``"grid"``, ``"random"``, ``"sobol"``, ``"halton"``, ``"bayes"``).
      tune_hparams: ``{name: (C,)}`` the configurations tried, in the order they were tried.
      tune_curves: ``(C, S_tune, E)`` validation loss after each epoch, per configuration and tuning seed.
      tune_scores: ``(C,)`` a configuration's score: the median over tuning seeds of its final validation loss
        (diverged runs count as ``+inf``).
      best: ``{name: float}`` the configuration chosen (lowest score).
      eval_seeds: ``(S_eval,)`` the seed numbers of the evaluation runs (fresh: none was used for tuning).
      eval_curves: ``{"train_loss" | "val_loss" | "val_<metric>": (S_eval, E)}`` per evaluation run.
      eval_final: ``{"test_loss" | "test_<metric>" | "train_objective": (S_eval,)}`` at the end of each run.
      steps: ``(E,)`` optimizer steps done at each evaluation.
      diverged: ``(S_eval,)`` whether each evaluation run diverged.
      seconds: ``{"compile": s, "tune": s, "eval": s}`` wall time of the compiled programs (compile apart).
      timing: the timing pass (``fnn.lab.timing``): ``{"compile_s", "step_s", "step_s_iqr", "flops"}`` or ``None``.
      paths: for workloads whose parameters are a point of the plane (``kind == "function"``, 2 parameters):
        ``(S_eval, E + 1, 2)`` the point at the start and after each epoch of every evaluation run; else ``None``.
    """
    workload: str
    rule: str
    space: str
    search: str
    tune_hparams: dict
    tune_curves: np.ndarray
    tune_scores: np.ndarray
    best: dict
    eval_seeds: np.ndarray
    eval_curves: dict
    eval_final: dict
    steps: np.ndarray
    diverged: np.ndarray
    seconds: dict
    timing: dict | None = None
    paths: np.ndarray | None = None

    @property
    def final_val(self) -> np.ndarray:
        """``(S_eval,)`` scores of the evaluation runs: the final validation loss, ``+inf`` where diverged."""
        return score(self.eval_curves["val_loss"][:, -1])

    @property
    def test_loss(self) -> np.ndarray:
        """``(S_eval,)`` final test loss of the evaluation runs, ``+inf`` where diverged."""
        return score(self.eval_final["test_loss"])


@dataclasses.dataclass
class Study:
    """A whole study: ``results[(workload, rule)]``, the reference rule, the targets and the manifest.

    Fields:
      results: ``{(workload, rule): RuleResult}``.
      rules, workloads: the names, in the order given.
      reference: the rule others are compared with (paired differences, speed-up, the time-to-target target).
      targets: ``{workload: float}`` the target validation loss: the median over evaluation seeds of the tuned
        reference's final validation loss.
      optima: ``{workload: float | None}`` the known minimum of each workload's training objective.
      manifest: versions, device, seeds, budget, search method, spaces, wall time.
    """
    results: dict
    rules: list
    workloads: list
    reference: str
    targets: dict
    optima: dict
    manifest: dict

    def get(self, workload: str, rule: str) -> RuleResult:
        """The result of ``rule`` on ``workload`` (a KeyError names what exists)."""
        try:
            return self.results[(workload, rule)]
        except KeyError:
            raise KeyError(f"no result for workload {workload!r} and rule {rule!r}; the study has workloads "
                           f"{self.workloads} and rules {self.rules}") from None

    def to_json(self) -> str:
        """The whole study as JSON (arrays as nested lists, ``inf``/``nan`` as JSON's ``Infinity``/``NaN``)."""
        def enc(x):
            if isinstance(x, np.ndarray):
                return x.tolist()
            if isinstance(x, dict):
                return {str(k): enc(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [enc(v) for v in x]
            if isinstance(x, (np.floating, np.integer, np.bool_)):
                return x.item()
            return x

        results = [enc(dataclasses.asdict(r)) for r in self.results.values()]
        return json.dumps({"results": results, "rules": self.rules, "workloads": self.workloads,
                           "reference": self.reference, "targets": self.targets, "optima": self.optima,
                           "manifest": enc(self.manifest)}, indent=1)

    @classmethod
    def load(cls, path) -> "Study":
        """Read the ``study.json`` that ``fnn lab`` / ``fnn.lab.write`` wrote: ``Study.load("runs/lab/study.json")``."""
        with open(path) as f:
            return cls.from_json(f.read())

    @classmethod
    def from_json(cls, text: str) -> "Study":
        """Read a study from the JSON text :meth:`to_json` wrote (arrays come back as NumPy arrays); from a file:
        :meth:`load`."""
        d = json.loads(text)
        arrays = {"tune_curves", "tune_scores", "eval_seeds", "steps", "diverged"}
        results = {}
        for r in d["results"]:
            fields: dict[str, Any] = dict(r)
            if fields.get("paths") is not None:
                fields["paths"] = np.asarray(fields["paths"], dtype=np.float64)
            for name in arrays:
                fields[name] = np.asarray(fields[name], dtype=bool if name == "diverged" else None)
            for name in ("tune_hparams", "eval_curves", "eval_final"):
                fields[name] = {k: np.asarray(v, dtype=np.float64) for k, v in fields[name].items()}
            results[(r["workload"], r["rule"])] = RuleResult(**fields)
        return cls(results, d["rules"], d["workloads"], d["reference"], d["targets"], d["optima"], d["manifest"])
