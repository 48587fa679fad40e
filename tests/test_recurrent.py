"""fnn.layers.recurrent: cells against the textbook equations in NumPy, scan vs Python loop, masking, bidirectional,
stacking, jit/vmap/grad, bad input, and the recurrent examples in tiny settings."""
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from fnn.layers import Dense, serial
from fnn.layers.recurrent import (
    RNN,
    Bidirectional,
    BidirectionalParams,
    GRUCell,
    LSTMCell,
    LSTMParams,
    LSTMState,
    SimpleRNNCell,
    scan_cell,
    sequence_mask,
)

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
CELLS = {"elman": lambda H: SimpleRNNCell(H), "lstm": lambda H: LSTMCell(H),
         "peephole": lambda H: LSTMCell(H, peephole=True), "gru": lambda H: GRUCell(H)}


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _random_params(cell, key, d_in, dtype):
    """The cell's params with every leaf redrawn N(0, 0.5^2) (so biases and peepholes are non-zero)."""
    params = cell.init(key, d_in)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    return jax.tree_util.tree_unflatten(tree, [0.5 * jax.random.normal(k, l.shape, dtype)
                                               for k, l in zip(keys, leaves)])


# ------------------------------------------------------------------------ NumPy references (textbook equations)
def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_elman(p, h, x):
    W, U, b = (np.asarray(a) for a in p)
    h = np.tanh(x @ W + h @ U + b)
    return h, h


def np_lstm(p, carry, x, peephole):
    """Graves (2013) eqs. (7)-(11), each gate with its own matrices."""
    W, U, b = (np.asarray(a) for a in p[:3])
    h, c = (np.asarray(a) for a in carry)
    H = h.shape[-1]
    Wi, Wf, Wg, Wo = (W[:, k * H:(k + 1) * H] for k in range(4))
    Ui, Uf, Ug, Uo = (U[:, k * H:(k + 1) * H] for k in range(4))
    bi, bf, bg, bo = (b[k * H:(k + 1) * H] for k in range(4))
    pi, pf, po = np.asarray(p.P) if peephole else np.zeros((3, H))
    i = _sig(x @ Wi + h @ Ui + pi * c + bi)
    f = _sig(x @ Wf + h @ Uf + pf * c + bf)
    c_new = f * c + i * np.tanh(x @ Wg + h @ Ug + bg)
    o = _sig(x @ Wo + h @ Uo + po * c_new + bo)
    h_new = o * np.tanh(c_new)
    return (h_new, c_new), h_new


def np_gru(p, h, x):
    """Cho et al. (2014) eqs. (5)-(8): h' = z h + (1 - z) h~, h~ = tanh(x W + (r * h) U)."""
    W, U, b = (np.asarray(a) for a in p)
    H = h.shape[-1]
    Wz, Wr, Wn = (W[:, k * H:(k + 1) * H] for k in range(3))
    Uz, Ur, Un = (U[:, k * H:(k + 1) * H] for k in range(3))
    bz, br, bn = (b[k * H:(k + 1) * H] for k in range(3))
    z = _sig(x @ Wz + h @ Uz + bz)
    r = _sig(x @ Wr + h @ Ur + br)
    n = np.tanh(x @ Wn + (r * h) @ Un + bn)
    h = z * h + (1 - z) * n
    return h, h


def np_step(kind, params, carry, x):
    if kind == "elman":
        return np_elman(params, carry, x)
    if kind in ("lstm", "peephole"):
        return np_lstm(params, carry, x, kind == "peephole")
    return np_gru(params, carry, x)


# ---------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("kind", CELLS)
def test_one_step_matches_textbook_equations(kind, key):
    with jax.enable_x64(True):
        cell = CELLS[kind](4)
        params = _random_params(cell, key, 3, jnp.float64)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(5, 3))
        carry = (rng.normal(size=(5, 4)), rng.normal(size=(5, 4))) if kind in ("lstm", "peephole") else \
            rng.normal(size=(5, 4))
        jcarry = LSTMState(*map(jnp.asarray, carry)) if isinstance(carry, tuple) else jnp.asarray(carry)
        new, y = jax.jit(cell.apply)(params, jcarry, jnp.asarray(x))
        ref_new, ref_y = np_step(kind, params, carry, x)
        np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
        for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(ref_new)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_lstm_init_forget_bias_and_peephole_params(key):
    p = LSTMCell(3, forget_bias=1.5).init(key, 2)
    assert isinstance(p, LSTMParams) and p.P is None
    np.testing.assert_array_equal(p.b, np.r_[np.zeros(3), 1.5 * np.ones(3), np.zeros(6)])
    assert LSTMCell(3, peephole=True).init(key, 2).P.shape == (3, 3)
    assert [a.shape for a in GRUCell(3).init(key, 2)] == [(2, 9), (3, 9), (9,)]


