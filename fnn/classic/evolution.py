"""Neuroevolution: evolution strategies over the flattened weight vector, the population evaluated with one ``vmap``.

The params pytree is flattened to one vector ``theta`` (d,) with ``jax.flatten_util.ravel_pytree``; a population is a
matrix ``Theta`` (P, d), and its P losses come from one ``jax.vmap`` of the loss over the rows
(:func:`population_loss`). The generation loop is a ``lax.scan`` inside ``jit``.

==================  ==========================================================================================
strategy            one generation g
==================  ==========================================================================================
(mu, lambda)-ES     lambda offspring  x_i = x_{p(i)} + sigma_i z_i,  z_i ~ N(0, I),  parent p(i) = i mod mu;
(mu + lambda)-ES    the mu best of the offspring (comma) or of parents and offspring (plus) are the next parents.
                    Step size: log-normal self-adaptation  sigma_i = sigma_{p(i)} exp(tau N(0, 1)), tau = 1/sqrt(2d),
                    each individual carrying its sigma (Schwefel), or the 1/5 success rule: one sigma, divided by
                    c = 0.85 when more than 1/5 of the offspring beat their parent, multiplied by c when fewer
                    (Rechenberg).
OpenAI ES           n perturbations eps_i ~ N(0, I), antithetic pairs (eps, -eps); losses L_i = L(theta + sigma eps_i);
(Salimans et al.)   rank-based fitness shaping F_i = rank(L_i) / (n - 1) - 1/2 in [-1/2, 1/2];
                    gradient estimate  g = 1 / (n sigma) sum_i F_i eps_i;  theta <- theta + optimizer(g)
                    (plain  theta <- theta - eta g  by default).
==================  ==========================================================================================

Without shaping (``shaping="none"``, F_i = L_i) g is an unbiased estimate of the gradient of the Gaussian-smoothed
loss  L_sigma(theta) = E L(theta + sigma eps):  grad L_sigma = E[L(theta + sigma eps) eps] / sigma. For a quadratic
L(x) = x^T A x (A symmetric), L_sigma(x) = x^T A x + sigma^2 tr A, so grad L_sigma = 2 A x exactly (tested).

Each run is compiled once per (loss function, params structure, sizes) and cached: another seed, sigma, learning
rate or data of the same shapes reuses the program. A unit of cost: one *function evaluation* is one call of the loss
on one parameter vector (whatever data the loss sees: the full training set, or a mini-batch when ``loss_key`` is
given). ``ESResult.evaluations`` counts them.

References: Rechenberg, *Evolutionsstrategie*, 1973 (the 1/5 success rule); Schwefel, *Numerical Optimization of
Computer Models*, 1981 (the (mu, lambda) and (mu + lambda) strategies, self-adaptation); Beyer & Schwefel,
"Evolution strategies: a comprehensive introduction", Natural Computing 1, 2002 (tau proportional to 1/sqrt(d));
Wierstra et al., "Natural evolution strategies", JMLR 15, 2014; Salimans, Ho, Chen, Sidor, Sutskever, "Evolution
strategies as a scalable alternative to reinforcement learning", arXiv:1703.03864, 2017 (Algorithm 1, antithetic
sampling and rank-based fitness shaping, sec. 2.2).
"""
from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["ESResult", "population_loss", "select_best", "centered_ranks", "es_gradient", "evolution_strategy",
           "openai_es"]

ADAPTATIONS = ("lognormal", "one_fifth", "none")
SHAPINGS = ("ranks", "none")


class ESResult(NamedTuple):
    params: object            # the search's answer after the last generation: best parent, or the mean (openai_es)
    best_params: object       # the evaluated params with the lowest loss
    best_loss: jax.Array      # that loss
    best_losses: jax.Array    # (generations,) lowest loss in each generation's population
    mean_losses: jax.Array    # (generations,) mean loss of each generation's population
    sigmas: jax.Array         # (generations,) step size used in each generation (mean over the offspring)
    evaluations: int          # calls of the loss on one parameter vector, in all


def population_loss(loss_fn: Callable, unravel: Callable, thetas, *args):
    """The losses of a whole population in one ``jax.vmap``: ``L_i = loss_fn(unravel(Theta[i]), *args)``.

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``. unravel: ``theta (d,) -> params`` (from ``ravel_pytree``).
      thetas: ``(P, d)`` the population, one flattened parameter vector a row. args: shared by every member.

    Returns:
      ``(P,)`` losses.

    Example:
      >>> theta, unravel = ravel_pytree({"w": jnp.zeros(2)})
      >>> population_loss(lambda p: jnp.sum(p["w"] ** 2), unravel, jnp.array([[1.0, 2.0], [0.0, 3.0]])).tolist()
      [5.0, 9.0]
    """
    return jax.vmap(lambda t: loss_fn(unravel(t), *args))(thetas)


