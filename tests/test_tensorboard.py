"""fnn.train.TensorBoard: the event files, read back with TensorBoard's own reader, hold the history's scalars
(float32-exact) at step = epoch, weight/gradient histograms of the right size and sums, and the update ratios of a
NumPy computation from the params saved at each epoch; resuming purges the re-run epochs."""
import glob
import os

import jax
import numpy as np
import optax
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fnn import data, layers, losses
from fnn.train import Callback, History, TensorBoard, fit
from fnn.train.tensorboard import leaf_names


def read(logdir):
    return EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0}).Reload()


class Keep(Callback):
    """Copies of the params after every epoch (an independent record to check the event files against)."""

    def on_train_begin(self, history):
        self.params = []

    def on_epoch_end(self, epoch, record, train_state):
        self.params.append([np.array(a, dtype=np.float64) for a in jax.tree_util.tree_leaves(train_state.params)])
        return False


def test_fit_writes_scalars_histograms_gradients_and_update_ratios(tmp_path):
    X, y = data.load_digits()
    net = layers.mlp([8, 10], layers.Tanh)
    _, params = net.init(jax.random.key(0), (-1, 64))
    xb, yb = X[:40], y[:40]
    loss = losses.softmax_cross_entropy_with_integer_labels

    def batch_loss(p):
        return loss(net.apply(p, xb), yb)

    keep = Keep()
    tb = TensorBoard(tmp_path / "run", histograms=True, loss_fn=batch_loss)
    _, _, history = fit(net.apply, params, optax.sgd(0.1), loss, X[:200], y[:200], epochs=3, batch_size=50,
                        key=jax.random.key(1), validation=(X[200:300], y[200:300]), learning_rate=0.1,
                        verbose=False, callbacks=[keep, tb])
    assert tb.writer is None and len(glob.glob(str(tmp_path / "run" / "events.out.tfevents.*"))) == 1
    ea = read(tmp_path / "run")
    names = leaf_names(params)
    assert names == ["0.W", "0.b", "2.W", "2.b"]

    # every numeric record entry but epoch, as a float32 scalar at step = epoch
    fields = [k for k in history.records[0] if k != "epoch"]
    assert set(fields) == {"loss", "accuracy", "lr", "steps", "val_loss", "val_accuracy", "time"}
    for k in fields:
        events = ea.Scalars(k)
        assert [e.step for e in events] == [1, 2, 3], k
        assert [e.value for e in events] == [float(np.float32(v)) for v in history[k]], k

    # weights: one histogram per leaf per epoch, holding every weight; its sum and sum of squares are the params'
    for name, i in zip(names, range(4)):
        hists = ea.Histograms(f"weights/{name}")
        assert [h.step for h in hists] == [1, 2, 3]
        for h, saved in zip(hists, keep.params):
            w = saved[i]
            assert h.histogram_value.num == w.size == sum(h.histogram_value.bucket)
            np.testing.assert_allclose(h.histogram_value.sum, w.sum(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(h.histogram_value.sum_squares, (w ** 2).sum(), rtol=1e-5)
            assert h.histogram_value.min == w.min() and h.histogram_value.max == w.max()

    # update ratios ||w_e - w_{e-1}|| / ||w_{e-1}|| from epoch 2 on, against NumPy on the saved params
    for i, name in enumerate(names):
        events = ea.Scalars(f"update_ratio/{name}")
        assert [e.step for e in events] == [2, 3]
        want = [np.linalg.norm(keep.params[e][i] - keep.params[e - 1][i]) / np.linalg.norm(keep.params[e - 1][i])
                for e in (1, 2)]
        np.testing.assert_allclose([e.value for e in events], want, rtol=1e-5)

    # gradients of loss_fn at each epoch's params: central finite differences on the first weight of the last layer
    last = keep.params[-1]
    g = ea.Histograms("gradients/2.b")[-1].histogram_value
    treedef = jax.tree_util.tree_structure(params)

    jitted = jax.jit(batch_loss)

    def f(leaves):
        return float(jitted(jax.tree_util.tree_unflatten(treedef, [np.asarray(a, np.float32) for a in leaves])))

    eps, fd = 1e-2, []
    for j in range(10):
        up, dn = [a.copy() for a in last], [a.copy() for a in last]
        up[3][j] += eps
        dn[3][j] -= eps
        fd.append((f(up) - f(dn)) / (2 * eps))
    assert g.num == 10
    np.testing.assert_allclose(g.sum, np.sum(fd), atol=2e-3)       # softmax CE: the bias gradient sums to ~0
    np.testing.assert_allclose(g.sum_squares, np.sum(np.square(fd)), rtol=2e-2)


def test_resume_purges_the_epochs_run_again_and_a_fresh_run_replaces_the_view(tmp_path):
    logdir = tmp_path / "run"
    tb = TensorBoard(logdir)
    tb.on_train_begin(History())
    for e in (1, 2, 3):                       # the interrupted run wrote 3 epochs; its last checkpoint was epoch 1
        tb.on_epoch_end(e, {"epoch": e, "loss": 1.0 / e}, None)
    tb.on_train_end(None, History())
    assert tb.purge_step is None
    resumed = History([{"epoch": 1, "loss": 1.0}])
    tb.on_train_begin(resumed)
    assert tb.purge_step == 2
    for e in (2, 3, 4):
        tb.on_epoch_end(e, {"epoch": e, "loss": 10.0 * e, "note": "text", "gone": None}, None)
    tb.on_train_end(None, resumed)
    events = read(logdir).Scalars("loss")
    assert [(e.step, e.value) for e in events] == [(1, 1.0), (2, 20.0), (3, 30.0), (4, 40.0)]
    assert read(logdir).Tags()["scalars"] == ["loss"]           # strings and None are not scalars

    tb.on_train_begin(History())                                # a fresh run: purge from step 1
    assert tb.purge_step == 1
    tb.on_epoch_end(1, {"epoch": 1, "loss": 5.0}, None)
    tb.on_train_end(None, History())
    assert [(e.step, e.value) for e in read(logdir).Scalars("loss")] == [(1, 5.0)]
    assert len(os.listdir(logdir)) == 3                         # the old files stay on disk


def test_bad_input_is_refused_with_a_clear_message(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    with pytest.raises(ValueError, match=r"logdir .*a_file.* is a file; expected a folder"):
        TensorBoard(f)
    with pytest.raises(ValueError, match="loss_fn is only used for the gradient histograms; pass histograms=True"):
        TensorBoard(tmp_path / "r", loss_fn=lambda p: 0.0)
    with pytest.raises(TypeError, match="loss_fn must be a function params -> scalar or None, got int"):
        TensorBoard(tmp_path / "r", histograms=True, loss_fn=3)
    with pytest.raises(ValueError, match="expected flush_secs > 0"):
        TensorBoard(tmp_path / "r", flush_secs=0)
    with pytest.raises(ValueError, match="on_epoch_end before on_train_begin"):
        TensorBoard(tmp_path / "r").on_epoch_end(1, {"epoch": 1, "loss": 1.0}, None)
