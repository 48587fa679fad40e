"""The layer contract and the combinators that compose layers.

A layer is a named pair ``Layer(init, apply)`` that unpacks like stax's ``init_fun, apply_fun = layer``:

    init(key, input_shape) -> (output_shape, params)      # -1 (or None) marks the batch dimension
    apply(params, inputs, **kwargs) -> outputs            # pure: jit, vmap and grad go through it

Run-time behaviour arrives as keyword arguments: ``key=`` (stax's ``rng=`` is accepted too) and ``train=``
(default ``True``, stax's behaviour). Per-layer params are NamedTuples (``DenseParams(W, b)``) that unpack and index
like stax's tuples; ``serial``'s params are a tuple with one entry per layer; parameter-free layers have ``()``.

State (BatchNorm's running averages) is explicit and optional. A stateful layer's ``apply`` also takes ``state=``
and then returns ``(outputs, new_state)``; without ``state=`` it returns ``outputs`` alone and behaves like stax.
``init_with_state(layer, key, input_shape) -> (output_shape, params, state)`` builds the state tree: ``None`` for a
stateless layer, a tuple per child for ``serial``/``parallel``. Plain ``(init_fun, apply_fun)`` tuples from stax or
user code are stateless layers and compose unchanged.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


__all__ = [
    "Layer", "init_with_state", "run_key", "serial", "parallel", "FanOut", "FanInSum", "FanInConcat",
    "shape_dependent", "residual", "as_layer", "Identity",
]

Shape = tuple
Params = Any


class _Pair(NamedTuple):
    init: Callable
    apply: Callable


class Layer(_Pair):
    """A layer: ``Layer(init, apply)``; unpacks as ``init_fun, apply_fun = layer``.

    Calling a layer with no arguments returns it, so parameter-free layers work as values and as calls:
    ``serial(Dense(10), Relu, Dense(2))`` and ``serial(Dense(10), Relu(), Dense(2))`` are the same model.

    ``init_with_state`` (optional, keyword only) is ``(key, input_shape) -> (output_shape, params, state)`` for
    layers that carry state; stateless layers leave it ``None``.
    """

    init_with_state: Callable | None = None

    def __new__(cls, init, apply, init_with_state=None):
        self = super().__new__(cls, init, apply)
        if init_with_state is not None:
            self.init_with_state = init_with_state
        return self

    def __call__(self):
        return self


def as_layer(layer, where: str) -> Layer:
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
    """
    layer = as_layer(layer, "init_with_state")
    if layer.init_with_state is None:
        out_shape, params = layer.init(key, input_shape)
        return out_shape, params, None
    return layer.init_with_state(key, input_shape)


def run_key(kwargs: dict):
    """The PRNG key of an ``apply`` call: ``key=`` or stax's ``rng=`` (``None`` when neither was given)."""
    key = kwargs.get("key")
    return kwargs.get("rng") if key is None else key


def _split(key, n: int):
    return (None,) * n if key is None else tuple(jax.random.split(key, n))


def _child_kwargs(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k not in ("key", "rng", "state")}


def _apply_child(apply, params, x, key, state, kwargs):
    """Apply one child; thread its state when it has one."""
    if state is None:
        return apply(params, x, rng=key, **kwargs), None
    return apply(params, x, rng=key, state=state, **kwargs)


def _check_state(where: str, state, n: int):
    if not (isinstance(state, tuple) and len(state) == n):
        raise ValueError(f"{where}: expected state to be a tuple with one entry per layer ({n}), got {state!r}; "
                         f"build it with fnn.init_with_state(model, key, input_shape)")


