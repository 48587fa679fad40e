"""Saved runs: rebuild the model a run kept (``fnn train``'s ``<out>/model``) and use it again from Python.

    run = load_run("runs/digits-mlp")
    logits = run.apply(run.params, run.prepare(X_raw))      # the model of the epoch reported in results.json

A run folder holds ``config.json`` (the settings, with a ``model_spec``: ``{"name": "mlp" | "cnn", "hidden": [...],
"num_classes": 10, "input_shape": [...]}`` and the ``precision``) and ``model/`` (a checkpoint of ``{"params",
"norm"}``: the kept parameters and the training split's standardisation statistics). The models are rebuilt from the
spec by :data:`MODEL_BUILDERS`, a table in this module rather than in the command line, because ``fnn.train`` sits
below ``fnn.cli`` (it may not import it) while the models are plain ``fnn.layers`` compositions: the command line
builds its models here too, so a saved spec and the trained model cannot drift apart. A model of your own (any
``fnn.layers`` layer with the saved parameters' structure) is passed as ``load_run(run_dir, model=layer)``.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = ["Run", "load_run", "model_spec", "build_from_spec", "spec_of", "make_prepare", "mlp_model",
           "cnn_model", "MODEL_BUILDERS"]


def mlp_model(hidden, num_classes: int):
    """``Dense(h_1), ReLU, ..., Dense(h_k), ReLU, Dense(num_classes)``: ``fnn train --model mlp``."""
    from fnn import layers as L
    return L.mlp(list(hidden) + [num_classes], L.Relu)


def cnn_model(hidden, num_classes: int):
    """``Conv(c1, 3x3, SAME), ReLU, MaxPool(2x2, stride 2), Conv(c2, 3x3, SAME), ReLU, MaxPool(2x2, stride 2),
    Flatten, Dense(num_classes)`` with ``(c1, c2) = (hidden + [32, 64])[:2]``; NHWC inputs.
    ``fnn train --model cnn``."""
    from fnn import layers as L
    c1, c2 = (list(hidden) + [32, 64])[:2]
    return L.serial(L.Conv(c1, (3, 3), padding="SAME"), L.Relu, L.MaxPool((2, 2), (2, 2)),
                    L.Conv(c2, (3, 3), padding="SAME"), L.Relu, L.MaxPool((2, 2), (2, 2)),
                    L.Flatten, L.Dense(num_classes))


#: the models a spec can name: ``name -> builder(hidden, num_classes)``
MODEL_BUILDERS: dict[str, Callable] = {"mlp": mlp_model, "cnn": cnn_model}


def model_spec(name: str, hidden, num_classes: int, input_shape, augment: dict | None = None) -> dict:
    """The JSON-able description of a built-in model, saved in a run's ``config.json`` as ``model_spec``.

    ``augment``: ``{"crop_padding": p, "flip": q}`` puts ``RandomCrop(p)`` (when ``p > 0``) and ``RandomFlip(q)``
    (when ``q > 0``) in front of an image model; they act only in training (``train=True``) and have no params.

    Example:
      >>> model_spec("mlp", [16], 10, (64,))
      {'name': 'mlp', 'hidden': [16], 'num_classes': 10, 'input_shape': [64]}
    """
    if name not in MODEL_BUILDERS:
        raise ValueError(f"model_spec: unknown model {name!r}; expected one of {sorted(MODEL_BUILDERS)}")
    spec = {"name": name, "hidden": [int(h) for h in hidden], "num_classes": int(num_classes),
            "input_shape": [int(s) for s in input_shape]}
    if augment:
        if len(spec["input_shape"]) != 3:
            raise ValueError(f"model_spec: augmentation needs image inputs (H, W, C), got input shape "
                             f"{tuple(spec['input_shape'])}; use the cnn model")
        spec["augment"] = {"crop_padding": int(augment.get("crop_padding", 0)), "flip": float(augment.get("flip", 0))}
    return spec


def build_from_spec(spec: dict):
    """The ``fnn.layers`` layer a ``model_spec`` describes (``MODEL_BUILDERS[spec["name"]]``, behind the
    augmentation layers when the spec has ``augment``)."""
    name = spec.get("name")
    if name not in MODEL_BUILDERS:
        raise ValueError(f"build_from_spec: unknown model {name!r}; expected one of {sorted(MODEL_BUILDERS)}; "
                         f"for a model of your own pass load_run(run_dir, model=your_layer)")
    model = MODEL_BUILDERS[name](spec["hidden"], spec["num_classes"])
    aug = spec.get("augment")
    if not aug:
        return model
    from fnn import layers as L
    front = ([L.RandomCrop(aug["crop_padding"])] if aug.get("crop_padding") else []) + \
        ([L.RandomFlip(aug["flip"])] if aug.get("flip") else [])
    return L.serial(*front, model)


class Run(NamedTuple):
    """A saved run, ready to call: ``apply(params, prepare(X_raw))`` gives the logits."""
    apply: Callable  # apply(params, x, **kw): the model in evaluation mode (train=False unless given), in mixed
    #                  precision when the run trained so
    params: Any  # the kept parameters (JAX arrays)
    state: Any  # the model state of a stateful model, else None
    prepare: Callable  # X_raw (n, ...) -> the standardised inputs of shape (n, *input_shape)
    config: dict  # config.json


def spec_of(config: dict) -> dict:
    """The run's model spec; runs written before specs were saved are described from their settings."""
    if "model_spec" in config:
        return config["model_spec"]
    shape = (8, 8) if config.get("dataset") == "digits" else (28, 28)
    flat = config.get("model") == "mlp"
    return model_spec(config.get("model"), config["hidden"], 10, (shape[0] * shape[1],) if flat else shape + (1,))


