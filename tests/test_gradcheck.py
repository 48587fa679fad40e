"""The gradient checker: passes correct gradients of every layer type, fails a planted bug naming the leaf."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn.layers as core
from fnn.cli import gradcheck as gc_cli
from fnn.debug import gradcheck as gc
from fnn.layers import Layer


def _check(layer, input_shape, key, **kw):
    k1, k2 = jax.random.split(key)
    _, params = layer.init(k1, input_shape)
    x = jax.random.normal(k2, input_shape)
    return gc.check_layer(layer, params, x, coords=4, **kw)


def test_core_layers_pass(key):
    """Dense and every core activation/shape layer, in one stack (float32 params: the check runs in float64)."""
    model = core.serial(
        core.Flatten, core.Dense(6), core.Tanh, core.Dense(6), core.Sigmoid, core.Dense(6), core.Elu,
        core.Dense(6), core.LeakyRelu, core.Dense(6), core.Softplus, core.Dense(6), core.Gelu, core.Dense(6),
        core.Selu, core.Dense(6), core.Relu, core.Reshape((2, 3)), core.Flatten,
        core.residual(core.Dense(6), core.Tanh), core.FanOut(2), core.parallel(core.Dense(3), core.Identity),
        core.FanInConcat(), core.Dense(4), core.LogSoftmax, core.Dense(4), core.Softmax, core.Exp)
    rep = _check(model, (5, 2, 2), key)
    assert rep.ok, rep.table()
    assert rep.max_error < 1e-6, rep.table()
    paths = [l.path for l in rep.leaves]
    assert "['params'][1].W" in paths and "['inputs']" in paths
    assert all(l.checked + l.kinks == min(4, l.size) for l in rep.leaves)


def test_conv_pool_and_batchnorm_pass(key):
    layers = pytest.importorskip("fnn.layers")
    model = layers.serial(layers.Conv(3, (2, 2), padding="SAME"), layers.BatchNorm(axis=(0, 1, 2)), layers.Relu,
                          layers.MaxPool((2, 2), strides=(2, 2)), layers.ConvTranspose(2, (2, 2)),
                          layers.AvgPool((2, 2)), layers.Flatten, layers.Dense(3), layers.LayerNorm())
    rep = _check(model, (2, 4, 4, 2), key, train=True)  # BatchNorm with batch statistics
    assert rep.ok, rep.table()
    assert any(l.path.endswith(".gamma") for l in rep.leaves)


def test_rnn_maxout_rbf_pass(key):
    layers = pytest.importorskip("fnn.layers")
    rec = pytest.importorskip("fnn.layers.recurrent")
    model = layers.serial(rec.RNN(rec.SimpleRNNCell(3)), layers.Flatten, layers.Maxout(4, k=3), layers.RBF(3))
    rep = _check(model, (2, 3, 2), key)
    assert rep.ok, rep.table()
    assert "['params'][2].W" in {l.path for l in rep.leaves} and len(rep.leaves) >= 7


def test_batchnorm_eval_mode_with_state_and_dropout(key):
    layers = pytest.importorskip("fnn.layers")
    model = layers.serial(layers.Dense(4), layers.BatchNorm(axis=0), layers.Dropout(0.5), layers.Tanh)
    _, params, state = layers.init_with_state(model, key, (6, 3))
    x = jax.random.normal(key, (6, 3))
    rep = gc.check_layer(model, params, x, state=state, coords=6)  # eval: running statistics, no dropout
    assert rep.verdict == "good", rep.table()
    rep = gc.check_layer(model, params, x, train=True, coords=6)  # train: batch statistics, a fixed dropout mask
    assert rep.ok, rep.table()


def _buggy_dense(out_dim):
    """y = x W + b with a custom_vjp whose W-gradient is doubled (the planted bug); dx and db are right."""
    @jax.custom_vjp
    def affine(x, W, b):
        return jnp.dot(x, W) + b[None, :]

    def fwd(x, W, b):
        return affine(x, W, b), (x, W)

    def bwd(res, ct):
        x, W = res
        return jnp.dot(ct, W.T), 2.0 * jnp.dot(x.T, ct), jnp.sum(ct, axis=0)

    affine.defvjp(fwd, bwd)
    dense = core.Dense(out_dim)
    return Layer(dense.init, lambda p, x, **kw: affine(x, p.W, p.b))


def test_planted_bug_is_reported_wrong_naming_the_leaf(key):
    model = core.serial(core.Dense(5), core.Tanh, _buggy_dense(4), core.Tanh, core.Dense(3))
    k1, k2 = jax.random.split(key)
    _, params = model.init(k1, (7, 3))
    x = jax.random.normal(k2, (7, 3))
    rep = gc.check_grads(lambda p: jnp.sum(model.apply(p, x) ** 2), params, coords=10)
    assert rep.wrong_leaves() == ["[2].W"], rep.table()
    assert rep.verdict == "wrong" and not rep.ok
    assert {l.path: l.verdict for l in rep.leaves}["[2].b"] == "good"
    worst = {l.path: l for l in rep.leaves}["[2].W"]
    a, n = worst.worst
    assert a == pytest.approx(2 * n, rel=1e-6)  # the report shows the analytic value is twice the numerical one
    assert "[2].W" in rep.table() and "wrong" in rep.table()


def test_random_subset_reaches_every_part_of_a_leaf():
    """The bug sits only in the second half of a 200-entry leaf; 10 random coordinates find it, the first 10 would
    not."""
    def grad_fn(p):
        g = jax.grad(lambda q: jnp.sum(jnp.sin(q["w"])))(p)
        return {"w": g["w"].at[100:].multiply(1.5)}

    rep = gc.check_grads(lambda p: jnp.sum(jnp.sin(p["w"])), {"w": jnp.linspace(-2, 2, 200)}, grad_fn=grad_fn,
                         coords=10, key=jax.random.key(3))
    assert rep.leaves[0].checked == 10 and rep.verdict == "wrong"
    assert rep.leaves[0].worst_index[0] >= 100
    full = gc.check_grads(lambda p: jnp.sum(jnp.sin(p["w"])), {"w": jnp.linspace(-2, 2, 20)}, coords=None)
    assert full.leaves[0].checked == 20 and full.verdict == "good"


def test_kink_detection():
    """relu(w) * c: a coordinate within h/100 of the kink is left out and counted; one just outside h is retried
    with a smaller step and passes; a smooth function has no kinks."""
    c = jnp.array([1.0, 2.0, -3.0, 0.5])
    w = jnp.array([0.7, 3e-8, 4e-6, -0.2])  # h = 1e-5: w[1] crosses at h, h/10, h/100; w[2] only at h
    rep = gc.check_grads(lambda p: jnp.sum(jax.nn.relu(p) * c), w, coords=None)
    assert rep.has_kinks
    assert rep.leaves[0].kinks == 1 and rep.leaves[0].checked == 3
    assert rep.verdict == "good", rep.table()
    g = gc.instrument(lambda p: jnp.sum(jax.nn.relu(p) * c), w)
    _, pat = g(w)
    np.testing.assert_array_equal(pat, np.asarray(w) > 0)  # the recorded pattern is the ReLU's winner
    smooth = gc.check_grads(lambda p: jnp.sum(jax.nn.log_softmax(jnp.tanh(p))), w)  # max only under stop_gradient
    assert not smooth.has_kinks and smooth.verdict == "good"


def test_without_floor_the_textbook_formula_and_verdicts():
    assert [gc.verdict(e, False) for e in (1e-9, 1e-5, 1e-3, 0.5)] == ["good", "suspect", "suspect", "wrong"]
    assert [gc.verdict(e, True) for e in (1e-9, 1e-5, 1e-3, float("nan"))] == ["good", "acceptable", "suspect",
                                                                             "wrong"]
    # floor=0: err = |a - n| / max(|a|, |n|); a wrong gradient 1.1 * true gives 0.1/1.1 where it is not 0
    rep = gc.check_grads(lambda p: jnp.sum(p ** 2) / 2, jnp.array([1.0, -2.0, 0.0]), floor=0.0,
                         grad_fn=lambda p: 1.1 * p)
    assert rep.leaves[0].max_error == pytest.approx(0.1 / 1.1, rel=1e-6)
    assert rep.leaves[0].mean_error == pytest.approx(2 / 3 * 0.1 / 1.1, rel=1e-6)  # both 0 at p = 0 -> error 0


def test_penalty_dominating_the_data_loss_warns(key):
    params = {"W": jax.random.normal(key, (4, 3))}
    data = lambda p: jnp.mean(jnp.tanh(p["W"]))  # noqa: E731
    with pytest.warns(gc.GradCheckWarning, match="penalty's gradient .* dominates the data loss"):
        rep = gc.check_grads(data, params, penalty=lambda p: 10.0 * jnp.sum(p["W"] ** 2), coords=3)
    assert rep.warnings and rep.ok
    gc.check_grads(data, params, penalty=lambda p: 1e-4 * jnp.sum(p["W"] ** 2), coords=3)  # no warning (errors)


def test_errors_say_what_to_fix(key):
    with pytest.raises(ValueError, match="check_grads: f is not deterministic.*train=False"):
        gc.check_grads(lambda p: jnp.sum(p * np.random.normal(size=2)), jnp.ones(2))  # fresh noise per trace
    with pytest.raises(ValueError, match="check_grads: f must return a scalar, got shape \\(2,\\)"):
        gc.check_grads(lambda p: p * 2, jnp.ones(2))
    with pytest.raises(ValueError, match="f returned float32 for float64 params"):
        gc.check_grads(lambda p: jnp.sum(p.astype(jnp.float32)), jnp.ones(2))
    with pytest.raises(ValueError, match="expected a positive step h, got 0"):
        gc.check_grads(lambda p: jnp.sum(p), jnp.ones(2), h=0)
    with pytest.raises(ValueError, match="grad_fn returned a tree with structure"):
        gc.check_grads(lambda p: jnp.sum(p["a"]), {"a": jnp.ones(2)}, grad_fn=lambda p: [p["a"]])


def test_cli(capsys):
    assert gc_cli.main(["--model", "buggy", "--coords", "4"]) == 1
    out = capsys.readouterr().out
    assert "[0].W" in out and "wrong" in out and "[2].W" in out
    with pytest.raises(SystemExit):
        gc_cli.main(["--model", "nope"])


# ------------------------------------------------------------------ the verdict does not depend on the loss scale
def _tanh_net(bug: bool):
    """f(W1, W2) = sum(tanh(X W1) W2); with bug=True tanh's custom gradient forgets the (1 - tanh^2) factor."""
    @jax.custom_vjp
    def act(z):
        return jnp.tanh(z)

    act.defvjp(lambda z: (jnp.tanh(z), z),
               lambda z, ct: (ct if bug else ct * (1 - jnp.tanh(z) ** 2),))
    X = jax.random.normal(jax.random.key(7), (6, 4))

    def f(p, scale):
        return scale * jnp.sum(act(X.astype(p[0].dtype) @ p[0]) @ p[1])

    return f


