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

import hashlib
import os
import re
import struct
import sys
import tempfile

import warnings

import jax
import msgpack
import numpy as np

__all__ = ["MAGIC", "FORMAT_VERSION", "CorruptCheckpointError", "CheckpointWarning", "checkpoint_path", "all_steps",
           "latest_step", "save", "resolve", "restore"]

MAGIC = b"fnn-checkpoint\n"
FORMAT_VERSION = 2
_V2 = 0x80000000


class CorruptCheckpointError(ValueError):
    """A checkpoint file that is truncated, damaged or not a checkpoint at all (the message names the file)."""


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
      >>> all_steps("runs/a/ckpt")   # doctest: +SKIP
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


# ------------------------------------------------------------------------------------------------- serialising
def _is_key(x):
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _dtype(name):
    return np.dtype(name)  # ml_dtypes (a jax dependency, imported with jax) registers bfloat16, float8_*, int4


def _little(a):
    a = np.asarray(a, order="C")  # (np.ascontiguousarray would turn 0-d arrays into 1-d ones)
    return a.astype(a.dtype.newbyteorder("<"), copy=False) if a.dtype.kind in "biufc" else a


def _encode_leaf(path, x):
    """(header entry, payload bytes or None) for one leaf."""
    where = jax.tree_util.keystr(path) or "<root>"
    if type(x) is bool:
        return {"path": where, "kind": "bool", "value": x}, None
    if type(x) is int:
        return {"path": where, "kind": "int", "value": x}, None
    if type(x) is float:
        return {"path": where, "kind": "float", "value": x}, None
    if type(x) is str:
        return {"path": where, "kind": "str", "value": x}, None
    if _is_key(x):
        impl = str(jax.random.key_impl(x))
        a = _little(np.asarray(jax.random.key_data(x)))
        entry = {"path": where, "kind": "key", "impl": impl, "dtype": a.dtype.name, "shape": list(x.shape),
                 "data_shape": list(a.shape), "nbytes": a.nbytes}
        return entry, a.tobytes()
    if isinstance(x, (np.ndarray, np.generic, jax.Array)):
        kind = "numpy_scalar" if isinstance(x, np.generic) else "array"
        a = _little(np.asarray(x))
        return {"path": where, "kind": kind, "dtype": a.dtype.name, "shape": list(a.shape), "nbytes": a.nbytes}, \
            a.tobytes()
    raise TypeError(f"save: cannot store leaf {where} of type {type(x).__name__}; leaves must be arrays, typed "
                    f"PRNG keys, or Python bool/int/float/str; convert it (e.g. np.asarray) or drop it from the tree")


def _skeleton(tree, counter):
    """A msgpack-able picture of the tree for restoring without a target, children in jax's flattening order:
    ``["L", i]`` leaf i, ``["N"]`` None, ``["D", [[key, child], ...]]`` dicts and NamedTuples/dataclasses (by field
    name), ``["S", [child, ...]]`` tuples, lists and other nodes."""
    if tree is None:
        return ["N"]
    treedef = jax.tree_util.tree_structure(tree)
    if treedef.num_nodes == 1 and treedef.num_leaves == 1:
        counter[0] += 1
        return ["L", counter[0] - 1]
    children, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda node: node is not tree)
    named = []
    for (entry,), child in children:
        if isinstance(entry, jax.tree_util.DictKey):
            name = entry.key if isinstance(entry.key, (str, int)) else str(entry.key)
        elif isinstance(entry, jax.tree_util.GetAttrKey):
            name = entry.name
        else:
            name = None
        named.append((name, _skeleton(child, counter)))
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        cls = type(tree)
        return ["T", cls.__module__, cls.__qualname__, [[name, sk] for name, sk in named]]
    if isinstance(tree, dict) or (named and all(name is not None for name, _ in named)):
        return ["D", [[name, sk] for name, sk in named]]
    return ["S", [sk for _, sk in named], "tuple" if isinstance(tree, tuple) else "list"]


def _serialise(step, tree):
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    entries, chunks = [], []
    for path, leaf in with_path:
        entry, chunk = _encode_leaf(path, leaf)
        entries.append(entry)
        if chunk is not None:
            chunks.append(chunk)
    counter = [0]
    skeleton = _skeleton(tree, counter)
    assert counter[0] == len(entries), "skeleton and jax flattening disagree"
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    header = msgpack.packb({"magic": MAGIC.decode().strip(), "version": FORMAT_VERSION, "step": step,
                            "treedef": str(treedef), "skeleton": skeleton, "leaves": entries,
                            "payload_nbytes": sum(map(len, chunks)), "payload_sha256": digest.hexdigest()})
    length = struct.pack(">I", _V2 | len(header))
    whole = hashlib.sha256(length)
    whole.update(header)
    for chunk in chunks:
        whole.update(chunk)
    return [MAGIC, length, whole.digest(), header, *chunks]


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
      >>> path = save("runs/a/ckpt", 100, {"params": params, "opt_state": opt_state, "step": 100, "key": key})
      ... # doctest: +SKIP

    Reference: Pillai et al., "All file systems are not created equal", OSDI 2014 (write, fsync, rename, fsync dir).
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"save: step must be an integer >= 0, got {step!r}")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1):
        raise ValueError(f"save: keep must be an integer >= 1 or None (keep all), got {keep!r}")
    step = int(step)
    chunks = _serialise(step, tree)  # fails on a bad leaf before touching the disk
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


