"""Checkpoints: save and restore any pytree (params, optimizer state, step, PRNG key, history) atomically.

File ``ckpt_{step:08d}.msgpack``, one per step, in one directory per run (one writer per directory):

    b"fnn-checkpoint\\n"                 magic, 15 bytes
    uint32, big-endian                  0x80000000 | L, L the length of the header (the high bit marks format 2)
    32 bytes                            SHA-256 of everything after the magic but these 32 bytes: length, header,
                                        payload (format 2; format 1 files have no such field and are still read)
    L bytes                             msgpack header: {"magic", "version", "step", "treedef" (str), "skeleton",
                                        "leaves": [per leaf: path, kind, dtype, shape, nbytes | value],
                                        "payload_nbytes", "payload_sha256"}
    payload_nbytes bytes                the array leaves' raw little-endian C-order bytes, one after the other

Python scalars and strings live in the header; arrays and typed PRNG keys (as ``jax.random.key_data`` plus the
impl name) in the payload. The whole-file SHA-256 and the expected file size detect truncation and any corruption,
of the header as of the payload: a damaged file raises :class:`CorruptCheckpointError` naming it, never restores
other values. Restoring the latest checkpoint of a directory falls back to the newest *good* one, with a
:class:`CheckpointWarning` naming each damaged file it skipped.
``save`` writes to a temporary file in the same directory, flushes and fsyncs it, then ``os.replace``s it onto the
final name, so a crash at any moment leaves the old checkpoints readable and the new one either complete or absent.
Why msgpack rather than orbax or safetensors: see docs/checkpoints.md.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings

import jax
import numpy as np

from fnn.train.ckpt_format import (
    FORMAT_VERSION,
    MAGIC,
    CorruptCheckpointError,
    build_tree,
    decode_leaves,
    fit_to_target,
    read_checkpoint,
    serialise,
)

__all__ = ["MAGIC", "FORMAT_VERSION", "CorruptCheckpointError", "CheckpointWarning", "checkpoint_path", "all_steps",
           "latest_step", "save", "resolve", "restore"]


class CheckpointWarning(UserWarning):
    """Issued when ``restore`` skips a damaged newest checkpoint and falls back to an earlier, good one."""


_NAME = re.compile(r"^ckpt_(\d{8,})\.msgpack$")
_TMP_PREFIX = ".ckpt_"
_TMP_SUFFIX = ".tmp"


def checkpoint_path(directory, step):
    """The file name ``save`` uses: ``directory/ckpt_{step:08d}.msgpack``.

    Example:
      >>> checkpoint_path("runs/a", 1200)
      'runs/a/ckpt_00001200.msgpack'
    """
    return os.path.join(os.fspath(directory), f"ckpt_{step:08d}.msgpack")


def all_steps(directory):
    """Steps of the checkpoints in ``directory``, ascending (``[]`` if it holds none or does not exist).

    Args:
      directory: a run's checkpoint directory.

    Returns:
      sorted ``list[int]``; temporary files of unfinished writes are not counted.

    Example:
      >>> for step in (1000, 1100, 1200):
      ...     _ = save("runs/a/ckpt", step, {"step": step})
      >>> all_steps("runs/a/ckpt")
      [1000, 1100, 1200]
    """
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)


def latest_step(directory):
    """The highest step saved in ``directory``, or ``None`` if there is none (e.g. to decide whether to resume).

    Example:
      >>> latest_step("runs/never-written") is None
      True
    """
    steps = all_steps(directory)
    return steps[-1] if steps else None


def _write_all(f, chunks):
    for chunk in chunks:
        f.write(chunk)


def save(directory, step, tree, *, keep=3):
    """Write ``tree`` as the checkpoint of ``step`` in ``directory``, atomically, keeping the newest ``keep``.

    The bytes go to a temporary file in ``directory`` which is flushed, fsynced and then renamed with ``os.replace``
    onto ``ckpt_{step:08d}.msgpack`` (an existing file of that step is replaced); the directory is fsynced too. If
    anything fails before the rename the temporary file is removed and the earlier checkpoints are untouched. After
    the rename, checkpoints beyond the ``keep`` highest steps are deleted (never the one just written).

    Args:
      directory: the run's checkpoint directory (created if missing).
      step: integer ``>= 0``, e.g. the optimizer step.
      tree: any pytree of arrays (any dtype, bfloat16 included), typed PRNG keys, Python bool/int/float/str,
        NamedTuples, tuples, lists, dicts and None.
      keep: how many checkpoints to keep (``>= 1``), or ``None`` to keep all.

    Returns:
      the path written.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> params = {"W": jnp.ones((64, 32)), "b": jnp.zeros(32)}
      >>> save("runs/a/ckpt", 100, {"params": params, "step": 100, "key": jax.random.key(0)})
      'runs/a/ckpt/ckpt_00000100.msgpack'

    Reference: Pillai et al., "All file systems are not created equal", OSDI 2014 (write, fsync, rename, fsync dir).
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"save: step must be an integer >= 0, got {step!r}")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1):
        raise ValueError(f"save: keep must be an integer >= 1 or None (keep all), got {keep!r}")
    step = int(step)
    chunks = serialise(step, tree)  # fails on a bad leaf before touching the disk
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temporaries(directory)
    final = checkpoint_path(directory, step)
    fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{step:08d}.", suffix=_TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_all(f, chunks)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)
    if keep is not None:
        for old in all_steps(directory)[:-keep]:
            if old != step:
                os.unlink(checkpoint_path(directory, old))
    return final


