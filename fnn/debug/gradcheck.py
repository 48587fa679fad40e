"""Gradient checking: compare an analytic gradient with centered finite differences, leaf by leaf.

For a scalar objective ``f(params)`` and every checked coordinate ``x_j`` of every parameter leaf::

    n_j = (f(x + h e_j) - f(x - h e_j)) / (2 h)                  # numerical (centered) derivative
    err_j = |a_j - n_j| / max(|a_j|, |n_j|, floor_j)             # relative error (0 when both are 0)

where ``a`` is the analytic gradient (``jax.grad(f)`` or any ``grad_fn`` you supply: a hand-written backward pass,
a ``custom_vjp``). Everything is evaluated in float64 whatever the model's dtype: the params are cast and ``f`` is
traced under ``jax.enable_x64(True)``. ``floor_j`` is the magnitude below which this coordinate's finite difference
cannot reach the "good" threshold: ``floor_j = eps64 * max(|f(x)|, |f(x + h e_j)|, |f(x - h e_j)|) / h / 1e-7``
(the rounding noise of one difference, ``eps64 |f| / h``, divided by the good threshold). The floor scales with
``f``, so multiplying the loss by any constant leaves every error, and so every verdict, unchanged: a wrong gradient
reads "wrong" at loss scale 1 and at 1e-12 alike. Departure from the textbook formula, which divides by
``max(|a|, |n|)`` alone: without the floor a correct gradient entry that is pure rounding noise (a dead unit's 0
against a difference of 1e-11) reads as an error of order 1. When even the largest gradient entry is within
1e3 times that noise, the differences cannot resolve the gradient and a :class:`GradCheckWarning` says so: the
gradient is too small *relative to f* (saturated units, or a large constant added to the loss); stay in the active
range or scale the loss.

Depth. Errors compound through layers (CS231n: "the deeper the network, the higher the relative errors"):
``depth_growth=g`` multiplies a leaf's thresholds by ``g ** (n - 1 - i)`` for the leaves of entry ``i`` of an
``n``-entry params tuple (``serial``'s params): the first layer's gradient, which passes through the most layers,
gets the largest allowance. Burn-in: a check at initialization can pass while a bug shows only once units leave
their initial regime; :class:`GradCheck` is a ``fit`` callback that runs the check after a few epochs.

Verdicts per leaf (thresholds of the CS231n notes on gradient checking):

    max err < 1e-7            good
    max err < 1e-4            acceptable where f has kinks (ReLU, max, abs), suspect where it is smooth
    1e-4 <= max err <= 1e-2   suspect
    max err > 1e-2            wrong

Kinks. ``f`` is traced to a jaxpr and re-evaluated by a small interpreter that records, for every ``max``/``min``,
comparison, ``abs``, ``sign``, ``clamp``, ``reduce_max``/``reduce_min`` and ``argmax``/``argmin`` on floating
inputs whose result reaches the output other than through ``stop_gradient`` (the max subtracted inside a stable
softmax is not a kink), which side won. When the record differs between ``x - h e_j`` and ``x + h e_j`` the
difference crossed a
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

import math
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.debug.kinks import instrument, is_float
from fnn.train import Callback

__all__ = [
    "GOOD", "ACCEPTABLE", "WRONG", "LeafReport", "GradCheckReport", "GradCheckWarning", "check_grads",
    "check_layer", "instrument", "verdict", "GradCheck",
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


def verdict(max_error: float, has_kinks: bool, allowance: float = 1.0) -> str:
    """The verdict for a relative error: good < 1e-7 <= acceptable (kinks only) < 1e-4 <= suspect <= 1e-2 < wrong.

    Args:
      max_error: the largest relative error of a leaf.
      has_kinks: whether the function has kinks, which make errors up to 1e-4 acceptable.
      allowance: a factor >= 1 on the three thresholds (deep networks: see ``depth_growth`` in check_grads).

    Returns:
      ``"good"``, ``"acceptable"``, ``"suspect"`` or ``"wrong"``.

    Example:
      >>> verdict(3e-8, False), verdict(3e-5, True), verdict(3e-5, False), verdict(0.5, True)
      ('good', 'acceptable', 'suspect', 'wrong')
    """
    if not math.isfinite(max_error) or max_error > WRONG * allowance:
        return "wrong"
    if max_error < GOOD * allowance:
        return "good"
    if max_error < ACCEPTABLE * allowance and has_kinks:
        return "acceptable"
    return "suspect"


# ------------------------------------------------------------------------------------------------ the checker
def _path_str(path) -> str:
    s = jax.tree_util.keystr(path)
    return s[1:] if s.startswith(".") else (s or "<root>")


def _to_f64(tree):
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64) if is_float(x) else jnp.asarray(x), tree)


def check_grads(f: Callable, params, *, grad_fn: Callable | None = None, h: float = 1e-5, coords: int | None = 30,
                key=None, penalty: Callable | None = None, dominance: float = 1.0,
                floor: float | None = None, depth_growth: float | None = None) -> GradCheckReport:
    """Check the gradient of a scalar ``f(params)`` against centered differences, per leaf, in float64.

    n_j = (F(x + h e_j) - F(x - h e_j)) / (2 h),  err_j = |a_j - n_j| / max(|a_j|, |n_j|, floor_j),
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
      floor: a fixed denominator floor of the relative error (default: per coordinate, scaled with ``f``, see the
        module docstring); ``0.0`` gives the textbook formula.
      depth_growth: ``g >= 1``: the thresholds of the leaves of params entry ``i`` (of ``n``) are multiplied by
        ``g ** (n - 1 - i)``, an allowance that grows with the depth a gradient travels (default: none).

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
    if depth_growth is not None and not (isinstance(depth_growth, (int, float)) and depth_growth >= 1):
        raise ValueError(f"check_grads: expected depth_growth >= 1 (a factor per layer) or None, got "
                         f"{depth_growth!r}")
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
                new = [jnp.where(li == i, x.ravel().at[fi].add(d), x.ravel()).reshape(x.shape) if is_float(x) else x
                       for i, x in enumerate(leaves)]
                return g(jax.tree_util.tree_unflatten(treedef, new))
            (fp, fm), (pp, pm) = jax.vmap(shifted)(jnp.stack([step, -step]))  # f traced once, for both signs
            return (fp - fm) / (2 * step), jnp.any(pp != pm), fp, jnp.maximum(jnp.abs(fp), jnp.abs(fm))

        _, _, value, _ = probe(leaves, -1, 0, jnp.float64(1.0))
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
        allowances = _depth_allowances(flat, depth_growth)

        gleaves = jax.tree_util.tree_leaves(grads)
        msgs += _precision_limited(gleaves, float(value), h)

        # The subset is drawn by NumPy from a seed taken from `key` (jax.random.choice compiles once per leaf size).
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
        reports = []
        for li, ((path, x), a) in enumerate(zip(flat, gleaves)):
            if not is_float(x):
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
                    num, crossed, _, fscale = probe(leaves, li, int(fi), jnp.float64(step))
                    if not bool(crossed):
                        break
                if bool(crossed):
                    kinks += 1
                    continue
                an, nu = a_flat[fi], float(num)
                noise = _EPS64 * max(abs(float(value)), float(fscale)) / step   # rounding noise of this difference
                floor_j = noise / GOOD if floor is None else floor
                denom = max(abs(an), abs(nu), floor_j)
                e = abs(an - nu) / denom if denom > 0 else 0.0
                e = e if math.isfinite(nu) else math.inf
                errs.append(e)
                if e > worst[0]:
                    worst = (e, int(fi), an, nu)
            mx = max(errs, default=0.0)
            reports.append(LeafReport(_path_str(path), tuple(x.shape), len(errs), int(x.size), mx,
                                      float(np.mean(errs)) if errs else 0.0, kinks,
                                      verdict(mx, has_kinks, allowances[li]),
                                      tuple(int(i) for i in np.unravel_index(worst[1], x.shape)) if x.ndim else (),
                                      (worst[2], worst[3])))
    for m in msgs:
        warnings.warn(m, GradCheckWarning, stacklevel=2)
    return GradCheckReport(tuple(reports), bool(has_kinks), float(h), float(value), tuple(msgs))