@pytest.mark.parametrize("dtype", [jnp.float32, "float64"])
@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e-12])
def test_a_planted_bug_is_wrong_and_a_correct_gradient_good_at_every_loss_scale(dtype, scale):
    with jax.enable_x64(dtype == "float64"):
        dt = jnp.float64 if dtype == "float64" else jnp.float32
        params = (jax.random.normal(jax.random.key(1), (4, 5), dt), jax.random.normal(jax.random.key(2), (5, 2), dt))
        bad, good = _tanh_net(True), _tanh_net(False)
        rep_bad = gc.check_grads(lambda p: bad(p, scale), params, coords=6)
        rep_good = gc.check_grads(lambda p: good(p, scale), params, coords=6)
    assert rep_bad.verdict == "wrong" and "[0]" in rep_bad.wrong_leaves(), rep_bad.table()
    assert rep_good.verdict == "good", rep_good.table()
    # the relative errors themselves are scale-free (to rounding)
    with jax.enable_x64(True):
        ref = gc.check_grads(lambda p: bad(p, 1.0), jax.tree.map(lambda a: a.astype(jnp.float64), params), coords=6)
    np.testing.assert_allclose(rep_bad.leaves[0].max_error, ref.leaves[0].max_error, rtol=1e-3)


def test_a_gradient_tiny_relative_to_f_is_flagged_not_rated():
    """f = 1 + 1e-12 * g: the differences of f cannot resolve g's gradient in float64; the checker says so."""
    with pytest.warns(gc.GradCheckWarning, match=r"float precision limits the check; .* scale the loss"):
        rep = gc.check_grads(lambda w: 1.0 + 1e-12 * jnp.sum(jnp.sin(w)), jnp.linspace(0.1, 1.0, 5))
    assert len(rep.warnings) == 1


