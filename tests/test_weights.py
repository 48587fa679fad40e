"""Example and class weights: the losses' weighted mean J = sum_i v_i C_i / sum_i v_i against NumPy, the weights of
``fit`` (``fnn.train.weighting``) against scikit-learn, and weighted training steps of the engine against closed
forms (weights all 1 == unweighted; an integer weight m == m copies of the example)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import layers, losses
from fnn.train.engine import TrainState, make_epoch, make_loop_epoch, make_train_step
from fnn.train.evaluation import check_data, check_model
from fnn.train.weighting import (
    balanced_class_weight,
    class_weight_vector,
    example_weights,
    weighted_objective,
    with_weights,
)

RNG = np.random.default_rng(0)
N, K = 6, 3
Z = RNG.normal(size=(N, K)).astype(np.float32)
LABELS = np.array([0, 2, 1, 2, 2, 0])
W = np.array([1.0, 0.5, 2.0, 0.0, 3.0, 1.5], np.float32)
C = np.array([2.0, 1.0, 0.5], np.float32)


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _softplus(x):
    return np.logaddexp(0, x)


def _ref(per_example, v):
    return float(np.sum(v * per_example) / np.sum(v))


# per-example NumPy losses; each case: (loss call, per-example reference, class of each example or None)
Y_REG = RNG.normal(size=(N, 2)).astype(np.float32)
Y01 = (RNG.random((N, 1)) < 0.5).astype(np.float32)
YPM = 2 * Y01 - 1
CASES = {
    "int_ce": (lambda w, c: losses.softmax_cross_entropy_with_integer_labels(Z, LABELS, w, c),
               -_log_softmax(Z)[np.arange(N), LABELS], LABELS),
    "nll": (lambda w, c: losses.nll(_log_softmax(Z), LABELS, w, c), -_log_softmax(Z)[np.arange(N), LABELS], LABELS),
    "onehot_ce": (lambda w, c: losses.softmax_cross_entropy(Z, np.eye(K, dtype=np.float32)[LABELS], w, c),
                  -_log_softmax(Z)[np.arange(N), LABELS], LABELS),
    "ww_hinge": (lambda w, c: losses.multiclass_hinge(Z, LABELS, weights=w, class_weights=c),
                 (np.maximum(0, 1 + Z - Z[np.arange(N), LABELS][:, None]).sum(1) - 1), LABELS),
    "sigmoid_bce": (lambda w, c: losses.sigmoid_binary_cross_entropy(Z[:, :1], Y01, w, c),
                    (Y01 * _softplus(-Z[:, :1]) + (1 - Y01) * _softplus(Z[:, :1]))[:, 0], Y01[:, 0].astype(int)),
    "bce": (lambda w, c: losses.binary_cross_entropy(1 / (1 + np.exp(-Z[:, :1])), Y01, weights=w, class_weights=c),
            (Y01 * _softplus(-Z[:, :1]) + (1 - Y01) * _softplus(Z[:, :1]))[:, 0], Y01[:, 0].astype(int)),
    "logistic": (lambda w, c: losses.logistic_loss(Z[:, :1], YPM, w, c), _softplus(-YPM * Z[:, :1])[:, 0],
                 Y01[:, 0].astype(int)),
    "hinge": (lambda w, c: losses.hinge(Z[:, :1], YPM, weights=w, class_weights=c),
              np.maximum(0, 1 - YPM * Z[:, :1])[:, 0], Y01[:, 0].astype(int)),
    "quadratic": (lambda w, c: losses.quadratic_cost(Z[:, :2], Y_REG, w), 0.5 * ((Z[:, :2] - Y_REG) ** 2).sum(1),
                  None),
    "mse": (lambda w, c: losses.mse(Z[:, :2], Y_REG, w), ((Z[:, :2] - Y_REG) ** 2).mean(1), None),
    "huber": (lambda w, c: losses.huber(Z[:, :2], 3 * Y_REG, 1.0, w),
              np.where(np.abs(Z[:, :2] - 3 * Y_REG) <= 1, 0.5 * (Z[:, :2] - 3 * Y_REG) ** 2,
                       np.abs(Z[:, :2] - 3 * Y_REG) - 0.5).sum(1), None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_weighted_losses_equal_the_numpy_weighted_mean(name):
    call, per, cls = CASES[name]
    np.testing.assert_allclose(float(call(None, None)), per.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(call(W, None)), _ref(per, W), rtol=1e-5)
    np.testing.assert_allclose(float(call(jnp.ones(N), None)), float(call(None, None)), rtol=1e-7)  # all ones
    np.testing.assert_allclose(float(call(7 * W, None)), float(call(W, None)), rtol=1e-6)  # scale-free
    if cls is not None:
        c = C[: 2 if cls.max() < 2 and name not in ("int_ce", "nll", "onehot_ce", "ww_hinge") else K]
        np.testing.assert_allclose(float(call(W, c)), _ref(per, W * c[cls]), rtol=1e-5)


def test_class_weights_are_pytorchs_weighted_mean():
    # PyTorch's CrossEntropyLoss(weight=c) divides sum_i c_(y_i) l_i by sum_i c_(y_i) (written out with NumPy).
    per = -_log_softmax(Z)[np.arange(N), LABELS]
    expected = np.sum(C[LABELS] * per) / np.sum(C[LABELS])
    got = jax.jit(losses.softmax_cross_entropy_with_integer_labels)(Z, LABELS, None, C)
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_zero_weights_give_zero_and_bad_weights_are_refused():
    assert float(losses.quadratic_cost(Z[:, :2], Y_REG, np.zeros(N))) == 0.0
    with pytest.raises(ValueError, match=r"expected weights of shape \(6,\).*got shape \(6, 1\)"):
        losses.mse(Z, Z, W[:, None])
    with pytest.raises(ValueError, match=r"expected finite weights >= 0, got -1.0"):
        losses.hinge(Z[:, :1], YPM, weights=-np.ones(N))
    with pytest.raises(ValueError, match=r"expected class_weights of shape \(3,\).*got shape \(2,\)"):
        losses.nll(Z, LABELS, class_weights=C[:2])


def test_example_weights_balanced_equals_sklearn():
    compute_class_weight = pytest.importorskip("sklearn.utils.class_weight").compute_class_weight
    y = np.array([0, 0, 0, 0, 1, 2, 2, 3, 3, 3])
    sk = compute_class_weight("balanced", classes=np.unique(y), y=y)
    assert np.allclose(list(balanced_class_weight(y).values()), sk)
    np.testing.assert_allclose(example_weights(y, class_weight="balanced"), sk[y], rtol=1e-6)
    onehot = np.eye(4, dtype=np.float32)[y]
    np.testing.assert_allclose(example_weights(onehot, class_weight="balanced"), sk[y], rtol=1e-6)
    s = np.arange(10, dtype=np.float32)
    np.testing.assert_allclose(example_weights(y, s, {3: 4.0}), s * np.where(y == 3, 4.0, 1.0))
    assert example_weights(y) is None and with_weights(y, None) is y
    np.testing.assert_allclose(class_weight_vector([1, 2], 2), [1.0, 2.0])


def test_example_weights_refuse_bad_input():
    y = np.array([0, 1, 1])
    with pytest.raises(ValueError, match=r"expected sample_weight of shape \(3,\).*got shape \(3, 1\)"):
        example_weights(y, np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"keys must be classes in \[0, 2\), got 5"):
        example_weights(y, class_weight={5: 1.0})
    with pytest.raises(ValueError, match="sum to 0"):
        example_weights(y, np.zeros(3))
    with pytest.raises(ValueError, match="needs one class per example"):
        example_weights(np.ones((3, 1)) * 0.3, class_weight={0: 1.0})
    with pytest.raises(TypeError, match="takes no weights= argument"):
        weighted_objective(lambda out, y: jnp.mean(out - y))


# ---------------------------------------------------------------------------------------------------- the engine
X = RNG.normal(size=(N, 4)).astype(np.float32)
Y = RNG.normal(size=(N, 2)).astype(np.float32)
MODEL = layers.Dense(2)
_, PARAMS = MODEL.init(jax.random.key(0), (-1, 4))
LOSS_W, METRICS_W = weighted_objective(losses.quadratic_cost, [losses.mse])


def _step(loss, metrics, x, y, lr=0.1):
    step = make_train_step(MODEL.apply, loss, optax.sgd(lr), metrics=metrics, donate=False)
    params = jax.tree.map(jnp.array, PARAMS)
    ts, stats = step(TrainState(params, optax.sgd(lr).init(params), None), x, y, jax.random.key(1))
    return ts.params, stats


def test_weighted_step_gradient_equals_the_closed_form():
    new, stats = _step(LOSS_W, METRICS_W, X, (Y, W))
    a = X @ np.asarray(PARAMS.W) + np.asarray(PARAMS.b)
    g = W[:, None] * (a - Y) / W.sum()                 # dJ/da_i for J = sum_i w_i ||a_i - y_i||^2 / (2 sum w)
    np.testing.assert_allclose(np.asarray(new.W), np.asarray(PARAMS.W) - 0.1 * X.T @ g, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(new.b), np.asarray(PARAMS.b) - 0.1 * g.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(stats["mse"]), ((a - Y) ** 2).mean(), rtol=1e-5)  # metrics are unweighted


def test_weights_of_one_equal_the_unweighted_step_and_repeats_equal_copies():
    plain, _ = _step(losses.quadratic_cost, [losses.mse], X, Y)
    ones, _ = _step(LOSS_W, METRICS_W, X, (Y, np.ones(N, np.float32)))
    for p, q in zip(jax.tree.leaves(plain), jax.tree.leaves(ones)):
        np.testing.assert_allclose(p, q, rtol=1e-7, atol=1e-7)
    twice = np.array([2, 1, 1, 1, 1, 1], np.float32)   # example 0 counted twice == example 0 copied
    weighted, _ = _step(LOSS_W, METRICS_W, X, (Y, twice))
    copied, _ = _step(losses.quadratic_cost, [losses.mse], np.concatenate([X, X[:1]]), np.concatenate([Y, Y[:1]]))
    for p, q in zip(jax.tree.leaves(weighted), jax.tree.leaves(copied)):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)


def test_weighted_epochs_scan_and_loop_agree_and_checks_accept_pairs():
    targets = with_weights(Y, W)
    assert check_data(X, targets, 3, "fit") == 3
    check_model(MODEL.apply, LOSS_W, METRICS_W, PARAMS, None, X, targets, 3, "fit")
    opt = optax.sgd(0.1)
    ts = TrainState(PARAMS, opt.init(PARAMS), None)
    scan = jax.jit(make_epoch(MODEL.apply, LOSS_W, opt, 3, metrics=METRICS_W))(ts, X, targets, jax.random.key(2))
    loop = make_loop_epoch(MODEL.apply, LOSS_W, opt, 3, METRICS_W, None)(jax.tree.map(jnp.array, ts), X, targets,
                                                                         jax.random.key(2))
    for p, q in zip(jax.tree.leaves(scan[0].params), jax.tree.leaves(loop[0].params)):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)
    assert set(scan[2]) == {"loss", "mse"} and int(scan[1]) == -1


def test_fit_sample_weight_equals_copies_and_a_resume_with_other_weights_is_refused(tmp_path):
    """fit(sample_weight=): weight 2 on three examples equals those examples copied (full batch); the weights are
    part of the run's manifest, so resuming with other weights names the difference."""
    from fnn.data import load_digits
    from fnn.train import fit
    X, y = load_digits()
    X, y = X[:40], y[:40]
    model = layers.mlp([8, 10], layers.Tanh)
    _, p0 = model.init(jax.random.key(0), (-1, 64))
    xent = losses.softmax_cross_entropy_with_integer_labels
    w = np.ones(40, np.float32)
    w[:3] = 2
    a = fit(model.apply, p0, optax.sgd(0.5), xent, X, y, epochs=3, batch_size=40, key=1, verbose=False,
            sample_weight=w, checkpoint_dir=tmp_path / "run")
    b = fit(model.apply, p0, optax.sgd(0.5), xent, np.concatenate([X, X[:3]]), np.concatenate([y, y[:3]]),
            epochs=3, batch_size=43, key=1, verbose=False)
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="data.weights"):
        fit(model.apply, p0, optax.sgd(0.5), xent, X, y, epochs=4, batch_size=40, key=1, verbose=False,
            class_weight="balanced", checkpoint_dir=tmp_path / "run", resume=True)