def select_best(thetas, losses, mu: int):
    """Truncation selection: the ``mu`` rows with the lowest losses, in increasing order of loss.

    NaN losses count as +inf (never selected before a finite one); ties keep the lower index (stable sort).

    Args:
      thetas: ``(P, d)``. losses: ``(P,)``. mu: ``1 <= mu <= P``.

    Returns:
      ``(thetas[idx], losses[idx], idx)`` with ``idx = argsort(losses)[:mu]`` of shapes (mu, d), (mu,), (mu,).

    Example:
      >>> _, l, idx = select_best(jnp.eye(3), jnp.array([3.0, 1.0, 2.0]), 2)
      >>> idx.tolist(), l.tolist()
      ([1, 2], [1.0, 2.0])
    """
    losses = jnp.where(jnp.isnan(losses), jnp.inf, losses)
    idx = jnp.argsort(losses, stable=True)[:mu]
    return thetas[idx], losses[idx], idx


def centered_ranks(losses):
    """Rank-based fitness shaping: ``F_i = rank(L_i) / (P - 1) - 1/2``, from -1/2 (lowest loss) to +1/2.

    Invariant to any increasing transformation of the loss, and bounded, so one outlier cannot dominate the
    gradient estimate (Salimans et al. 2017, sec. 2.2; Wierstra et al. 2014, sec. 3.1).

    Args:
      losses: ``(P,)``, P >= 2.

    Returns:
      ``(P,)`` float32.

    Example:
      >>> centered_ranks(jnp.array([10.0, -1.0, 3.0])).tolist()
      [0.5, -0.5, 0.0]
    """
    P = losses.shape[0]
    ranks = jnp.argsort(jnp.argsort(losses, stable=True), stable=True)
    return ranks.astype(jnp.float32) / (P - 1) - 0.5


def _check_sigma(name, sigma):
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"{name}: expected sigma, the mutation step size, to be a finite number > 0, got {sigma!r}; "
                         f"pass e.g. sigma=0.1 (in the units of the weights)")


def _check_int(name, what, value, low, hint):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected {what} to be an int >= {low}, got {value!r}; {hint}")


def _check_choice(name, what, value, choices):
    if value not in choices:
        raise ValueError(f"{name}: expected {what} in {choices}, got {value!r}")


def _normal(key, n: int, d: int, dtype=jnp.float32):
    """``(n, d)`` standard normal, drawn flat and reshaped: the same numbers' distribution, and inside a scan XLA on
    the CPU compiles a flat draw several times faster than a 2-D one (measured: 1.5 s against 5.7 s)."""
    return jax.random.normal(key, (n * d,), dtype).reshape(n, d)


