"""``fit``: the outline of training, and its named pieces (each usable and testable alone).

``fit`` = check the arguments and the data -> build the train state and place it (devices) -> resume -> choose how
the epoch runs -> for every epoch: run it (``fnn.train.engine``), record it, validate, report, call back,
checkpoint -> hand the result back. The step, the epoch, the randomness, the remainder rule and the non-finite-loss
rule are stated once, in ``fnn/train/engine.py``.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn import optimizers
from fnn.train.callbacks import Callback, History, copy_tree, format_epoch_line
from fnn.train.distributed import check_batch_size, replicate
from fnn.train.engine import (
    EPOCH_MODES,
    SCAN_UNROLL,
    TrainState,
    epoch_means,
    epoch_mode_for,
    make_epoch,
    make_epoch_runner,
    make_loop_epoch,
    nonfinite_cause,
    step_has_convolution,
)
from fnn.train.evaluation import as_array, check_data, check_model, make_evaluator
from fnn.train.runs import prepare_run_folder, run_manifest
from fnn.train.sources import as_source, first_batch, make_source_epoch
from fnn.train.weighting import example_weights, weighted_objective, with_weights

__all__ = ["FitResult", "FitResultWithState", "fit", "check_fit_arguments", "check_validation", "choose_modes",
           "make_fit_epoch", "epoch_record", "non_finite_message", "checkpoint_tree", "resume_from", "check_fit_inputs",
           "check_opt_state", "warn_full_batch_rule", "with_precision"]


class FitResult(NamedTuple):
    """What ``fit`` returns for a stateless model: ``params, opt_state, history = fit(...)``."""
    params: object
    opt_state: object
    history: History


class FitResultWithState(NamedTuple):
    """What ``fit`` returns when it was given ``state=``: ``params, opt_state, history, state = fit(...)``."""
    params: object
    opt_state: object
    history: History
    state: object


def _check_positive_int(name, value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"fit: {name} must be a positive integer ({what}), got {value!r}")


def check_fit_arguments(*, epochs, epoch_mode, scan_unroll, resume, checkpoint_dir, checkpoint_every) -> None:
    """``fit``'s argument checks that need no data: each error says what was expected and what arrived."""
    _check_positive_int("epochs", epochs, "the number of passes over the data")
    if scan_unroll is not None and (isinstance(scan_unroll, bool) or not isinstance(scan_unroll, int)
                                    or scan_unroll < 1):
        raise ValueError(f"fit: scan_unroll must be a positive int (steps per loop iteration) or None (automatic), "
                         f"got {scan_unroll!r}")
    if epoch_mode not in EPOCH_MODES:
        raise ValueError(f"fit: epoch_mode must be one of {EPOCH_MODES}, got {epoch_mode!r}")
    if resume and checkpoint_dir is None:
        raise ValueError("fit: resume=True needs checkpoint_dir= (the directory the interrupted run wrote to)")
    _check_positive_int("checkpoint_every", checkpoint_every, "epochs between checkpoints")


def check_fit_inputs(apply, optimizer, key, X, y):
    """``fit``'s checks of what is passed in place of what: a layer for its apply function, an optimizer factory
    for an optimizer; an int seed becomes a key and Python lists become arrays. Returns them, converted."""
    if isinstance(apply, tuple) and len(apply) == 2 and all(callable(f) for f in apply):
        raise TypeError("fit: expected the model's apply function, got a layer (an (init, apply) pair); pass "
                        "model.apply")
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        what = getattr(optimizer, "__qualname__", type(optimizer).__name__)
        module = getattr(optimizer, "__module__", "") or ""
        module = module.split(".")[0] if module.startswith("optax") else module   # optax._src.alias -> optax
        hint = (f"call it with its hyper-parameters, e.g. {module}.{what}(1e-3)"
                if callable(optimizer) else "pass an fnn rule such as fnn.optimizers.adam(1e-3) or an optax one")
        raise TypeError(f"fit: expected an optimizer (an object with init and update), got {what!r}; {hint}")
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        key = jax.random.key(int(key))   # an int seed is accepted: fit(..., key=0) is fit(..., key=jax.random.key(0))
    elif not isinstance(key, jax.Array):
        raise TypeError(f"fit: expected key to be a jax.random key or an int seed, got {type(key).__name__}: "
                        f"{key!r}")
    return apply, optimizer, key, as_array(X), as_array(y)


