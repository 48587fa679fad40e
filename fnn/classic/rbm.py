"""Bernoulli-Bernoulli restricted Boltzmann machines: energy, free energy, Gibbs sampling, CD-k and PCD training.

Symbols (``d`` visible units ``v`` in {0, 1}^d, ``m`` hidden units ``h`` in {0, 1}^m; batches ``V`` (n, d)):

    E(v, h) = -a.v - b.h - v^T W h                       W (d, m), a (d,) visible bias, b (m,) hidden bias
    F(v) = -log sum_h exp(-E(v, h)) = -a.v - sum_j softplus(b_j + v.W_j)        (free energy)
    p(v) = exp(-F(v)) / Z,   Z = sum_v exp(-F(v))
    p(h_j = 1 | v) = sigmoid(b_j + v.W_j),   p(v_i = 1 | h) = sigmoid(a_i + W_i.h)
    -d log p(v) / d theta = dF(v)/d theta - E_model[dF/d theta]      (data term minus model expectation)
    dF/dW = -v sigmoid(b + vW)^T,  dF/da = -v,  dF/db = -sigmoid(b + vW)

CD-k replaces the model expectation by the state of a k-step Gibbs chain started at the data; PCD keeps the chains
from one update to the next. Gradients are of the *negative* log-likelihood and come as an :class:`RBMParams` tree,
so any ``fnn.optimizers`` rule descends them (``updates, s = opt.update(g, s, params); apply_updates``).

The hidden bias is named ``b`` and the weights ``W`` as in a ``Dense`` layer, so ``p(h | v)`` is exactly
``sigmoid(Dense(m))`` with ``DenseParams(W, b)``: stacked RBMs load straight into an MLP (:mod:`fnn.classic.dbn`).

References: Hinton, "Training products of experts by minimizing contrastive divergence", Neural Computation 14(8),
2002, pp. 1771-1800; Tieleman, "Training restricted Boltzmann machines using approximations to the likelihood
gradient", ICML 2008; Hinton, "A practical guide to training restricted Boltzmann machines", UTML TR 2010-003
(initialisation sec. 8, monitoring sec. 5); Besag, "Statistical analysis of non-lattice data", 1975 (pseudo-likelihood).
"""
from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import optimizers as _opt

__all__ = [
    "RBMParams", "init_rbm", "energy", "free_energy", "hidden_probs", "visible_probs", "sample_hidden",
    "sample_visible", "gibbs_chain", "free_energy_grad", "cd_gradient", "pcd_gradient", "reconstruction_error",
    "pseudo_likelihood", "log_partition", "log_likelihood", "RBMResult", "train_rbm",
]


class RBMParams(NamedTuple):
    """An RBM's parameters: ``W`` (d, m) weights, ``a`` (d,) visible biases, ``b`` (m,) hidden biases."""
    W: jax.Array
    a: jax.Array
    b: jax.Array


def _batch(where, params, V, name="visible states", width=None):
    V = jnp.asarray(V)
    d = params.W.shape[0] if width is None else width
    if V.ndim != 2 or V.shape[1] != d:
        hint = "pass a batch, e.g. v[None]" if V.ndim == 1 else f"each row needs {d} entries, one per unit"
        raise ValueError(f"{where}: expected {name} of shape (n, {d}), got {V.shape}; {hint}")
    return V


def init_rbm(key, n_visible: int, n_hidden: int, *, scale: float = 0.01, data=None) -> RBMParams:
    """Hinton's initialisation: ``W ~ N(0, scale^2)``, ``b = 0``, ``a_i = log(p_i / (1 - p_i))`` (or 0 without data).

    ``p_i`` is the fraction of the data with ``v_i = 1`` (clipped to [0.01, 0.99]), so that at the start the
    visible units alone already have the data's marginals.

    Args: key: PRNG key. n_visible: ``d`` >= 1. n_hidden: ``m`` >= 1. scale: weight std. data: optional (n, d).
    Returns: :class:`RBMParams` with ``W`` (d, m), ``a`` (d,), ``b`` (m,).

    Example:
      >>> p = init_rbm(jax.random.key(0), 4, 3)
      >>> p.W.shape, p.a.shape, p.b.shape
      ((4, 3), (4,), (3,))

    Reference: Hinton, UTML TR 2010-003, sec. 8.
    """
    for name, n in (("n_visible", n_visible), ("n_hidden", n_hidden)):
        if not (isinstance(n, (int, np.integer)) and n >= 1):
            raise ValueError(f"init_rbm: expected a positive number of units, got {name}={n!r}; pass an int >= 1")
    if data is not None:
        data = _batch("init_rbm", RBMParams(jnp.zeros((n_visible, 0)), None, None), data, "data")
    return _init(key, int(n_visible), int(n_hidden), scale, data)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _init(key, d, m, scale, data):   # one compiled call, not op by op
    a = jnp.zeros((d,))
    if data is not None:
        p = jnp.clip(jnp.mean(data, axis=0), 0.01, 0.99)
        a = jnp.log(p / (1.0 - p))
    return RBMParams(scale * jax.random.normal(key, (d, m)), a, jnp.zeros((m,)))


