"""Sampling from a denoising autoencoder: the Markov chain that alternates corruption and reconstruction.

A denoising autoencoder trained on corrupted inputs ``x~ ~ C(x~ | x)`` to reconstruct the clean ``x`` estimates the
conditional ``P_theta(x | x~)`` (for a sigmoid decoder with the Bernoulli cross-entropy: independent Bernoulli
pixels with means ``r = g(f(x~) V + c)``). Bengio, Yao, Alain & Vincent (2013, Algorithm 1) sample from it with
the chain

    x~_t    ~ C(x~ | x_t)                 corrupt                       (:func:`salt_and_pepper_noise`, masking, ...)
    x_{t+1} ~ P_theta(x | x~_t)           sample the reconstruction      (Bernoulli(r), or r itself: ``sample="mean"``)

whose transition operator is ``T(x' | x) = sum_x~ P_theta(x' | x~) C(x~ | x)``. Their Theorem 1: if ``P_theta(x |
x~)`` is a consistent estimator of the true posterior ``P(x | x~) ∝ C(x~ | x) P(x)`` and ``T`` is ergodic, the
stationary distribution of ``T`` is a consistent estimator of the data distribution ``P(x)``; with the exact
posterior, ``sum_x T(x' | x) P(x) = sum_x~ P(x' | x~) P(x~) = P(x')``, so ``P`` itself is stationary.

Randomness: chain ``i`` of :func:`dae_chain` gets ``key_i = split(key, n_chains)[i]``; its step ``t`` (1, 2, ...)
uses ``k_c, k_s = split(fold_in(key_i, t))``: ``k_c`` for the corruption, ``k_s`` for the sample. The Bernoulli
sample is ``x' = 1[u < r]``, ``u ~ U[0, 1)`` drawn with ``jax.random.uniform(k_s, r.shape)``.

Reference: Bengio, Yao, Alain & Vincent, "Generalized denoising auto-encoders as generative models", NIPS 2013,
sec. 3 (Algorithm 1, Theorem 1, p. 3) and sec. 4 (salt-and-pepper noise on MNIST).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "salt_and_pepper_noise", "bernoulli_sample", "dae_reconstruction", "dae_chain_step", "ChainResult", "dae_chain",
    "nearest_distance", "class_histogram",
]


def salt_and_pepper_noise(key, x, rate: float):
    """Salt-and-pepper corruption: each entry, with probability ``rate``, is replaced by 0 or 1 (equally likely).

    ``x~_j = b_j`` if ``m_j`` else ``x_j``, with ``m_j = 1[u_j < rate]``, ``u ~ U[0, 1)`` drawn from ``k1`` and
    ``b ~ Bernoulli(1/2)`` from ``k2``, ``k1, k2 = split(key)``. On a binary ``x_j`` this keeps the bit with
    probability ``1 - rate/2`` and flips it with probability ``rate/2``.

    Args: key: PRNG key; x: array in [0, 1], any shape; rate: probability of replacing an entry, in [0, 1].
    Returns: array of ``x``'s shape and dtype.

    Example:
      >>> x = jnp.full((2, 4), 0.5)
      >>> bool(jnp.all(salt_and_pepper_noise(jax.random.key(0), x, 1.0) != 0.5))
      True

    Reference: Bengio, Yao, Alain & Vincent, NIPS 2013, sec. 4.2 (salt-and-pepper noise on MNIST).
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"salt_and_pepper_noise: expected rate (probability of replacing) in [0, 1], got {rate!r}")
    k1, k2 = jax.random.split(key)
    hit = jax.random.uniform(k1, jnp.shape(x)) < rate
    salt = jax.random.bernoulli(k2, 0.5, jnp.shape(x)).astype(jnp.result_type(x))
    return jnp.where(hit, salt, x)


def bernoulli_sample(key, r):
    """Independent Bernoulli draws with means ``r`` in [0, 1]: ``x = 1[u < r]``, ``u ~ U[0, 1)`` (``r``'s dtype)."""
    u = jax.random.uniform(key, jnp.shape(r))
    return (u < r).astype(jnp.result_type(r))


def _mean(key, r):
    return r


_SAMPLERS = {"bernoulli": bernoulli_sample, "mean": _mean}


