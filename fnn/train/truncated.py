"""Truncated backpropagation through time (TBPTT): train a recurrent step function on one long sequence in windows.

The contract, stated once here. A **step** is one time step of the model, the cell contract of
``fnn.layers.recurrent`` extended by whatever the model adds around the cell (embedding, read-out)::

    step(params, carry, x_t) -> (carry, out_t)      # carry: any pytree (h, or LSTMState(h, c))
    loss(out_t, y_t) -> scalar                      # the loss of one step (e.g. the mean over a batch of streams)

The sequence is **time-major**: ``xs (T, ...)``, ``ys (T, ...)``; a batch of B parallel streams is ``(T, B, ...)``
and the step works on the batch axis itself. With k1 = steps between updates and k2 = steps backpropagated
(k1 <= k2), update i (i = 1..T/k1) ends at t_i = i k1 and minimises

    L_i(theta) = 1/k1 sum_{t = t_i - k1 + 1}^{t_i} loss(out_t, y_t),
    (h_t, out_t) = step(theta, h_{t-1}, x_t)  for t = t_i - k2 + 1 .. t_i,
    h_{t_i - k2} = stop_gradient(carried state)            (the zero carry for t_i - k2 <= 0)

so the error of each of the last k1 steps flows back to step ``t_i - k2 + 1`` and no further, and the state is
carried forward (not reset) from window to window. k1 = k2 = k is the common case (non-overlapping windows);
k1 < k2 is Williams & Peng's BPTT(h; h') with h = k2 (the depth) and h' = k1 (the update interval): the windows
overlap by k2 - k1 steps, and the overlap is recomputed with the current weights (Williams & Peng keep the states
computed with the weights of their time; the two differ only by the last update's change on those k2 - k1 steps).
k1 = k2 = T is full BPTT: ``jax.grad`` of the mean loss of the whole unrolled sequence.

The loop over windows is one ``lax.scan`` (each window a ``lax.scan`` over its steps) inside one ``jit``: compiled
once per (T, k1, k2, shapes). Its activation memory is that of one window of k2 steps, not of the sequence.

Reference: Williams & Peng, "An efficient gradient-based algorithm for on-line training of recurrent network
trajectories", Neural Computation 2(4), 1990, pp. 490-501 (BPTT(h; h'), sec. 2); Sutskever, *Training recurrent
neural networks*, PhD thesis, Toronto 2013, sec. 2.8.6 (the k1/k2 notation); Graves, "Generating sequences with
recurrent neural networks", arXiv:1308.0850, 2013, sec. 3 (state carried across windows, bits per character).
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.optimizers import apply_updates

__all__ = ["TBPTTResult", "check_windows", "window_loss", "make_tbptt", "tbptt", "bits_per_character",
           "run_steps"]


class TBPTTResult(NamedTuple):
    params: Any        # the trained params
    opt_state: Any     # the optimizer state after the last update
    carry: Any         # the state after the last step of the sequence (stop-gradient'ed), to carry on with
    losses: jax.Array  # (T / k1,) L_i of every window, evaluated before its update


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_windows(T: int, k1, k2=None, where: str = "tbptt") -> tuple[int, int, int]:
    """Validate the truncation lengths: returns ``(k1, k2, n_windows = T // k1)``.

    Args:
      T: the number of steps of the sequence (the leading axis of ``xs``).
      k1: steps between updates, 1 <= k1 <= T, dividing T.
      k2: steps backpropagated, k1 <= k2 <= T (default k1).

    Raises:
      TypeError for non-integers, ValueError for values out of range, with the way to fix them.
    """
    k2 = k1 if k2 is None else k2
    for name, k in (("k1", k1), ("k2", k2)):
        if not _is_int(k):
            raise TypeError(f"{where}: expected an integer {name}, got {type(k).__name__} {k!r}; pass a number of "
                            f"time steps, e.g. {name}=25")
        if not 1 <= k <= T:
            raise ValueError(f"{where}: expected 1 <= {name} <= T = {T} (the sequence length), got {name}={k}; "
                             f"choose a window no longer than the sequence")
    if k2 < k1:
        raise ValueError(f"{where}: expected k2 >= k1 (each update backpropagates at least the k1 steps it "
                         f"scores), got k1={k1}, k2={k2}; use k2=k1 for non-overlapping windows")
    if T % k1:
        raise ValueError(f"{where}: expected the sequence length T = {T} to be a multiple of k1 = {k1}; trim the "
                         f"sequence to xs[:{T // k1 * k1}] (or pick a k1 dividing {T})")
    return int(k1), int(k2), T // k1


def run_steps(step: Callable, params, carry, xs, valid=None):
    """``lax.scan`` of ``step`` over the leading (time) axis: returns ``(carry, outs)``.

    Where ``valid[t]`` is False the carry passes through unchanged (the padding in front of the first windows of
    BPTT(h; h')).

    Example:
      >>> step = lambda a, h, x: (a * h + x, a * h + x)
      >>> float(run_steps(step, 0.5, 0.0, jnp.ones(3))[0])     # h_3 = 0.25 + 0.5 + 1
      1.75
    """
    def body(c, inputs):
        x, v = inputs
        new, out = step(params, c, x)
        if valid is not None:
            new = jax.tree_util.tree_map(lambda n, o: jnp.where(v, n, o), new, c)
        return new, out

    v = jnp.ones(jax.tree_util.tree_leaves(xs)[0].shape[:1], bool) if valid is None else valid
    return jax.lax.scan(body, carry, (xs, v))


def window_loss(step: Callable, loss: Callable, params, carry, xs, ys, *, k1: int | None = None, valid=None,
                keep_at: int | None = None):
    """The loss of one window: ``1/k1 sum`` of the step losses of its last k1 steps, run from ``carry``.

    The gradient stops at ``carry`` (``lax.stop_gradient``), so ``jax.grad`` of this function is the truncated
    gradient of one window; with the whole sequence as the window it is full BPTT.

    Args:
      step, loss: the contracts of the module docstring.
      params: the model's params (differentiated).
      carry: the state entering the window.
      xs, ys: (k2, ...) the window's inputs and targets.
      k1: the number of scored steps at the end of the window (default all k2 of them).
      valid: optional (k2,) booleans, False at padding steps (carry unchanged; padding must not be scored).
      keep_at: also return the state after this many steps (default k1: where the next window starts).

    Returns:
      ``(L, (carry_at_keep_at, carry_at_k2))``: the mean loss of the scored steps, the state after ``keep_at``
      steps and the state at the end of the window.

    Example:
      >>> step = lambda a, h, x: (a * h + x, a * h + x)
      >>> sq = lambda out, y: 0.5 * (out - y) ** 2
      >>> # h = (1, 1.5); dL/da = mean(h_t dh_t/da) = (1 * 0 + 1.5 * h_1) / 2
      >>> float(jax.grad(lambda a: window_loss(step, sq, a, 0.0, jnp.ones(2), jnp.zeros(2))[0])(0.5))
      0.75
    """
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    k1 = n if k1 is None else k1
    keep_at = k1 if keep_at is None else keep_at
    v = jnp.ones((n,), bool) if valid is None else valid

    def body(state, inputs):
        c, snap = state
        t, x, y, vt = inputs
        new, out = step(params, c, x)
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(vt, a, b), new, c)
        snap = jax.tree_util.tree_map(lambda a, b: jnp.where(t == keep_at - 1, a, b), new, snap)
        lt = loss(out, y)
        return (new, snap), jnp.where(t >= n - k1, lt, jnp.zeros_like(lt))

    carry = jax.lax.stop_gradient(carry)
    (end, snap), per_step = jax.lax.scan(body, (carry, carry), (jnp.arange(n), xs, ys, v))
    return jnp.sum(per_step) / k1, (snap, end)


def make_tbptt(step: Callable, loss: Callable, optimizer, k1: int, k2: int | None = None) -> Callable:
    """Build the compiled TBPTT pass over a sequence: ``run(params, opt_state, carry, xs, ys) -> TBPTTResult``.

    One ``jit``-ed program: a ``lax.scan`` over the T / k1 windows, each computing ``jax.value_and_grad`` of
    :func:`window_loss` on its k2 steps, updating the params with ``optimizer`` and carrying the state of step
    t_i (k1 steps after the window's first scored step... see the module docstring) into the next window.

    Args:
      step, loss: the contracts of the module docstring.
      optimizer: any fnn (or optax) optimizer ``Optimizer(init, update)``.
      k1: steps between updates. k2: steps backpropagated (default k1; k1 <= k2).

    Returns:
      ``run``, jitted; it checks k1, k2 against the length of ``xs`` when called.
    """
    k2 = k1 if k2 is None else k2

    @jax.jit
    def _run(params, opt_state, carry, xs, ys):
        T = jax.tree_util.tree_leaves(xs)[0].shape[0]
        _, _, n = check_windows(T, k1, k2, "make_tbptt")
        lead = k2 - k1   # padding in front, so that window i covers padded steps [i k1, i k1 + k2)

        def pad(a):
            return jnp.concatenate([jnp.zeros((lead,) + a.shape[1:], a.dtype), a]) if lead else a

        xp, yp = jax.tree_util.tree_map(pad, xs), jax.tree_util.tree_map(pad, ys)
        grad_fn = jax.value_and_grad(
            lambda p, c, xw, yw, v: window_loss(step, loss, p, c, xw, yw, k1=k1, valid=v), has_aux=True)

        def one_window(state, i):
            params, opt_state, carry = state
            start = i * k1
            window = jax.tree_util.tree_map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, k2), (xp, yp))
            valid = start + jnp.arange(k2) >= lead
            (L, (nxt, end)), grads = grad_fn(params, carry, *window, valid)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = apply_updates(params, updates)
            if lead:   # the last window ends at step T: hand back the state there, not the one after k1 of its steps
                nxt = jax.tree_util.tree_map(lambda a, b: jnp.where(i == n - 1, b, a), nxt, end)
            return (params, opt_state, jax.lax.stop_gradient(nxt)), L

        (params, opt_state, carry), losses = jax.lax.scan(one_window, (params, opt_state, carry), jnp.arange(n))
        return TBPTTResult(params, opt_state, carry, losses)

    def run(params, opt_state, carry, xs, ys):
        check_windows(jax.tree_util.tree_leaves(xs)[0].shape[0], k1, k2, "make_tbptt")
        return _run(params, opt_state, carry, xs, ys)

    return run


def tbptt(step: Callable, loss: Callable, params, optimizer, carry, xs, ys, *, k1: int, k2: int | None = None,
          opt_state=None) -> TBPTTResult:
    """Train ``params`` on one pass over the sequence ``(xs, ys)`` with truncated BPTT (see the module docstring).

    Args:
      step, loss: the contracts of the module docstring.
      params: initial params. optimizer: any fnn optimizer. carry: the initial state (e.g. zeros).
      xs, ys: (T, ...) time-major inputs and targets (a batch of streams: (T, B, ...)).
      k1: steps between updates (dividing T). k2: steps backpropagated, k1 <= k2 <= T (default k1).
      opt_state: the optimizer state to continue from (default ``optimizer.init(params)``).

    Returns:
      :class:`TBPTTResult` ``(params, opt_state, carry, losses)``; pass ``carry`` and ``opt_state`` back in to
      continue over the next pass (epoch) or the next piece of a stream.

    Example:
      >>> from fnn.optimizers import sgd
      >>> step = lambda a, h, x: (a * h + x, a * h + x)            # h_t = a h_{t-1} + x_t, output h_t
      >>> sq = lambda out, y: 0.5 * (out - y) ** 2
      >>> xs = jnp.ones(8); ys = 2.0 * xs
      >>> r = tbptt(step, sq, 0.0, sgd(0.1), 0.0, xs, ys, k1=2, k2=4)
      >>> r.losses.shape, bool(r.losses[-1] < r.losses[0])
      ((4,), True)

    Reference: Williams & Peng, Neural Computation 2(4), 1990, sec. 2 (BPTT(h; h')).
    """
    check_windows(jax.tree_util.tree_leaves(xs)[0].shape[0], k1, k2, "tbptt")
    if opt_state is None:
        opt_state = optimizer.init(params)
    return make_tbptt(step, loss, optimizer, k1, k2)(params, opt_state, carry, xs, ys)


def bits_per_character(logits, labels) -> jax.Array:
    """Bits per character: ``-1/n sum log2 softmax(logits)[label]`` = cross-entropy in nats / ln 2.

    Args:
      logits: (..., V) unnormalised scores. labels: integers of shape ``logits.shape[:-1]``.

    Returns:
      scalar, the mean over all positions.

    Example:
      >>> float(bits_per_character(jnp.zeros((3, 4)), jnp.array([0, 1, 2])))   # uniform over 4 symbols: 2 bits
      2.0
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"bits_per_character: expected labels of shape logits.shape[:-1] = {logits.shape[:-1]}, "
                         f"got {labels.shape}; pass one integer label per row of logits")
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return -jnp.mean(picked) / math.log(2.0)
