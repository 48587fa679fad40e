"""Compiled training: the step and epoch engine, ``fit``, ``minimize``, evaluation, batches of runs (ensembles,
sweeps, configurations x seeds), parameter averages, callbacks, checkpoints, data parallelism, mixed precision,
model selection.

This file only re-exports, grouped by module: the table of contents of ``fnn.train``.
Checkpoints are a module of their own: ``fnn.train.checkpoint.save`` / ``restore`` / ``latest_step``.
"""
# isort: skip_file
# --- the engine: the step, the epoch, the epoch runner (fnn/train/engine.py) ----------------------------------------
from fnn.train.engine import (
    TrainState, make_train_step, make_epoch, make_loop_epoch, make_epoch_runner, epoch_means, epoch_keys,
    choose_epoch_mode, choose_scan_unroll, SCAN_UNROLL, EPOCH_MODES,
)

# --- evaluation, prediction, the checks before compiling (fnn/train/evaluation.py) ----------------------------------
from fnn.train.evaluation import (
    make_evaluator, evaluate, predict, check_data, check_model,
)

# --- fit and its pieces (fnn/train/loop.py) -------------------------------------------------------------------------
from fnn.train.loop import (
    FitResult, FitResultWithState, fit, checkpoint_tree,
)

# --- full-batch minimization of any objective (fnn/train/minimization.py) -------------------------------------------
from fnn.train.minimization import (
    MinimizeResult, minimize, gradient_step,
)

# --- a batch of runs in one program: configurations x seeds (fnn/train/batched.py) ----------------------------------
from fnn.train.batched import (
    fit_batch, cross_seeds,
)

# --- ensembles (fnn/train/ensembles.py) -----------------------------------------------------------------------------
from fnn.train.ensembles import (
    init_ensemble, fit_ensemble, predict_ensemble, evaluate_ensemble,
)

# --- hyper-parameter sweeps (fnn/train/sweeps.py) -------------------------------------------------------------------
from fnn.train.sweeps import (
    grid, sweep,
)

# --- parameter averages over checkpoints (fnn/train/averaging.py) ---------------------------------------------------
from fnn.train.averaging import (
    average_trees, average_checkpoints,
)

# --- callbacks and the history record (fnn/train/callbacks.py) ------------------------------------------------------
from fnn.train.callbacks import (
    History, Callback, EarlyStopping, CSVLogger, format_epoch_line, copy_tree,
)

# --- TensorBoard event files from fit (fnn/train/tensorboard.py; imports tensorboardX on first use) -----------------
from fnn.train.tensorboard import (
    TensorBoard,
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

# --- transfer learning: reuse trained layers, frozen or fine-tuned (fnn/train/transfer.py) --------------------------
from fnn.train.transfer import (
    reuse, init_transfer, transfer_params, layer_mask, freeze, scale_where, FreezeState,
)

# --- adversarial examples (FGSM) and adversarial training (fnn/train/adversarial.py) --------------------------------
from fnn.train.adversarial import (
    fgsm, adversarial_loss, adversarial_accuracy, adversarial_training, AdversarialTraining, pack_labels,
)

# --- truncated backpropagation through time (fnn/train/truncated.py) ----------------------------------------------
from fnn.train.truncated import (
    TBPTTResult, tbptt, make_tbptt, window_loss, run_steps, check_windows, bits_per_character,
)

# --- the learning-rate range test (fnn/train/lr_finder.py) ---------------------------------------------------------
from fnn.train.lr_finder import (
    LRFinderResult, find_lr, plot_lr_finder,
)

# --- saved runs: the model a run kept, rebuilt and ready to call (fnn/train/saved_runs.py) -------------------------
from fnn.train.saved_runs import (
    Run, load_run,
)

# --- the modules themselves (``fnn.train.<module>``) ----------------------------------------------------------------
from fnn.train import (
    engine, evaluation, loop, minimization, batched, ensembles, sweeps, averaging, callbacks,
    checkpoint, distributed, precision, selection, transfer, adversarial, truncated, lr_finder,
)
from fnn.train import saved_runs
from fnn.train import tensorboard
# --- data larger than memory: sources of batches for fit, prefetched (fnn/train/sources.py)
from fnn.train.sources import ArraySource, BatchSource, prefetch_to_device
from fnn.train import sources

__all__ = [
    "TrainState", "make_train_step", "make_epoch", "make_loop_epoch", "make_epoch_runner", "epoch_means",
    "epoch_keys", "choose_epoch_mode", "choose_scan_unroll", "SCAN_UNROLL", "EPOCH_MODES", "make_evaluator",
    "evaluate", "predict", "check_data", "check_model", "FitResult", "FitResultWithState", "fit", "checkpoint_tree",
    "MinimizeResult", "minimize", "gradient_step", "fit_batch", "cross_seeds", "init_ensemble", "fit_ensemble",
    "predict_ensemble", "evaluate_ensemble", "grid", "sweep", "average_trees", "average_checkpoints", "History",
    "Callback", "EarlyStopping", "CSVLogger", "format_epoch_line", "copy_tree", "data_mesh", "replicate", "shard_batch",
    "batch_sharding", "replicated_sharding", "check_batch_size", "describe", "mixed_precision", "cast_floating",
    "grid_configs", "sample_configs", "rank_results", "evaluate_configs", "grid_search", "random_search",
    "format_table", "kfold_indices", "leave_one_out_indices", "cross_validate", "select_and_test", "engine",
    "evaluation", "loop", "minimization", "batched", "ensembles", "sweeps", "averaging", "callbacks", "checkpoint",
    "distributed", "precision", "selection",
    "reuse", "init_transfer", "transfer_params", "layer_mask", "freeze", "scale_where", "FreezeState",
    "fgsm", "adversarial_loss", "adversarial_accuracy", "adversarial_training", "AdversarialTraining", "pack_labels",
    "transfer", "adversarial", "truncated", "lr_finder",
    "TBPTTResult", "tbptt", "make_tbptt", "window_loss", "run_steps", "check_windows", "bits_per_character",
    "LRFinderResult", "find_lr", "plot_lr_finder",
    "Run", "load_run", "saved_runs",
    "TensorBoard", "tensorboard",
    "ArraySource", "BatchSource", "prefetch_to_device", "sources",
]
