"""Gradient checking: compare an analytic gradient with centered finite differences, leaf by leaf.

For a scalar objective ``f(params)`` and every checked coordinate ``x_j`` of every parameter leaf::

    n_j = (f(x + h e_j) - f(x - h e_j)) / (2 h)                  # numerical (centered) derivative
    err_j = |a_j - n_j| / max(|a_j|, |n_j|, floor)               # relative error (0 when both are 0)

where ``a`` is the analytic gradient (``jax.grad(f)`` or any ``grad_fn`` you supply: a hand-written backward pass,
a ``custom_vjp``). Everything is evaluated in float64 whatever the model's dtype: the params are cast and ``f`` is
traced under ``jax.enable_x64(True)``. ``floor`` is the magnitude below which a float64 finite difference cannot
reach the "good" threshold: ``floor = eps64 * max(|f(x)|, 1) / h / 1e-7`` (rounding noise of one difference,
``eps64 |f| / h``, divided by the good threshold). Departure from the textbook formula, which divides by
``max(|a|, |n|)`` alone: without the floor a correct gradient whose entry is ~1e-9 reads as an error of order 1.

Verdicts per leaf (thresholds of the CS231n notes on gradient checking):

    max err < 1e-7            good
    max err < 1e-4            acceptable where f has kinks (ReLU, max, abs), suspect where it is smooth
    1e-4 <= max err <= 1e-2   suspect
    max err > 1e-2            wrong

Kinks. ``f`` is traced to a jaxpr and re-evaluated by a small interpreter that records, for every ``max``/``min``,
comparison, ``abs``, ``sign``, ``clamp``, ``reduce_max``/``reduce_min`` and ``argmax``/``argmin`` on floating
inputs whose result reaches the output other than through ``stop_gradient`` (the max subtracted inside a stable
softmax is not a kink), which side won. When the record differs between ``x - h e_j`` and ``x + h e_j`` the difference crossed a
kink; the coordinate is retried with ``h/10`` and ``h/100`` and, if it still crosses, left out of the statistics and
counted in the ``kinks`` column. Loops (``scan``, ``while``, ``cond``) are evaluated as a whole: kinks inside them
are not seen.

Large models: at most ``coords`` coordinates per leaf are checked, drawn uniformly without replacement with ``key``
(never only the first few). Stochastic parts must be off: ``f`` is traced twice (once for the differences, once for
the gradient) and the two values must agree to 1e-12 relative (use ``train=False`` or a fixed ``key``;
:func:`check_layer` does this for you).

Reference: Karpathy et al., CS231n notes "Neural Networks Part 3: Learning and Evaluation", section
"Gradient checks"; Goodfellow, Bengio, Courville, *Deep Learning*, 2016, sec. 11.5.
"""
from __future__ import annotations

import argparse
import math
import warnings
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

__all__ = [
    "GOOD", "ACCEPTABLE", "WRONG", "LeafReport", "GradCheckReport", "GradCheckWarning", "check_grads",
    "check_layer", "instrument", "verdict", "main",
]

GOOD, ACCEPTABLE, WRONG = 1e-7, 1e-4, 1e-2
_EPS64 = float(np.finfo(np.float64).eps)


class GradCheckWarning(UserWarning):
    """Raised (as a warning) when the check itself is unreliable, e.g. a penalty dominates the data loss."""


class LeafReport(NamedTuple):
    path: str            # tree path of the leaf, e.g. "[2].W"
    shape: tuple         # the leaf's shape
    checked: int         # coordinates compared (kink-crossing ones excluded)
    size: int            # coordinates in the leaf
    max_error: float     # max relative error over the checked coordinates
    mean_error: float    # mean relative error over the checked coordinates
    kinks: int           # coordinates left out because every h tried crossed a kink
    verdict: str         # "good" | "acceptable" | "suspect" | "wrong"
    worst_index: tuple   # index (in the leaf) of the worst coordinate
    worst: tuple         # (analytic, numerical) at the worst coordinate


