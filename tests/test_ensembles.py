"""fnn.train ensembles, sweeps, fit_batch: vmapped runs equal models trained one by one; prediction and parameter
averages.

References: ``fnn.train.fit`` run once per member/setting (the one-by-one runs), NumPy means and recurrences.
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import layers as core
from fnn import losses
from fnn.data import load_digits
from fnn.optimizers import chain
from fnn.optimizers.transforms import average_params
from fnn.train import (
    average_checkpoints,
    average_trees,
    checkpoint,
    cross_seeds,
    evaluate_ensemble,
    fit,
    fit_batch,
    fit_ensemble,
    grid,
    init_ensemble,
    predict_ensemble,
    sweep,
)

CE = losses.softmax_cross_entropy_with_integer_labels
MODEL = core.mlp([12, 10], core.Tanh)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    return X[:240], y[:240], X[240:480], y[240:480]


def member(tree, k):
    return jax.tree.map(lambda a: a[k], tree)


def assert_trees_close(a, b, **tol):
    for x, z in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(z), **tol)


@pytest.mark.parametrize("k_members, shared_order", [(2, False), (2, True)])
def test_vmapped_members_equal_models_trained_one_by_one(digits, k_members, shared_order):
    X, y, _, _ = digits
    keys = jax.random.split(jax.random.key(0), k_members)
    data_key = jax.random.key(9) if shared_order else None
    params = init_ensemble(MODEL.init, keys, (-1, 64))
    opt = optax.sgd(0.1, momentum=0.9)
    result = fit_ensemble(MODEL.apply, params, opt, CE, X, y, epochs=2, batch_size=20, keys=keys, data_key=data_key,
                          verbose=False)
    for k in range(k_members) if not shared_order else [1]:
        _, p_k = MODEL.init(keys[k], (-1, 64))
        assert_trees_close(member(params, k), p_k, rtol=0, atol=0)   # init_ensemble == init one by one
        one = fit(MODEL.apply, p_k, opt, CE, X, y, epochs=2, batch_size=20,
                  key=keys[k] if data_key is None else data_key, verbose=False)
        assert_trees_close(member(result.params, k), one.params, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose([r[k] for r in result.history["loss"]], one.history["loss"], rtol=2e-5)
        np.testing.assert_allclose([r[k] for r in result.history["accuracy"]], one.history["accuracy"], rtol=1e-5)


def test_predict_and_evaluate_ensemble_average_the_members_softmax(digits):
    X, y, Xv, yv = digits
    keys = jax.random.split(jax.random.key(1), 3)
    params = init_ensemble(MODEL.init, keys, (-1, 64))
    params = fit_ensemble(MODEL.apply, params, optax.adam(1e-2), CE, X, y, epochs=2, batch_size=24, keys=keys,
                          verbose=False).params
    logits = np.stack([np.asarray(MODEL.apply(member(params, k), Xv)) for k in range(3)])
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(predict_ensemble(MODEL.apply, params, Xv, batch_size=50), probs.mean(0),
                               rtol=1e-5, atol=1e-6)
    res = evaluate_ensemble(MODEL.apply, params, Xv, yv)
    np.testing.assert_allclose(res["members"], (logits.argmax(-1) == yv).mean(-1), rtol=1e-6)
    assert res["ensemble"] == pytest.approx((probs.mean(0).argmax(-1) == yv).mean())
    assert res["gain"] == pytest.approx(res["ensemble"] - np.mean(res["members"]))
    assert res["gain"] >= 0.0   # averaging 3 members does not lose to the average member here


def test_sweep_trains_one_model_per_setting(digits):
    X, y, _, _ = digits
    _, params = MODEL.init(jax.random.key(2), (-1, 64))
    hp = grid(learning_rate=[0.05, 0.2], momentum=[0.0, 0.9])
    hp["l2"] = jnp.asarray([0.0, 1e-2, 0.0, 1e-3])
    make = lambda learning_rate, momentum: optax.sgd(learning_rate, momentum=momentum)  # noqa: E731
    result = sweep(MODEL.apply, params, make, CE, X, y, hparams=hp, epochs=2, batch_size=30, key=jax.random.key(3),
                   verbose=False)
    for k in (1, 2):   # two settings one by one (all four cost twice the compile time for no new coverage)
        lr, mu, l2 = (float(hp[n][k]) for n in ("learning_rate", "momentum", "l2"))
        one = fit(MODEL.apply, params, optax.sgd(lr, momentum=mu), CE, X, y, epochs=2, batch_size=30,
                  key=jax.random.key(3), l2=l2, verbose=False)
        assert_trees_close(member(result.params, k), one.params, rtol=2e-5, atol=2e-6)
    losses_ = np.asarray(result.history["loss"][-1])
    assert len(set(np.round(losses_, 6))) == 4   # the settings really differ


def test_grid_is_the_cartesian_product():
    g = grid(a=[1, 2, 3], b=[10, 20])
    want = list(itertools.product([1, 2, 3], [10, 20]))
    assert list(zip(g["a"].tolist(), g["b"].tolist())) == [(float(a), float(b)) for a, b in want]
    with pytest.raises(ValueError, match="at least one hyper-parameter"):
        grid()


def test_average_trees_and_checkpoints(digits, tmp_path):
    trees = [{"w": np.full((2, 3), float(i), np.float32), "b": np.arange(3, dtype=np.float32) * i} for i in range(4)]
    avg = average_trees(trees)
    np.testing.assert_allclose(avg["w"], np.full((2, 3), 1.5))
    np.testing.assert_allclose(avg["b"], np.arange(3) * 1.5)
    for i, t in enumerate(trees):
        checkpoint.save(tmp_path / "plain", i, t, keep=None)
    np.testing.assert_allclose(average_checkpoints(tmp_path / "plain", trees[0], steps=[1, 3])["w"], np.full((2, 3), 2))
    # checkpoints written by fit: average of epochs 1 and 2 equals the mean of the two runs' params
    X, y, _, _ = digits
    _, params = MODEL.init(jax.random.key(4), (-1, 64))
    opt = optax.sgd(0.1)
    kw = dict(batch_size=40, key=jax.random.key(5), verbose=False)
    two = fit(MODEL.apply, params, opt, CE, X, y, epochs=2, checkpoint_dir=tmp_path / "run", **kw)
    one = fit(MODEL.apply, params, opt, CE, X, y, epochs=1, **kw)
    got = average_checkpoints(tmp_path / "run", params, opt)
    want = jax.tree.map(lambda a, b: (np.asarray(a) + np.asarray(b)) / 2, one.params, two.params)
    assert_trees_close(got, want, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="no checkpoints"):
        average_checkpoints(tmp_path / "empty", params)


def test_average_params_tracks_the_moving_average_of_the_params():
    # the one parameter-averaging API: average_params(decay) placed last in a chain (was with_ema/ema_params)
    decay, lr = 0.8, 0.1
    opt = chain(optax.sgd(lr), average_params(decay))
    params = {"w": jnp.asarray([1.0, -2.0])}
    state = opt.init(params)
    ema, p = np.array([1.0, -2.0]), np.array([1.0, -2.0])
    for t in range(5):
        grads = {"w": jnp.asarray([0.5 * t, 1.0])}
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        p = p - lr * np.array([0.5 * t, 1.0])
        ema = decay * ema + (1 - decay) * p
    np.testing.assert_allclose(params["w"], p, rtol=1e-6)
    np.testing.assert_allclose(state[-1].average["w"], ema, rtol=1e-6)
    with pytest.raises(ValueError, match=r"average_params: decay must lie in \[0, 1\)"):
        average_params(1.0)


def test_ensemble_argument_errors(digits):
    X, y, _, _ = digits
    keys = jax.random.split(jax.random.key(0), 3)
    params = init_ensemble(MODEL.init, keys, (-1, 64))
    with pytest.raises(ValueError, match="expected 3 keys"):
        fit_ensemble(MODEL.apply, params, optax.sgd(0.1), CE, X, y, epochs=1, batch_size=10, keys=keys[:2])
    with pytest.raises(ValueError, match="X has 240 examples but y has 239"):
        fit_ensemble(MODEL.apply, params, optax.sgd(0.1), CE, X, y[:-1], epochs=1, batch_size=10, keys=keys)
    with pytest.raises(ValueError, match="same length"):
        sweep(MODEL.apply, member(params, 0), lambda learning_rate: optax.sgd(learning_rate), CE, X, y,
              hparams={"learning_rate": [0.1, 0.2], "l2": [0.0]}, epochs=1, batch_size=10, key=keys[0])


def test_non_finite_member_keeps_its_last_good_params_like_fit(digits):
    X, y, _, _ = digits
    n, bs = 60, 7
    keys = jax.random.split(jax.random.key(6), 2)
    targets = np.concatenate([np.eye(10, dtype=np.float32)[y[:n]], np.zeros((n, 1), np.float32)], axis=1)
    targets[5, -1] = 1.0   # a flagged example: the loss is NaN on any batch holding it

    def flagged_loss(outputs, t):
        return losses.quadratic_cost(outputs, t[:, :-1]) + jnp.where(jnp.max(t[:, -1]) > 0, jnp.nan, 0.0)

    params = init_ensemble(MODEL.init, keys, (-1, 64))
    opt = optax.sgd(0.1)
    result = fit_ensemble(MODEL.apply, params, opt, flagged_loss, X[:n], targets, epochs=3, batch_size=bs,
                          keys=keys, metrics=(), verbose=False)
    assert "non-finite loss in member 0 at epoch 1, step 7" in result.history.stop_reason
    assert len(result.history) == 1
    for k in range(2):
        one = fit(MODEL.apply, member(params, k), opt, flagged_loss, X[:n], targets, epochs=3, batch_size=bs,
                  key=keys[k], metrics=(), verbose=False)
        assert f"at epoch 1, step {(7, 1)[k]} " in one.history.stop_reason   # each member its own bad step
        assert_trees_close(member(result.params, k), one.params, rtol=2e-5, atol=2e-6)
        assert np.all(np.isfinite(np.concatenate([np.ravel(a) for a in jax.tree.leaves(member(result.params, k))])))


def test_configurations_by_seeds_in_one_program(digits):
    X, y, _, _ = digits
    seeds = jax.random.split(jax.random.key(7), 2)
    hp, run_keys = cross_seeds(grid(learning_rate=[0.05, 0.2]), seeds)
    # run b = configuration b // 2 with seed b % 2 (configuration-major, like itertools.product)
    want = list(itertools.product([0.05, 0.2], range(2)))
    np.testing.assert_allclose(hp["learning_rate"], [c for c, _ in want], rtol=1e-7)
    for b, (_, s) in enumerate(want):
        np.testing.assert_array_equal(jax.random.key_data(run_keys[b]), jax.random.key_data(seeds[s]))
    params = init_ensemble(MODEL.init, run_keys, (-1, 64))
    make = lambda learning_rate: optax.sgd(learning_rate, momentum=0.9)  # noqa: E731
    result = fit_batch(MODEL.apply, params, make, CE, X, y, epochs=2, batch_size=30, keys=run_keys, hparams=hp,
                       verbose=False)
    assert np.shape(result.history["loss"]) == (2, 4) and result.history["steps"][-1] == [16] * 4
    for b in (1, 2):   # (config 0, seed 1) and (config 1, seed 0), each trained alone
        lr, s = want[b]
        _, p = MODEL.init(seeds[s], (-1, 64))
        one = fit(MODEL.apply, p, make(float(hp["learning_rate"][b])), CE, X, y, epochs=2, batch_size=30,
                  key=seeds[s], verbose=False)
        assert_trees_close(member(result.params, b), one.params, rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose([r[b] for r in result.history["loss"]], one.history["loss"], rtol=2e-5)
    with pytest.raises(ValueError, match=r"fit_batch: expected 4 keys .* or one shared key, got keys of shape \(2,\)"):
        fit_batch(MODEL.apply, params, make, CE, X, y, epochs=1, batch_size=30, keys=seeds, hparams=hp)
    with pytest.raises(ValueError, match=r"fit_batch: expected every hyper-parameter to be a 1-D list of 4 values"):
        fit_batch(MODEL.apply, params, make, CE, X, y, epochs=1, batch_size=30, keys=run_keys,
                  hparams={"learning_rate": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"cross_seeds: expected hparams \{name: 1-D values\} of one length"):
        cross_seeds({"a": [1.0, 2.0], "b": [1.0]}, seeds)


def test_sweep_l2_decays_the_weights_only():
    # one l2-only SGD step per setting: W <- (1 - lr l2) W, the bias 5.0 unchanged (fnn.losses.l2_penalty's mask)
    model = core.Dense(2)
    _, params = model.init(jax.random.key(0), (-1, 3))
    params = params._replace(b=jnp.full(2, 5.0))
    x, t = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    zero_loss = lambda o, _: 0.0 * jnp.mean(o)  # noqa: E731
    hp = {"learning_rate": [0.5, 0.5], "l2": [0.0, 0.2]}
    result = sweep(model.apply, params, lambda learning_rate: optax.sgd(learning_rate), zero_loss, x, t, hparams=hp,
                   epochs=1, batch_size=4, key=jax.random.key(1), metrics=(), verbose=False)
    for k, lam in enumerate(hp["l2"]):
        np.testing.assert_allclose(member(result.params, k).W, (1 - 0.5 * lam) * np.asarray(params.W), rtol=1e-6)
        np.testing.assert_array_equal(member(result.params, k).b, np.full(2, 5.0))
