"""fnn.losses: values against NumPy loops, gradients against closed forms, stability at +-1e4, shape and label errors,
penalties with their default and explicit masks."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special

from fnn import losses as L
from fnn.layers import Dense, DenseParams, Relu, serial

RNG = np.random.default_rng(0)
N, K = 6, 4
Z = RNG.normal(size=(N, K)) * 2                    # logits / scores / predictions
P = special.expit(Z)                                # probabilities
Y = RNG.uniform(size=(N, K))                        # regression targets, soft labels in [0, 1]
B = (RNG.uniform(size=(N, K)) > 0.5).astype(float)  # 0/1 labels
S = 2 * B - 1                                       # +-1 labels
LAB = RNG.integers(0, K, size=N)                    # integer labels
ONE_HOT = np.eye(K)[LAB]


# ------------------------------------------------------------------------------------ NumPy references (loops)

def np_quadratic(a, y):
    return sum(0.5 * np.sum((y[i] - a[i]) ** 2) for i in range(len(a))) / len(a)


def np_huber(a, y, d):
    tot = 0.0
    for r in (a - y).ravel():
        tot += 0.5 * r * r if abs(r) <= d else d * (abs(r) - 0.5 * d)
    return tot / len(a)


def np_bce(a, y):
    return -np.sum(y * np.log(a) + (1 - y) * np.log(1 - a)) / len(a)


def np_softmax_ce(z, labels):
    return np.mean([special.logsumexp(z[i]) - z[i, labels[i]] for i in range(len(z))])


def np_ww(z, labels, m=1.0):
    return np.mean([sum(max(0.0, m + z[i, j] - z[i, labels[i]]) for j in range(z.shape[1]) if j != labels[i])
                    for i in range(len(z))])


def np_cs(z, labels, m=1.0):
    return np.mean([max(0.0, m + max(z[i, j] for j in range(z.shape[1]) if j != labels[i]) - z[i, labels[i]])
                    for i in range(len(z))])


CASES = {  # name -> (fnn call, NumPy reference, closed-form gradient w.r.t. the first argument or None)
    "quadratic_cost": (lambda: L.quadratic_cost(Z, Y), lambda: np_quadratic(Z, Y), lambda: (Z - Y) / N),
    "mse": (lambda: L.mse(Z, Y), lambda: np.mean((Z - Y) ** 2), lambda: 2 * (Z - Y) / Z.size),
    "huber": (lambda: L.huber(Z, Y, 0.7), lambda: np_huber(Z, Y, 0.7), lambda: np.clip(Z - Y, -0.7, 0.7) / N),
    "binary_cross_entropy": (lambda: L.binary_cross_entropy(P, Y), lambda: np_bce(P, Y),
                             lambda: (P - Y) / (P * (1 - P)) / N),
    "sigmoid_binary_cross_entropy": (lambda: L.sigmoid_binary_cross_entropy(Z, Y), lambda: np_bce(P, Y),
                                     lambda: (P - Y) / N),
    "logistic_loss": (lambda: L.logistic_loss(Z, S), lambda: np.sum(np.log1p(np.exp(-S * Z))) / N,
                      lambda: -S * special.expit(-S * Z) / N),
    "hinge": (lambda: L.hinge(Z, S), lambda: np.sum(np.maximum(0, 1 - S * Z)) / N,
              lambda: np.where(S * Z < 1, -S, 0) / N),
    "softmax_cross_entropy": (lambda: L.softmax_cross_entropy(Z, ONE_HOT), lambda: np_softmax_ce(Z, LAB),
                              lambda: (special.softmax(Z, axis=1) - ONE_HOT) / N),
    "softmax_cross_entropy_with_integer_labels": (
        lambda: L.softmax_cross_entropy_with_integer_labels(Z, LAB), lambda: np_softmax_ce(Z, LAB),
        lambda: (special.softmax(Z, axis=1) - ONE_HOT) / N),
    "nll": (lambda: L.nll(special.log_softmax(Z, axis=1), LAB), lambda: np_softmax_ce(Z, LAB), lambda: -ONE_HOT / N),
    "multiclass_hinge_ww": (lambda: L.multiclass_hinge(Z, LAB), lambda: np_ww(Z, LAB), None),
    "multiclass_hinge_cs": (lambda: L.multiclass_hinge(Z, LAB, kind="crammer_singer"), lambda: np_cs(Z, LAB), None),
}


def test_every_loss_is_covered():
    penalties = ("l2_penalty", "l1_penalty", "weight_mask", "resolve_mask", "BIAS_NAMES")
    losses = {n for n in L.__all__ if n not in penalties}
    assert losses <= {n.removesuffix("_ww").removesuffix("_cs") for n in CASES}


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_against_numpy(name):
    fnn_call, ref, _ = CASES[name]
    with jax.enable_x64(True):
        got = jax.jit(fnn_call)()  # one compilation instead of many eager ops; the data are constants
        assert got.shape == ()
        np.testing.assert_allclose(float(got), ref(), rtol=1e-10)


# name -> (function of the first argument, first argument)
GRADS = {
    "quadratic_cost": (lambda a: L.quadratic_cost(a, Y), Z),
    "mse": (lambda a: L.mse(a, Y), Z),
    "huber": (lambda a: L.huber(a, Y, 0.7), Z),
    "binary_cross_entropy": (lambda a: L.binary_cross_entropy(a, Y), P),
    "sigmoid_binary_cross_entropy": (lambda z: L.sigmoid_binary_cross_entropy(z, Y), Z),
    "logistic_loss": (lambda z: L.logistic_loss(z, S), Z),
    "hinge": (lambda z: L.hinge(z, S), Z),
    "softmax_cross_entropy": (lambda z: L.softmax_cross_entropy(z, ONE_HOT), Z),
    "softmax_cross_entropy_with_integer_labels": (lambda z: L.softmax_cross_entropy_with_integer_labels(z, LAB), Z),
    "nll": (lambda lp: L.nll(lp, LAB), special.log_softmax(Z, axis=1)),
}


@pytest.mark.parametrize("name", sorted(GRADS))
def test_gradient_closed_form(name):
    f, x = GRADS[name]
    with jax.enable_x64(True):
        g = jax.jit(jax.grad(f))(jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(g), CASES[name][2](), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind,ref", [("weston_watkins", np_ww), ("crammer_singer", np_cs)])
def test_multiclass_hinge_gradient_finite_differences(kind, ref):
    with jax.enable_x64(True):
        g = np.asarray(jax.grad(lambda z: L.multiclass_hinge(z, LAB, kind=kind))(jnp.asarray(Z)))
    h = 1e-6
    fd = np.zeros_like(Z)
    for idx in np.ndindex(*Z.shape):
        e = np.zeros_like(Z)
        e[idx] = h
        fd[idx] = (ref(Z + e, LAB) - ref(Z - e, LAB)) / (2 * h)
    np.testing.assert_allclose(g, fd, atol=1e-6)


def test_agreement_with_optax():
    """A second independent reference for the common ones (optax returns per-example losses)."""
    with jax.enable_x64(True):
        z, y = jnp.asarray(Z), jnp.asarray(Y)
        np.testing.assert_allclose(L.softmax_cross_entropy(z, ONE_HOT),
                                   optax.softmax_cross_entropy(z, ONE_HOT).mean(), rtol=1e-12)
        np.testing.assert_allclose(L.sigmoid_binary_cross_entropy(z, y),
                                   optax.sigmoid_binary_cross_entropy(z, y).sum(1).mean(), rtol=1e-12)
        np.testing.assert_allclose(L.huber(z, y, 0.7), optax.huber_loss(z, y, delta=0.7).sum(1).mean(), rtol=1e-12)
        np.testing.assert_allclose(L.hinge(z, S), optax.hinge_loss(z, S).sum(1).mean(), rtol=1e-12)


def test_identities_between_losses():
    with jax.enable_x64(True):
        z = jnp.asarray(Z)
        d = Z.shape[1]
        np.testing.assert_allclose(L.quadratic_cost(z, Y), d / 2 * L.mse(z, Y), rtol=1e-12)
        np.testing.assert_allclose(L.logistic_loss(z, S), L.sigmoid_binary_cross_entropy(z, B), rtol=1e-12)
        np.testing.assert_allclose(L.nll(jax.nn.log_softmax(z), LAB),
                                   L.softmax_cross_entropy_with_integer_labels(z, LAB), rtol=1e-12)


# ------------------------------------------------------------------------------------ stability

EXTREME = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, 1e4, 1e4, -1e4], [-1e4, -1e4, -1e4, -1e4]], np.float32)
EX_LAB = np.array([1, 0, 2])
EX_B = np.array([[1, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]], np.float32)
STABLE = {
    "sigmoid_binary_cross_entropy": lambda z: L.sigmoid_binary_cross_entropy(z, EX_B),
    "logistic_loss": lambda z: L.logistic_loss(z, 2 * EX_B - 1),
    "hinge": lambda z: L.hinge(z, 2 * EX_B - 1),
    "softmax_cross_entropy": lambda z: L.softmax_cross_entropy(z, np.eye(4, dtype=np.float32)[EX_LAB]),
    "softmax_cross_entropy_with_integer_labels": lambda z: L.softmax_cross_entropy_with_integer_labels(z, EX_LAB),
    "nll_of_log_softmax": lambda z: L.nll(jax.nn.log_softmax(z), EX_LAB),
    "multiclass_hinge": lambda z: L.multiclass_hinge(z, EX_LAB),
    "multiclass_hinge_cs": lambda z: L.multiclass_hinge(z, EX_LAB, kind="crammer_singer"),
    "binary_cross_entropy_of_sigmoid": lambda z: L.binary_cross_entropy(jax.nn.sigmoid(z), EX_B),
    "huber": lambda z: L.huber(z, EX_B),
    "quadratic_cost": lambda z: L.quadratic_cost(z, EX_B),
}


@pytest.mark.parametrize("name", sorted(STABLE))
def test_stable_at_logits_1e4(name):
    value, grad = jax.jit(jax.value_and_grad(STABLE[name]))(jnp.asarray(EXTREME))
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad))), (value, grad)


def test_stable_values_are_right():
    z = jnp.asarray(EXTREME)
    # Row 0: label logit -1e4 against a max of 1e4: 2e4; row 1: -1e4 against two logits of 1e4: 2e4 + log 2;
    # row 2: four equal logits: log 4.
    want = (2e4 + 2e4 + np.log(2) + np.log(4)) / 3
    np.testing.assert_allclose(float(L.softmax_cross_entropy_with_integer_labels(z, EX_LAB)), want, rtol=1e-6)
    g = np.asarray(jax.grad(lambda t: L.sigmoid_binary_cross_entropy(t, EX_B))(z))
    np.testing.assert_allclose(g, (special.expit(EXTREME.astype(np.float64)) - EX_B) / 3, atol=1e-7)
    # Probabilities of exactly 0 and 1 on the wrong side: large but finite, thanks to the clipping.
    v = L.binary_cross_entropy(jnp.array([[0.0], [1.0]]), jnp.array([[1.0], [0.0]]))
    assert np.isfinite(float(v)) and float(v) > 10


# ------------------------------------------------------------------------------------ shapes and labels

SAME_SHAPE = ["quadratic_cost", "mse", "huber", "binary_cross_entropy", "sigmoid_binary_cross_entropy",
              "logistic_loss", "hinge", "softmax_cross_entropy"]


@pytest.mark.parametrize("name", SAME_SHAPE)
def test_batch_vs_batch_by_one_is_an_error(name):
    f = getattr(L, name)
    outputs = jnp.full((5, 1), 0.5)
    with pytest.raises(ValueError, match=rf"{name}: outputs have shape \(5, 1\) but targets have shape \(5,\); "
                                         r".*targets\[\.\.\., None\]"):
        f(outputs, jnp.ones(5))
    with pytest.raises(ValueError, match=rf"{name}: outputs have shape \(5,\) but targets have shape \(5, 1\); "
                                         r".*targets\[\.\.\., 0\]"):
        f(jnp.full((5,), 0.5), jnp.ones((5, 1)))
    with pytest.raises(ValueError, match=rf"{name}: outputs have shape \(5, 2\) .* \(2, 5\).*reshape"):
        f(jnp.full((5, 2), 0.5), jnp.ones((2, 5)))


@pytest.mark.parametrize("name", ["softmax_cross_entropy_with_integer_labels", "nll", "multiclass_hinge"])
def test_label_errors(name):
    f = getattr(L, name)
    z = jnp.zeros((3, 4))
    with pytest.raises(ValueError, match=rf"{name}: labels must lie in \[0, 4\) for 4 classes, got label 4"):
        f(z, jnp.array([0, 4, 1]))
    with pytest.raises(ValueError, match=rf"{name}: .* got label -1"):
        f(z, jnp.array([0, -1, 1]))
    with pytest.raises(ValueError, match=rf"{name}: expected labels of shape \(3,\) for outputs of shape \(3, 4\), "
                                         r"got shape \(3, 1\)"):
        f(z, jnp.zeros((3, 1), int))
    with pytest.raises(TypeError, match=rf"{name}: expected integer class labels, got dtype float32"):
        f(z, jnp.zeros(3))
    # Inside jax.grad the labels are concrete: still checked.
    with pytest.raises(ValueError, match="got label 7"):
        jax.grad(lambda t: f(t, jnp.array([0, 7, 1])))(z)
    # Under jit they are traced: the loss is NaN, never a silently wrong number.
    assert np.isnan(float(jax.jit(f)(z, jnp.array([0, 4, 1]))))
    assert np.isfinite(float(jax.jit(f)(z, jnp.array([0, 3, 1]))))


@pytest.mark.parametrize("name", ["logistic_loss", "hinge"])
def test_plus_minus_one_targets(name):
    f = getattr(L, name)
    with pytest.raises(ValueError, match=rf"{name}: expected targets in {{-1, \+1}}, got 0.0; .*2 \* y - 1"):
        f(jnp.zeros(3), jnp.array([1.0, 0.0, -1.0]))
    assert np.isnan(float(jax.jit(f)(jnp.zeros(3), jnp.array([1.0, 0.0, -1.0]))))


def test_other_argument_errors():
    with pytest.raises(ValueError, match=r"quadratic_cost: expected outputs with a batch axis"):
        L.quadratic_cost(jnp.array(1.0), jnp.array(1.0))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: expected targets in \[0, 1\], got values in"):
        L.binary_cross_entropy(jnp.full((2, 1), 0.5), jnp.array([[2.0], [0.0]]))
    with pytest.raises(ValueError, match=r"huber: expected delta > 0, got 0"):
        L.huber(jnp.zeros(2), jnp.zeros(2), delta=0)
    with pytest.raises(ValueError, match=r"multiclass_hinge: kind must be .* got 'ovr'"):
        L.multiclass_hinge(jnp.zeros((2, 3)), jnp.zeros(2, int), kind="ovr")
    with pytest.raises(ValueError, match=r"softmax_cross_entropy_with_integer_labels: expected outputs of shape "
                                         r"\(n, classes\), got shape \(3,\)"):
        L.softmax_cross_entropy_with_integer_labels(jnp.zeros(3), jnp.zeros((), int))


def test_losses_jit_equal_eager():
    z, y = jnp.asarray(Z, jnp.float32), jnp.asarray(Y, jnp.float32)
    for f in (L.quadratic_cost, L.sigmoid_binary_cross_entropy, L.huber):
        np.testing.assert_allclose(float(jax.jit(f)(z, y)), float(f(z, y)), rtol=1e-6)
    lab = jnp.array(LAB, jnp.int32)  # explicit: jnp.asarray may hand back the int64 copy made under enable_x64
    np.testing.assert_allclose(float(jax.jit(L.multiclass_hinge)(z, lab)), float(L.multiclass_hinge(z, lab)),
                               rtol=1e-6)


# ------------------------------------------------------------------------------------ penalties

def _mlp_params():
    _, params = serial(Dense(5), Relu, Dense(3)).init(jax.random.key(0), (-1, 4))
    return params


def test_l2_l1_default_mask_skips_biases():
    params = _mlp_params()
    W1, b1 = np.asarray(params[0].W), np.asarray(params[0].b)
    W2 = np.asarray(params[2].W)
    lam = 0.3
    np.testing.assert_allclose(float(L.l2_penalty(params, lam)), lam / 2 * (np.sum(W1 ** 2) + np.sum(W2 ** 2)),
                               rtol=1e-6)
    np.testing.assert_allclose(float(L.l1_penalty(params, lam)), lam * (np.abs(W1).sum() + np.abs(W2).sum()),
                               rtol=1e-6)
    g = jax.jit(jax.grad(L.l2_penalty))(params, lam)  # lam may be traced
    np.testing.assert_allclose(np.asarray(g[0].W), lam * W1, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(g[0].b), np.zeros_like(b1))
    g1 = jax.jit(jax.grad(L.l1_penalty))(params, lam)
    np.testing.assert_allclose(np.asarray(g1[2].W), lam * np.sign(W2))


def test_bias_rule_by_name_and_rank():
    params = {"layer": {"w": jnp.ones((2, 3)), "bias": jnp.ones((2, 3)), "beta": jnp.ones((1, 3)),
                        "gamma": jnp.ones(3), "b": jnp.ones((3, 3)), "scalar": jnp.ones(())},
              "emb": DenseParams(W=jnp.ones((4, 2)), b=jnp.ones((4, 2)))}
    mask = L.weight_mask(params)
    assert mask == {"layer": {"w": True, "bias": False, "beta": False, "gamma": False, "b": False,
                              "scalar": False},
                    "emb": DenseParams(W=True, b=False)}
    np.testing.assert_allclose(float(L.l2_penalty(params, 2.0)), 6 + 8)  # lam/2 * (6 + 8) ones


def test_explicit_masks_override():
    params = _mlp_params()
    b1 = np.asarray(params[0].b)
    only_b1 = (DenseParams(W=False, b=True), (), DenseParams(W=False, b=False))
    np.testing.assert_allclose(float(L.l2_penalty(params, 1.0, mask=only_b1)), 0.5 * np.sum(b1 ** 2), rtol=1e-6)
    everything = L.l1_penalty(params, 1.0, mask=True)
    total = sum(np.abs(np.asarray(x)).sum() for x in jax.tree_util.tree_leaves(params))
    np.testing.assert_allclose(float(everything), total, rtol=1e-6)
    first_layer = L.l2_penalty(params, 1.0, mask=lambda p: jax.tree_util.tree_map_with_path(
        lambda path, _: path[0].idx == 0, p))
    np.testing.assert_allclose(float(first_layer), 0.5 * (np.sum(np.asarray(params[0].W) ** 2) + np.sum(b1 ** 2)),
                               rtol=1e-6)
    assert float(L.l2_penalty(params, 1.0, mask=False)) == 0.0


def test_l1_subgradient_at_zero_is_zero():
    g = jax.grad(L.l1_penalty)({"W": jnp.array([[0.0, -2.0], [3.0, 0.0]])}, 0.5)
    np.testing.assert_array_equal(np.asarray(g["W"]), [[0.0, -0.5], [0.5, 0.0]])


def test_penalty_errors():
    params = _mlp_params()
    with pytest.raises(ValueError, match=r"l2_penalty: mask must have the same tree structure as params; params: "
                                         r".*mask: .*weight_mask"):
        L.l2_penalty(params, 1.0, mask=(True, (), True))
    with pytest.raises(ValueError, match=r"l1_penalty: expected lam >= 0, got -1"):
        L.l1_penalty(params, -1)
