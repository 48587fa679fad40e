"""Hand-wired perceptron networks (fnn/classic/gates.py) and the threshold convention of step / tlu (issue 14).

References are enumeration of all inputs against Python's integer and Boolean operators, NumPy float64 evaluations
of the written formulas, and closed forms (sigma(-c min |net|), the worst near-one-hot vertex)."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import activations as act
from fnn import classic
from fnn.classic import gates as G

BITS2 = list(itertools.product((0, 1), repeat=2))


def sig64(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


# ---------------------------------------------------------------------------------------------------------------------
# 1. NAND perceptron, half adder, ripple-carry adder


def test_nand_perceptron_nets_and_truth_table():
    x = G.binary_inputs(2)
    np.testing.assert_array_equal(x, BITS2)
    np.testing.assert_array_equal(x @ G.NAND.w + G.NAND.b, [3, 1, 1, -1])        # Nielsen's worked nets
    np.testing.assert_array_equal(G.nand(x[:, 0], x[:, 1]), [1 - (a & b) for a, b in BITS2])


def test_half_adder_drawn_and_composed_match_enumeration():
    circuit = G.half_adder_circuit()
    assert len(circuit.units) == 5 and circuit.units[-1] == G.Unit("carry", ("g1",), (-4.0,), 3.0)
    x = G.binary_inputs(2)
    expected = [[a ^ b, a & b] for a, b in BITS2]
    np.testing.assert_array_equal(G.run_circuit(circuit, x), expected)
    s, c = G.half_adder(x[:, 0], x[:, 1])
    np.testing.assert_array_equal(np.stack([s, c], 1), expected)
    # no net input is 0, so the threshold convention does not matter
    assert G.min_abs_net(circuit) == 1.0
    np.testing.assert_array_equal(G.run_circuit(circuit, x, fire_at_zero=True), expected)


@pytest.mark.parametrize("k", [1, 3])
def test_ripple_adder_equals_integer_addition_for_all_inputs(k):
    a, b = (m.ravel() for m in np.meshgrid(np.arange(2 ** k), np.arange(2 ** k)))
    assert len(G.ripple_adder_circuit(k).units) == 5 + 9 * (k - 1)
    np.testing.assert_array_equal(G.ripple_add(a, b, k), a + b)
    if k == 3:   # the same network as sigmoid neurons, weights x 20: rounds to the same sums
        np.testing.assert_array_equal(G.ripple_add(a, b, k, sigmoid_scale=20.0), a + b)


# ---------------------------------------------------------------------------------------------------------------------
# 2. + 3. threshold gates and the convention switch


def test_step_conventions_differ_exactly_at_zero():
    x = jnp.asarray(np.concatenate([np.random.default_rng(0).normal(size=50), [0.0, -0.0, 1e-30, -1e-30]]),
                    jnp.float32)
    lo, hi, half = act.step(x), act.step(x, at_zero=1.0), act.step(x, at_zero=0.5)
    np.testing.assert_array_equal(lo, np.asarray(x) > 0)
    np.testing.assert_array_equal(hi, np.asarray(x) >= 0)
    np.testing.assert_array_equal(hi - lo, np.asarray(x) == 0)
    assert set(np.asarray(half)[np.asarray(x) == 0]) == {0.5}
    for at_zero in (0.0, 1.0):   # zero derivative everywhere, under both conventions, also through jit
        g = jax.jit(jax.grad(lambda v: act.step(v, at_zero=at_zero).sum()))(x)
        np.testing.assert_array_equal(g, np.zeros(x.shape))


@pytest.mark.parametrize("name", ["AND", "OR", "NOT"])
def test_threshold_gates_need_fire_at_zero_and_margin_gates_do_not(name):
    x, t = classic.logic_gate(name)
    p = G.THRESHOLD_GATES[name]
    net = np.asarray(x) @ np.asarray(p.w) + float(p.b)
    np.testing.assert_array_equal(classic.tlu(p, x, fire_at_zero=True), t)
    wrong = np.asarray(classic.tlu(p, x)) != np.asarray(t)
    np.testing.assert_array_equal(wrong, net == 0)           # the > 0 unit errs exactly where net == 0
    assert wrong.any()
    for fire in (False, True):
        np.testing.assert_array_equal(classic.tlu(G.MARGIN_GATES[name], x, fire_at_zero=fire), t)


def test_perceptron_rule_under_fire_at_zero():
    x, t = classic.logic_gate("AND")
    one = classic.perceptron_train(x, t, max_epochs=1, fire_at_zero=True)
    # by hand: (0,0) nets 0 -> fires, wrong: b = -1; (1,1) nets -1 -> 0, wrong: w = (1, 1), b = 0
    assert one.errors == (2,)
    np.testing.assert_array_equal(one.params.w, [1, 1])
    assert float(one.params.b) == 0.0
    assert classic.perceptron_train(x, t, max_epochs=1).errors == (1,)   # the > 0 rule: only (1,1) is wrong
    res = classic.perceptron_train(x, t, fire_at_zero=True)
    assert res.converged
    np.testing.assert_array_equal(classic.tlu(res.params, x, fire_at_zero=True), t)


def test_xor_network_truth_table_against_numpy():
    layer, params = G.xor_network()
    x = np.array(BITS2, np.float64)
    h1 = sig64(20 * x[:, 0] + 20 * x[:, 1] - 10)
    h2 = sig64(-20 * x[:, 0] - 20 * x[:, 1] + 30)
    ref = sig64(20 * h1 + 20 * h2 - 30)
    out = np.asarray(layer.apply(params, G.binary_inputs(2)))[:, 0]
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
    assert np.abs(out - [0, 1, 1, 0]).max() < 1e-4
    np.testing.assert_allclose(ref[0], 4.5e-5, rtol=0.02)              # ~ sigma(-10): the claim in the docs


# ---------------------------------------------------------------------------------------------------------------------
# 4. sigmoid neurons simulating perceptrons


def test_single_unit_deviation_is_sigma_of_minus_c_min_net():
    unit = G.Circuit(("x1", "x2"), (G.Unit("y", ("x1", "x2"), (-2.0, -2.0), 3.0),), ("y",))
    cs = (0.5, 1.0, 2.0, 4.0, 8.0, 30.0)
    m = G.min_abs_net(unit)
    assert m == 1.0
    np.testing.assert_allclose(G.sigmoid_deviation(unit, cs), sig64(-np.array(cs) * m), rtol=1e-12)


def test_network_deviation_falls_with_c_and_fails_at_zero_net():
    dev = G.sigmoid_deviation(G.half_adder_circuit(), (1, 2, 5, 10, 20))
    assert all(a > b for a, b in zip(dev, dev[1:])) and dev[-1] < 1e-8
    p = G.THRESHOLD_GATES["AND"]                          # net = 0 at (1, 1): the sigmoid unit says 1/2 for every c
    gate = G.Circuit(("x1", "x2"), (G.Unit("y", ("x1", "x2"), tuple(p.w.tolist()), float(p.b)),), ("y",))
    assert G.min_abs_net(gate) == 0.0
    for c in (1.0, 10.0, 1000.0):
        assert float(G.run_circuit(gate, G.binary_inputs(2), sigmoid_scale=c)[3, 0]) == 0.5
    assert G.sigmoid_deviation(gate, (1e3,), fire_at_zero=True) == (0.5,)


# ---------------------------------------------------------------------------------------------------------------------
# 5. the 4-bit output layer


def test_binary_output_layer_one_hot_and_worst_near_one_hot_vertex():
    scale = 10.0
    layer, params = G.binary_output_layer(scale)
    np.testing.assert_array_equal(G.DIGIT_BITS, [[int(c) for c in f"{d:04b}"] for d in range(10)])
    np.testing.assert_array_equal(G.from_bits(layer.apply(params, jnp.eye(10))), np.arange(10))
    corners = np.array(list(itertools.product((0.0, 0.01), repeat=9)))
    a = np.concatenate([np.insert(corners, d, 0.99, axis=1) for d in range(10)])       # (5120, 10), exhaustive
    digit = np.repeat(np.arange(10), len(corners))
    out = np.asarray(layer.apply(params, jnp.asarray(a, jnp.float32)))
    err = np.abs(out - G.DIGIT_BITS[digit]).max()
    assert err <= 0.01
    # worst: the MSB of 8 (or 9) against the 8 digits with MSB 0, all at 0.01: margin scale (0.99 - 0.08)
    np.testing.assert_allclose(err, sig64(-scale * 0.91), rtol=1e-3)
    np.testing.assert_array_equal(G.from_bits(G.to_bits(np.arange(10))), np.arange(10))
    np.testing.assert_array_equal(G.from_bits(jnp.asarray([[1.0, 1, 1, 1], [-1, 2, -1, 2]]), threshold=0.0), [15, 5])


def test_errors_say_what_was_expected():
    with pytest.raises(ValueError, match=r"expected x of shape \(n, 2\).*got \(4, 3\)"):
        G.run_circuit(G.half_adder_circuit(), jnp.zeros((4, 3)))
    bad = G.Circuit(("x",), (G.Unit("y", ("z",), (1.0,), 0.0),), ("y",))
    with pytest.raises(ValueError, match=r"unit 'y' must read only inputs or earlier units.*\['z'\] undefined"):
        G.run_circuit(bad, jnp.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"sigmoid_scale c > 0"):
        G.run_circuit(G.half_adder_circuit(), G.binary_inputs(2), sigmoid_scale=0.0)
    with pytest.raises(ValueError, match=r"entries in \[0, 8\) for k = 3.*use a larger k"):
        G.ripple_add(np.array([8]), np.array([0]), 3)
    with pytest.raises(ValueError, match=r"number of bits k >= 1, got 0"):
        G.ripple_adder_circuit(0)
    with pytest.raises(ValueError, match=r"expected scale > 0, got -1"):
        G.binary_output_layer(-1)
    with pytest.raises(ValueError, match=r"digits in 0..9, got values in \[0, 10\]"):
        G.to_bits(np.array([0, 10]))
    with pytest.raises(ValueError, match=r"codes of shape \(n, 4\), got \(2, 3\)"):
        G.from_bits(jnp.zeros((2, 3)))
