"""A checkpoint folder holds one run: its manifest, and the rules for starting, resuming and overwriting it.

``fit(..., checkpoint_dir=d)`` and ``fnn train --out`` keep, next to the checkpoints, a ``manifest.json`` that says
which run the folder holds:

    params      every parameter leaf: tree path, shape, dtype
    optimizer   the rule (its function's module and name), the hyper-parameters read from it, its state's tree
    data        shapes and dtypes of X and y, and a SHA-256 of their bytes
    seed        the key's data
    batch_size, epochs

The rules (:func:`prepare_run_folder`):

- a fresh run into a folder that already holds a run (checkpoints or a manifest) is refused, unless told to
  overwrite, which first deletes that run's checkpoints, history and manifest;
- a resume needs a run to resume (an empty folder is an error), and a manifest equal to the new run's in everything
  but ``epochs``: every difference is named; resuming with fewer epochs than were trained is an error;
- a folder path that is a file is refused before any training.
"""
from __future__ import annotations

import hashlib
import json
import os

import jax
import numpy as np

from fnn.train import checkpoint

__all__ = ["MANIFEST", "RunFolderError", "describe_optimizer", "run_manifest", "read_manifest", "manifest_differences",
           "prepare_run_folder"]

MANIFEST = "manifest.json"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (another run in it, nothing to resume, a different run)."""


def _numbers_in_closure(fn, depth=0) -> dict:
    """Hyper-parameters a rule closed over: numbers and strings of ``fn``'s closure, and of any Optimizer in it."""
    out = {}
    cells = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(getattr(getattr(fn, "__code__", None), "co_freevars", ()), cells):
        try:
            v = cell.cell_contents
        except ValueError:   # an empty cell
            continue
        if isinstance(v, (bool, int, float, str)) or (isinstance(v, np.generic) and v.ndim == 0):
            out[name] = v.item() if isinstance(v, np.generic) else v
        elif depth < 4 and isinstance(v, tuple) and v and all(hasattr(t, "update") or callable(t) for t in v):
            for i, t in enumerate(v):   # chained rules (fnn's Optimizers, optax's update functions)
                fn = t.update if hasattr(t, "update") else t
                out.update({f"{name}[{i}].{k}": x for k, x in _numbers_in_closure(fn, depth + 1).items()})
        elif depth < 4 and callable(v) and not isinstance(v, type) and hasattr(v, "__closure__"):
            out.update({f"{name}.{k}": x for k, x in _numbers_in_closure(v, depth + 1).items()})
    return out


def describe_optimizer(optimizer) -> dict:
    """``{"rule": "module.name", "hyperparameters": {...}}`` of an fnn rule or optax transformation.

    The hyper-parameters are the numbers and strings the rule's ``update`` closed over (schedules are functions and
    show up by their own numbers). Two rules with the same description compute the same updates.

    Example:
      >>> from fnn import optimizers
      >>> d = describe_optimizer(optimizers.momentum(0.1, 0.9))
      >>> d["rule"].endswith("momentum.<locals>.update"), sorted(d["hyperparameters"].items())
      (True, [('learning_rate', 0.1), ('mu', 0.9)])
    """
    update = optimizer.update
    return {"rule": f"{getattr(update, '__module__', '?')}.{getattr(update, '__qualname__', type(update).__name__)}",
            "hyperparameters": _numbers_in_closure(update)}


def _fingerprint(a) -> dict:
    a = np.ascontiguousarray(np.asarray(a))
    return {"shape": list(a.shape), "dtype": a.dtype.name, "sha256": hashlib.sha256(a.data).hexdigest()}