class GradCheckReport(NamedTuple):
    leaves: tuple        # LeafReport per floating leaf, in tree order
    has_kinks: bool      # f contains kink sites (ReLU, max, abs, comparisons) on floating values
    h: float             # the step used
    value: float         # f(params) in float64
    warnings: tuple      # messages (also issued as GradCheckWarning)

    @property
    def max_error(self) -> float:
        return max((l.max_error for l in self.leaves), default=0.0)

    @property
    def verdict(self) -> str:
        """The worst leaf verdict."""
        order = ("good", "acceptable", "suspect", "wrong")
        return max((l.verdict for l in self.leaves), key=order.index, default="good")

    @property
    def ok(self) -> bool:
        """True when every leaf is good or acceptable."""
        return self.verdict in ("good", "acceptable")

    def wrong_leaves(self) -> list[str]:
        return [l.path for l in self.leaves if l.verdict == "wrong"]

    def table(self) -> str:
        """A fixed-width table, one row per leaf."""
        rows = [f"{'leaf':<28} {'shape':<16} {'checked':>11} {'max err':>9} {'mean err':>9} {'kinks':>5}  verdict"]
        for l in self.leaves:
            rows.append(f"{l.path:<28} {str(l.shape):<16} {f'{l.checked}/{l.size}':>11} {l.max_error:9.1e} "
                        f"{l.mean_error:9.1e} {l.kinks:5d}  {l.verdict}")
        rows.append(f"f(params) = {self.value:.6g}, h = {self.h:g}, kinks in f: {'yes' if self.has_kinks else 'no'}, "
                    f"overall: {self.verdict}")
        rows += [f"warning: {w}" for w in self.warnings]
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()


def verdict(max_error: float, has_kinks: bool) -> str:
    """The verdict for a relative error: good < 1e-7 <= acceptable (kinks only) < 1e-4 <= suspect <= 1e-2 < wrong.

    Args:
      max_error: the largest relative error of a leaf.
      has_kinks: whether the function has kinks, which make errors up to 1e-4 acceptable.

    Returns:
      ``"good"``, ``"acceptable"``, ``"suspect"`` or ``"wrong"``.
    """
    if not math.isfinite(max_error) or max_error > WRONG:
        return "wrong"
    if max_error < GOOD:
        return "good"
    if max_error < ACCEPTABLE and has_kinks:
        return "acceptable"
    return "suspect"


# ----------------------------------------------------------------------------------- kink-recording interpreter
_COMPARISONS = {"gt", "ge", "lt", "le", "eq", "ne"}
_CALLS = {"jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr",
          "remat", "checkpoint", "custom_lin"}


def _is_float(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.floating)


def _record(name: str, invals, outvals, params, rec: list):
    """Append the boolean 'which side won' pattern of one kink-making primitive to ``rec``."""
    if not invals or not _is_float(invals[0]):
        return
    if name in ("max", "min"):
        a, b = jnp.broadcast_arrays(*invals)
        rec.append(jnp.ravel(a > b))
    elif name in _COMPARISONS:
        rec.append(jnp.ravel(outvals[0]))
    elif name in ("abs", "sign"):
        rec.append(jnp.ravel(invals[0] > 0))
        rec.append(jnp.ravel(invals[0] < 0))
    elif name == "clamp":  # clamp(lo, x, hi)
        lo, x, hi = jnp.broadcast_arrays(*invals)
        rec.append(jnp.ravel(x < lo))
        rec.append(jnp.ravel(x > hi))
    elif name in ("reduce_max", "reduce_min", "argmax", "argmin"):
        axes = params.get("axes", ())
        x = invals[0]
        if name.startswith("reduce"):
            winner = outvals[0]
        else:
            winner = (jnp.max if name == "argmax" else jnp.min)(x, axis=tuple(axes))
        rec.append(jnp.ravel(x == jnp.expand_dims(winner, tuple(axes))))


def _live(jaxpr, live_out) -> set:
    """Variables through which the live outputs depend on the inputs, not counting paths cut by stop_gradient."""
    live = {v for v, keep in zip(jaxpr.outvars, live_out) if keep and not isinstance(v, jcore.Literal)}
    for eqn in reversed(jaxpr.eqns):
        if eqn.primitive.name != "stop_gradient" and any(v in live for v in eqn.outvars):
            live.update(v for v in eqn.invars if not isinstance(v, jcore.Literal))
    return live