def with_precision(apply, precision: str):
    """``apply``, or ``mixed_precision(apply, precision)`` for ``"bfloat16"`` / ``"float16"`` (``fit(precision=)``)."""
    if precision == "float32":
        return apply
    if precision not in ("bfloat16", "float16"):
        raise ValueError(f"fit: precision must be 'float32', 'bfloat16' or 'float16', got {precision!r}; "
                         f"bfloat16 computes the model in bfloat16 with float32 master weights")
    from fnn.train.precision import mixed_precision
    return mixed_precision(apply, jnp.dtype(precision))


def warn_full_batch_rule(optimizer, batch_size, n, name="fit"):
    """A ``UserWarning`` when a full-batch second-order rule (``fnn.optimizers.full_batch_rule``: newton, bfgs,
    lbfgs) is given mini-batches (``batch_size < n``): its curvature comes from gradient differences that the
    mini-batch noise swamps (docs/optimizers.md measures it on digits)."""
    rule = optimizers.full_batch_rule(optimizer)
    if rule is not None and batch_size < n:
        what = "its Hessian-scaled steps" if rule == "newton" else "its curvature pairs (s, y)"
        warnings.warn(f"{name}: {rule} is a full-batch second-order rule, but batch_size={batch_size} < {n} examples "
                      f"makes {what} noisy; use batch_size=len(X) (={n}) or a first-order rule "
                      f"such as adam", UserWarning, stacklevel=3)


def check_opt_state(optimizer, params, opt_state):
    """``optimizer.init(params)``, or ``opt_state`` after checking it has that structure (a state of another
    optimizer, or of other params, would fail deep inside the update or silently mix two runs)."""
    fresh = optimizer.init(params)
    if opt_state is None:
        return fresh
    want, got = jax.tree.structure(fresh), jax.tree.structure(opt_state)
    if want != got:
        raise ValueError(f"fit: opt_state is not a state of this optimizer for these params;\n  expected: {want}\n"
                         f"  got:      {got}\npass the opt_state a fit with the same optimizer returned, or None to "
                         f"start afresh")
    return opt_state


def check_validation(validation, apply, loss, metrics, params, state, name="fit"):
    """``None``, or the pair ``(X_val, y_val)`` checked (data, and one example traced through the model) as arrays."""
    if validation is None:
        return None
    if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
        raise ValueError(f"{name}: validation must be a pair (X_val, y_val), got {type(validation).__name__}")
    check_data(*validation, 1, f"{name} (validation)")
    check_model(apply, loss, metrics, params, state, *validation, 1, f"{name} (validation)")
    return jnp.asarray(validation[0]), jnp.asarray(validation[1])


def choose_modes(epoch_mode, scan_unroll, apply, loss, optimizer, ts, x, y, key, metrics, backend=None):
    """Resolve ``epoch_mode="auto"`` and ``scan_unroll=None`` from one traced step (``x, y``: one batch).

    Returns ``(epoch_mode, scan_unroll)``: ``"loop"`` on the CPU for a step with a convolution, else ``"scan"``;
    ``scan_unroll`` 1 with a convolution, else ``SCAN_UNROLL`` (left ``None`` in loop mode). Given values are kept.
    """
    if epoch_mode == "auto" or (epoch_mode == "scan" and scan_unroll is None):  # trace the step once for both
        has_conv = step_has_convolution(apply, loss, optimizer, ts, x, y, key, metrics)
        if epoch_mode == "auto":
            epoch_mode = epoch_mode_for(has_conv, jax.default_backend() if backend is None else backend)
        if scan_unroll is None and epoch_mode == "scan":
            scan_unroll = 1 if has_conv else SCAN_UNROLL
    return epoch_mode, scan_unroll


def _progress_bar(progress, total, desc):
    show = sys.stdout.isatty() if progress is None else bool(progress)
    if not show:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, unit="step", dynamic_ncols=True)


