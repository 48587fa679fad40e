"""``fnn lab``: a whole optimizer-comparison study from the command line (the protocol is ``fnn/lab/study.py``).

    fnn lab                                          # the quick suite, 7 rules, budget 16 x 3 seeds, 10 eval seeds
    fnn lab --rules sgd,adam,optax:adam --workloads mlp_digits,rosenbrock --budget 8 --out runs/lab
    fnn lab --suite full --search bayes --out runs/lab-full
    fnn lab --list                                   # the workloads, suites and rules that exist

It writes ``report.md`` (tables with intervals and verdicts), ``runs.csv``, ``study.json``, ``manifest.json`` and
``figures/*.png`` to ``--out`` (``fnn/lab/report.py``), and prints the report's path. A mistake in the arguments is
one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from fnn.cli.args import Parser, non_negative_int, positive_int

__all__ = ["main", "build_parser"]


def _names(text: str) -> list[str]:
    out = [t.strip() for t in text.split(",")]
    if not all(out):
        raise argparse.ArgumentTypeError(f"expected comma-separated names like sgd,adam, got {text!r}")
    return out


def build_parser() -> Parser:
    from fnn.lab import search, study, workloads
    p = Parser(prog="fnn lab", description="Tune and compare optimizer rules on a suite of workloads: every rule "
               "gets the same trial budget, its best configuration is re-run on fresh paired seeds, and the report "
               "gives intervals, paired verdicts, time to target and performance profiles.")
    p.add_argument("--suite", choices=sorted(workloads.SUITES), default="quick",
                   help="the workloads to run (default: quick = %s)" % ", ".join(workloads.SUITES["quick"]))
    p.add_argument("--workloads", type=_names, default=None,
                   help="comma-separated workload names instead of a suite (see --list)")
    p.add_argument("--rules", type=_names, default=list(study.DEFAULT_RULES),
                   help="comma-separated rules, fnn's or optax:<name> (default: %s)" % ",".join(study.DEFAULT_RULES))
    p.add_argument("--reference", default=None, help="the rule others are compared with (default: adam if listed)")
    p.add_argument("--budget", type=positive_int, default=16,
                   help="configurations per rule, the same for every rule (default: 16; 1 = the rules' defaults only)")
    p.add_argument("--tuning-seeds", type=positive_int, default=3,
                   help="seeds per configuration while tuning (default: 3)")
    p.add_argument("--eval-seeds", type=positive_int, default=10,
                   help="fresh seeds the best configuration is re-run on (default: 10)")
    p.add_argument("--search", choices=[m for m in study.SEARCH_METHODS if m != "defaults"], default="random",
                   help="how configurations are chosen (default: random)")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs for every workload (default: each "
                   "workload's own)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="base seed of every key and sampler (default: 0)")
    p.add_argument("--no-timing", action="store_true", help="skip the timing pass")
    p.add_argument("--shard", action="store_true", help="split each program's runs over every device JAX sees "
                   "(all local devices, and all hosts after jax.distributed.initialize)")
    p.add_argument("--no-figures", action="store_true", help="write no PNG figures")
    p.add_argument("--out", default="runs/lab", help="output folder (new or empty; default: runs/lab)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous report in --out")
    p.add_argument("--list", action="store_true", help="list workloads, suites and rules, then exit")
    p.epilog = f"rules with a search space: {', '.join(search.SPACES)}"
    return p


def _list(print_fn=print) -> int:
    from fnn.lab import search, workloads
    print_fn("workloads:")
    for name in workloads.WORKLOADS:
        print_fn(f"  {name}")
    print_fn("suites:")
    for name, members in workloads.SUITES.items():
        print_fn(f"  {name}: {', '.join(members)}")
    print_fn("rules (search spaces):")
    for rule in search.SPACES:
        print_fn(f"  {rule}: " + "; ".join(line.strip() for line in search.describe(search.space_for(rule))
                                           .splitlines()))
    return 0


def _mesh():
    from fnn.train import data_mesh
    return data_mesh(axis_name="runs")


def main(argv=None) -> int:
    """``fnn lab [options]``; returns the exit status (0, or 2 for a usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        return _list()
    from fnn.lab import output, study
    twice = sorted({r for r in args.rules if args.rules.count(r) > 1})
    if twice:
        parser.error(f"--rules lists {', '.join(twice)} more than once; give each rule once")
    if args.reference is not None and args.reference not in args.rules:
        parser.error(f"--reference {args.reference} is not one of --rules {','.join(args.rules)}; add it to --rules "
                     f"or pick one of them")
    try:
        items = study.resolve_workloads(args.workloads or [args.suite])
        output.check_out_dir(args.out, overwrite=args.overwrite)
        result = study.run_study(items, args.rules, budget=args.budget, tuning_seeds=args.tuning_seeds,
                                 eval_seeds=args.eval_seeds, search=args.search, reference=args.reference,
                                 seed=args.seed, epochs=args.epochs, timing=not args.no_timing,
                                 mesh=_mesh() if args.shard else None,
                                 command="fnn lab " + shlex.join(argv), print_fn=print)
    except (ValueError, KeyError, OSError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        parser.exit(2, f"fnn lab: {message}\n")
    planar = [w for w in items if w.objective is not None]
    paths = output.write(result, args.out, figures=not args.no_figures, overwrite=args.overwrite,
                         objectives={w.name: w.objective for w in planar}, bounds={w.name: w.bounds for w in planar})
    print(f"fnn lab: report written to {paths['report']}")
    return 0
