"""Perceptrons wired by hand: NAND, the half adder and a ripple-carry adder, threshold gates, the sigmoid XOR net.

* :data:`NAND`: Nielsen's NAND perceptron, ``w = (-2, -2)``, ``b = 3``: ``step(-2 x1 - 2 x2 + 3)``.
* :class:`Circuit`: a network of perceptrons as a list of :class:`Unit` (its source names, weights, bias), run by
  :func:`run_circuit` as perceptrons (``step``, either threshold convention) or as sigmoid neurons
  ``sigma(c (w . x + b))`` with every weight and bias multiplied by ``c``.
* :func:`half_adder_circuit`: Nielsen's drawing (4 NAND perceptrons for the sum, the carry a perceptron reading the
  first NAND's output with the doubled weight -4); :func:`half_adder`: the same as a plain composition of
  :func:`nand`; :func:`ripple_adder_circuit`: k-bit addition from NAND perceptrons (9 per full adder).
* :data:`THRESHOLD_GATES` (integer thresholds: correct only when a unit fires at net == 0) and
  :data:`MARGIN_GATES` (half-integer biases: correct under both conventions).
* :func:`xor_network`: the 2-2-1 sigmoid net with weights of +-20 (OR and NAND hidden units, an AND output).
* :func:`sigmoid_deviation`, :func:`min_abs_net`: sigmoid neurons with weights ``c w`` tend to perceptrons as
  ``c -> inf``; for one unit the largest deviation is ``sigma(-c min |net|)`` exactly.
* :func:`binary_output_layer`: a layer turning a one-hot digit (10 outputs) into its 4-bit binary code.

Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1 ("Perceptrons", the adder figure; the exercises
"Sigmoid neurons simulating perceptrons" and the bitwise representation of a digit); McCulloch & Pitts 1943.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from fnn import layers as core
from fnn.classic.neurons import TLUParams, tlu

__all__ = ["NAND", "nand", "Unit", "Circuit", "binary_inputs", "run_circuit", "min_abs_net", "sigmoid_deviation",
           "half_adder", "half_adder_circuit", "ripple_adder_circuit", "ripple_add", "THRESHOLD_GATES",
           "MARGIN_GATES", "xor_network", "DIGIT_BITS", "binary_output_layer", "to_bits", "from_bits"]

NAND = TLUParams(jnp.array([-2.0, -2.0]), jnp.array(3.0, jnp.float32))   # Nielsen ch. 1: nets 3, 1, 1, -1 -> 1, 1, 1, 0


def nand(x1, x2):
    """Nielsen's NAND perceptron on two arrays of bits: ``step(-2 x1 - 2 x2 + 3)`` elementwise.

    Example:
      >>> nand(jnp.array([0., 0., 1., 1.]), jnp.array([0., 1., 0., 1.])).tolist()
      [1.0, 1.0, 1.0, 0.0]
    """
    return tlu(NAND, jnp.stack(jnp.broadcast_arrays(jnp.asarray(x1, jnp.float32), jnp.asarray(x2, jnp.float32)), -1))


def half_adder(x1, x2):
    """The half adder as a plain composition of :func:`nand`: ``(x1 XOR x2, x1 AND x2)``.

        g = nand(x1, x2);  sum = nand(nand(x1, g), nand(x2, g));  carry = nand(g, g)

    Returns:
      ``(sum, carry)``, arrays of the broadcast shape of x1 and x2.
    """
    g = nand(x1, x2)
    return nand(nand(x1, g), nand(x2, g)), nand(g, g)


class Unit(NamedTuple):
    name: str                     # the name later units and the outputs use
    inputs: tuple                 # source names: circuit inputs or earlier units
    w: tuple                      # one weight per source
    b: float                      # bias (the negative threshold)


class Circuit(NamedTuple):
    inputs: tuple                 # input names, in the column order of x
    units: tuple                  # Units, each reading only inputs and earlier units
    outputs: tuple                # names of the units (or inputs) returned, in order


def _check_circuit(c: Circuit) -> None:
    known = set(c.inputs)
    for u in c.units:
        missing = [s for s in u.inputs if s not in known]
        if missing or len(u.w) != len(u.inputs) or u.name in known:
            raise ValueError(f"Circuit: unit {u.name!r} must read only inputs or earlier units, with one weight per "
                             f"source and a new name; got sources {u.inputs} ({missing} undefined), {len(u.w)} "
                             f"weights; define units in order and name each once")
        known.add(u.name)
    if any(o not in known for o in c.outputs):
        raise ValueError(f"Circuit: outputs {c.outputs} name undefined units; defined: {sorted(known)}")


def binary_inputs(d: int):
    """All ``2^d`` rows of d bits in binary order (the first column most significant), float32 ``(2^d, d)``."""
    return jnp.asarray([[(i >> (d - 1 - j)) & 1 for j in range(d)] for i in range(2 ** d)], jnp.float32)


def run_circuit(circuit: Circuit, x, *, sigmoid_scale: float | None = None, fire_at_zero: bool = False,
                nets: bool = False):
    """Run a network of perceptrons, or the same network of sigmoid neurons with weights and biases times c.

        perceptrons (sigmoid_scale=None):  y_u = step(sum_s w_us y_s + b_u)   (fire on net > 0, or >= 0)
        sigmoid neurons (sigmoid_scale=c): y_u = sigma(c (sum_s w_us y_s + b_u))

    Evaluated unit by unit in float64 NumPy (as :func:`fnn.classic.perceptron_train`): these graphs are tiny and
    irregular, so there is nothing to compile, and sigmoid deviations far below float32's 6e-8 are resolved.
    ``step`` is ``fnn.activations.step`` with ``at_zero = 1 if fire_at_zero else 0``.

    Args:
      circuit: a :class:`Circuit`.
      x: inputs ``(n, len(circuit.inputs))``.
      sigmoid_scale: ``None`` for perceptrons, else ``c > 0``.
      fire_at_zero: the perceptrons' threshold convention (:func:`fnn.classic.tlu`).
      nets: also return every unit's net input.

    Returns:
      float64 ``(n, len(circuit.outputs))`` outputs; with ``nets=True``, ``(outputs, {unit name: (n,) nets})``.

    Example:
      >>> run_circuit(half_adder_circuit(), binary_inputs(2)).tolist()     # columns: sum, carry
      [[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    """
    _check_circuit(circuit)
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != len(circuit.inputs):
        raise ValueError(f"run_circuit: expected x of shape (n, {len(circuit.inputs)}) for inputs {circuit.inputs}, "
                         f"got {x.shape}; pass one column per input")
    if sigmoid_scale is not None and not sigmoid_scale > 0:
        raise ValueError(f"run_circuit: expected sigmoid_scale c > 0 (or None for perceptrons), got {sigmoid_scale}")
    values = {name: x[:, i] for i, name in enumerate(circuit.inputs)}
    net = {}
    for u in circuit.units:
        z = sum(w * values[s] for w, s in zip(u.w, u.inputs)) + u.b
        net[u.name] = z
        if sigmoid_scale is None:
            values[u.name] = np.where(z > 0, 1.0, np.where(z < 0, 0.0, 1.0 if fire_at_zero else 0.0))
        else:
            e = np.exp(-np.abs(sigmoid_scale * z))                              # sigma(c z), no overflow
            values[u.name] = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    out = np.stack([values[o] for o in circuit.outputs], axis=1)
    return (out, net) if nets else out


def min_abs_net(circuit: Circuit, *, fire_at_zero: bool = False) -> float:
    """``min |net|`` over every unit of the perceptron network and every binary input (0: a unit sits on its edge)."""
    _, net = run_circuit(circuit, binary_inputs(len(circuit.inputs)), fire_at_zero=fire_at_zero, nets=True)
    return float(min(np.min(np.abs(v)) for v in net.values()))


def sigmoid_deviation(circuit: Circuit, scales: Sequence[float], *, fire_at_zero: bool = False) -> tuple:
    """Largest ``|sigmoid network - perceptron network|`` over all binary inputs and outputs, for each ``c``.

    Nielsen's exercise: multiplying every weight and bias by ``c > 0`` leaves a perceptron network unchanged, and the
    sigmoid network tends to it as ``c -> inf`` provided no unit's net input is exactly 0. For a single unit the
    deviation is ``max_x |sigma(c net) - step(net)| = sigma(-c min |net|)`` (1/2 when some net is 0, for every c).

    Example:
      >>> nand_unit = Circuit(("x1", "x2"), (Unit("y", ("x1", "x2"), (-2, -2), 3),), ("y",))
      >>> [round(d, 4) for d in sigmoid_deviation(nand_unit, (1, 5))]    # sigma(-1), sigma(-5): min |net| = 1
      [0.2689, 0.0067]
    """
    x = binary_inputs(len(circuit.inputs))
    target = run_circuit(circuit, x, fire_at_zero=fire_at_zero)
    return tuple(float(np.max(np.abs(run_circuit(circuit, x, sigmoid_scale=c) - target))) for c in scales)


def _nand_unit(name, a, b):
    return Unit(name, (a, b), (-2.0, -2.0), 3.0)


def half_adder_circuit() -> Circuit:
    """Nielsen's half adder of NAND perceptrons as he draws it: inputs x1, x2; outputs (sum, carry).

        g1 = NAND(x1, x2);  g2 = NAND(x1, g1);  g3 = NAND(x2, g1);  sum = NAND(g2, g3)
        carry = step(-4 g1 + 3)       (NAND(g1, g1), its two lines from g1 merged into one of weight -4)

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1, the adder figure.
    """
    return Circuit(("x1", "x2"), (_nand_unit("g1", "x1", "x2"), _nand_unit("g2", "x1", "g1"),
                                  _nand_unit("g3", "x2", "g1"), _nand_unit("sum", "g2", "g3"),
                                  Unit("carry", ("g1",), (-4.0,), 3.0)), ("sum", "carry"))


def _full_adder(i: int, a: str, b: str, c: str) -> list:
    """Nine NAND units: sum s_i = a XOR b XOR c and carry c_{i+1} = ab OR (a XOR b) c."""
    n = [f"fa{i}_{j}" for j in range(1, 8)]
    return [_nand_unit(n[0], a, b), _nand_unit(n[1], a, n[0]), _nand_unit(n[2], b, n[0]),
            _nand_unit(n[3], n[1], n[2]),                                         # a XOR b
            _nand_unit(n[4], n[3], c), _nand_unit(n[5], n[3], n[4]), _nand_unit(n[6], c, n[4]),
            _nand_unit(f"s{i}", n[5], n[6]), _nand_unit(f"c{i + 1}", n[0], n[4])]


def ripple_adder_circuit(k: int) -> Circuit:
    """k-bit ripple-carry addition from NAND perceptrons: a half adder for bit 0, a 9-NAND full adder per bit after.

    Inputs ``a{k-1} ... a0 b{k-1} ... b0`` (each number most significant bit first); outputs ``c{k} s{k-1} ... s0``,
    the k + 1 bits of ``a + b``. Units: 5 + 9 (k - 1).
    """
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"ripple_adder_circuit: expected a number of bits k >= 1, got {k!r}")
    h = half_adder_circuit()
    rename = {"x1": "a0", "x2": "b0", "sum": "s0", "carry": "c1"}
    units = [Unit(rename.get(u.name, f"ha_{u.name}"), tuple(rename.get(s, f"ha_{s}") for s in u.inputs), u.w, u.b)
             for u in h.units]
    for i in range(1, k):
        units += _full_adder(i, f"a{i}", f"b{i}", f"c{i}")
    inputs = tuple(f"a{i}" for i in reversed(range(k))) + tuple(f"b{i}" for i in reversed(range(k)))
    return Circuit(inputs, tuple(units), (f"c{k}",) + tuple(f"s{i}" for i in reversed(range(k))))


def ripple_add(a, b, k: int, **run_kwargs):
    """``a + b`` for integer arrays ``0 <= a, b < 2^k``, computed by :func:`ripple_adder_circuit` (k) bit by bit.

    Example:
      >>> ripple_add(np.array([3, 7]), np.array([5, 7]), 3).tolist()
      [8, 14]
    """
    a, b = np.asarray(a), np.asarray(b)
    both = np.concatenate([a.ravel(), b.ravel()])
    if a.shape != b.shape or not np.all((both >= 0) & (both < 2 ** k)):
        raise ValueError(f"ripple_add: expected a and b of one shape with entries in [0, {2 ** k}) for k = {k}, got "
                         f"shapes {a.shape}, {b.shape}; use a larger k")
    bits = [(a >> i) & 1 for i in reversed(range(k))] + [(b >> i) & 1 for i in reversed(range(k))]
    out = np.asarray(run_circuit(ripple_adder_circuit(k), np.stack(bits, -1).reshape(-1, 2 * k), **run_kwargs))
    return (out @ (2 ** np.arange(k, -1, -1))).round().astype(int).reshape(a.shape)


# Threshold units with explicit weights: TLUParams(w, b). THRESHOLD_GATES put the threshold on the count of inputs
# needed (AND: x1 + x2 >= 2), so each gate has an input with net == 0 exactly and is right only when the unit fires
# there (tlu(..., fire_at_zero=True), the slides' net >= 0). MARGIN_GATES move the bias by 1/2 and are right either way.
THRESHOLD_GATES = {
    "AND": TLUParams(jnp.array([1.0, 1.0]), jnp.array(-2.0, jnp.float32)),
    "OR": TLUParams(jnp.array([1.0, 1.0]), jnp.array(-1.0, jnp.float32)),
    "NOT": TLUParams(jnp.array([-1.0]), jnp.array(0.0, jnp.float32)),
}
MARGIN_GATES = {
    "AND": TLUParams(jnp.array([1.0, 1.0]), jnp.array(-1.5, jnp.float32)),
    "OR": TLUParams(jnp.array([1.0, 1.0]), jnp.array(-0.5, jnp.float32)),
    "NOT": TLUParams(jnp.array([-1.0]), jnp.array(0.5, jnp.float32)),
}


def xor_network(c: float = 20.0):
    """The 2-2-1 sigmoid network for XOR with hand-set weights: OR and NAND hidden units, an AND output.

        h1 = sigma(c x1 + c x2 - c/2)          (OR;   c = 20: 20 x1 + 20 x2 - 10)
        h2 = sigma(-c x1 - c x2 + 3c/2)        (NAND; -20 x1 - 20 x2 + 30)
        y  = sigma(c h1 + c h2 - 3c/2)         (AND;  20 h1 + 20 h2 - 30)

    It is the perceptron network ``AND(OR, NAND)`` with half-integer biases, its weights times c (see
    :func:`sigmoid_deviation`).

    Returns:
      ``(layer, params)``: ``serial(Dense(2), Sigmoid, Dense(1), Sigmoid)`` and its params; ``layer.apply(params,
      x)`` maps ``(n, 2)`` to ``(n, 1)``.

    Example:
      >>> layer, params = xor_network()
      >>> layer.apply(params, binary_inputs(2))[:, 0].round(4).tolist()
      [0.0, 1.0, 1.0, 0.0]
    """
    if not c > 0:
        raise ValueError(f"xor_network: expected a weight scale c > 0, got {c}")
    hidden = core.DenseParams(jnp.array([[c, -c], [c, -c]]), jnp.array([-c / 2, 3 * c / 2]))
    out = core.DenseParams(jnp.array([[c], [c]]), jnp.array([-3 * c / 2]))
    return core.serial(core.Dense(2), core.Sigmoid, core.Dense(1), core.Sigmoid), (hidden, (), out, ())


DIGIT_BITS = np.array([[(d >> (3 - j)) & 1 for j in range(4)] for d in range(10)], np.float32)   # (10, 4), MSB first


def binary_output_layer(scale: float = 10.0):
    """A layer from a one-hot digit (10 activations) to its 4-bit binary code: ``sigma(a W + b)``.

        W_dj = scale (2 B_dj - 1),  b = 0,    B_dj = bit j of digit d (most significant first)

    With ``a_k >= 0.99`` for the right digit k and ``a_d <= 0.01`` for the others, bit j's net input has the sign of
    ``2 B_kj - 1`` and size at least ``scale (0.99 - 9 x 0.01) = 0.9 scale``, so each output is within
    ``sigma(-0.9 scale)`` of its bit (1.2e-4 at scale 10; it needs scale >= ln(99) / 0.9 = 5.1 for 0.99 / 0.01).

    Returns:
      ``(layer, params)``: ``serial(Dense(4), Sigmoid)`` and ``(DenseParams(W (10, 4), b (4,)), ())``.

    Example:
      >>> layer, params = binary_output_layer()
      >>> from_bits(layer.apply(params, jnp.eye(10))).tolist()
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]

    Reference: Nielsen, *Neural Networks and Deep Learning*, 2015, ch. 1, the exercise after "A simple network to
    classify handwritten digits".
    """
    if not scale > 0:
        raise ValueError(f"binary_output_layer: expected scale > 0, got {scale}")
    params = core.DenseParams(jnp.asarray(scale * (2 * DIGIT_BITS - 1)), jnp.zeros(4))
    return core.serial(core.Dense(4), core.Sigmoid), (params, ())


def to_bits(y):
    """Digits ``(n,)`` in 0..9 -> their 4-bit codes ``(n, 4)`` float32, most significant bit first."""
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"to_bits: expected digits in 0..9, got values in [{y.min()}, {y.max()}]")
    return jnp.asarray(DIGIT_BITS[y])


def from_bits(bits, threshold: float = 0.5):
    """Codes ``(n, 4)`` (bits, probabilities or, with ``threshold=0``, logits) -> integers ``(n,)`` in 0..15.

    Each column counts as 1 where it is above ``threshold``; a result of 10..15 is no digit (always wrong).
    """
    bits = jnp.asarray(bits)
    if bits.ndim != 2 or bits.shape[1] != 4:
        raise ValueError(f"from_bits: expected codes of shape (n, 4), got {bits.shape}")
    return (bits > threshold).astype(jnp.int32) @ jnp.array([8, 4, 2, 1], jnp.int32)
