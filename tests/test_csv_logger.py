"""fnn.train.callbacks.CSVLogger and EarlyStopping's message.

The reference for the CSV is ``fit``'s own returned history, read back with Python's ``csv`` module (independent of
the logger's writer): every cell must give back the recorded value exactly (floats are written by ``repr``).
"""
import csv
import math

import jax
import numpy as np
import optax
import pytest

from fnn import layers, losses
from fnn.train import fit
from fnn.train.callbacks import Callback, CSVLogger, EarlyStopping, History

CE = losses.softmax_cross_entropy_with_integer_labels


@pytest.fixture(scope="module")
def problem():
    X = np.asarray(jax.random.normal(jax.random.key(0), (40, 4)))
    y = (X[:, 0] > 0).astype(np.int32) + (X[:, 1] > 0).astype(np.int32)     # 3 classes
    model = layers.mlp([8, 3], layers.Tanh)
    _, params = model.init(jax.random.key(1), (-1, 4))
    return model, params, X[:30], y[:30], X[30:], y[30:]


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def parse(cell):
    return None if cell == "" else int(cell) if cell.lstrip("-").isdigit() else float(cell)


def test_csv_equals_history_and_early_stopping_says_why(problem, tmp_path, capsys):
    model, params, X, y, Xv, yv = problem
    path = tmp_path / "logs" / "history.csv"
    # mode="max" on the falling validation loss: epoch 1 stays best, training stops after epoch 1 + 2
    stopper = EarlyStopping("val_loss", patience=2, mode="max")
    result = fit(model.apply, params, optax.sgd(0.5), CE, X, y, epochs=6, batch_size=10, key=jax.random.key(2),
                 validation=(Xv, yv), callbacks=[CSVLogger(path), stopper], learning_rate=0.5, verbose=False)
    history = result.history
    assert len(history) == 3
    header, rows = read_csv(path)
    assert header == list(history.records[0])
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "steps", "time"} <= set(header)
    assert len(rows) == len(history)
    for row, record in zip(rows, history.records):
        got = {k: parse(c) for k, c in zip(header, row)}
        assert got == record                           # every value, exactly (repr round-trips a float)
        assert type(got["epoch"]) is int and type(got["steps"]) is int
    # why it stopped: the monitored entry, the best value and its epoch, the patience
    best = history.records[0]["val_loss"]
    assert stopper.best_epoch == 1 and stopper.best == best
    out = capsys.readouterr().out
    assert stopper.message == history.stop_reason and stopper.message in out
    assert stopper.message.startswith("early stopping: val_loss did not improve for 2 epochs (patience 2, mode max")
    assert f"best {best:.6g} at epoch 1; stopped after epoch 3; restored the params of epoch 1" in stopper.message


def test_refuses_to_overwrite_and_appends(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("epoch,loss\n1,0.5\n")
    with pytest.raises(ValueError, match=r"already exists; pass append=True .* overwrite=True to replace it"):
        CSVLogger(path)
    with pytest.raises(ValueError, match="contradict each other"):
        CSVLogger(path, append=True, overwrite=True)
    logger = CSVLogger(path, append=True)
    logger.on_train_begin(History())
    logger.on_epoch_end(1, {"epoch": 1, "loss": 0.25}, None)
    logger.on_train_end(None, History())
    assert path.read_text() == "epoch,loss\n1,0.5\n1,0.25\n"
    # the same logger again without append: the file it wrote is refused too (no silent loss of a run's log)
    fresh = tmp_path / "f.csv"
    once = CSVLogger(fresh)
    once.on_train_begin(History())
    once.on_train_end(None, History())
    with pytest.raises(ValueError, match="already exists"):
        once.on_train_begin(History())
    logger = CSVLogger(path, overwrite=True)
    logger.on_train_begin(History())
    logger.on_epoch_end(1, {"epoch": 1, "loss": float("inf"), "lr": float("nan"), "note": None}, None)
    logger.on_epoch_end(2, {"epoch": 2, "loss": -math.inf, "lr": 0.1, "note": "x"}, None)
    logger.on_train_end(None, History())
    assert path.read_text() == "epoch,loss,lr,note\n1,inf,nan,\n2,-inf,0.1,x\n"


def test_a_later_new_key_widens_the_header_and_a_missing_one_is_empty(tmp_path):
    path = tmp_path / "h.csv"
    logger = CSVLogger(path)
    logger.on_train_begin(History())
    logger.on_epoch_end(1, {"epoch": 1, "loss": 0.5}, None)
    logger.on_epoch_end(2, {"epoch": 2, "loss": 0.4, "val_loss": 0.7}, None)
    logger.on_epoch_end(3, {"epoch": 3, "val_loss": 0.6}, None)
    logger.on_train_end(None, History())
    assert path.read_text() == "epoch,loss,val_loss\n1,0.5,\n2,0.4,0.7\n3,,0.6\n"
    with pytest.raises(ValueError, match="before on_train_begin"):
        CSVLogger(tmp_path / "other.csv").on_epoch_end(1, {"epoch": 1}, None)


class Crash(Callback):
    def on_epoch_end(self, epoch, record, train_state):
        if epoch == 2:
            raise RuntimeError("crash at epoch 2")
        return False


def test_a_crash_keeps_the_rows_written_then_append_continues(problem, tmp_path):
    model, params, X, y, _, _ = problem
    path = tmp_path / "h.csv"
    logger = CSVLogger(path)
    kw = dict(epochs=3, batch_size=10, key=jax.random.key(3), verbose=False, metrics=())
    with pytest.raises(RuntimeError, match="crash at epoch 2"):
        fit(model.apply, params, optax.sgd(0.1), CE, X, y, callbacks=[Crash(), logger], **kw)
    header, rows = read_csv(path)        # read while the crashed run's file is still open: flushed per epoch
    assert header == ["epoch", "loss", "steps", "time"] and [r[0] for r in rows] == ["1"]
    del logger
    result = fit(model.apply, params, optax.sgd(0.1), CE, X, y, callbacks=[CSVLogger(path, append=True)], **kw)
    header, rows = read_csv(path)
    assert [r[0] for r in rows] == ["1", "1", "2", "3"]
    assert [float(r[1]) for r in rows[1:]] == result.history["loss"]
