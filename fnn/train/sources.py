"""Data larger than memory: ``fit`` on a source of batches, prefetched to the device while the step runs.

Two kinds of source (``as_source`` recognises them from what is passed to ``fit`` in place of ``X, y``):

* **Indexable** (``ArraySource(X, y)``; a ``numpy.memmap`` such as ``np.load(path, mmap_mode="r")``, an h5py
  dataset, or any object with ``__len__`` and a ``__getitem__`` that takes a sorted array of row indices). Epoch
  ``e`` uses exactly the in-memory randomness of ``fnn/train/engine.py``: ``shuffle_key, step_key =
  epoch_keys(key, e)``, batch ``i`` holds the rows ``batch_indices(shuffle_key, n, batch_size)[i]`` and its step
  gets ``fold_in(step_key, i)``. The rows are read in increasing order (memmap locality, h5py's rule) and put back
  in the permutation's order, so each step sees the very batch the in-memory epoch gathers: ``fit`` gives the
  same parameters, bit for bit, as ``fit(..., epoch_mode="loop")`` on the arrays in memory (``tests/test_sources.py``).
* **Batches of an epoch** (``BatchSource(batches)``, or any callable passed as ``X`` with ``y=None``):
  ``batches(epoch) -> iterable of (x, y)``. A function of the epoch, not a generator, because a generator cannot
  be replayed: resuming at epoch ``k`` calls ``batches(k)``, and the same ``k`` must give the same batches.
  Shuffling is the source's business (seed it with the epoch); steps per epoch = the number of batches yielded;
  every batch must have the first batch's shape and dtype (one compiled step). Step ``i`` of epoch ``e`` gets
  ``fold_in(step_key, i)`` as above.

A background thread (``prefetch_to_device``) reads and ``jax.device_put``s up to ``prefetch`` batches ahead while
the compiled step runs (JAX dispatches asynchronously, and NumPy's fancy indexing releases the GIL). The thread ends
with the epoch, and on any exception on either side (it is stopped and joined before the error propagates).
The step is ``fnn.train.engine.make_step_body``'s guarded step, compiled once with the batch as its argument.
"""
from __future__ import annotations

import functools
import queue
import threading
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from fnn.train.engine import batch_indices, epoch_keys, make_step_body

__all__ = ["ArraySource", "BatchSource", "as_source", "prefetch_to_device", "make_source_epoch", "first_batch",
           "THREAD_NAME"]

THREAD_NAME = "fnn-prefetch"


def _is_indexable(a) -> bool:
    return hasattr(a, "__len__") and hasattr(a, "__getitem__") and not isinstance(a, (list, tuple, str, dict))


class ArraySource:
    """An indexable pair ``(X, y)`` of equal length read a batch of rows at a time (a memmap, an h5py dataset...).

    Args:
      X: ``(n, ...)`` inputs, anything with ``len`` and ``X[sorted_int_array]`` (NumPy fancy indexing).
      y: ``(n, ...)`` targets, the same (or an in-memory array).

    Example:
      >>> import numpy as np
      >>> src = ArraySource(np.arange(10.0).reshape(5, 2), np.arange(5))
      >>> x, t = src.rows(np.array([3, 0]))
      >>> x.tolist(), t.tolist()
      ([[6.0, 7.0], [0.0, 1.0]], [3, 0])
    """

    def __init__(self, X, y):
        for name, a in (("X", X), ("y", y)):
            if not _is_indexable(a):
                raise TypeError(f"ArraySource: expected {name} to be indexable by an array of rows (an array, "
                                f"np.memmap, h5py dataset), got {type(a).__name__}; wrap it or load it as an array")
        if len(X) != len(y):
            raise ValueError(f"ArraySource: X and y must have the same number of examples, got len(X)={len(X)} and "
                             f"len(y)={len(y)}; pass the matching labels (or slice both to the same length)")
        if len(X) < 1:
            raise ValueError("ArraySource: expected at least one example, got len(X)=0")
        self.X, self.y, self.n = X, y, len(X)
        # a memmap read through a plain ndarray view of the same mapping: no memmap bookkeeping per batch
        self._read = [a.view(np.ndarray) if isinstance(a, np.memmap) else a for a in (X, y)]

    def rows(self, idx):
        """``(X[idx], y[idx])`` as NumPy arrays, read in increasing row order and returned in ``idx``'s order."""
        idx = np.asarray(idx)
        order = np.argsort(idx, kind="stable")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        sorted_idx = idx[order]
        return tuple(np.asarray(a[sorted_idx])[inverse] for a in self._read)

    def steps_per_epoch(self, batch_size: int) -> int:
        """``n // batch_size`` (the remainder rule of ``fnn/train/engine.py``)."""
        return self.n // batch_size

    def epoch(self, key, e: int, batch_size: int) -> Iterable:
        """The host batches ``(x, y)`` of epoch ``e``: the in-memory epoch's permutation, remainder dropped."""
        idx = np.asarray(jax.device_get(batch_indices(epoch_keys(key, e)[0], self.n, batch_size)))
        return (self.rows(b) for b in idx)

    def manifest_data(self):
        """What the run folder's manifest fingerprints: the arrays themselves if they are NumPy (a memmap is
        hashed as it is read), else the first 64 rows (a foreign source cannot be read whole cheaply)."""
        if isinstance(self.X, np.ndarray) and isinstance(self.y, np.ndarray):
            return self.X, self.y
        return self.rows(np.arange(min(64, self.n)))


