"""TensorBoard event files from ``fit``: a scalar per history entry per epoch, optionally histograms of the weights,
the gradients and the per-epoch update ratios (the callback contract of :mod:`fnn.train.callbacks`).

The writer is tensorboardX (pure Python and protobuf: no TensorFlow, no PyTorch), imported when a ``TensorBoard``
callback is created, so ``import fnn`` does not load it. View the files with ``tensorboard --logdir DIR``.

Reference: Karpathy et al., CS231n notes "Neural Networks Part 3: Learning and Evaluation" (babysitting the learning
process: the ratio of updates to weights, near 1e-3 per step).
"""
from __future__ import annotations

import glob
import numbers
import os
import re
import time
from typing import Callable

import jax
import numpy as np

from fnn.train.callbacks import Callback

__all__ = ["TensorBoard", "leaf_names"]


def leaf_names(tree) -> list[str]:
    """A TensorBoard tag for every leaf of ``tree``: its path's keys (list/tuple index, dict key, attribute name)
    joined by ``.``, characters other than letters, digits and ``_.-`` replaced by ``_``. ``"0.W"`` is the ``W`` of
    an ``mlp``'s first layer, the leaf ``fnn.debug.update_ratios`` calls ``[0].W``.

    Example:
      >>> leaf_names([(1.0, 2.0), (), {"W": 3.0, "b c": 4.0}])
      ['0.0', '0.1', '2.W', '2.b_c']
    """
    out = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [str(getattr(k, "idx", getattr(k, "key", getattr(k, "name", k)))) for k in path]
        out.append(re.sub(r"[^A-Za-z0-9_.\-]", "_", ".".join(parts)) or "leaf")
    return out


def _scalar(value):
    """``float(value)`` for a real number or a 0-d numeric array (bools and strings excluded), else ``None``."""
    if value is None or isinstance(value, (bool, str, np.bool_)):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "shape", None) == () and getattr(getattr(value, "dtype", None), "kind", "") in "iuf":
        return float(value)
    return None