def energy(params: RBMParams, V, H):
    """``E(v, h) = -a.v - b.h - v^T W h`` per row. V (n, d), H (n, m) -> (n,)."""
    V = _batch("energy", params, V)
    H = _batch("energy", params, H, "hidden states", params.W.shape[1])
    return -V @ params.a - H @ params.b - jnp.sum((V @ params.W) * H, axis=1)


def free_energy(params: RBMParams, V):
    """``F(v) = -a.v - sum_j softplus(b_j + v.W_j)`` (the hidden units summed out). V (n, d) -> (n,).

    Example:
      >>> p = RBMParams(jnp.zeros((2, 1)), jnp.zeros(2), jnp.zeros(1))
      >>> round(float(free_energy(p, jnp.ones((1, 2)))[0]), 4)      # -log(1 + e^0)
      -0.6931
    """
    V = _batch("free_energy", params, V)
    return -V @ params.a - jnp.sum(jax.nn.softplus(V @ params.W + params.b[None, :]), axis=1)


def hidden_probs(params: RBMParams, V):
    """``p(h_j = 1 | v) = sigmoid(b_j + v.W_j)``. V (n, d) -> (n, m)."""
    return jax.nn.sigmoid(_batch("hidden_probs", params, V) @ params.W + params.b[None, :])


def visible_probs(params: RBMParams, H):
    """``p(v_i = 1 | h) = sigmoid(a_i + W_i.h)``. H (n, m) -> (n, d)."""
    H = _batch("visible_probs", params, H, "hidden states", params.W.shape[1])
    return jax.nn.sigmoid(H @ params.W.T + params.a[None, :])


def sample_hidden(key, params: RBMParams, V):
    """``h ~ Bernoulli(p(h | v))``: returns ``(h, p(h | v))``, both (n, m), ``h`` as floats 0/1."""
    p = hidden_probs(params, V)
    return jax.random.bernoulli(key, p).astype(p.dtype), p


def sample_visible(key, params: RBMParams, H):
    """``v ~ Bernoulli(p(v | h))``: returns ``(v, p(v | h))``, both (n, d)."""
    p = visible_probs(params, H)
    return jax.random.bernoulli(key, p).astype(p.dtype), p


def gibbs_chain(key, params: RBMParams, V0, k: int, *, trace: bool = False):
    """``k`` steps of block Gibbs sampling ``v -> h ~ p(h|v) -> v ~ p(v|h)`` from ``V0``, one ``lax.scan``.

    Args: key: PRNG key (split once per step). params: RBM. V0: (n, d) starting states (data, or noise).
      k: steps >= 0 (static). trace: also return every step's ``p(v | h)`` (k, n, d), e.g. to plot a chain.
    Returns: ``(V_k, P_k)``: the sampled states and their probabilities ``p(v | h_{k-1})`` (n, d) (``P_0 = V0``);
      with ``trace=True`` ``(V_k, P_k, probs)``.

    Example:
      >>> p = init_rbm(jax.random.key(0), 4, 3)
      >>> v, pv = gibbs_chain(jax.random.key(1), p, jnp.ones((5, 4)), 10)
      >>> v.shape, bool(jnp.all((v == 0) | (v == 1)))
      ((5, 4), True)
    """
    V0 = _batch("gibbs_chain", params, V0)
    if not (isinstance(k, (int, np.integer)) and k >= 0):
        raise ValueError(f"gibbs_chain: expected a number of Gibbs steps k >= 0, got k={k!r}; pass an int")

    def step(v, key):
        kh, kv = jax.random.split(key)
        h, _ = sample_hidden(kh, params, v)
        v, pv = sample_visible(kv, params, h)
        return v, (v, pv)

    V, (_, probs) = jax.lax.scan(step, V0, jax.random.split(key, k))
    P = probs[-1] if k > 0 else V0
    return (V, P, probs) if trace else (V, P)


def free_energy_grad(params: RBMParams, V) -> RBMParams:
    """``mean_n dF(v_n)/d theta``: ``dW = -V^T P / n``, ``da = -mean V``, ``db = -mean P``, ``P = p(h | V)``."""
    V = _batch("free_energy_grad", params, V)
    P = hidden_probs(params, V)
    n = V.shape[0]
    return RBMParams(-(V.T @ P) / n, -jnp.mean(V, axis=0), -jnp.mean(P, axis=0))


