"""What a training run reports: the per-epoch ``History``, the babysitting line, and callbacks (early stopping).

The callback contract (stated once, here): ``fit`` calls, in order,

    cb.on_train_begin(history)                           # once; history may already hold resumed epochs
    stop = cb.on_epoch_end(epoch, record, train_state)   # after every epoch; return True to stop training
    train_state = cb.on_train_end(train_state, history)  # once; may return a different TrainState (restore-best)

``record`` is the epoch's dict (see ``History``); ``train_state`` is ``fnn.train.TrainState(params, opt_state,
state)``. The arrays in ``train_state`` are donated to the next compiled step, so a callback that keeps them must
copy them (``EarlyStopping`` does). An exception raised in a hook ends ``fit`` there (``on_train_end`` is not called).
"""
from __future__ import annotations

import csv
import json
import math
import numbers
import os
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["History", "Callback", "EarlyStopping", "CSVLogger", "format_epoch_line", "copy_tree"]


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
    last one's). ``best_epoch`` and ``best`` hold the result. When it stops, it says why: ``message`` (also
    ``history.stop_reason``, and printed through ``print_fn`` when ``verbose``) names the monitored entry, the best
    value and its epoch, the patience and the epoch it stopped after, e.g. ``early stopping: val_loss did not improve
    for 2 epochs (patience 2, mode min, min_delta 0); best 0.3125 at epoch 3; stopped after epoch 5; restored the
    params of epoch 3``.

    Args:
      monitor: a record entry, e.g. ``"val_accuracy"`` or ``"val_loss"``.
      patience: epochs without improvement before stopping, ``>= 1``.
      mode: ``"min"``, ``"max"`` or ``"auto"`` (``"max"`` for names containing ``acc``, else ``"min"``).
      min_delta: the smallest change that counts as an improvement, ``>= 0``.
      restore_best: return the best epoch's params instead of the last.
      verbose: print ``message`` when it stops training. print_fn: where it goes (``fit``'s ``print_fn``, say).

    Reference: Prechelt, "Early Stopping - But When?", in Neural Networks: Tricks of the Trade, 1998, sec. 2.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "auto", min_delta: float = 0.0,
                 restore_best: bool = True, verbose: bool = True, print_fn=print):
        if not (isinstance(patience, int) and patience >= 1):
            raise ValueError(f"EarlyStopping: expected patience >= 1 (epochs), got {patience!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not min_delta >= 0:
            raise ValueError(f"EarlyStopping: expected min_delta >= 0, got {min_delta!r}")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, min_delta, restore_best
        self.mode = ("max" if "acc" in monitor else "min") if mode == "auto" else mode
        self.verbose, self.print_fn = verbose, print_fn
        self.on_train_begin(None)

    def on_train_begin(self, history):
        self.best, self.best_epoch, self.wait, self._best_state = None, None, 0, None
        self.stopped_epoch, self.message = None, None

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
        if self.wait >= self.patience:
            self.stopped_epoch = record["epoch"]
            return True
        return False

    def on_train_end(self, train_state, history):
        if self.stopped_epoch is not None:
            best = "none (every value was nan)" if self.best is None else f"{self.best:.6g} at epoch {self.best_epoch}"
            restored = (f"; restored the params of epoch {self.best_epoch}"
                        if self.restore_best and self._best_state is not None else "; kept the last params")
            self.message = (f"early stopping: {self.monitor} did not improve for {self.patience} epochs (patience "
                            f"{self.patience}, mode {self.mode}, min_delta {self.min_delta:g}); best {best}; stopped "
                            f"after epoch {self.stopped_epoch}{restored}")
            history.stop_reason = self.message
            if self.verbose:
                self.print_fn(self.message)
        if self.restore_best and self._best_state is not None:
            params, state = self._best_state
            return train_state._replace(params=params, state=state)
        return train_state


def _cell(value) -> str:
    """One CSV cell: ints as ints, floats by ``repr`` (round-trips exactly; ``nan``, ``inf``, ``-inf``), ``None``
    empty, anything else by ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Integral) or (getattr(value, "shape", None) == () and
                                               getattr(getattr(value, "dtype", None), "kind", "") in ("i", "u")):
        return str(int(value))
    if isinstance(value, numbers.Real) or getattr(value, "shape", None) == ():
        return repr(float(value))
    return str(value)


class CSVLogger(Callback):
    """Write the history to a CSV file as it grows: one row per epoch, every entry of the epoch record a column.

    The header is the first record's keys in order (``epoch, accuracy, loss, lr, steps, val_accuracy, val_loss,
    time``; see ``History``). Each row is flushed when its epoch ends, so the rows of the epochs finished before a
    crash stay on disk. Floats are written by ``repr`` (``float(cell)`` gives back the recorded value exactly;
    ``nan``, ``inf`` and ``-inf`` as such), ints as ints, an entry an epoch lacks as an empty cell. A key that
    first appears in a later record becomes a new last column: the file is rewritten (atomically) with the wider
    header, the earlier rows' cells of it empty.

    An existing file is refused (``ValueError``) unless ``append=True`` (add rows under its header; a new key widens
    it as above) or ``overwrite=True`` (start the file afresh). With ``fit(..., resume=True)`` use ``append=True``:
    the epochs run again after the last checkpoint then appear twice (the ``epoch`` column tells them apart).

    Args:
      path: the CSV file (its folder is created).
      append: add to an existing file instead of refusing it.
      overwrite: replace an existing file instead of refusing it.

    Example:
      >>> logger = CSVLogger("history.csv")
      >>> logger.on_train_begin(History())
      >>> logger.on_epoch_end(1, {"epoch": 1, "loss": 0.5, "lr": float("nan")}, None)
      False
      >>> _ = logger.on_train_end(None, History())
      >>> with open("history.csv") as f:
      ...     print(f.read().strip())
      epoch,loss,lr
      1,0.5,nan
    """

    def __init__(self, path, *, append: bool = False, overwrite: bool = False):
        if append and overwrite:
            raise ValueError("CSVLogger: append=True and overwrite=True contradict each other (append keeps the "
                             "file's rows, overwrite deletes them); pass one of them")
        self.path, self.append, self.overwrite = os.fspath(path), bool(append), bool(overwrite)
        self.fields: list[str] | None = None
        self._file = None
        self._check_path()

    def _check_path(self):
        if os.path.exists(self.path) and not (self.append or self.overwrite):
            raise ValueError(f"CSVLogger: {self.path!r} already exists; pass append=True to add rows to it, "
                             f"overwrite=True to replace it, or another path")

    def on_train_begin(self, history):
        self._close()
        self._check_path()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.fields = None
        if self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as f:
                self.fields = next(csv.reader(f), None)
            self._file = open(self.path, "a", newline="")
        else:
            self._file = open(self.path, "w", newline="")

    def _widen(self, new):
        """Rewrite the file with ``new`` keys appended to the header (earlier rows get empty cells)."""
        self._close()
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        self.fields = self.fields + new
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, self.fields, restval="")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", newline="")

    def on_epoch_end(self, epoch, record, train_state):
        if self._file is None:
            raise ValueError("CSVLogger: on_epoch_end before on_train_begin; pass the logger to fit(callbacks=[...]) "
                             "or call on_train_begin first")
        if self.fields is None:
            self.fields = list(record)
            csv.writer(self._file).writerow(self.fields)
        new = [k for k in record if k not in self.fields]
        if new:
            self._widen(new)
        csv.writer(self._file).writerow([_cell(record.get(k)) for k in self.fields])
        self._file.flush()
        return False

    def _close(self):
        if getattr(self, "_file", None) is not None:   # (also from __del__ after a refused __init__)
            self._file.close()
            self._file = None

    def on_train_end(self, train_state, history):
        self._close()
        return train_state

    def __del__(self):   # a run that crashed never called on_train_end: close the file (its rows are flushed)
        self._close()
