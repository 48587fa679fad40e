"""fit on data larger than memory (fnn/train/sources.py): memmaps, indexables and batches(epoch) functions."""
import threading

import jax
import numpy as np
import optax
import pytest

from fnn import layers, losses
from fnn.train import fit
from fnn.train.engine import TrainState, epoch_keys, make_train_step
from fnn.train.sources import THREAD_NAME, ArraySource, prefetch_to_device

LOSS = losses.softmax_cross_entropy_with_integer_labels
MODEL = layers.mlp([8, 3], layers.Tanh)
_, P0 = MODEL.init(jax.random.key(0), (-1, 5))
KW = dict(batch_size=16, key=7, verbose=False, metrics=())


def _data(n=83):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32)


def _memmap(tmp_path, X, y):
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return np.load(tmp_path / "X.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def _no_prefetch_thread():
    return not any(t.name == THREAD_NAME and t.is_alive() for t in threading.enumerate())


class Sorted:
    """An h5py-like dataset: only increasing index arrays are allowed; it records what was read."""

    def __init__(self, a):
        self.a, self.reads = a, 0

    def __len__(self):
        return len(self.a)

    def __getitem__(self, idx):
        assert np.all(np.diff(idx) > 0), "indices must be increasing"
        self.reads += 1
        return self.a[idx]


def test_memmap_with_resume_equals_in_memory_loop_bit_for_bit(tmp_path):
    X, y = _data()
    Xm, ym = _memmap(tmp_path, X, y)
    ref = fit(MODEL.apply, P0, optax.sgd(0.1), LOSS, X, y, epochs=2, epoch_mode="loop", **KW)
    # memmap, interrupted after epoch 1 and resumed: the uninterrupted in-memory run, bit for bit
    fit(MODEL.apply, P0, optax.sgd(0.1), LOSS, Xm, ym, epochs=1, checkpoint_dir=tmp_path / "run", prefetch=1, **KW)
    mm = fit(MODEL.apply, P0, optax.sgd(0.1), LOSS, Xm, ym, epochs=2, checkpoint_dir=tmp_path / "run",
             resume=True, **KW)
    for a, b in zip(_leaves(ref.params), _leaves(mm.params)):
        np.testing.assert_array_equal(a, b)
    assert mm.history["loss"] == ref.history["loss"] and mm.history["steps"] == [5, 10]
    assert _no_prefetch_thread()


def test_array_source_reads_rows_in_increasing_order_and_returns_them_in_the_asked_order():
    X, y = _data()
    perm = np.random.default_rng(1).permutation(83)[:16]
    sx = Sorted(X)   # would fail on unsorted indices, as h5py does
    x, t = ArraySource(sx, y).rows(perm)
    np.testing.assert_array_equal(x, X[perm])
    np.testing.assert_array_equal(t, y[perm])
    assert sx.reads == 1


def test_batches_function_equals_hand_written_loop_of_train_steps():
    X, y = _data(64)

    def batches(e):   # the source's own shuffling, seeded by the epoch
        order = np.random.default_rng(e).permutation(64)
        return [(X[order[i:i + 16]], y[order[i:i + 16]]) for i in range(0, 64, 16)]

    got = fit(MODEL.apply, P0, optax.sgd(0.1), LOSS, batches, None, epochs=2, **KW)
    step = make_train_step(MODEL.apply, LOSS, optax.sgd(0.1), metrics=())
    ts, key = TrainState(jax.tree.map(np.array, P0), optax.sgd(0.1).init(P0), None), jax.random.key(7)
    for e in range(2):
        step_key = epoch_keys(key, e)[1]
        for i, (xb, yb) in enumerate(batches(e)):
            ts, _ = step(ts, xb, yb, jax.random.fold_in(step_key, i))
    for a, b in zip(_leaves(got.params), _leaves(ts.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert got.history["steps"] == [4, 8]


def test_errors_name_expected_got_and_fix(tmp_path):
    X, y = _data()
    Xm, _ = _memmap(tmp_path, X, y)
    fit_ = lambda X_, y_, **kw: fit(MODEL.apply, P0, optax.sgd(0.1), LOSS, X_, y_, epochs=1,  # noqa: E731
                                    **{**KW, **kw})
    with pytest.raises(ValueError, match=r"same number of examples, got len\(X\)=83 and len\(y\)=80"):
        fit_(Xm, y[:80])
    with pytest.raises(TypeError, match="cannot be replayed.*function of the epoch"):
        fit_(((X[:16], y[:16]) for _ in range(3)), None)
    with pytest.raises(TypeError, match="expected X to be an array, a np.memmap.*got object"):
        fit_(object(), y)
    with pytest.raises(ValueError, match="epoch_mode='scan' needs the data in memory"):
        fit_(Xm, y, epoch_mode="scan")
    with pytest.raises(ValueError, match=r"batch 2 of epoch 1 has x \(8, 5\) float32.*expected x \(16, 5\) float32"):
        fit_(lambda e: [(X[:16], y[:16]), (X[16:32], y[16:32]), (X[:8], y[:8])], None)
    with pytest.raises(ValueError, match=r"expected batches of 16 examples \(batch_size\), got x of shape \(10, 5\)"):
        fit_(lambda e: [(X[:10], y[:10])], None)
    assert _no_prefetch_thread()


def test_prefetch_thread_stops_on_errors_and_early_exit():
    X, y = _data()

    class Failing(Sorted):
        def __getitem__(self, idx):
            if self.reads == 3:
                raise RuntimeError("disk gone")
            return super().__getitem__(idx)

    failing = Failing(X)   # an indexable that is not NumPy, read through fit
    with pytest.raises(RuntimeError, match="disk gone"):
        fit(MODEL.apply, P0, optax.sgd(0.1), LOSS, failing, y, epochs=1, **KW)
    assert failing.reads == 3 and _no_prefetch_thread()
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield np.full(2, i), np.zeros(2)
            i += 1

    it = prefetch_to_device(endless(), size=2)
    assert int(next(it)[0][0]) == 0
    it.close()   # the consumer stops early (a break, an early stop): the thread is joined
    assert _no_prefetch_thread() and len(produced) <= 4
    with pytest.raises(ValueError, match="expected a positive integer"):
        next(prefetch_to_device(endless(), size=0))
