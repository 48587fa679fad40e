"""Classic neurons and learning rules: the threshold logic unit, the perceptron rule, universal approximation.

* :func:`tlu`: McCulloch-Pitts threshold logic unit ``y = step(x . w + b)`` (``fnn.activations.step``).
* :func:`perceptron_train`: Rosenblatt's rule, one example at a time, ``w <- w + eta (t - y) x``,
  ``b <- b + eta (t - y)``. On linearly separable data it converges in finitely many updates (Novikoff 1962); on
  XOR it cannot, and with integer data and ``w = 0`` at the start the weights take finitely many values, so the
  sequence of end-of-epoch weights must repeat: :func:`perceptron_train` stops at the first repetition and reports
  the cycle (the perceptron cycling theorem, Block & Levin 1970).
* :func:`universal_approximation`: a one-hidden-layer ReLU network ``f(x) = relu(x W1 + b1) W2 + b2`` fitted to
  a smooth 1-D function; the error falls as hidden units are added (Cybenko 1989; Hornik 1991; Leshno et al. 1993
  for non-polynomial activations such as ReLU).

The gradient-free training rules of the same material (simulated annealing, Cauchy training and the mixed rule)
are in :mod:`fnn.classic.annealing`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn import activations as act
from fnn import layers as core
from fnn import optimizers as _opt
from fnn.optimizers import schedules as _schedules
from fnn.train import minimize

__all__ = ["GATES", "logic_gate", "TLUParams", "tlu", "PerceptronResult", "perceptron_train", "UAResult",
           "universal_approximation"]

GATES = {
    "AND": ((0, 0, 0, 1), 2),
    "OR": ((0, 1, 1, 1), 2),
    "NAND": ((1, 1, 1, 0), 2),
    "NOR": ((1, 0, 0, 0), 2),
    "XOR": ((0, 1, 1, 0), 2),
    "NOT": ((1, 0), 1),
}


def logic_gate(name: str):
    """The truth table of a Boolean gate: ``(x, t)`` with x (2^k, k) in {0, 1} and t (2^k,) in {0, 1}.

    Rows are in binary order: (0, 0), (0, 1), (1, 0), (1, 1) for two inputs; (0,), (1,) for NOT.
    """
    if name.upper() not in GATES:
        raise ValueError(f"logic_gate: unknown gate {name!r}; choose one of {sorted(GATES)}")
    t, k = GATES[name.upper()]
    x = np.array([[(i >> (k - 1 - j)) & 1 for j in range(k)] for i in range(2 ** k)], np.float32)
    return jnp.asarray(x), jnp.asarray(t, jnp.float32)


class TLUParams(NamedTuple):
    w: jax.Array  # (d,) weights
    b: jax.Array  # () bias (the negative threshold)


def tlu(params: TLUParams, x, *, fire_at_zero: bool = False):
    """Threshold logic unit: ``y = step(x . w + b)``, 1 when the weighted sum exceeds the threshold ``-b``.

    ``fire_at_zero`` picks the threshold convention: ``False`` (default) fires on ``x . w + b > 0`` (Nielsen, ch. 1,
    eq. (2)); ``True`` fires on ``x . w + b >= 0`` (McCulloch-Pitts: the weighted sum reaches the threshold). They
    differ only for inputs with ``x . w + b == 0`` exactly (see ``fnn.classic.gates`` for gates that need one).

    Args:
      params: ``TLUParams(w (d,), b ())``.
      x: inputs (n, d) or (d,).
      fire_at_zero: output 1 (True) or 0 (False) when the net input is exactly 0.

    Returns:
      y in {0, 1}, shape (n,) or ().

    Reference: McCulloch & Pitts, "A logical calculus of the ideas immanent in nervous activity", 1943;
    Rosenblatt, "The perceptron", Psychological Review, 1958.
    """
    return act.step(jnp.dot(x, params.w) + params.b, at_zero=1.0 if fire_at_zero else 0.0)


class PerceptronResult(NamedTuple):
    params: TLUParams    # the final weights
    epochs: int          # epochs run
    converged: bool      # an epoch with no mistakes was reached
    cycled: bool         # the end-of-epoch weights repeated (no solution can be reached: not separable)
    errors: tuple        # mistakes in each epoch


def perceptron_train(x, t, *, eta: float = 1.0, max_epochs: int = 100, params: TLUParams | None = None,
                     fire_at_zero: bool = False) -> PerceptronResult:
    """Rosenblatt's perceptron rule, one example at a time in the given order.

        y = step(x_i . w + b);   w <- w + eta (t_i - y) x_i;   b <- b + eta (t_i - y)

    An epoch is one pass over the examples. Training stops when an epoch makes no mistakes (converged), when the
    weights at the end of an epoch equal those at the end of an earlier epoch (cycled: the same epochs would repeat
    forever, so the data are not learnable by one unit), or after ``max_epochs``.

    Args:
      x: inputs (n, d). t: targets (n,) in {0, 1}.
      eta: learning rate > 0.
      max_epochs: bound on the number of epochs.
      params: initial weights (default zeros, the textbook start).
      fire_at_zero: the unit's threshold convention, as in :func:`tlu` (``y = 1`` at ``x_i . w + b == 0`` if True).

    Returns:
      A :class:`PerceptronResult`.

    Example:
      >>> x, t = logic_gate("AND")
      >>> perceptron_train(x, t).converged
      True

    Reference: Rosenblatt 1958; Novikoff, "On convergence proofs for perceptrons", 1962 (at most (R / gamma)^2
    mistakes); Minsky & Papert, *Perceptrons*, 1969 (XOR); Block & Levin, "On the boundedness of an iterative
    procedure for solving a system of linear inequalities", 1970 (cycling).
    """
    x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
    if x.ndim != 2 or t.shape != x.shape[:1]:
        raise ValueError(f"perceptron_train: expected x (n, d) and t (n,), got shapes {x.shape} and {t.shape}")
    if not np.all((t == 0) | (t == 1)):
        raise ValueError(f"perceptron_train: expected targets in {{0, 1}}, got {np.unique(t).tolist()}")
    if not eta > 0:
        raise ValueError(f"perceptron_train: expected eta > 0, got {eta}")
    w = np.zeros(x.shape[1]) if params is None else np.asarray(params.w, np.float64).copy()
    b = 0.0 if params is None else float(params.b)
    seen, errors = {(tuple(w), b)}, []
    for epoch in range(1, max_epochs + 1):
        mistakes = 0
        for xi, ti in zip(x, t):
            net = xi @ w + b                                # y = step(net), as tlu(..., fire_at_zero)
            y = 1.0 if net > 0 or (fire_at_zero and net == 0) else 0.0
            if y != ti:
                w, b, mistakes = w + eta * (ti - y) * xi, b + eta * (ti - y), mistakes + 1
        errors.append(mistakes)
        final = TLUParams(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32))
        if mistakes == 0:
            return PerceptronResult(final, epoch, True, False, tuple(errors))
        state = (tuple(w), b)
        if state in seen:
            return PerceptronResult(final, epoch, False, True, tuple(errors))
        seen.add(state)
    return PerceptronResult(final, max_epochs, False, False, tuple(errors))


class UAResult(NamedTuple):
    hidden: tuple        # the numbers of hidden units tried
    max_error: tuple     # sup-norm error on the evaluation grid, one per entry of `hidden`
    rms_error: tuple     # root-mean-square error on the evaluation grid
    params: tuple        # fitted params (fnn.mlp([h, 1]) params) per entry of `hidden`
    model: Callable      # model(h) -> the fnn layer used for h hidden units


def _init_kinks(key, h: int, lo: float, hi: float):
    """Hidden units ``relu(s (x - c))`` with kinks c uniform on [lo, hi] and signs s = +-1: W1 = s, b1 = -s c."""
    k1, k2 = jax.random.split(key)
    c = jax.random.uniform(k1, (h,), jnp.float32, lo, hi)
    s = jnp.where(jax.random.bernoulli(k2, 0.5, (h,)), 1.0, -1.0)
    return core.DenseParams(s[None, :], -s * c)


def universal_approximation(f: Callable, hidden: Sequence[int], key, *, interval=(-3.0, 3.0), n_train: int = 256,
                            steps: int = 2000, learning_rate: float = 1e-2) -> UAResult:
    """Fit ``g(x) = relu(x W1 + b1) W2 + b2`` with h hidden units to ``f`` on an interval, for each h in ``hidden``.

    Each fit: the hidden kinks ``-b1/W1`` are drawn uniformly on the interval (W1 = +-1), the output layer
    ``(W2, b2)`` is then the least-squares solution given those features, and all four arrays are refined by
    ``steps`` full-batch Adam steps (rate decayed along a cosine) on the mean squared error
    (1/n) sum (g(x_i) - f(x_i))^2. A continuous piecewise-linear function with h well-placed kinks is within
    O(1/h^2) of a smooth f, so the error falls as h grows (departure from a plain random start, which often leaves
    units dead and the curve noisy in h).

    Args:
      f: the target, ``x (n, 1) -> y (n, 1)`` (jnp).
      hidden: numbers of hidden units, e.g. (1, 2, 4, 8, 16, 32).
      key: PRNG key (kinks); the same key gives the same fits.
      interval: (lo, hi) of the training and evaluation grid.
      n_train: evenly spaced training points; the error is measured on a 4x finer grid.
      steps: Adam steps per fit. learning_rate: Adam's initial step size, decayed to 0 along a cosine over the steps
        (so the last iterate settles instead of oscillating around the minimum).

    Returns:
      A :class:`UAResult` with the sup-norm and RMS errors per h.

    Reference: Cybenko, "Approximation by superpositions of a sigmoidal function", 1989; Leshno, Lin, Pinkus,
    Schocken, "Multilayer feedforward networks with a nonpolynomial activation function can approximate any
    function", Neural Networks 6, 1993; Nielsen, *Neural Networks and Deep Learning*, ch. 4 (visual proof).
    """
    lo, hi = float(interval[0]), float(interval[1])
    if not hi > lo:
        raise ValueError(f"universal_approximation: expected interval (lo, hi) with lo < hi, got {interval!r}")
    if not hidden or any(not (isinstance(h, int) and h >= 1) for h in hidden):
        raise ValueError(f"universal_approximation: expected positive hidden-unit counts, got {hidden!r}")
    x = jnp.linspace(lo, hi, n_train)[:, None]
    x_eval = jnp.linspace(lo, hi, 4 * n_train)[:, None]
    y, y_eval = f(x), f(x_eval)

    def model(h):
        return core.mlp([h, 1], core.Relu)

    max_err, rms_err, fitted = [], [], []
    for h, k in zip(hidden, jax.random.split(key, len(hidden))):
        layer = model(h)
        l1 = _init_kinks(k, h, lo, hi)
        feats = jnp.concatenate([jax.nn.relu(x * l1.W + l1.b[None, :]), jnp.ones_like(x)], axis=1)
        sol, *_ = jnp.linalg.lstsq(feats, y)
        params = (l1, (), core.DenseParams(sol[:h], sol[h]))
        params = _adam_fit(layer.apply, params, x, y, steps, learning_rate)
        err = layer.apply(params, x_eval) - y_eval
        max_err.append(float(jnp.max(jnp.abs(err))))
        rms_err.append(float(jnp.sqrt(jnp.mean(err ** 2))))
        fitted.append(params)
    return UAResult(tuple(hidden), tuple(max_err), tuple(rms_err), tuple(fitted), model)


def _adam_fit(apply, params, x, y, steps, learning_rate):
    # The rate decays to 0 along a cosine: full-batch Adam at a constant rate keeps oscillating around the minimum,
    # and its last iterate can land on a spike (seen: h = 32 ending 6x worse than h = 16).
    opt = _opt.adam(_schedules.cosine(learning_rate, steps))

    def loss(p, x, y):
        return jnp.mean((apply(p, x) - y) ** 2)

    return minimize(loss, params, opt, steps=steps, args=(x, y)).params
