"""The rest of the lecture's optimizers (issue 14): BFGS (against SciPy, a NumPy loop of the textbook update and the
quadratic-termination property), Newton with damping = 0, the full-batch warning of ``fit``, RMSProp with eps inside
the root (against optax) and Adam without bias correction (against a NumPy loop)."""
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

from fnn import layers, losses
from fnn import optimizers as fo
from fnn.data import load_digits
from fnn.train import fit


def rosen(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def convex_quadratic(n=6, seed=0):
    """``f = 1/2 x^T A x - b^T x`` with a random SPD ``A`` (condition number ~10), and a start ``x0``."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n))
    A, b = M @ M.T + n * np.eye(n), rng.normal(size=n)
    return A, b, (lambda x: 0.5 * x @ jnp.asarray(A) @ x - jnp.asarray(b) @ x), rng.normal(size=n)


def minimise(opt, f, x, max_steps, gtol=1e-10):
    """Steps of ``opt`` until ``|grad f| < gtol``: (x, state, number of steps)."""
    step = jax.jit(lambda x, s: (lambda u, s: (fo.apply_updates(x, u), s))(*opt.update(jax.grad(f)(x), s, x)))
    state = opt.init(x)
    for k in range(1, max_steps + 1):
        x, state = step(x, state)
        if np.linalg.norm(np.asarray(jax.grad(f)(x))) < gtol:
            return x, state, k
    return x, state, max_steps


# ----------------------------------------------------------------------------------------------------------- BFGS
@pytest.mark.parametrize("problem", ["rosenbrock-2", "rosenbrock-4", "quadratic"])
def test_bfgs_reaches_scipy_bfgs_minimiser_in_a_similar_number_of_iterations(problem):
    with jax.enable_x64(True):
        if problem == "quadratic":
            _, _, f, x0 = convex_quadratic()
        else:
            f, x0 = rosen, np.array([-1.2, 1.0, -0.5, 0.8][:int(problem[-1])])
        ref = scipy.optimize.minimize(lambda x: float(f(x)), x0, jac=lambda x: np.asarray(jax.grad(f)(x)),
                                      method="BFGS", options={"gtol": 1e-10})
        # The quadratic's gradient floor: Armijo backtracking compares values of f (~1 at the minimum), so it stalls
        # where f's decrease falls under float64 rounding: |g| 2.4e-11 with XLA's default CPU code generation,
        # 8.2e-10 under the suite's LLVM -O0 (tests/conftest.py). SciPy's Wolfe search also uses the gradient.
        gtol = 1e-9 if problem == "quadratic" else 1e-10
        x, state, steps = minimise(fo.bfgs(fun=f), f, jnp.asarray(x0), 200, gtol)
        np.testing.assert_allclose(np.asarray(x), ref.x, atol=1e-6)
        assert np.linalg.norm(np.asarray(jax.grad(f)(x))) < gtol
        # SciPy: 34 / 36 / 13 iterations with a Wolfe line search; fnn's Armijo backtracking: 46 / 48 / 11
        assert steps <= 1.5 * ref.nit + 5, (steps, ref.nit)


def test_bfgs_inverse_hessian_is_exact_after_n_exact_line_searches():
    """Quadratic termination: on an n-D quadratic, n BFGS steps with exact line searches give H = A^{-1}."""
    with jax.enable_x64(True):
        n = 6
        A, b, f, x0 = convex_quadratic(n, seed=1)
        opt = fo.bfgs()
        x, state = jnp.asarray(x0), opt.init(jnp.asarray(x0))
        for _ in range(n):
            g = jax.grad(f)(x)
            d, state = opt.update(g, state, x)
            x = x - (g @ d) / (d @ jnp.asarray(A) @ d) * d   # exact line search along d: argmin_a f(x + a d)
        _, state = opt.update(jax.grad(f)(x), state, x)   # the update that takes in the n-th pair
        assert int(state.skipped) == 0
        np.testing.assert_allclose(np.asarray(state.H), np.linalg.inv(A), atol=1e-8, rtol=0)
        np.testing.assert_allclose(np.asarray(x), np.linalg.solve(A, b), atol=1e-8)   # and x is the minimiser


def bfgs_numpy(f_grad, x, steps, lr):
    """Textbook BFGS with fixed steps: H = (I - rho s y^T) H (I - rho y s^T) + rho s s^T (matrix products),
    H0 = <y, s>/<y, y> I before the first update (N&W eq. 6.20), first direction -lr min(1, 1/|g|) g."""
    n, H, hist = x.size, np.eye(x.size), []
    x_prev = g_prev = None
    for k in range(steps):
        g = f_grad(x)
        if k > 0:
            s, y = x - x_prev, g - g_prev
            if y @ s > 0:
                if k == 1:
                    H = (y @ s) / (y @ y) * np.eye(n)
                rho = 1.0 / (y @ s)
                H = (np.eye(n) - rho * np.outer(s, y)) @ H @ (np.eye(n) - rho * np.outer(y, s)) + rho * np.outer(s, s)
        scale = min(1.0, 1.0 / np.linalg.norm(g)) if k == 0 else 1.0
        x_prev, g_prev = x, g
        x = x - lr * scale * (H @ g)
        hist.append((x.copy(), H.copy()))
    return hist


def test_bfgs_fixed_steps_match_a_numpy_loop_of_the_textbook_update():
    with jax.enable_x64(True):
        _, _, f, x0 = convex_quadratic(5, seed=2)
        opt = fo.bfgs(0.7)
        x, state = jnp.asarray(x0), opt.init(jnp.asarray(x0))
        ref = bfgs_numpy(lambda v: np.asarray(jax.grad(f)(jnp.asarray(v))), x0, 12, 0.7)
        for x_ref, H_ref in ref:
            u, state = opt.update(jax.grad(f)(x), state, x)
            x = fo.apply_updates(x, u)
            np.testing.assert_allclose(np.asarray(x), x_ref, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(np.asarray(state.H), H_ref, rtol=1e-9, atol=1e-12)
        assert np.linalg.norm(np.asarray(x) - x0) > 0.1   # it moved


def test_bfgs_skips_pairs_without_positive_curvature():
    # on the concave f = -|x|^2 / 2 every pair has y = -s, <y, s> < 0: H stays I and every pair is counted
    with jax.enable_x64(True):
        f = lambda x: -0.5 * jnp.sum(x ** 2)   # noqa: E731
        opt = fo.bfgs(0.1)
        x, state = jnp.asarray([1.0, -2.0, 0.5]), opt.init(jnp.zeros(3))
        for _ in range(4):
            u, state = opt.update(jax.grad(f)(x), state, x)
            x = fo.apply_updates(x, u)
        assert int(state.skipped) == 3 and bool(jnp.all(jnp.isfinite(x)))
        np.testing.assert_array_equal(np.asarray(state.H), np.eye(3))


def test_bfgs_pytree_float32_jit_equals_eager_and_traced_hyper_parameters():
    A, b, _, x0 = convex_quadratic(5, seed=3)
    f = lambda p: 0.5 * jnp.concatenate([p["w"].ravel(), p["b"]]) @ jnp.asarray(A, jnp.float32) @ \
        jnp.concatenate([p["w"].ravel(), p["b"]]) - jnp.asarray(b, jnp.float32) @ jnp.concatenate([p["w"].ravel(), p["b"]])  # noqa: E731,E501
    p0 = {"w": jnp.asarray(x0[:4].reshape(2, 2), jnp.float32), "b": jnp.asarray(x0[4:], jnp.float32)}

    def run(lr, c1, shrink, grow, steps=6):
        opt, p = fo.bfgs(lr, f, 10, c1, shrink, grow), p0
        s = opt.init(p)
        for _ in range(steps):
            u, s = opt.update(jax.grad(f)(p), s, p)
            p = fo.apply_updates(p, u)
        return p, s

    eager, s = run(1.0, 1e-4, 0.8, 1.5)
    assert jax.tree.map(lambda v: v.dtype, eager) == jax.tree.map(lambda v: v.dtype, p0) and s.H.dtype == jnp.float32
    traced, _ = jax.jit(run)(*map(jnp.float32, (1.0, 1e-4, 0.8, 1.5)))
    for a, c in zip(jax.tree.leaves(eager), jax.tree.leaves(traced)):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)
    assert float(f(eager)) < float(f(p0)) - 1.0


@pytest.mark.parametrize("make,error,message", [
    (lambda: fo.bfgs(0.0), ValueError, r"bfgs: learning_rate must be > 0, got learning_rate=0.0"),
    (lambda: fo.bfgs(shrink=1.5), ValueError, r"bfgs: need 0 < c1 < 1, 0 < shrink < 1 and grow >= 1; got .*"
                                              r"shrink=1.5"),
    (lambda: fo.bfgs(max_backtracking_steps=-1), ValueError, r"bfgs: max_backtracking_steps must be an integer"),
    (lambda: fo.bfgs().update(jnp.zeros(2), fo.bfgs().init(jnp.zeros(2))), ValueError, r"bfgs: update needs params"),
    (lambda: fo.bfgs().update(jnp.zeros(2), fo.lbfgs().init(jnp.zeros(2)), jnp.zeros(2)), TypeError,
     r"bfgs: expected the BfgsState that bfgs's init returns, got LbfgsState"),
])
def test_bfgs_errors_say_what_and_how(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ------------------------------------------------------------------------------------------- Newton, damping = 0
def test_newton_without_damping_lands_on_the_minimiser_of_a_quadratic_in_one_step():
    with jax.enable_x64(True):
        A, b, f, x0 = convex_quadratic(5, seed=4)
        opt = fo.newton(f, damping=0.0)
        u, _ = opt.update(jax.grad(f)(jnp.asarray(x0)), opt.init(jnp.asarray(x0)), jnp.asarray(x0))
        np.testing.assert_allclose(x0 + np.asarray(u), np.linalg.solve(A, b), rtol=1e-10, atol=1e-12)
        # a traced damping of 0 takes the same branch
        traced = jax.jit(lambda d: fo.newton(f, damping=d).update(jax.grad(f)(jnp.asarray(x0)), opt.init(x0),
                                                                    jnp.asarray(x0))[0])(0.0)
        np.testing.assert_allclose(np.asarray(traced), np.asarray(u), rtol=1e-12)


def test_newton_without_damping_on_a_singular_hessian_takes_the_pseudo_inverse_step():
    # f = (x0 + x1)^2 + x2: H = [[2, 2, 0], [2, 2, 0], [0, 0, 0]] (rank 1); LU would give inf/nan
    with jax.enable_x64(True):
        f = lambda x: (x[0] + x[1]) ** 2 + x[2]   # noqa: E731
        x = jnp.asarray([1.0, 2.0, 3.0])
        u, _ = fo.newton(f, damping=0.0).update(jax.grad(f)(x), fo.newton(f).init(x), x)
        H, g = np.asarray(jax.hessian(f)(x)), np.asarray(jax.grad(f)(x))
        assert np.all(np.isfinite(np.asarray(u)))
        np.testing.assert_allclose(np.asarray(u), -np.linalg.pinv(H) @ g, atol=1e-12)
        np.testing.assert_allclose(np.asarray(u), [-1.5, -1.5, 0.0], atol=1e-12)   # x0 + x1 -> 0, x2 untouched
        assert not np.all(np.isfinite(np.asarray(jnp.linalg.solve(jnp.asarray(H), g))))   # what LU alone gives


def test_newton_refuses_negative_damping():
    with pytest.raises(ValueError, match=r"newton: damping must be >= 0, got damping=-1.0; pass 0 \(the plain "):
        fo.newton(rosen, damping=-1.0)


# ------------------------------------------------------------------------------------- fit warns on mini-batches
@pytest.fixture(scope="module")
def digits_model():
    X, y = load_digits()
    model = layers.mlp([4, 10], layers.Tanh)
    _, params = model.init(jax.random.key(0), (-1, 64))
    return model, params, X[:60], y[:60]


@pytest.mark.parametrize("name", ["lbfgs", "bfgs", "newton"])
def test_fit_warns_when_a_second_order_rule_gets_mini_batches(digits_model, name):
    model, params, X, y = digits_model
    loss = losses.softmax_cross_entropy_with_integer_labels
    make = {"lbfgs": lambda: fo.lbfgs(0.1), "bfgs": lambda: fo.bfgs(0.1),
            "newton": lambda: fo.newton(lambda p: loss(model.apply(p, X), y), damping=1.0)}[name]
    kw = dict(epochs=1, key=jax.random.key(1), verbose=False)
    with pytest.warns(UserWarning, match=rf"^fit: {name} is a full-batch second-order rule, but batch_size=20 < 60 "
                                         r"examples makes its .* noisy; use batch_size=len\(X\) \(=60\) or a "
                                         r"first-order rule such as adam$"):
        fit(model.apply, params, make(), loss, X, y, batch_size=20, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # full batch, or a first-order rule: no warning
        fit(model.apply, params, make(), loss, X, y, batch_size=60, **kw)
        if name == "lbfgs":
            fit(model.apply, params, fo.adam(1e-2), loss, X, y, batch_size=20, **kw)


def test_full_batch_rule_names_exactly_the_second_order_rules():
    assert [fo.full_batch_rule(o) for o in (fo.lbfgs(), fo.bfgs(), fo.newton(rosen))] == ["lbfgs", "bfgs", "newton"]
    others = [fo.RULES[n](0.1) for n in fo.RULES if n not in ("lbfgs", "bfgs")] + [optax.lbfgs(), fo.chain(fo.lbfgs())]
    assert [fo.full_batch_rule(o) for o in others] == [None] * len(others)


# ----------------------------------------------------------------------------------------- RMSProp, eps in sqrt
@pytest.mark.parametrize("eps_in_sqrt", [True, False])
def test_rmsprop_eps_placement_equals_optax_step_by_step(eps_in_sqrt):
    with jax.enable_x64(True):
        A, b, f, x0 = convex_quadratic(5, seed=5)
        lr, decay, eps = 0.03, 0.9, 1e-2   # a large eps, so that its placement matters
        ours, theirs = fo.rmsprop(lr, decay, eps, eps_in_sqrt=eps_in_sqrt), optax.rmsprop(lr, decay, eps,
                                                                                          eps_in_sqrt=eps_in_sqrt)
        other = optax.rmsprop(lr, decay, eps, eps_in_sqrt=not eps_in_sqrt)
        xa = xb = xc = jnp.asarray(x0)
        sa, sb, sc = ours.init(xa), theirs.init(xb), other.init(xc)
        for _ in range(20):
            ua, sa = ours.update(jax.grad(f)(xa), sa, xa)
            ub, sb = theirs.update(jax.grad(f)(xb), sb, xb)
            uc, sc = other.update(jax.grad(f)(xc), sc, xc)
            xa, xb, xc = fo.apply_updates(xa, ua), optax.apply_updates(xb, ub), optax.apply_updates(xc, uc)
            np.testing.assert_allclose(np.asarray(xa), np.asarray(xb), rtol=1e-12, atol=1e-14)
        assert float(jnp.max(jnp.abs(xa - xc))) > 1e-4   # the other placement is measurably different


def test_rmsprop_default_is_unchanged_and_flags_must_be_bools():
    g = jnp.asarray([0.3, -2.0])
    u, _ = fo.rmsprop(0.1).update(g, fo.rmsprop(0.1).init(g))
    np.testing.assert_allclose(u, -0.1 * g / (np.sqrt(0.1 * g ** 2) + 1e-8), rtol=1e-6)
    with pytest.raises(TypeError, match=r"rmsprop: eps_in_sqrt must be a Python bool .* got int 1; pass True or "):
        fo.rmsprop(0.1, eps_in_sqrt=1)
    with pytest.raises(TypeError, match=r"adam: bias_correction must be a Python bool"):
        fo.adam(0.1, bias_correction="no")


# ---------------------------------------------------------------------------------- Adam without bias correction
def adam_numpy(grad, x, steps, lr, b1, b2, eps, bias_correction):
    m, v, xs = np.zeros_like(x), np.zeros_like(x), []
    for t in range(1, steps + 1):
        g = grad(x)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        m_hat, v_hat = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if bias_correction else (m, v)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
        xs.append(x)
    return xs


@pytest.mark.parametrize("bias_correction", [False, True])
def test_adam_with_and_without_bias_correction_matches_a_numpy_loop(bias_correction):
    with jax.enable_x64(True):
        _, _, f, x0 = convex_quadratic(5, seed=6)
        ref = adam_numpy(lambda v: np.asarray(jax.grad(f)(jnp.asarray(v))), x0, 25, 0.05, 0.9, 0.999, 1e-8,
                         bias_correction)
        opt = fo.adam(0.05, bias_correction=bias_correction)
        x, s = jnp.asarray(x0), opt.init(jnp.asarray(x0))
        for x_ref in ref:
            u, s = opt.update(jax.grad(f)(x), s, x)
            x = fo.apply_updates(x, u)
            np.testing.assert_allclose(np.asarray(x), x_ref, rtol=1e-12, atol=1e-14)


def test_uncorrected_adam_first_step_differs_by_the_lecture_factor():
    """Step 1: m = (1 - b1) g, v = (1 - b2) g^2, so m / sqrt(v) = (1 - b1) / sqrt(1 - b2) sign(g), 3.16 sign(g)
    for the defaults, against Adam's sign(g): the uncorrected first step is ~3.16x *larger*."""
    with jax.enable_x64(True):
        g = jnp.asarray([0.5, -3.0, 1e-2])
        plain, corrected = fo.scale_by_adam(bias_correction=False), fo.scale_by_adam()
        u_plain, _ = plain.update(g, plain.init(g))
        u_corr, _ = corrected.update(g, corrected.init(g))
        a = np.abs(np.asarray(g))
        np.testing.assert_allclose(u_corr, np.asarray(g) / (a + 1e-8), rtol=1e-12)
        np.testing.assert_allclose(u_plain, 0.1 * np.asarray(g) / (np.sqrt(1e-3) * a + 1e-8), rtol=1e-12)
        np.testing.assert_allclose(u_plain[:2] / u_corr[:2], (1 - 0.9) / np.sqrt(1 - 0.999), rtol=1e-6)


def test_adam_flag_is_static_under_inject_hyperparams_and_rate_traced():
    f = lambda x: jnp.sum((x - 1.0) ** 2)   # noqa: E731
    injected = optax.inject_hyperparams(fo.adam)(learning_rate=0.1, bias_correction=False)
    plain = fo.adam(0.1, bias_correction=False)
    x1 = x2 = jnp.zeros(3)
    s1, s2 = injected.init(x1), plain.init(x2)
    step = jax.jit(lambda x, s: injected.update(jax.grad(f)(x), s, x))
    for _ in range(3):
        u1, s1 = step(x1, s1)
        u2, s2 = plain.update(jax.grad(f)(x2), s2, x2)
        x1, x2 = fo.apply_updates(x1, u1), fo.apply_updates(x2, u2)
    np.testing.assert_allclose(x1, x2, rtol=1e-5)   # injected b1, b2 are float32 arrays: 1 - b1 rounds
    assert float(x1[0]) > 0.5   # 3 uncorrected steps of ~3.16 * lr
