"""The ``fnn`` console command: ``fnn train``, ``evaluate``, ``predict``, ``info``, ``compare``, ``lab``, ``gradcheck``.

    fnn train                         # MLP on scikit-learn's bundled 8x8 digits, < 1 minute on a 2-core CPU
    fnn train --dataset fashion-mnist --model cnn --epochs 10 --out runs/fm-cnn
    fnn train --out runs/fm-cnn --dataset fashion-mnist --model cnn --epochs 20 --resume   # continue a run
    fnn evaluate runs/fm-cnn          # the kept model on the test split again (fnn/cli/evaluate.py)
    fnn predict runs/fm-cnn images.npy --out pred.csv --probabilities
    fnn info                          # JAX devices and library versions
    fnn lab --out runs/lab            # tune and compare optimizer rules on a suite of workloads (fnn/lab)

Each command lives in its module (``fnn/cli/train.py``, ``info.py``, ``compare.py``, ``lab.py``,
``gradcheck.py``); this file parses the command name and dispatches. ``compare``, ``lab`` and ``gradcheck`` are
imported only when they are run.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from fnn.cli import evaluate as _evaluate
from fnn.cli import info as _info
from fnn.cli.args import Parser
from fnn.cli import train as _train
from fnn.cli.train import DEFAULTS, build_model

__all__ = ["main", "build_model", "DEFAULTS"]

_TOOLS = {"compare": "fnn.cli.compare", "lab": "fnn.cli.lab", "gradcheck": "fnn.cli.gradcheck"}


def _delegate(name, argv) -> int:
    path = _TOOLS[name]
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as e:
        if e.name != path:
            raise
        print(f"fnn {name}: this installation has no {path} module; update fnn (pip install -e .) to get "
              f"the `fnn {name}` tool", file=sys.stderr)
        return 2
    if not hasattr(module, "main"):
        print(f"fnn {name}: {path} has no main(argv) entry point", file=sys.stderr)
        return 2
    return int(module.main(argv) or 0)


def main(argv=None) -> int:
    """Entry point of the ``fnn`` console script: ``main(["train", "--epochs", "5"])`` returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _TOOLS:
        return _delegate(argv[0], argv[1:])
    parser = Parser(prog="fnn", description="fnn: a functional neural-network toolkit on JAX.")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,predict,info,compare,lab,gradcheck}")
    _train.add_parser(sub)
    _evaluate.add_parsers(sub)
    sub.add_parser("info", help="JAX devices and library versions")
    sub.add_parser("compare", help="compare optimizers (fnn.cli.compare)", add_help=False)
    sub.add_parser("lab", help="tune and compare optimizer rules on a suite of workloads (fnn.cli.lab)",
                   add_help=False)
    sub.add_parser("gradcheck", help="check gradients against finite differences (fnn.cli.gradcheck)", add_help=False)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    run = {"train": _train.run, "evaluate": _evaluate.run_evaluate, "predict": _evaluate.run_predict}
    return run.get(args.command, _info.run)(args)


if __name__ == "__main__":
    sys.exit(main())