def dae_reconstruction(ae, params) -> Callable:
    """The reconstruction function ``x~ (d,) -> r (d,)`` of a trained :class:`~fnn.classic.autoencoders.Autoencoder`.

    ``r = g(f(x~ W + b) V + c)``: for a sigmoid decoder the means of ``P_theta(x | x~)``.

    Example:
      >>> from fnn.classic import autoencoders
      >>> params = autoencoders.AutoencoderParams(jnp.zeros((6, 4)), jnp.zeros(4), jnp.zeros((4, 6)), jnp.zeros(6))
      >>> dae_reconstruction(autoencoders.autoencoder(4), params)(jnp.zeros(6)).tolist()
      [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    """
    return lambda x_tilde: ae.apply(params, x_tilde)


def _check_sample(sample):
    if callable(sample):
        return sample
    if sample not in _SAMPLERS:
        raise ValueError(f"dae_chain: expected sample in {sorted(_SAMPLERS)} or a function sample(key, r) -> x, "
                         f"got {sample!r}")
    return _SAMPLERS[sample]


def dae_chain_step(key, x, corrupt: Callable, reconstruct: Callable, *, sample="bernoulli"):
    """One step of Bengio et al.'s chain: ``x~ ~ C(x~ | x)``, ``r = reconstruct(x~)``, ``x' ~ P(x | x~)``.

    Args:
      key: PRNG key, split into ``k_c`` (corruption) and ``k_s`` (sample).
      x: the current state (d,).
      corrupt: ``corrupt(key, x) -> x~``, e.g. ``functools.partial(salt_and_pepper_noise, rate=0.3)``.
      reconstruct: ``reconstruct(x~) -> r``, e.g. :func:`dae_reconstruction` (decoder means, (d,)).
      sample: ``"bernoulli"`` (``x' = 1[u < r]``, Algorithm 1), ``"mean"`` (``x' = r``, a deterministic
        reconstruction: the variant that keeps grey levels; not a sample of ``P_theta``), or a function
        ``sample(key, r) -> x'`` (e.g. a categorical draw when ``r`` is a distribution over enumerated states).

    Returns: ``(x', r)``: the next state and the reconstruction it was drawn from.

    Example:
      >>> rec = lambda xt: jnp.full(3, 0.5)
      >>> x1, r = dae_chain_step(jax.random.key(0), jnp.zeros(3), lambda k, x: x, rec)
      >>> x1.shape, float(r[0])
      ((3,), 0.5)
    """
    draw = _check_sample(sample)
    k_c, k_s = jax.random.split(key)
    r = reconstruct(corrupt(k_c, x))
    return draw(k_s, r), r


class ChainResult(NamedTuple):
    states: jax.Array   # (n_chains, n_steps, d) x_t at t = thin, 2 thin, ..., n_steps * thin
    recon: jax.Array    # (n_chains, n_steps, ...) the reconstruction r each recorded state was drawn from