def test_depth_growth_widens_the_thresholds_of_early_layers_only():
    flat = jax.tree_util.tree_flatten_with_path((jnp.ones(2), jnp.ones(2), jnp.ones(2)))[0]
    assert gc._depth_allowances(flat, 10.0) == [100.0, 10.0, 1.0]
    assert gc._depth_allowances(flat, None) == [1.0, 1.0, 1.0]
    assert gc.verdict(5e-2, False) == "wrong" and gc.verdict(5e-2, False, allowance=10.0) == "suspect"
    with pytest.raises(ValueError, match=r"expected depth_growth >= 1 .* got 0.5"):
        gc.check_grads(lambda w: jnp.sum(w ** 2), jnp.ones(2), depth_growth=0.5)


def test_gradcheck_callback_checks_after_the_burn_in_and_stops_on_a_bug():
    from fnn import losses
    from fnn.train import fit

    X = np.asarray(jax.random.normal(jax.random.key(0), (64, 4)), np.float32)
    y = (X[:, 0] > 0).astype(np.int32)

    @jax.custom_vjp
    def bad_tanh(z):
        return jnp.tanh(z)

    bad_tanh.defvjp(lambda z: (jnp.tanh(z), z), lambda z, ct: (ct,))   # forgets 1 - tanh^2
    for act, expect_ok in ((core.Tanh, True), (core.elementwise(bad_tanh), False)):
        model = core.serial(core.Dense(8), act, core.Dense(2))
        _, params = model.init(jax.random.key(1), (-1, 4))
        loss = losses.softmax_cross_entropy_with_integer_labels
        cb = gc.GradCheck(model.apply, loss, X[:16], y[:16], at_epochs=(2,), coords=5)
        import warnings as _w
        with _w.catch_warnings():
            _w.simplefilter("ignore", gc.GradCheckWarning)
            _, _, history = fit(model.apply, params, __import__("fnn").optimizers.sgd(0.5), loss, X, y, epochs=4,
                                batch_size=16, key=jax.random.key(2), callbacks=[cb], progress=False)
        assert [e for e, _ in cb.reports] == [2]
        assert cb.reports[0][1].ok is expect_ok, cb.reports[0][1].table()
        assert len(history) == (4 if expect_ok else 2)   # the bug stops training after epoch 2
    with pytest.raises(ValueError, match=r"GradCheck: expected at_epochs to be positive epoch numbers"):
        gc.GradCheck(model.apply, loss, X, y, at_epochs=(0,))


