"""The checkpoint file format: serialising a pytree to bytes and reading it back, with every byte checked.

The layout is described in :mod:`fnn.train.checkpoint`, which writes and reads the files (atomically, by step).
"""
from __future__ import annotations

import hashlib
import struct
import sys

import jax
import msgpack
import numpy as np

__all__ = ["MAGIC", "FORMAT_VERSION", "CorruptCheckpointError", "serialise", "read_checkpoint", "decode_leaves",
           "build_tree", "fit_to_target"]

MAGIC = b"fnn-checkpoint\n"
FORMAT_VERSION = 2
_V2 = 0x80000000


class CorruptCheckpointError(ValueError):
    """A checkpoint file that is truncated, damaged or not a checkpoint at all (the message names the file)."""


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


def serialise(step, tree):
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


# ------------------------------------------------------------------------------------------------- restoring
def read_checkpoint(path):
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


def decode_leaves(header, payload):
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


def build_tree(skeleton, values):
    tag = skeleton[0]
    if tag == "L":
        return values[skeleton[1]]
    if tag == "N":
        return None
    if tag == "D":
        return {name: build_tree(child, values) for name, child in skeleton[1]}
    if tag == "T":   # a NamedTuple: its class when it is loaded (fnn's params and states are), else a plain tuple
        _, module, qualname, fields = skeleton
        children = tuple(build_tree(child, values) for _, child in fields)
        cls = sys.modules.get(module)
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
        ok = isinstance(cls, type) and issubclass(cls, tuple) and tuple(getattr(cls, "_fields", ())) == tuple(
            name for name, _ in fields)
        return cls(*children) if ok else children
    children = [build_tree(child, values) for child in skeleton[1]]
    return tuple(children) if len(skeleton) > 2 and skeleton[2] == "tuple" else children


def _describe(e):
    if e["kind"] in ("bool", "int", "float", "str"):
        return f"Python {e['kind']}"
    if e["kind"] == "key":
        return f"key<{e['impl']}>{tuple(e['shape'])}"
    return f"{e['dtype']}{tuple(e['shape'])}"


def fit_to_target(path, entry, value, target_leaf):
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


