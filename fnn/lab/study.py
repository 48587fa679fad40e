"""The lab's protocol: tune every rule with the same budget, re-run its best configuration on fresh seeds, compare.

For each workload and each rule (``run_study``):

1. **Tune.** ``budget`` configurations from the rule's printed search space (``fnn.lab.search``), drawn by the
   chosen method (one-shot ``"defaults"`` when ``budget == 1``; ``"grid"``, ``"random"``, ``"sobol"``, ``"halton"``;
   ``"bayes"``: a Sobol batch, then rounds proposed by a Gaussian process with expected improvement), each trained
   from ``tuning_seeds`` seeds. All configurations x seeds of a round are one compiled program
   (``fnn/lab/programs.py``). A configuration's score is the median over the tuning seeds of its final *validation*
   loss (``+inf`` for a run that diverged); the best score wins.
2. **Evaluate.** The winner is re-run from ``eval_seeds`` fresh seeds (numbers ``1000, 1001, ...``, never used for
   tuning), in the same compiled program (padded), and scored on the *test* split.
3. **Target.** The tuned reference rule's median final validation loss over the evaluation seeds is the workload's
   target; each run's time to it (in steps) is read off its validation curve, censored at the budget when missed.

Seeds are paired: seed ``s`` gives the same starting point and batch order to every rule on a workload, so two rules
are compared seed by seed (``fnn/lab/stats.py``). Nothing here is random except through the seed.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import platform
import sys
import time
from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np

from fnn.lab import bayes
from fnn.lab import search as search_lib
from fnn.lab import workloads as workloads_lib
from fnn.lab.programs import make_program, run_program
from fnn.lab.results import RuleResult, Study, score

__all__ = ["Rule", "rule_parts", "run_study", "tune", "resolve_workloads", "SEARCH_METHODS", "DEFAULT_RULES",
           "EVAL_SEED_OFFSET"]

SEARCH_METHODS = ("defaults", "grid", "random", "sobol", "halton", "bayes")
DEFAULT_RULES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "optax:adam")
EVAL_SEED_OFFSET = 1000
BAYES_BATCH = 4


class Rule(NamedTuple):
    """A rule the lab can tune: a name, ``make_optimizer(**hp)`` and its search space (``fnn.lab.search.Dim``s).

    The built-in rules are given by name (``"adam"``, ``"optax:adam"``); a ``Rule`` adds one of your own, e.g. a
    variant with another space: ``Rule("adam_small_lr", fnn.optimizers.adam, (Dim("learning_rate", 1e-5, 1e-3,
    "log", 1e-4),))``.
    """
    name: str
    make_optimizer: Callable
    space: tuple


def rule_parts(rule) -> Rule:
    """A ``Rule`` from a built-in name or a ``Rule``."""
    if isinstance(rule, Rule):
        if not rule.space:
            raise ValueError(f"run_study: rule {rule.name!r} has an empty search space; give at least a "
                             f"learning_rate Dim")
        return rule
    if isinstance(rule, str):
        return Rule(rule, search_lib.make_factory(rule), search_lib.space_for(rule))
    raise TypeError(f"run_study: expected rule names or fnn.lab.Rule objects, got {type(rule).__name__}; pass e.g. "
                    f"'adam' or Rule(name, make_optimizer, space)")


def _check_epochs(epochs, names):
    if epochs is None:
        return
    if isinstance(epochs, dict):
        unknown = sorted(set(epochs) - set(names))
        bad = {k: v for k, v in epochs.items() if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1}
        if unknown or bad:
            raise ValueError(f"run_study: epochs must map workload names to positive integers, got unknown names "
                             f"{unknown} and bad values {bad}; the workloads are {names}")
    elif isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"run_study: epochs must be a positive integer (every workload), a dict {{workload: int}} "
                         f"or None (each workload's default), got epochs={epochs!r}")


def _check_factory(rule: "Rule") -> None:
    """Build the rule once from its space's defaults, on the host: a Dim named after no keyword of the optimizer is
    reported here, naming the rule and its dimensions, not from inside a compiled program."""
    try:
        rule.make_optimizer(**{d.name: float(d.default) for d in rule.space})
    except TypeError as e:
        raise ValueError(f"run_study: rule {rule.name!r} cannot be built from its search space "
                         f"{[d.name for d in rule.space]} ({e}); name each Dim after a keyword argument of the "
                         f"optimizer, e.g. Dim('learning_rate', ...)") from None


def _check(budget, tuning_seeds, eval_seeds, search, rules, reference):
    for name, v in (("budget", budget), ("tuning_seeds", tuning_seeds), ("eval_seeds", eval_seeds)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"run_study: {name} must be a positive integer, got {name}={v!r}; e.g. budget=16, "
                             f"tuning_seeds=3, eval_seeds=10")
    if search not in SEARCH_METHODS:
        raise ValueError(f"run_study: search must be one of {', '.join(SEARCH_METHODS)}, got {search!r}")
    if not rules:
        raise ValueError("run_study: expected at least one rule, e.g. rules=('sgd', 'adam')")
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"run_study: each rule once, got {names}")
    if reference not in names:
        raise ValueError(f"run_study: the reference rule {reference!r} is not among the rules {names}; add it "
                         f"or pass reference= one of them")


def resolve_workloads(workloads) -> list:
    """Workload objects from names, suite names (``fnn.lab.workloads.SUITES``) and ``Workload`` objects, in order,
    each once."""
    if isinstance(workloads, (str, workloads_lib.Workload)):
        workloads = [workloads]
    out = []
    for item in workloads:
        if isinstance(item, workloads_lib.Workload):
            out.append(item)
        elif isinstance(item, str) and item in workloads_lib.SUITES:
            out.extend(workloads_lib.get(n) for n in workloads_lib.SUITES[item])
        elif isinstance(item, str):
            out.append(workloads_lib.get(item))  # a clear error for an unknown name
        else:
            raise TypeError(f"run_study: expected workload names or Workload objects, got {type(item).__name__}; "
                            f"pass e.g. 'mlp_digits' or fnn.lab.workloads.from_model(...)")
    names = [w.name for w in out]
    if len(set(names)) != len(names):
        raise ValueError(f"run_study: each workload once, got {names}")
    return out


def _median_scores(val_final, n_configs, n_seeds):
    """``(C,)`` median over the seeds of each configuration's final validation score (``nan`` -> ``+inf``)."""
    return np.median(score(val_final).reshape(n_configs, n_seeds), axis=1)