def _eval_recording(jaxpr, consts, args, rec: list, live_out=None):
    env = {}
    live = _live(jaxpr, [True] * len(jaxpr.outvars) if live_out is None else live_out)

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
        if name in _CALLS and sub is not None:
            closed = sub if isinstance(sub, jcore.ClosedJaxpr) else jcore.ClosedJaxpr(sub, ())
            if len(closed.jaxpr.invars) == len(invals):
                outvals = _eval_recording(closed.jaxpr, closed.consts, invals, rec,
                                          [v in live for v in eqn.outvars])
                for v, x in zip(eqn.outvars, outvals):
                    env[v] = x
                continue
        out = eqn.primitive.bind(*invals, **eqn.params)
        outvals = out if eqn.primitive.multiple_results else [out]
        if any(v in live for v in eqn.outvars):  # a kink only matters where it reaches the output
            _record(name, invals, outvals, eqn.params, rec)
        for v, x in zip(eqn.outvars, outvals):
            env[v] = x
    return [read(v) for v in jaxpr.outvars]


def instrument(f: Callable, example_params) -> Callable:
    """Wrap ``f`` so that it also returns its kink pattern: ``g(params) -> (f(params), pattern)``.

    ``pattern`` is a boolean vector with one entry per comparison outcome of every ``max``/``min``/``abs``/
    ``sign``/``clamp``/comparison/``reduce_max``/``argmax`` on floating values met while evaluating ``f`` (ReLU is
    ``max(x, 0)``). Two points whose patterns differ lie on different sides of a kink.

    Args:
      f: scalar function of a pytree of arrays (traceable by JAX).
      example_params: a pytree with the shapes and dtypes ``g`` will be called with.

    Returns:
      ``g``, a traceable function of the same pytree.
    """
    closed = jax.make_jaxpr(f)(example_params)
    treedef = jax.tree_util.tree_structure(example_params)

    def g(params):
        leaves = jax.tree_util.tree_leaves(params)
        if jax.tree_util.tree_structure(params) != treedef:
            raise ValueError(f"instrument: expected params with structure {treedef}, got "
                             f"{jax.tree_util.tree_structure(params)}")
        rec: list = []
        outs = _eval_recording(closed.jaxpr, closed.consts, leaves, rec)
        pattern = jnp.concatenate(rec) if rec else jnp.zeros((0,), bool)
        return outs[0], pattern

    return g


# ------------------------------------------------------------------------------------------------ the checker
def _path_str(path) -> str:
    s = jax.tree_util.keystr(path)
    return s[1:] if s.startswith(".") else (s or "<root>")


def _to_f64(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64) if _is_float(x) else jnp.asarray(x), tree)


