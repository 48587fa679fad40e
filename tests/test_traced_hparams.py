"""Traced hyper-parameters: every fnn rule, transform and schedule built from traced values or 0-d arrays.

Four ways a hyper-parameter stops being a Python number: a rule built inside ``jit`` from an argument (jax's
``testTracedStepSize``), inside ``vmap`` over a batch of rates, ``optax.inject_hyperparams`` (every number becomes
a 0-d array in the state, traced inside the jitted update) and ``fit`` with such an optimizer. Each case is compared
with the same computation from Python numbers, or with optax's twin (``TWINS`` of tests/test_optax_parity.py).
"""
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_optax_parity import LR, TWINS, assert_agree, quadratic

from fnn import layers, losses
from fnn import optimizers as fo
from fnn.data import load_digits
from fnn.optimizers import schedules as fs
from fnn.optimizers import transforms as ft
from fnn.train import fit

STEPS = 5
# stable rates on the quadratic (condition number 100): the parity tests' rates; adadelta at its default 1
RATE = {name: LR[TWINS[name][0]]["quadratic"] for name in fo.RULES if name in TWINS}
RATE |= {"delta_bar_delta": 0.01, "adadelta": 1.0, "bfgs": 0.5}
# momentum and nesterov agree with optax.sgd(lr, momentum=mu) only for a constant lr; under a changing lr their
# exact twins are the ones their docstrings name (the rate scales the newest gradient, not the whole trace)
CHANGING_RATE_TWIN = {"momentum": lambda lr: optax.chain(optax.scale(-lr), optax.trace(0.9)),
                      "nesterov": lambda lr: optax.chain(optax.scale(-lr), optax.trace(0.9, nesterov=True))}
F, X0 = quadratic("float32")


def run(opt, steps=STEPS, f=F, x0=X0):
    """``steps`` steps of ``opt`` on ``f`` from ``x0``; the final parameters."""
    x, s = x0, opt.init(x0)
    for _ in range(steps):
        u, s = opt.update(jax.grad(f)(x), s, x)
        x = fo.apply_updates(x, u)
    return x


def close(a, b, rtol=1e-5):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=1e-6)


def moved(x):
    assert float(jnp.max(jnp.abs(x - X0))) > 1e-3  # the run did something, so equality means something


# ------------------------------------------------------------------------------- 1. built inside jit, traced lr
@pytest.mark.parametrize("name", sorted(fo.RULES))
def test_traced_step_size(name):
    rule, lr = fo.RULES[name], RATE[name]
    traced = jax.jit(lambda lr: run(rule(lr)))(jnp.float32(lr))
    concrete = jax.jit(lambda: run(rule(lr)))()
    moved(concrete)
    close(traced, concrete)


def test_every_float_hyperparameter_traced():
    """delta_bar_delta, lbfgs with its line search, newton, scale_by_adam and the transforms: all floats traced."""
    key = jax.random.key(3)
    cases = {
        "delta_bar_delta": (lambda *h: fo.delta_bar_delta(*h), (0.01, 0.1, 0.7, 0.3, 0.2, 5.0)),
        "lbfgs": (lambda lr, c1, shrink, grow: fo.lbfgs(lr, 3, F, 10, c1, shrink, grow), (1.0, 1e-3, 0.5, 1.2)),
        "newton": (lambda lr, d: fo.newton(F, lr, d), (0.5, 1e-2)),
        "scale_by_adam": (lambda b1, b2, eps, lr: fo.chain(fo.scale_by_adam(b1, b2, eps), fo.sgd(lr)),
                          (0.8, 0.99, 1e-6, 0.05)),
        "clip_by_global_norm": (lambda m, lr: fo.chain(ft.clip_by_global_norm(m), fo.sgd(lr)), (1.0, 0.05)),
        "clip_by_value": (lambda m, lr: fo.chain(ft.clip_by_value(m), fo.sgd(lr)), (0.5, 0.05)),
        "weight_decay": (lambda r, lr: fo.chain(ft.weight_decay(r, mask=True), fo.sgd(lr)), (0.5, 0.02)),
        "gradient_noise": (lambda e, g, lr: fo.chain(ft.gradient_noise(key, e, g), fo.sgd(lr)), (0.1, 0.55, 0.02)),
        "average_params": (lambda d, lr: fo.chain(fo.sgd(lr), ft.average_params(d)), (0.9, 0.02)),
    }
    for name, (make, h) in cases.items():
        traced = jax.jit(lambda *a: run(make(*a)))(*map(jnp.float32, h))
        concrete = jax.jit(lambda: run(make(*h)))()
        moved(concrete)
        close(traced, concrete, rtol=1e-4)
    # the EMA of the iterates itself (kept in the state, not in the parameters), with a traced decay

    def average(d):
        opt = fo.chain(fo.sgd(0.02), ft.average_params(d))
        x, s = X0, opt.init(X0)
        for _ in range(STEPS):
            u, s = opt.update(jax.grad(F)(x), s, x)
            x = fo.apply_updates(x, u)
        return s[1].average

    concrete = jax.jit(lambda: average(0.9))()
    moved(concrete)
    close(jax.jit(average)(jnp.float32(0.9)), concrete)