def tune(workload, rule, *, budget: int, tuning_seeds: int, search: str, epochs: int, seed: int = 0,
         n_runs: int | None = None, mesh=None):
    """Tune one rule on one workload; returns ``(program, hp_tried, curves (C, S, E), scores (C,), seconds)``.

    ``n_runs`` is the size the program is compiled for (at least ``budget x tuning_seeds``, or one Bayesian round's
    runs); the evaluation reuses it.
    """
    rule = rule_parts(rule)
    space, factory = rule.space, rule.make_optimizer
    seeds = np.arange(tuning_seeds)
    if search == "defaults" or budget == 1:
        rounds = [search_lib.defaults(space)]
    elif search == "bayes":
        rounds = None
    else:
        rounds = [search_lib.sample(space, budget, search, seed=seed)]
    sizes = bayes.bayes_schedule(budget, BAYES_BATCH) if rounds is None else [len(next(iter(rounds[0].values())))]
    n_runs = max(n_runs or 0, max(sizes) * tuning_seeds)
    if mesh is not None:  # the runs' axis is split evenly over the mesh's devices (padded runs are dropped)
        n_runs = -(-n_runs // mesh.devices.size) * mesh.devices.size
    example = {d.name: np.zeros(n_runs, np.float32) for d in space}
    program = make_program(workload, factory, epochs=epochs, example_hp=example, n_runs=n_runs, mesh=mesh)
    tried, curves, scores, seconds = [], [], [], 0.0
    for i, size in enumerate(sizes):
        if rounds is not None:
            hp = rounds[i]
        elif i == 0:
            hp = search_lib.sample(space, size, "sobol", seed=seed)
        else:
            seen = {k: np.concatenate([t[k] for t in tried]) for k in tried[0]}
            hp = bayes.propose(space, seen, np.concatenate(scores), size, seed=seed + i)
        c = len(next(iter(hp.values())))
        runs_hp = {k: np.repeat(np.asarray(v, np.float32), tuning_seeds) for k, v in hp.items()}
        out, s = run_program(program, workload, runs_hp, np.tile(seeds, c), seed=seed, mesh=mesh)
        seconds += s
        tried.append({k: np.asarray(v, np.float64) for k, v in hp.items()})
        curves.append(out.curves["val_loss"].reshape(c, tuning_seeds, -1))
        scores.append(_median_scores(out.curves["val_loss"][:, -1], c, tuning_seeds))
    hp_tried = {k: np.concatenate([t[k] for t in tried]) for k in tried[0]}
    return program, hp_tried, np.concatenate(curves), np.concatenate(scores), seconds


def run_study(workloads: Sequence = ("quick",), rules: Sequence[str] = DEFAULT_RULES, *, budget: int = 16,
              tuning_seeds: int = 3, eval_seeds: int = 10, search: str = "random", reference: str | None = None,
              seed: int = 0, epochs: dict | int | None = None, timing: bool = True, mesh=None, progress: bool = True,
              command: str | None = None, print_fn: Callable[[str], None] | None = None) -> Study:
    """Run the whole protocol for every workload and rule; returns a ``Study`` (``fnn/lab/results.py``).

    Args:
      workloads: names (``fnn.lab.workloads.WORKLOADS``), suite names (``"quick"``, ``"full"``) or ``Workload``
        objects (``fnn.lab.workloads.from_model``).
      rules: rule names with a search space (``fnn.lab.search.SPACES``: fnn's rules and ``"optax:<name>"``) or
        ``Rule`` objects (your own rule or space).
      budget: configurations tried per rule (the same for every rule); 1 means the rule's defaults (one-shot).
      tuning_seeds: seeds per configuration while tuning.
      eval_seeds: fresh seeds the best configuration is re-run on (>= 10 for the statistics to mean much).
      search: ``"random"``, ``"sobol"``, ``"halton"``, ``"grid"``, ``"bayes"`` or ``"defaults"``.
      reference: the rule others are compared with (default ``"adam"`` when present, else the first rule).
      seed: the base seed of every key and every sampler.
      epochs: epochs per workload (an int for all, ``{name: int}``, or ``None`` for each workload's default).
      timing: also run the timing pass (``fnn.lab.timing``) for every rule's best configuration.
      mesh: a one-axis ``jax.sharding.Mesh`` to split the runs over (``fnn.train.data_mesh()``: every device of
        every process; ``fnn lab --shard``). The runs' axis is padded to a multiple of the devices.
      progress: show a progress bar (tqdm, on stderr).
      command: the command line, recorded in the manifest.
      print_fn: where to print one line per finished (workload, rule), or ``None``.

    Returns:
      The ``Study``.
    """
    rules = [rule_parts(r) for r in rules]  # a clear error for an unknown name, before anything is compiled
    names = [r.name for r in rules]
    reference = reference or ("adam" if "adam" in names else (names[0] if names else None))
    _check(budget, tuning_seeds, eval_seeds, search, rules, reference)
    for rule in rules:
        _check_factory(rule)
    items = resolve_workloads(workloads)
    _check_epochs(epochs, [w.name for w in items])
    search = "defaults" if budget == 1 else search
    started, t_start = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    results, targets, optima, descriptions, epochs_used = {}, {}, {}, {}, {}
    bar = _progress(len(items) * len(rules), progress)
    for w in items:
        e = epochs if isinstance(epochs, int) else (epochs or {}).get(w.name, w.epochs)
        epochs_used[w.name], optima[w.name], descriptions[w.name] = e, w.optimum, w.description
        for rule in rules:
            bar.set_description(f"{w.name} / {rule.name}")
            results[(w.name, rule.name)] = _one_rule(w, rule, budget=budget, tuning_seeds=tuning_seeds,
                                                eval_seeds=eval_seeds, search=search, epochs=e, seed=seed,
                                                timing=timing, mesh=mesh)
            if print_fn is not None:
                r = results[(w.name, rule.name)]
                bar.write(print_fn, f"{w.name:>18s}  {rule.name:<14s} best {_fmt(r.best)}  median test loss "
                         f"{np.median(r.test_loss):.4g}  ({sum(r.seconds.values()):.1f} s)")
            bar.update(1)
        targets[w.name] = float(np.median(results[(w.name, reference)].final_val))
    bar.close()
    manifest = _manifest(rules, [w.name for w in items], budget, tuning_seeds, eval_seeds, search, reference, seed,
                         epochs_used, descriptions, started, time.perf_counter() - t_start, command)
    return Study(results, names, [w.name for w in items], reference, targets, optima, manifest)


def _one_rule(w, rule: Rule, *, budget, tuning_seeds, eval_seeds, search, epochs, seed, timing, mesh):
    program, hp, curves, scores, tune_s = tune(w, rule, budget=budget, tuning_seeds=tuning_seeds, search=search,
                                               epochs=epochs, seed=seed, n_runs=eval_seeds, mesh=mesh)
    best_i = int(np.argmin(scores))
    best = {k: float(v[best_i]) for k, v in hp.items()}
    eval_ids = EVAL_SEED_OFFSET + np.arange(eval_seeds)
    out, eval_s = run_program(program, w, {k: np.full(eval_seeds, v, np.float32) for k, v in best.items()}, eval_ids,
                              seed=seed, mesh=mesh)
    steps = program.steps_per_epoch * np.arange(1, epochs + 1)
    timing_result = None
    if timing:
        from fnn.lab.timing import time_rule  # the timing pass compiles single steps: only when asked
        timing_result = time_rule(w, rule.make_optimizer, best)
    return RuleResult(workload=w.name, rule=rule.name, space=search_lib.describe(rule.space), search=search,
                      tune_hparams=hp, tune_curves=curves, tune_scores=scores, best=best, eval_seeds=eval_ids,
                      eval_curves=out.curves, eval_final=out.final, steps=steps, diverged=out.diverged,
                      seconds={"compile": program.compile_s, "tune": tune_s, "eval": eval_s}, timing=timing_result,
                      paths=out.paths)


def _fmt(hp: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in hp.items())


class _NoBar:
    def set_description(self, _):
        pass

    def write(self, print_fn, line):
        print_fn(line)

    def update(self, _):
        pass

    def close(self):
        pass


class _Bar:
    """tqdm on stderr; lines printed while it runs go above it (``tqdm.write``) instead of through it."""

    def __init__(self, total):
        from tqdm.auto import tqdm
        self._tqdm = tqdm
        self.bar = tqdm(total=total, unit="rule", file=sys.stderr, leave=True)

    def set_description(self, text):
        self.bar.set_description(text)

    def write(self, print_fn, line):
        if print_fn is print:
            self._tqdm.write(line)
        else:
            print_fn(line)

    def update(self, n):
        self.bar.update(n)

    def close(self):
        self.bar.close()


def _progress(total, show):
    return _Bar(total) if show else _NoBar()


def _version() -> str:
    try:
        return importlib.metadata.version("fnn")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def _manifest(rules, workloads, budget, tuning_seeds, eval_seeds, search, reference, seed, epochs, descriptions,
              started, wall_s, command):
    import optax
    device = jax.devices()[0]
    return {
        "command": command, "started_utc": started.isoformat(timespec="seconds"), "wall_s": round(wall_s, 2),
        "versions": {"python": platform.python_version(), "jax": jax.__version__,
                     "jaxlib": importlib.metadata.version("jaxlib"), "optax": optax.__version__,
                     "numpy": np.__version__, "fnn": _version()},
        "device": {"platform": device.platform, "kind": device.device_kind, "count": jax.device_count(),
                   "machine": platform.machine()},
        "rules": [r.name for r in rules], "workloads": workloads, "descriptions": descriptions, "epochs": epochs,
        "reference": reference, "budget": budget, "search": search, "seed": seed,
        "tuning_seeds": list(range(tuning_seeds)),
        "eval_seeds": list(range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + eval_seeds)),
        "spaces": {r.name: search_lib.describe(r.space) for r in rules},
    }
