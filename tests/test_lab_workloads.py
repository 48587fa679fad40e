"""fnn.lab.workloads: the built-in workloads against closed forms, SciPy/scikit-learn and finite differences; the
contract the runner relies on (init, apply, loss through the training engine); from_model's checks by message."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers, losses, optimizers
from fnn.lab import problems
from fnn.lab import workloads as W
from fnn.train import TrainState, engine

BUILTINS = tuple(W.WORKLOADS)
FMNIST = ("fmnist_mlp", "fmnist_cnn")
SMALL = {"fmnist_mlp": {"n_train": 512, "n_val": 128, "n_test": 128},
         "fmnist_cnn": {"n_train": 256, "n_val": 64, "n_test": 64}}
# step sizes that plain SGD can take on each (below 2 / L for the smooth function workloads)
LR = {"noisy_quadratic": 0.01, "rosenbrock": 1e-4, "rastrigin": 1e-4, "saddle": 0.1, "logreg_digits": 0.1,
      "mlp_digits": 0.1, "autoencoder_digits": 0.5, "gru_digits": 0.1, "fmnist_mlp": 0.05, "fmnist_cnn": 0.05}


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name):
        if name not in cache:
            try:
                cache[name] = W.get(name, **SMALL.get(name, {}))
            except FileNotFoundError as e:
                assert name in FMNIST and "dataset-fashion-mnist" in str(e)
                pytest.skip(f"Fashion-MNIST files not found: {e}")
        return cache[name]
    return get


def _loss(w, params, state, split="train"):
    """The runner's evaluation: ``w.loss(forward(w.apply, params, state, X, train=False), y)``, compiled."""
    X, y = w.data[split]
    evaluate = jax.jit(lambda p, s, a, b: w.loss(engine.forward(w.apply, p, s, a, train=False)[0], b))
    return float(evaluate(params, state, jnp.asarray(X), jnp.asarray(y)))


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_builds_and_seeds_give_paired_starts(built, name):
    w = built(name)
    assert w.name == name and w.kind in ("data", "function") and "\n" not in w.description
    assert set(w.data) == {"train", "val", "test"} and 1 <= w.batch_size <= w.data["train"][0].shape[0]
    for X, y in w.data.values():
        assert X.dtype == np.float32 and y.dtype in (np.float32, np.int32) and X.shape[0] == y.shape[0]
    a, b, c = (w.init(jax.random.key(s)) for s in (1, 1, 2))
    assert np.isfinite(_loss(w, *a)) and np.isfinite(_loss(w, *a, split="val"))
    same = jax.tree.leaves(jax.tree.map(lambda u, v: bool(jnp.array_equal(u, v)), a, b))
    assert all(same)
    differ = jax.tree.leaves(jax.tree.map(lambda u, v: not bool(jnp.array_equal(u, v)), a, c))
    assert any(differ)
    # the runner calls jax.vmap(w.init)(keys): init must be traceable (traced here, not compiled)
    stacked = jax.eval_shape(jax.vmap(w.init), jax.random.split(jax.random.key(0), 3))
    assert all(leaf.shape == (3, *np.shape(one)) for leaf, one in zip(jax.tree.leaves(stacked), jax.tree.leaves(a)))


# ------------------------------------------------------------------------------------------- noisy quadratic
def test_noisy_quadratic_rotations_spectrum_and_losses(built):
    w = built("noisy_quadratic")
    p1, s1 = w.init(jax.random.key(1))
    _, s2 = w.init(jax.random.key(2))
    np.testing.assert_array_equal(p1, np.ones(100))  # DeepOBS's start
    for s in (s1, s2):
        Q = np.asarray(s.Q, np.float64)
        np.testing.assert_allclose(Q @ Q.T, np.eye(100), atol=1e-5)
    assert np.abs(np.asarray(s1.Q) - np.asarray(s2.Q)).max() > 0.1
    D = np.asarray(s1.eigenvalues, np.float64)
    np.testing.assert_array_equal(D, s2.eigenvalues)  # the spectrum is shared, the rotation is not
    H = np.asarray(s1.Q, np.float64).T @ np.diag(D) @ np.asarray(s1.Q, np.float64)
    ev = np.sort(np.linalg.eigvalsh(H))
    np.testing.assert_allclose(ev, np.sort(D), atol=1e-4)
    assert ((ev[:90] >= -1e-4) & (ev[:90] <= 1 + 1e-4)).all() and ((ev[90:] >= 30 - 1e-4) & (ev[90:] <= 60)).all()
    big = problems.deep_spectrum(np.random.default_rng(0), 9000, 1000)  # the ranges, by their statistics
    small, large = big[:9000], big[9000:]
    assert 0 <= small.min() < 1e-3 and 1 - 1e-3 < small.max() <= 1 and abs(small.mean() - 0.5) < 0.01
    assert 30 <= large.min() < 30.2 and 59.8 < large.max() <= 60 and abs(large.mean() - 45) < 1
    X, _ = w.data["train"]
    theta = np.random.default_rng(0).normal(size=100)
    r = theta[None] - X.astype(np.float64)
    reference = 0.5 * np.einsum("ni,ij,nj->n", r, H, r)  # DeepOBS's per-example loss with the explicit Hessian
    out, new_state = w.apply(jnp.asarray(theta, jnp.float32), jnp.asarray(X), state=s1)
    np.testing.assert_allclose(out, reference, rtol=1e-4)
    assert new_state is s1
    # the full-batch minimum is at the data mean, with value 0.5 tr(H S): it depends on the rotation (optimum None)
    xbar = X.astype(np.float64).mean(0)
    S = np.cov(X.astype(np.float64).T, ddof=0)
    with jax.enable_x64(True):
        q64 = problems.RotatedQuadratic(jnp.asarray(s1.Q, jnp.float64), jnp.asarray(D))
        value, grad = jax.value_and_grad(lambda t: jnp.mean(problems.quadratic_losses(t, jnp.asarray(X, jnp.float64),
                                                                                      q64)))(jnp.asarray(xbar))
    np.testing.assert_allclose(float(value), 0.5 * np.trace(H @ S), rtol=1e-10)
    assert np.abs(np.asarray(grad)).max() < 1e-10 and w.optimum is None


