"""Step-by-step parity of every fnn rule with its optax twin, and the exact relationships where conventions differ.

Each case runs 100 steps of the fnn rule and of its optax twin from the same parameters, in one jitted
``lax.scan``, on (a) an ill-conditioned rotated quadratic (condition number 100), (b) the 4-D Rosenbrock
function, (c) a 64-16-10 tanh MLP with softmax cross-entropy on 256 scikit-learn digits, in float32 and float64.
"Agree" means ``|x_fnn - x_optax| <= tol * (|x_optax| + max|x_0|)`` leaf-wise: relative to the parameter
scale, with tol = 1e-5 (float32) and 1e-10 (float64).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

from fnn import optimizers as fo
from fnn.losses import weight_mask

STEPS = 100
TOL = {"float32": 1e-5, "float64": 1e-10}


# ------------------------------------------------------------------------------------------------ problems
def quadratic(dtype):
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    A = jnp.asarray(Q @ np.diag(np.logspace(0, 2, 8)) @ Q.T, dtype)
    b = jnp.asarray(rng.normal(size=8), dtype)
    return (lambda x: 0.5 * x @ A @ x - b @ x), jnp.asarray(rng.normal(size=8), dtype)


def rosenbrock(dtype):
    def f(x):
        return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    return f, jnp.asarray([-1.2, 1.0, -0.5, 0.8], dtype)


def mlp(dtype):
    digits = load_digits()
    X = jnp.asarray(digits.data[:256] / 16.0, dtype)
    Y = jax.nn.one_hot(digits.target[:256], 10, dtype=dtype)
    rng = np.random.default_rng(1)
    params = {"W1": jnp.asarray(rng.normal(size=(64, 16)) / 8.0, dtype), "b1": jnp.zeros(16, dtype),
              "W2": jnp.asarray(rng.normal(size=(16, 10)) / 4.0, dtype), "b2": jnp.zeros(10, dtype)}

    def f(p):
        h = jnp.tanh(X @ p["W1"] + p["b1"][None, :])
        logits = h @ p["W2"] + p["b2"][None, :]
        return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(logits), axis=-1))
    return f, params


PROBLEMS = {"quadratic": quadratic, "rosenbrock": rosenbrock, "mlp": mlp}

# learning rate per (family, problem): stable but far from trivial on each problem
LR = {"plain": {"quadratic": 0.01, "rosenbrock": 5e-4, "mlp": 0.5},
      "adaptive": {"quadratic": 0.03, "rosenbrock": 0.01, "mlp": 0.01},
      "lbfgs": {"quadratic": 0.5, "rosenbrock": 0.05, "mlp": 0.2}}

# name -> (family, fnn factory, optax factory); the factories take the learning rate. These are also the
# "settings that make them agree" documented in docs/optimizers.md.
TWINS = {
    "sgd": ("plain", fo.sgd, optax.sgd),
    "momentum": ("plain", lambda lr: fo.momentum(lr, mu=0.9), lambda lr: optax.sgd(lr, momentum=0.9)),
    "nesterov": ("plain", lambda lr: fo.nesterov(lr, mu=0.9),
                 lambda lr: optax.sgd(lr, momentum=0.9, nesterov=True)),
    "adagrad": ("adaptive", lambda lr: fo.adagrad(lr, eps=1e-7, initial_accumulator_value=0.1, eps_in_sqrt=True),
                optax.adagrad),
    "rmsprop": ("adaptive", lambda lr: fo.rmsprop(lr, decay=0.9, eps=1e-8),
                lambda lr: optax.rmsprop(lr, decay=0.9, eps=1e-8, eps_in_sqrt=False)),
    "adadelta": ("adaptive", lambda lr: fo.adadelta(100 * lr, rho=0.9, eps=1e-6),
                 lambda lr: optax.adadelta(100 * lr, rho=0.9, eps=1e-6)),
    "adam": ("adaptive", fo.adam, optax.adam),
    "adamw": ("adaptive", lambda lr: fo.adamw(lr, weight_decay=0.1),
              lambda lr: optax.adamw(lr, weight_decay=0.1, mask=weight_mask)),
    "adamw_decay_all": ("adaptive", lambda lr: fo.adamw(lr, weight_decay=0.1, mask=True),
                        lambda lr: optax.adamw(lr, weight_decay=0.1)),
    "adamax": ("adaptive", fo.adamax, optax.adamax),
    "nadam": ("adaptive", fo.nadam, optax.nadam),
    "lbfgs": ("lbfgs", lambda lr: fo.lbfgs(lr, memory_size=5),
              lambda lr: optax.lbfgs(lr, memory_size=5, linesearch=None)),
}


def run_pairs(pairs, f, x0, steps=STEPS, linesearch=False):
    """``steps`` steps of each (fnn, optax) pair from x0, all in one jit and one scan (one compilation).

    Returns a list of ``(x_fnn, x_optax, f(x_fnn), f(x_optax))``, one per pair.
    """
    grad = jax.grad(f)

    def step(carry, _):
        new = []
        for (opt_a, opt_b), ((xa, sa), (xb, sb)) in zip(pairs, carry):
            ua, sa = opt_a.update(grad(xa), sa, xa)
            gb = grad(xb)
            if linesearch:
                ub, sb = opt_b.update(gb, sb, xb, value=f(xb), grad=gb, value_fn=f)
            else:
                ub, sb = opt_b.update(gb, sb, xb)
            new.append(((fo.apply_updates(xa, ua), sa), (optax.apply_updates(xb, ub), sb)))
        return new, None

    # XLA's backend optimisation level 0 halves the compile time of this long program; both sides of every
    # pair are compiled alike, so the comparison is unaffected.
    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def run(x0):
        carry = [((x0, a.init(x0)), (x0, b.init(x0))) for a, b in pairs]
        carry, _ = jax.lax.scan(step, carry, None, steps)
        return [(xa, xb, f(xa), f(xb)) for (xa, _), (xb, _) in carry]

    return run(x0)


@functools.cache
def parity_runs(problem, dtype):
    """All TWINS on one problem and dtype, as NumPy: ``(x0, {name: (x_fnn, x_optax, f_fnn, f_optax)}, f(x0))``."""
    with jax.enable_x64(dtype == "float64"):
        f, x0 = PROBLEMS[problem](dtype)
        pairs = []
        for family, make_fnn, make_optax in TWINS.values():
            lr = LR[family][problem]
            pairs.append((make_fnn(lr), make_optax(lr)))
        out = run_pairs(pairs, f, x0)
        to_np = lambda tree: jax.tree.map(np.asarray, tree)
        return to_np(x0), dict(zip(TWINS, to_np(out))), float(f(x0))


def assert_agree(xa, xb, x0, tol):
    scale = max(float(np.max(np.abs(v))) for v in jax.tree.leaves(x0))
    for a, b in zip(jax.tree.leaves(xa), jax.tree.leaves(xb)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
        np.testing.assert_array_less(np.abs(a - b), tol * (np.abs(b) + scale) + 1e-300)


def _moved(x0, x):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(x0), jax.tree.leaves(x)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("name", list(TWINS))
def test_parity_with_optax(name, problem, dtype):
    x0, runs, f0 = parity_runs(problem, dtype)
    xa, xb, fa, fb = runs[name]
    assert all(v.dtype == np.dtype(dtype) for v in jax.tree.leaves(xa))
    assert _moved(x0, xb) > 1e3 * TOL[dtype]  # a real trajectory, not a no-op
    assert fb < f0  # and a descending one
    assert_agree(xa, xb, x0, TOL[dtype])


# ------------------------------------------------------------------------------------------------ conventions
def one_update(opt, g, params=None):
    params = jnp.zeros_like(g) if params is None else params
    u, _ = opt.update(g, opt.init(params), params)
    return np.asarray(u, np.float64)


def test_adagrad_defaults_differ_from_optax_as_documented():
    # fnn (lecture): cache0 = 0, eps outside the root; optax: cache0 = 0.1, eps = 1e-7 inside the root.
    with jax.enable_x64(True):
        g = jnp.asarray([1e-3, -0.2, 3.0])
        lr = 0.1
        gn = np.asarray(g)
        ours, theirs = one_update(fo.adagrad(lr), g), one_update(optax.adagrad(lr), g)
        np.testing.assert_allclose(ours, -lr * gn / (np.abs(gn) + 1e-8), rtol=1e-14)
        np.testing.assert_allclose(theirs, -lr * gn / np.sqrt(gn ** 2 + 0.1 + 1e-7), rtol=1e-14)
        assert abs(ours[0]) > 100 * abs(theirs[0])  # the small gradient: ~lr vs ~lr * g / sqrt(0.1)


def test_rmsprop_eps_placement_relationship():
    # fnn: g / (sqrt(c) + eps); optax's default: g / sqrt(c + eps). One step from c = 0: c = (1 - d) g^2.
    with jax.enable_x64(True):
        g = jnp.asarray([1e-5, 0.5])
        gn, lr, d, eps = np.asarray(g), 0.01, 0.9, 1e-8
        c = (1 - d) * gn ** 2
        np.testing.assert_allclose(one_update(fo.rmsprop(lr, d, eps), g), -lr * gn / (np.sqrt(c) + eps), rtol=1e-13)
        np.testing.assert_allclose(one_update(optax.rmsprop(lr, d, eps), g), -lr * gn / np.sqrt(c + eps),
                                   rtol=1e-13)


def _lr_schedule(t):
    return 0.02 / (1.0 + 0.05 * t)


@pytest.mark.parametrize("rule,nesterov", [(fo.momentum, False), (fo.nesterov, True)])
def test_momentum_under_schedule_relationship(rule, nesterov):
    """Under a schedule fnn's velocity scales only the newest gradient: its exact optax twin is
    chain(scale_by_schedule(-lr), trace(mu)); optax.sgd(schedule, momentum) rescales the whole trace."""
    with jax.enable_x64(True):
        f, x0 = quadratic("float64")
        twin = optax.chain(optax.scale_by_schedule(lambda t: -_lr_schedule(t)), optax.trace(0.9, nesterov=nesterov))
        alias = optax.sgd(_lr_schedule, momentum=0.9, nesterov=nesterov)
        ours = rule(_lr_schedule, mu=0.9)
        (xa, xb, _, _), (xc, xd, _, _) = run_pairs([(ours, twin), (ours, alias)], f, x0)
        assert_agree(xa, xb, x0, 1e-10)
        assert np.max(np.abs(np.asarray(xc) - np.asarray(xd))) > 1e-4  # the documented difference is real


def test_nesterov_rewrite_equals_optax_nesterov_algebraically():
    # One step from a non-zero velocity: fnn's -mu v_prev + (1 + mu) v equals optax's -lr (g + mu t) with v = -lr t.
    with jax.enable_x64(True):
        lr, mu = 0.1, 0.9
        g, t_prev = jnp.asarray([0.3, -2.0]), jnp.asarray([1.0, 0.5])
        ours = fo.nesterov(lr, mu)
        u, _ = ours.update(g, fo.MomentumState(count=jnp.asarray(3, jnp.int32), v=-lr * t_prev))
        expected = -lr * (np.asarray(g) + mu * (np.asarray(g) + mu * np.asarray(t_prev)))
        np.testing.assert_allclose(u, expected, rtol=1e-14)


def test_nesterov_matches_the_lecture_rewrite_numpy_loop():
    # v_prev = v; v = mu v - lr g; x += -mu v_prev + (1 + mu) v, written literally in NumPy.
    with jax.enable_x64(True):
        f, x0 = quadratic("float64")
        grad = jax.jit(jax.grad(f))
        x, v = np.asarray(x0), np.zeros(8)
        for _ in range(STEPS):
            v_prev = v
            v = 0.9 * v - 0.01 * np.asarray(grad(x))
            x = x + (-0.9 * v_prev + (1 + 0.9) * v)
        [(ours, *_)] = run_pairs([(fo.nesterov(0.01, 0.9), fo.sgd(0.01))], f, x0)
        assert_agree(ours, x, x0, 1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_lbfgs_with_line_search_matches_optax_backtracking(problem, dtype):
    with jax.enable_x64(dtype == "float64"):
        f, x0 = PROBLEMS[problem](dtype)
        ours = fo.lbfgs(1.0, memory_size=5, fun=f, max_backtracking_steps=15)
        theirs = optax.lbfgs(None, memory_size=5,
                             linesearch=optax.scale_by_backtracking_linesearch(max_backtracking_steps=15))
        [(xa, xb, fa, fb)] = run_pairs([(ours, theirs)], f, x0, linesearch=True)
        assert float(fb) < 1e-3 * float(f(x0))
        if problem == "mlp" and dtype == "float32" and jax.default_backend() != "cpu":
            # Seen on an H100 (docs/benchmarks.md): the GPU's reduction order flips one backtracking decision on
            # the non-convex MLP and the two float32 paths part; float64 and every CPU run agree to 1e-5.
            pytest.xfail("float32 L-BFGS line search on the MLP is order-sensitive on GPUs")
        assert_agree(xa, xb, x0, TOL[dtype])
