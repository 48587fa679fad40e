"""Shared contract tests over the registry fnn.optimizers.RULES, composition with optax, bad input, and the
rules optax lacks (delta_bar_delta) against a NumPy loop."""
import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnn.optimizers
import fnn.optimizers.adaptive
import fnn.optimizers.first_order
import fnn.optimizers.schedules
import fnn.optimizers.second_order
import fnn.optimizers.transforms
from fnn import optimizers as fo

# A learning rate per rule for the 2x2 + 2 quadratic below (Hessian eigenvalues 1..20).
LR = {"sgd": 0.05, "momentum": 0.02, "nesterov": 0.02, "adagrad": 0.5, "rmsprop": 0.02, "adadelta": 50.0,
      "adam": 0.05, "adamw": 0.05, "adamax": 0.1, "nadam": 0.05, "delta_bar_delta": 0.01, "lbfgs": 0.5,
      "bfgs": 0.5}
assert set(LR) == set(fo.RULES)


def problem(dtype=jnp.float32):
    """f(p) = 1/2 sum(h * (p - 1)^2) over a two-leaf tree: a weight matrix and a bias."""
    h = {"w": jnp.asarray([[1.0, 20.0], [5.0, 2.0]], dtype), "b": jnp.asarray([10.0, 1.0], dtype)}
    params = {"w": jnp.zeros((2, 2), dtype), "b": jnp.zeros(2, dtype)}

    def f(p):
        return sum(0.5 * jnp.sum(h[k].astype(jnp.float32) * (p[k].astype(jnp.float32) - 1.0) ** 2) for k in p)
    return f, params


def make_step(opt, f, counter=None):
    def step(params, state):
        if counter is not None:
            counter.append(1)
        grads = jax.grad(f)(params)
        updates, state = opt.update(grads, state, params)
        return fo.apply_updates(params, updates), state
    return step


@pytest.mark.parametrize("name", sorted(fo.RULES))
def test_converges_on_quadratic(name):
    f, params = problem()
    opt = fo.from_name(name, LR[name])

    @jax.jit
    def run(params):
        (params, _), _ = jax.lax.scan(lambda c, _: (make_step(opt, f)(*c), None), (params, opt.init(params)),
                                      None, 300)
        return params

    final = run(params)
    assert float(f(final)) < 1e-3 * float(f(params)), f"{name}: loss {float(f(final))} from {float(f(params))}"