@pytest.mark.parametrize("kind, reverse", [("elman", False), ("lstm", True), ("peephole", False), ("gru", True)])
def test_scanned_rnn_equals_python_loop_over_the_cell(kind, reverse, key):
    cell = CELLS[kind](4)
    x = jax.random.normal(jax.random.key(1), (3, 6, 2))
    layer = RNN(cell, reverse=reverse)
    shape, params = layer.init(key, (-1, 6, 2))
    assert shape == (-1, 6, 4)
    ys = layer.apply(params, x)
    carry, ref, order = cell.initial_carry((3,)), [None] * 6, range(5, -1, -1) if reverse else range(6)
    for t in order:  # eager Python loop, no scan
        carry, ref[t] = cell.apply(params, carry, x[:, t])
    np.testing.assert_allclose(ys, np.stack(ref, 1), rtol=1e-5, atol=1e-6)
    last = RNN(cell, return_sequences=False, reverse=reverse).apply(params, x)
    np.testing.assert_allclose(last, ref[0 if reverse else -1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, reverse", [("lstm", False), ("gru", True)])
def test_masking_equals_running_the_unpadded_sequences(kind, reverse, key):
    cell, T = CELLS[kind](4), 7
    lengths = np.array([7, 4, 1, 0])
    x = jax.random.normal(jax.random.key(2), (4, T, 3))
    x = x.at[1, 4:].set(100.0)  # padding content must not matter
    params = RNN(cell).init(key, (-1, T, 3))[1]
    seq, last = RNN(cell, True, reverse), RNN(cell, False, reverse)
    ys, y_last = seq.apply(params, x, lengths=lengths), last.apply(params, x, lengths=lengths)
    np.testing.assert_array_equal(ys, seq.apply(params, x, mask=sequence_mask(lengths, T)))
    for b, L in enumerate(lengths):
        if L == 0:
            np.testing.assert_array_equal(ys[b], 0.0)
            np.testing.assert_array_equal(y_last[b], 0.0)
            continue
        ref = seq.apply(params, x[b:b + 1, :L])[0]
        np.testing.assert_allclose(ys[b, :L], ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(ys[b, L:], 0.0)
        np.testing.assert_allclose(y_last[b], ref[0 if reverse else -1], rtol=1e-5, atol=1e-6)


def test_mask_with_holes_skips_the_masked_steps(key):
    cell = LSTMCell(3)
    x = jax.random.normal(jax.random.key(3), (1, 6, 2))
    params = cell.init(key, 2)
    keep = np.array([True, False, True, True, False, True])
    carry, ys = scan_cell(cell, params, x, mask=jnp.asarray(keep[None]))[:2]
    carry_ref, ys_ref = scan_cell(cell, params, x[:, keep])[:2]
    np.testing.assert_allclose(ys[0, keep], ys_ref[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ys[0, ~keep], 0.0)
    np.testing.assert_allclose(carry.c, carry_ref.c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_equals_forward_plus_reversed_run(return_sequences, key):
    rnn = RNN(GRUCell(3), return_sequences=return_sequences)
    bi = Bidirectional(rnn)
    lengths = np.array([5, 3])
    x = jax.random.normal(jax.random.key(4), (2, 5, 2))
    shape, params = bi.init(key, (-1, 5, 2))
    assert isinstance(params, BidirectionalParams)
    assert shape == ((-1, 5, 6) if return_sequences else (-1, 6))
    y = bi.apply(params, x, lengths=lengths)
    fwd = RNN(GRUCell(3))
    for b, L in enumerate(lengths):
        xb = x[b:b + 1, :L]
        yf = fwd.apply(params.forward, xb)[0]
        yb = fwd.apply(params.backward, xb[:, ::-1])[0][::-1]  # run on the reversed sequence, reverse back
        if return_sequences:
            np.testing.assert_allclose(y[b, :L], np.concatenate([yf, yb], -1), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(y[b, L:], 0.0)
        else:
            np.testing.assert_allclose(y[b], np.concatenate([yf[-1], yb[0]]), rtol=1e-5, atol=1e-6)
    y_sum = Bidirectional(rnn, merge="sum").apply(params, x, lengths=lengths)
    np.testing.assert_allclose(y_sum, y[..., :3] + y[..., 3:], rtol=1e-6)


def test_stacking_with_serial_passes_the_mask_to_every_level(key):
    model = serial(RNN(LSTMCell(5)), RNN(GRUCell(4), return_sequences=False), Dense(2))
    shape, params = model.init(key, (-1, 6, 3))
    assert shape == (-1, 2)
    x = jax.random.normal(jax.random.key(5), (2, 6, 3))
    out = model.apply(params, x, lengths=np.array([6, 2]))
    np.testing.assert_allclose(out[1], model.apply(params, x[1:, :2])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: RNN(LSTMCell(3, peephole=True), False),
                                  lambda: RNN(GRUCell(3), reverse=True), lambda: Bidirectional(RNN(SimpleRNNCell(3)))],
                         ids=["peephole-last", "gru-reverse", "bi-elman"])
def test_jit_vmap_grad(make, key):
    layer = make()
    x = jax.random.normal(jax.random.key(6), (4, 2, 5, 2))
    lengths = jnp.array([[5, 2], [1, 3], [4, 4], [5, 0]])
    params = layer.init(key, (-1, 5, 2))[1]
    jitted = jax.jit(layer.apply)
    looped = jnp.stack([jitted(params, x[i], lengths=lengths[i]) for i in range(4)])
    vmapped = jax.jit(jax.vmap(lambda xi, li: layer.apply(params, xi, lengths=li)))(x, lengths)
    np.testing.assert_allclose(vmapped, looped, rtol=1e-5, atol=1e-6)
    with jax.enable_x64(True):  # backpropagation through time against central finite differences
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64 = jnp.asarray(x[0], jnp.float64)
        check_grads(jax.jit(lambda p: jnp.sum(jnp.sin(layer.apply(p, x64, lengths=lengths[0])))), (p64,), order=1,
                    modes=["rev"], eps=1e-5, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("make, name", [(SimpleRNNCell, "SimpleRNNCell"), (LSTMCell, "LSTMCell"),
                                        (GRUCell, "GRUCell")])
def test_hidden_size_zero_is_rejected(make, name):
    with pytest.raises(ValueError, match=rf"{name}: expected a positive integer hidden_size, got 0"):
        make(0)


def test_bad_input_errors_name_the_layer(key):
    layer = RNN(LSTMCell(3))
    with pytest.raises(ValueError, match=r"RNN\(LSTMCell\): expected inputs of rank 3 \(batch, time, features\), "
                                         r"got shape \(4, 2\)"):
        layer.init(key, (4, 2))
    params = layer.init(key, (-1, 5, 2))[1]
    with pytest.raises(ValueError, match=r"RNN\(LSTMCell\): expected inputs of rank 3 .*got shape \(5, 2\)"):
        layer.apply(params, jnp.ones((5, 2)))
    x = jnp.ones((4, 5, 2))
    with pytest.raises(ValueError, match=r"RNN\(LSTMCell\): expected a mask of shape \(batch, time\) = \(4, 5\), "
                                         r"got shape \(5, 4\)"):
        layer.apply(params, x, mask=jnp.ones((5, 4), bool))
    with pytest.raises(ValueError, match=r"RNN\(LSTMCell\): expected lengths of shape \(batch,\) = \(4,\), got "
                                         r"shape \(4, 1\)"):
        layer.apply(params, x, lengths=jnp.ones((4, 1), int))
    with pytest.raises(ValueError, match=r"RNN\(LSTMCell\): expected either mask= or lengths=, got both"):
        layer.apply(params, x, lengths=jnp.ones(4, int), mask=jnp.ones((4, 5), bool))
    with pytest.raises(ValueError, match=r"LSTMCell: expected inputs with last dimension 2, got shape \(4, 3\)"):
        layer.apply(params, jnp.ones((4, 5, 3)))
    with pytest.raises(TypeError, match=r"RNN: expected a Cell"):
        RNN(Dense(3))
    with pytest.raises(TypeError, match=r"Bidirectional: expected a layer built by RNN"):
        Bidirectional(Dense(3))
    with pytest.raises(ValueError, match=r"Bidirectional: expected merge to be 'concat' or 'sum', got 'max'"):
        Bidirectional(layer, merge="max")


def test_gradient_clipping_tames_exploding_gradients():
    ex = _load_example("exploding_gradients")
    r = ex.run(quick=True)
    assert r["grad_norm_first"] > 50 * r["clip_norm"]            # the gradient really explodes
    assert not np.isfinite(r["loss_plain"]) or r["loss_plain"] > 10 * r["loss_start"]  # plain SGD blows up
    assert r["loss_clipped"] < 0.5 * r["loss_start"]             # clipped SGD learns


def test_rnn_memory_example_quick():
    ex = _load_example("rnn_memory")
    x, y = ex.adding_batch(jax.random.key(0), 500, 20)
    markers = np.asarray(x[..., 1])
    assert np.all(markers.sum(1) == 2) and np.all(markers[:, :10].sum(1) == 1)  # one marker in each half
    np.testing.assert_allclose(y[:, 0], np.sum(np.asarray(x[..., 0]) * markers, 1), rtol=1e-6)
    r = ex.train_and_test("LSTM", 10, hidden=8, steps=40, batch=16, lr=1e-2, n_test=200)
    assert r["mse"] < 0.5 and 0.0 <= r["accuracy"] <= 1.0


def test_gru_fashion_example_quick(fashion_mnist):
    r = _load_example("gru_fashion").run(quick=True)
    assert r["test_accuracy"] > 0.4  # 10 classes: chance is 0.1 (this seed gives 0.575)
