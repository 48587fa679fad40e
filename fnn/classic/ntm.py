"""The Neural Turing Machine: a controller network reading from and writing to a memory matrix through soft,
differentiable attention ("heads").

Symbols as in the paper: memory ``M`` (N, W) of N locations of width W (the paper's N x M; here W, so that M names
the matrix), a weighting ``w`` (N,) over locations (``w >= 0``, ``sum w = 1``), for each head the controller emits

    k (W,) key, beta >= 0 key strength, g in (0, 1) gate, s (2S+1,) shift weighting over the shifts -S..S,
    gamma >= 1 sharpening, and for the write head also e in (0, 1)^W erase and a (W,) add vectors.

Addressing (one head, one step), each a public pure function of single-head arrays (``jax.vmap`` adds heads and
the batch):

    read            r = sum_i w(i) M(i)                                             eq. (2)   :func:`read`
    write (erase)   M~(i) = M(i) * (1 - w(i) e)                                     eq. (3)   :func:`write`
    write (add)     M'(i) = M~(i) + w(i) a                                          eq. (4)
    content         w_c(i) = softmax_i(beta K(k, M(i))),  K = cosine similarity     eqs. (5)-(6) :func:`content_weights`
    interpolation   w_g = g w_c + (1 - g) w_prev                                    eq. (7)   :func:`interpolate`
    shift           w~(i) = sum_j w_g(j) s(i - j mod N)  (circular convolution)     eq. (8)   :func:`shift`
    sharpening      w(i) = w~(i)^gamma / sum_j w~(j)^gamma                          eq. (9)   :func:`sharpen`

The model (:func:`neural_turing_machine`): an LSTM (``fnn.layers.LSTMCell``) or feed-forward
(``fnn.layers.Dense`` + tanh) controller sees ``[x_t, r_{t-1}]``; one Dense layer per head maps its output h_t to
the head's raw parameters (:func:`head_outputs` applies the nonlinearities); the read heads address the memory as
it was, the write head then writes; the output is ``y_t = Dense([h_t, r_t])`` (logits). Each step is a pure
function (``NTM.step``); a sequence is one ``jax.lax.scan`` over time (``NTM.apply``), vmapped over the batch.

Choices the paper leaves open, taken from Collier & Beel's study of NTM implementations: the memory starts at the
constant 1e-6 (not learned), the initial weightings are learned (softmax of a bias vector per head), the initial
read vectors are learned (tanh of a bias). k is linear, a is tanh.

Reference: Graves, Wayne & Danihelka, "Neural Turing Machines", arXiv:1410.5401, 2014, sec. 3 (eqs. 2-9), sec. 4.1
(the copy task); Collier & Beel, "Implementing Neural Turing Machines", ICANN 2018, arXiv:1807.08518, sec. 3.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from fnn.layers import Dense, LSTMCell

__all__ = ["content_weights", "interpolate", "shift", "sharpen", "read", "write", "address", "HeadOutputs",
           "head_outputs", "head_sizes", "NTMParams", "NTMState", "NTM", "neural_turing_machine"]

_EPS = 1e-8


# --------------------------------------------------------------------------------------------- addressing (eqs 2-9)
def content_weights(k, beta, memory):
    """Content addressing, eqs. (5)-(6): ``w_c(i) = softmax_i(beta * cos(k, M(i)))``.

    ``cos(u, v) = u.v / (||u|| ||v|| + 1e-8)`` (the small constant keeps an all-zero row finite).

    Args:
      k: (W,) key. beta: scalar key strength >= 0. memory: (N, W).

    Returns:
      (N,) weighting, non-negative, summing to 1.

    Example:
      >>> content_weights(jnp.array([1.0, 0.0]), 50.0, jnp.array([[1.0, 0.0], [0.0, 1.0]])).round(3).tolist()
      [1.0, 0.0]

    Reference: Graves et al., "Neural Turing Machines", 2014, sec. 3.3.1, eqs. (5)-(6).
    """
    sim = memory @ k / (jnp.linalg.norm(memory, axis=-1) * jnp.linalg.norm(k) + _EPS)
    return jax.nn.softmax(beta * sim)


def interpolate(w_c, w_prev, g):
    """Location gate, eq. (7): ``w_g = g w_c + (1 - g) w_prev``; g = 1 uses content, g = 0 keeps the last weighting.

    Args:
      w_c, w_prev: (N,) weightings. g: scalar in [0, 1].

    Returns:
      (N,) weighting.

    Example:
      >>> interpolate(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]), 0.25).tolist()
      [0.25, 0.75]
    """
    return g * w_c + (1 - g) * w_prev


def shift(w_g, s):
    """Rotation by circular convolution, eq. (8): ``w~(i) = sum_j w_g(j) s(i - j mod N)``.

    ``s`` (2S+1,) weights the shifts ``-S, ..., 0, ..., S`` (entry S is "stay"), so the sum runs over the shifts:
    ``w~ = sum_{d=-S..S} s[d + S] * roll(w_g, d)``; a one-hot s at shift +1 moves the focus one location forward.

    Args:
      w_g: (N,) weighting. s: (2S+1,) shift weighting (non-negative, sum 1), 2S+1 <= N.

    Returns:
      (N,) weighting.

    Example:
      >>> shift(jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 0.0, 1.0])).tolist()
      [0.0, 1.0, 0.0]

    Reference: Graves et al., "Neural Turing Machines", 2014, sec. 3.3.2, eq. (8).
    """
    S = (s.shape[-1] - 1) // 2
    if s.shape[-1] % 2 != 1 or s.shape[-1] > w_g.shape[-1]:
        raise ValueError(f"shift: expected an odd number 2S+1 <= N = {w_g.shape[-1]} of shift weights (shifts -S..S),"
                         f" got {s.shape[-1]}; pass s of length 3 for the shifts -1, 0, +1")
    return sum(s[d + S] * jnp.roll(w_g, d) for d in range(-S, S + 1))


def sharpen(w, gamma):
    """Sharpening, eq. (9): ``w(i) = w~(i)^gamma / sum_j w~(j)^gamma`` with gamma >= 1.

    Computed as ``(w~ + 1e-16)^gamma`` so that the gradient in gamma (``w^gamma log w``) stays finite where w~ = 0.

    Args:
      w: (N,) weighting. gamma: scalar >= 1.

    Returns:
      (N,) weighting.

    Example:
      >>> [round(float(v), 4) for v in sharpen(jnp.array([0.25, 0.75]), 2.0)]
      [0.1, 0.9]
    """
    p = (w + 1e-16) ** gamma
    return p / jnp.sum(p)


def read(w, memory):
    """Reading, eq. (2): ``r = sum_i w(i) M(i)``, a convex combination of the rows of M.

    Args:
      w: (N,) weighting. memory: (N, W).

    Returns:
      (W,) read vector.

    Example:
      >>> read(jnp.array([0.5, 0.5]), jnp.array([[1.0, 0.0], [0.0, 1.0]])).tolist()
      [0.5, 0.5]
    """
    return w @ memory


def write(memory, w, e, a):
    """Writing, eqs. (3)-(4): erase ``M~(i) = M(i) * (1 - w(i) e)``, then add ``M'(i) = M~(i) + w(i) a``.

    Args:
      memory: (N, W). w: (N,) weighting. e: (W,) erase vector in [0, 1]. a: (W,) add vector.

    Returns:
      (N, W) the new memory.

    Example:
      >>> write(jnp.ones((2, 2)), jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0]), jnp.array([0.0, 3.0])).tolist()
      [[0.0, 4.0], [1.0, 1.0]]

    Reference: Graves et al., "Neural Turing Machines", 2014, sec. 3.2, eqs. (3)-(4).
    """
    return memory * (1 - jnp.outer(w, e)) + jnp.outer(w, a)


class HeadOutputs(NamedTuple):
    k: jax.Array      # (W,) key
    beta: jax.Array   # () key strength >= 0
    g: jax.Array      # () interpolation gate in (0, 1)
    s: jax.Array      # (2S+1,) shift weighting, sum 1
    gamma: jax.Array  # () sharpening >= 1
    e: jax.Array | None  # (W,) erase vector in (0, 1); None for a read head
    a: jax.Array | None  # (W,) add vector; None for a read head


def head_sizes(width: int, shifts: int, write_head: bool) -> int:
    """The number of raw controller outputs a head needs: ``W + 1 + 1 + (2S+1) + 1`` (+ 2W for e and a)."""
    return width + 3 + (2 * shifts + 1) + (2 * width if write_head else 0)


def address(head: HeadOutputs, w_prev, memory):
    """The whole addressing chain, Figure 2: content (5-6) -> interpolation (7) -> shift (8) -> sharpening (9).

    Example:
      >>> h = head_outputs(jnp.zeros(8), width=2, shifts=1, write_head=False)
      >>> address(h, jnp.array([1.0, 0.0, 0.0, 0.0]), jnp.ones((4, 2))).shape
      (4,)
    """
    w_c = content_weights(head.k, head.beta, memory)
    return sharpen(shift(interpolate(w_c, w_prev, head.g), head.s), head.gamma)


def head_outputs(raw, width: int, shifts: int, write_head: bool) -> HeadOutputs:
    """Split a head's raw controller outputs and apply the paper's constraints (sec. 3.3).

    ``k`` linear, ``beta = softplus``, ``g = sigmoid``, ``s = softmax`` over the 2S+1 shifts,
    ``gamma = 1 + softplus``, ``e = sigmoid``, ``a = tanh``.

    Args:
      raw: (head_sizes(width, shifts, write_head),) one head's slice of the controller's output layer.
      width: W. shifts: S (shifts -S..S allowed). write_head: also return e and a.

    Returns:
      :class:`HeadOutputs` (e and a None for a read head).

    Example:
      >>> h = head_outputs(jnp.zeros(12), width=2, shifts=1, write_head=True)
      >>> round(float(h.gamma), 4), [round(float(v), 4) for v in h.s], h.e.tolist()
      (1.6931, [0.3333, 0.3333, 0.3333], [0.5, 0.5])
    """
    n = head_sizes(width, shifts, write_head)
    if raw.shape != (n,):
        raise ValueError(f"head_outputs: expected raw outputs of shape ({n},) for width={width}, shifts={shifts}, "
                         f"write_head={write_head}, got shape {raw.shape}; size the head's Dense layer with "
                         f"head_sizes(width, shifts, write_head)")
    W, n_s = width, 2 * shifts + 1
    k, beta, g, s, gamma = (raw[:W], raw[W], raw[W + 1], raw[W + 2:W + 2 + n_s], raw[W + 2 + n_s])
    e = a = None
    if write_head:
        rest = raw[W + 3 + n_s:]
        e, a = jax.nn.sigmoid(rest[:W]), jnp.tanh(rest[W:])
    return HeadOutputs(k, jax.nn.softplus(beta), jax.nn.sigmoid(g), jax.nn.softmax(s), 1 + jax.nn.softplus(gamma),
                       e, a)


# --------------------------------------------------------------------------------------------------------- model
class NTMParams(NamedTuple):
    controller: object   # LSTMParams, or DenseParams for the feed-forward controller
    read_heads: tuple    # one DenseParams per read head: h (C,) -> raw (head_sizes(W, S, False),)
    write_head: object   # DenseParams: h (C,) -> raw (head_sizes(W, S, True),)
    out: object          # DenseParams: [h, r_1..r_R] (C + R W,) -> logits (d_out,)
    w0: jax.Array        # (R + 1, N) logits of the initial weightings (read heads, then the write head)
    r0: jax.Array        # (R, W) pre-tanh initial read vectors


class NTMState(NamedTuple):
    controller: object   # LSTMState(h, c) (each (C,)), or () for the feed-forward controller
    memory: jax.Array    # (N, W)
    w_read: jax.Array    # (R, N) the read weightings of the last step
    w_write: jax.Array   # (N,) the write weighting of the last step
    reads: jax.Array     # (R, W) the read vectors of the last step


class NTM(NamedTuple):
    """``init(key, input_dim) -> NTMParams``; ``initial_state(params) -> NTMState`` (one sequence);
    ``step(params, state, x (d_in,)) -> (state, y (d_out,))`` (one step, one sequence);
    ``apply(params, xs (batch, T, d_in), return_state=False) -> ys (batch, T, d_out)`` logits, or with
    ``return_state=True`` ``(ys, states)`` whose leaves have leading axes (batch, T): the weightings over time."""

    init: Callable
    initial_state: Callable
    step: Callable
    apply: Callable
    memory_shape: tuple


def _positive_int(name, **values):
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"neural_turing_machine: expected a positive integer {k}, got {v!r}; e.g. {name}")


def neural_turing_machine(output_dim: int, memory_shape: tuple = (128, 20), controller_size: int = 100,
                          controller: str = "lstm", read_heads: int = 1, shifts: int = 1) -> NTM:
    """A Neural Turing Machine with ``read_heads`` read heads and one write head (the copy task's configuration).

    Per step: ``(h_t, ctrl) = controller([x_t, r_{t-1}])``; read weightings from the memory M_{t-1}, reads r_t
    (eq. 2); write weighting, then M_t = write(M_{t-1}, w, e, a) (eqs. 3-4); ``y_t = [h_t, r_t] W_o + b_o``.

    Args:
      output_dim: d_out. memory_shape: (N, W). controller_size: C, units of the controller.
      controller: "lstm" or "feedforward" (one Dense layer with tanh). read_heads: R >= 1. shifts: S, the allowed
        shifts are -S..S (the paper's copy task: S = 1).

    Returns:
      An :class:`NTM`.

    Example:
      >>> model = neural_turing_machine(3, memory_shape=(8, 4), controller_size=16)
      >>> params = jax.eval_shape(lambda key: model.init(key, 5), jax.random.key(0))   # shapes only: fast
      >>> params.read_heads[0].W.shape, jax.eval_shape(model.apply, params, jnp.zeros((2, 7, 5))).shape
      ((16, 10), (2, 7, 3))

    Reference: Graves, Wayne & Danihelka, "Neural Turing Machines", arXiv:1410.5401, 2014, sec. 3 and 4.1.
    """
    _positive_int("neural_turing_machine(8, memory_shape=(128, 20))", output_dim=output_dim,
                  controller_size=controller_size, read_heads=read_heads, shifts=shifts)
    if controller not in ("lstm", "feedforward"):
        raise ValueError(f"neural_turing_machine: expected controller 'lstm' or 'feedforward', got {controller!r}")
    if not (isinstance(memory_shape, tuple) and len(memory_shape) == 2
            and all(isinstance(d, int) and d >= 1 for d in memory_shape)):
        raise ValueError(f"neural_turing_machine: expected memory_shape = (N locations, W width) of positive ints, got "
                         f"{memory_shape!r}; e.g. memory_shape=(128, 20)")
    N, W = memory_shape
    if 2 * shifts + 1 > N:
        raise ValueError(f"neural_turing_machine: expected 2 * shifts + 1 <= N = {N} locations, got "
                         f"shifts={shifts}; lower shifts or enlarge the memory")
    R, C = read_heads, controller_size
    cell = LSTMCell(C)
    dense_ctrl, dense_read = Dense(C), Dense(head_sizes(W, shifts, False))
    dense_write, dense_out = Dense(head_sizes(W, shifts, True)), Dense(output_dim)

    def init(key, input_dim):
        _positive_int("model.init(key, 9)", input_dim=input_dim)
        kc, kw, ko, *kr = jax.random.split(key, 3 + R)
        d_ctrl = input_dim + R * W
        ctrl = cell.init(kc, d_ctrl) if controller == "lstm" else dense_ctrl.init(kc, (d_ctrl,))[1]
        reads = tuple(dense_read.init(k, (C,))[1] for k in kr)
        w0 = jnp.zeros((R + 1, N)).at[:, 0].set(10.0)   # start focused on location 0
        return NTMParams(ctrl, reads, dense_write.init(kw, (C,))[1], dense_out.init(ko, (C + R * W,))[1], w0,
                         jnp.zeros((R, W)))

    def initial_state(params):
        w0, dtype = jax.nn.softmax(params.w0, axis=-1), params.r0.dtype
        ctrl = cell.initial_carry((), dtype) if controller == "lstm" else ()
        return NTMState(ctrl, jnp.full((N, W), 1e-6, dtype), w0[:R], w0[R], jnp.tanh(params.r0))

    def step(params, state, x):
        inp = jnp.concatenate([x, state.reads.reshape(-1)])
        if controller == "lstm":
            ctrl, h = cell.apply(params.controller, state.controller, inp)
        else:
            ctrl, h = (), jnp.tanh(dense_ctrl.apply(params.controller, inp))
        heads = [head_outputs(dense_read.apply(p, h), W, shifts, False) for p in params.read_heads]
        w_read = jnp.stack([address(hd, state.w_read[i], state.memory) for i, hd in enumerate(heads)])
        reads = jax.vmap(read, (0, None))(w_read, state.memory)
        wh = head_outputs(dense_write.apply(params.write_head, h), W, shifts, True)
        w_write = address(wh, state.w_write, state.memory)
        memory = write(state.memory, w_write, wh.e, wh.a)
        y = dense_out.apply(params.out, jnp.concatenate([h, reads.reshape(-1)]))
        return NTMState(ctrl, memory, w_read, w_write, reads), y

    def apply(params, xs, return_state=False):
        if xs.ndim != 3:
            raise ValueError(f"NTM.apply: expected inputs of shape (batch, time, features), got shape {xs.shape}; "
                             f"add a batch axis with xs[None]")
        d_in = (params.controller.W.shape[0]) - R * W
        if xs.shape[-1] != d_in:
            raise ValueError(f"NTM.apply: expected {d_in} input features (the input_dim given to init), got shape "
                             f"{xs.shape}")

        def one(x_seq):
            def body(state, x):
                state, y = step(params, state, x)
                return state, ((y, state) if return_state else y)
            return jax.lax.scan(body, initial_state(params), x_seq)[1]

        return jax.vmap(one)(xs)

    return NTM(init, initial_state, step, apply, (N, W))