@pytest.mark.parametrize("name", sorted(fo.RULES))
def test_jit_equals_eager_no_retrace_stable_state(name):
    f, params = problem()
    opt = fo.from_name(name, LR[name])
    state0 = opt.init(params)
    traces = []
    jitted = jax.jit(make_step(opt, f, traces))
    pj, sj = params, state0
    pe, se = params, state0
    for _ in range(3):
        pj, sj = jitted(pj, sj)
        pe, se = make_step(opt, f)(pe, se)
        # state structure, shapes and dtypes are those of init's state, at every step
        assert jax.tree.structure(sj) == jax.tree.structure(state0)
        assert [(a.shape, a.dtype) for a in jax.tree.leaves(sj)] == \
               [(jnp.shape(a), jnp.result_type(a)) for a in jax.tree.leaves(state0)]
    assert len(traces) == 1, f"{name} was traced {len(traces)} times for 3 calls"
    for a, b in zip(jax.tree.leaves(pj), jax.tree.leaves(pe)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # XLA fuses differently from eager: ulps
    assert float(f(pj)) < float(f(params))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", sorted(fo.RULES))
def test_dtype_kept(name, dtype):
    f, params = problem(dtype)
    opt = fo.from_name(name, LR[name])
    state = opt.init(params)
    for _ in range(2):
        grads = jax.grad(f)(params)
        updates, state = opt.update(grads, state, params)
        assert all(u.dtype == dtype for u in jax.tree.leaves(updates))
        params = fo.apply_updates(params, updates)
    assert all(p.dtype == dtype for p in jax.tree.leaves(params))
    assert all(np.all(np.isfinite(np.asarray(p, np.float32))) for p in jax.tree.leaves(params))


@pytest.mark.parametrize("name", sorted(fo.RULES))
def test_tree_mismatch_prints_both_structures(name):
    f, params = problem()
    opt = fo.from_name(name, LR[name])
    state = opt.init(params)
    bad = {"w": jnp.ones((2, 2)), "c": jnp.ones(2)}
    with pytest.raises(ValueError, match=r"(?s)does not match.*gradients: PyTreeDef\(\{'c'.*PyTreeDef\(\{'b'"):
        opt.update(bad, state, params)


@pytest.mark.parametrize("name", sorted(fo.RULES))
def test_non_positive_learning_rate_rejected(name):
    for lr in (0.0, -0.1):
        with pytest.raises(ValueError, match=rf"{name}: learning_rate must be > 0, got learning_rate={lr}"):
            fo.RULES[name](lr)


@pytest.mark.parametrize("rule,kwargs,message", [
    (fo.adam, {"b1": 1.0}, r"adam: b1 must lie in \[0, 1\), got b1=1.0"),
    (fo.adam, {"b2": -0.1}, r"adam: b2 must lie in \[0, 1\), got b2=-0.1"),
    (fo.nadam, {"b1": 1.5}, r"nadam: b1 must lie in \[0, 1\)"),
    (fo.adamax, {"b2": 1.0}, r"adamax: b2 must lie in \[0, 1\)"),
    (fo.adamw, {"b1": 1.0}, r"adamw: b1 must lie in \[0, 1\)"),
    (fo.momentum, {"mu": 1.0}, r"momentum: mu must lie in \[0, 1\)"),
    (fo.nesterov, {"mu": -0.5}, r"nesterov: mu must lie in \[0, 1\)"),
    (fo.rmsprop, {"decay": 1.0}, r"rmsprop: decay must lie in \[0, 1\)"),
    (fo.adadelta, {"rho": 1.0}, r"adadelta: rho must lie in \[0, 1\)"),
    (fo.adam, {"eps": 0.0}, r"adam: eps must be > 0, got eps=0.0"),
    (fo.adagrad, {"eps": -1e-8}, r"adagrad: eps must be > 0"),
    (fo.rmsprop, {"eps": 0.0}, r"rmsprop: eps must be > 0"),
    (fo.adadelta, {"eps": 0.0}, r"adadelta: eps must be > 0"),
    (fo.adamax, {"eps": 0.0}, r"adamax: eps must be > 0"),
    (fo.adagrad, {"initial_accumulator_value": -1.0}, r"adagrad: initial_accumulator_value must be >= 0"),
    (fo.adamw, {"weight_decay": -1.0}, r"adamw: weight_decay must be >= 0"),
    (fo.delta_bar_delta, {"phi": 1.5}, r"delta_bar_delta: need phi < 1"),
])
def test_bad_hyper_parameters(rule, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rule(0.1, **kwargs)


def test_schedule_hyper_parameter_is_evaluated_at_the_step_counter():
    # sgd with lr(t) = 0.1 * (t + 1): the k-th update (k = 0, 1, ...) is -0.1 (k + 1) g.
    opt = fo.sgd(lambda t: 0.1 * (t + 1))
    state = opt.init(jnp.zeros(3))
    for k in range(4):
        u, state = opt.update(jnp.ones(3), state)
        np.testing.assert_allclose(u, -0.1 * (k + 1) * np.ones(3), rtol=1e-6)


def test_from_name_optax_and_unknown():
    f, params = problem()
    twin = fo.from_name("optax:adam", 0.05)
    assert isinstance(twin, optax.GradientTransformation)
    ours = fo.from_name("adam", 0.05)
    p1, s1 = params, ours.init(params)
    p2, s2 = params, twin.init(params)
    for _ in range(5):
        p1, s1 = make_step(ours, f)(p1, s1)
        u, s2 = twin.update(jax.grad(f)(p2), s2, p2)
        p2 = optax.apply_updates(p2, u)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'; valid names: adadelta, adagrad, adam,"):
        fo.from_name("adamm", 0.1)
    with pytest.raises(ValueError, match=r"unknown optax optimizer 'nope'; try one of .*optax:adam"):
        fo.from_name("optax:nope", 0.1)


def test_fnn_inside_optax_chain_and_optax_inside_fnn_chain():
    f, params = problem()
    grads = jax.grad(f)(params)
    reference = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9))
    mixed = [optax.chain(optax.clip_by_global_norm(1.0), fo.momentum(0.1, mu=0.9)),
             fo.chain(optax.clip_by_global_norm(1.0), fo.momentum(0.1, mu=0.9)),
             fo.chain(fnn.optimizers.transforms.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9))]
    states = [opt.init(params) for opt in mixed]
    ref_state = reference.init(params)
    for _ in range(3):
        ref_u, ref_state = reference.update(grads, ref_state, params)
        for i, opt in enumerate(mixed):
            u, states[i] = opt.update(grads, states[i], params)
            for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(ref_u)):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
        assert max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(ref_u)) > 0.05