def _perturbations(key, n: int, d: int, antithetic: bool):
    """``(n, d)`` standard normal rows; antithetic: the first n/2 rows and their negatives."""
    if not antithetic:
        return _normal(key, n, d)
    eps = _normal(key, n // 2, d)
    return jnp.concatenate([eps, -eps])


def _estimate(losses, eps, sigma: float, shaping: str):
    """``g = 1 / (n sigma) sum_i F_i eps_i`` with ``F = centered_ranks(L)`` or ``F = L``."""
    F = centered_ranks(losses) if shaping == "ranks" else losses
    return F @ eps / (eps.shape[0] * sigma)


def _check_population(name, population, antithetic):
    _check_int(name, "population", population, 2, "pass the number of perturbed parameter vectors per generation")
    if antithetic and population % 2:
        raise ValueError(f"{name}: antithetic sampling needs an even population (pairs eps, -eps), got "
                         f"population={population}; pass {population + 1} or antithetic=False")


def es_gradient(loss_fn: Callable, params, key, *, sigma: float, population: int, antithetic: bool = True,
                shaping: str = "none", args: tuple = ()):
    """One ES estimate of the gradient of the loss: ``g = 1 / (n sigma) sum_i F_i eps_i``.

    With ``shaping="none"`` (``F_i = L(theta + sigma eps_i)``) g is unbiased for the gradient of the smoothed loss
    ``E L(theta + sigma eps)``; with ``"ranks"`` (:func:`centered_ranks`) it is the direction OpenAI ES follows.

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``. params: any pytree of float arrays. key: PRNG key.
      sigma: perturbation size > 0. population: n (even when ``antithetic``). antithetic: pairs (eps, -eps).
      shaping: ``"none"`` or ``"ranks"``. args: extra arguments of the loss.

    Returns:
      ``(g, losses)``: g a pytree like ``params``, losses (n,) of the perturbed members.

    Example:
      >>> g, _ = es_gradient(lambda x: jnp.sum(x ** 2), jnp.array([1.0, -2.0]), jax.random.key(0), sigma=0.1,
      ...                    population=20000)
      >>> [round(v) for v in g.tolist()]      # 2 x, to within 2 sqrt((|x|^2 + x_j^2) / 10000) <= 0.06
      [2, -4]

    Reference: Salimans et al. 2017, Algorithm 1 and sec. 2.2; Wierstra et al. 2014, eq. 4 ("search gradient").
    """
    _check_sigma("es_gradient", sigma)
    _check_population("es_gradient", population, antithetic)
    _check_choice("es_gradient", "shaping", shaping, SHAPINGS)
    theta, unravel = ravel_pytree(params)
    g, losses = _cached(_gradient_program, loss_fn, _structure(params), population, bool(antithetic), shaping)(
        theta, key, sigma, tuple(args))
    return unravel(g), losses


@functools.lru_cache(maxsize=16)
def _gradient_program(loss_fn, structure, population, antithetic, shaping):
    unravel = _unravel_of(structure)

    @jax.jit
    def estimate(theta, key, sigma, args):
        eps = _perturbations(key, population, theta.shape[0], antithetic)
        losses = population_loss(loss_fn, unravel, theta[None] + sigma * eps, *args)
        return _estimate(losses, eps, sigma, shaping), losses

    return estimate


def _structure(params):
    """A hashable description of a params tree: its treedef and the leaves' shapes and dtypes."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    return treedef, tuple((tuple(jnp.shape(x)), jnp.result_type(x)) for x in leaves)


def _unravel_of(structure):
    treedef, specs = structure
    return ravel_pytree(jax.tree_util.tree_unflatten(treedef, [jnp.zeros(s, t) for s, t in specs]))[1]


def _cached(program, *static):
    """``program(*static)`` from its cache, or built afresh when an argument (a loss, an optimizer) is unhashable."""
    try:
        hash(static)
    except TypeError:
        return program.__wrapped__(*static)
    return program(*static)


def _loss_args(args, loss_key, g):
    return (*args, jax.random.fold_in(loss_key, g)) if loss_key is not None else tuple(args)


def evolution_strategy(loss_fn: Callable, params, key, *, mu: int, lam: int, generations: int, sigma: float = 0.1,
                       plus: bool = False, adaptation: str = "lognormal", tau: float | None = None, c: float = 0.85,
                       args: tuple = (), loss_key=None) -> ESResult:
    """The (mu, lambda)- or (mu + lambda)-evolution strategy with Gaussian mutation, compiled as one ``lax.scan``.

    Every generation: offspring i mutates parent p = i mod mu (the parents take turns, so each has about lam / mu
    offspring), ``x_i = x_p + sigma_i z_i``; all offspring are evaluated in one ``vmap``; the mu best of the offspring
    (``plus=False``) or of parents and offspring (``plus=True``) become the parents (:func:`select_best`).

    Step size (``adaptation``):
      ``"lognormal"``  each individual carries sigma; ``sigma_i = sigma_p exp(tau N(0, 1))`` before mutating,
                       ``tau = 1 / sqrt(2 d)`` unless given; good step sizes survive with their individuals;
      ``"one_fifth"``  one sigma; after the generation ``sigma <- sigma / c`` if more than 1/5 of the offspring beat
                       their parent, ``sigma * c`` if fewer (c = 0.85);
      ``"none"``       sigma fixed.

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``, or ``loss_fn(params, *args, key_g)`` with ``loss_key``.
      params: the starting point (any pytree of float arrays); all mu parents start there.
      key: PRNG key of the search; the same key gives the same run.
      mu: parents, >= 1. lam: offspring per generation, >= mu (> mu for comma selection to select at all).
      generations: >= 1. sigma: initial step size > 0. plus: (mu + lambda) instead of (mu, lambda).
      adaptation, tau, c: as above. args: data for the loss (arguments of the compiled program).
      loss_key: for a stochastic loss (mini-batches): generation g evaluates every offspring with
        ``fold_in(loss_key, g)``, the same batch for the whole population. With ``plus=True`` the parents keep the
        losses they had on their own batch.

    Returns:
      :class:`ESResult`; ``params`` the best parent after the last generation; ``evaluations = 1 + generations *
      lam`` (the start point once, then each offspring).

    Example:
      >>> res = evolution_strategy(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(3), jax.random.key(0), mu=3, lam=12,
      ...                          generations=100, sigma=1.0)
      >>> bool(res.best_loss < 1e-4), res.evaluations
      (True, 1201)

    Reference: Schwefel 1981, ch. 5 (multimembered ES, self-adaptation); Rechenberg 1973 (1/5 rule); Beyer &
    Schwefel 2002, sec. 4.
    """
    name = "evolution_strategy"
    _check_int(name, "mu", mu, 1, "pass the number of parents kept each generation")
    _check_int(name, "lam", lam, 1, "pass the number of offspring per generation")
    if lam < mu:
        raise ValueError(f"{name}: expected lam >= mu (the mu parents are chosen among the lam offspring), got "
                         f"mu={mu}, lam={lam}; raise lam (e.g. lam = {max(7 * mu, 2)}) or lower mu")
    _check_int(name, "generations", generations, 1, "pass the number of generations to run")
    _check_sigma(name, sigma)
    _check_choice(name, "adaptation", adaptation, ADAPTATIONS)
    if not (0.0 < c < 1.0):
        raise ValueError(f"{name}: expected the 1/5-rule factor c in (0, 1), got {c!r}; Schwefel's range is "
                         f"0.817 <= c < 1")
    theta0, unravel = ravel_pytree(params)
    tau = 1.0 / math.sqrt(2.0 * theta0.shape[0]) if tau is None else float(tau)
    run = _cached(_es_program, loss_fn, _structure(params), mu, lam, generations, bool(plus), adaptation)
    top, best_x, best_l, bests, means, sigmas = run(theta0, key, sigma, tau, c, tuple(args), loss_key)
    return ESResult(unravel(top), unravel(best_x), best_l, bests, means, sigmas, 1 + generations * lam)


@functools.lru_cache(maxsize=16)
def _es_program(loss_fn, structure, mu, lam, generations, plus, adaptation):
    """The compiled (mu, lambda) / (mu + lambda) run, cached: a second call with the same loss, structure and
    sizes (another seed, another sigma) reuses the program."""
    unravel = _unravel_of(structure)
    d = sum(math.prod(shape) for shape, _ in structure[1])

    @jax.jit
    def run(theta0, key, sigma, tau, c, args, loss_key):
        l0 = loss_fn(unravel(theta0), *_loss_args(args, loss_key, 0))     # on generation 0's batch
        parents = jnp.broadcast_to(theta0, (mu, d))
        init = (parents, jnp.full((mu,), l0), jnp.full((mu,), sigma, theta0.dtype), theta0, l0)
        who = jnp.arange(lam) % mu                    # offspring i mutates parent i mod mu

        def generation(carry, g):
            parents, p_loss, p_sigma, best_x, best_l = carry
            noise = _normal(jax.random.fold_in(key, g), lam, d + 1, parents.dtype)   # one draw: z_i and N(0, 1)
            s = p_sigma[who]
            if adaptation == "lognormal":
                s = s * jnp.exp(tau * noise[:, d])
            kids = parents[who] + s[:, None] * noise[:, :d]
            losses = population_loss(loss_fn, unravel, kids, *_loss_args(args, loss_key, g))
            if plus:
                pool, pool_l, pool_s = (jnp.concatenate([parents, kids]), jnp.concatenate([p_loss, losses]),
                                        jnp.concatenate([p_sigma, s]))
            else:
                pool, pool_l, pool_s = kids, losses, s
            new, new_l, idx = select_best(pool, pool_l, mu)
            new_s = pool_s[idx]
            if adaptation == "one_fifth":
                success = jnp.mean(losses < p_loss[who])
                factor = jnp.where(success > 0.2, 1.0 / c, jnp.where(success < 0.2, c, 1.0))
                new_s = jnp.full((mu,), p_sigma[0] * factor, p_sigma.dtype)
            finite = jnp.where(jnp.isnan(losses), jnp.inf, losses)
            i = jnp.argmin(finite)
            better = finite[i] < best_l
            best_x = jnp.where(better, kids[i], best_x)
            best_l = jnp.where(better, finite[i], best_l)
            return (new, new_l, new_s, best_x, best_l), (finite[i], jnp.mean(losses), jnp.mean(s))

        (parents, _, _, best_x, best_l), (bests, means, sigmas) = jax.lax.scan(generation, init,
                                                                               jnp.arange(generations))
        return parents[0], best_x, best_l, bests, means, sigmas

    return run


def openai_es(loss_fn: Callable, params, key, *, population: int, generations: int, sigma: float = 0.05,
              learning_rate: float = 0.01, optimizer=None, antithetic: bool = True, shaping: str = "ranks",
              args: tuple = (), loss_key=None) -> ESResult:
    """OpenAI's evolution strategy (Salimans et al. 2017): a search-gradient step per generation, compiled.

    Every generation g: ``n = population`` perturbations (antithetic pairs by default), the mean ``theta`` and the
    n members ``theta + sigma eps_i`` evaluated in one ``vmap`` (n + 1 losses), ``F = centered_ranks(L)``,
    ``g = 1 / (n sigma) sum_i F_i eps_i``, then ``theta <- theta - learning_rate g``, or the update of
    ``optimizer`` (any fnn or optax rule, fed g as the gradient; the paper uses Adam).

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``, or ``loss_fn(params, *args, key_g)`` with ``loss_key``.
      params: the starting mean (any pytree of float arrays). key: PRNG key of the search.
      population: n >= 2 (even when ``antithetic``). generations: >= 1. sigma: perturbation size > 0.
      learning_rate: step of plain descent (ignored when ``optimizer`` is given). optimizer: an ``(init, update)``
        rule. antithetic: pairs (eps, -eps). shaping: ``"ranks"`` or ``"none"`` (raw losses).
      args, loss_key: as :func:`evolution_strategy` (one batch per generation, shared by the whole population).

    Returns:
      :class:`ESResult`; ``params`` the mean after the last update (not evaluated); ``best_params`` the best of all
      evaluated vectors (means and members); ``mean_losses`` the members' mean; ``evaluations = generations *
      (population + 1)``.

    Example:
      >>> res = openai_es(lambda p: jnp.sum((p - 3.0) ** 2), jnp.zeros(3), jax.random.key(0), population=20,
      ...                 generations=300, sigma=0.1, learning_rate=0.03)
      >>> bool(jnp.max(jnp.abs(res.params - 3.0)) < 0.05), res.evaluations
      (True, 6300)

    Reference: Salimans, Ho, Chen, Sidor, Sutskever, arXiv:1703.03864, 2017, Algorithm 1 and sec. 2.2; Wierstra et
    al., JMLR 15, 2014.
    """
    name = "openai_es"
    _check_population(name, population, antithetic)
    _check_int(name, "generations", generations, 1, "pass the number of generations to run")
    _check_sigma(name, sigma)
    _check_choice(name, "shaping", shaping, SHAPINGS)
    if optimizer is None and not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"{name}: expected learning_rate > 0, got {learning_rate!r}")
    theta0, unravel = ravel_pytree(params)
    run = _cached(_openai_program, loss_fn, _structure(params), population, generations, optimizer,
                  bool(antithetic), shaping)
    theta, best_x, best_l, bests, means = run(theta0, key, sigma, learning_rate, tuple(args), loss_key)
    return ESResult(unravel(theta), unravel(best_x), best_l, bests, means, jnp.full((generations,), sigma),
                    generations * (population + 1))


@functools.lru_cache(maxsize=16)
def _openai_program(loss_fn, structure, population, generations, optimizer, antithetic, shaping):
    """The compiled OpenAI-ES run, cached like :func:`_es_program`."""
    unravel = _unravel_of(structure)
    d = sum(math.prod(shape) for shape, _ in structure[1])

    def step(theta, state, g, learning_rate):
        if optimizer is None:
            return theta - learning_rate * g, state
        updates, state = optimizer.update(unravel(g), state, unravel(theta))
        return theta + ravel_pytree(updates)[0], state

    @jax.jit
    def run(theta0, key, sigma, learning_rate, args, loss_key):
        state = None if optimizer is None else optimizer.init(unravel(theta0))

        def generation(carry, g):
            theta, state, best_x, best_l = carry
            eps = _perturbations(jax.random.fold_in(key, g), population, d, antithetic)
            rows = jnp.concatenate([theta[None], theta[None] + sigma * eps])
            losses = population_loss(loss_fn, unravel, rows, *_loss_args(args, loss_key, g))
            members = losses[1:]
            finite = jnp.where(jnp.isnan(losses), jnp.inf, losses)
            i = jnp.argmin(finite)
            better = finite[i] < best_l
            best_x = jnp.where(better, rows[i], best_x)
            best_l = jnp.where(better, finite[i], best_l)
            theta, state = step(theta, state, _estimate(members, eps, sigma, shaping), learning_rate)
            return (theta, state, best_x, best_l), (finite[i], jnp.mean(members))

        init = (theta0, state, theta0, jnp.asarray(jnp.inf, theta0.dtype))
        (theta, _, best_x, best_l), (bests, means) = jax.lax.scan(generation, init, jnp.arange(generations))
        return theta, best_x, best_l, bests, means

    return run