# ------------------------------------------------------------------------------------------------- restoring
def _read(path):
    """Validate a checkpoint file and return (header dict, payload bytes); CorruptCheckpointError if it is not."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(MAGIC):
        if 0 < len(raw) < len(MAGIC) and MAGIC.startswith(raw):
            raise CorruptCheckpointError(f"restore: checkpoint {path!r} is truncated ({len(raw)} bytes, not even the "
                                         f"magic string); restore an earlier step")
        raise CorruptCheckpointError(f"restore: {path!r} is not an fnn checkpoint: expected it to start with "
                                     f"{MAGIC!r}, found {raw[:16]!r}; pass a file written by "
                                     f"fnn.train.checkpoint.save")
    start = len(MAGIC) + 4
    if len(raw) < start:
        raise CorruptCheckpointError(f"restore: checkpoint {path!r} is truncated inside its header ({len(raw)} "
                                     f"bytes); restore an earlier step")
    (word,) = struct.unpack(">I", raw[len(MAGIC):start])
    whole_ok = True
    if word & _V2:   # format 2: a SHA-256 of the length, header and payload follows the length
        header_len, digest_at = word & ~_V2, start
        start += 32
        whole_ok = len(raw) >= start and hashlib.sha256(raw[len(MAGIC):digest_at] + raw[start:]).digest() == \
            raw[digest_at:start]
    else:
        header_len = word
    if len(raw) < start + header_len:
        raise CorruptCheckpointError(f"restore: checkpoint {path!r} is truncated: its header needs "
                                     f"{start + header_len} bytes, the file has {len(raw)}; restore an earlier step")
    try:
        header = msgpack.unpackb(raw[start:start + header_len], strict_map_key=False)
        if not isinstance(header, dict) or header.get("magic") != "fnn-checkpoint":
            raise ValueError("header is not an fnn-checkpoint map")
        version, payload_nbytes, payload_sha = header["version"], header["payload_nbytes"], header["payload_sha256"]
    except Exception as e:  # msgpack raises several exception types on garbage
        raise CorruptCheckpointError(f"restore: checkpoint {path!r} has a corrupt header ({e}); restore an earlier "
                                     f"step") from None
    if version > FORMAT_VERSION and whole_ok:
        raise ValueError(f"restore: checkpoint {path!r} has format version {version}, this fnn reads up "
                         f"to {FORMAT_VERSION}; upgrade fnn")
    payload = raw[start + header_len:]
    if len(payload) != payload_nbytes:
        what = "truncated" if len(payload) < payload_nbytes else "longer than its header says"
        raise CorruptCheckpointError(f"restore: checkpoint {path!r} is {what}: expected "
                                     f"{start + header_len + payload_nbytes} bytes, found {len(raw)}; the write was "
                                     f"interrupted or the file was cut, restore an earlier step")
    if hashlib.sha256(payload).hexdigest() != payload_sha:
        raise CorruptCheckpointError(f"restore: checkpoint {path!r} is corrupt: the payload's SHA-256 does not match "
                                     f"its header; restore an earlier step")
    if not whole_ok:
        raise CorruptCheckpointError(f"restore: checkpoint {path!r} is corrupt: the file's SHA-256 does not match its "
                                     f"contents (its header was damaged on disk); restore an earlier step")
    return header, payload


def _decode_leaves(header, payload):
    values, offset = [], 0
    for e in header["leaves"]:
        kind = e["kind"]
        if kind in ("bool", "int", "float", "str"):
            values.append(e["value"])
            continue
        shape = e["data_shape"] if kind == "key" else e["shape"]
        stored = _dtype(e["dtype"])
        stored = stored.newbyteorder("<") if stored.kind in "biufc" else stored
        count = int(np.prod(shape, dtype=np.int64))
        a = np.frombuffer(payload, dtype=stored, count=count, offset=offset) if count else np.empty(0, stored)
        offset += e["nbytes"]
        a = a.astype(stored.newbyteorder("="), copy=True).reshape(shape)
        if kind == "key":
            values.append(jax.random.wrap_key_data(a, impl=e["impl"]))
        elif kind == "numpy_scalar":
            values.append(a[()])
        else:
            values.append(a)
    return values


def _build(skeleton, values):
    tag = skeleton[0]
    if tag == "L":
        return values[skeleton[1]]
    if tag == "N":
        return None
    if tag == "D":
        return {name: _build(child, values) for name, child in skeleton[1]}
    if tag == "T":   # a NamedTuple: its class when it is loaded (fnn's params and states are), else a plain tuple
        _, module, qualname, fields = skeleton
        children = tuple(_build(child, values) for _, child in fields)
        cls = sys.modules.get(module)
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
        ok = isinstance(cls, type) and issubclass(cls, tuple) and tuple(getattr(cls, "_fields", ())) == tuple(
            name for name, _ in fields)
        return cls(*children) if ok else children
    children = [_build(child, values) for child in skeleton[1]]
    return tuple(children) if len(skeleton) > 2 and skeleton[2] == "tuple" else children


def _describe(e):
    if e["kind"] in ("bool", "int", "float", "str"):
        return f"Python {e['kind']}"
    if e["kind"] == "key":
        return f"key<{e['impl']}>{tuple(e['shape'])}"
    return f"{e['dtype']}{tuple(e['shape'])}"


def _fit_to_target(path, entry, value, target_leaf):
    where = entry["path"]
    kind = entry["kind"]
    problem = None
    if _is_key(target_leaf):
        want = f"key<{jax.random.key_impl(target_leaf)}>{tuple(target_leaf.shape)}"
        if kind != "key" or entry["impl"] != str(jax.random.key_impl(target_leaf)) or \
                tuple(entry["shape"]) != target_leaf.shape:
            problem = want
    elif type(target_leaf) in (bool, int, float, str):
        want = f"Python {type(target_leaf).__name__}"
        if kind != type(target_leaf).__name__:
            problem = want
    elif isinstance(target_leaf, (np.ndarray, np.generic, jax.Array, jax.ShapeDtypeStruct)):
        want = f"{np.dtype(target_leaf.dtype).name}{tuple(np.shape(target_leaf))}"
        if kind not in ("array", "numpy_scalar") or entry["dtype"] != np.dtype(target_leaf.dtype).name or \
                tuple(entry["shape"]) != tuple(np.shape(target_leaf)):
            problem = want
    else:
        raise TypeError(f"restore: target leaf {where} has unsupported type {type(target_leaf).__name__}; use "
                        f"arrays, jax.ShapeDtypeStruct, typed keys or Python scalars in the target")
    if problem is not None:
        raise ValueError(f"restore: leaf {where} in {path!r} is {_describe(entry)} but the target expects {problem}; "
                         f"build the target with the same dtypes and shapes as the saved run, or pass target=None "
                         f"and convert the result yourself")
    if isinstance(target_leaf, (jax.Array, jax.ShapeDtypeStruct)) and not _is_key(target_leaf):
        return jax.numpy.asarray(value)
    if isinstance(target_leaf, np.generic):
        return np.asarray(value).reshape(()).astype(target_leaf.dtype)[()]
    return value


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
      >>> params, opt_state = init_params(key), optimizer.init(init_params(key))          # doctest: +SKIP
      >>> tree = restore("runs/a/ckpt", {"params": params, "opt_state": opt_state, "step": 0})   # doctest: +SKIP
      >>> restore("runs/a/ckpt/ckpt_00001200.msgpack")["params"][0]["W"].shape           # doctest: +SKIP
      (64, 32)

    Reference: file layout in this module's docstring and docs/checkpoints.md.
    """
    path, header, payload = _read_newest_good(path_or_directory, step)
    try:
        values = _decode_leaves(header, payload)
        built = _build(header["skeleton"], values) if target is None else None
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
    leaves = [_fit_to_target(path, e, v, t) for e, v, (_, t) in zip(header["leaves"], values, with_path)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _read_newest_good(path_or_directory, step):
    """``(path, header, payload)``; for a directory's latest checkpoint, the newest one that is not damaged."""
    path = resolve(path_or_directory, step=step)
    if step is not None or not os.path.isdir(os.fspath(path_or_directory)):
        return (path, *_read(path))
    steps = all_steps(path_or_directory)[::-1]
    first_error = None
    for i, s in enumerate(steps):
        path = checkpoint_path(path_or_directory, s)
        try:
            header, payload = _read(path)
        except CorruptCheckpointError as e:
            first_error = first_error or e
            if i + 1 < len(steps):
                warnings.warn(f"{e.args[0]}; skipping it and restoring step {steps[i + 1]} instead",
                              CheckpointWarning, stacklevel=3)
            continue
        return path, header, payload
    raise first_error