# ------------------------------------------------------------------------------------------- function workloads
@pytest.mark.parametrize("name, minimisers", [("rosenbrock", [(1.0, 1.0)]), ("rastrigin", [(0.0, 0.0)]),
                                              ("saddle", [(0.0, 2 ** 0.5), (0.0, -(2 ** 0.5))])])
def test_function_workloads_optimum_and_gradient(built, name, minimisers):
    w = built(name)
    assert w.kind == "function" and w.objective is not None and len(w.bounds) == 2
    X, y = w.data["val"]
    with jax.enable_x64(True):
        def f(p):  # the evaluation path of the runner
            return w.loss(w.apply(p, jnp.asarray(X, jnp.float64), train=False), jnp.asarray(y))
        for m in minimisers:
            p = jnp.asarray(m, jnp.float64)
            assert abs(float(f(p)) - w.optimum) < 1e-12 and float(w.objective(p)) == float(f(p))
            assert np.abs(np.asarray(jax.grad(f)(p))).max() < 1e-12
            for d in np.random.default_rng(1).normal(size=(8, 2)) * 1e-3:  # a minimum, not another critical point
                assert float(f(p + d)) > w.optimum
        Xt, yt = w.data["train"]
        def per_example(p):  # the training objective: mean of the per-example values over the placeholder batch
            return w.loss(w.apply(p, jnp.asarray(Xt, jnp.float64), train=True), jnp.asarray(yt))
        p = jnp.asarray(np.random.default_rng(2).uniform(-1.5, 1.5, 2))
        g, h = np.asarray(jax.grad(per_example)(p)), 1e-6
        fd = [(float(per_example(p + h * e)) - float(per_example(p - h * e))) / (2 * h) for e in np.eye(2)]
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)
    assert w.data["train"][0].shape == (10, 1) and w.batch_size == 1 and w.epochs == 20


# ------------------------------------------------------------------------------------------- logistic regression
def _objective64(w, params):
    X, y = w.data["train"]
    out = w.apply(params, jnp.asarray(X, jnp.float64))
    return w.loss(out, jnp.asarray(y)) + losses.l2_penalty(params, w.l2)


def test_logreg_optimum_matches_sklearn_and_bounds_gradient_descent(built):
    import warnings

    from sklearn.linear_model import LogisticRegression
    w = built("logreg_digits")
    X, y = w.data["train"]
    n = X.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning at tol=1e-10 only means it stopped near the optimum
        sk = LogisticRegression(C=1 / (w.l2 * n), tol=1e-10, max_iter=10_000).fit(X.astype(np.float64), y)
    with jax.enable_x64(True):
        params = layers.DenseParams(jnp.asarray(sk.coef_.T), jnp.asarray(sk.intercept_))
        sk_value = float(_objective64(w, params))
        assert abs(sk_value - w.optimum) < 1e-6 and sk_value >= w.optimum - 1e-12
        params, _ = w.init(jax.random.key(3))
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        grad = jax.value_and_grad(lambda p: _objective64(w, p))

        def step(p, _):
            value, g = grad(p)
            return jax.tree.map(lambda a, b: a - 0.2 * b, p, g), value

        _, values = jax.lax.scan(step, params, None, length=3000)
    values = np.asarray(values)
    assert values.min() >= w.optimum - 1e-12 and values[-1] - w.optimum < 1e-2 and values[-1] < values[0]


