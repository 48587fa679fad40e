"""Specific-heat annealing: C(T) against the exact two-level (Schottky) curve, the schedule's steps, and errors."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.classic import specific_heat as sh

EPS = 1.0   # the gap of the two-level system


def two_level(w):
    """E = 0 on [0, 1), EPS on [1, 2), forbidden (inf) elsewhere: two states of equal measure."""
    x = w[0]
    return jnp.where((x >= 0) & (x < 2), jnp.where(x >= 1, EPS, 0.0), jnp.inf)


def exact_two_level(T):
    """<E> = EPS / (1 + e^{EPS/T}),  C = (EPS/T)^2 e^{EPS/T} / (1 + e^{EPS/T})^2 (Schottky), by enumeration."""
    T = np.asarray(T, np.float64)
    p1 = np.exp(-EPS / T) / (1 + np.exp(-EPS / T))          # Boltzmann weight of the upper state
    mean = EPS * p1
    return mean, (EPS ** 2 * p1 - mean ** 2) / T ** 2       # Var[E] / T^2 by enumeration of the two states


def test_specific_heat_matches_the_two_level_system():
    temps = np.array([0.2, 0.42, 1.0, 3.0], np.float32)
    keys = jax.random.split(jax.random.key(1), 12)
    stats = jax.vmap(jax.vmap(lambda T, k: sh.thermal_stats(two_level, jnp.full(1, 0.5), k, T, sweeps=2000,
                                                            step_size=1.0), (None, 0)), (0, None))(temps, keys)
    mean_ex, C_ex = exact_two_level(temps)
    for est, ex in ((stats.specific_heat, C_ex), (stats.mean_energy, mean_ex)):
        est = np.asarray(est, np.float64)                   # (temperatures, chains)
        m, se = est.mean(axis=1), est.std(axis=1, ddof=1) / math.sqrt(est.shape[1])
        assert np.all(np.abs(m - ex) < 4 * se + 1e-6), (m, ex, se)
        assert np.all(se < 0.3 * ex)                        # precise enough that a wrong C would fail
    assert np.argmax(C_ex) == np.argmax(np.asarray(stats.specific_heat).mean(axis=1)) == 1   # the peak, T ~ 0.42


def test_the_schedule_slows_down_at_the_peak_of_c():
    res = sh.specific_heat_annealing(two_level, jnp.full(1, 0.5), jax.random.key(0), t0=5.0, t_final=0.05,
                                     delta=0.3, c_ref=0.05, sweeps=400, step_size=3.0)
    T, C = np.asarray(res.temperatures, np.float64), np.asarray(res.specific_heat, np.float64)
    steps = np.log(T[:-1] / T[1:])                          # the step in ln T after each level
    np.testing.assert_allclose(steps, -np.log(1 - 0.3 / (1 + C[:-1] / 0.05)), rtol=1e-4)   # the rule, as stated
    t_peak = 0.4168 * EPS                                   # argmax of the exact Schottky curve
    k = int(np.argmin(steps))
    assert t_peak / 2 < T[k] < 2 * t_peak                   # smallest step near the peak
    assert steps[k] < 0.4 * steps[0] and steps[k] < 0.4 * steps[-1]   # far from it: steps near ln(1/0.7)
    assert T[-1] >= 0.05 > T[-1] * (1 - 0.3 / (1 + C[-1] / 0.05))  # stopped at the first step below t_final
    assert res.evaluations == len(T) * 400 + 1
    assert float(two_level(res.best_params)) == float(res.best_loss) == 0.0


def test_infinite_c_ref_is_geometric_cooling():
    # the same static arguments as above, so the compiled loop is reused
    res = sh.specific_heat_annealing(two_level, jnp.full(1, 0.5), jax.random.key(0), t0=5.0, t_final=0.05,
                                     delta=0.3, c_ref=math.inf, sweeps=400, step_size=3.0)
    n = len(res.temperatures)
    np.testing.assert_allclose(res.temperatures, 5.0 * 0.7 ** np.arange(n), rtol=1e-5)
    assert 5.0 * 0.7 ** (n - 1) >= 0.05 > 5.0 * 0.7 ** n


def test_bad_input_is_rejected():
    f, w, key = (lambda w: jnp.sum(w ** 2)), jnp.ones(1), jax.random.key(0)
    with pytest.raises(ValueError, match=r"expected 0 < delta < 1 \(the largest step in ln T\), got 1.5"):
        sh.specific_heat_annealing(f, w, key, delta=1.5)
    with pytest.raises(ValueError, match="expected t_final < t0, got t_final=2.0, t0=1.0"):
        sh.specific_heat_annealing(f, w, key, t_final=2.0)
    with pytest.raises(ValueError, match="expected c_ref > 0, got 0"):
        sh.specific_heat_annealing(f, w, key, c_ref=0)
    with pytest.raises(ValueError, match="keeps 1 energies; need >= 2"):
        sh.thermal_stats(f, w, key, 1.0, sweeps=4, burn_in=0.75)
    with pytest.raises(ValueError, match="expected temperature > 0, got -1.0"):
        sh.thermal_stats(f, w, key, -1.0)
