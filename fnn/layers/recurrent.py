"""Recurrent layers: Elman, LSTM and GRU cells, a scanned ``RNN`` layer, masking, ``Bidirectional``.

Two contracts, stated once here.

A **cell** is one time step, ``Cell(init, apply, initial_carry, hidden_size, name)``:

    init(key, input_dim) -> params                  # a NamedTuple: SimpleRNNParams, LSTMParams, GRUParams
    apply(params, carry, x) -> (carry, y)           # x (..., input_dim), y (..., hidden_size)
    initial_carry(batch_shape, dtype=float32) -> carry   # zeros; h (*batch_shape, H), LSTM adds c

The carry is ``h`` for the Elman and GRU cells and ``LSTMState(h, c)`` for the LSTM; ``y`` is always ``h``.

A **recurrent layer** ``RNN(cell, return_sequences=True, reverse=False)`` obeys the layer contract of
``fnn/layers/base.py`` and runs the cell over a batch of sequences with ``jax.lax.scan``; backpropagation through
time is
then ``jax.grad`` of whatever loss uses it. Its ``apply`` takes inputs ``(batch, time, features)`` and optionally

    mask=    (batch, time), True where a step is real and False at padding, or
    lengths= (batch,), the number of real steps of each sequence (padding at the end), integers in [0, time]
    (checked when concrete; under ``jit`` they cannot be checked and are clipped to that range),

at a masked step the carry passes through unchanged and the output is zero, so a padded sequence ends in the
same state as the unpadded one. Inside ``serial`` the keyword reaches every layer, so a stack of RNNs
(``serial(RNN(c1), RNN(c2, return_sequences=False))``) masks every level with the same mask.

Reference: Goodfellow, Bengio & Courville, *Deep Learning*, MIT Press 2016, ch. 10 (eqs. 10.8, 10.40-10.46).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import initializers as ini
from fnn.layers.base import Layer

__all__ = [
    "Cell", "SimpleRNNCell", "SimpleRNNParams", "LSTMCell", "LSTMParams", "LSTMState", "GRUCell", "GRUParams",
    "RNN", "RNNLayer", "Bidirectional", "BidirectionalParams", "scan_cell", "sequence_mask",
]


class Cell(NamedTuple):
    """One recurrent time step (see the module docstring for the contract)."""

    init: Callable          # (key, input_dim) -> params
    apply: Callable         # (params, carry, x) -> (carry, y)
    initial_carry: Callable  # (batch_shape, dtype=float32) -> carry of zeros
    hidden_size: int
    name: str


class SimpleRNNParams(NamedTuple):
    W: jax.Array  # (d_in, H) input-to-hidden
    U: jax.Array  # (H, H) hidden-to-hidden
    b: jax.Array  # (H,)


class LSTMParams(NamedTuple):
    W: jax.Array  # (d_in, 4H) input weights of the gates [i | f | g | o]
    U: jax.Array  # (H, 4H) recurrent weights, same column blocks
    b: jax.Array  # (4H,) biases, the forget block starts at forget_bias
    P: jax.Array | None  # (3, H) peephole weights [p_i; p_f; p_o], None without peepholes


class LSTMState(NamedTuple):
    h: jax.Array  # (..., H) hidden state (the output)
    c: jax.Array  # (..., H) cell state (the memory)


class GRUParams(NamedTuple):
    W: jax.Array  # (d_in, 3H) input weights of [z | r | n]
    U: jax.Array  # (H, 3H) recurrent weights, same column blocks
    b: jax.Array  # (3H,)


def _check_hidden(name: str, hidden_size) -> int:
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
        raise ValueError(f"{name}: expected a positive integer hidden_size, got {hidden_size!r}; "
                         f"pass the number of hidden units, e.g. {name}(64)")
    return hidden_size


def _check_input_dim(name: str, input_dim) -> int:
    if input_dim in (None, -1) or int(input_dim) < 1:
        raise ValueError(f"{name}: expected a known positive input dimension, got {input_dim!r}")
    return int(input_dim)


def _check_x(name: str, params, x):
    if x.shape[-1:] != params.W.shape[:1]:
        raise ValueError(f"{name}: expected inputs with last dimension {params.W.shape[0]}, got shape {x.shape}; "
                         f"re-initialize the cell with the right input_dim")


def _lead(v, like):
    """``v`` reshaped to broadcast against ``like`` along its trailing axes (explicit: strict rank promotion)."""
    return jnp.reshape(v, (1,) * (like.ndim - v.ndim) + v.shape)


def _zeros_carry(hidden_size: int):
    def initial_carry(batch_shape=(), dtype=jnp.float32):
        return jnp.zeros(tuple(batch_shape) + (hidden_size,), dtype)
    return initial_carry


def SimpleRNNCell(hidden_size: int, activation: Callable = jnp.tanh, W_init=ini.glorot_uniform(),
                  U_init=ini.orthogonal(), b_init=ini.zeros) -> Cell:
    """The Elman (vanilla) recurrent cell: ``h' = activation(x W + h U + b)``; carry and output are ``h'``.

    Args:
      hidden_size: H, the number of hidden units (> 0).
      activation: elementwise nonlinearity (default tanh).
      W_init, U_init, b_init: initializers of W (d_in, H), U (H, H) and b (H,).

    Returns:
      A :class:`Cell`; ``apply(params, h, x)`` maps x (..., d_in), h (..., H) to ``(h', h')``.

    Example:
      >>> cell = SimpleRNNCell(8); params = cell.init(jax.random.key(0), 3)
      >>> h, y = cell.apply(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
      >>> y.shape
      (2, 8)

    Reference: Elman, "Finding structure in time", Cognitive Science 14, 1990 (the context-unit network);
    Goodfellow et al., *Deep Learning*, 2016, eq. (10.8).
    """
    name = "SimpleRNNCell"
    H = _check_hidden(name, hidden_size)

    def init(key, input_dim):
        d = _check_input_dim(name, input_dim)
        kW, kU, kb = jax.random.split(key, 3)
        return SimpleRNNParams(W_init(kW, (d, H)), U_init(kU, (H, H)), b_init(kb, (H,)))

    def apply(params, h, x):
        _check_x(name, params, x)
        z = x @ params.W + h @ params.U
        h = activation(z + _lead(params.b, z))
        return h, h

    return Cell(init, apply, _zeros_carry(H), H, name)


def LSTMCell(hidden_size: int, peephole: bool = False, forget_bias: float = 1.0, W_init=ini.glorot_uniform(),
             U_init=ini.orthogonal(), b_init=ini.zeros, P_init=ini.zeros) -> Cell:
    """Long short-term memory cell with forget gate and, optionally, peephole connections.

    With ``[a_i | a_f | a_g | a_o] = x W + h U + b`` (each block of width H) and ``[p_i; p_f; p_o] = P``:

        i  = sigmoid(a_i + p_i * c)          input gate      (peephole terms only with peephole=True)
        f  = sigmoid(a_f + p_f * c)          forget gate
        g  = tanh(a_g)                       candidate
        c' = f * c + i * g                   new cell state
        o  = sigmoid(a_o + p_o * c')         output gate (its peephole looks at the *new* cell state)
        h' = o * tanh(c')

    The carry is ``LSTMState(h', c')`` and the output ``h'``. ``forget_bias`` is added to the forget block of b at
    init (Jozefowicz et al., ICML 2015, sec. 2.2; Gers et al. 2000 start the forget gate open as well).

    Args:
      hidden_size: H (> 0).
      peephole: add the diagonal peephole weights P (3, H) (Gers & Schmidhuber 2000).
      forget_bias: added to b_f at init.
      W_init, U_init, b_init, P_init: initializers of W (d_in, 4H), U (H, 4H), b (4H,), P (3, H).

    Returns:
      A :class:`Cell` with params :class:`LSTMParams` and carry :class:`LSTMState`.

    Example:
      >>> cell = LSTMCell(8, peephole=True); params = cell.init(jax.random.key(0), 3)
      >>> (h, c), y = cell.apply(params, cell.initial_carry((2,)), jnp.ones((2, 3)))

    Reference: Hochreiter & Schmidhuber, "Long short-term memory", Neural Computation 9(8), 1997; Gers, Schmidhuber
    & Cummins, "Learning to forget", Neural Computation 12(10), 2000; Gers & Schmidhuber, "Recurrent nets that time
    and count", IJCNN 2000 (peepholes); Graves, "Generating sequences with RNNs", arXiv:1308.0850, eqs. (7)-(11).
    """
    name = "LSTMCell"
    H = _check_hidden(name, hidden_size)

    def init(key, input_dim):
        d = _check_input_dim(name, input_dim)
        kW, kU, kb, kP = jax.random.split(key, 4)
        b = b_init(kb, (4 * H,)).at[H:2 * H].add(forget_bias)
        P = P_init(kP, (3, H)) if peephole else None
        return LSTMParams(W_init(kW, (d, 4 * H)), U_init(kU, (H, 4 * H)), b, P)

    def apply(params, carry, x):
        _check_x(name, params, x)
        h, c = carry
        a = x @ params.W + h @ params.U
        a_i, a_f, a_g, a_o = jnp.split(a + _lead(params.b, a), 4, axis=-1)
        if peephole:
            a_i, a_f = a_i + _lead(params.P[0], c) * c, a_f + _lead(params.P[1], c) * c
        i, f, g = jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), jnp.tanh(a_g)
        c = f * c + i * g
        o = jax.nn.sigmoid((a_o + _lead(params.P[2], c) * c) if peephole else a_o)
        h = o * jnp.tanh(c)
        return LSTMState(h, c), h

    def initial_carry(batch_shape=(), dtype=jnp.float32):
        zeros = jnp.zeros(tuple(batch_shape) + (H,), dtype)
        return LSTMState(zeros, zeros)

    return Cell(init, apply, initial_carry, H, name)


def GRUCell(hidden_size: int, W_init=ini.glorot_uniform(), U_init=ini.orthogonal(), b_init=ini.zeros) -> Cell:
    """Gated recurrent unit (Cho et al.'s form, reset gate applied before the recurrent product).

    With ``[a_z | a_r | a_n] = x W + b`` and ``[U_z | U_r | U_n] = U`` (blocks of width H):

        z  = sigmoid(a_z + h U_z)            update gate
        r  = sigmoid(a_r + h U_r)            reset gate
        n  = tanh(a_n + (r * h) U_n)         candidate
        h' = z * h + (1 - z) * n

    Cho et al.'s convention, ``z`` near 1 keeps the old state (PyTorch's too; some texts swap z and 1 - z).
    cuDNN/PyTorch apply r *after* the product, ``r * (h U_n)``; this cell follows the paper.

    Args:
      hidden_size: H (> 0).
      W_init, U_init, b_init: initializers of W (d_in, 3H), U (H, 3H), b (3H,).

    Returns:
      A :class:`Cell` with params :class:`GRUParams`; carry and output are h (..., H).

    Example:
      >>> cell = GRUCell(8); params = cell.init(jax.random.key(0), 3)
      >>> h, y = cell.apply(params, cell.initial_carry((2,)), jnp.ones((2, 3)))

    Reference: Cho et al., "Learning phrase representations using RNN encoder-decoder for statistical machine
    translation", EMNLP 2014, eqs. (5)-(8); Chung et al., "Empirical evaluation of gated recurrent neural networks
    on sequence modeling", arXiv:1412.3555, 2014, eqs. (5)-(8).
    """
    name = "GRUCell"
    H = _check_hidden(name, hidden_size)

    def init(key, input_dim):
        d = _check_input_dim(name, input_dim)
        kW, kU, kb = jax.random.split(key, 3)
        return GRUParams(W_init(kW, (d, 3 * H)), U_init(kU, (H, 3 * H)), b_init(kb, (3 * H,)))

    def apply(params, h, x):
        _check_x(name, params, x)
        a = x @ params.W
        a_z, a_r, a_n = jnp.split(a + _lead(params.b, a), 3, axis=-1)
        U_z, U_r, U_n = jnp.split(params.U, 3, axis=-1)
        z = jax.nn.sigmoid(a_z + h @ U_z)
        r = jax.nn.sigmoid(a_r + h @ U_r)
        n = jnp.tanh(a_n + (r * h) @ U_n)
        h = z * h + (1 - z) * n
        return h, h

    return Cell(init, apply, _zeros_carry(H), H, name)


def sequence_mask(lengths, max_len: int) -> jax.Array:
    """Boolean mask ``m[b, t] = t < lengths[b]``: (batch,) lengths -> (batch, max_len), padding at the end."""
    lengths = jnp.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"sequence_mask: expected lengths of shape (batch,), got shape {lengths.shape}")
    return jnp.arange(max_len)[None, :] < lengths[:, None]


def scan_cell(cell: Cell, params, xs, carry=None, mask=None, reverse: bool = False):
    """Run ``cell`` over time with ``jax.lax.scan``: the functional core of :func:`RNN`.

    For t = 1..T (or T..1 with ``reverse``): ``carry_t, y_t = cell.apply(params, carry_{t-1}, x_t)``; where
    ``mask[b, t]`` is False, ``carry_t = carry_{t-1}`` and ``y_t = 0`` for that sequence.

    Args:
      cell: a :class:`Cell`.
      params: the cell's params.
      xs: (batch, time, d_in) inputs.
      carry: the initial carry (default ``cell.initial_carry((batch,), xs.dtype)``, zeros).
      mask: optional (batch, time) booleans.
      reverse: scan from the last step to the first (outputs stay in input order).

    Returns:
      ``(carry, ys, y_last)``: the final carry, outputs ys (batch, time, H) and y_last (batch, H), the output of
      the last unmasked step processed (zeros if none).
    """
    B = xs.shape[0]
    if carry is None:
        carry = cell.initial_carry((B,), xs.dtype)
    y0 = jnp.zeros((B, cell.hidden_size), xs.dtype)
    ms = jnp.ones(xs.shape[:2], bool) if mask is None else mask

    def step(state, inputs):
        carry, y_last = state
        x_t, m_t = inputs
        new_carry, y = cell.apply(params, carry, x_t)
        if mask is not None:
            keep = m_t[:, None]
            new_carry = jax.tree_util.tree_map(lambda n, o: jnp.where(keep, n, o), new_carry, carry)
            y = jnp.where(keep, y, jnp.zeros_like(y))
            y_last = jnp.where(keep, y, y_last)
        else:
            y_last = y
        return (new_carry, y_last), y

    (carry, y_last), ys = jax.lax.scan(step, (carry, y0), (jnp.swapaxes(xs, 0, 1), ms.T), reverse=reverse)
    return carry, jnp.swapaxes(ys, 0, 1), y_last


def _resolve_mask(where: str, mask, lengths, batch_time):
    if mask is not None and lengths is not None:
        raise ValueError(f"{where}: expected either mask= or lengths=, got both; pass one of them")
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        if lengths.shape != batch_time[:1]:
            raise ValueError(f"{where}: expected lengths of shape (batch,) = {batch_time[:1]}, got shape "
                             f"{lengths.shape}")
        if not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise TypeError(f"{where}: expected integer lengths, got dtype {lengths.dtype}; cast with "
                            f"lengths.astype(int)")
        try:   # concrete lengths are checked; traced ones (under jit) are clipped to [0, time]
            concrete = np.asarray(lengths)
        except jax.errors.TracerArrayConversionError:
            concrete = None
        if concrete is not None and concrete.size and (concrete.min() < 0 or concrete.max() > batch_time[1]):
            raise ValueError(f"{where}: expected lengths in [0, {batch_time[1]}] (the number of real steps of each "
                             f"sequence, at most the time axis), got values in [{concrete.min()}, "
                             f"{concrete.max()}]; fix the lengths or pad the sequences to the longest one")
        return sequence_mask(jnp.clip(lengths, 0, batch_time[1]), batch_time[1])
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != tuple(batch_time):
            raise ValueError(f"{where}: expected a mask of shape (batch, time) = {tuple(batch_time)}, got shape "
                             f"{mask.shape}; use sequence_mask(lengths, time) to build one from lengths")
        return mask.astype(bool)
    return None


def _check_rank3(where: str, shape):
    if len(shape) != 3:
        raise ValueError(f"{where}: expected inputs of rank 3 (batch, time, features), got shape {tuple(shape)}; "
                         f"add a time axis (x[:, None, :]) or a batch axis (x[None]) as needed")


class RNNLayer(Layer):
    """A :class:`~fnn.layers.Layer` that remembers its ``cell``, ``return_sequences`` and ``reverse`` (built by
    :func:`RNN`; :func:`Bidirectional` reads them)."""

    def __new__(cls, init, apply, *, cell, return_sequences, reverse):
        self = super().__new__(cls, init, apply, kind="RNN", keywords=("mask", "lengths", "initial_carry"))
        self.cell, self.return_sequences, self.reverse = cell, return_sequences, reverse
        return self


def RNN(cell: Cell, return_sequences: bool = True, reverse: bool = False) -> RNNLayer:
    """A recurrent layer: run ``cell`` over (batch, time, features) inputs with ``lax.scan`` (see :func:`scan_cell`).

    ``apply(params, x, mask=None, lengths=None, initial_carry=None)`` returns the outputs ``ys`` (batch, time, H)
    with ``return_sequences=True``, else the output of the last real step (batch, H) (for ``reverse=True``, the
    step processed last, i.e. t = 1). Params are the cell's params.

    Args:
      cell: a :class:`Cell` (``SimpleRNNCell(H)``, ``LSTMCell(H)``, ``GRUCell(H)``).
      return_sequences: return every step's output, or only the last one.
      reverse: read the sequence from its end (padding at the end is skipped, as it is masked).

    Example:
      >>> from fnn.layers import Dense, serial
      >>> model = serial(RNN(LSTMCell(32)), RNN(GRUCell(16), return_sequences=False), Dense(10))
      >>> out_shape, params = model.init(jax.random.key(0), (-1, 28, 28))
      >>> out_shape
      (-1, 10)
      >>> model.apply(params, jnp.ones((2, 28, 28)), lengths=jnp.array([28, 5])).shape   # lengths reach both RNNs
      (2, 10)

    Reference: Werbos, "Backpropagation through time: what it does and how to do it", Proc. IEEE 78(10), 1990.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"RNN: expected a Cell (e.g. LSTMCell(64)), got {type(cell).__name__}: {cell!r}")
    where = f"RNN({cell.name})"

    def init(key, input_shape):
        _check_rank3(where, input_shape)
        params = cell.init(key, input_shape[-1])
        B, T = input_shape[0], input_shape[1]
        return ((B, T, cell.hidden_size) if return_sequences else (B, cell.hidden_size)), params

    def apply(params, inputs, *, mask=None, lengths=None, initial_carry=None, **kwargs):
        _check_rank3(where, inputs.shape)
        mask = _resolve_mask(where, mask, lengths, inputs.shape[:2])
        _, ys, y_last = scan_cell(cell, params, inputs, initial_carry, mask, reverse)
        return ys if return_sequences else y_last

    return RNNLayer(init, apply, cell=cell, return_sequences=return_sequences, reverse=reverse)