# ------------------------------------------------------------------------------------------- one engine epoch
@pytest.mark.parametrize("name", BUILTINS)
def test_one_sgd_epoch_lowers_the_training_loss(built, name):
    w = built(name)
    params, state = w.init(jax.random.key(4))
    opt = optimizers.sgd(LR[name])
    epoch = jax.jit(engine.make_epoch(w.apply, w.loss, opt, w.batch_size, metrics=w.metrics, l2=w.l2, guard=True))
    X, y = (jnp.asarray(a) for a in w.data["train"])
    ts, bad, stats = epoch(TrainState(params, opt.init(params), state), X, y, jax.random.fold_in(jax.random.key(5), 0))
    assert int(bad) == -1 and stats["loss"].shape == (X.shape[0] // w.batch_size,)
    before, after = _loss(w, params, state), _loss(w, ts.params, ts.state)
    assert np.isfinite(after) and after < before


# ------------------------------------------------------------------------------------------- from_model
def _blobs(n=64, d=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    X = (rng.normal(size=(n, d)) + y[:, None]).astype(np.float32)
    return {"train": (X[:40], y[:40]), "val": (X[40:52], y[40:52]), "test": (X[52:], y[52:])}


def test_from_model_mlp_and_batchnorm():
    ce = losses.softmax_cross_entropy_with_integer_labels
    w = W.from_model("mine", layers.mlp([8, 3]), ce, _blobs(), batch_size=8, epochs=3, metrics=("accuracy",), l2=1e-4)
    assert (w.kind, w.batch_size, w.epochs, w.metrics, w.l2, w.optimum) == ("data", 8, 3, ("accuracy",), 1e-4, None)
    params, state = w.init(jax.random.key(0))
    ref = layers.mlp([8, 3]).init(jax.random.key(0), (-1, 5))[1]
    assert state is None and all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params, ref)))
    bn = layers.serial(layers.Dense(8), layers.BatchNorm(axis=0), layers.Relu, layers.Dense(3))
    w = W.from_model("bn", bn, ce, _blobs(), batch_size=8, epochs=1)
    params, state = w.init(jax.random.key(0))
    assert state is not None and state[1].mean.shape == (8,)
    opt = optimizers.sgd(0.1)
    X, y = (jnp.asarray(a) for a in w.data["train"])
    ts, bad, _ = engine.make_epoch(w.apply, w.loss, opt, 8, metrics=())(TrainState(params, opt.init(params), state),
                                                                        X, y, jax.random.key(1))
    assert int(bad) == -1 and not np.array_equal(ts.state[1].mean, state[1].mean)  # running statistics moved
    assert np.isfinite(_loss(w, ts.params, ts.state, "test"))


@pytest.mark.parametrize("change, match", [
    (lambda d: {"train": d["train"], "val": d["val"]}, "exactly the keys"),
    (lambda d: {**d, "val": (d["val"][0], d["val"][1][:3])}, "same number n >= 1 of rows"),
    (lambda d: {**d, "test": (d["test"][0][:, :4], d["test"][1])}, "same feature and target shapes"),
    (lambda d: {**d, "train": (d["train"][0].astype(np.int32), d["train"][1])}, "floating-point features"),
    (lambda d: {**d, "train": d["train"][0]}, r"a pair \(X, y\)"),
])
def test_from_model_data_errors(change, match):
    ce = losses.softmax_cross_entropy_with_integer_labels
    with pytest.raises(ValueError, match=match):
        W.from_model("mine", layers.mlp([3]), ce, change(_blobs()), batch_size=8, epochs=1)


def test_from_model_argument_errors():
    ce, data, mlp = losses.softmax_cross_entropy_with_integer_labels, _blobs(), layers.mlp([3])
    with pytest.raises(ValueError, match=r"batch_size <= n_train = 40, got batch_size=41"):
        W.from_model("m", mlp, ce, data, batch_size=41, epochs=1)
    with pytest.raises(ValueError, match="epochs a positive int"):
        W.from_model("m", mlp, ce, data, batch_size=8, epochs=0)
    with pytest.raises(ValueError, match="metrics a tuple of names"):
        W.from_model("m", mlp, ce, data, batch_size=8, epochs=1, metrics=("acc",))
    with pytest.raises(ValueError, match="l2 None or a number >= 0"):
        W.from_model("m", mlp, ce, data, batch_size=8, epochs=1, l2=-1.0)
    with pytest.raises(ValueError, match=r"expected input_shape"):
        W.from_model("m", mlp, ce, data, batch_size=8, epochs=1, input_shape=(-1, 4))
    with pytest.raises(ValueError, match="do not accept a training batch of shapes"):
        W.from_model("m", layers.mlp([4]), losses.quadratic_cost, data, batch_size=8, epochs=1)
    with pytest.raises(ValueError, match="expected an fnn layer"):
        W.from_model("m", "mlp", ce, data, batch_size=8, epochs=1)


def test_get_and_suites():
    with pytest.raises(ValueError, match=r"unknown workload 'nope'; registered: noisy_quadratic, rosenbrock"):
        W.get("nope")
    assert W.get("rastrigin", epochs=7, steps_per_eval=3).data["train"][0].shape == (3, 1)
    assert set(W.SUITES["quick"]) <= set(W.SUITES["full"]) <= set(W.WORKLOADS) - set(FMNIST)
    with pytest.raises(TypeError):
        W.WORKLOADS["x"] = None