# ------------------------------------------------------------------------------- 2. inject_hyperparams vs optax
def _rate_key(factory):
    return next(iter(inspect.signature(factory).parameters))


@pytest.mark.parametrize("name", sorted(TWINS))
def test_inject_hyperparams_matches_optax_twin_one_trace(name):
    family, make_fnn, make_optax = TWINS[name]
    make_optax = CHANGING_RATE_TWIN.get(name, make_optax)
    lr = LR[family]["quadratic"]
    a, b = optax.inject_hyperparams(make_fnn)(lr), optax.inject_hyperparams(make_optax)(lr)
    ka, kb = _rate_key(make_fnn), _rate_key(make_optax)
    traces = []

    @jax.jit
    def step(xa, sa, xb, sb):
        traces.append(1)  # Python side effect: runs once per trace
        ua, sa = a.update(jax.grad(F)(xa), sa, xa)
        ub, sb = b.update(jax.grad(F)(xb), sb, xb)
        return fo.apply_updates(xa, ua), sa, optax.apply_updates(xb, ub), sb

    xa, sa, xb, sb = X0, a.init(X0), X0, b.init(X0)
    for factor in (1.0, 0.5, 2.0, 0.0, 1.0, 0.25):
        for s, k in ((sa, ka), (sb, kb)):  # same dtype as init stored, so no retrace
            s.hyperparams[k] = jnp.asarray(lr * factor, s.hyperparams[k].dtype)
        xa, sa, xb, sb = step(xa, sa, xb, sb)
    assert len(traces) == 1, f"{name}: traced {len(traces)} times for 6 steps"
    moved(xa)
    assert_agree(xa, xb, X0, 1e-5)


def test_inject_hyperparams_direct_rules_all_hypers():
    """The rules themselves (not TWINS' lambdas): every numeric default is injected and traced."""
    for rule in (fo.sgd, fo.adam, fo.adamax, fo.nadam, fo.rmsprop, fo.adagrad, fo.delta_bar_delta):
        opt = optax.inject_hyperparams(rule)(learning_rate=0.03)
        step = jax.jit(lambda x, s: opt.update(jax.grad(F)(x), s, x))
        x, s = X0, opt.init(X0)
        for _ in range(STEPS):
            u, s = step(x, s)
            x = fo.apply_updates(x, u)
        close(x, jax.jit(lambda: run(rule(0.03)))())