def _precision_limited(gleaves, value: float, h: float) -> list[str]:
    """A warning when the whole gradient is within 1e3 x the rounding noise of a difference of f (< 3 digits)."""
    noise = _EPS64 * abs(value) / h
    top = max((float(jnp.max(jnp.abs(a))) for a in gleaves if is_float(a) and a.size), default=0.0)
    if 0 < top < 1e3 * noise:
        return [f"the largest gradient entry ({top:.2e}) is within 1e3 x the rounding noise of a finite difference of "
                f"f (eps64 |f| / h = {noise:.1e}, |f| = {abs(value):.3g}): float precision limits the check; keep "
                f"units in their active range (not saturated) and scale the loss (or remove a constant added to "
                f"it) so the gradient is not tiny relative to f"]
    return []


def _depth_allowances(flat, depth_growth) -> list[float]:
    """Per leaf: ``depth_growth ** (n - 1 - i)`` for the leaves under entry ``i`` of an ``n``-entry params tuple."""
    if depth_growth is None:
        return [1.0] * len(flat)
    out = []
    for path, _ in flat:
        first = path[0] if path else None
        index = getattr(first, "idx", None)
        n = _top_level_entries(flat)
        out.append(float(depth_growth) ** (n - 1 - index) if index is not None and n else 1.0)
    return out