def make_fit_epoch(apply, loss, optimizer, batch_size, *, epoch_mode, scan_unroll=1, metrics=("accuracy",), l2=None,
                   mesh=None, progress=False, epochs=1, source=None, prefetch=2):
    """``run(ts, X, y, key, e) -> (ts, bad, means)``: epoch ``e`` of ``fit`` in the chosen mode.

    ``"scan"``: ``fnn.train.engine.make_epoch_runner`` (one compiled program, replayed guarded after a non-finite
    loss). ``"loop"``: a Python loop of compiled guarded steps (with a per-step progress bar when ``progress``).
    With a ``source`` (``fnn.train.sources``; ``X, y`` are then ignored): the loop over its batches, ``prefetch``
    of them read ahead. ``means`` are the epoch's mean stats over the steps before the first non-finite one.
    """
    if epoch_mode == "scan" and source is None:
        return make_epoch_runner(lambda guard: make_epoch(apply, loss, optimizer, batch_size, metrics=metrics, l2=l2,
                                                          guard=guard, mesh=mesh, unroll=scan_unroll))
    if source is None:
        loop_epoch = make_loop_epoch(apply, loss, optimizer, batch_size, metrics, l2, mesh)
    else:
        source_epoch = make_source_epoch(apply, loss, optimizer, batch_size, metrics, l2, prefetch=prefetch)

    def run(ts, X, y, key, e):
        total = X.shape[0] // batch_size if source is None else source.steps_per_epoch(batch_size)
        bar = _progress_bar(progress, total, f"epoch {e + 1}/{epochs}")
        on_step = None if bar is None else bar.update
        if source is None:
            ts, bad, stats = loop_epoch(ts, X, y, jax.random.fold_in(key, e), on_step)
        else:
            ts, bad, stats = source_epoch(ts, source, key, e, on_step)
        if bar is not None:
            bar.close()
        bad = int(bad)
        means = epoch_means(stats, bad)
        if bad >= 0:
            means["nonfinite"] = nonfinite_cause(jax.device_get(stats), bad)
        return ts, bad, means

    return run


def _find_learning_rate(opt_state):
    """The learning rate stored by ``optax.inject_hyperparams`` anywhere in ``opt_state``, else ``None``."""
    for node in jax.tree.leaves(opt_state, is_leaf=lambda n: hasattr(n, "hyperparams")):
        if hasattr(node, "hyperparams") and "learning_rate" in node.hyperparams:
            return float(node.hyperparams["learning_rate"])
    return None


def epoch_record(e, means, bad, nb, *, learning_rate=None, opt_state=None):
    """The history record of epoch ``e`` (0-based) from its means: ``{"epoch", <stats>, "lr"?, "steps"}``.

    ``steps`` counts the steps taken so far (up to, not including, a first non-finite one); ``lr`` is
    ``learning_rate`` (a number or a schedule of the step) or the one found in ``optax.inject_hyperparams`` state.
    """
    record = {"epoch": e + 1, **means}
    step = (e + 1) * nb
    if learning_rate is None:
        lr = _find_learning_rate(opt_state)
    else:
        lr = float(learning_rate(step)) if callable(learning_rate) else float(learning_rate)
    if lr is not None:
        record["lr"] = lr
    record["steps"] = step if bad < 0 else e * nb + bad
    return record


def non_finite_message(e, bad, nb, member=None, cause="loss"):
    """Why a run stopped after a non-finite value (the same words for ``fit`` and for a batch of models):
    ``cause="loss"`` (the loss itself was inf/nan) or ``"gradient"`` (a finite loss whose gradient or update was
    not: an overflow in the backward pass, a sqrt or log at 0, a custom gradient)."""
    who = "" if member is None else f" in member {member}"
    if cause == "gradient":
        return (f"non-finite gradient{who} at epoch {e + 1}, step {bad} (of {nb} steps, 0-based): the loss was finite "
                f"but its gradient (or the optimizer's update) was not; stopped and kept the parameters from before "
                f"that step; look for an overflow in the backward pass, sqrt/log/division at 0 or a custom gradient, "
                f"or lower the learning rate")
    return (f"non-finite loss{who} at epoch {e + 1}, step {bad} (of {nb} steps, 0-based); stopped and kept the "
            f"parameters from before that step; lower the learning rate or check the data and the loss")


def checkpoint_tree(ts, epoch, key):
    """The tree ``fit`` saves in a checkpoint: ``{"train_state": ts, "epoch": epoch, "key": key_data(key)}``."""
    return {"train_state": ts, "epoch": epoch, "key": jax.random.key_data(key)}


