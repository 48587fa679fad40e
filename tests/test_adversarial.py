"""Adversarial examples and training (fnn.train.adversarial): FGSM and Goodfellow's objective against the closed
forms of logistic regression (NumPy, finite differences), fit's wrappers against the objective, and the gain in
robustness on a problem with one robust and many non-robust features."""
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import layers, losses
from fnn.train import fit, minimize
from fnn.train.adversarial import (
    adversarial_accuracy,
    adversarial_loss,
    adversarial_training,
    fgsm,
    pack_labels,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BCE = losses.sigmoid_binary_cross_entropy
CE = losses.softmax_cross_entropy_with_integer_labels
MODEL = layers.Dense(1)
# compiled once (eps and alpha are arguments): run op by op, every primitive would compile on its own
FGSM = jax.jit(lambda p, x, y, eps, clip=None: fgsm(MODEL.apply, BCE, p, x, y, eps, clip=clip),
               static_argnames="clip")
OBJECTIVE = jax.jit(jax.value_and_grad(lambda p, x, y, eps, alpha: adversarial_loss(MODEL.apply, BCE, p, x, y,
                                                                                     eps=eps, alpha=alpha)))


def _logistic(n=7, d=5, seed=0):
    """Logistic regression p(y=1|x) = sigmoid(w.x + b): params, inputs (n, d), targets (n, 1) in {0, 1}."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(d, 1)), rng.normal(size=1)
    x, y = rng.normal(size=(n, d)), rng.integers(0, 2, (n, 1)).astype(np.float64)
    params = layers.DenseParams(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32))
    return params, w, b, x, y


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _bce(w, b, x, y):
    """The mean binary cross-entropy in float64 NumPy."""
    z = x @ w + b
    return float(np.mean(np.logaddexp(0, z) - y * z))


def _grad_x(w, b, x, y):
    """Closed form: dJ/dx_i = (sigmoid(w.x_i + b) - y_i) w / n for the mean loss J."""
    return (_sigmoid(x @ w + b) - y) * w.T / len(x)


def test_fgsm_is_eps_times_the_sign_of_the_closed_form_input_gradient():
    params, w, b, x, y = _logistic()
    g = _grad_x(w, b, x, y)
    # the closed form against central finite differences of the float64 loss
    fd = np.zeros_like(x)
    for i, j in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i, j] = 1e-6
        fd[i, j] = (_bce(w, b, x + e, y) - _bce(w, b, x - e, y)) / 2e-6
    np.testing.assert_allclose(fd, g, rtol=1e-5, atol=1e-9)
    assert np.all(np.abs(g) > 1e-4)                      # no sign decided by rounding
    for eps in (0.05, 0.3):
        x_adv = np.asarray(FGSM(params, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), eps))
        np.testing.assert_allclose(x_adv, x + eps * np.sign(g), atol=1e-6)
        np.testing.assert_allclose(np.max(np.abs(x_adv - x)), eps, rtol=1e-5)   # ||x_adv - x||_inf = eps
        assert _bce(w, b, x_adv, y) > _bce(w, b, x, y)   # the step goes uphill
    clipped = np.asarray(FGSM(params, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), 0.3,
                              clip=(-0.5, 0.5)))
    np.testing.assert_allclose(clipped, np.clip(x + 0.3 * np.sign(g), -0.5, 0.5), atol=1e-6)


def test_objective_value_and_gradient_match_the_closed_form():
    params, w, b, x, y = _logistic(seed=1)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    eps, alpha = 0.2, 0.3
    x_adv = x + eps * np.sign(_grad_x(w, b, x, y))
    value, grads = OBJECTIVE(params, xj, yj, eps, alpha)
    np.testing.assert_allclose(value, alpha * _bce(w, b, x, y) + (1 - alpha) * _bce(w, b, x_adv, y), rtol=1e-5)
    # dJ/dw = mean((sigmoid(w.x + b) - y) x), dJ/db = mean(sigmoid(w.x + b) - y), with x_adv held fixed
    r, r_adv = _sigmoid(x @ w + b) - y, _sigmoid(x_adv @ w + b) - y
    np.testing.assert_allclose(grads.W, alpha * x.T @ r / len(x) + (1 - alpha) * x_adv.T @ r_adv / len(x),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads.b, alpha * r.mean(0) + (1 - alpha) * r_adv.mean(0), rtol=1e-4, atol=1e-6)
    clean = jax.jit(lambda p: BCE(MODEL.apply(p, xj), yj))(params)
    assert OBJECTIVE(params, xj, yj, eps, 1.0)[0] == clean                                 # exactly
    np.testing.assert_allclose(OBJECTIVE(params, xj, yj, eps, 0.0)[0], _bce(w, b, x_adv, y), rtol=1e-5)


def test_fit_with_the_wrappers_takes_the_objective_and_its_gradient():
    """One full-batch SGD epoch: fit records J~ at the start and moves params by -lr grad J~; the metrics are the
    clean accuracy and adversarial_accuracy's."""
    rng = np.random.default_rng(2)
    X, y = rng.uniform(0, 1, (12, 4)).astype(np.float32), rng.integers(0, 3, 12).astype(np.int32)
    model = layers.Dense(3)
    _, p0 = model.init(jax.random.key(0), (-1, 4))
    adv = adversarial_training(model.apply, CE, eps=0.1, alpha=0.4, clip=(0.0, 1.0))
    params, _, history = fit(adv.apply, p0, optax.sgd(0.5), adv.loss, adv.pack(X, y), y, epochs=1, batch_size=12,
                             key=0, metrics=adv.metrics, verbose=False, epoch_mode="loop")
    J = lambda p: adversarial_loss(model.apply, CE, p, X, y, eps=0.1, alpha=0.4, clip=(0.0, 1.0))  # noqa: E731
    value, g = jax.jit(jax.value_and_grad(J))(p0)
    np.testing.assert_allclose(history["loss"][0], value, rtol=1e-6)
    np.testing.assert_allclose(params.W, p0.W - 0.5 * g.W, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(params.b, p0.b - 0.5 * g.b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(history["fgsm_accuracy"][0],
                               adversarial_accuracy(model.apply, p0, X, y, 0.1, clip=(0.0, 1.0), batch_size=5))
    clean = np.argmax(X @ np.asarray(p0.W) + np.asarray(p0.b), axis=-1) == y
    np.testing.assert_allclose(history["clean_accuracy"][0], np.mean(clean),
                               rtol=1e-6)


def _robust_and_weak_features(n, seed, d=10):
    """Class s = +-1; feature 0 = s u, u ~ U[1, 2] (separates with margin 1, survives eps < 1); features 1..d =
    0.5 s + N(0, 0.5^2) (together predictive, each flipped by eps > 0.5)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int32)
    s = (2.0 * y - 1)[:, None]
    X = np.concatenate([s * rng.uniform(1, 2, (n, 1)), 0.5 * s + rng.normal(0, 0.5, (n, d))], axis=1)
    return X.astype(np.float32), y


def test_adversarial_training_makes_a_linear_model_robust():
    X, y = _robust_and_weak_features(200, seed=0)
    Xs, ys = _robust_and_weak_features(500, seed=1)
    model = layers.Dense(2)
    _, p0 = model.init(jax.random.key(0), (-1, 11))
    eps = 0.6

    # both models in one program: Adam is elementwise, so the sum of two objectives of separate parameters
    # trains each exactly as alone
    objective = lambda P, X, y: (CE(model.apply(P[0], X), y)                              # noqa: E731
                                 + adversarial_loss(model.apply, CE, P[1], X, y, eps=eps, alpha=0.5))
    clean, robust = minimize(objective, (p0, p0), optax.adam(0.05), steps=200, args=(X, y)).params
    acc = {name: (adversarial_accuracy(model.apply, p, Xs, ys, 0.0), adversarial_accuracy(model.apply, p, Xs, ys, eps))
           for name, p in (("clean", clean), ("robust", robust))}
    assert acc["clean"][0] > 0.99 and acc["robust"][0] > 0.99           # both separate the clean data
    assert acc["clean"][1] < 0.6 and acc["robust"][1] > 0.95             # only one survives the attack
    w = np.abs(np.asarray(robust.W[:, 1] - robust.W[:, 0]))
    assert w[0] > 10 * w[1:].max()                                       # because it rests on the robust feature


def test_bad_arguments_are_named():
    params, w, b, x, y = _logistic(n=3, d=2)
    with pytest.raises(ValueError, match=r"fgsm: eps must be >= 0, got eps=-0.1; pass the perturbation size"):
        fgsm(MODEL.apply, BCE, params, x, y, -0.1)
    with pytest.raises(ValueError, match=r"adversarial_loss: alpha must lie in \[0, 1\], got alpha=1.5; alpha weighs"):
        adversarial_loss(MODEL.apply, BCE, params, x, y, eps=0.1, alpha=1.5)
    with pytest.raises(ValueError, match=r"adversarial_training: alpha must lie in \[0, 1\], got alpha=-0.2"):
        adversarial_training(MODEL.apply, BCE, eps=0.1, alpha=-0.2)
    with pytest.raises(ValueError, match=r"clip must be None or a pair \(lo, hi\) with lo < hi .* got clip=\(1, 0\)"):
        fgsm(MODEL.apply, BCE, params, x, y, 0.1, clip=(1, 0))
    with pytest.raises(ValueError, match=r"pack_labels: expected X \(n, ...\) and integer labels y \(n,\), got X "
                                         r"\(3, 2\) and y \(3, 1\) of dtype float64"):
        pack_labels(x, y)
    adv = adversarial_training(MODEL.apply, CE, eps=0.1, input_shape=(2,))
    with pytest.raises(ValueError, match=r"expected the packed inputs \(n, 3\) .* got shape \(3, 2\); pass "
                                         r"adv.pack\(X, y\)"):
        adv.apply(params, jnp.asarray(x))
    with pytest.raises(ValueError, match=r"expected the \(n, 2, ...\) outputs of adversarial_training's apply"):
        adv.loss(jnp.zeros((3, 4)), jnp.zeros(3, jnp.int32))


def test_example_quick_mode():
    spec = importlib.util.spec_from_file_location("adv_example", os.path.join(ROOT, "examples",
                                                                             "adversarial_digits.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (row,) = module.run(quick=True, verbose=False)          # one seed, trained with eps 0.2
    assert row["train_eps"] == 0.2 and row["clean"] > 0.7                # chance: 0.1
    assert 0.0 < row["fgsm"][0.2] < row["fgsm"][0.1] < row["clean"]