def _difference(g_data, g_model):
    return jax.tree_util.tree_map(jnp.subtract, g_data, g_model)


def cd_gradient(key, params: RBMParams, V, k: int = 1) -> RBMParams:
    """CD-k estimate of ``-d mean_n log p(v_n) / d theta`` = data term minus the term at k-step chains from the data.

    ``grad = mean_n dF(v_n) - mean_n dF(v_n^(k))``, each ``dF`` taken with the hidden *probabilities* (Hinton's
    guide, sec. 3.3), ``v^(k)`` sampled by :func:`gibbs_chain` from ``v^(0) = v``. Descend it with any optimizer.

    Args: key: PRNG key. params: RBM. V: data batch (n, d) in [0, 1]. k: Gibbs steps >= 1.
    Returns: :class:`RBMParams` of gradients, the shapes of ``params``.

    Example:
      >>> p = init_rbm(jax.random.key(0), 4, 3)
      >>> g = cd_gradient(jax.random.key(1), p, jnp.ones((8, 4)), k=1)
      >>> g.W.shape, bool(jnp.all(g.a <= 0))       # descending g raises a: all-ones data wants v = 1
      ((4, 3), True)

    Reference: Hinton, Neural Computation 14(8), 2002, eq. 5.
    """
    V = _batch("cd_gradient", params, V, "data")
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"cd_gradient: expected k >= 1 Gibbs steps, got k={k!r}; CD-1 is k=1")
    Vk, _ = gibbs_chain(key, params, V, k)
    return _difference(free_energy_grad(params, V), free_energy_grad(params, jax.lax.stop_gradient(Vk)))


def pcd_gradient(key, params: RBMParams, V, chains, k: int = 1):
    """Persistent CD: the model term from persistent chains advanced ``k`` steps, which are returned for next time.

    ``grad = mean_n dF(v_n) - mean_c dF(u_c^(k))``, ``u^(k)`` = ``chains`` after ``k`` Gibbs steps under the
    current ``params``. The chains are not restarted at the data, so with small learning rates they stay near the
    model distribution and the estimate follows the true gradient (Tieleman 2008).

    Args: key: PRNG key. params: RBM. V: data (n, d). chains: (c, d) fantasy particles. k: steps >= 1.
    Returns: ``(grads, chains)``: an :class:`RBMParams` of gradients and the advanced chains (c, d).

    Reference: Tieleman, ICML 2008, sec. 3.
    """
    V = _batch("pcd_gradient", params, V, "data")
    chains = _batch("pcd_gradient", params, chains, "chains")
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"pcd_gradient: expected k >= 1 Gibbs steps, got k={k!r}")
    chains, _ = gibbs_chain(key, params, chains, k)
    return _difference(free_energy_grad(params, V), free_energy_grad(params, chains)), chains


def reconstruction_error(params: RBMParams, V):
    """Mean squared one-step reconstruction error ``mean_n ||v - p(v | p(h | v))||^2`` (a monitor, not the loss)."""
    V = _batch("reconstruction_error", params, V)
    return jnp.mean(jnp.sum((V - visible_probs(params, hidden_probs(params, V))) ** 2, axis=1))


def pseudo_likelihood(params: RBMParams, V):
    """Mean log pseudo-likelihood ``mean_n sum_i log p(v_i | v_-i)``, ``p(v_i | v_-i) = sigmoid(F(v~i) - F(v))``.

    ``v~i`` is ``v`` with unit ``i`` flipped; all ``d`` flips are computed (d free energies per example), so it is
    exact, not the one-random-unit estimate times ``d``. Inputs are rounded to {0, 1} first.

    Args: params: RBM. V: (n, d). Returns: a scalar (<= 0; ``-d log 2`` for a zero RBM).

    Example:
      >>> p = RBMParams(jnp.zeros((3, 2)), jnp.zeros(3), jnp.zeros(2))
      >>> round(float(pseudo_likelihood(p, jnp.ones((1, 3)))), 4)   # 3 log(1/2)
      -2.0794

    Reference: Besag 1975; Hinton, UTML TR 2010-003, sec. 5 (monitoring).
    """
    V = jnp.round(_batch("pseudo_likelihood", params, V))
    d = V.shape[1]
    F = free_energy(params, V)
    flipped = jnp.abs(V[:, None, :] - jnp.eye(d, dtype=V.dtype)[None, :, :])       # (n, d, d): row i flips v_i
    F_flip = free_energy(params, flipped.reshape(-1, d)).reshape(V.shape[0], d)
    return jnp.mean(jnp.sum(jax.nn.log_sigmoid(F_flip - F[:, None]), axis=1))


def _all_states(d):
    return jnp.asarray(list(itertools.product((0.0, 1.0), repeat=d)))