def dae_chain(key, x0, corrupt: Callable, reconstruct: Callable, n_steps: int, *, thin: int = 1,
              sample="bernoulli") -> ChainResult:
    """Run ``n_chains`` independent chains of :func:`dae_chain_step` (``lax.scan`` inside ``jax.vmap``).

    Chain ``i`` starts at ``x0[i]`` and uses ``key_i = split(key, n_chains)[i]``; step ``t = 1 .. n_steps * thin``
    uses ``fold_in(key_i, t)``. Every ``thin``-th state is kept. The chains are compiled once per
    ``(corrupt, reconstruct, sample, n_steps, thin)`` (the functions are static: arrays they close over, such as the
    params inside :func:`dae_reconstruction`, are compiled in as constants; reuse the same function objects to
    reuse the program).

    Args:
      key: PRNG key.
      x0: starting states (n_chains, d) (e.g. uniform noise, or training examples).
      corrupt, reconstruct, sample: as in :func:`dae_chain_step`.
      n_steps: number of recorded states (>= 1); thin: steps between records (>= 1).

    Returns: :class:`ChainResult` ``(states (n_chains, n_steps, d), recon (n_chains, n_steps, ...))``.

    Example:
      >>> flip = lambda k, x: jnp.where(jax.random.bernoulli(k, 0.1, x.shape), 1.0 - x, x)
      >>> res = dae_chain(jax.random.key(0), jnp.zeros((5, 3)), flip, lambda xt: 0.9 * xt + 0.05, 4, thin=2)
      >>> res.states.shape, res.recon.shape
      ((5, 4, 3), (5, 4, 3))

    Reference: Bengio, Yao, Alain & Vincent, NIPS 2013, Algorithm 1 (p. 3).
    """
    _check_sample(sample)
    for name, v in (("n_steps", n_steps), ("thin", thin)):
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"dae_chain: expected a positive int {name}, got {name}={v!r}")
    x0 = jnp.asarray(x0)
    if x0.ndim != 2:
        raise ValueError(f"dae_chain: expected starting states x0 of shape (n_chains, d), got shape {x0.shape}; "
                         f"use x0[None] for a single chain")

    states, recon = _run_chains(key, x0, corrupt, reconstruct, n_steps, thin, sample)
    return ChainResult(states, recon)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _run_chains(key, x0, corrupt, reconstruct, n_steps, thin, sample):
    """The compiled chains (one program per corrupt/reconstruct/sample objects and lengths)."""
    def one_chain(key_i, x_start):
        def record(x, r_idx):
            def step(x, j):
                t = r_idx * thin + j + 1
                return dae_chain_step(jax.random.fold_in(key_i, t), x, corrupt, reconstruct, sample=sample)

            x, rs = jax.lax.scan(step, x, jnp.arange(thin))
            return x, (x, rs[-1])

        _, (xs, rs) = jax.lax.scan(record, x_start, jnp.arange(n_steps))
        return xs, rs

    return jax.vmap(one_chain)(jax.random.split(key, x0.shape[0]), x0)


# -------------------------------------------------------------------------------------------- quality measures
def nearest_distance(A, B, *, block: int = 1024):
    """Euclidean distance from each row of ``A`` to its nearest row of ``B``: ``min_j ||a_i - b_j||`` (NumPy).

    Computed in blocks of ``A``'s rows with ``||a||^2 - 2 a.b + ||b||^2`` (float64, clipped at 0).

    Args: A: (n, d) (e.g. samples); B: (m, d) (e.g. the training set); block: rows of ``A`` per block.
    Returns: (n,) NumPy array of distances.

    Example:
      >>> nearest_distance(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [3.0, 0.0]])).tolist()
      [0.0, 4.0]
    """
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1]:
        raise ValueError(f"nearest_distance: expected matrices (n, d) and (m, d) of the same width, got shapes "
                         f"{A.shape} and {B.shape}; flatten images first")
    b2 = np.sum(B * B, axis=1)
    out = [np.min(np.sum(a * a, axis=1)[:, None] - 2.0 * a @ B.T + b2[None, :], axis=1)
           for a in (A[s:s + block] for s in range(0, A.shape[0], block))]
    return np.sqrt(np.maximum(np.concatenate(out), 0.0))


def class_histogram(probs) -> dict:
    """Summaries of a classifier's class probabilities on samples: confidence, histogram, entropy, chi-square.

    ``confidence = mean_n max_k p_nk``; ``counts_k = #{n: argmax p_n = k}``; ``entropy = -sum_k q_k log q_k``
    with ``q = counts / n`` (``log K`` when uniform); ``chi2 = sum_k (counts_k - n/K)^2 / (n/K)`` against the
    uniform histogram (``K - 1`` degrees of freedom). Computed in NumPy.

    Args: probs: (n, K) class probabilities (rows sum to 1).
    Returns: dict with ``confidence`` (float), ``counts`` ((K,) ints), ``entropy``, ``chi2`` (floats).

    Example:
      >>> class_histogram(np.array([[0.9, 0.1], [0.2, 0.8]]))["counts"].tolist()
      [1, 1]
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 2:
        raise ValueError(f"class_histogram: expected class probabilities of shape (n, K), got shape {p.shape}")
    n, K = p.shape
    counts = np.bincount(np.argmax(p, axis=1), minlength=K)
    q = counts[counts > 0] / n
    expected = n / K
    entropy = float(-np.sum(q * np.log(q))) + 0.0          # + 0.0: no "-0.0" for a single class
    return {"confidence": float(np.mean(np.max(p, axis=1))), "counts": counts, "entropy": entropy,
            "chi2": float(np.sum(np.square(counts - expected)) / expected)}
