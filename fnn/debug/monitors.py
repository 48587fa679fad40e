"""Callbacks for ``fnn.train.fit`` that watch a network learn: activation statistics, update ratios, the loss
verdict and gradient norms, each run every ``every`` epochs (the callback contract of :mod:`fnn.train.callbacks`)
and kept in ``records``.

Reference: Karpathy et al., CS231n notes "Neural Networks Part 3: Learning and Evaluation" (babysitting the
learning process).
"""
from __future__ import annotations

from typing import Callable

import jax

from fnn.debug.diagnostics import diagnose_loss
from fnn.debug.stats import activation_stats, gradient_norms, layer_list, stats_table, update_ratio_table, update_ratios
from fnn.train import Callback, copy_tree

__all__ = ["ActivationMonitor", "UpdateRatioMonitor", "LossMonitor", "GradientNormMonitor"]


class _Every(Callback):
    def __init__(self, every: int, print_fn: Callable | None):
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"{type(self).__name__}: expected every >= 1 (epochs), got {every!r}")
        self.every, self.print_fn, self.records = every, print_fn, []

    def _due(self, epoch: int) -> bool:
        return epoch % self.every == 0

    def _print(self, text: str):
        if self.print_fn is not None:
            self.print_fn(text)


class ActivationMonitor(_Every):
    """Every ``every`` epochs: :func:`activation_stats` of ``x`` through ``layers`` (a ``serial`` model or its layer
    list) in eval mode, with the model's state when it has one; ``records`` holds ``(epoch, stats)``."""

    def __init__(self, layers, x, every: int = 1, print_fn: Callable | None = print):
        super().__init__(every, print_fn)
        self.layers, self.x = layer_list(layers, "ActivationMonitor"), x

    def on_epoch_end(self, epoch, record, train_state) -> bool:
        if self._due(epoch):
            state = getattr(train_state, "state", None)
            kw = {} if state is None else {"state": state}
            stats = activation_stats(self.layers, train_state.params, self.x, train=False, **kw)
            self.records.append((epoch, stats))
            self._print(stats_table(stats, f"epoch {epoch}: activation statistics"))
        return False


class UpdateRatioMonitor(_Every):
    """Every ``every`` epochs: :func:`update_ratios` of the change since the last check, divided by the steps taken
    since then (the difference of the records' running step counts ``record["steps"]``), i.e. the mean per-step
    update ratio; ``records`` holds ``(epoch, ratios)``."""

    def __init__(self, every: int = 1, print_fn: Callable | None = print):
        super().__init__(every, print_fn)
        self._prev, self._at = None, 0

    def on_train_begin(self, history) -> None:
        self._prev, self._at = None, 0

    def on_epoch_end(self, epoch, record, train_state) -> bool:
        steps = int(record.get("steps", epoch))   # fit's running count of steps taken (epoch count without it)
        if self._prev is None:  # first epoch: nothing to compare with yet
            self._prev, self._at = copy_tree(train_state.params), steps
            return False
        if self._due(epoch):
            taken = max(steps - self._at, 1)
            delta = jax.tree_util.tree_map(lambda a, b: (a - b) / taken, train_state.params, self._prev)
            ratios = update_ratios(self._prev, delta)
            self.records.append((epoch, ratios))
            self._print(f"epoch {epoch}: mean per-step update ratios\n{update_ratio_table(ratios)}")
            self._prev, self._at = copy_tree(train_state.params), steps
        return False


class LossMonitor(_Every):
    """Every ``every`` epochs: :func:`diagnose_loss` of the per-epoch training losses so far (4 epochs at least);
    ``records`` holds ``(epoch, diagnosis)``."""

    def __init__(self, every: int = 5, print_fn: Callable | None = print, **diagnose_kwargs):
        super().__init__(every, print_fn)
        self.losses, self.kwargs = [], diagnose_kwargs

    def on_train_begin(self, history) -> None:
        self.losses = [r["loss"] for r in getattr(history, "records", []) if "loss" in r]

    def on_epoch_end(self, epoch, record, train_state) -> bool:
        self.losses.append(float(record["loss"]))
        if self._due(epoch) and len(self.losses) >= 4:
            d = diagnose_loss(self.losses, **self.kwargs)
            self.records.append((epoch, d))
            self._print(f"epoch {epoch}: loss check: {d.verdict}: {d.message}")
        return False


class GradientNormMonitor(_Every):
    """Every ``every`` epochs: per-layer :func:`gradient_norms` of ``loss_fn(params)`` (e.g. on a fixed batch);
    ``records`` holds ``(epoch, norms)``."""

    def __init__(self, loss_fn: Callable, every: int = 1, print_fn: Callable | None = print):
        super().__init__(every, print_fn)
        self.grad = jax.jit(jax.grad(loss_fn))

    def on_epoch_end(self, epoch, record, train_state) -> bool:
        if self._due(epoch):
            norms = gradient_norms(self.grad(train_state.params), weights_only=True)
            self.records.append((epoch, norms))
            self._print(f"epoch {epoch}: gradient norms " + ", ".join(f"{k} {v:.2e}" for k, v in norms.items()))
        return False