def check_grads(f: Callable, params, *, grad_fn: Callable | None = None, h: float = 1e-5, coords: int | None = 30,
                key=None, penalty: Callable | None = None, dominance: float = 1.0,
                floor: float | None = None) -> GradCheckReport:
    """Check the gradient of a scalar ``f(params)`` against centered differences, per leaf, in float64.

    n_j = (F(x + h e_j) - F(x - h e_j)) / (2 h),  err_j = |a_j - n_j| / max(|a_j|, |n_j|, floor),
    with ``F = f + penalty`` and ``a = grad_fn(x)`` (default ``jax.grad(F)``).

    Args:
      f: the data loss, ``params -> scalar``; must be deterministic (dropout off, fixed keys).
      params: pytree of arrays (any float dtype; cast to float64 for the check). Integer leaves are skipped.
      grad_fn: ``params -> grads`` (same tree) to check instead of ``jax.grad``; called on float64 params.
      h: the finite-difference step (float64's best is near ``eps^(1/3) ~ 6e-6``).
      coords: at most this many coordinates per leaf, a uniform random subset; ``None`` checks all.
      key: PRNG key for the subset (default ``jax.random.key(0)``).
      penalty: optional regularization term ``params -> scalar`` added to ``f``; a warning is issued when the norm
        of its gradient exceeds ``dominance`` times that of ``f``'s (the data loss is then barely checked).
      dominance: the ratio that triggers the warning.
      floor: the denominator floor of the relative error (default: see the module docstring).

    Returns:
      A :class:`GradCheckReport`: one :class:`LeafReport` per floating leaf (path, max/mean error, kinks, verdict);
      ``print(report)`` shows a table.

    Example:
      >>> rep = check_grads(lambda p: jnp.sum(jnp.tanh(p["w"]) ** 2), {"w": jnp.ones(3)})
      >>> rep.verdict
      'good'

    Reference: CS231n notes, "Gradient checks"; Goodfellow et al., *Deep Learning*, 2016, sec. 11.5.
    """
    if not (isinstance(h, (int, float)) and h > 0):
        raise ValueError(f"check_grads: expected a positive step h, got {h!r}")
    if coords is not None and not (isinstance(coords, int) and coords >= 1):
        raise ValueError(f"check_grads: expected coords to be a positive int or None (all), got {coords!r}")
    key = jax.random.key(0) if key is None else key
    msgs = []
    with jax.enable_x64(True):
        p64 = _to_f64(params)
        total = f if penalty is None else (lambda p: f(p) + penalty(p))
        out = jax.eval_shape(total, p64)
        if getattr(out, "shape", None) != ():
            raise ValueError(f"check_grads: f must return a scalar, got shape {getattr(out, 'shape', out)}; "
                             f"reduce the loss (e.g. jnp.mean) before checking")
        if out.dtype != jnp.float64:
            raise ValueError(f"check_grads: f returned {out.dtype} for float64 params; something inside f casts to "
                             f"a lower precision (an explicit astype or float32 constants), which makes finite "
                             f"differences meaningless; let the dtype follow the params")
        g = instrument(total, p64)
        flat, treedef = jax.tree_util.tree_flatten_with_path(p64)
        leaves = [x for _, x in flat]

        @jax.jit
        def probe(leaves, li, fi, step):
            """(F(x + step e) - F(x - step e)) / (2 step), whether the kink patterns differ, F(x + step e); e is
            coordinate fi of leaf li (li = -1: no leaf, which gives F(x))."""
            def shifted(d):
                new = [jnp.where(li == i, x.ravel().at[fi].add(d), x.ravel()).reshape(x.shape) if _is_float(x) else x
                       for i, x in enumerate(leaves)]
                return g(jax.tree_util.tree_unflatten(treedef, new))
            (fp, fm), (pp, pm) = jax.vmap(shifted)(jnp.stack([step, -step]))  # f traced once, for both signs
            return (fp - fm) / (2 * step), jnp.any(pp != pm), fp

        _, _, value = probe(leaves, -1, 0, jnp.float64(1.0))
        has_kinks = jax.eval_shape(g, p64)[1].shape[0] > 0
        # A second, independent trace of f: differs when f draws fresh randomness per call (dropout in train mode
        # with a new key, NumPy random numbers), which makes finite differences meaningless.
        if grad_fn is None:
            value2, grads = jax.jit(jax.value_and_grad(total))(p64)
        else:
            value2, grads = jax.jit(lambda p: total(p))(p64), grad_fn(p64)
        v1, v2 = float(value), float(value2)
        if not abs(v1 - v2) <= 1e-12 * max(abs(v1), abs(v2)) + 1e-14:  # same function, compiled twice
            raise ValueError(f"check_grads: f is not deterministic ({v1!r} then {v2!r}); turn "
                             f"stochastic parts off: apply(..., train=False) or a fixed key=")
        if jax.tree_util.tree_structure(grads) != jax.tree_util.tree_structure(p64):
            raise ValueError(f"check_grads: grad_fn returned a tree with structure "
                             f"{jax.tree_util.tree_structure(grads)}, expected {jax.tree_util.tree_structure(p64)}")
        if penalty is not None:
            msgs += _dominance(f, penalty, p64, dominance)
        floor = _EPS64 * max(abs(float(value)), 1.0) / h / GOOD if floor is None else floor

        gleaves = jax.tree_util.tree_leaves(grads)

        # The subset is drawn by NumPy from a seed taken from `key` (jax.random.choice compiles once per leaf size).
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
        reports = []
        for li, ((path, x), a) in enumerate(zip(flat, gleaves)):
            if not _is_float(x):
                continue
            if a.shape != x.shape:
                raise ValueError(f"check_grads: grad_fn returned shape {a.shape} for leaf {_path_str(path)}, "
                                 f"expected {x.shape}")
            idx = (np.arange(x.size) if coords is None or coords >= x.size else
                   np.sort(rng.choice(x.size, coords, replace=False)))
            a_flat = np.asarray(a, np.float64).ravel()
            errs, kinks, worst = [], 0, (-1.0, 0, 0.0, 0.0)
            for fi in idx:
                for step in (h, h / 10, h / 100):
                    num, crossed, _ = probe(leaves, li, int(fi), jnp.float64(step))
                    if not bool(crossed):
                        break
                if bool(crossed):
                    kinks += 1
                    continue
                an, nu = a_flat[fi], float(num)
                denom = max(abs(an), abs(nu), floor)
                e = abs(an - nu) / denom if denom > 0 else 0.0
                e = e if math.isfinite(nu) else math.inf
                errs.append(e)
                if e > worst[0]:
                    worst = (e, int(fi), an, nu)
            mx = max(errs, default=0.0)
            reports.append(LeafReport(_path_str(path), tuple(x.shape), len(errs), int(x.size), mx,
                                      float(np.mean(errs)) if errs else 0.0, kinks, verdict(mx, has_kinks),
                                      tuple(int(i) for i in np.unravel_index(worst[1], x.shape)) if x.ndim else (),
                                      (worst[2], worst[3])))
    for m in msgs:
        warnings.warn(m, GradCheckWarning, stacklevel=2)
    return GradCheckReport(tuple(reports), bool(has_kinks), float(h), float(value), tuple(msgs))


