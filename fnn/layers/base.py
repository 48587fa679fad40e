"""The layer contract and the combinators that compose layers.

A layer is a record ``Layer(init, apply)`` that unpacks like stax's pair, ``init_fun, apply_fun = layer``:

    init(key, input_shape) -> (output_shape, params)      # -1 (or None) marks the batch dimension
    apply(params, inputs, **kwargs) -> outputs            # pure: jit, vmap and grad go through it

Per-layer params are NamedTuples (``DenseParams(W, b)``) that unpack and index like stax's tuples; ``serial``'s
params are a tuple with one entry per layer; parameter-free layers have ``()``. Besides its two functions, the
record holds (read-only; kept by ``_replace`` and ``copy``):

    init_with_state   (key, input_shape) -> (output_shape, params, state) for a layer with state, else None
    name              the user's label (``layer.named("fc1")``), else None
    kind              what it is ("Dense", "Tanh", "serial", ...; derived from ``apply`` when not given)
    children          the layers a combinator is made of (``serial``, ``parallel``), else ()
    keywords          the run-time keywords ``apply`` reads beyond the common ones; None: read from its signature

Run-time behaviour arrives as keyword arguments, all listed in :data:`KEYWORDS`. Every model accepts the common
ones (``key``/``rng``, ``train``, ``state``); ``serial``/``parallel`` pass each child only the keywords it accepts
(the key under each name it reads, split per child) and raise ``TypeError`` for a keyword that no layer accepts.

State (BatchNorm's running averages) is explicit and optional. A stateful layer's ``apply`` also takes ``state=``
and then returns ``(outputs, new_state)``; without ``state=`` it returns ``outputs`` alone and behaves like stax.
``init_with_state(layer, key, input_shape) -> (output_shape, params, state)`` builds the state tree: ``None`` for a
stateless layer, a tuple per child for ``serial``/``parallel``. Plain ``(init_fun, apply_fun)`` tuples from stax or
user code are stateless layers and compose unchanged.
"""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "KEYWORDS", "COMMON_KEYWORDS", "Layer", "init_with_state", "run_key", "serial", "parallel", "FanOut",
    "FanInSum", "FanInConcat", "shape_dependent", "residual", "as_layer", "Identity",
]

Shape = tuple
Params = Any

KEYWORDS = {  # every run-time keyword any fnn layer reads: the one list (docs/layers.md shows it)
    "key": "PRNG key of random layers (Dropout); serial/parallel split it, one key per child",
    "rng": "stax's name for key; a child gets the key under each of the two names it reads",
    "train": "True (default, stax's behaviour) to train, False to evaluate (Dropout off, BatchNorm running stats)",
    "state": "the model's state tree (init_with_state); apply then returns (outputs, new_state)",
    "bn_update": "BatchNorm's running-statistics rule: 'ema' (default) or 'cumulative'",
    "mask": "RNN, MultiHeadAttention: (batch, time) booleans, True at real steps / keys",
    "lengths": "RNN, MultiHeadAttention: (batch,) number of real steps, padding at the end",
    "initial_carry": "RNN: the carry before the first step",
}
COMMON_KEYWORDS = ("key", "rng", "train", "state")  # every model accepts these; a layer may ignore them

_FIELDS = ("init_with_state", "name", "kind", "children", "keywords")
_STATEFUL = "_fnn_apply_carries_state"  # set on the apply of every layer built with init_with_state


class _Pair(NamedTuple):
    init: Callable
    apply: Callable


def _kind_of(apply) -> str | None:
    """``"Dense"`` for an ``apply`` defined inside ``Dense(...)`` (also stax's ``Dense.<locals>.apply_fun``)."""
    parts = getattr(apply, "__qualname__", "").split(".<locals>.")
    return parts[-2].rsplit(".", 1)[-1] if len(parts) > 1 else None


def _check_name(name):
    if name is not None and not (isinstance(name, str) and name and "/" not in name):
        raise ValueError(f"Layer: expected a name as a non-empty string without '/', got {name!r}; names label "
                         f"layers in paths such as '0/Dense', e.g. Dense(10).named('fc1')")


