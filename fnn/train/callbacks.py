"""What a training run reports: the per-epoch ``History``, the babysitting line, and callbacks (early stopping).

The callback contract (stated once, here): ``fit`` calls, in order,

    cb.on_train_begin(history)                           # once; history may already hold resumed epochs
    stop = cb.on_epoch_end(epoch, record, train_state)   # after every epoch; return True to stop training
    train_state = cb.on_train_end(train_state, history)  # once; may return a different TrainState (restore-best)

``record`` is the epoch's dict (see ``History``); ``train_state`` is ``fnn.train.TrainState(params, opt_state,
state)``. The arrays in ``train_state`` are donated to the next compiled step, so a callback that keeps them must
copy them (``EarlyStopping`` does).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["History", "Callback", "EarlyStopping", "format_epoch_line", "copy_tree"]


def copy_tree(tree):
    """A copy of every array leaf of ``tree`` (safe to keep while the original buffers are donated)."""
    return jax.tree.map(lambda a: jnp.array(a, copy=True), tree)


class History:
    """The per-epoch records of a run, in order, and why the run stopped.

    Each record is a dict with ``epoch`` (1-based), ``loss`` (mean training loss over the epoch's steps), one entry
    per training metric (e.g. ``accuracy``: the running mean over the epoch's batches, computed in train mode),
    ``val_loss`` and ``val_<metric>`` when validation data is given (computed after the epoch, ``train=False``),
    ``lr`` when known, ``steps`` and ``time`` (seconds, compile time included in the first epoch).
    ``stop_reason`` is ``"completed"``, ``"early stopping ..."`` or the non-finite-loss message.

    Example:
      >>> h = History([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
      >>> h["loss"]
      [0.5, 0.25]
    """

    def __init__(self, records=None, stop_reason: str = "completed"):
        self.records: list[dict[str, Any]] = list(records or [])
        self.stop_reason = stop_reason

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, name: str) -> list:
        """The values of ``name`` over the epochs (``None`` for an epoch that has none)."""
        if not any(name in r for r in self.records):
            known = sorted({k for r in self.records for k in r})
            raise KeyError(f"History: no entry {name!r}; recorded entries: {', '.join(known) or 'none (no epochs)'}")
        return [r.get(name) for r in self.records]

    def to_dict(self) -> dict:
        return {"records": self.records, "stop_reason": self.stop_reason}

    def save(self, path) -> str:
        """Write the history as JSON to ``path`` (atomically: a temporary file then ``os.replace``); return path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> "History":
        """Read a history written by ``save``."""
        with open(path) as f:
            try:
                data = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"History.load: {os.fspath(path)!r} is corrupt ({e}); it was cut or damaged; delete "
                                 f"it to start the history afresh, or restore it from a backup") from None
        if not isinstance(data, dict) or "records" not in data or not isinstance(data["records"], list):
            raise ValueError(f"History.load: {os.fspath(path)!r} is not a history file (expected a JSON object with "
                             f"'records'); pass a file written by History.save")
        return cls(data["records"], data.get("stop_reason", "completed"))

    def __repr__(self) -> str:
        return f"History({len(self.records)} epochs, stop_reason={self.stop_reason!r})"


def _fmt(x, spec):
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_epoch_line(record: dict, epochs: int) -> str:
    """The babysitting line: ``epoch 3/10  loss 0.2143  train 0.951  val 0.942  lr 1.0e-01  (1.2 s)``.

    ``train`` is the record's ``accuracy`` and ``val`` its ``val_accuracy``; each part appears only when the record
    has it (``val_loss`` is shown when there is validation data but no accuracy).
    """
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {_fmt(record.get('loss'), '.4f')}"]
    if "accuracy" in record:
        parts.append(f"train {_fmt(record['accuracy'], '.3f')}")
    if "val_accuracy" in record:
        parts.append(f"val {_fmt(record['val_accuracy'], '.3f')}")
    elif "val_loss" in record:
        parts.append(f"val_loss {_fmt(record['val_loss'], '.4f')}")
    if record.get("lr") is not None:
        parts.append(f"lr {record['lr']:.1e}")
    parts.append(f"({record.get('time', 0.0):.1f} s)")
    return "  ".join(parts)


class Callback:
    """Base class: every hook does nothing. Subclass and override what you need (contract in the module docstring)."""

    def on_train_begin(self, history: History) -> None:
        pass

    def on_epoch_end(self, epoch: int, record: dict, train_state) -> bool:
        return False

    def on_train_end(self, train_state, history: History):
        return train_state


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally restore the best epoch's state.

    An epoch improves when ``value < best - min_delta`` (``mode="min"``) or ``value > best + min_delta``
    (``mode="max"``). After ``patience`` epochs in a row without improvement training stops; with
    ``restore_best=True`` the params and model state of the best epoch are returned (the optimizer state stays the
    last one's). ``best_epoch`` and ``best`` hold the result.

    Args:
      monitor: a record entry, e.g. ``"val_accuracy"`` or ``"val_loss"``.
      patience: epochs without improvement before stopping, ``>= 1``.
      mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` for names containing ``acc``, else ``"min"``).
      min_delta: the smallest change that counts as an improvement, ``>= 0``.
      restore_best: return the best epoch's params instead of the last.

    Reference: Prechelt, "Early Stopping - But When?", in Neural Networks: Tricks of the Trade, 1998, sec. 2.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "auto", min_delta: float = 0.0,
                 restore_best: bool = True):
        if not (isinstance(patience, int) and patience >= 1):
            raise ValueError(f"EarlyStopping: expected patience >= 1 (epochs), got {patience!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: expected min_delta >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, min_delta, restore_best
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.best, self.best_epoch, self.wait, self._best_state = None, None, 0, None

    def on_train_begin(self, history):
        self.best, self.best_epoch, self.wait, self._best_state = None, None, 0, None

    def _improved(self, value) -> bool:
        if self.best is None:
            return not math.isnan(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, record, train_state):
        if self.monitor not in record:
            raise ValueError(f"EarlyStopping: the epoch record has no {self.monitor!r}; recorded entries: "
                             f"{', '.join(sorted(record))}; pass validation=(X_val, y_val) to fit or monitor one of "
                             f"those")
        value = float(record[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self._best_state = copy_tree((train_state.params, train_state.state))
            return False
        self.wait += 1
        return self.wait >= self.patience

    def on_train_end(self, train_state, history):
        if self.wait >= self.patience:
            history.stop_reason = (f"early stopping: {self.monitor} did not improve for {self.patience} epochs; "
                                   f"best {self.best:.4g} at epoch {self.best_epoch}")
        if self.restore_best and self._best_state is not None:
            params, state = self._best_state
            return train_state._replace(params=params, state=state)
        return train_state
