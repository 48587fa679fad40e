"""Hand-written backprop (Nielsen BP1-BP4) and batch-norm backward (Ioffe & Szegedy sec. 3) equal jax.grad."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn.layers as core
from fnn.debug import backprop as ref
from fnn.debug.gradcheck import check_grads


def _mlp_case(key, activation, sizes=(7, 5, 3), n=6, d_in=4):
    layer = {"sigmoid": core.Sigmoid, "tanh": core.Tanh, "relu": core.Relu, "softplus": core.Softplus}[activation]
    model = core.mlp(list(sizes), layer, output_activation=core.Sigmoid)
    k1, k2, k3 = jax.random.split(key, 3)
    _, params = model.init(k1, (-1, d_in))
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
    x = jax.random.normal(k2, (n, d_in), jnp.float64)
    y = jax.random.uniform(k3, (n, sizes[-1]), jnp.float64, 0.05, 0.95)
    return model, params, x, y


@pytest.mark.parametrize("activation,cost", [("sigmoid", "quadratic"), ("tanh", "cross_entropy"),
                                             ("relu", "quadratic")])
def test_mlp_backprop_equals_jax_grad(key, activation, cost):
    with jax.enable_x64(True):
        model, params, x, y = _mlp_case(key, activation)

        def C(p):  # the same cost through fnn's own model and jax.grad
            a = model.apply(p, x)
            if cost == "quadratic":
                return 0.5 * jnp.sum((a - y) ** 2) / x.shape[0]
            return -jnp.sum(y * jnp.log(a) + (1 - y) * jnp.log1p(-a)) / x.shape[0]

        c, grads = jax.jit(ref.mlp_backprop, static_argnums=(3, 4, 5))(params, x, y, activation, "sigmoid", cost)
        np.testing.assert_allclose(c, jax.jit(C)(params), rtol=1e-12)
        auto = jax.jit(jax.grad(C))(params)
        assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(auto)
        for g, a in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(auto)):
            assert g.dtype == jnp.float64
            np.testing.assert_allclose(g, a, rtol=1e-10, atol=1e-12)


def test_mlp_backprop_matches_numpy_loop(key):
    """One example, column vectors, Nielsen's own layout (W^l of shape (d_l, d_{l-1})) in plain NumPy."""
    with jax.enable_x64(True):
        _, params, x, y = _mlp_case(key, "sigmoid", n=1)
        _, grads = ref.mlp_backprop(params, x, y)
    def sig(z):
        return 1 / (1 + np.exp(-z))

    Ws = [np.asarray(p.W).T for p in params if p != ()]
    bs = [np.asarray(p.b)[:, None] for p in params if p != ()]
    a, acts, zs = np.asarray(x).T, [np.asarray(x).T], []
    for W, b in zip(Ws, bs):
        zs.append(W @ a + b)
        a = sig(zs[-1])
        acts.append(a)
    delta = (acts[-1] - np.asarray(y).T) * sig(zs[-1]) * (1 - sig(zs[-1]))
    nabla_W = [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        nabla_W[l] = delta @ acts[l].T
        if l:
            delta = (Ws[l].T @ delta) * sig(zs[l - 1]) * (1 - sig(zs[l - 1]))
    for g, nW in zip([p for p in grads if p != ()], nabla_W):
        np.testing.assert_allclose(g.W, nW.T, rtol=1e-12)


def test_mlp_backprop_passes_the_gradient_checker(key):
    with jax.enable_x64(True):
        model, params, x, y = _mlp_case(key, "tanh")
        rep = check_grads(lambda p: 0.5 * jnp.sum((model.apply(p, x) - y) ** 2) / x.shape[0], params,
                          grad_fn=lambda p: ref.mlp_backprop(p, x, y, "tanh")[1])
    assert rep.verdict == "good", rep.table()


@pytest.mark.parametrize("shape,axes", [((8, 5), (0,)), ((3, 4, 4, 2), (0, 1, 2))])
def test_batchnorm_backward_equals_jax_grad(key, shape, axes):
    with jax.enable_x64(True):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        x = 3.0 + 2.0 * jax.random.normal(k1, shape, jnp.float64)
        gamma = jax.random.normal(k2, shape[-1:], jnp.float64)
        beta = jax.random.normal(k3, shape[-1:], jnp.float64)
        dy = jax.random.normal(k4, shape, jnp.float64)

        def loss(x, gamma, beta):  # an independent forward: mean / biased variance written directly
            mu = jnp.mean(x, axis=axes, keepdims=True)
            var = jnp.mean((x - mu) ** 2, axis=axes, keepdims=True)
            g, b = gamma.reshape((1,) * (x.ndim - 1) + (-1,)), beta.reshape((1,) * (x.ndim - 1) + (-1,))
            return jnp.sum(dy * (g * (x - mu) / jnp.sqrt(var + 1e-5) + b))

        @jax.jit
        def by_hand(x, gamma, beta):
            y, cache = ref.batchnorm_forward(x, gamma, beta, 1e-5, axes)
            return jnp.sum(dy * y), ref.batchnorm_backward(dy, cache)

        value, (dx, dgamma, dbeta) = by_hand(x, gamma, beta)
        np.testing.assert_allclose(value, loss(x, gamma, beta), rtol=1e-12)
        ax, agamma, abeta = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, gamma, beta)
        np.testing.assert_allclose(dx, ax, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dgamma, agamma, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dbeta, abeta, rtol=1e-10, atol=1e-12)
        if len(shape) > 2:
            return
        # and the checker agrees with the hand-written pass
        tree = {"x": x, "gamma": gamma, "beta": beta}

        def grad_fn(t):
            _, c = ref.batchnorm_forward(t["x"], t["gamma"], t["beta"], 1e-5, axes)
            g = ref.batchnorm_backward(dy, c)
            return {"x": g[0], "gamma": g[1], "beta": g[2]}

        rep = check_grads(lambda t: loss(t["x"], t["gamma"], t["beta"]), tree, grad_fn=grad_fn)
        assert rep.verdict == "good", rep.table()


