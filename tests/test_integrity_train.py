"""Integrity issue: fit's and evaluate's silent wrong answers and misleading errors (items 2, 5, 8 and the error
list), each tested by its message."""
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import layers, losses, optimizers
from fnn.train import checkpoint, evaluate, fit

CE = losses.softmax_cross_entropy_with_integer_labels


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int32)
    model = layers.serial(layers.Dense(8), layers.Tanh, layers.Dense(2))
    _, params = model.init(jax.random.key(0), (-1, 4))
    return model, params, X, y


def run(small, tmp=None, **kw):
    model, params, X, y = small
    kw = dict(dict(epochs=2, batch_size=16, key=jax.random.key(1), verbose=False, progress=False), **kw)
    return fit(model.apply, params, kw.pop("optimizer", optimizers.sgd(0.1)), CE, kw.pop("X", X), kw.pop("y", y),
               checkpoint_dir=tmp, **kw)


# --------------------------------------------------------------------- item 2: a checkpoint folder holds one run
def test_a_fresh_fit_into_a_used_folder_is_refused_and_resume_continues_only_the_same_run(small, tmp_path):
    run(small, tmp_path, epochs=2)
    with pytest.raises(ValueError, match=r"already holds a run \(2 checkpoint\(s\), last epoch 2\); resume it, "
                                         r"overwrite it"):
        run(small, tmp_path, epochs=4, optimizer=optimizers.sgd(0.5))
    with pytest.raises(ValueError, match=r"holds a different run; it differs in optimizer.hyperparameters."
                                         r"learning_rate: saved 0.1, now 0.5"):
        run(small, tmp_path, epochs=4, optimizer=optimizers.sgd(0.5), resume=True)
    with pytest.raises(ValueError, match=r"has already trained 2 epochs, more than epochs=1"):
        run(small, tmp_path, epochs=1, resume=True)
    resumed = run(small, tmp_path, epochs=4, resume=True)
    straight = run(small, tmp_path / "straight", epochs=4)
    assert len(resumed.history) == 4
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params), strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = run(small, tmp_path, epochs=1, overwrite=True)
    assert checkpoint.all_steps(tmp_path) == [1] and len(fresh.history) == 1


def test_resume_of_an_empty_folder_and_a_folder_that_is_a_file_are_errors(small, tmp_path):
    with pytest.raises(ValueError, match=r"nothing to resume in .*: expected checkpoints"):
        run(small, tmp_path / "empty", resume=True)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match=r"the checkpoint folder .*file' is a file; pass a folder"):
        run(small, f)


def test_a_damaged_newest_checkpoint_resumes_bit_equal_from_the_previous_one(small, tmp_path):
    run(small, tmp_path, epochs=3)
    newest = checkpoint.checkpoint_path(tmp_path, 3)
    raw = bytearray(pathlib.Path(newest).read_bytes())
    raw[60] ^= 1
    pathlib.Path(newest).write_bytes(bytes(raw))
    with pytest.warns(checkpoint.CheckpointWarning, match=r"ckpt_00000003\.msgpack.*restoring step 2"):
        resumed = run(small, tmp_path, epochs=4, resume=True)
    straight = run(small, tmp_path / "straight", epochs=4)
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------- item 5: evaluate checks labels as fit does
def test_evaluate_refuses_labels_outside_the_models_classes(small):
    model, params, X, y = small
    with pytest.raises(ValueError, match=r"evaluate: labels must lie in \[0, 2\) for num_classes=2, got label 5"):
        evaluate(model.apply, params, CE, X, np.where(np.arange(64) == 3, 5, y))


# --------------------------------------------------------------------- item 8: say which value went non-finite
def test_the_stop_message_says_whether_the_loss_or_the_gradient_went_non_finite(small):
    model, params, X, y = small

    @jax.custom_vjp
    def bad_grad(x):
        return x

    bad_grad.defvjp(lambda x: (x, None), lambda _, g: (g * jnp.inf,))   # a finite loss, an infinite gradient
    grad_model = layers.serial(layers.Dense(8), layers.elementwise(bad_grad), layers.Tanh, layers.Dense(2))
    _, gparams = grad_model.init(jax.random.key(0), (-1, 4))
    for mode in ("scan", "loop"):
        res = fit(grad_model.apply, gparams, optimizers.sgd(0.1), CE, X, y, epochs=1, batch_size=16,
                  key=jax.random.key(1), verbose=False, progress=False, epoch_mode=mode)
        assert res.history.stop_reason.startswith("non-finite gradient at epoch 1, step 0"), res.history.stop_reason
        assert "the loss was finite but its gradient" in res.history.stop_reason
        linear = layers.Dense(2)   # logits of inputs near float32's largest value overflow: the loss is inf
        _, lparams = linear.init(jax.random.key(0), (-1, 4))
        inf_loss = fit(linear.apply, lparams, optimizers.sgd(0.1), CE, np.sign(X) * 3e38, y, epochs=1,
                       batch_size=16, key=jax.random.key(1), verbose=False, progress=False, epoch_mode=mode)
        assert inf_loss.history.stop_reason.startswith("non-finite loss at epoch 1"), inf_loss.history.stop_reason


# --------------------------------------------------------------------------------- errors in fnn's terms
def test_fit_names_what_was_passed_in_place_of_what(small):
    model, params, X, y = small
    with pytest.raises(TypeError, match=r"expected an optimizer \(an object with init and update\), got 'adam'; "
                                        r"call it with its hyper-parameters, e.g. optax.*adam\(1e-3\)"):
        fit(model.apply, params, optax.adam, CE, X, y, epochs=1, batch_size=16, key=jax.random.key(0))
    with pytest.raises(TypeError, match=r"expected the model's apply function, got a layer .*pass model.apply"):
        fit(model, params, optimizers.sgd(0.1), CE, X, y, epochs=1, batch_size=16, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"opt_state is not a state of this optimizer for these params"):
        fit(model.apply, params, optimizers.adam(0.1), CE, X, y, epochs=1, batch_size=16, key=jax.random.key(0),
            opt_state=optimizers.sgd(0.1).init(params))


def test_fit_accepts_an_int_seed_and_python_lists(small):
    model, params, X, y = small
    a = fit(model.apply, params, optimizers.sgd(0.1), CE, X.tolist(), y.tolist(), epochs=1, batch_size=16, key=3,
            verbose=False, progress=False)
    b = fit(model.apply, params, optimizers.sgd(0.1), CE, X, y, epochs=1, batch_size=16, key=jax.random.key(3),
            verbose=False, progress=False)
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(u, v)
