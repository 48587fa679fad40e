"""Schedules against optax's twins (same step convention: the first update uses step 0) and NumPy closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnn import optimizers as fo
from fnn.optimizers import schedules as fs

STEPS = np.arange(0, 120)


def values(schedule):
    return np.asarray([float(schedule(jnp.asarray(t, jnp.int32))) for t in STEPS])


@pytest.mark.parametrize("ours,theirs", [
    (fs.constant(0.3), optax.constant_schedule(0.3)),
    (fs.step_decay(0.1, every=25), optax.exponential_decay(0.1, 25, 0.5, staircase=True)),
    (fs.step_decay(2.0, every=7, factor=0.8), optax.exponential_decay(2.0, 7, 0.8, staircase=True)),
    (fs.exponential(0.5, 0.03), optax.exponential_decay(0.5, 1, float(np.exp(-0.03)))),
    (fs.piecewise_constant([30, 80], [1.0, 0.1, 0.02]), optax.piecewise_constant_schedule(1.0, {30: 0.1, 80: 0.2})),
    (fs.cosine(0.4, 100, alpha=0.1), optax.cosine_decay_schedule(0.4, 100, alpha=0.1)),
    (fs.linear_warmup(1.0, 20, init_value=0.1), optax.linear_schedule(0.1, 1.0, 20)),
    (fs.join([fs.linear_warmup(1.0, 10), fs.cosine(1.0, 60)], [10]),
     optax.join_schedules([optax.linear_schedule(0.0, 1.0, 10), optax.cosine_decay_schedule(1.0, 60)], [10])),
], ids=["constant", "step_decay", "step_decay_0.8", "exponential", "piecewise", "cosine", "warmup", "join"])
def test_matches_optax(ours, theirs):
    np.testing.assert_allclose(values(ours), values(theirs), rtol=2e-6, atol=1e-7)


def test_closed_forms():
    t = STEPS.astype(np.float64)
    np.testing.assert_allclose(values(fs.inverse_time(0.5, 0.1)), 0.5 / (1 + 0.1 * t), rtol=1e-6)
    np.testing.assert_allclose(values(fs.exponential(0.5, 0.03)), 0.5 * np.exp(-0.03 * t), rtol=1e-6)
    np.testing.assert_allclose(values(fs.step_decay(1.0, 10)), 0.5 ** np.floor(t / 10), rtol=1e-7)
    np.testing.assert_allclose(values(fs.piecewise_constant([5], [1.0, 3.0]))[[0, 4, 5, 6]], [1, 1, 3, 3])


def test_momentum_annealing_sutskever_formula():
    t = STEPS * 120  # every=250: 0.5 for t < 250, then 0.75, 0.833, ...
    ours = np.asarray([float(fs.momentum_annealing()(s)) for s in t])
    expected = np.minimum(1 - 2.0 ** (-1 - np.log2(np.floor(t / 250) + 1)), 0.99)
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    assert ours[0] == 0.5 and abs(ours[-1] - 0.99) < 1e-6
    assert float(fs.momentum_annealing(every=10)(10 * 49)) == pytest.approx(0.99)


def test_first_update_uses_step_zero_like_optax():
    # sgd with a schedule: the k-th update (k = 0, 1, ...) uses lr(k), in fnn and in optax alike.
    sched = fs.step_decay(1.0, every=2)
    ours, theirs = fo.sgd(sched), optax.sgd(sched)
    s1, s2 = ours.init(jnp.zeros(1)), theirs.init(jnp.zeros(1))
    for k in range(6):
        u1, s1 = ours.update(jnp.ones(1), s1)
        u2, s2 = theirs.update(jnp.ones(1), s2)
        assert float(u1[0]) == float(u2[0]) == -0.5 ** (k // 2)


def test_schedules_work_under_jit_and_x64():
    with jax.enable_x64(True):
        out = jax.jit(fs.cosine(1.0, 10))(jnp.asarray(5))
        assert out.dtype == jnp.float64 and float(out) == pytest.approx(0.5, abs=1e-15)


@pytest.mark.parametrize("make,message", [
    (lambda: fs.step_decay(0.1, every=0), r"step_decay: every must be > 0, got every=0"),
    (lambda: fs.exponential(-1.0, 0.1), r"exponential: init_value must be > 0"),
    (lambda: fs.inverse_time(1.0, -0.1), r"inverse_time: k must be >= 0"),
    (lambda: fs.piecewise_constant([10, 5], [1, 2, 3]), r"piecewise_constant: need increasing boundaries"),
    (lambda: fs.piecewise_constant([10], [1.0]), r"len\(values\) == len\(boundaries\) \+ 1"),
    (lambda: fs.cosine(1.0, 100, alpha=2.0), r"cosine: alpha must lie in \[0, 1\]"),
    (lambda: fs.linear_warmup(1.0, 0), r"linear_warmup: warmup_steps must be > 0"),
    (lambda: fs.join([fs.constant(1.0)], [10]), r"join: need increasing boundaries"),
    (lambda: fs.momentum_annealing(mu_max=1.0), r"momentum_annealing: mu_max must lie in \[0.5, 1\)"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
