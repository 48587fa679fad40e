"""fnn.layers.conv_grad: the tap / im2col weight gradient against XLA's, a NumPy loop and finite differences."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from fnn import layers as L
from fnn.layers.conv_grad import conv, conv_weight_grad_impl

NHWC = ("NHWC", "HWIO", "NHWC")
# (x shape, W shape, strides, padding, rhs dilation, dimension numbers): odd sizes, strides 1-2, dilation, 1-3 D
CASES = [
    ((2, 7, 6, 3), (3, 2, 3, 5), (2, 1), "SAME", (1, 2), NHWC),
    ((1, 3, 7, 6), (5, 3, 3, 2), (1, 2), ((1, 2), (0, 1)), (2, 1), ("NCHW", "OIHW", "NCHW")),
    ((1, 9, 64), (3, 64, 1), (2,), "SAME_LOWER", (2,), ("NHC", "HIO", "NHC")),
    ((1, 5, 4, 5, 1), (2, 2, 2, 1, 3), (1, 2, 1), "VALID", (1, 1, 2), ("NDHWC", "DHWIO", "NDHWC")),
]
IDS = [f"{dn[0]}-{pad if isinstance(pad, str) else 'explicit'}-s{st}-r{rd}" for _, _, st, pad, rd, dn in CASES]


def _data(case, dtype, seed=0):
    xs, ws, *_ = case
    k = jax.random.split(jax.random.key(seed), 3)
    x, W = jax.random.normal(k[0], xs, dtype), jax.random.normal(k[1], ws, dtype)
    return x, W, k[2]


def _ours(case, impl):
    _, _, st, pad, rd, dn = case
    return lambda x, W: conv(x, W, st, pad, rhs_dilation=rd, dimension_numbers=dn, impl=impl)


def _xla(case):
    _, _, st, pad, rd, dn = case
    return lambda x, W: lax.conv_general_dilated(x, W, st, pad, rhs_dilation=rd, dimension_numbers=dn)


def _grads(case, ct_seed=0):
    """Jitted (y, dx, dW) of XLA, taps and im2col for one cotangent: one compilation per case and dtype."""
    def all_grads(x, W, k):
        out = []
        for f in (_xla(case), _ours(case, "taps"), _ours(case, "im2col")):
            y, vjp = jax.vjp(f, x, W)
            out.append((y, *vjp(jax.random.normal(k, y.shape, y.dtype))))
        return out
    return jax.jit(all_grads)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_equal_xla_in_float64(case):
    with jax.enable_x64(True):
        ref, *ours = jax.device_get(_grads(case)(*_data(case, jnp.float64)))
    for got in ours:
        assert got[2].dtype == np.float64
        np.testing.assert_array_equal(got[0], ref[0])  # the forward pass is XLA's own
        for a, b in zip(got[1:], ref[1:]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())


def test_weight_gradient_matches_a_numpy_loop():
    # dW[di, dj, c, o] = sum_{n,i,j} x_pad[n, s i + r di, s j + r dj, c] dy[n, i, j, o]
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(2, 5, 6, 2)), rng.normal(size=(2, 2, 2, 3))
    s, r = 2, 2
    with jax.enable_x64(True):
        y, vjp = jax.vjp(lambda W: conv(jnp.asarray(x), W, (s, s), ((1, 1), (0, 1)), rhs_dilation=(r, r),
                                        dimension_numbers=NHWC, impl="taps"), jnp.asarray(W))
        dy = rng.normal(size=y.shape)
        (dW,) = vjp(jnp.asarray(dy))
    xp = np.pad(x, ((0, 0), (1, 1), (0, 1), (0, 0)))
    expected = np.zeros_like(W)
    for di, dj, n, i, j in itertools.product(range(2), range(2), range(2), range(y.shape[1]), range(y.shape[2])):
        expected[di, dj] += np.outer(xp[n, s * i + r * di, s * j + r * dj], dy[n, i, j])
    np.testing.assert_allclose(dW, expected, rtol=1e-12)


def test_check_grads_forward_mode_and_hessian():
    case = CASES[0]
    with jax.enable_x64(True):
        x, W, _ = _data(case, jnp.float64)
        check_grads(jax.jit(_ours(case, "taps")), (x, W), order=1, modes=["rev"])
        # custom_jvp (not custom_vjp): forward mode and Hessian-vector products work and equal XLA's
        g, h = (lambda W, f=f: jnp.sum(jnp.tanh(f(x, W))) for f in (_ours(case, "im2col"), _xla(case)))
        hvp = jax.jit(lambda fn, W, v: jax.jvp(jax.grad(fn), (W,), (v,)), static_argnums=0)
        v = jnp.cos(W)
        (gw, hv), (gw_ref, hv_ref) = hvp(g, W, v), hvp(h, W, v)
        np.testing.assert_allclose(gw, gw_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(hv, hv_ref, rtol=1e-10, atol=1e-10)


def test_vmap_over_an_ensemble_of_kernels_and_jit():
    case = CASES[0]
    x, _, k = _data(case, jnp.float32)
    Ws = jax.random.normal(k, (3, *case[1]))
    loss = lambda impl: (lambda W: jnp.sum(jnp.sin(_ours(case, impl)(x, W))))  # noqa: E731
    g = jax.jit(jax.vmap(jax.grad(loss("im2col"))))(Ws)  # float32 im2col (the CNN test below: float32 taps)
    g_ref = jax.jit(jax.vmap(jax.grad(loss("xla"))))(Ws)
    np.testing.assert_allclose(g, g_ref, rtol=2e-5, atol=2e-5)


def test_small_cnn_gradients_equal_the_conv_layers():
    model = L.serial(L.Conv(4, (3, 3), (2, 2), padding="SAME"), L.Relu, L.Flatten, L.Dense(2))
    _, params = model.init(jax.random.key(1), (-1, 7, 7, 2))
    x = jax.random.normal(jax.random.key(2), (3, 7, 7, 2))

    def loss(p, impl):
        (c1, _, _, d) = p
        h = jax.nn.relu(conv(x, c1.W, (2, 2), "SAME", dimension_numbers=NHWC, impl=impl) + c1.b)
        return jnp.sum(jnp.square(h.reshape(3, -1) @ d.W + d.b.reshape(1, -1)))

    ref = jax.jit(jax.grad(lambda p: jnp.sum(jnp.square(model.apply(p, x)))))(params)
    for impl in ("taps",):
        for a, b in zip(jax.tree.leaves(jax.jit(jax.grad(loss), static_argnums=1)(params, impl)), jax.tree.leaves(ref)):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_routing_and_bad_impl():
    assert conv_weight_grad_impl("auto", 32, backend="cpu") == "xla"
    assert conv_weight_grad_impl("im2col", 1, backend="gpu") == "im2col"
    x = jnp.ones((1, 4, 4, 2))
    grouped = jax.make_jaxpr(lambda W: conv(x, W, (1, 1), "VALID", dimension_numbers=NHWC, feature_group_count=2,
                                            impl="taps"))(jnp.ones((2, 2, 1, 4)))
    assert "custom_jvp" not in str(grouped)  # feature groups go to lax unchanged
    with pytest.raises(ValueError, match="expected impl in .*got 'fast'"):
        conv(x, jnp.ones((2, 2, 2, 3)), (1, 1), "VALID", dimension_numbers=NHWC, impl="fast")