class BatchSource:
    """``batches(epoch) -> iterable of (x, y)``: the batches of each epoch, made by the caller.

    A function of the epoch, not a generator: a resumed run calls ``batches(k)`` for epoch ``k`` and must get the
    same batches as the uninterrupted run did. Shuffling is the function's business.

    Example:
      >>> import numpy as np
      >>> src = BatchSource(lambda e: [(np.full((2, 3), e, np.float32), np.zeros(2, np.int32))] * 4)
      >>> [float(x[0, 0]) for x, _ in src.epoch(None, 5, 2)][:2]
      [5.0, 5.0]
    """

    def __init__(self, batches: Callable):
        if not callable(batches):
            raise TypeError(f"BatchSource: expected a function batches(epoch) -> iterable of (x, y), got "
                            f"{type(batches).__name__}")
        self.batches, self.n, self.last_steps = batches, None, None

    def epoch(self, key, e: int, batch_size: int) -> Iterable:
        """``batches(e)``, each item checked to be a pair; counts the steps (``steps_per_epoch``)."""
        count = 0
        for item in self.batches(e):
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ValueError(f"fit: batches({e}) must yield pairs (x, y), got {type(item).__name__}; yield "
                                 f"(x_batch, y_batch)")
            count += 1
            yield np.asarray(item[0]), np.asarray(item[1])
        self.last_steps = count   # set once the epoch is complete (a partial read, e.g. first_batch, leaves it)

    def steps_per_epoch(self, batch_size: int):
        """The number of batches the last complete epoch yielded (``None`` before the first)."""
        return self.last_steps

    def manifest_data(self):
        """The first batch of epoch 0 (what the run folder's manifest fingerprints)."""
        return tuple(next(iter(self.epoch(None, 0, 0))))


def as_source(X, y, name: str = "fit"):
    """The source ``X, y`` stand for, or ``None`` for in-memory arrays (NumPy, not memmap, or JAX).

    ``ArraySource``/``BatchSource`` pass through (``y`` must be ``None``); a ``numpy.memmap`` or another indexable
    ``X`` with ``y`` gives ``ArraySource(X, y)``; a callable ``X`` with ``y=None`` gives ``BatchSource(X)``. A
    generator or iterator is refused: it cannot be replayed for the next epoch or a resume.
    """
    if isinstance(X, (ArraySource, BatchSource)):
        if y is not None:
            raise ValueError(f"{name}: X is a {type(X).__name__}, which holds the targets too; pass y=None")
        return X
    if isinstance(X, np.memmap) or (isinstance(X, np.ndarray) and isinstance(y, np.memmap)):
        return ArraySource(X, y)
    if isinstance(X, (np.ndarray, jax.Array, list, tuple)) or np.isscalar(X) or hasattr(X, "iloc"):
        return None   # in memory (a pandas frame's [] selects columns: it is left to the array path)
    if hasattr(X, "__next__") or (hasattr(X, "__iter__") and not hasattr(X, "__getitem__")):
        raise TypeError(f"{name}: got an iterator/generator ({type(X).__name__}) as X; it cannot be replayed for "
                        f"the next epoch or for a resume. Pass a function of the epoch instead, "
                        f"batches(epoch) -> iterable of (x, y), e.g. lambda e: make_batches(seed=e), with y=None")
    if callable(X):
        if y is not None:
            raise ValueError(f"{name}: X is a function batches(epoch) yielding (x, y) pairs, so y must be None, got "
                             f"{type(y).__name__}")
        return BatchSource(X)
    if _is_indexable(X):
        if y is None:
            raise ValueError(f"{name}: X is an indexable source ({type(X).__name__}) but y is None; pass the "
                             f"targets as y (an array or another indexable of the same length)")
        return ArraySource(X, y)
    raise TypeError(f"{name}: expected X to be an array, a np.memmap or other indexable with y, or a function "
                    f"batches(epoch) -> iterable of (x, y), got {type(X).__name__}")


