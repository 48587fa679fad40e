"""fnn: a functional neural-network toolkit on JAX.

This file is the table of contents. ``ls fnn/`` is the architecture, in dependency order (each part imports only
the parts listed before it):

    activations, initializers, losses, metrics, checks   foundations: functions of arrays, argument checks
    layers/       the layer contract, combinators and every layer (stax-compatible front)
    optimizers/   the optimizer contract, update rules, transforms, schedules, the registry
    data/         data sets, toy problems, preprocessing
    train/        the step and epoch engine, fit, evaluation, ensembles and sweeps, callbacks, checkpoints
    debug/        gradient checking, backprop by hand, statistics and monitors       (loaded on first use)
    classic/      perceptrons, annealing, evolution, RBF nets, autoencoders, RBMs,   (loaded on first use)
                  recursive nets, the Neural Turing Machine, a GAN
    lab/          the optimizer lab: workloads, tuning protocols, statistics, reports (loaded on first use)
    cli/          the ``fnn`` command                                               (loaded on first use)

``import fnn`` loads the foundations, ``layers``, ``optimizers``, ``data`` and ``train``; ``fnn.debug``,
``fnn.classic``, ``fnn.lab`` and ``fnn.cli`` are imported the first time they are used.
"""
import importlib as _importlib

__version__ = "0.1.0"

# --- Foundations ----------------------------------------------------------------------------------------------
from fnn import activations, checks, initializers, losses, metrics

# --- Models: the layer contract and the layers ------------------------------------------------------------------
from fnn import layers
from fnn.layers import Layer, init_with_state, serial, parallel, mlp

# --- Optimizers: update rules, schedules, gradient transforms -------------------------------------------------
from fnn import optimizers
from fnn.optimizers import Optimizer, apply_updates, chain

# --- Data and training ------------------------------------------------------------------------------------------
from fnn import data, train
from fnn.train import evaluate, fit, make_train_step

# --- Loaded on first use --------------------------------------------------------------------------------------
_LAZY = ("debug", "classic", "lab", "cli")


def __getattr__(name):
    if name in _LAZY:
        return _importlib.import_module(f"fnn.{name}")
    raise AttributeError(f"module 'fnn' has no attribute {name!r}")


__all__ = [
    "activations", "checks", "initializers", "losses", "metrics", "layers", "optimizers", "data", "train",
    "Layer", "init_with_state", "serial", "parallel", "mlp", "Optimizer", "apply_updates", "chain",
    "fit", "evaluate", "make_train_step", *_LAZY,
]