def make_prepare(norm, input_shape) -> Callable:
    """``X_raw -> (X - mean) / std`` in the model's input shape; any shape with the same values per example
    (``(n, 64)``, ``(n, 8, 8)`` or ``(n, 8, 8, 1)`` for 8x8 images) is accepted and reshaped."""
    import jax.numpy as jnp
    input_shape = tuple(int(s) for s in input_shape)
    size = int(np.prod(input_shape))
    mean, std = np.asarray(norm["mean"], np.float32), np.asarray(norm["std"], np.float32)

    def prepare(X):
        X = np.asarray(X)
        if X.ndim < 2 or int(np.prod(X.shape[1:])) != size:
            side = int(round(np.sqrt(size)))
            shapes = [f"(n, {size})"] + [f"(n, {side}, {side})"] * (side * side == size)
            shapes += [f"(n, {', '.join(map(str, input_shape))})"] * (len(input_shape) > 2)
            raise ValueError(f"prepare: expected raw inputs of shape {' or '.join(shapes)} ({size} values per "
                             f"example, as the run's model was trained on), got shape {X.shape}; pass inputs of "
                             f"the run's dataset, one example per row")
        X = X.reshape((len(X),) + input_shape).astype(np.float32)
        return jnp.asarray(((X - mean) / std).astype(np.float32))

    return prepare


def load_run(run_dir, model=None) -> Run:
    """Load the model a run kept: ``Run(apply, params, state, prepare, config)``.

    Args:
      run_dir: the run's folder (``fnn train --out``), holding ``config.json`` and ``model/``.
      model: optional ``fnn.layers`` layer to use instead of the one the run's ``model_spec`` names (a model of
        your own; its parameters must have the saved structure).

    Returns:
      ``Run``: ``run.apply(run.params, run.prepare(X_raw))`` gives the logits, shape ``(n, num_classes)``, of the
      epoch reported in ``results.json``; ``run.apply`` computes in bfloat16 when the run trained so, and in
      evaluation mode (``train=False``: no dropout, no augmentation) unless called with ``train=True``.

    Raises:
      FileNotFoundError: no run in ``run_dir``. ValueError: a damaged or foreign model checkpoint.
    """
    import jax
    import jax.numpy as jnp

    from fnn.train import checkpoint
    from fnn.train.precision import mixed_precision
    config_path, model_dir = os.path.join(run_dir, "config.json"), os.path.join(run_dir, "model")
    if not (os.path.isfile(config_path) and os.path.isdir(model_dir) and checkpoint.all_steps(model_dir)):
        raise FileNotFoundError(f"load_run: expected a finished run in {str(run_dir)!r} (config.json and model/, "
                                f"written by fnn train --out), found none; train one with fnn train --out {run_dir}")
    with open(config_path) as f:
        config = json.load(f)
    spec = spec_of(config)
    layer = build_from_spec(spec) if model is None else model
    saved = checkpoint.restore(model_dir)
    params = jax.tree.map(jnp.asarray, saved["params"])
    def apply(params, x, **kwargs):   # a saved run is for inference: train=False unless asked otherwise
        return layer.apply(params, x, **{"train": False, **kwargs})

    if config.get("precision", "float32") == "bfloat16":
        apply = mixed_precision(apply, jnp.bfloat16)
    return Run(apply, params, saved.get("state"), make_prepare(saved["norm"], spec["input_shape"]), config)
