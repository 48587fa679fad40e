"""fnn: a functional neural-network toolkit on JAX.

This file is the table of contents. Every name lives in the module named beside it; ``import fnn`` loads the
core modules below, and the rest on first use (``fnn.diagnostics``, ``fnn.gan``, ...).
"""
import importlib as _importlib

__version__ = "0.1.0"

# --- Models: the layer contract, layers, initializers, activations -------------------------------------------
from fnn import activations, initializers, layers  # noqa: E402
from fnn.core import Layer, init_with_state, serial, parallel, mlp  # noqa: E402

# --- Objectives ----------------------------------------------------------------------------------------------
from fnn import losses, metrics  # noqa: E402

# --- Optimizers: update rules, schedules, gradient transforms -------------------------------------------------
from fnn import optimizers, schedules, transforms  # noqa: E402
from fnn.optimizers import Optimizer, apply_updates, chain  # noqa: E402

# --- Training: the compiled step and loop, data, checkpoints ---------------------------------------------------
from fnn import checkpoint, data, train  # noqa: E402
from fnn.train import evaluate, fit, make_train_step  # noqa: E402

# --- Loaded on first use --------------------------------------------------------------------------------------
_LAZY = (
    # layers beyond the core                       # training at scale
    "conv", "pooling", "normalization", "dropout",  "ensembles", "selection", "distributed", "precision",
    "units", "recurrent", "attention",              "callbacks", "plotting",
    # optimizers                                    # architectures from the classic material
    "adaptive", "second_order", "compare",          "autoencoders", "rbf", "gan",
    # seeing inside a network                       # classic neurons and gradient-free training
    "gradcheck", "reference", "diagnostics",        "classic", "annealing",
    # the command line
    "cli",
)


def __getattr__(name):
    if name in _LAZY:
        return _importlib.import_module(f"fnn.{name}")
    raise AttributeError(f"module 'fnn' has no attribute {name!r}")


__all__ = [
    "activations", "initializers", "layers", "losses", "metrics", "optimizers", "schedules", "transforms",
    "checkpoint", "data", "train", "Layer", "init_with_state", "serial", "parallel", "mlp", "Optimizer",
    "apply_updates", "chain", "fit", "evaluate", "make_train_step", *_LAZY,
]
