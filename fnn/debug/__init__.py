"""Seeing inside a network: gradient checking, backprop by hand, activation/gradient/update statistics,
monitors, and their plots. Loaded on first use (``fnn.debug``).

This file only re-exports, grouped by module: the table of contents of ``fnn.debug``.
"""
# isort: skip_file
# --- gradient checking (fnn/debug/gradcheck.py) ---------------------------------------------------------------------
from fnn.debug.gradcheck import (
    GOOD, ACCEPTABLE, WRONG, LeafReport, GradCheckReport, GradCheckWarning, check_grads, check_layer,
    instrument, verdict, GradCheck,
)

# --- backprop written out by hand (fnn/debug/backprop.py) -----------------------------------------------------------
from fnn.debug.backprop import (
    COSTS, mlp_forward, mlp_backprop, BatchNormCache, batchnorm_forward, batchnorm_backward,
)

# --- activation, gradient and update statistics (fnn/debug/stats.py) -----------------------------------------------
from fnn.debug.stats import (
    ACTIVATION_KINDS, mlp_layers, layer_list, layer_path, layer_outputs, LayerStats, activation_stats,
    stats_table, INIT_EXPERIMENT, init_experiment, gradient_norms, depth_gradient_norms, update_ratios,
    update_ratio_table,
)

# --- the babysitting checklist: verdicts and pictures (fnn/debug/diagnostics.py) -------------------------------------
from fnn.debug.diagnostics import (
    SymmetryWarning, SymmetryFinding, check_symmetry, InitialLoss, check_initial_loss,
    LossDiagnosis, diagnose_loss, OverfitResult, overfit_small, plot_activation_histograms,
    plot_decision_boundary, plot_first_layer_weights,
)

# --- callbacks for fit (fnn/debug/monitors.py) ----------------------------------------------------------------------
from fnn.debug.monitors import (
    ActivationMonitor, UpdateRatioMonitor, LossMonitor, GradientNormMonitor,
)

# --- training curves (fnn/debug/plots.py) ---------------------------------------------------------------------------
from fnn.debug.plots import (
    plot_history,
)

# --- the modules themselves (``fnn.debug.<module>``) --------------------------------------------------
from fnn.debug import gradcheck, kinks, backprop, stats, diagnostics, monitors, plots

__all__ = [
    "GOOD", "ACCEPTABLE", "WRONG", "LeafReport", "GradCheckReport", "GradCheckWarning", "check_grads",
    "check_layer", "instrument", "verdict", "GradCheck", "COSTS", "mlp_forward", "mlp_backprop", "BatchNormCache",
    "batchnorm_forward", "batchnorm_backward", "ACTIVATION_KINDS", "mlp_layers", "layer_list", "layer_path",
    "layer_outputs", "LayerStats", "activation_stats",
    "stats_table", "plot_activation_histograms", "INIT_EXPERIMENT", "init_experiment", "gradient_norms",
    "depth_gradient_norms", "update_ratios", "update_ratio_table", "SymmetryWarning", "SymmetryFinding",
    "check_symmetry", "InitialLoss", "check_initial_loss", "LossDiagnosis", "diagnose_loss",
    "OverfitResult", "overfit_small", "ActivationMonitor", "UpdateRatioMonitor", "LossMonitor",
    "GradientNormMonitor", "plot_decision_boundary", "plot_first_layer_weights", "plot_history", "gradcheck",
    "kinks", "backprop", "stats", "diagnostics", "monitors", "plots",
]