def _norm(tree) -> float:
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree) if _is_float(x))))


def _dominance(f, penalty, p64, dominance) -> list[str]:
    data_norm, pen_norm = _norm(jax.grad(f)(p64)), _norm(jax.grad(penalty)(p64))
    if pen_norm > dominance * data_norm:
        return [f"the penalty's gradient (norm {pen_norm:.3g}) dominates the data loss's (norm {data_norm:.3g}): "
                f"the check mostly tests the penalty; check the data loss alone (penalty=None) as well"]
    return []


def check_layer(layer, params, inputs, *, key=None, state=None, train: bool = False, wrt_inputs: bool = True,
                **check_kwargs):
    """Check a layer's gradients (params and, optionally, inputs) through a random projection of its outputs.

    F(params, inputs) = sum(r * apply(params, inputs, train=train, key=k)), with r ~ N(0, 1) fixed, so every output
    coordinate enters with its own weight (a plain sum would hide errors that cancel, e.g. through a softmax).

    Args:
      layer: an fnn layer (``(init, apply)`` pair).
      params: its params.
      inputs: an input batch, shape as ``init``'s input shape with a concrete batch size.
      key: fixes the projection ``r`` and the layer's run-time key (default ``jax.random.key(0)``).
      state: a stateful layer's state (BatchNorm): the layer is run with ``state=`` and its output taken.
      train: the run-time mode. ``False`` (default) turns dropout off; ``True`` checks the training-mode function
        (batch statistics in BatchNorm; dropout then draws the same mask at every evaluation, from the fixed key).
      wrt_inputs: also check the gradient with respect to the inputs (leaf paths start with ``['inputs']``).
      **check_kwargs: passed to :func:`check_grads`.

    Returns:
      The :class:`GradCheckReport`; leaf paths read ``['params'][0].W``, ``['inputs']``.
    """
    init_fun, apply_fun = layer[0], layer[1]
    del init_fun
    key = jax.random.key(0) if key is None else key
    k_r, k_run = jax.random.split(key)

    def forward(p, x):
        out = (apply_fun(p, x, key=k_run, train=train) if state is None else
               apply_fun(p, x, key=k_run, train=train, state=_to_f64(state))[0])
        return out

    def F(tree):
        return jnp.sum(jnp.asarray(r) * forward(tree["params"], tree["inputs"] if wrt_inputs else inputs))

    tree = {"params": params, "inputs": inputs} if wrt_inputs else {"params": params}
    with jax.enable_x64(True):
        out_shape = jax.eval_shape(forward, _to_f64(params), _to_f64(inputs)).shape
        r = np.asarray(jax.random.normal(k_r, out_shape, jnp.float32), np.float64)
        return check_grads(F, tree, **check_kwargs)


