"""The pieces ``fnn train`` and ``fnn evaluate`` share: the splits, the defaults table, ``--find-lr``, ``--devices``.

``load_splits`` rebuilds the same train/validation/test split from the dataset, the model kind and the seed (digits:
a stratified 70/15/15 split drawn with ``jax.random.key(seed)``; MNIST-style sets: the last 5,000 training images for
validation, the official test set), so that ``fnn evaluate`` sees the very examples ``fnn train`` evaluated.
"""
from __future__ import annotations

import json
import os
import sys

__all__ = ["DEFAULTS", "defaults_table", "load_splits", "standardise", "input_shape", "data_mesh_for",
           "find_lr_command", "fail"]

# Per-dataset defaults: (hidden widths, optimizer, learning rate, epochs, batch size).
DEFAULTS = {
    "digits": {"hidden": "128", "optimizer": "adam", "lr": 3e-3, "epochs": 30, "batch_size": 32},
    "fashion-mnist": {"hidden": "256,128", "optimizer": "adam", "lr": 1e-3, "epochs": 15, "batch_size": 128},
    "mnist": {"hidden": "256,128", "optimizer": "adam", "lr": 1e-3, "epochs": 10, "batch_size": 128},
}


class CommandError(SystemExit):
    """A user mistake: its message went to stderr; ``code`` is the exit status (2 usage, 1 data or run problem)."""

    def __init__(self, message: str, status: int):
        super().__init__(status)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(message: str, status: int):
    """Print ``message`` as one line on stderr and end the command with ``status`` (a :class:`CommandError`)."""
    print(message, file=sys.stderr)
    raise CommandError(message, status)


def defaults_table() -> str:
    """The per-dataset defaults as a small text table (``fnn train --help``'s epilog)."""
    rows = [("dataset", "--hidden", "--optimizer", "--lr", "--epochs", "--batch-size")]
    rows += [(name, d["hidden"], d["optimizer"], f"{d['lr']:g}", str(d["epochs"]), str(d["batch_size"]))
             for name, d in DEFAULTS.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return ("defaults per dataset (an option given on the command line wins; --model cnn: --hidden 32,64 and "
            "--schedule cosine):\n  " + "\n  ".join(lines))


def input_shape(dataset: str, model: str) -> tuple:
    """The model's input shape per example: flat pixels for the MLP, NHWC images for the CNN."""
    side = 8 if dataset == "digits" else 28
    return (side * side,) if model == "mlp" else (side, side, 1)


def load_splits(dataset, model, seed, data_dir):
    """``(train, val, test, norm)``: the splits standardised with the training split's statistics, and those."""
    import jax
    import numpy as np

    from fnn import data
    flat = model == "mlp"
    if dataset == "digits":
        X, y = data.load_digits(flatten=flat)
        train, val, test = data.train_val_test_split(X, y, (0.7, 0.15, 0.15), key=jax.random.key(seed),
                                                     stratify=True)
    else:
        loader = data.load_fashion_mnist if dataset == "fashion-mnist" else data.load_mnist
        X, y = loader(data_dir, split="train", flatten=flat)
        test = loader(data_dir, split="test", flatten=flat)
        train, val = (X[:-5000], y[:-5000]), (X[-5000:], y[-5000:])
    stats = data.fit_standardizer(train[0].reshape(len(train[0]), -1))
    if flat:
        norm = {"mean": np.asarray(stats.mean, np.float32), "std": np.asarray(stats.std, np.float32)}
    else:   # images: one mean/std for all pixels
        norm = {"mean": np.float32(stats.mean.mean()), "std": np.float32(np.sqrt((stats.std ** 2).mean()))}
    return (*(standardise(part, norm) for part in (train, val, test)), norm)


def standardise(part, norm):
    """``((X - mean) / std, y)`` in float32."""
    import numpy as np
    X, y = part
    return ((np.asarray(X, np.float32) - norm["mean"]) / norm["std"]).astype(np.float32), y


def data_mesh_for(devices: int | None, batch_size: int, command: str = "fnn train"):
    """A 1-D data mesh over the first ``devices`` devices (``None``: no mesh), or a usage error (exit 2)."""
    if devices is None:
        return None
    import jax

    from fnn.train.distributed import data_mesh
    have = jax.device_count()
    if devices > have:
        fail(f"{command}: --devices {devices} asks for more devices than JAX sees ({have}, {jax.default_backend()}); "
             f"use --devices {have} or fewer, or on the CPU simulate more with "
             f"XLA_FLAGS=--xla_force_host_platform_device_count={devices}", 2)
    if batch_size % devices:
        fail(f"{command}: --batch-size {batch_size} does not divide by --devices {devices} (each device takes an "
             f"equal share); use a multiple of {devices}, e.g. {devices * max(1, batch_size // devices)}", 2)
    return data_mesh(jax.devices()[:devices])


def find_lr_command(apply, params, optimizer_name, loss, train, batch_size, seed, out,
                    min_lr=1e-6, max_lr=10.0, steps=100) -> dict:
    """``fnn train --find-lr``: the range test on the training split; writes ``lr_finder.png``/``.json`` to ``out``."""
    import jax

    from fnn import optimizers
    from fnn.train import find_lr, plot_lr_finder
    found = find_lr(apply, params, lambda lr: optimizers.from_name(optimizer_name, lr), loss, *train,
                    key=jax.random.key(seed), min_lr=min_lr, max_lr=max_lr, steps=steps,
                    batch_size=batch_size)
    os.makedirs(out, exist_ok=True)
    plot_lr_finder(found, os.path.join(out, "lr_finder.png"))
    record = {"suggested": float(found.suggested), "min_lr": min_lr, "max_lr": max_lr, "steps": steps,
              "steps_taken": len(found.rates), "optimizer": optimizer_name, "batch_size": batch_size,
              "rates": [float(r) for r in found.rates], "losses": [float(v) for v in found.losses],
              "smoothed": [float(v) for v in found.smoothed]}
    with open(os.path.join(out, "lr_finder.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record