def log_partition(params: RBMParams):
    """``log Z = log sum_v exp(-F(v))`` by enumerating all ``2^d`` visible states (``d <= 20``)."""
    d = params.W.shape[0]
    if d > 20:
        raise ValueError(f"log_partition: expected at most 20 visible units for exact enumeration, got {d}; "
                         f"use pseudo_likelihood or annealed importance sampling for larger models")
    return jax.nn.logsumexp(-free_energy(params, _all_states(d)))


def log_likelihood(params: RBMParams, V):
    """Exact mean log-likelihood ``mean_n [-F(v_n)] - log Z`` (small models only, see :func:`log_partition`)."""
    return -jnp.mean(free_energy(params, _batch("log_likelihood", params, V))) - log_partition(params)


class RBMResult(NamedTuple):
    """What :func:`train_rbm` returns: the params, the persistent chains (c, d) (PCD; with CD the unused starting
    rows), and ``history`` ``{"reconstruction": (epochs,), "pseudo_likelihood": (epochs,)}``, measured after every
    epoch."""
    params: RBMParams
    chains: jax.Array
    history: dict


def train_rbm(key, params: RBMParams, X, *, k: int = 1, persistent: bool = False, optimizer=None, epochs: int = 10,
              batch_size: int = 100, monitor=None) -> RBMResult:
    """Train an RBM by CD-k (``persistent=False``) or PCD-k on shuffled mini-batches, the whole run compiled once.

    The epochs run in one ``lax.scan`` (compiled once). Each epoch permutes ``X``, cuts ``n // batch_size``
    batches (the last partial one dropped) and scans over them with
    ``g = cd_gradient(...)`` (or ``pcd_gradient``, ``batch_size`` persistent chains started at random data rows);
    ``updates, s = optimizer.update(g, s, params); params = apply_updates(params, updates)``. After each epoch the
    monitors (:func:`reconstruction_error`, :func:`pseudo_likelihood`) are measured on ``monitor`` (default: the
    first 500 rows of ``X``).

    Args: key: PRNG key. params: initial :class:`RBMParams`. X: data (n, d) in [0, 1]. k: Gibbs steps.
      persistent: PCD instead of CD. optimizer: an ``fnn.optimizers`` rule (default ``sgd(0.05)``). epochs, batch_size.
      monitor: data for the monitors, or None.
    Returns: :class:`RBMResult`.

    Example (not run here, to keep the docs fast: ``tests/test_rbm.py`` trains a 4-3 RBM this way)::

      r = train_rbm(key, init_rbm(key, 64, 128, data=X), X, k=1, optimizer=fnn.optimizers.momentum(0.05, 0.9),
                    epochs=50, batch_size=20)
      r.params, r.history["reconstruction"], r.history["pseudo_likelihood"]
    """
    X = _batch("train_rbm", params, X, "data")
    n = X.shape[0]
    if not (isinstance(batch_size, (int, np.integer)) and 1 <= batch_size <= n):
        raise ValueError(f"train_rbm: expected 1 <= batch_size <= n = {n}, got batch_size={batch_size!r}")
    opt = _opt.sgd(0.05) if optimizer is None else optimizer
    M = X[:500] if monitor is None else _batch("train_rbm", params, monitor, "monitor data")
    return _train(key, params, X, M, opt, int(k), bool(persistent), int(epochs), int(batch_size))


@functools.partial(jax.jit, static_argnums=(4, 5, 6, 7, 8))
def _train(key, params, X, M, opt, k, persistent, epochs, batch_size):   # the whole run: one compiled program
    n = X.shape[0]
    nb = n // batch_size
    key, k_chains = jax.random.split(key)
    chains = X[jax.random.randint(k_chains, (batch_size,), 0, n)]

    def epoch(carry, key):
        params, state, chains = carry
        k_perm, k_steps = jax.random.split(key)
        batches = X[jax.random.permutation(k_perm, n)[: nb * batch_size]].reshape(nb, batch_size, -1)

        def step(carry, inputs):
            params, state, chains = carry
            V, key = inputs
            if persistent:
                g, chains = pcd_gradient(key, params, V, chains, k)
            else:
                g = cd_gradient(key, params, V, k)
            updates, state = opt.update(g, state, params)
            return (_opt.apply_updates(params, updates), state, chains), None

        carry, _ = jax.lax.scan(step, (params, state, chains), (batches, jax.random.split(k_steps, nb)))
        return carry, (reconstruction_error(carry[0], M), pseudo_likelihood(carry[0], M))

    carry, (rec, pl) = jax.lax.scan(epoch, (params, opt.init(params), chains), jax.random.split(key, epochs))
    return RBMResult(carry[0], carry[2], {"reconstruction": rec, "pseudo_likelihood": pl})