def test_chain_forwards_extra_args_to_optax_linesearch():
    # optax's L-BFGS needs value=, grad=, value_fn= in update; fnn.chain passes them through.
    f, params = problem(jnp.float32)
    opt = fo.chain(optax.lbfgs(linesearch=optax.scale_by_backtracking_linesearch(max_backtracking_steps=15)))
    f0 = float(f(params))

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(f)(params)
        u, state = opt.update(grads, state, params, value=value, grad=grads, value_fn=f)
        return fo.apply_updates(params, u), state

    state = opt.init(params)
    for _ in range(10):
        params, state = step(params, state)
    assert float(f(params)) < 1e-5 * f0


def test_apply_updates_mismatch():
    with pytest.raises(ValueError, match="apply_updates: the gradient tree does not match the params tree"):
        fo.apply_updates({"a": jnp.ones(2)}, {"b": jnp.ones(2)})


def delta_bar_delta_numpy(x, grad, lr, steps, kappa=0.05, phi=0.95, theta=0.0, min_gain=0.1, max_gain=10.0):
    gain, bar = np.ones_like(x), np.zeros_like(x)
    for _ in range(steps):
        g = grad(x)
        for i in range(x.size):  # one weight at a time, as the rule is stated
            if g[i] * bar[i] > 0:
                gain[i] = min(gain[i] + kappa, max_gain)
            elif g[i] * bar[i] < 0:
                gain[i] = max(gain[i] * phi, min_gain)
            bar[i] = (1 - theta) * g[i] + theta * bar[i]
        x = x - lr * gain * g
    return x


@pytest.mark.parametrize("theta", [0.0, 0.7])
def test_delta_bar_delta_matches_numpy_loop(theta):
    with jax.enable_x64(True):
        h = np.array([1.0, 30.0, 3.0, 100.0])
        x0 = np.array([1.0, -1.0, 2.0, 0.5])
        opt = fo.delta_bar_delta(0.012, theta=theta)
        grad = jax.grad(lambda x: 0.5 * jnp.sum(h * x ** 2))
        x, state = jnp.asarray(x0), opt.init(jnp.asarray(x0))
        step = jax.jit(lambda x, s: (lambda u, s: (x + u, s))(*opt.update(grad(x), s, x)))
        for _ in range(60):
            x, state = step(x, state)
        expected = delta_bar_delta_numpy(x0, lambda x: h * x, 0.012, 60, theta=theta)
        np.testing.assert_allclose(np.asarray(x), expected, rtol=1e-12, atol=1e-14)
        assert np.any(np.asarray(state.gain) > 1.2) and np.any(np.asarray(state.gain) < 0.9)  # both branches