class BidirectionalParams(NamedTuple):
    forward: object   # params of the forward RNN
    backward: object  # params of the backward (reversed) RNN


def Bidirectional(rnn: RNNLayer, backward_cell: Cell | None = None, merge: str = "concat") -> Layer:
    """Run ``rnn`` and a reversed copy over the same sequence and merge the two outputs per step.

    ``y_t = [y_fwd_t ; y_bwd_t]`` (``merge="concat"``, width 2H) or ``y_fwd_t + y_bwd_t`` (``merge="sum"``), where
    the backward RNN reads x_T..x_1 (its outputs are put back in input order). With ``return_sequences=False`` the
    merged outputs are the forward RNN's last real step and the backward RNN's first step. Masks and lengths go
    to both directions. Params are :class:`BidirectionalParams` (forward, backward).

    Args:
      rnn: a layer built by :func:`RNN` (its cell, return_sequences and reverse are reused).
      backward_cell: the cell of the backward direction (default: the same kind of cell as ``rnn``'s, with its
        own params).
      merge: "concat" or "sum".

    Example:
      >>> layer = Bidirectional(RNN(GRUCell(32)))
      >>> layer.init(jax.random.key(0), (-1, 10, 3))[0]
      (-1, 10, 64)

    Reference: Schuster & Paliwal, "Bidirectional recurrent neural networks", IEEE Trans. Signal Processing 45(11),
    1997; Graves & Schmidhuber, Neural Networks 18, 2005 (bidirectional LSTM).
    """
    if not isinstance(rnn, RNNLayer):
        raise TypeError(f"Bidirectional: expected a layer built by RNN(cell, ...), got {type(rnn).__name__}")
    if merge not in ("concat", "sum"):
        raise ValueError(f"Bidirectional: expected merge to be 'concat' or 'sum', got {merge!r}")
    back_cell = rnn.cell if backward_cell is None else backward_cell
    if merge == "sum" and back_cell.hidden_size != rnn.cell.hidden_size:
        raise ValueError(f"Bidirectional: merge='sum' needs equal hidden sizes, got {rnn.cell.hidden_size} forward "
                         f"and {back_cell.hidden_size} backward")
    backward = RNN(back_cell, rnn.return_sequences, reverse=not rnn.reverse)

    def init(key, input_shape):
        kf, kb = jax.random.split(key)
        shape_f, pf = rnn.init(kf, input_shape)
        shape_b, pb = backward.init(kb, input_shape)
        width = shape_f[-1] + shape_b[-1] if merge == "concat" else shape_f[-1]
        return tuple(shape_f[:-1]) + (width,), BidirectionalParams(pf, pb)

    def apply(params, inputs, **kwargs):
        y_f = rnn.apply(params.forward, inputs, **kwargs)
        y_b = backward.apply(params.backward, inputs, **kwargs)
        return jnp.concatenate([y_f, y_b], axis=-1) if merge == "concat" else y_f + y_b

    return Layer(init, apply, kind="Bidirectional", keywords=("mask", "lengths"))