def test_gradcheck_callback_names_why_it_stopped_and_warns_when_it_never_ran():
    import warnings as _w

    from fnn import losses, optimizers
    from fnn.train import fit
    X = np.asarray(jax.random.normal(jax.random.key(0), (32, 4)), np.float32)
    y = (X[:, 0] > 0).astype(np.int32)

    @jax.custom_vjp
    def bad_tanh(z):
        return jnp.tanh(z)

    bad_tanh.defvjp(lambda z: (jnp.tanh(z), z), lambda z, ct: (ct,))
    loss = losses.softmax_cross_entropy_with_integer_labels
    model = core.serial(core.Dense(8), core.elementwise(bad_tanh), core.Dense(2))
    _, params = model.init(jax.random.key(1), (-1, 4))
    cb = gc.GradCheck(model.apply, loss, X[:8], y[:8], at_epochs=(1,), coords=4)
    with _w.catch_warnings():
        _w.simplefilter("ignore", gc.GradCheckWarning)
        res = fit(model.apply, params, optimizers.sgd(0.1), loss, X, y, epochs=3, batch_size=8,
                  key=jax.random.key(2), callbacks=[cb], verbose=False, progress=False)
    assert res.history.stop_reason.startswith("GradCheck: the gradient check after epoch 1 says wrong")
    late = gc.GradCheck(model.apply, loss, X[:8], y[:8], at_epochs=(5,))
    with pytest.warns(gc.GradCheckWarning, match=r"no check ran: at_epochs \(5,\) lie beyond the 2 epoch"):
        fit(model.apply, params, optimizers.sgd(0.1), loss, X, y, epochs=2, batch_size=8, key=jax.random.key(2),
            callbacks=[late], verbose=False, progress=False)