def test_inject_hyperparams_lbfgs_static_sizes():
    make = optax.inject_hyperparams(fo.lbfgs, static_args=("memory_size", "max_backtracking_steps"))
    opt, twin = make(0.5, memory_size=3), optax.inject_hyperparams(optax.lbfgs, static_args=("memory_size",))(
        0.5, memory_size=3, linesearch=None)
    assert set(opt.init(X0).hyperparams) == {"learning_rate", "c1", "shrink", "grow"}
    step = jax.jit(lambda x, s: opt.update(jax.grad(F)(x), s, x))
    x, s = X0, opt.init(X0)
    for _ in range(STEPS):
        u, s = step(x, s)
        x = fo.apply_updates(x, u)
    moved(x)
    assert_agree(x, run(twin), X0, 1e-5)
    # without static_args the sizes are 0-d int arrays: fine eagerly (converted with int()), refused when traced
    eager = optax.inject_hyperparams(fo.lbfgs)(0.5, memory_size=3)
    close(run(eager), x)
    with pytest.raises(ValueError, match=r"lbfgs: memory_size sets array shapes and loop bounds and cannot be "
                       r"traced.*static_args=\(\"memory_size\", \"max_backtracking_steps\"\)"):
        jax.jit(lambda x, s: eager.update(x, s, x))(X0, eager.init(X0))
    with pytest.raises(ValueError, match="lbfgs: max_backtracking_steps sets array shapes"):
        jax.jit(lambda n: fo.lbfgs(0.5, 3, F, n))(4)


# ------------------------------------------------------------------------------- 3. vmap over learning rates
@pytest.mark.parametrize("name", sorted(fo.RULES))
def test_vmap_over_learning_rates_equals_loop(name):
    rule, lr = fo.RULES[name], RATE[name]
    lrs = np.asarray([0.5 * lr, lr, 1.5 * lr], np.float32)
    batched = jax.jit(jax.vmap(lambda lr: run(rule(lr))))(jnp.asarray(lrs))
    looped = [jax.jit(lambda: run(rule(float(r))))() for r in lrs]
    assert float(jnp.max(jnp.abs(looped[0] - looped[2]))) > 1e-4  # the rate matters
    for i, x in enumerate(looped):
        close(batched[i], x, rtol=1e-4)


def test_vmap_over_delta_bar_delta_phi():
    phis = jnp.asarray([0.5, 0.7, 0.9])
    batched = jax.vmap(lambda phi: run(fo.delta_bar_delta(0.01, phi=phi), steps=8))(phis)
    for i, phi in enumerate([0.5, 0.7, 0.9]):
        close(batched[i], run(fo.delta_bar_delta(0.01, phi=phi), steps=8), rtol=1e-4)


# ------------------------------------------------------------------------------- 4. fit reads the injected rate
def test_fit_with_inject_hyperparams_adam():
    X, y = load_digits()
    X, y = X[:120], y[:120]
    model = layers.mlp([8, 10], layers.Tanh)
    _, params = model.init(jax.random.key(0), (-1, 64))
    loss = losses.softmax_cross_entropy_with_integer_labels
    kw = dict(epochs=2, batch_size=40, key=jax.random.key(1), verbose=False)
    injected = fit(model.apply, params, optax.inject_hyperparams(fo.adam)(learning_rate=1e-2), loss, X, y, **kw)
    plain = fit(model.apply, params, fo.adam(1e-2), loss, X, y, **kw)
    close(injected.params, plain.params, rtol=1e-5)
    np.testing.assert_allclose(injected.history["lr"], [1e-2, 1e-2], rtol=1e-6)
    assert float(jnp.max(jnp.abs(injected.params[0].W - params[0].W))) > 1e-3

    # change the rate in the state and continue: the same as plain adam at the new rate from the inner state
    state = injected.opt_state
    state.hyperparams["learning_rate"] = jnp.asarray(3e-3, state.hyperparams["learning_rate"].dtype)
    kw["epochs"] = 1
    more = fit(model.apply, injected.params, optax.inject_hyperparams(fo.adam)(learning_rate=1e-2), loss, X, y,
               opt_state=state, **kw)
    ref = fit(model.apply, injected.params, fo.adam(3e-3), loss, X, y, opt_state=state.inner_state, **kw)
    close(more.params, ref.params, rtol=1e-5)
    np.testing.assert_allclose(more.history["lr"], [3e-3], rtol=1e-6)
    assert float(jnp.max(jnp.abs(more.params[0].W - injected.params[0].W))) > 1e-4


