"""Checkpoints: save and restore any pytree (params, optimizer state, step, PRNG key, history) atomically.

File ``ckpt_{step:08d}.msgpack``, one per step, in one directory per run (one writer per directory):

    b"fnn-checkpoint\\n"                 magic, 15 bytes
    uint32, big-endian                  length L of the header
    L bytes                             msgpack header: {"magic", "version", "step", "treedef" (str), "skeleton",
                                        "leaves": [per leaf: path, kind, dtype, shape, nbytes | value],
                                        "payload_nbytes", "payload_sha256"}
    payload_nbytes bytes                the array leaves' raw little-endian C-order bytes, one after the other

Python scalars and strings live in the header; arrays and typed PRNG keys (as ``jax.random.key_data`` plus the
impl name) in the payload. The SHA-256 of the payload and the expected file size detect truncation and corruption.
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

import jax
import msgpack
import numpy as np

MAGIC = b"fnn-checkpoint\n"
FORMAT_VERSION = 1
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
    mapping = isinstance(tree, dict) or (isinstance(tree, tuple) and hasattr(tree, "_fields"))
    if mapping or (named and all(name is not None for name, _ in named)):
        return ["D", [[name, sk] for name, sk in named]]
    return ["S", [sk for _, sk in named]]


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
    return [MAGIC, struct.pack(">I", len(header)), header, *chunks]


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
    """Validate a checkpoint file and return (header dict, payload bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(MAGIC):
        if 0 < len(raw) < len(MAGIC) and MAGIC.startswith(raw):
            raise ValueError(f"restore: checkpoint {path!r} is truncated ({len(raw)} bytes, not even the magic "
                             f"string); restore an earlier step")
        raise ValueError(f"restore: {path!r} is not an fnn checkpoint: expected it to start with {MAGIC!r}, found "
                         f"{raw[:16]!r}; pass a file written by fnn.train.checkpoint.save")
    start = len(MAGIC) + 4
    if len(raw) < start:
        raise ValueError(f"restore: checkpoint {path!r} is truncated inside its header ({len(raw)} bytes); restore "
                         f"an earlier step")
    (header_len,) = struct.unpack(">I", raw[len(MAGIC):start])
    if len(raw) < start + header_len:
        raise ValueError(f"restore: checkpoint {path!r} is truncated: its header needs {start + header_len} bytes, "
                         f"the file has {len(raw)}; restore an earlier step")
    try:
        header = msgpack.unpackb(raw[start:start + header_len], strict_map_key=False)
        if not isinstance(header, dict) or header.get("magic") != "fnn-checkpoint":
            raise ValueError("header is not an fnn-checkpoint map")
    except Exception as e:  # msgpack raises several exception types on garbage
        raise ValueError(f"restore: checkpoint {path!r} has a corrupt header ({e}); restore an earlier step") from None
    if header["version"] > FORMAT_VERSION:
        raise ValueError(f"restore: checkpoint {path!r} has format version {header['version']}, this fnn reads up "
                         f"to {FORMAT_VERSION}; upgrade fnn")
    payload = raw[start + header_len:]
    if len(payload) != header["payload_nbytes"]:
        what = "truncated" if len(payload) < header["payload_nbytes"] else "longer than its header says"
        raise ValueError(f"restore: checkpoint {path!r} is {what}: expected {start + header_len + header['payload_nbytes']}"
                         f" bytes, found {len(raw)}; the write was interrupted or the file was cut, restore an "
                         f"earlier step")
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise ValueError(f"restore: checkpoint {path!r} is corrupt: the payload's SHA-256 does not match its "
                         f"header; restore an earlier step")
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
    return [_build(child, values) for child in skeleton[1]]


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
    every dtype and shape must match the target's. Without ``target`` the tree comes back as nested dicts (for
    dicts, NamedTuples and dataclasses) and lists (for tuples and lists), arrays as NumPy arrays, keys as typed keys.

    Args:
      path_or_directory: a checkpoint file, or a directory (then its latest checkpoint, or the one of ``step``).
      target: optional pytree giving the structure, dtypes and shapes.
      step: which step to read from a directory.

    Returns:
      the restored pytree.

    Raises:
      ValueError: foreign, truncated or corrupt file (message names the file), structure or dtype mismatch with
        ``target`` (message prints both).
      FileNotFoundError: nothing to restore.

    Example:
      >>> params, opt_state = init_params(key), optimizer.init(init_params(key))          # doctest: +SKIP
      >>> tree = restore("runs/a/ckpt", {"params": params, "opt_state": opt_state, "step": 0})   # doctest: +SKIP
      >>> restore("runs/a/ckpt/ckpt_00001200.msgpack")["params"][0]["W"].shape           # doctest: +SKIP
      (64, 32)

    Reference: file layout in this module's docstring and docs/checkpoints.md.
    """
    path = resolve(path_or_directory, step=step)
    header, payload = _read(path)
    values = _decode_leaves(header, payload)
    if target is None:
        return _build(header["skeleton"], values)
    with_path, treedef = jax.tree_util.tree_flatten_with_path(target)
    if str(treedef) != header["treedef"] or len(with_path) != len(values):
        raise ValueError(f"restore: the tree in {path!r} does not have the target's structure;\n  saved:  "
                         f"{header['treedef']}\n  target: {treedef}\nbuild the target the same way as the saved tree "
                         f"(same layers, optimizer and extra entries), or pass target=None to get nested dicts/lists")
    leaves = [_fit_to_target(path, e, v, t) for e, v, (_, t) in zip(header["leaves"], values, with_path)]
    return jax.tree_util.tree_unflatten(treedef, leaves)