def _remove_stale_temporaries(directory):
    """Delete the temporary files of writes that were killed before their rename (one writer per directory)."""
    for name in os.listdir(directory):
        if name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX):
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass


def _fsync_directory(directory):
    if sys.platform.startswith("win"):
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve(path_or_directory, *, step=None):
    """The checkpoint file ``restore`` would read: the file itself, or in a directory the ``step`` (default latest).

    Raises:
      FileNotFoundError: no such file, no checkpoint in the directory, or no checkpoint of ``step``.
    """
    p = os.fspath(path_or_directory)
    if os.path.isdir(p):
        steps = all_steps(p)
        if not steps:
            raise FileNotFoundError(f"restore: no checkpoint (ckpt_*.msgpack) in directory {p!r}; train with "
                                    f"checkpointing on first, or pass the directory save() wrote to")
        if step is None:
            return checkpoint_path(p, steps[-1])
        if step not in steps:
            raise FileNotFoundError(f"restore: no checkpoint of step {step} in {p!r}; available steps: {steps}")
        return checkpoint_path(p, step)
    if step is not None:
        raise ValueError(f"restore: step={step} only applies to a directory, but {p!r} is a file; pass its "
                         f"directory or drop step")
    if not os.path.exists(p):
        raise FileNotFoundError(f"restore: {p!r} does not exist; pass a checkpoint file or a run's checkpoint "
                                f"directory")
    return p


def restore(path_or_directory, target=None, *, step=None):
    """Read a checkpoint written by ``save``.

    With ``target`` (a pytree of the saved structure, e.g. freshly initialised params and optimizer state, or
    ``jax.ShapeDtypeStruct`` leaves) the stored leaves are put back into that structure: array leaves come back as
    JAX arrays if the target leaf is one and as NumPy arrays otherwise, keys as typed keys, Python scalars as such;
    every dtype and shape must match the target's. Without ``target`` the tree comes back with the saved containers:
    dicts as dicts, tuples as tuples, lists as lists, NamedTuples as their class when it is loaded (fnn's params and
    optimizer states always are; otherwise a plain tuple, which ``apply`` accepts too), dataclasses as dicts; arrays
    as NumPy arrays, keys as typed keys. Files of format 1 (fnn before the whole-file checksum) restore without a
    target as nested dicts and lists, as they did.

    For a directory's latest checkpoint (``step=None``) a damaged newest file is skipped with a
    :class:`CheckpointWarning` naming it, and the newest good one is restored.

    Args:
      path_or_directory: a checkpoint file, or a directory (then its latest checkpoint, or the one of ``step``).
      target: optional pytree giving the structure, dtypes and shapes.
      step: which step to read from a directory.

    Returns:
      the restored pytree.

    Raises:
      CorruptCheckpointError: (a ValueError) foreign, truncated or damaged file, the message naming the file.
      ValueError: structure or dtype mismatch with ``target`` (the message prints both).
      FileNotFoundError: nothing to restore.

    Example:
      >>> import jax.numpy as jnp
      >>> from fnn import optimizers
      >>> params = ({"W": jnp.ones((64, 32)), "b": jnp.zeros(32)},)
      >>> opt_state = optimizers.adam(1e-3).init(params)
      >>> _ = save("runs/a/ckpt", 1200, {"params": params, "opt_state": opt_state, "step": 1200})
      >>> tree = restore("runs/a/ckpt", {"params": params, "opt_state": opt_state, "step": 0})   # latest, as the target
      >>> tree["step"], tree["params"][0]["W"].dtype
      (1200, dtype('float32'))
      >>> restore("runs/a/ckpt/ckpt_00001200.msgpack")["params"][0]["W"].shape           # no target: dicts and lists
      (64, 32)

    Reference: file layout in this module's docstring and docs/checkpoints.md.
    """
    path, header, payload = _read_newest_good(path_or_directory, step)
    try:
        values = decode_leaves(header, payload)
        built = build_tree(header["skeleton"], values) if target is None else None
    except Exception as e:   # only a hand-made file with a valid checksum gets here
        raise CorruptCheckpointError(f"restore: checkpoint {path!r} does not decode ({type(e).__name__}: {e}); "
                                     f"restore an earlier step") from None
    if target is None:
        return built
    with_path, treedef = jax.tree_util.tree_flatten_with_path(target)
    if str(treedef) != header["treedef"] or len(with_path) != len(values):
        raise ValueError(f"restore: the tree in {path!r} does not have the target's structure;\n  saved:  "
                         f"{header['treedef']}\n  target: {treedef}\nbuild the target the same way as the saved tree "
                         f"(same layers, optimizer and extra entries), or pass target=None to get the saved tree")
    leaves = [fit_to_target(path, e, v, t) for e, v, (_, t) in zip(header["leaves"], values, with_path)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _read_newest_good(path_or_directory, step):
    """``(path, header, payload)``; for a directory's latest checkpoint, the newest one that is not damaged."""
    path = resolve(path_or_directory, step=step)
    if step is not None or not os.path.isdir(os.fspath(path_or_directory)):
        return (path, *read_checkpoint(path))
    steps = all_steps(path_or_directory)[::-1]
    first_error = None
    for i, s in enumerate(steps):
        path = checkpoint_path(path_or_directory, s)
        try:
            header, payload = read_checkpoint(path)
        except CorruptCheckpointError as e:
            first_error = first_error or e
            if i + 1 < len(steps):
                warnings.warn(f"{e.args[0]}; skipping it and restoring step {steps[i + 1]} instead",
                              CheckpointWarning, stacklevel=3)
            continue
        return path, header, payload
    raise first_error