class TensorBoard(Callback):
    """Write TensorBoard event files as ``fit`` runs: every numeric entry of each epoch's record (``loss``,
    ``accuracy``, ``val_loss``, ``val_accuracy``, ``lr``, ``steps``, ``time``; see ``History``) as a scalar of that
    name at step ``record["epoch"]``; ``epoch`` itself is the step, entries that are ``None`` or not numbers are left
    out. Events are written to disk at least every ``flush_secs`` and when training ends.

    With ``histograms=True``, after every epoch ``e`` and for every leaf of the params tree (named by
    :func:`leaf_names`, e.g. ``0.W``): a histogram ``weights/<leaf>`` of its values and the scalar
    ``update_ratio/<leaf>`` = ``||w_e - w_{e-1}||_2 / ||w_{e-1}||_2``, the change over the epoch relative to the
    weights before it (``inf`` for an all-zero ``w_{e-1}``; from the second epoch of a run on: the first has no
    earlier params to compare with). Dividing it by the steps per epoch gives about the per-step ratio that
    ``fnn.debug.UpdateRatioMonitor`` prints (healthy near 1e-3). With ``loss_fn`` (``params -> scalar``, e.g. the
    loss on a fixed batch) also a histogram ``gradients/<leaf>`` of ``jax.grad(loss_fn)(params)``.

    One writer per ``fit`` (a new events file in ``logdir`` each time). Resuming (``fit(..., resume=True)``, the
    history then holds the resumed epochs) appends: the writer is opened with ``purge_step`` = the first epoch to
    run, and TensorBoard drops the events of earlier files in ``logdir`` at or after that step, i.e. the epochs the
    interrupted run wrote after its last checkpoint; what it shows is one curve per tag, as ``history`` has it. A
    fresh run into a ``logdir`` that already holds event files purges from step 1: TensorBoard shows only the new run
    (the old files stay on disk; give each run its own folder to compare runs).

    Args:
      logdir: the folder for the event files (created; must not be a file).
      histograms: also write the weight histograms and update ratios (and gradients with ``loss_fn``).
      loss_fn: ``params -> scalar`` whose gradient is histogrammed (only with ``histograms=True``).
      flush_secs: the longest time events wait in memory before they are written.

    Example:
      >>> from fnn.train.callbacks import History
      >>> tb = TensorBoard("runs/example")
      >>> tb.on_train_begin(History())
      >>> tb.on_epoch_end(1, {"epoch": 1, "loss": 0.5, "lr": 0.1, "time": 0.2}, None)
      False
      >>> _ = tb.on_train_end(None, History())
      >>> len(glob.glob("runs/example/events.out.tfevents.*"))
      1
    """

    def __init__(self, logdir, histograms: bool = False, *, loss_fn: Callable | None = None, flush_secs: int = 30):
        logdir = os.fspath(logdir)
        if os.path.exists(logdir) and not os.path.isdir(logdir):
            raise ValueError(f"TensorBoard: logdir {logdir!r} is a file; expected a folder for the event files "
                             f"(it is created if missing); pass another path")
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"TensorBoard: loss_fn must be a function params -> scalar or None, got "
                            f"{type(loss_fn).__name__}")
        if loss_fn is not None and not histograms:
            raise ValueError("TensorBoard: loss_fn is only used for the gradient histograms; pass histograms=True "
                             "with it, or drop loss_fn")
        if not (isinstance(flush_secs, numbers.Real) and flush_secs > 0):
            raise ValueError(f"TensorBoard: expected flush_secs > 0 (seconds), got {flush_secs!r}")
        import tensorboardX  # here, not at module level: `import fnn` must not load it

        self._writer_cls = tensorboardX.SummaryWriter
        self.logdir, self.histograms, self.flush_secs = logdir, bool(histograms), flush_secs
        self._grad = jax.jit(jax.grad(loss_fn)) if loss_fn is not None else None
        self.writer, self.purge_step, self._prev = None, None, None

    def on_train_begin(self, history):
        self._close()
        os.makedirs(self.logdir, exist_ok=True)
        records = history.records if history is not None else []
        first = (int(records[-1]["epoch"]) if records else 0) + 1
        existing = glob.glob(os.path.join(glob.escape(self.logdir), "events.out.tfevents.*"))
        self.purge_step = first if existing else None
        # tensorboardX names the file by the second and the host only: a nanosecond suffix keeps two writers of one
        # second apart (the second would overwrite the first) and sorts them in order (TensorBoard reads by name)
        self.writer = self._writer_cls(self.logdir, purge_step=self.purge_step, flush_secs=self.flush_secs,
                                       filename_suffix=f".{time.time_ns():020d}")
        self._prev = None

    def on_epoch_end(self, epoch, record, train_state):
        if self.writer is None:
            raise ValueError("TensorBoard: on_epoch_end before on_train_begin; pass the callback to "
                             "fit(callbacks=[...]) or call on_train_begin first")
        step = int(record.get("epoch", epoch))
        for name, value in record.items():
            x = _scalar(value)
            if name != "epoch" and x is not None:
                self.writer.add_scalar(name, x, step)
        if self.histograms:
            self._write_histograms(step, train_state.params)
        return False

    def _write_histograms(self, step, params):
        names = leaf_names(params)
        leaves = [np.array(a) for a in jax.tree_util.tree_leaves(params)]   # copies: the buffers are donated next
        for name, w in zip(names, leaves):
            if w.size:
                self.writer.add_histogram(f"weights/{name}", w, step)
        if self._prev is not None and len(self._prev) == len(leaves):
            for name, w, w0 in zip(names, leaves, self._prev):
                if w.size:
                    n0 = float(np.linalg.norm(w0.ravel()))
                    ratio = float(np.linalg.norm((w - w0).ravel())) / n0 if n0 > 0 else float("inf")
                    self.writer.add_scalar(f"update_ratio/{name}", ratio, step)
        self._prev = leaves
        if self._grad is not None:
            grads = jax.tree_util.tree_leaves(self._grad(params))
            for name, g in zip(names, grads):
                if np.size(g):
                    self.writer.add_histogram(f"gradients/{name}", np.array(g), step)

    def _close(self):
        if getattr(self, "writer", None) is not None:   # (also from __del__ after a refused __init__)
            self.writer.close()
            self.writer = None

    def on_train_end(self, train_state, history):
        self._close()
        return train_state

    def __del__(self):   # a run that crashed never called on_train_end: write what is queued
        self._close()