# ------------------------------------------------------------------------------- 5. the checks still fire
def test_concrete_errors_keep_their_messages():
    with pytest.raises(ValueError, match=r"delta_bar_delta: need phi < 1 and min_gain <= 1 <= max_gain, got "
                       r"phi=0.5, min_gain=2.0, max_gain=10.0"):
        fo.delta_bar_delta(0.01, phi=0.5, min_gain=2.0)
    with pytest.raises(ValueError, match=r"delta_bar_delta: need phi < 1 .* got phi=1.5"):
        fo.delta_bar_delta(0.01, phi=jnp.asarray(1.5))  # a concrete 0-d array is still checked
    with pytest.raises(ValueError, match="delta_bar_delta: kappa must be > 0"):
        fo.delta_bar_delta(0.01, kappa=jnp.asarray(-1.0))
    with pytest.raises(ValueError, match=r"lbfgs: need memory_size >= 1, .* got memory_size=0"):
        fo.lbfgs(0.5, memory_size=0)
    with pytest.raises(ValueError, match=r"lbfgs: need .* got memory_size=0"):
        fo.lbfgs(0.5, memory_size=jnp.asarray(0))  # 0-d int arrays are read as ints, then checked
    with pytest.raises(ValueError, match=r"lbfgs: need .* shrink=1.5"):
        fo.lbfgs(0.5, shrink=jnp.asarray(1.5))
    with pytest.raises(ValueError, match=r"lbfgs: memory_size must be a positive integer"):
        fo.lbfgs(0.5, memory_size=jnp.asarray(3.0))  # a float array is not a size
    with pytest.raises(ValueError, match=r"lbfgs: memory_size sets array shapes .* got a traced memory_size"):
        jax.jit(lambda m: fo.lbfgs(0.5, m))(3)
    with pytest.raises(ValueError, match="piecewise_constant: need increasing boundaries"):
        fs.piecewise_constant(jnp.asarray([20, 10]), [1.0, 0.1, 0.01])


# ------------------------------------------------------------------------------- 6. schedules, traced arguments
SCHEDULES = {
    "constant": (fs.constant, (0.1,)),
    "step_decay": (fs.step_decay, (1.0, 10, 0.5)),
    "exponential": (fs.exponential, (1.0, 0.1)),
    "inverse_time": (fs.inverse_time, (1.0, 0.5)),
    "piecewise_constant": (lambda b1, b2, v0, v1, v2: fs.piecewise_constant([b1, b2], [v0, v1, v2]),
                           (10, 20, 1.0, 0.1, 0.01)),
    "cosine": (fs.cosine, (1.0, 30, 0.1)),
    "linear_warmup": (fs.linear_warmup, (1.0, 10, 0.1)),
    "momentum_annealing": (fs.momentum_annealing, (10, 0.99)),
    "join": (lambda a, w, b: fs.join([fs.linear_warmup(a, w), fs.cosine(a, 20)], [b]), (1.0, 5, 5)),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_with_traced_arguments(name):
    make, args = SCHEDULES[name]
    steps = jnp.arange(0, 40, 3)
    traced = jax.jit(lambda *a: jax.vmap(make(*a))(steps))(*args)  # ints stay int32, floats float32: all traced
    concrete = np.asarray([float(make(*args)(int(t))) for t in steps])
    np.testing.assert_allclose(np.asarray(traced), concrete, rtol=1e-6, atol=1e-7)
    assert name == "constant" or np.ptp(concrete) > 0  # the schedule varies over these steps


def test_schedule_inside_a_rule_with_traced_arguments():
    make = lambda lr, every: fo.momentum(fs.step_decay(lr, every), mu=0.9)
    traced = jax.jit(lambda lr, every: run(make(lr, every), steps=6))(jnp.float32(0.03), 2)
    close(traced, jax.jit(lambda: run(make(0.03, 2), steps=6))())