def _signature_keywords(apply) -> frozenset:
    try:
        params = list(inspect.signature(apply).parameters.values())
    except (TypeError, ValueError):  # no signature to read: count it as accepting the standard table
        return frozenset(KEYWORDS)
    named = {p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return frozenset(KEYWORDS).union(named)
    return frozenset(named)


def _receivable(apply) -> frozenset | None:
    """The keyword names ``apply`` can be called with: ``None`` when it takes ``**kwargs`` (or has no signature)."""
    try:
        params = list(inspect.signature(apply).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


class Layer(_Pair):
    """A layer record: ``Layer(init, apply, init_with_state=None, *, name=None, kind=None, children=(),
    keywords=None)``; unpacks as ``init_fun, apply_fun = layer`` (``len(layer) == 2``).

    Calling a layer with no arguments returns it, so parameter-free layers work as values and as calls:
    ``serial(Dense(10), Relu, Dense(2))`` and ``serial(Dense(10), Relu(), Dense(2))`` are the same model.
    The extra fields (module docstring) are read-only and survive ``_replace``; rebuilding a stateful layer from
    its two functions (``Layer(*bn)``) drops its state on purpose, and ``init_with_state`` then raises.

    Example:
      >>> from fnn.layers import Dense, Relu, BatchNorm, serial
      >>> model = serial(Dense(4).named("fc1"), Relu, BatchNorm(axis=0))
      >>> [child.label for child in model.children], model.stateful, len(model)
      (['fc1', 'Relu', 'BatchNorm'], True, 2)
      >>> model._replace(apply=model.apply).stateful
      True
    """

    init_with_state: Callable | None = None
    name: str | None = None
    kind: str | None = None
    children: tuple = ()
    keywords: tuple | None = None

    def __new__(cls, init, apply, init_with_state=None, *, name=None, kind=None, children=(), keywords=None):
        self = super().__new__(cls, init, apply)
        return self._set(init_with_state=init_with_state, name=name, kind=kind or _kind_of(apply),
                         children=children, keywords=keywords)

    def _set(self, **fields):
        _check_name(fields.get("name", self.name))
        if fields.get("children") is not None:
            fields["children"] = tuple(fields["children"])
        if fields.get("keywords") is not None:
            fields["keywords"] = tuple(fields["keywords"])
        self.__dict__.update(fields)
        self.__dict__.pop("_accepts", None)
        if self.init_with_state is not None:
            with contextlib.suppress(AttributeError, TypeError):  # a builtin or bound method: nothing to mark
                setattr(self.apply, _STATEFUL, True)
        return self

    def __setattr__(self, attr, value):
        if attr in _FIELDS:
            raise AttributeError(f"Layer: the field {attr!r} is read-only; make a new layer with "
                                 f"layer._replace({attr}=...)")
        object.__setattr__(self, attr, value)

    def _replace(self, **changes) -> "Layer":
        """A copy with some fields changed (``init``, ``apply`` or any extra field); the others are kept."""
        unknown = sorted(set(changes) - set(self._fields) - set(_FIELDS))
        if unknown:
            raise TypeError(f"Layer._replace: got unknown field(s) {unknown}; the fields are "
                            f"{list(self._fields) + list(_FIELDS)}")
        pair = (changes.pop("init", self.init), changes.pop("apply", self.apply))
        new = tuple.__new__(type(self), pair)
        new.__dict__.update(self.__dict__)
        return new._set(**changes)

    def __call__(self):
        return self

    def named(self, name: str) -> "Layer":
        """This layer labelled ``name`` (diagnostics show it instead of ``"<index>/<kind>"``)."""
        return self._replace(name=name)

    @property
    def label(self) -> str:
        """The name if given, else the kind, else ``"layer"``."""
        return self.name or self.kind or "layer"

    @property
    def stateful(self) -> bool:
        """Whether the layer carries state (``init_with_state`` is set)."""
        return self.init_with_state is not None

    @property
    def accepts(self) -> frozenset:
        """The run-time keywords ``apply`` reads: the common ones plus ``keywords`` when declared; else read from
        ``apply``'s signature (a ``**kwargs`` function accepts every keyword of :data:`KEYWORDS`)."""
        if "_accepts" not in self.__dict__:
            acc = (_signature_keywords(self.apply) if self.keywords is None else
                   frozenset(COMMON_KEYWORDS).union(self.keywords))
            self.__dict__["_accepts"] = acc
        return self.__dict__["_accepts"]


def as_layer(layer, where: str) -> Layer:
    """``layer`` as a :class:`Layer` (a plain ``(init, apply)`` pair is wrapped); a clear error for anything else."""
    if isinstance(layer, Layer):
        return layer
    if isinstance(layer, tuple) and len(layer) == 2 and all(callable(f) for f in layer):
        return Layer(*layer)
    if callable(layer):
        raise TypeError(f"{where}: expected a layer (an (init, apply) pair), got the function {layer!r}; "
                        f"did you forget to call a layer constructor, e.g. Dense(10) instead of Dense?")
    raise TypeError(f"{where}: expected a layer (an (init, apply) pair), got {type(layer).__name__}: {layer!r}")


def init_with_state(layer, key, input_shape) -> tuple[Shape, Params, Any]:
    """Initialize a layer's params *and* state: ``-> (output_shape, params, state)``.

    The params equal ``layer.init(key, input_shape)[1]``; the state is ``None`` for stateless layers.

    Example:
      >>> import jax
      >>> from fnn.layers import Dense, BatchNorm, serial, init_with_state
      >>> shape, params, state = init_with_state(serial(Dense(3), BatchNorm(axis=0)), jax.random.key(0), (-1, 2))
      >>> shape, state[0], state[1].mean.shape
      ((-1, 3), None, (3,))
    """
    layer = as_layer(layer, "init_with_state")
    if layer.init_with_state is not None:
        return layer.init_with_state(key, input_shape)
    if getattr(layer.apply, _STATEFUL, False):
        raise ValueError(f"init_with_state: the layer {layer.label!r} has the apply of a stateful layer but no "
                         f"init_with_state: it was rebuilt from its two functions (Layer(init, apply)), which "
                         f"drops the state; keep the record with layer._replace(...) or pass init_with_state=")
    out_shape, params = layer.init(key, input_shape)
    return out_shape, params, None


def run_key(kwargs: dict):
    """The PRNG key of an ``apply`` call: stax's ``rng=`` or ``key=`` (``None`` when neither was given).

    ``rng`` wins when both arrive: inside a stax ``serial`` only ``rng`` is split per layer.
    """
    key = kwargs.get("rng")
    return kwargs.get("key") if key is None else key


def _split(key, n: int):
    return (None,) * n if key is None else tuple(jax.random.split(key, n))


def _stateful(layer) -> bool:
    return layer.init_with_state is not None or getattr(layer.apply, _STATEFUL, False)


def _layers(where: str, layers) -> tuple:
    if not layers:
        raise ValueError(f"{where}: expected at least one layer, got none")
    layers = tuple(as_layer(l, f"{where} (layer {i})") for i, l in enumerate(layers))
    names = [l.name for l in layers if l.name is not None]
    for name in set(n for n in names if names.count(n) > 1):
        at = [i for i, l in enumerate(layers) if l.name == name]
        raise ValueError(f"{where}: layers {at} are all named {name!r}; names identify layers in diagnostics, "
                         f"give each its own name")
    return layers


def _combinator(where: str, layers: tuple, init_state: Callable, run: Callable) -> Layer:
    """serial/parallel's shared body; ``run`` composes the children, ``calls[i](p, x, key, s, kw)`` applies one."""
    n = len(layers)
    accepted = frozenset(COMMON_KEYWORDS).union(*(l.accepts for l in layers))

    def call(layer):  # child i gets the keywords it accepts and the key under each name it reads
        receivable = _receivable(layer.apply)   # a declared layer without **kwargs gets only what it names
        acc = layer.accepts if receivable is None else layer.accepts & receivable
        names = [k for k in ("key", "rng") if k in acc]

        def child(p, x, key, s, kw):
            kw = {k: v for k, v in kw.items() if k in acc}
            kw.update((k, key) for k in names)
            if s is None:
                return layer.apply(p, x, **kw), None
            return layer.apply(p, x, state=s, **kw)
        return child

    calls = tuple(call(l) for l in layers)

    def init(key, input_shape):
        return init_state(key, input_shape, False)[:2]

    def apply(params, inputs, **kwargs):
        train = kwargs.get("train", True)
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"{where}: train must be a Python bool (True to train, False to evaluate), got "
                            f"{type(train).__name__} {train!r}; it selects code paths, so under jit mark it static "
                            f"(jax.jit(f, static_argnames='train'))")
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise TypeError(f"{where}: got the keyword argument(s) {unknown}, which no layer of this model accepts; "
                            f"accepted: {sorted(accepted)}; check the spelling, or declare a custom layer's "
                            f"keywords with Layer(init, apply, keywords=(...))")
        if not (isinstance(params, (tuple, list)) and len(params) == n):
            got = f"{len(params)} entries" if isinstance(params, (tuple, list)) else type(params).__name__
            raise ValueError(f"{where}: expected params with one entry per layer ({n}), got {got}; build them with "
                             f"this model's init (or init_with_state), not another model's")
        state = kwargs.get("state")
        if state is not None and not (isinstance(state, tuple) and len(state) == n):
            raise ValueError(f"{where}: expected state to be a tuple with one entry per layer ({n}), got {state!r}; "
                             f"build it with fnn.init_with_state(model, key, input_shape)")
        keys = _split(run_key(kwargs), n)
        kw = {k: v for k, v in kwargs.items() if k not in ("key", "rng", "state")}
        y, new_state = run(calls, params, inputs, keys, (None,) * n if state is None else state, kw)
        return y if state is None else (y, new_state)

    stateful = any(_stateful(l) for l in layers)
    return Layer(init, apply, (lambda key, shape: init_state(key, shape, True)) if stateful else None,
                 kind=where, children=layers, keywords=sorted(accepted - set(COMMON_KEYWORDS)))


def _init_child(layer, key, input_shape, with_state: bool):
    if with_state:
        return init_with_state(layer, key, input_shape)
    return (*layer.init(key, input_shape), None)


def serial(*layers) -> Layer:
    """Compose layers in sequence: ``y = f_n(... f_2(f_1(x)))``.

    Params are a tuple with one entry per layer (a different count raises ``ValueError``); the run-time key is
    split into one key per layer (as stax does); ``model.children`` are the layers.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from fnn.layers import Dense, Relu, serial
      >>> model = serial(Dense(3), Relu, Dense(2))
      >>> out_shape, params = model.init(jax.random.key(0), (-1, 4))
      >>> out_shape, len(params), model.apply(params, jnp.ones((5, 4))).shape
      ((-1, 2), 3, (5, 2))
      >>> model.apply(params, jnp.ones((5, 4)), trian=False)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      TypeError: serial: got the keyword argument(s) ['trian'], which no layer of this model accepts; ...
    """
    layers = _layers("serial", layers)

    def init_state(key, input_shape, with_state):
        params, states = [], []
        for layer in layers:
            key, sub = jax.random.split(key)
            input_shape, p, s = _init_child(layer, sub, input_shape, with_state)
            params.append(p)
            states.append(s)
        return input_shape, tuple(params), tuple(states)

    def run(calls, params, x, keys, states, kw):
        new_states = []
        for call, p, k, s in zip(calls, params, keys, states):
            x, s = call(p, x, k, s, kw)
            new_states.append(s)
        return x, tuple(new_states)

    return _combinator("serial", layers, init_state, run)


def parallel(*layers) -> Layer:
    """Apply layer ``i`` to input ``i``: ``[f_1(x_1), ..., f_n(x_n)]``. Used with ``FanOut`` and ``FanInSum``.

    Params, key splitting and keyword checks as :func:`serial`; ``model.children`` are the layers.
    """
    layers = _layers("parallel", layers)
    n = len(layers)

    def init_state(key, input_shape, with_state):
        if len(input_shape) != n:
            raise ValueError(f"parallel: expected {n} input shapes (one per layer), got {input_shape!r}; "
                             f"put FanOut({n}) in front")
        out = [_init_child(l, k, s, with_state) for l, k, s in zip(layers, jax.random.split(key, n), input_shape)]
        shapes, params, states = zip(*out)
        return list(shapes), tuple(params), tuple(states)

    def run(calls, params, inputs, keys, states, kw):
        if len(inputs) != n:
            raise ValueError(f"parallel: expected {n} inputs (one per layer), got {len(inputs)}")
        ys, new_states = zip(*[c(p, x, k, s, kw) for c, p, x, k, s in zip(calls, params, inputs, keys, states)])
        return list(ys), tuple(new_states)

    return _combinator("parallel", layers, init_state, run)


def shape_dependent(make_layer: Callable[[Shape], Any]) -> Layer:
    """Delay building a layer until the input shape is known: ``make_layer(input_shape) -> layer``."""
    def init(key, input_shape):
        return as_layer(make_layer(input_shape), "shape_dependent").init(key, input_shape)

    def init_state(key, input_shape):
        return init_with_state(make_layer(input_shape), key, input_shape)

    def apply(params, inputs, **kwargs):
        return as_layer(make_layer(inputs.shape), "shape_dependent").apply(params, inputs, **kwargs)

    return Layer(init, apply, init_state)


def FanOut(num: int) -> Layer:
    """Copy the input ``num`` times: ``x -> [x] * num``."""
    if not (isinstance(num, int) and num >= 1):
        raise ValueError(f"FanOut: expected a positive number of copies, got {num!r}")
    return Layer(lambda key, input_shape: ([input_shape] * num, ()),
                 lambda params, inputs, **kwargs: [inputs] * num, kind="FanOut", keywords=())


def _fan_in_sum_init(key, input_shape):
    first = tuple(input_shape[0])
    for s in input_shape[1:]:
        if tuple(s) != first:
            raise ValueError(f"FanInSum: all inputs must have the same shape, got {list(input_shape)}")
    return input_shape[0], ()


FanInSum = Layer(_fan_in_sum_init, lambda params, inputs, **kwargs: sum(inputs[1:], inputs[0]), kind="FanInSum",
                 keywords=())
FanInSum.__doc__ = "Sum a list of inputs of equal shape: ``[x_1, ..., x_n] -> x_1 + ... + x_n``."


def FanInConcat(axis: int = -1) -> Layer:
    """Concatenate a list of inputs along ``axis``."""
    def init(key, input_shape):
        ax = axis % len(input_shape[0])
        rest = [tuple(s[:ax]) + tuple(s[ax + 1:]) for s in input_shape]
        if any(len(s) != len(input_shape[0]) for s in input_shape) or len(set(rest)) > 1:
            raise ValueError(f"FanInConcat: inputs must agree on every axis but {axis}, got shapes "
                             f"{[tuple(s) for s in input_shape]}; reshape them or concatenate along another axis")
        size = sum(s[ax] for s in input_shape)
        return tuple(input_shape[0][:ax]) + (size,) + tuple(input_shape[0][ax + 1:]), ()

    return Layer(init, lambda params, inputs, **kwargs: jnp.concatenate(inputs, axis), kind="FanInConcat",
                 keywords=())


Identity = Layer(lambda key, input_shape: (input_shape, ()), lambda params, inputs, **kwargs: inputs,
                 kind="Identity", keywords=())
Identity.__doc__ = "The identity layer: ``y = x`` (no params)."


def residual(*layers) -> Layer:
    """A residual block ``y = x + F(x)`` with ``F = serial(*layers)`` (He et al., CVPR 2016, eq. (1)).

    Built from the public pieces: ``serial(FanOut(2), parallel(serial(*layers), Identity), FanInSum)``.
    """
    return serial(FanOut(2), parallel(serial(*layers), Identity), FanInSum)._replace(kind="residual")