def test_batchnorm_forward_matches_fnn_batchnorm(key):
    norm = pytest.importorskip("fnn.layers.normalization")
    with jax.enable_x64(True):
        x = jax.random.normal(key, (6, 3), jnp.float64)
        layer = norm.BatchNorm(axis=0)
        _, p = layer.init(key, x.shape)
        p = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64) + 0.3, p)
        y, _ = ref.batchnorm_forward(x, p.gamma, p.beta, 1e-5, (0,))
        np.testing.assert_allclose(y, layer.apply(p, x), rtol=1e-10, atol=1e-12)


def test_errors_name_the_function(key):
    with pytest.raises(ValueError, match="mlp_backprop: unknown cost 'hinge'"):
        ref.mlp_backprop((), jnp.ones((1, 1)), jnp.ones((1, 1)), cost="hinge")
    with pytest.raises(ValueError, match="reference: unknown activation 'swish'"):
        ref.mlp_forward((core.DenseParams(jnp.ones((1, 1)), jnp.ones(1)),), jnp.ones((1, 1)), "swish")
    with pytest.raises(ValueError, match="expected the params of fnn.mlp"):
        ref.mlp_forward(((jnp.ones(1),),), jnp.ones((1, 1)))


def test_softmax_log_likelihood_backprop_equals_jax_grad(key):
    """Nielsen eq. (84): with a softmax output and C = -1/n sum y ln a, BP1 is delta^L = (a - y) / n."""
    with jax.enable_x64(True):
        model = core.mlp([7, 5, 4], core.Tanh, output_activation=core.Softmax)
        k1, k2, k3 = jax.random.split(key, 3)
        _, params = model.init(k1, (-1, 3))
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
        x = jax.random.normal(k2, (6, 3), jnp.float64)
        y = jax.nn.one_hot(jax.random.randint(k3, (6,), 0, 4), 4, dtype=jnp.float64)

        def C(p):
            return -jnp.sum(y * jnp.log(model.apply(p, x))) / x.shape[0]

        c, grads = ref.mlp_backprop(params, x, y, "tanh", "softmax", "log_likelihood")
        np.testing.assert_allclose(c, C(params), rtol=1e-12)
        auto = jax.grad(C)(params)
        for g, a in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(auto), strict=True):
            np.testing.assert_allclose(g, a, rtol=1e-10, atol=1e-12)
        # BP1 itself: the last layer's bias gradient is sum_rows (a - y) / n
        zs, acts = ref.mlp_forward(params, x, "tanh", "softmax")
        np.testing.assert_allclose(grads[-2].b, np.sum(np.asarray(acts[-1]) - np.asarray(y), 0) / 6, rtol=1e-12)
        # softmax with the quadratic cost goes through the full Jacobian (no cancellation)
        _, gq = ref.mlp_backprop(params, x, y, "tanh", "softmax", "quadratic")
        aq = jax.grad(lambda p: 0.5 * jnp.sum((model.apply(p, x) - y) ** 2) / 6)(params)
        for g, a in zip(jax.tree_util.tree_leaves(gq), jax.tree_util.tree_leaves(aq), strict=True):
            np.testing.assert_allclose(g, a, rtol=1e-10, atol=1e-12)