def first_batch(source, key, batch_size, name: str = "fit"):
    """``(batch_size, x0, y0)``: the first batch of epoch 0, for the checks before compiling.

    For an ``ArraySource`` ``batch_size`` must lie in ``[1, n]``; for a ``BatchSource`` it must equal the batches'
    leading size (one compiled step).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{name}: batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    if isinstance(source, ArraySource):
        if batch_size > source.n:
            raise ValueError(f"{name}: batch_size must be an integer in [1, {source.n}] (the number of training "
                             f"examples), got {batch_size}; lower it or pass more data")
        x0, y0 = source.rows(np.arange(batch_size))
        return batch_size, x0, y0
    first = next(iter(source.epoch(key, 0, batch_size)), None)
    if first is None:
        raise ValueError(f"{name}: batches(0) yielded no batch; it must yield at least one (x, y) pair")
    x0, y0 = first
    if x0.ndim == 0 or x0.shape[0] != batch_size or y0.ndim == 0 or y0.shape[0] != x0.shape[0]:
        raise ValueError(f"{name}: expected batches of {batch_size} examples (batch_size), got x of shape "
                         f"{x0.shape} and y of shape {y0.shape}; pass batch_size equal to the batches' size")
    return batch_size, x0, y0


def _check_like(x, y, want, i, e, name):
    got = ((x.shape, x.dtype), (y.shape, y.dtype))
    if got != want:
        raise ValueError(f"{name}: batch {i} of epoch {e + 1} has x {x.shape} {x.dtype} and y {y.shape} {y.dtype}, "
                         f"expected x {want[0][0]} {want[0][1]} and y {want[1][0]} {want[1][1]} (the first batch's); "
                         f"make every batch the same shape and dtype (drop or pad the last one)")


def prefetch_to_device(batches: Iterable, size: int = 2, check: Callable | None = None):
    """Iterate over ``batches`` (host ``(x, y)`` pairs) as device arrays, ``size`` of them read ahead in a thread.

    A generator: ``check(x, y, i)`` (optional) runs in the thread before ``jax.device_put``. An exception in the
    thread is raised here; closing the generator (the loop ends, breaks or raises) stops and joins the thread.

    Example:
      >>> import numpy as np
      >>> [int(x.sum()) for x, _ in prefetch_to_device(((np.ones(3) * i, np.zeros(3)) for i in range(3)))]
      [0, 3, 6]
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"prefetch: expected a positive integer (batches read ahead), got {size!r}")
    q, stop, done = queue.Queue(maxsize=int(size)), threading.Event(), object()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for i, (x, y) in enumerate(batches):
                if check is not None:
                    check(x, y, i)
                if not put(jax.device_put((x, y))):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, raised there)
            put(exc)

    thread = threading.Thread(target=work, name=THREAD_NAME, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def make_source_epoch(apply, loss, optimizer, batch_size: int, metrics=("accuracy",), l2=None, *, prefetch=2,
                      name: str = "fit"):
    """The epoch on a source: ``epoch(ts, source, key, e, on_step=None) -> (ts, bad, stats)``.

    Step ``i`` of epoch ``e`` is ``make_step_body``'s guarded step on the source's batch ``i`` with the key
    ``fold_in(epoch_keys(key, e)[1], i)``, compiled once and donated, exactly as ``make_loop_epoch``; ``stats``
    are per step, ``bad`` the first non-finite step (``-1`` if none).
    """
    body = make_step_body(apply, loss, metrics)

    @jax.jit
    def step_key_of(key, e):
        return epoch_keys(key, e)[1]

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(ts, bad, i, x, y, step_key):
        return body(optimizer, l2, ts, bad, i, x, y, jax.random.fold_in(step_key, i))
    want = {}

    def check(x, y, i, e):
        got = ((x.shape, x.dtype), (y.shape, y.dtype))
        want.setdefault("spec", got)
        _check_like(x, y, want["spec"], i, e, name)

    def epoch(ts, source, key, e, on_step=None):
        step_key = step_key_of(key, np.int32(e))
        bad, stats = jnp.int32(-1), []
        batches = prefetch_to_device(source.epoch(key, e, batch_size), prefetch, lambda x, y, i: check(x, y, i, e))
        try:
            for i, (x, y) in enumerate(batches):
                (ts, bad), s = step(ts, bad, np.int32(i), x, y, step_key)
                stats.append(s)
                if on_step is not None:
                    on_step()
        finally:
            batches.close()
        if not stats:
            raise ValueError(f"{name}: epoch {e + 1} had no batch; the source must yield at least one (x, y) pair")
        return ts, bad, jax.tree.map(lambda *a: jnp.stack(a), *stats)

    return epoch