def resume_from(checkpoint_dir, ts, key, history):
    """``(train_state, first_epoch)`` from the newest checkpoint in ``checkpoint_dir`` (``(ts, 0)`` if none);
    ``history`` gets the saved records of the epochs before it. The checkpoint must come from a run with ``key``."""
    from fnn.train import checkpoint
    if checkpoint.latest_step(checkpoint_dir) is None:
        return ts, 0
    saved = checkpoint.restore(checkpoint_dir, checkpoint_tree(ts, 0, key))
    if not np.array_equal(np.asarray(saved["key"]), np.asarray(jax.random.key_data(key))):
        raise ValueError(f"fit: the checkpoint in {os.fspath(checkpoint_dir)!r} was written by a run with another "
                         f"key; resume with the same key (seed) or start a new checkpoint directory")
    start = int(saved["epoch"])
    path = os.path.join(os.fspath(checkpoint_dir), "history.json")
    if os.path.exists(path):
        history.records = History.load(path).records[:start]
    return saved["train_state"], start


def _save(checkpoint_dir, e, ts, key, history, keep):
    from fnn.train import checkpoint
    history.save(os.path.join(os.fspath(checkpoint_dir), "history.json"))
    checkpoint.save(checkpoint_dir, e + 1, checkpoint_tree(ts, e + 1, key), keep=keep)


def _check_source_modes(epoch_mode, mesh):
    if epoch_mode == "scan":
        raise ValueError("fit: epoch_mode='scan' needs the data in memory, got a source of batches (a memmap, an "
                         "indexable or batches(epoch)); use epoch_mode='loop' or 'auto', or pass in-memory arrays")
    if mesh is not None:
        raise ValueError("fit: mesh= (data parallelism) is not supported with a source of batches yet; pass "
                         "mesh=None or in-memory arrays")


