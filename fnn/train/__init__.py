"""Compiled training: the step and epoch engine, ``fit``, evaluation, ensembles and sweeps, callbacks,
checkpoints, data parallelism, mixed precision, model selection.

This file only re-exports, grouped by module: the table of contents of ``fnn.train``.
Checkpoints are a module of their own: ``fnn.train.checkpoint.save`` / ``restore`` / ``latest_step``.
"""
# isort: skip_file
# --- the step, the epoch, fit, evaluate, predict (fnn/train/loop.py) ------------------------------------------------
from fnn.train.loop import (
    TrainState, FitResult, FitResultWithState, make_train_step, make_epoch, make_evaluator, evaluate, predict,
    fit, epoch_keys, choose_epoch_mode, choose_scan_unroll, checkpoint_tree, SCAN_UNROLL, EPOCH_MODES,
)

# --- ensembles, sweeps, parameter averaging (fnn/train/ensembles.py) ------------------------------------------------
from fnn.train.ensembles import (
    init_ensemble, fit_ensemble, predict_ensemble, evaluate_ensemble, grid, sweep, average_trees,
    average_checkpoints, EmaState, with_ema, ema_params,
)

# --- callbacks and the history record (fnn/train/callbacks.py) ------------------------------------------------------
from fnn.train.callbacks import (
    History, Callback, EarlyStopping, format_epoch_line, copy_tree,
)

# --- data parallelism over devices and hosts (fnn/train/distributed.py) ---------------------------------------------
from fnn.train.distributed import (
    data_mesh, replicate, shard_batch, batch_sharding, replicated_sharding, check_batch_size, describe,
)

# --- mixed precision (fnn/train/precision.py) -----------------------------------------------------------------------
from fnn.train.precision import (
    mixed_precision, cast_floating,
)

# --- model selection (fnn/train/selection.py) -----------------------------------------------------------------------
from fnn.train.selection import (
    grid_configs, sample_configs, rank_results, evaluate_configs, grid_search, random_search, format_table,
    kfold_indices, leave_one_out_indices, cross_validate, select_and_test,
)

# --- the modules themselves (``fnn.train.<module>``) --------------------------------------------------
from fnn.train import loop, ensembles, callbacks, checkpoint, distributed, precision, selection

__all__ = [
    "TrainState", "FitResult", "FitResultWithState", "make_train_step", "make_epoch", "make_evaluator",
    "evaluate", "predict", "fit", "epoch_keys", "choose_epoch_mode", "choose_scan_unroll", "checkpoint_tree", "SCAN_UNROLL", "EPOCH_MODES",
    "init_ensemble", "fit_ensemble", "predict_ensemble", "evaluate_ensemble", "grid", "sweep", "average_trees",
    "average_checkpoints", "EmaState", "with_ema", "ema_params", "History", "Callback", "EarlyStopping",
    "format_epoch_line", "copy_tree", "data_mesh", "replicate", "shard_batch", "batch_sharding",
    "replicated_sharding", "check_batch_size", "describe", "mixed_precision", "cast_floating", "grid_configs",
    "sample_configs", "rank_results", "evaluate_configs", "grid_search", "random_search", "format_table",
    "kfold_indices", "leave_one_out_indices", "cross_validate", "select_and_test", "loop", "ensembles",
    "callbacks", "checkpoint", "distributed", "precision", "selection",
]