def run_manifest(params, opt_state, optimizer, X, y, *, key, batch_size: int, epochs: int, weights=None) -> dict:
    """The manifest of a run (see the module docstring): what makes it this run and no other (``weights``: the
    per-example loss weights of ``fit(sample_weight=, class_weight=)``, recorded when given)."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    data = {"X": _fingerprint(X), "y": _fingerprint(y)}
    if weights is not None:
        data["weights"] = _fingerprint(weights)
    return {
        "params": [[jax.tree_util.keystr(p), list(np.shape(x)), np.dtype(getattr(x, "dtype", np.float64)).name]
                   for p, x in leaves],
        "optimizer": dict(describe_optimizer(optimizer), state=str(jax.tree_util.tree_structure(opt_state))),
        "data": data,
        "seed": np.asarray(jax.random.key_data(key)).ravel().tolist(),
        "batch_size": int(batch_size),
        "epochs": int(epochs),
    }


def read_manifest(directory) -> dict | None:
    """The manifest in ``directory``, or ``None`` when there is none."""
    path = os.path.join(os.fspath(directory), MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{path!r} is corrupt ({e}); delete the folder's run (overwrite) or repair the "
                             f"file") from None


def manifest_differences(saved: dict, new: dict, *, ignore=("epochs",)) -> list[str]:
    """Human-readable differences between two manifests, one string per differing entry."""
    out = []
    for k in sorted(set(saved) | set(new)):
        if k in ignore or saved.get(k) == new.get(k):
            continue
        a, b = saved.get(k), new.get(k)
        if k == "optimizer" and isinstance(a, dict) and isinstance(b, dict) and a.get("rule") != b.get("rule"):
            out.append(f"optimizer: saved {a.get('rule')}, now {b.get('rule')}")   # another rule: say just that
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{d}" for d in manifest_differences(a, b, ignore=())]
        elif k == "seed":
            out.append(f"seed: the run was written with another key (saved {_short(a)}, now {_short(b)}); resume "
                       f"with the same key")
        else:
            out.append(f"{k}: saved {_short(a)}, now {_short(b)}")
    return out


def _short(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 120 else s[:117] + "..."


def _write_manifest(directory, manifest):
    path = os.path.join(directory, MANIFEST)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, path)


def _clear_run(directory):
    for step in checkpoint.all_steps(directory):
        os.unlink(checkpoint.checkpoint_path(directory, step))
    for name in (MANIFEST, "history.json"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            os.unlink(path)


def prepare_run_folder(directory, manifest: dict, *, resume: bool, overwrite: bool = False, where: str = "fit"):
    """Check ``directory`` for a new run (``resume=False``) or a resume, and record ``manifest`` there.

    Returns:
      The epochs already trained (0 for a fresh run).

    Raises:
      RunFolderError: the folder is a file; a fresh run into a folder holding another run without ``overwrite``;
        a resume with nothing to resume, with a different run's manifest (every difference named), or with fewer
        ``epochs`` than already trained.
    """
    d = os.fspath(directory)
    if os.path.exists(d) and not os.path.isdir(d):
        raise RunFolderError(f"{where}: the checkpoint folder {d!r} is a file; pass a folder (it is created if "
                             f"missing)")
    steps = checkpoint.all_steps(d)
    saved = read_manifest(d) if os.path.isdir(d) else None
    if resume and overwrite:
        raise RunFolderError(f"{where}: resume and overwrite both asked for {d!r}; resume continues the run in the "
                             f"folder, overwrite deletes it: choose one")
    if not resume:
        if steps or saved is not None:
            if not overwrite:
                raise RunFolderError(
                    f"{where}: {d!r} already holds a run ({len(steps)} checkpoint(s), last epoch "
                    f"{steps[-1] if steps else 0}); resume it, overwrite it (deletes its checkpoints and history), or "
                    f"choose another folder")
            _clear_run(d)
        os.makedirs(d, exist_ok=True)
        _write_manifest(d, manifest)
        return 0
    if not steps:
        raise RunFolderError(f"{where}: nothing to resume in {d!r}: expected checkpoints (ckpt_*.msgpack) of an "
                             f"earlier run there; start a new run without resume, or pass the folder of the run to "
                             f"continue")
    if saved is not None:
        diffs = manifest_differences(saved, manifest)
        if diffs:
            raise RunFolderError(f"{where}: {d!r} holds a different run; it differs in " + "; ".join(diffs)
                                 + ". Resume with the same model, optimizer, data, seed and batch size, or start a new "
                                 "run in another folder")
    if steps[-1] > manifest["epochs"]:
        raise RunFolderError(f"{where}: {d!r} has already trained {steps[-1]} epochs, more than epochs="
                             f"{manifest['epochs']}; ask for at least {steps[-1]} epochs, or restore a checkpoint "
                             f"directly with fnn.train.checkpoint.restore")
    _write_manifest(d, manifest)
    return steps[-1]
