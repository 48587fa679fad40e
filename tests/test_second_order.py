"""Newton (against a NumPy loop with the analytic Hessian) and L-BFGS (against SciPy) on the Rosenbrock function."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from fnn import optimizers as fo


def rosen_np(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_jnp(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def newton_numpy(x, steps, lr, damping):
    x = x.copy()
    for _ in range(steps):
        x = x - lr * np.linalg.solve(scipy.optimize.rosen_hess(x) + damping * np.eye(x.size),
                                     scipy.optimize.rosen_der(x))
    return x


def run(opt, f, x, steps):
    step = jax.jit(lambda x, s: (lambda u, s: (fo.apply_updates(x, u), s))(*opt.update(jax.grad(f)(x), s, x)))
    state = opt.init(x)
    for _ in range(steps):
        x, state = step(x, state)
    return x


def test_newton_matches_numpy_loop_on_rosenbrock():
    with jax.enable_x64(True):
        x0 = np.array([-1.2, 1.0, -0.5, 0.8])
        for lr, damping in [(1.0, 1e-3), (0.5, 1.0)]:
            ours = run(fo.newton(rosen_jnp, lr, damping), rosen_jnp, jnp.asarray(x0), 15)
            np.testing.assert_allclose(ours, newton_numpy(x0, 15, lr, damping), rtol=1e-10, atol=1e-12)
        # Undamped Newton converges quadratically to a stationary point (here the 4-D Rosenbrock's local
        # minimum near x1 = -0.78, not the global one at 1): zero gradient, positive definite Hessian.
        x = np.asarray(run(fo.newton(rosen_jnp, 1.0, 1e-12), rosen_jnp, jnp.asarray(x0), 30))
        assert np.linalg.norm(scipy.optimize.rosen_der(x)) < 1e-10
        assert np.all(np.linalg.eigvalsh(scipy.optimize.rosen_hess(x)) > 0)


def test_newton_one_step_solves_a_quadratic_on_a_pytree():
    # f = 1/2 x^T A x - b^T x over {"a": 2-vector, "b": 1-vector}: one undamped step lands on A^{-1} b.
    with jax.enable_x64(True):
        A = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
        b = np.array([1.0, -2.0, 0.5])

        def f(p):
            x = jnp.concatenate([p["a"], p["b"]])
            return 0.5 * x @ jnp.asarray(A) @ x - jnp.asarray(b) @ x
        p0 = {"a": jnp.asarray([3.0, -1.0]), "b": jnp.asarray([2.0])}
        p1 = run(fo.newton(f, damping=1e-12), f, p0, 1)
        np.testing.assert_allclose(np.concatenate([p1["a"], p1["b"]]), np.linalg.solve(A, b), rtol=1e-10)


def test_lbfgs_line_search_reaches_scipy_minimum():
    with jax.enable_x64(True):
        x0 = np.array([-1.2, 1.0, -0.5, 0.8])
        ref = scipy.optimize.minimize(rosen_np, x0, jac=scipy.optimize.rosen_der, method="L-BFGS-B",
                                      options={"maxcor": 10, "gtol": 1e-10, "ftol": 1e-15})
        ours = run(fo.lbfgs(fun=rosen_jnp, memory_size=10, max_backtracking_steps=30), rosen_jnp, jnp.asarray(x0),
                   max(2 * ref.nit, 60))
        np.testing.assert_allclose(ours, ref.x, atol=1e-6)
        assert rosen_np(np.asarray(ours)) < 1e-12 and ref.fun < 1e-12


def test_lbfgs_first_step_is_capped_gradient_step():
    # First step: no memory, gamma = min(1, 1/|g|): the direction is -g / |g| when |g| > 1.
    with jax.enable_x64(True):
        g = jnp.asarray([3.0, -4.0])
        u, _ = fo.lbfgs(0.5).update(g, fo.lbfgs(0.5).init(jnp.zeros(2)), jnp.zeros(2))
        np.testing.assert_allclose(u, -0.5 * np.array([3.0, -4.0]) / 5.0, rtol=1e-14)


@pytest.mark.parametrize("make,message", [
    (lambda: fo.newton(rosen_jnp, damping=-1.0), r"newton: damping must be >= 0"),  # 0 is allowed: plain Newton
    (lambda: fo.newton(rosen_jnp, learning_rate=-1.0), r"newton: learning_rate must be > 0"),
    (lambda: fo.lbfgs(memory_size=0), r"lbfgs: need memory_size >= 1"),
    (lambda: fo.lbfgs(shrink=1.5), r"lbfgs: need .* 0 < shrink < 1"),
])
def test_second_order_bad_hyper_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("opt", [fo.newton(rosen_jnp), fo.lbfgs()], ids=["newton", "lbfgs"])
def test_second_order_needs_params(opt):
    x = jnp.zeros(4)
    with pytest.raises(ValueError, match=r"update needs params"):
        opt.update(x, opt.init(x))


@pytest.mark.parametrize("kwargs,message", [
    ({"memory_size": 2.5}, r"^lbfgs: memory_size must be a positive integer \(memory_size >= 1\), got memory_size=2.5"),
    ({"max_backtracking_steps": 1.5}, r"^lbfgs: max_backtracking_steps must be an integer >= 0, got "),
])
def test_lbfgs_integer_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fo.lbfgs(**kwargs)
