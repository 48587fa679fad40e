"""fnn.layers.pool_grad: gradients equal XLA's reduce_window rules (ties, NaN, padding) and a NumPy loop."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from fnn.layers import AvgPool, MaxPool, SumPool, pool_grad

# (spatial shape, channels, window, strides, padding): odd sizes with leftover rows, windows 2-3, strides 1-3,
# VALID/SAME/pairs, 1-D/2-D/3-D, tiled (strides == window) and not.
CASES = [
    ((7,), 3, (2,), (2,), "VALID"),
    ((9,), 2, (2,), (3,), "VALID"),
    ((7, 5), 3, (2, 2), (2, 2), "VALID"),
    ((7, 5), 2, (2, 2), (2, 2), "SAME"),
    ((5, 7), 2, (3, 2), (2, 3), "SAME_LOWER"),
    ((6, 5), 64, (3, 2), (1, 2), "VALID"),
    ((5, 6), 1, (3, 3), (3, 3), ((1, 1), (0, 2))),
    ((4, 5, 3), 2, (2, 2, 2), (2, 2, 2), "VALID"),
    ((5, 4, 3), 1, (3, 2, 2), (1, 2, 1), "SAME"),
]


def relu_like(rng, shape, dtype):
    """Half zeros (all-zero windows: ties) and small integers (equal maxima), as after a ReLU."""
    return np.maximum(rng.integers(-3, 3, shape), 0).astype(dtype)


def full(case):
    _, _, window, strides, padding = case
    pad = padding if isinstance(padding, str) else ((0, 0), *padding, (0, 0))
    return (1, *window, 1), (1, *strides, 1), pad


def vjps(x, g, case):
    """Gradients of max and sum pooling: ours (max, sum), then XLA's reduce_window rules (max, sum), one jit."""
    w, s, p = full(case)
    fns = [lambda x: pool_grad.max_pool(x, w, s, p), lambda x: pool_grad.sum_pool(x, w, s, p),
           lambda x: lax.reduce_window(x, np.asarray(-np.inf, x.dtype), lax.max, w, s, p),
           lambda x: lax.reduce_window(x, np.asarray(0, x.dtype), lax.add, w, s, p)]
    return jax.jit(lambda x, g: [jax.vjp(f, x)[1](g)[0] for f in fns])(x, g)


def numpy_max_grad(x, g, case):
    """Loop reference of XLA's rule: walk each window row-major, keep the current entry while current >= next."""
    w, s, p = full(case)
    pads = lax.padtype_to_pads(x.shape, w, s, p) if isinstance(p, str) else p
    xp = np.pad(x, pads, constant_values=-np.inf)
    dx = np.zeros_like(xp)
    for o in np.ndindex(g.shape):
        best = None
        for off in itertools.product(*(range(k) for k in w)):
            k = tuple(oi * si + j for oi, si, j in zip(o, s, off))
            if best is None or not xp[best] >= xp[k]:
                best = k
        dx[best] += g[o]
    return dx[tuple(slice(lo, lo + d) for (lo, _), d in zip(pads, x.shape))]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_max_and_sum_pool_gradients_equal_xla_and_a_numpy_loop(case):
    rng = np.random.default_rng(0)
    shape, c, *_ = case
    x = relu_like(rng, (2, *shape, c), np.float32)
    w, s, p = full(case)
    g = rng.standard_normal(jax.eval_shape(lambda x: pool_grad.max_pool(x, w, s, p), x).shape).astype(np.float32)
    dmax, dsum, xla_max, xla_sum = vjps(x, g, case)
    np.testing.assert_array_equal(dmax, xla_max)  # bitwise, ties included
    np.testing.assert_array_equal(dmax, numpy_max_grad(x, g, case))
    np.testing.assert_allclose(dsum, xla_sum, rtol=1e-6, atol=1e-6)


def test_ties_go_to_the_first_maximum_in_window_order():
    x = jnp.asarray(np.array([[0, 0], [0, 0], [1, 3], [3, 2]], np.float32).reshape(1, 4, 2, 1))
    g = jnp.asarray([[[[1.0]]], [[[2.0]]]]).reshape(1, 2, 1, 1)
    dx = jax.jit(lambda x, g: jax.vjp(lambda x: pool_grad.max_pool(x, (1, 2, 2, 1), (1, 2, 2, 1), "VALID"),
                                      x)[1](g)[0])(x, g)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0], [0, 0], [0, 2], [0, 0]])


