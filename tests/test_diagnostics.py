"""Babysitting diagnostics: activation statistics, the initialization experiment, gradient norms, update ratios,
loss verdicts, overfit_small, callbacks inside fit, plots."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import debug as dg
from fnn import initializers as ini
from fnn import layers as core


def np_dense(p, x):
    return np.asarray(x, np.float64) @ np.asarray(p.W, np.float64) + np.asarray(p.b, np.float64)


def test_activation_stats_match_numpy(key):
    layers = [core.Dense(6), core.Relu, core.Dense(5), core.Tanh, core.Dense(4), core.Sigmoid]
    _, params = core.serial(*layers).init(key, (-1, 3))
    # make unit 2 of the ReLU layer dead (bias -100) and push the sigmoid into saturation
    params = (params[0]._replace(b=params[0].b.at[2].set(-100.0)), (), params[2], (),
              params[4]._replace(W=10 * params[4].W), ())
    x = jax.random.normal(key, (64, 3))
    stats = dg.activation_stats(layers, params, x)
    assert [s.name for s in stats] == ["Relu", "Tanh", "Sigmoid"] and [s.index for s in stats] == [1, 3, 5]
    a1 = np.maximum(np.asarray(x) @ np.asarray(params[0].W) + np.asarray(params[0].b), 0)
    a2 = np.tanh(a1 @ np.asarray(params[2].W) + np.asarray(params[2].b))
    a3 = 1 / (1 + np.exp(-(a2 @ np.asarray(params[4].W) + np.asarray(params[4].b))))
    np.testing.assert_allclose([stats[0].mean, stats[0].std], [a1.mean(), a1.std()], rtol=1e-5)
    assert stats[0].dead == pytest.approx(np.mean(np.all(a1 == 0, axis=0))) and stats[0].dead >= 1 / 6
    assert stats[1].saturated == pytest.approx(np.mean(np.abs(a2) > 0.99))
    assert stats[2].saturated == pytest.approx(np.mean((a3 < 0.01) | (a3 > 0.99)))
    assert np.isnan(stats[0].saturated)
    table = dg.stats_table(stats, "t")
    assert "Relu" in table and "Sigmoid" in table
    assert len(dg.activation_stats(layers, params, x, which="all")) == 6


def test_init_experiment_collapse_saturation_stable(key):
    """10 tanh layers of 500 units: 0.01 * N(0,1) collapses (std shrinks by 0.01 sqrt(500) per layer once tanh is
    linear), N(0,1) saturates, Glorot stays of order one."""
    res, layers, params, x = dg.init_experiment(key, n=200)
    small = [s.std for s in res["N(0,1)*0.01"]]
    assert small[-1] < 1e-5
    ratios = np.array(small[1:]) / np.array(small[:-1])
    np.testing.assert_allclose(ratios[2:], 0.01 * np.sqrt(500), rtol=0.1)
    assert all(s.saturated > 0.85 and s.std > 0.95 for s in res["N(0,1)"])
    glorot = res["Glorot"]
    assert all(0.15 < s.std < 0.7 and s.saturated < 0.05 for s in glorot)
    assert glorot[-1].std > 1e4 * res["N(0,1)*0.01"][-1].std


def test_gradient_norms_vanish_with_sigmoid_not_with_relu_he(key):
    sig = dg.depth_gradient_norms(key, core.Sigmoid, depth=6, width=32)
    relu = dg.depth_gradient_norms(key, core.Relu, ini.he_normal(), depth=6, width=32)
    assert len(sig) == 7
    assert sig[0] / sig[-1] < 1e-2 and all(a < b for a, b in zip(sig, sig[1:]))
    assert 0.1 < relu[0] / relu[-1] < 10


def test_gradient_norms_and_update_ratios_closed_form():
    g = {"l": core.DenseParams(jnp.full((2, 2), 3.0), jnp.ones(4))}
    assert dg.gradient_norms(g) == {"['l'].W": pytest.approx(6.0), "['l'].b": pytest.approx(2.0)}
    assert list(dg.gradient_norms(g, weights_only=True)) == ["['l'].W"]
    r = dg.update_ratios({"w": jnp.ones(4)}, {"w": jnp.full(4, 2e-3)})
    assert r["['w']"] == pytest.approx(2e-3)
    t = dg.update_ratio_table({"a": 1e-5, "b": 1e-3, "c": 0.1})
    assert "rate too low?" in t and "ok" in t and "rate too high?" in t
    with pytest.raises(ValueError, match="update_ratios: params and updates have different structures"):
        dg.update_ratios({"w": jnp.ones(2)}, [jnp.ones(2)])


def test_diagnose_loss_verdicts():
    k = np.arange(100)
    rng = np.random.default_rng(0)
    assert dg.diagnose_loss(2.3 * np.exp(-k / 20) + 0.1).verdict == "ok"
    assert dg.diagnose_loss(2.3 - 1e-5 * k).verdict == "too_low"
    assert dg.diagnose_loss(2.3 * np.exp(k / 30)).verdict == "exploding"
    nan = dg.diagnose_loss([2.3, 2.0, float("nan"), 1.0])
    assert nan.verdict == "exploding" and "entry 2" in nan.message
    noisy = dg.diagnose_loss(2.3 - 0.005 * k + 0.3 * rng.normal(size=100))
    assert noisy.verdict == "noisy" and noisy.noise > 0.25
    with pytest.raises(ValueError, match="diagnose_loss: expected a 1-D history of at least 4 losses"):
        dg.diagnose_loss([1.0, 2.0])


def test_overfit_small(key):
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (80, 10))
    y = jax.random.randint(k2, (80,), 0, 5)
    model = core.mlp([32, 5], core.Tanh)
    _, params = model.init(k3, (-1, 10))
    ok = dg.overfit_small(model.apply, params, x, y)
    assert ok.passed and ok.accuracy == 1.0 and ok.steps < 500
    acc = float(jnp.mean(jnp.argmax(model.apply(ok.params, x[:50]), -1) == y[:50]))
    assert acc == 1.0
    # a "model" that ignores its input cannot memorize random labels: the check fails
    blind = core.Layer(lambda k, s: ((s[0], 5), jnp.zeros(5)),
                       lambda p, x, **kw: jnp.zeros((x.shape[0], 5)) + p[None, :])
    bad = dg.overfit_small(blind.apply, jnp.zeros(5), x, y, steps=200)
    assert not bad.passed and bad.accuracy < 0.5 and bad.steps == 200


def test_monitors_inside_fit(key):
    train = pytest.importorskip("fnn.train")
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.normal(k1, (64, 4))
    y = (x[:, 0] > 0).astype(jnp.int32)
    layers = dg.mlp_layers([8, 2], core.Relu)
    model = core.serial(*layers)
    _, params = model.init(k3, (-1, 4))

    def xent(out, t):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), t[:, None], axis=1))

    lines = []
    mons = [dg.ActivationMonitor(layers, x[:16], every=2, print_fn=lines.append),
            dg.UpdateRatioMonitor(every=1, print_fn=lines.append),
            dg.LossMonitor(every=4, print_fn=lines.append),
            dg.GradientNormMonitor(lambda p: xent(model.apply(p, x), y), every=4, print_fn=lines.append)]
    import optax
    train.fit(model.apply, params, optax.sgd(0.1), xent, x, y, epochs=4, batch_size=16, key=k2, callbacks=mons,
              verbose=False, progress=False)
    act, upd, loss, grad = (m.records for m in mons)
    assert [e for e, _ in act] == [2, 4] and act[0][1][0].name == "Relu"
    assert [e for e, _ in upd] == [2, 3, 4] and all(0 < r < 1 for r in upd[0][1].values())
    assert [e for e, _ in loss] == [4] and loss[0][1].verdict in ("ok", "too_low", "noisy")
    assert [e for e, _ in grad] == [4] and list(grad[0][1]) == ["[0].W", "[2].W"]
    assert any("activation statistics" in s for s in lines)
    with pytest.raises(ValueError, match="ActivationMonitor: expected every >= 1"):
        dg.ActivationMonitor(layers, x, every=0)


def test_plots(tmp_path, key):
    x = jax.random.normal(key, (40, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(jnp.int32)
    p = dg.plot_decision_boundary(lambda z: jnp.stack([z[:, 0], -z[:, 0]], 1), x, y, tmp_path / "b.png",
                                  resolution=30)
    W = jax.random.normal(key, (64, 10))
    q = dg.plot_first_layer_weights(W, (8, 8), tmp_path / "w.png")
    layers = [core.Dense(5), core.Tanh, core.Dense(5), core.Relu]
    _, params = core.serial(*layers).init(key, (-1, 2))
    r = dg.plot_activation_histograms(layers, params, x, tmp_path / "h.png", title="t")
    for f in (p, q, r):
        with open(f, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="cannot be drawn as an image of shape \\(7, 7\\)"):
        dg.plot_first_layer_weights(W, (7, 7), tmp_path / "x.png")
    with pytest.raises(ValueError, match="plot_decision_boundary: expected 2-D inputs"):
        dg.plot_decision_boundary(lambda z: z, jnp.ones((3, 3)), y[:3], tmp_path / "y.png")
    with pytest.raises(ValueError, match="layer_outputs: expected one params entry per layer \\(4\\), got 2"):
        dg.layer_outputs(layers, params[:2], x)


def test_activation_stats_on_a_batchnorm_model_in_eval_mode(key):
    """train=False normalizes with the running averages from the state; layers are named by path."""
    model = core.serial(core.Dense(6), core.BatchNorm(axis=0).named("bn"), core.Tanh, core.Dense(3), core.Relu)
    _, params, state = core.init_with_state(model, key, (-1, 4))
    x = jax.random.normal(key, (32, 4))
    for _ in range(3):  # a few training calls move the running averages away from (0, 1)
        _, state = model.apply(params, 3.0 * x + 1.0, state=state)
    stats = dg.activation_stats(model, params, x, state=state, train=False)
    assert [s.path for s in stats] == ["2/Tanh", "4/Relu"] and [s.name for s in stats] == ["Tanh", "Relu"]
    h = np_dense(params[0], x)
    bn, s = params[1], state[1]
    z = np.asarray(bn.gamma) * (h - np.asarray(s.mean)) / np.sqrt(np.asarray(s.var) + 1e-5) + np.asarray(bn.beta)
    a = np.tanh(z)
    r = np.maximum(np_dense(params[3], a), 0)
    np.testing.assert_allclose([stats[0].mean, stats[0].std], [a.mean(), a.std()], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([stats[1].mean, stats[1].std], [r.mean(), r.std()], rtol=1e-4, atol=1e-6)
    every = dg.activation_stats(model, params, x, state=state, train=False, which="all")
    assert [t.path for t in every] == ["0/Dense", "bn", "2/Tanh", "3/Dense", "4/Relu"]
    assert [t.path for t in dg.activation_stats(list(model.children), params, x, state=state, train=False)] == [
        "2/Tanh", "4/Relu"]
    with pytest.raises(ValueError, match=r"layer_outputs: the layers \['bn'\] carry state and train=False "
                                         r"normalizes with it, but no state= was given; pass state="):
        dg.activation_stats(model, params, x, train=False)
    with pytest.raises(TypeError, match=r"layer_outputs: got the keyword argument\(s\) \['trian'\]"):
        dg.activation_stats(model, params, x, state=state, trian=False)
    with pytest.raises(TypeError, match=r"activation_stats: expected a serial model or the sequence of layers"):
        dg.activation_stats(core.Dense(3), params[0], x)


def test_activation_monitor_uses_the_model_state(key):
    model = core.serial(core.Dense(6), core.BatchNorm(axis=0), core.Tanh)
    _, params, state = core.init_with_state(model, key, (-1, 4))
    x = jax.random.normal(key, (16, 4))
    mon = dg.ActivationMonitor(model, x, print_fn=None)
    mon.on_epoch_end(1, {}, types.SimpleNamespace(params=params, state=state))
    (epoch, stats), = mon.records
    want = dg.activation_stats(model, params, x, state=state, train=False)
    assert epoch == 1 and stats == want and stats[0].path == "2/Tanh"


def test_update_ratio_monitor_divides_by_the_steps_since_its_last_check():
    """fit's records carry the running step count; the monitor divides by the steps between two checks (a bug
    divided epoch e's change by e * steps_per_epoch)."""
    train = pytest.importorskip("fnn.train")
    nb, every = 4, 2
    params = [{"W": np.full((2, 3), 1.0 + 0.1 * e), "b": np.arange(3.0) + e} for e in range(6)]
    mon = dg.UpdateRatioMonitor(every=every, print_fn=None)
    mon.on_train_begin(None)
    for e in range(1, 6):
        mon.on_epoch_end(e, {"steps": e * nb}, train.TrainState(params[e], None, None))
    assert [e for e, _ in mon.records] == [2, 4]
    for (e, ratios), prev in zip(mon.records, (1, 2)):
        before, after = params[prev], params[e]
        taken = (e - prev) * nb
        for leaf, name in (("W", "W"), ("b", "b")):
            want = np.linalg.norm((after[leaf] - before[leaf]) / taken) / np.linalg.norm(before[leaf])
            got = [v for k, v in ratios.items() if name in k]
            assert got == [pytest.approx(want, rel=1e-6)], (e, leaf, ratios, want)