def fit(apply, params, optimizer, loss, X, y, *, epochs: int, batch_size: int, key, state=None, validation=None,
        metrics: Sequence = ("accuracy",), callbacks: Sequence[Callback] = (), epoch_mode: str = "auto",
        scan_unroll: int | None = None,
        progress: bool | None = None, verbose: bool = True, learning_rate=None, l2: float | None = None,
        opt_state=None, eval_batch_size: int = 1024, checkpoint_dir=None, checkpoint_every: int = 1,
        keep_checkpoints: int = 3, resume: bool = False, overwrite: bool = False,
        print_fn: Callable[[str], None] = print, mesh=None, prefetch: int = 2, sample_weight=None,
        class_weight=None, precision: str = "float32"):
    """Train a model with mini-batch gradient steps, compiled; return the trained params, optimizer state, history.

    Each epoch ``e`` shuffles on the device with ``fold_in(key, e)`` and runs ``n // batch_size`` steps of
    ``params <- params + optimizer.update(grad J)``, ``J = loss(apply(params, X[b], key=k, train=True), y[b])
    [+ (l2 / 2) sum_w w^2]`` (``fnn/train/engine.py``: randomness, remainder rule, non-finite loss). Everything
    is checked before compiling: data (``fnn.data.validate_xy``), batch size, and one batch traced through model,
    loss and metrics with ``jax.eval_shape``.

    Args:
      apply: the model's apply function. params: its parameters (not modified; fit works on a copy).
      optimizer: an fnn optimizer or any optax ``GradientTransformation``.
      loss: ``loss(outputs, targets) -> scalar``.
      X: ``(n, ...)`` inputs; y: ``(n,)`` integer labels or ``(n, ...)`` targets (NumPy or JAX). Data larger
        than memory (``fnn.train.sources``, docs/data.md): a ``np.memmap`` (``np.load(path, mmap_mode="r")``) or
        any indexable ``X``/``y`` (or ``ArraySource(X, y)``, ``y=None``) is read batch by batch, with the in-memory
        epoch's permutation and keys (the same params as ``epoch_mode="loop"`` on the arrays, bit for bit); a
        function ``X = batches(epoch) -> iterable of (x, y)`` with ``y=None`` supplies each epoch's batches itself
        (shuffling is its business; ``batch_size`` must equal their size). Sources run in loop mode.
      epochs: number of epochs (the total, when resuming). batch_size: ``1 <= batch_size <= n``.
      key: a ``jax.random`` key: shuffling, dropout.
      state: the model state for stateful models (``fnn.layers.init_with_state``); then the result has ``state``.
      validation: ``(X_val, y_val)`` evaluated after every epoch with ``train=False``.
      metrics: names in ``fnn.metrics.METRICS`` or functions ``(outputs, targets) -> scalar``.
      callbacks: ``fnn.train.callbacks.Callback`` objects (e.g. ``EarlyStopping``).
      epoch_mode: ``"scan"`` (one compiled program per epoch), ``"loop"`` (a Python loop of compiled steps) or
        ``"auto"`` (``choose_epoch_mode``).
      scan_unroll: steps per iteration of the scanned epoch (``lax.scan``'s ``unroll``); ``None``:
        ``choose_scan_unroll`` (4 without convolutions, else 1).
      progress: a tqdm bar (per step in loop mode, per epoch in scan mode); ``None``: only when stdout is a terminal.
      verbose: print the babysitting line after every epoch (through ``print_fn``).
      learning_rate: the learning rate (number or schedule ``step -> lr``) shown in the line and history; found in
        ``optax.inject_hyperparams`` state when not given.
      l2: optional L2 strength ``lambda``: ``fnn.losses.l2_penalty(params, l2) = (l2 / 2) sum_w w^2`` is added to
        the objective, over the weights only (biases, BatchNorm scales and shifts are not decayed).
      opt_state: continue from this optimizer state.
      eval_batch_size: batch size of the validation pass.
      checkpoint_dir: save ``{train_state, epoch, key}`` there every ``checkpoint_every`` epochs (and at the end),
        keeping the newest ``keep_checkpoints``; ``history.json`` is written beside them.
      resume: continue from the newest checkpoint in ``checkpoint_dir``; the result equals the uninterrupted run's.
        The folder's manifest (``fnn.train.runs``) must name the same run: model, optimizer and its
        hyper-parameters, data, key and batch size (every difference is named), and ``epochs`` at least the
        epochs already trained.
      overwrite: a fresh run (``resume=False``) into a ``checkpoint_dir`` holding another run is refused unless
        ``overwrite=True``, which deletes that run's checkpoints and history first.
      print_fn: where the lines go.
      sample_weight: optional ``(n,)`` weights s_i >= 0, one per training example.
      class_weight: optional ``{class: weight}`` dict (missing classes weigh 1), ``(K,)`` array, or ``"balanced"``
        (c_k = n / (K count_k), scikit-learn's). With either, each batch's loss is the weighted mean
        ``sum_i v_i C_i / sum_i v_i`` with ``v_i = s_i c_(y_i)`` (``fnn.train.weighting``; the loss must take
        ``weights=``, as every ``fnn.losses`` loss does); metrics and validation stay unweighted.
      precision: ``"float32"``, or ``"bfloat16"`` / ``"float16"``: compute the model in that dtype with float32
        master parameters and optimizer state (``fnn.train.precision.mixed_precision`` wraps ``apply``, for
        training and validation alike; no loss scaling, so prefer bfloat16).
      mesh: a 1-D ``jax.sharding.Mesh`` (``fnn.train.distributed.data_mesh()``) for data parallelism: params and
        optimizer state replicated, every batch split over the devices (``batch_size`` must divide by their
        number), gradients and BatchNorm statistics over the global batch; equal to one device up to rounding.
      prefetch: with a source, the batches read and put on the device ahead by a background thread (default 2).

    Returns:
      ``FitResult(params, opt_state, history)``, or ``FitResultWithState(params, opt_state, history, state)`` when
      ``state`` was given.

    Example:
      >>> import jax, optax
      >>> from fnn import layers, losses
      >>> from fnn.data import load_digits
      >>> X, y = load_digits()
      >>> model = layers.mlp([16, 10], layers.Tanh)
      >>> _, params = model.init(jax.random.key(0), (-1, 64))
      >>> params, opt_state, history = fit(model.apply, params, optax.adam(1e-2),
      ...     losses.softmax_cross_entropy_with_integer_labels, X[:200], y[:200], epochs=2, batch_size=50,
      ...     key=jax.random.key(1), verbose=False)
      >>> history["epoch"], history["steps"]
      ([1, 2], [4, 8])

    Reference: Bottou, "Stochastic Gradient Descent Tricks", in Neural Networks: Tricks of the Trade, 2012, sec. 2-3.
    """
    check_fit_arguments(epochs=epochs, epoch_mode=epoch_mode, scan_unroll=scan_unroll, resume=resume,
                        checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every)
    apply, optimizer, key, X, y = check_fit_inputs(apply, optimizer, key, X, y)
    apply = with_precision(apply, precision)
    source = as_source(X, y, "fit")
    if source is None:
        batch_size = check_data(X, y, batch_size, "fit")
    else:   # data larger than memory (fnn/train/sources.py): the checks run on the first batch
        _check_source_modes(epoch_mode, mesh)
        batch_size, X, y = first_batch(source, key, batch_size, "fit")
        check_data(X, y, batch_size, "fit")
        epoch_mode = "loop"
    n = int(X.shape[0]) if source is None or source.n is None else source.n
    warn_full_batch_rule(optimizer, batch_size, n)
    check_model(apply, loss, metrics, params, state, X, y, batch_size, "fit")
    validation = check_validation(validation, apply, loss, metrics, params, state)
    X, y = jnp.asarray(X), jnp.asarray(y)
    if source is not None and (sample_weight is not None or class_weight is not None):
        raise ValueError("fit: sample_weight/class_weight need in-memory arrays X, y, not a data source")
    v = example_weights(y, sample_weight, class_weight)  # None when both are None (fnn/train/weighting.py)
    train_loss, train_metrics = (loss, metrics) if v is None else weighted_objective(loss, metrics)
    targets = with_weights(y, None if v is None else jnp.asarray(v))
    ts = copy_tree(TrainState(params, check_opt_state(optimizer, params, opt_state), state))
    if checkpoint_dir is not None:   # one folder, one run (fnn/train/runs.py), checked before anything trains
        data_xy = (X, y) if source is None else source.manifest_data()
        prepare_run_folder(checkpoint_dir, run_manifest(params, ts.opt_state, optimizer, *data_xy, key=key,
                                                        batch_size=batch_size, epochs=epochs, weights=v),
                           resume=resume, overwrite=overwrite)
    if mesh is not None:  # data parallelism: data and train state on every device once (fnn/train/distributed.py)
        check_batch_size(batch_size, mesh, "fit")
        X, targets, ts, validation = replicate((X, targets, ts, validation), mesh)
    history = History()
    ts, start = resume_from(checkpoint_dir, ts, key, history) if resume else (ts, 0)
    epoch_mode, scan_unroll = choose_modes(epoch_mode, scan_unroll, apply, train_loss, optimizer, ts, X[:batch_size],
                                           jax.tree.map(lambda a: a[:batch_size], targets), key, train_metrics)
    run_epoch = make_fit_epoch(apply, train_loss, optimizer, batch_size, epoch_mode=epoch_mode,
                               scan_unroll=scan_unroll, metrics=train_metrics, l2=l2, mesh=mesh, progress=progress,
                               epochs=epochs, source=source,
                               prefetch=prefetch)
    evaluator = None if validation is None else make_evaluator(apply, loss, metrics=metrics,
                                                               batch_size=eval_batch_size)
    nb = n // batch_size

    for cb in callbacks:
        cb.on_train_begin(history)
    epoch_bar = _progress_bar(progress, epochs, "epochs") if epoch_mode == "scan" else None
    if epoch_bar is not None:
        epoch_bar.update(start)
    for e in range(start, epochs):
        t0 = time.perf_counter()
        ts, bad, means = run_epoch(ts, X, targets, key, e)
        nb = nb if source is None else source.steps_per_epoch(batch_size)
        cause = means.pop("nonfinite", None) or "loss"
        record = epoch_record(e, means, bad, nb, learning_rate=learning_rate, opt_state=ts.opt_state)
        if validation is not None:
            record.update({f"val_{k}": float(v) for k, v in evaluator(ts.params, ts.state, *validation).items()})
        record["time"] = time.perf_counter() - t0
        history.append(record)
        if epoch_bar is not None:
            epoch_bar.update(1)
        if verbose:
            print_fn(format_epoch_line(record, epochs))
        if bad >= 0:
            history.stop_reason = non_finite_message(e, bad, nb, cause=cause)
            if verbose:
                print_fn(f"fit: {history.stop_reason}")
            break
        stop = any([bool(cb.on_epoch_end(e + 1, record, ts)) for cb in callbacks])
        if checkpoint_dir is not None and (stop or e + 1 == epochs or (e + 1) % checkpoint_every == 0):
            _save(checkpoint_dir, e, ts, key, history, keep_checkpoints)
        if stop:
            break
    if epoch_bar is not None:
        epoch_bar.close()
    for cb in callbacks:
        ts = cb.on_train_end(ts, history)
    if state is None:
        return FitResult(ts.params, ts.opt_state, history)
    return FitResultWithState(ts.params, ts.opt_state, history, ts.state)