def test_dropout_masks_backprop_equals_jax_grad_through_fnn_dropout(key):
    """The masks fnn.layers.Dropout draws, fed to the hand-written pass, give jax.grad of the dropout network."""
    with jax.enable_x64(True):
        drop = core.Dropout(0.4)
        model = core.serial(core.Dense(6), core.Sigmoid, drop, core.Dense(5), core.Sigmoid, drop,
                            core.Dense(3), core.Sigmoid)
        k1, k2, k3, kd = jax.random.split(key, 4)
        _, params = model.init(k1, (-1, 4))
        params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
        x = jax.random.normal(k2, (5, 4), jnp.float64)
        y = jax.random.uniform(k3, (5, 3), jnp.float64, 0.05, 0.95)

        def C(p):
            return 0.5 * jnp.sum((model.apply(p, x, key=kd) - y) ** 2) / 5

        # recover serial's per-layer keys and the masks the Dropout layers drew (applied to ones)
        keys = jax.random.split(kd, 8)
        masks = [drop.apply((), jnp.ones((5, 6), jnp.float64), key=keys[2]),
                 drop.apply((), jnp.ones((5, 5), jnp.float64), key=keys[5])]
        assert {float(v) for v in np.unique(np.asarray(masks[0]))} <= {0.0, 1 / 0.6}
        mlp_params = tuple(p for i, p in enumerate(params) if i not in (2, 5))
        c, grads = ref.mlp_backprop(mlp_params, x, y, masks=masks)
        np.testing.assert_allclose(c, C(params), rtol=1e-12)
        auto = [a for i, a in enumerate(jax.grad(C)(params)) if i not in (2, 5)]
        for g, a in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(auto), strict=True):
            np.testing.assert_allclose(g, a, rtol=1e-10, atol=1e-12)
        # without the masks the gradient differs (the test can fail)
        _, g0 = ref.mlp_backprop(mlp_params, x, y)
        assert not np.allclose(g0[0].W, grads[0].W)


def test_mask_and_softmax_errors(key):
    p = (core.DenseParams(jnp.ones((2, 3)), jnp.ones(3)), (), core.DenseParams(jnp.ones((3, 1)), jnp.ones(1)))
    with pytest.raises(ValueError, match=r"one dropout mask per hidden layer with shapes \[\(4, 3\)\], got \[\(4, 2"):
        ref.mlp_backprop(p, jnp.ones((4, 2)), jnp.ones((4, 1)), masks=[jnp.ones((4, 2))])
    with pytest.raises(ValueError, match="unknown activation 'softmax'"):
        ref.mlp_forward(p, jnp.ones((4, 2)), "softmax")   # softmax only as the output