def test_nan_and_all_minus_inf_windows_route_like_xla():
    x = np.array([1, np.nan, 3, np.nan, 1, 2, -np.inf, -np.inf], np.float32).reshape(1, 8, 1)
    for case, n_out in [(((8,), 1, (3,), (3,), "SAME"), 3), (((8,), 1, (2,), (1,), ((1, 0),)), 8)]:
        g = np.arange(1.0, 1 + n_out, dtype=np.float32).reshape(1, n_out, 1)
        dmax, _, xla_max, _ = vjps(x, g, case)
        np.testing.assert_array_equal(dmax, xla_max)
        np.testing.assert_array_equal(dmax, numpy_max_grad(x, g, case))


@pytest.mark.parametrize("layer", [MaxPool, AvgPool, SumPool])
def test_layers_take_the_fast_path_with_the_same_values_and_float64_gradients(layer):
    rng = np.random.default_rng(1)
    results = []
    with jax.enable_x64(True):
        x = jnp.asarray(relu_like(rng, (2, 7, 5, 3), np.float64) + rng.random((2, 7, 5, 3)) * 1e-3)
        for mode in ("fast", "xla"):
            apply = layer((3, 2), (2, 2), "SAME", impl=mode).apply
            loss = jax.jit(jax.value_and_grad(lambda x: jnp.sum(apply((), x) * jnp.cos(apply((), x)))))
            results.append((*loss(x), "custom_jvp_call" in str(jax.make_jaxpr(lambda x: apply((), x))(x))))
    assert results[0][1].dtype == np.float64
    assert results[0][2] and not results[1][2]  # routed through pool_grad only when switched on
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)


def test_check_grads_vmap_and_the_switch():
    with jax.enable_x64(True):
        # Values 0.1 apart: no ties, and no kink within check_grads' finite-difference step.
        x = jnp.asarray(np.random.default_rng(2).permutation(120).reshape(3, 5, 4, 2) * 0.1)
        f = jax.jit(lambda x: pool_grad.max_pool(x, (1, 2, 2, 1), (1, 1, 2, 1), "SAME"))
        check_grads(f, (x,), order=1, modes=["rev"])  # sum_pool is linear and checked against XLA above
        per_example = jax.jit(jax.vmap(jax.grad(lambda x: jnp.sum(f(x[None]) ** 2))))(x)
        np.testing.assert_allclose(per_example, jax.grad(lambda x: jnp.sum(f(x) ** 2))(x), rtol=1e-12)
    assert pool_grad.use_fast_pooling() == (jax.default_backend() == "cpu")
    assert [pool_grad.use_fast_pooling("auto", b) for b in ("cpu", "gpu", "tpu")] == [True, False, False]
    with pytest.raises(ValueError, match=r"expected impl to be one of \('auto', 'fast', 'xla'\), got 'gpu'"):
        MaxPool((2, 2), impl="gpu")


def test_a_cnn_trains_the_same_with_either_pooling_derivative():
    """The loss curve of a small CNN (digits, 30 Adam steps) is the same with XLA's and the rewritten derivative."""
    import optax

    from fnn import layers as L
    from fnn import losses
    from fnn.data import load_digits
    from fnn.train import fit
    X, y = load_digits(flatten=False)
    curves = []
    for impl in ("xla", "fast"):
        model = L.serial(L.Conv(6, (3, 3), padding="SAME"), L.Relu, L.MaxPool((2, 2), (2, 2), impl=impl),
                         L.Flatten, L.Dense(10))
        _, params = model.init(jax.random.key(0), (-1, 8, 8, 1))
        res = fit(model.apply, params, optax.adam(1e-2), losses.softmax_cross_entropy_with_integer_labels,
                  X[:960], y[:960], epochs=1, batch_size=32, key=1, verbose=False, epoch_mode="loop", metrics=())
        curves.append((res.history["loss"], jax.tree.leaves(res.params)))
    np.testing.assert_allclose(curves[0][0], curves[1][0], rtol=1e-6)
    for a, b in zip(curves[0][1], curves[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