def serial(*layers) -> Layer:
    """Compose layers in sequence: ``y = f_n(... f_2(f_1(x)))``.

    Params are a tuple with one entry per layer; the run-time key is split into one key per layer (as stax does).
    """
    if not layers:
        raise ValueError("serial: expected at least one layer, got none")
    layers = tuple(as_layer(l, f"serial (layer {i})") for i, l in enumerate(layers))
    n = len(layers)

    def init(key, input_shape):
        return init_state(key, input_shape)[:2]

    def init_state(key, input_shape):
        params, states = [], []
        for layer in layers:
            key, sub = jax.random.split(key)
            input_shape, p, s = init_with_state(layer, sub, input_shape)
            params.append(p)
            states.append(s)
        return input_shape, tuple(params), tuple(states)

    def apply(params, inputs, **kwargs):
        state = kwargs.get("state")
        keys, kw = _split(run_key(kwargs), n), _child_kwargs(kwargs)
        if state is None:
            for layer, p, k in zip(layers, params, keys):
                inputs = layer.apply(p, inputs, rng=k, **kw)
            return inputs
        _check_state("serial", state, n)
        new_states = []
        for layer, p, k, s in zip(layers, params, keys, state):
            inputs, s = _apply_child(layer.apply, p, inputs, k, s, kw)
            new_states.append(s)
        return inputs, tuple(new_states)

    stateful = any(l.init_with_state is not None for l in layers)
    return Layer(init, apply, init_state if stateful else None)


def parallel(*layers) -> Layer:
    """Apply layer ``i`` to input ``i``: ``[f_1(x_1), ..., f_n(x_n)]``. Used with ``FanOut`` and ``FanInSum``."""
    if not layers:
        raise ValueError("parallel: expected at least one layer, got none")
    layers = tuple(as_layer(l, f"parallel (layer {i})") for i, l in enumerate(layers))
    n = len(layers)

    def init(key, input_shape):
        return init_state(key, input_shape)[:2]

    def init_state(key, input_shape):
        if len(input_shape) != n:
            raise ValueError(f"parallel: expected {n} input shapes (one per layer), got {input_shape!r}; "
                             f"put FanOut({n}) in front")
        out = [init_with_state(l, k, s) for l, k, s in zip(layers, jax.random.split(key, n), input_shape)]
        shapes, params, states = zip(*out)
        return list(shapes), tuple(params), tuple(states)

    def apply(params, inputs, **kwargs):
        if len(inputs) != n:
            raise ValueError(f"parallel: expected {n} inputs (one per layer), got {len(inputs)}")
        state = kwargs.get("state")
        keys, kw = _split(run_key(kwargs), n), _child_kwargs(kwargs)
        if state is None:
            return [l.apply(p, x, rng=k, **kw) for l, p, x, k in zip(layers, params, inputs, keys)]
        _check_state("parallel", state, n)
        outs = [_apply_child(l.apply, p, x, k, s, kw) for l, p, x, k, s in zip(layers, params, inputs, keys, state)]
        ys, new_states = zip(*outs)
        return list(ys), tuple(new_states)

    stateful = any(l.init_with_state is not None for l in layers)
    return Layer(init, apply, init_state if stateful else None)


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
                 lambda params, inputs, **kwargs: [inputs] * num)


def _fan_in_sum_init(key, input_shape):
    first = tuple(input_shape[0])
    for s in input_shape[1:]:
        if tuple(s) != first:
            raise ValueError(f"FanInSum: all inputs must have the same shape, got {list(input_shape)}")
    return input_shape[0], ()


FanInSum = Layer(_fan_in_sum_init, lambda params, inputs, **kwargs: sum(inputs[1:], inputs[0]))
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

    return Layer(init, lambda params, inputs, **kwargs: jnp.concatenate(inputs, axis))


Identity = Layer(lambda key, input_shape: (input_shape, ()), lambda params, inputs, **kwargs: inputs)
Identity.__doc__ = "The identity layer: ``y = x`` (no params)."


def residual(*layers) -> Layer:
    """A residual block ``y = x + F(x)`` with ``F = serial(*layers)`` (He et al., CVPR 2016, eq. (1)).

    Built from the public pieces: ``serial(FanOut(2), parallel(serial(*layers), Identity), FanInSum)``.
    """
    return serial(FanOut(2), parallel(serial(*layers), Identity), FanInSum)
