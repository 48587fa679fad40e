"""The lab's figures as PNG files: loss curves, time to target, tuning, learning-rate sensitivity, profiles, races.

Drawn as ``fnn/debug/plots.py`` draws: ``matplotlib.figure.Figure`` on the Agg canvas, never ``pyplot``, so nothing
global changes and no display is needed. Every function writes one PNG (folders are created), closes nothing global
and returns the path. A rule keeps its colour in every figure (``C<i>``, i = its position in ``study.rules``).

Conventions of the data (``fnn/lab/results.py``): losses are lower-is-better; a diverged run's values are ``nan``
from its divergence on, and it counts as ``+inf`` in every statistic (so a band or a median that needs it is not
drawn there, rather than drawn from the runs that survived).
"""
from __future__ import annotations

import os

import jax
import numpy as np

from fnn.lab import stats
from fnn.lab.results import score

__all__ = ["loss_curves", "time_to_target_curves", "tuning_curves", "lr_sensitivity", "profile_plot", "race"]


def _figure(width=6.4, height=4.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> str:
    fig.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    fig.clear()
    return path


def _colour(study, rule) -> str:
    return f"C{study.rules.index(rule) % 10}"


def _label(study, rule) -> str:
    return f"{rule} (reference)" if rule == study.reference else rule


def _style(rule) -> str:
    """Dashed for optax's rules, so that an fnn rule and its optax twin stay visible when their curves coincide."""
    return "--" if str(rule).startswith("optax:") else "-"


def _finite(x) -> np.ndarray:
    """Non-finite values as nan, so matplotlib leaves a gap there."""
    x = np.asarray(x, dtype=float)
    return np.where(np.isfinite(x), x, np.nan)


def _log_if_positive(ax, values, axis="y"):
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size and np.all(v > 0) and v.max() / v.min() > 10:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def loss_curves(study, workload: str, path) -> str:
    """Validation loss against optimizer steps: the median over the evaluation seeds and its 25-75% band, per rule.

    Diverged runs count as ``+inf``, so the band stops where a quarter of the runs (the median: half) have diverged.
    The workload's target (the dashed line) is what ``time_to_target_curves`` measures. Log y when all values are
    positive and span more than a decade.

    Returns:
      ``path``.
    """
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    shown = []
    for rule in study.rules:
        r = study.get(workload, rule)
        with np.errstate(invalid="ignore"):
            q25, q50, q75 = np.quantile(score(r.eval_curves["val_loss"]), [0.25, 0.5, 0.75], axis=0)
        colour = _colour(study, rule)
        ax.plot(r.steps, _finite(q50), _style(rule), color=colour, label=_label(study, rule))
        ax.fill_between(r.steps, _finite(q25), _finite(q75), color=colour, alpha=0.2, linewidth=0)
        shown += [q25, q75]
    target = study.targets.get(workload)
    if target is not None and np.isfinite(target):
        ax.axhline(target, color="0.3", linestyle="--", linewidth=1, label="target")
        shown.append([target])
    _log_if_positive(ax, np.concatenate([np.ravel(s) for s in shown]))
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel("validation loss (median, 25-75%)")
    ax.set_title(f"{workload}: validation loss over {len(study.get(workload, study.reference).eval_seeds)} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def time_to_target_curves(study, workload: str, path) -> str:
    """Kaplan-Meier curves of the time to target: the fraction of runs at the target, ``1 - S(t)``, against steps.

    A step function per rule (``stats.kaplan_meier``); runs that never reached the target are censored at the budget
    and marked with a tick (``|``) there.

    Returns:
      ``path``.
    """
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    target = study.targets[workload]
    for rule in study.rules:
        r = study.get(workload, rule)
        times, reached = stats.time_to_target(r.eval_curves["val_loss"], r.steps, target)
        t, survival = stats.kaplan_meier(times, reached)
        end = float(r.steps[-1])
        t_plot, s_plot = np.r_[t, end], np.r_[survival, survival[-1]]
        colour = _colour(study, rule)
        ax.step(t_plot, 1 - s_plot, where="post", color=colour, linestyle=_style(rule),
                label=f"{_label(study, rule)} ({reached.sum()}/{reached.size} reached)")
        if (~reached).any():
            ax.plot([end], [1 - survival[-1]], "|", color=colour, markersize=14, markeredgewidth=2)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel("fraction of runs at target (Kaplan-Meier)")
    ax.set_title(f"{workload}: time to validation loss {target:.3g} (| censored)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def tuning_curves(study, workload: str, path) -> str:
    """Expected best validation score of k configurations drawn from those tried, against k = 1..C, per rule.

    ``stats.best_of_k(tune_scores, k)``: what a tuner with a budget of k random configurations could expect. When
    some configurations diverged, small k have an infinite expectation and are left out.

    Returns:
      ``path``.
    """
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    values = []
    for rule in study.rules:
        scores = study.get(workload, rule).tune_scores
        ks = np.arange(1, scores.size + 1)
        best = stats.best_of_k(scores, ks)
        ax.plot(ks, _finite(best), _style(rule) + "o", markersize=3, color=_colour(study, rule),
                label=_label(study, rule))
        values.append(best)
    _log_if_positive(ax, np.concatenate(values))
    ax.set_xlabel("configurations tried (k)")
    ax.set_ylabel("expected best validation loss")
    ax.set_title(f"{workload}: tuning curves (expected best of k)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def lr_sensitivity(study, workload: str, path) -> str:
    """Tuning score against the learning rate (log x), one series per rule that tunes ``learning_rate``.

    Configurations that diverged (score ``+inf``) are marked ``x`` along the top edge. A rule without a
    ``learning_rate`` hyper-parameter is left out (a note says so when none has one).

    Returns:
      ``path``.
    """
    from matplotlib.transforms import blended_transform_factory

    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    top = blended_transform_factory(ax.transData, ax.transAxes)
    finite_scores, drawn = [], False
    for rule in study.rules:
        r = study.get(workload, rule)
        lr = r.tune_hparams.get("learning_rate")
        if lr is None:
            continue
        order = np.argsort(lr)
        lr, s = np.asarray(lr, float)[order], score(r.tune_scores)[order]
        ok = np.isfinite(s)
        colour = _colour(study, rule)
        ax.plot(lr[ok], s[ok], _style(rule) + "o", markersize=4, color=colour, label=_label(study, rule))
        if (~ok).any():
            ax.plot(lr[~ok], np.full((~ok).sum(), 0.97), "x", color=colour, markersize=7, transform=top)
        finite_scores.append(s[ok])
        drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no rule tunes learning_rate", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.set_xscale("log")
        _log_if_positive(ax, np.concatenate(finite_scores))
        ax.legend(fontsize=8)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("tuning score (median final validation loss)")
    ax.set_title(f"{workload}: learning-rate sensitivity (x = diverged)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def profile_plot(rules, taus, rho, path, *, reference: str | None = None) -> str:
    """Performance profiles: ``rho[s](tau)``, the fraction of workloads a rule reaches the target within tau times
    the fastest rule's time, against tau (log x).

    Args:
      rules: the S rule names. taus: ``(T,)`` factors >= 1. rho: ``(S, T)`` (``stats.performance_profile``).
      path: the PNG file. reference: the reference rule's name, labelled as such.

    Returns:
      ``path``.
    """
    rho = np.asarray(rho, dtype=float)
    taus = np.asarray(taus, dtype=float)
    if rho.shape != (len(rules), taus.size):
        raise ValueError(f"profile_plot: expected rho of shape (rules, taus) = ({len(rules)}, {taus.size}), got "
                         f"{rho.shape}; pass what report.performance_profiles returns with the same taus.")
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for i, rule in enumerate(rules):
        ax.step(taus, rho[i], where="post", color=f"C{i % 10}", linestyle=_style(rule),
                label=f"{rule} (reference)" if rule == reference else rule)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("tau (times the fastest rule's median steps to target)")
    ax.set_ylabel("fraction of workloads")
    ax.set_title("performance profiles (steps to target)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def race(study, workload: str, path, *, objective=None, bounds=None, grid: int = 200) -> str:
    """The 2-D race: every evaluation seed's path of every rule on the plane, over the objective's contours.

    Thin lines, one colour per rule; ``o`` marks the start (shared by all rules: seeds are paired) and ``*`` the
    end of each path. Without ``objective`` only the paths are drawn.

    Args:
      study, workload: a workload whose results have ``paths`` (``(S, E + 1, 2)``, 2-D function workloads).
      path: the PNG file.
      objective: optional function of one point ``(2,) -> scalar``, traceable by JAX (it is ``vmap``-ed over the
        grid), e.g. ``lambda p: (1 - p[0])**2 + 100 * (p[1] - p[0]**2)**2`` (a workload's ``objective``).
      bounds: optional ``((x_low, x_high), (y_low, y_high))``; default: the paths' extent plus 10%.
      grid: points per axis of the contour grid.

    Returns:
      ``path``.
    """
    results = [study.get(workload, rule) for rule in study.rules]
    if all(r.paths is None for r in results):
        raise ValueError(f"race: workload {workload!r} has no paths (only 2-D function workloads record them); "
                         f"draw it with loss_curves instead.")
    points = np.concatenate([np.asarray(r.paths, float).reshape(-1, 2) for r in results if r.paths is not None])
    points = points[np.all(np.isfinite(points), axis=1)]
    if bounds is None:
        low, high = points.min(axis=0), points.max(axis=0)
        pad = 0.1 * np.maximum(high - low, 1e-3)
        bounds = ((low[0] - pad[0], high[0] + pad[0]), (low[1] - pad[1], high[1] + pad[1]))
    (x0, x1), (y0, y1) = bounds
    fig = _figure(6.4, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    if objective is not None:
        X, Y = np.meshgrid(np.linspace(x0, x1, grid), np.linspace(y0, y1, grid))
        points = np.stack([X, Y], axis=-1).reshape(-1, 2).astype(np.float32)
        with np.errstate(all="ignore"):
            Z = np.asarray(jax.vmap(objective)(points), dtype=float).reshape(X.shape)
        Z = np.where(np.isfinite(Z), Z, np.nan)
        if np.nanmin(Z) > 0 and np.nanmax(Z) / np.nanmin(Z) > 100:
            levels = np.geomspace(np.nanmin(Z), np.nanmax(Z), 25)
        else:
            levels = 25
        ax.contour(X, Y, Z, levels=levels, colors="0.6", linewidths=0.6)
    for rule, r in zip(study.rules, results):
        if r.paths is None:
            continue
        colour = _colour(study, rule)
        for s, p in enumerate(np.asarray(r.paths, float)):
            p = p[np.all(np.isfinite(p), axis=1)]
            if not len(p):
                continue
            ax.plot(p[:, 0], p[:, 1], "-", color=colour, linewidth=0.7, alpha=0.7,
                    label=_label(study, rule) if s == 0 else None)
            ax.plot(p[0, 0], p[0, 1], "o", color="0.2", markersize=3)
            ax.plot(p[-1, 0], p[-1, 1], "*", color=colour, markersize=7)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"{workload}: paths of every seed (o start, * end)")
    ax.legend(fontsize=8)
    return _save(fig, path)