def _top_level_entries(flat) -> int:
    indices = [getattr(path[0], "idx", None) for path, _ in flat if path]
    return max(indices) + 1 if indices and None not in indices else 0


def _norm(tree) -> float:
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree) if is_float(x))))


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


class GradCheck(Callback):
    """A ``fit`` callback: check the training loss's gradient after a burn-in, at the end of chosen epochs.

    A check at initialization can pass while a bug shows only once units leave their initial regime (a wrong
    derivative of a saturating unit is invisible where the unit is linear). At the end of each epoch in
    ``at_epochs`` the callback runs :func:`check_grads` on ``F(params) = loss(apply(params, X, train=False), y)``
    (eval mode: dropout off, BatchNorm's running averages), keeps the report in ``reports`` as ``(epoch, report)``,
    and when the verdict is not good or acceptable issues a
    :class:`GradCheckWarning` and, with ``stop=True``, stops training.

    Args:
      apply: the model's apply function.
      loss: ``loss(outputs, y) -> scalar``.
      X, y: a small batch to check on (a few dozen examples keeps the check to seconds).
      at_epochs: the epochs (1-based, as in the history) after which to check.
      stop: stop training when the check fails.
      **check_kwargs: passed to :func:`check_grads` (``coords``, ``h``, ``depth_growth``, ...).
    """

    def __init__(self, apply: Callable, loss: Callable, X, y, *, at_epochs=(1,), stop: bool = True,
                 **check_kwargs):
        epochs = tuple(at_epochs)
        if not epochs or not all(isinstance(e, int) and e >= 1 for e in epochs):
            raise ValueError(f"GradCheck: expected at_epochs to be positive epoch numbers like (1,) or (1, 5), got "
                             f"{at_epochs!r}")
        self.apply, self.loss, self.X, self.y = apply, loss, X, y
        self.at_epochs, self.stop, self.check_kwargs = epochs, stop, dict(check_kwargs, coords=check_kwargs.get(
            "coords", 10))
        self.reports: list = []
        self._failed = None

    def on_train_begin(self, history):
        self.reports, self._failed = [], None

    def on_train_end(self, train_state, history):
        if self._failed is not None and self.stop:
            history.stop_reason = (f"GradCheck: the gradient check after epoch {self._failed[0]} says "
                                   f"{self._failed[1].verdict} (max error {self._failed[1].max_error:.2e}); stopped")
        elif not self.reports:
            warnings.warn(f"GradCheck: no check ran: at_epochs {self.at_epochs} lie beyond the {len(history)} "
                          f"epoch(s) trained; pick epochs within the run", GradCheckWarning, stacklevel=2)
        return train_state

    def on_epoch_end(self, epoch, record, train_state):
        epoch = record.get("epoch", epoch)
        if epoch not in self.at_epochs:
            return False
        state = train_state.state

        def f(p):
            if state is None:
                return self.loss(self.apply(p, self.X, train=False), self.y)
            return self.loss(self.apply(p, self.X, train=False, state=state)[0], self.y)

        report = check_grads(f, train_state.params, **self.check_kwargs)
        self.reports.append((epoch, report))
        if not report.ok:
            warnings.warn(f"GradCheck: after epoch {epoch} the gradient check says {report.verdict} (wrong leaves: "
                          f"{', '.join(report.wrong_leaves()) or 'none'}, max error {report.max_error:.2e})"
                          + ("; training stopped" if self.stop else ""), GradCheckWarning, stacklevel=2)
            self._failed = (epoch, report)
            return self.stop
        return False