# ---------------------------------------------------------------------------------------- the fnn gradcheck CLI
def _builtin(name: str, key):
    """A built-in (model, params, inputs, labels) for ``fnn gradcheck``."""
    from fnn import layers as core

    x = jax.random.normal(jax.random.fold_in(key, 1), (16, 8))
    y = jax.random.randint(jax.random.fold_in(key, 2), (16,), 0, 4)
    if name == "tanh":
        model = core.mlp([16, 16, 4], core.Tanh)
    elif name == "relu":
        model = core.mlp([16, 16, 4], core.Relu)
    elif name == "buggy":
        model = core.serial(core.Dense(16), _buggy_tanh_layer(), core.Dense(4))
    else:
        raise ValueError(f"fnn gradcheck: unknown model {name!r}; choose one of tanh, relu, buggy")
    _, params = model.init(jax.random.fold_in(key, 3), x.shape)
    return model, params, x, y


def _buggy_tanh_layer():
    """tanh with a planted bug in its custom gradient: it forgets the square, 1 - tanh(x) instead of 1 - tanh^2."""
    from fnn.layers.base import Layer

    @jax.custom_vjp
    def bad_tanh(x):
        return jnp.tanh(x)

    bad_tanh.defvjp(lambda x: (jnp.tanh(x), x), lambda x, ct: (ct * (1 - jnp.tanh(x)),))
    return Layer(lambda key, s: (s, ()), lambda p, x, **kw: bad_tanh(x))


def _xent(logits, y):
    from fnn.activations import log_softmax
    return -jnp.mean(jnp.take_along_axis(log_softmax(logits), y[:, None], axis=1))


def main(argv: Sequence[str] | None = None) -> int:
    """``fnn gradcheck``: check a built-in model's gradients and print the per-leaf table.

    Returns 0 when every leaf is good or acceptable, 1 otherwise (``--model buggy`` has a planted bug and fails).
    """
    ap = argparse.ArgumentParser(prog="fnn gradcheck", description="Check a built-in model's gradients against "
                                 "centered finite differences in float64 (per-leaf relative errors and verdicts).")
    ap.add_argument("--model", default="tanh", choices=("tanh", "relu", "buggy"),
                    help="tanh: smooth 8-16-16-4 MLP; relu: the same with ReLU (kinks); buggy: a custom_vjp tanh "
                         "with a wrong gradient (must fail)")
    ap.add_argument("--coords", type=int, default=30, help="coordinates checked per leaf (random subset)")
    ap.add_argument("--h", type=float, default=1e-5, help="finite-difference step")
    ap.add_argument("--l2", type=float, default=0.0, help="add an L2 penalty l2/2 * sum(W^2) to the loss")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    key = jax.random.key(args.seed)
    model, params, x, y = _builtin(args.model, key)
    penalty = None
    if args.l2 > 0:
        def penalty(p):
            return 0.5 * args.l2 * sum(jnp.sum(jnp.square(l.W)) for l in p if hasattr(l, "W"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradCheckWarning)
        rep = check_grads(lambda p: _xent(model.apply(p, x, train=False), y), params, coords=args.coords, h=args.h,
                          key=jax.random.fold_in(key, 4), penalty=penalty)
    print(f"fnn gradcheck: model {args.model}, softmax cross-entropy on 16 random examples")
    print(rep.table())
    return 0 if rep.ok else 1
