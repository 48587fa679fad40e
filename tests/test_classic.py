"""Threshold logic unit, perceptron rule, universal approximation, and gradient-free training."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from fnn import classic
from fnn import layers as core
from fnn.classic import annealing


@pytest.mark.parametrize("gate,op", [("AND", lambda a, b: a & b), ("OR", lambda a, b: a | b),
                                     ("NAND", lambda a, b: 1 - (a & b)), ("NOR", lambda a, b: 1 - (a | b)),
                                     ("XOR", lambda a, b: a ^ b)])
def test_logic_gate_truth_tables(gate, op):
    x, t = classic.logic_gate(gate)
    expected = [op(a, b) for a, b in itertools.product((0, 1), repeat=2)]
    np.testing.assert_array_equal(x, list(itertools.product((0, 1), repeat=2)))
    np.testing.assert_array_equal(t, expected)
    x, t = classic.logic_gate("not")
    np.testing.assert_array_equal(x[:, 0], [0, 1])
    np.testing.assert_array_equal(t, [1, 0])


def test_tlu_matches_numpy():
    p = classic.TLUParams(jnp.array([0.5, -1.0, 2.0]), jnp.array(-0.25))
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    np.testing.assert_array_equal(classic.tlu(p, x), (x @ np.array([0.5, -1.0, 2.0]) - 0.25 > 0).astype(np.float32))


@pytest.mark.parametrize("gate", ["AND", "OR", "NAND", "NOR", "NOT"])
def test_perceptron_learns_separable_gates_in_bounded_epochs(gate):
    x, t = classic.logic_gate(gate)
    res = classic.perceptron_train(x, t, max_epochs=20)
    assert res.converged and not res.cycled and res.epochs <= 10
    assert res.errors[-1] == 0
    np.testing.assert_array_equal(classic.tlu(res.params, x), t)  # the learned unit computes the gate


def test_perceptron_first_epoch_by_hand():
    """AND from w = 0, b = 0: only (1, 1) is misclassified in epoch 1 (step(0) = 0), so w = (1, 1), b = 1."""
    x, t = classic.logic_gate("AND")
    res = classic.perceptron_train(x, t, max_epochs=1)
    np.testing.assert_array_equal(res.params.w, [1.0, 1.0])
    assert float(res.params.b) == 1.0 and res.errors == (1,) and not res.converged


def test_perceptron_fails_on_xor_and_detects_the_cycle():
    x, t = classic.logic_gate("XOR")
    res = classic.perceptron_train(x, t, max_epochs=1000)
    assert not res.converged and res.cycled and res.epochs < 20
    assert min(res.errors) >= 1
    assert np.any(np.asarray(classic.tlu(res.params, x)) != np.asarray(t))
    # with the cycle check bounded by max_epochs only: still never converges
    res2 = classic.perceptron_train(x, t, max_epochs=2, eta=0.37)
    assert not res2.converged


def test_perceptron_errors():
    x, t = classic.logic_gate("AND")
    with pytest.raises(ValueError, match="perceptron_train: expected targets in \\{0, 1\\}"):
        classic.perceptron_train(x, 2 * t)
    with pytest.raises(ValueError, match="expected x \\(n, d\\) and t \\(n,\\)"):
        classic.perceptron_train(x[:, 0], t)
    with pytest.raises(ValueError, match="logic_gate: unknown gate 'XNOR2'"):
        classic.logic_gate("XNOR2")


def test_universal_approximation_error_falls_with_hidden_units(key):
    f = lambda x: jnp.sin(2 * x) + 0.3 * x ** 2  # noqa: E731
    res = classic.universal_approximation(f, (2, 32), key, steps=100, n_train=128)
    assert res.rms_error[1] < 0.25 * res.rms_error[0] and res.max_error[1] < 0.25 * res.max_error[0]
    # the reported error is the error of the returned network, recomputed here
    xe = jnp.linspace(-3.0, 3.0, 512)[:, None]
    l1, _, l2 = res.params[1]
    g = jax.nn.relu(xe @ l1.W + l1.b[None, :]) @ l2.W + l2.b[None, :]
    np.testing.assert_allclose(np.sqrt(np.mean((g - f(xe)) ** 2)), res.rms_error[1], rtol=1e-4)
    with pytest.raises(ValueError, match="expected interval \\(lo, hi\\) with lo < hi"):
        classic.universal_approximation(f, (2,), key, interval=(1.0, 0.0))


def test_universal_approximation_full_fits_settle_monotonically():
    """The example's setting (h = 1 ... 64, 2000 steps, key 0): from h = 4 on, every doubling lowers the RMS error.
    With a constant Adam rate the h = 32 fit once ended at RMS 0.077, above h = 16's 0.040 (last iterate on a spike)."""
    f = lambda x: jnp.sin(2 * x) + 0.3 * x ** 2  # noqa: E731
    res = classic.universal_approximation(f, (1, 2, 4, 8, 16, 32, 64), jax.random.key(0))
    assert np.all(np.diff(res.rms_error[2:]) < 0), res.rms_error
    assert res.rms_error[-1] < res.rms_error[0] / 100


