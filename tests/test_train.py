"""fnn.train: fit, the step, evaluate, early stopping, checkpoints/resume, bad input, non-finite losses.

References are independent of fit's machinery: an eager per-step loop with ``jax.grad`` and a hand-written SGD
update on the documented batch order (``epoch_keys``), NumPy, and closed-form gradients.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import layers as core
from fnn import losses
from fnn.data import load_digits
from fnn.debug.plots import plot_history
from fnn.layers.normalization import BatchNorm
from fnn.train import (
    SCAN_UNROLL,
    FitResult,
    FitResultWithState,
    TrainState,
    checkpoint,
    checkpoint_tree,
    choose_epoch_mode,
    choose_scan_unroll,
    epoch_keys,
    epoch_means,
    evaluate,
    fit,
    make_epoch,
    make_epoch_runner,
    make_train_step,
    predict,
)
from fnn.train.callbacks import EarlyStopping, History, format_epoch_line
from fnn.train.loop import check_fit_arguments, choose_modes, epoch_record, non_finite_message

CE = losses.softmax_cross_entropy_with_integer_labels


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    return X[:300], y[:300], X[300:500], y[300:500]


def small_mlp(key=0, d_in=64, hidden=16, out=10):
    model = core.mlp([hidden, out], core.Tanh)
    _, params = model.init(jax.random.key(key), (-1, d_in))
    return model, params


def reference_sgd(apply, loss, params, X, y, *, lr, batch_size, key, epochs, max_steps=None):
    """Eager reference: the documented batch order, jax.grad per step, p <- p - lr * g."""
    n, steps = X.shape[0], 0
    grad = jax.jit(jax.grad(lambda p, xb, yb: loss(apply(p, xb), yb)))
    for e in range(epochs):
        shuffle_key, _ = epoch_keys(key, e)
        perm = np.asarray(jax.random.permutation(shuffle_key, n))
        for i in range(n // batch_size):
            if max_steps is not None and steps == max_steps:
                return params
            b = perm[i * batch_size:(i + 1) * batch_size]
            g = grad(params, X[b], y[b])
            params = jax.tree.map(lambda p, gp: p - lr * gp, params, g)
            steps += 1
    return params


def assert_trees_close(a, b, **tol):
    for x, z in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(z), **tol)


def test_loss_falls_and_accuracy_rises_on_digits(digits, tmp_path):
    X, y, Xv, yv = digits
    model, params = small_mlp()
    lines = []
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    result = fit(model.apply, params, opt, CE, X, y, epochs=6, batch_size=32, key=jax.random.key(1),
                 validation=(Xv, yv), print_fn=lines.append)
    assert isinstance(result, FitResult) and len(result.history) == 6
    loss, val = result.history["loss"], result.history["val_accuracy"]
    assert loss[-1] < 0.5 * loss[0]
    assert val[-1] > val[0] + 0.2 and val[-1] > 0.75
    # the history's last validation entry is what evaluate computes from the returned params
    ev = evaluate(model.apply, result.params, CE, Xv, yv)
    np.testing.assert_allclose(ev["accuracy"], val[-1], rtol=1e-6)
    # what a user sees: one line per epoch, the learning rate found in inject_hyperparams' state
    assert [line.split("  ")[0] for line in lines] == [f"epoch {e}/6" for e in range(1, 7)]
    assert result.history["lr"] == [pytest.approx(1e-2)] * 6 and "lr 1.0e-02" in lines[0]
    again = History.load(result.history.save(tmp_path / "h.json"))
    assert again.records == result.history.records and again.stop_reason == "completed"
    png = plot_history(result.history, tmp_path / "curves.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_fit_matches_eager_reference_in_float64(digits):
    X, y, _, _ = digits
    with jax.enable_x64(True):
        X64, y64 = np.asarray(X[:100], np.float64), y[:100]
        model, params = small_mlp()
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        key = jax.random.key(7)
        got = fit(model.apply, params, optax.sgd(0.1), CE, X64, y64, epochs=2, batch_size=16, key=key,
                  verbose=False, metrics=())
        want = reference_sgd(model.apply, CE, params, X64, y64, lr=0.1, batch_size=16, key=key, epochs=2)
        assert_trees_close(got.params, want, rtol=1e-10, atol=1e-12)
        # 100 // 16 = 6 full batches per epoch: the remainder (4 examples) sits each epoch out
        assert got.history["steps"] == [6, 12]


@pytest.mark.parametrize("unroll", [None, 1, 3])
def test_scan_and_loop_give_the_same_params(digits, unroll):
    X, y, _, _ = digits
    model, params = small_mlp()
    kw = dict(epochs=2, batch_size=30, key=jax.random.key(3), verbose=False)
    before = jax.tree.map(np.array, params)
    # 10 steps: unroll 3 and the default both leave a remainder, which lax.scan runs after the unrolled iterations
    assert (len(X) // 30) % 3 and (len(X) // 30) % SCAN_UNROLL
    scan = fit(model.apply, params, optax.sgd(0.05, momentum=0.9), CE, X, y, epoch_mode="scan", scan_unroll=unroll,
               **kw)
    loop = fit(model.apply, params, optax.sgd(0.05, momentum=0.9), CE, X, y, epoch_mode="loop", **kw)
    assert_trees_close(scan.params, loop.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scan.history["loss"], loop.history["loss"], rtol=1e-5)
    assert_trees_close(params, before, rtol=0, atol=0)   # the caller's params: not donated, unchanged


def test_resume_equals_uninterrupted(digits, tmp_path):
    X, y, _, _ = digits
    model, params = small_mlp()
    opt = optax.adam(3e-3)
    kw = dict(batch_size=32, key=jax.random.key(5), verbose=False)
    full = fit(model.apply, params, opt, CE, X, y, epochs=4, **kw)
    fit(model.apply, params, opt, CE, X, y, epochs=2, checkpoint_dir=tmp_path, **kw)   # "interrupted" after 2
    assert checkpoint.latest_step(tmp_path) == 2
    resumed = fit(model.apply, params, opt, CE, X, y, epochs=4, checkpoint_dir=tmp_path, resume=True, **kw)
    assert_trees_close(resumed.params, full.params, rtol=0, atol=0)
    assert resumed.history["epoch"] == [1, 2, 3, 4]
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])
    assert checkpoint.all_steps(tmp_path) == [2, 3, 4]
    with pytest.raises(ValueError, match="another key"):
        fit(model.apply, params, opt, CE, X, y, epochs=5, batch_size=32, key=jax.random.key(6),
            checkpoint_dir=tmp_path, resume=True, verbose=False)


def test_make_train_step_matches_closed_form_gradient():
    # linear model a = x W + b with quadratic cost C = 1/(2n) sum ||a - t||^2: dC/dW = x^T (a - t) / n
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32)
    model = core.Dense(2)
    _, params = model.init(jax.random.key(0), (-1, 3))
    W, b = np.asarray(params.W), np.asarray(params.b)
    step = make_train_step(model.apply, losses.quadratic_cost, optax.sgd(0.5), metrics=())
    ts, stats = step(TrainState(params, optax.sgd(0.5).init(params), None), x, t, jax.random.key(1))
    a = x @ W + b
    np.testing.assert_allclose(ts.params.W, W - 0.5 * x.T @ (a - t) / 8, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ts.params.b, b - 0.5 * (a - t).sum(0) / 8, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["loss"], 0.5 * np.mean(np.sum((a - t) ** 2, 1)), rtol=1e-5)
    assert bool(stats["finite"])


def test_evaluate_uses_every_example_in_batches(digits):
    X, y, _, _ = digits
    model, params = small_mlp()
    got = evaluate(model.apply, params, CE, X[:53], y[:53], batch_size=10)   # 5 full batches + 3
    (W1, b1), _, (W2, b2) = jax.tree.map(np.asarray, params)
    logits = np.tanh(X[:53] @ W1 + b1) @ W2 + b2
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1,
                                                                                                     keepdims=True)
    np.testing.assert_allclose(got["loss"], -logp[np.arange(53), y[:53]].mean(), rtol=1e-5)
    np.testing.assert_allclose(got["accuracy"], np.mean(logits.argmax(1) == y[:53]), rtol=1e-6)
    np.testing.assert_allclose(predict(model.apply, params, X[:53], batch_size=10), logits, rtol=1e-4, atol=1e-5)


def test_early_stopping_counts_patience_and_restores_best():
    stopper = EarlyStopping("val_accuracy", patience=2)
    stopper.on_train_begin(History())
    states = [TrainState(jnp.full(2, float(i)), None, None) for i in range(5)]
    values = [0.5, 0.7, 0.6, 0.65, 0.9]
    stops = [stopper.on_epoch_end(i + 1, {"epoch": i + 1, "val_accuracy": v}, s)
             for i, (v, s) in enumerate(zip(values[:4], states[:4]))]
    assert stops == [False, False, False, True]
    history = History()
    restored = stopper.on_train_end(states[3], history)
    np.testing.assert_array_equal(restored.params, [1.0, 1.0])   # epoch 2's params
    assert stopper.best_epoch == 2 and "did not improve for 2 epochs" in history.stop_reason
    with pytest.raises(ValueError, match="no 'val_loss'.*pass validation"):
        EarlyStopping("val_loss").on_epoch_end(1, {"epoch": 1, "loss": 1.0}, states[0])
    with pytest.raises(ValueError, match="patience >= 1"):
        EarlyStopping(patience=0)


def test_fit_stops_early_and_returns_the_best_epochs_params(digits, tmp_path):
    X, y, Xv, yv = digits
    model, params = small_mlp()
    kw = dict(batch_size=50, key=jax.random.key(2), verbose=False, checkpoint_dir=tmp_path, keep_checkpoints=None)
    # mode="max" on the validation loss: it falls every epoch, so epoch 1 stays best and training stops after 1 + 2
    stopper = EarlyStopping("val_loss", patience=2, mode="max")
    result = fit(model.apply, params, optax.sgd(0.1), CE, X, y, epochs=10, validation=(Xv, yv),
                 callbacks=[stopper], **kw)
    assert len(result.history) == 3 and result.history.stop_reason.startswith("early stopping")
    assert checkpoint.all_steps(tmp_path) == [1, 2, 3]
    target = checkpoint_tree(TrainState(params, optax.sgd(0.1).init(params), None), 0, kw["key"])
    epoch1 = checkpoint.restore(tmp_path, target, step=1)["train_state"].params
    assert_trees_close(result.params, epoch1, rtol=0, atol=0)


BAD_INPUTS = [
    (lambda X, y: (X[:10], y[:9]), {}, "X has 10 examples but y has 9"),
    (lambda X, y: (X[:10], np.where(np.arange(10) == 3, 12, y[:10]).astype(np.int32)), {}, "label 12 at index 3"),
    (lambda X, y: (np.where(np.arange(640).reshape(10, 64) == 5, np.nan, X[:10]), y[:10]), {}, "NaN"),
    (lambda X, y: (X[:0], y[:0]), {"batch_size": 1}, "empty data set"),
    (lambda X, y: (X[:10], y[:10]), {"batch_size": 0}, r"batch_size must be an integer in \[1, 10\]"),
    (lambda X, y: (X[:10], y[:10]), {"batch_size": 11}, r"batch_size must be an integer in \[1, 10\].*got 11"),
    (lambda X, y: (X[:10, :60], y[:10]), {}, "cannot be applied to a batch of shape"),
]


@pytest.mark.parametrize("make, kwargs, message", BAD_INPUTS)
def test_bad_input_is_reported_before_compiling(digits, monkeypatch, make, kwargs, message):
    X, y, _, _ = digits
    model, params = small_mlp()
    monkeypatch.setattr(jax, "jit", lambda *a, **k: pytest.fail("compiled before validating"))
    X, y = make(X, y)
    with pytest.raises(ValueError, match=message):
        fit(model.apply, params, optax.sgd(0.1), CE, X, y, epochs=1, key=jax.random.key(0),
            **{"batch_size": 5, **kwargs})


def test_output_shape_that_does_not_fit_the_loss(digits, monkeypatch):
    X, y, _, _ = digits
    model, params = small_mlp(out=3)
    monkeypatch.setattr(jax, "jit", lambda *a, **k: pytest.fail("compiled before validating"))
    targets = np.eye(10, dtype=np.float32)[y[:20]]
    with pytest.raises(ValueError, match=r"output of shape \(5, 3\) does not fit the loss.*\(5, 10\)"):
        fit(model.apply, params, optax.sgd(0.1), losses.quadratic_cost, X[:20], targets, epochs=1, batch_size=5,
            key=jax.random.key(0), metrics=())


def flagged_loss(outputs, targets):
    """Quadratic cost on targets[:, :-1]; NaN when the batch holds an example flagged in targets[:, -1]."""
    value = losses.quadratic_cost(outputs, targets[:, :-1])
    return value + jnp.where(jnp.max(targets[:, -1]) > 0, jnp.nan, 0.0)


@pytest.mark.parametrize("mode", ["scan", "loop"])
def test_non_finite_loss_stops_and_keeps_the_last_good_params(digits, tmp_path, mode):
    X, y, _, _ = digits
    n, bs, key = 60, 7, jax.random.key(4)   # 8 steps of 7 per epoch; 4 examples sit each epoch out
    X = X[:n]
    perm0, perm1 = (np.asarray(jax.random.permutation(epoch_keys(key, e)[0], n)) for e in (0, 1))
    # flag an example that epoch 1 leaves out and epoch 2 uses: epoch 1 is clean, epoch 2 hits it
    flagged = next(int(i) for i in perm0[56:] if i not in perm1[56:])
    bad_step = int(np.flatnonzero(perm1 == flagged)[0]) // bs
    targets = np.concatenate([np.eye(10, dtype=np.float32)[y[:n]], np.zeros((n, 1), np.float32)], axis=1)
    targets[flagged, -1] = 1.0
    model, params = small_mlp(hidden=8)
    lines = []
    result = fit(model.apply, params, optax.sgd(0.1), flagged_loss, X, targets, epochs=3, batch_size=bs, key=key,
                 metrics=(), epoch_mode=mode, checkpoint_dir=tmp_path, print_fn=lines.append)
    assert f"non-finite loss at epoch 2, step {bad_step} (of 8 steps" in result.history.stop_reason
    assert any(f"non-finite loss at epoch 2, step {bad_step}" in line for line in lines)
    assert len(result.history) == 2 and result.history["steps"] == [8, 8 + bad_step]
    want = reference_sgd(model.apply, lambda o, t: losses.quadratic_cost(o, t[:, :-1]), params, X, targets,
                         lr=0.1, batch_size=bs, key=key, epochs=2, max_steps=8 + bad_step)
    assert_trees_close(result.params, want, rtol=1e-5, atol=1e-6)
    assert checkpoint.all_steps(tmp_path) == [1]   # the last good checkpoint stays; none of the broken epoch


def test_stateful_model_returns_state_and_evaluates_with_it(digits):
    X, y, Xv, yv = digits
    model = core.serial(core.Dense(16), BatchNorm(axis=0), core.Relu, core.Dense(10))
    _, params, state = core.init_with_state(model, jax.random.key(0), (-1, 64))
    result = fit(model.apply, params, optax.adam(1e-2), CE, X, y, epochs=2, batch_size=30, key=jax.random.key(1),
                 state=state, validation=(Xv, yv), verbose=False)
    assert isinstance(result, FitResultWithState)
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(result.state), jax.tree.leaves(state))]
    assert any(moved)   # the running statistics were updated
    out, _ = model.apply(result.params, jnp.asarray(Xv), state=result.state, train=False)
    np.testing.assert_allclose(result.history["val_accuracy"][-1], np.mean(np.argmax(out, 1) == yv), rtol=1e-6)


def test_choose_epoch_mode_picks_loop_for_convolutions_on_cpu():
    from fnn.layers import Conv, MaxPool
    dense, dparams = small_mlp()
    cnn = core.serial(Conv(2, (3, 3)), core.Relu, MaxPool((2, 2), (2, 2)), core.Flatten, core.Dense(10))
    _, cparams = cnn.init(jax.random.key(0), (-1, 8, 8, 1))
    opt = optax.sgd(0.1)
    x, y, key = jnp.zeros((4, 8, 8, 1)), jnp.zeros(4, jnp.int32), jax.random.key(0)
    cts, dts = TrainState(cparams, opt.init(cparams), None), TrainState(dparams, opt.init(dparams), None)
    assert choose_epoch_mode(cnn.apply, CE, opt, cts, x, y, key, backend="cpu") == "loop"
    assert choose_epoch_mode(cnn.apply, CE, opt, cts, x, y, key, backend="gpu") == "scan"
    assert choose_epoch_mode(dense.apply, CE, opt, dts, x.reshape(4, 64), y, key, backend="cpu") == "scan"
    assert choose_scan_unroll(cnn.apply, CE, opt, cts, x, y, key) == 1
    assert choose_scan_unroll(dense.apply, CE, opt, dts, x.reshape(4, 64), y, key) == SCAN_UNROLL > 1


def test_epoch_line_and_argument_errors(digits):
    record = {"epoch": 3, "loss": 0.21434, "accuracy": 0.9512, "val_accuracy": 0.9421, "lr": 0.1, "time": 1.23}
    assert format_epoch_line(record, 10) == "epoch 3/10  loss 0.2143  train 0.951  val 0.942  lr 1.0e-01  (1.2 s)"
    assert format_epoch_line({"epoch": 1, "loss": 2.0, "time": 0.04}, 2) == "epoch 1/2  loss 2.0000  (0.0 s)"
    with pytest.raises(KeyError, match="no entry 'foo'"):
        History([{"epoch": 1, "loss": 1.0}])["foo"]
    X, y, _, _ = digits
    model, params = small_mlp()
    with pytest.raises(ValueError, match="epoch_mode must be one of"):
        fit(model.apply, params, optax.sgd(0.1), CE, X, y, epochs=1, batch_size=5, key=jax.random.key(0),
            epoch_mode="fast")
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match=rf"scan_unroll must be a positive int .* got {bad!r}"):
            fit(model.apply, params, optax.sgd(0.1), CE, X, y, epochs=1, batch_size=5, key=jax.random.key(0),
                scan_unroll=bad)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        fit(model.apply, params, optax.sgd(0.1), CE, X, y, epochs=1, batch_size=5, key=jax.random.key(0),
            resume=True)


def zero_loss(outputs, targets):
    """A loss with zero gradient: the step moves the params by the L2 term alone."""
    return 0.0 * jnp.mean(outputs)


def test_l2_decays_the_weights_and_leaves_biases_and_batchnorm_alone():
    # one l2-only SGD step: W <- W - lr * l2 * W = (1 - lr l2) W (closed form), b = 5.0 stays 5.0
    lr, lam = 0.5, 0.2
    model = core.serial(core.Dense(2), BatchNorm(axis=0))
    _, params, state = core.init_with_state(model, jax.random.key(0), (-1, 3))
    params = (params[0]._replace(b=jnp.full(2, 5.0)), params[1])
    x, t = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    step = make_train_step(model.apply, zero_loss, optax.sgd(lr), metrics=(), l2=lam, donate=False)
    ts, _ = step(TrainState(params, optax.sgd(lr).init(params), state), x, t, jax.random.key(1))
    got = fit(model.apply, params, optax.sgd(lr), zero_loss, x, t, epochs=1, batch_size=4, key=jax.random.key(1),
              state=state, l2=lam, metrics=(), verbose=False)   # 4 examples, batch 4: one step
    for new in (ts.params, got.params):
        np.testing.assert_allclose(new[0].W, (1 - lr * lam) * np.asarray(params[0].W), rtol=1e-6)
        np.testing.assert_array_equal(new[0].b, np.full(2, 5.0))
        for before, after in zip(jax.tree.leaves(params[1]), jax.tree.leaves(new[1])):   # BatchNorm gamma, beta
            np.testing.assert_array_equal(after, before)


def test_fit_pieces_alone():
    # the record: steps up to the first bad step; lr from a schedule at the epoch's last step
    assert epoch_record(2, {"loss": 0.5}, -1, 10, learning_rate=lambda s: 1.0 / s) == {
        "epoch": 3, "loss": 0.5, "lr": pytest.approx(1 / 30), "steps": 30}
    assert epoch_record(2, {"loss": 0.5}, 4, 10, learning_rate=0.1)["steps"] == 24
    assert "at epoch 3, step 4 (of 10 steps" in non_finite_message(2, 4, 10)
    assert "in member 1 at epoch 3" in non_finite_message(2, 4, 10, member=1)
    # the means: over the steps before the first bad one, nan when that is step 0, one list entry per model
    stats = {"loss": np.array([[1.0, 2.0, 3.0, np.nan], [4.0, np.nan, 5.0, 6.0], [7.0, 8.0, 9.0, 10.0]])}
    assert epoch_means(stats, np.array([3, 1, -1])) == {"loss": [2.0, 4.0, 8.5]}
    assert epoch_means({"loss": np.array([1.0, 3.0])}, -1) == {"loss": 2.0}
    assert np.isnan(epoch_means({"loss": np.array([np.nan, 1.0])}, 0)["loss"])
    with pytest.raises(ValueError, match=r"checkpoint_every must be a positive integer .* got 0"):
        check_fit_arguments(epochs=1, epoch_mode="auto", scan_unroll=None, resume=False, checkpoint_dir=None,
                            checkpoint_every=0)
    # the modes: given values are kept, "auto" and None resolved from the traced step
    model, params = small_mlp()
    ts = TrainState(params, optax.sgd(0.1).init(params), None)
    x, y = jnp.zeros((4, 64)), jnp.zeros(4, jnp.int32)
    assert choose_modes("auto", None, model.apply, CE, optax.sgd(0.1), ts, x, y, jax.random.key(0), ("accuracy",),
                        backend="cpu") == ("scan", SCAN_UNROLL)
    assert choose_modes("loop", 2, model.apply, CE, optax.sgd(0.1), ts, x, y, jax.random.key(0), ()) == ("loop", 2)


def test_the_epoch_runner_serves_one_model_and_a_vmapped_batch_alike(digits):
    X, y, _, _ = digits
    X, y = jnp.asarray(X[:90]), jnp.asarray(y[:90])
    model, params = small_mlp()
    opt = optax.sgd(0.1)

    def make(guard):
        return make_epoch(model.apply, CE, opt, 30, guard=guard)

    single, batch = make_epoch_runner(make), make_epoch_runner(make, batch_axes=(0,))
    keys = jax.random.split(jax.random.key(4), 2)
    ts = TrainState(params, opt.init(params), None)
    stacked = jax.tree.map(lambda a: jnp.stack([a, a]), ts)
    bts, bad, means = batch(stacked, X, y, keys, 1)
    assert bad.tolist() == [-1, -1] and len(means["loss"]) == 2
    for k in range(2):
        one, one_bad, one_means = single(ts, X, y, keys[k], 1)
        assert one_bad == -1 and one_means["loss"] == pytest.approx(means["loss"][k], rel=1e-5)
        assert_trees_close(jax.tree.map(lambda a: a[k], bts.params), one.params, rtol=1e-5, atol=1e-6)