@pytest.mark.parametrize("module", [fnn.optimizers.base, fnn.optimizers.first_order, fnn.optimizers.adaptive,
                                    fnn.optimizers.second_order, fnn.optimizers.schedules, fnn.optimizers.transforms])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_lift_passes_hyper_parameters_by_name():
    seen = []

    def leaf(g, m, *, lr, b1):  # keyword-only: the order of the dict cannot permute them
        seen.append((lr, b1))
        return -lr * g + b1 * m, m + g

    grads = {"a": jnp.ones(2), "b": jnp.full(3, 2.0)}
    m = jax.tree.map(jnp.zeros_like, grads)
    u1, (m1,) = fo.lift("rule", leaf, grads, (m,), {"b1": 0.9, "lr": 0.1})
    u2, _ = fo.lift("rule", leaf, grads, (m,), {"lr": 0.1, "b1": 0.9})
    assert seen == [(0.1, 0.9)] * 4
    for a, b, g in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), jax.tree.leaves(grads)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, -0.1 * np.asarray(g), rtol=1e-7)
    np.testing.assert_array_equal(m1["b"], np.full(3, 2.0))
    with pytest.raises(TypeError, match="b1"):  # a missing hyper-parameter is named, never silently shifted
        fo.lift("rule", leaf, grads, (m,), {"lr": 0.1})
    # arrays (schedule values) are cast to each leaf's dtype; Python numbers stay weakly typed
    out, _ = fo.lift("rule", lambda g, *, lr: g * lr, jnp.ones(2, jnp.bfloat16), (), {"lr": jnp.asarray(0.5)})
    assert out.dtype == jnp.bfloat16


def test_adamw_is_adam_plus_decoupled_decay_by_composition():
    f, params = problem()
    mask = {"w": True, "b": False}
    adamw = fo.adamw(0.05, weight_decay=0.3, mask=mask)
    composed = fo.chain(fo.scale_by_adam(), fnn.optimizers.transforms.weight_decay(0.3, mask), fo.sgd(0.05))
    no_decay, adam = fo.adamw(0.05, weight_decay=0.0), fo.adam(0.05)
    states = [opt.init(params) for opt in (adamw, composed, no_decay, adam)]
    ps = [params] * 4
    for _ in range(5):
        for i, opt in enumerate((adamw, composed, no_decay, adam)):
            u, states[i] = opt.update(jax.grad(f)(ps[i]), states[i], ps[i])
            ps[i] = fo.apply_updates(ps[i], u)
    for a, b in zip(jax.tree.leaves(ps[0]), jax.tree.leaves(ps[1])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(ps[2]), jax.tree.leaves(ps[3])):
        np.testing.assert_array_equal(a, b)  # wd = 0: exactly Adam
    assert not np.allclose(ps[0]["w"], ps[3]["w"]) and np.array_equal(ps[0]["b"], ps[1]["b"])
    assert isinstance(states[0][0], fo.AdamState) and int(states[0][0].count) == 5
    with pytest.raises(ValueError, match=r"adamw: update needs params for the weight decay"):
        adamw.update(jax.grad(f)(params), adamw.init(params))


def test_adam_moment_block_matches_numpy_and_optax():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        gs = rng.normal(size=(6, 4))
        b1, b2, eps = 0.8, 0.95, 1e-8
        m = v = np.zeros(4)
        opt, twin = fo.scale_by_adam(b1, b2, eps), optax.scale_by_adam(b1, b2, eps)
        s, s_twin = opt.init(jnp.zeros(4)), twin.init(jnp.zeros(4))
        for t, g in enumerate(gs, start=1):
            got = fo.adam_moments(jnp.asarray(g), jnp.asarray(m), jnp.asarray(v), b1=b1, b2=b2,
                                  bc1=1 - b1 ** t, bc2=1 - b2 ** t)
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g ** 2
            m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
            for a, b in zip(got, (m, v, m_hat, v_hat)):
                np.testing.assert_allclose(a, b, rtol=1e-12)
            u, s = opt.update(jnp.asarray(g), s)
            u_twin, s_twin = twin.update(jnp.asarray(g), s_twin)
            np.testing.assert_allclose(u, m_hat / (np.sqrt(v_hat) + eps), rtol=1e-12)
            np.testing.assert_allclose(u, u_twin, rtol=1e-12)