# --------------------------------------------------------------------------------------------- gradient-free
def _xor_problem(key):
    x, y = classic.logic_gate("XOR")
    model = core.mlp([4, 1], core.Tanh, output_activation=core.Sigmoid)
    _, params = model.init(key, (-1, 2))
    return (lambda p: jnp.mean((model.apply(p, x) - y[:, None]) ** 2)), params


@pytest.mark.parametrize("rule,kw", [(annealing.simulated_annealing, {}), (annealing.cauchy_training, {}),
                                     (annealing.mixed_training, {"learning_rate": 2.0, "eta": 0.3})])
def test_gradient_free_rules_lower_the_loss_on_xor(key, rule, kw):
    loss, params = _xor_problem(key)
    l0 = float(loss(params))
    res = rule(loss, params, jax.random.key(2), steps=1000, t0=0.05, step_size=0.5, **kw)
    assert float(res.best_loss) < 0.2 * l0 and float(res.losses[-1]) < 0.5 * l0
    assert float(loss(res.best_params)) == pytest.approx(float(res.best_loss), rel=1e-5)
    assert float(jnp.min(res.losses)) == pytest.approx(float(res.best_loss), rel=1e-6)
    assert 0 < float(res.accept_rate) <= 1


def test_zero_temperature_never_accepts_an_uphill_move(key):
    loss, params = _xor_problem(key)
    res = annealing.cauchy_training(loss, params, key, steps=300, t0=1e-30)
    assert np.all(np.diff(np.asarray(res.losses)) <= 0)



def test_schedules_and_step_distributions(key):
    k = jnp.arange(5)
    np.testing.assert_allclose(annealing.boltzmann_temperature(2.0, k), 2.0 / np.log(np.arange(5) + 2.0), rtol=1e-6)
    np.testing.assert_allclose(annealing.cauchy_temperature(2.0, k), 2.0 / (np.arange(5) + 1.0), rtol=1e-6)
    tree = {"a": jnp.zeros((20000,)), "b": jnp.zeros((100, 100))}
    c = annealing.cauchy_step(key, tree, 0.3)
    g = annealing.gaussian_step(key, tree, 0.3)
    for leaf in jax.tree_util.tree_leaves(c):  # Cauchy(0, 0.3): a KS test and median |x| = scale
        assert scipy.stats.kstest(np.asarray(leaf).ravel(), scipy.stats.cauchy(scale=0.3).cdf).pvalue > 1e-3
        assert np.median(np.abs(leaf)) == pytest.approx(0.3, rel=0.05)
    for leaf in jax.tree_util.tree_leaves(g):
        assert scipy.stats.kstest(np.asarray(leaf).ravel(), scipy.stats.norm(scale=0.3).cdf).pvalue > 1e-3
    with pytest.raises(ValueError, match="simulated_annealing: expected t0 > 0, got 0"):
        annealing.simulated_annealing(lambda p: p, 0.0, key, t0=0)
    with pytest.raises(ValueError, match="annealing: expected a positive number of steps"):
        annealing.cauchy_training(lambda p: jnp.sum(p ** 2), jnp.zeros(2), key, steps=0)
