"""Tests for fnn.train.checkpoint: exact round trips of realistic trees, the on-disk layout parsed by hand, keep-N
pruning, atomicity under simulated crashes, and clear errors for truncated, corrupt and foreign files."""
import hashlib
import json
import os
import struct
from typing import NamedTuple

import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import optax
import pytest

from fnn.train import checkpoint as ckpt


def open_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class DenseParams(NamedTuple):
    W: jax.Array
    b: jax.Array


def _run_state(seed=0):
    k = jax.random.key(seed)
    rng = np.random.default_rng(seed)
    params = (DenseParams(jnp.asarray(rng.standard_normal((4, 3), np.float32)), jnp.zeros(3)), (),
              DenseParams(jnp.asarray(rng.standard_normal((3, 2)).astype(jnp.bfloat16)),
                          jnp.asarray(np.arange(2).astype(jnp.bfloat16))))
    opt_state = optax.adam(1e-3).init(params)
    return {
        "params": params,
        "opt_state": opt_state,
        "step": 17 + seed,
        "key": jax.random.fold_in(k, 3),
        "keys": jax.random.split(jax.random.key(seed + 1, impl="rbg"), 2),
        "legacy_key": jax.random.PRNGKey(seed),
        "mask": np.array([True, False, True]),
        "counts": np.arange(5, dtype=np.int32),
        "history": {"loss": [0.5, 0.25], "val_acc": [0.75, 0.875]},
        "lr": 0.1,
        "done": False,
        "name": "mlp",
        "scalar": np.float32(2.5),
        "empty": np.zeros((0, 3), np.float16),
        "nothing": None,
    }


def _assert_same_leaf(a, b):
    if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        assert jax.random.key_impl(a) == jax.random.key_impl(b)
        np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))
        return
    assert type(a) is type(b) or (isinstance(a, jax.Array) and isinstance(b, jax.Array)), (type(a), type(b))
    if isinstance(a, (np.ndarray, np.generic, jax.Array)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    else:
        assert a == b


def test_round_trip_into_target_is_exact(tmp_path):
    state = _run_state()
    path = ckpt.save(tmp_path, 17, state)
    assert os.path.basename(path) == "ckpt_00000017.msgpack"
    fresh = _run_state(seed=5)           # same structure, different values: what a resumed run builds
    back = ckpt.restore(path, fresh)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(back)):
        _assert_same_leaf(a, b)
    assert isinstance(back["params"][0], DenseParams) and back["params"][2].W.dtype == jnp.bfloat16
    # The restored key draws the same numbers as the saved one.
    np.testing.assert_array_equal(jax.random.normal(back["key"], (3,)), jax.random.normal(state["key"], (3,)))
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state["params"])
    again = ckpt.restore(ckpt.save(tmp_path / "p", 1, state["params"]), abstract)
    np.testing.assert_array_equal(again[0].W, state["params"][0].W)


def test_restore_without_target_gives_the_saved_containers(tmp_path):
    """Integrity issue, item 3: without a target, NamedTuples come back as their class and tuples as tuples (the
    types apply accepts); before, params came back as dicts and apply failed inside ('str' has no 'shape')."""
    state = _run_state()
    ckpt.save(tmp_path, 3, state)
    back = ckpt.restore(tmp_path)
    assert type(back["params"][0]) is DenseParams and back["params"][1] == () and type(back["params"]) is tuple
    np.testing.assert_array_equal(back["params"][0].W, np.asarray(state["params"][0].W))
    assert back["params"][2].b.dtype == jnp.bfloat16
    assert back["history"] == {"loss": [0.5, 0.25], "val_acc": [0.75, 0.875]}
    assert back["step"] == 17 and back["lr"] == 0.1 and back["done"] is False and back["name"] == "mlp"
    assert back["nothing"] is None and back["scalar"] == np.float32(2.5) and back["empty"].shape == (0, 3)
    adam = back["opt_state"][0]                    # (ScaleByAdamState, EmptyState), as saved
    assert type(adam).__name__ == "ScaleByAdamState" and adam._fields == ("count", "mu", "nu")
    assert type(back["opt_state"][1]).__name__ == "EmptyState"
    _assert_same_leaf(back["key"], state["key"])
    _assert_same_leaf(back["keys"], state["keys"])
    assert isinstance(back["counts"], np.ndarray) and back["counts"].dtype == np.int32


def test_file_layout_parsed_by_hand(tmp_path):
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": 4}
    raw = open_bytes(ckpt.save(tmp_path, 0, tree))
    assert raw.startswith(b"fnn-checkpoint\n")
    (word,) = struct.unpack(">I", raw[15:19])
    assert word & 0x80000000                              # format 2: the whole-file SHA-256 follows
    L = word & 0x7FFFFFFF
    assert raw[19:51] == hashlib.sha256(raw[15:19] + raw[51:]).digest()
    header = msgpack.unpackb(raw[51:51 + L])
    payload = raw[51 + L:]
    assert header["magic"] == "fnn-checkpoint" and header["version"] == 2 and header["step"] == 0
    assert header["treedef"] == str(jax.tree_util.tree_structure(tree))
    assert header["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    leaf_n, leaf_w = header["leaves"]                     # dict keys in sorted order, like jax
    assert leaf_n == {"path": "['n']", "kind": "int", "value": 4}
    assert leaf_w["dtype"] == "float32" and leaf_w["shape"] == [2, 3]
    np.testing.assert_array_equal(np.frombuffer(payload, "<f4").reshape(2, 3), tree["w"])


def test_keep_prunes_to_the_newest_and_directory_helpers(tmp_path):
    assert ckpt.all_steps(tmp_path / "missing") == [] and ckpt.latest_step(tmp_path) is None
    for step in range(1, 7):
        ckpt.save(tmp_path, step, {"step": step, "x": np.full(2, step, np.float32)}, keep=3)
    assert ckpt.all_steps(tmp_path) == [4, 5, 6] and ckpt.latest_step(tmp_path) == 6
    assert sorted(os.listdir(tmp_path)) == ["ckpt_00000004.msgpack", "ckpt_00000005.msgpack", "ckpt_00000006.msgpack"]
    assert ckpt.restore(tmp_path)["step"] == 6
    assert ckpt.restore(tmp_path, step=5)["x"].tolist() == [5.0, 5.0]
    ckpt.save(tmp_path, 2, {"step": 2}, keep=3)                 # an older step is written and kept
    assert ckpt.all_steps(tmp_path) == [2, 4, 5, 6]
    ckpt.save(tmp_path, 7, {"step": 7}, keep=1)
    assert ckpt.all_steps(tmp_path) == [7]
    for step in (8, 9, 10):
        ckpt.save(tmp_path, step, {"step": step}, keep=None)
    assert ckpt.all_steps(tmp_path) == [7, 8, 9, 10]
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of step 3 .*available steps: \[7, 8, 9, 10\]"):
        ckpt.restore(tmp_path, step=3)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint \(ckpt_\*\.msgpack\) in directory .*empty"):
        ckpt.restore(tmp_path / "empty")


def _crash_write(f, chunks):
    data = b"".join(chunks)
    f.write(data[: len(data) // 2])
    raise OSError("disk full (simulated)")


def _crash_replace(src, dst):
    raise OSError("power cut before rename (simulated)")


def _interrupt_fsync(fd):
    raise KeyboardInterrupt


@pytest.mark.parametrize("target,crash", [(ckpt, "_write_all"), (os, "replace"), (os, "fsync")])
@pytest.mark.parametrize("same_step", [False, True])
def test_a_crash_mid_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch, target, crash, same_step):
    old = {"params": DenseParams(jnp.ones((3, 2)), jnp.zeros(2)), "step": 5}
    ckpt.save(tmp_path, 5, old)
    before = open_bytes(ckpt.checkpoint_path(tmp_path, 5))
    new = {"params": DenseParams(2 * jnp.ones((3, 2)), jnp.ones(2)), "step": 6}
    fault = {"_write_all": _crash_write, "replace": _crash_replace, "fsync": _interrupt_fsync}[crash]
    monkeypatch.setattr(target, crash, fault)
    with pytest.raises((OSError, KeyboardInterrupt)):
        ckpt.save(tmp_path, 5 if same_step else 6, new, keep=1)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt_00000005.msgpack"]          # no temp file, nothing pruned
    assert open_bytes(ckpt.checkpoint_path(tmp_path, 5)) == before
    back = ckpt.restore(tmp_path, old)
    np.testing.assert_array_equal(back["params"].W, old["params"].W)
    assert back["step"] == 5


def test_unsupported_leaf_fails_before_touching_the_disk(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store leaf \['bad'\]\[1\] of type object"):
        ckpt.save(tmp_path, 1, {"bad": [1.0, object()]})
    assert not os.path.exists(tmp_path / "ckpt_00000001.msgpack") and os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="step must be an integer >= 0, got -1"):
        ckpt.save(tmp_path, -1, {})
    with pytest.raises(ValueError, match="keep must be an integer >= 1 or None"):
        ckpt.save(tmp_path, 1, {}, keep=0)


def test_truncated_and_corrupt_files_are_named(tmp_path):
    path = ckpt.save(tmp_path, 9, {"w": np.arange(100, dtype=np.float32), "s": 1})
    raw = open_bytes(path)
    L = struct.unpack(">I", raw[15:19])[0] & 0x7FFFFFFF    # header length (format 2: header at byte 51)
    for cut, message in ((len(raw) - 10, r"is truncated: expected \d+ bytes, found \d+"),
                         (51 + L // 2, "truncated: its header needs"),
                         (17, "truncated inside its header"),
                         (5, "truncated .*not even the magic")):
        with open(path, "wb") as f:
            f.write(raw[:cut])
        with pytest.raises(ValueError, match="ckpt_00000009.msgpack.*" + message):
            ckpt.restore(tmp_path)
    flipped = bytearray(raw)
    flipped[-3] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(flipped))
    with pytest.raises(ValueError, match="ckpt_00000009.msgpack' is corrupt: the payload's SHA-256"):
        ckpt.restore(path)


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(30),
    json.dumps({"params": [1, 2, 3]}).encode(),
    msgpack.packb({"params": [1.0, 2.0]}),
    b"",
], ids=["png", "json", "other-msgpack", "empty"])
def test_foreign_files_are_refused_by_name(tmp_path, content):
    path = tmp_path / "ckpt_00000001.msgpack"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"ckpt_00000001\.msgpack' is not an fnn checkpoint: expected it to start"):
        ckpt.restore(path)


def test_structure_and_dtype_mismatches_print_both_sides(tmp_path):
    params = (DenseParams(jnp.ones((4, 3)), jnp.zeros(3)),)
    path = ckpt.save(tmp_path, 1, params)
    with pytest.raises(ValueError, match=r"(?s)saved:  PyTreeDef\(\(CustomNode\(namedtuple\[DenseParams\].*\n"
                                         r"  target: PyTreeDef\(\(CustomNode.*, \(\)\)\)"):
        ckpt.restore(path, (DenseParams(jnp.ones((4, 3)), jnp.zeros(3)), ()))
    with pytest.raises(ValueError, match=r"leaf \[0\]\.W .* is float32\(4, 3\) but the target expects "
                                         r"bfloat16\(4, 3\)"):
        ckpt.restore(path, (DenseParams(jnp.ones((4, 3), jnp.bfloat16), jnp.zeros(3)),))
    with pytest.raises(ValueError, match=r"leaf \[0\]\.b .* is float32\(3,\) but the target expects float32\(5,\)"):
        ckpt.restore(path, (DenseParams(jnp.ones((4, 3)), jnp.zeros(5)),))
    with pytest.raises(ValueError, match=r"step=2 only applies to a directory"):
        ckpt.restore(path, step=2)


# ----------------------------------------------------------------------------- integrity: every byte is checked
def test_every_single_bit_flip_is_caught_by_name(tmp_path):
    """Integrity issue, item 3: a flipped bit anywhere after the magic (length, checksum, header, payload) raises
    a CorruptCheckpointError naming the file; it never restores other values (format 1 missed header flips)."""
    tree = {"epoch": 3, "w": np.arange(4, dtype=np.float32), "t": (np.int32(1), [np.float32(2.0)])}
    path = ckpt.save(tmp_path, 3, tree)
    raw = open_bytes(path)
    for i in range(len(ckpt.MAGIC), len(raw)):
        for bit in (i % 8, (i * 5 + 3) % 8):                # two of the eight bits of every byte
            flipped = bytearray(raw)
            flipped[i] ^= 1 << bit
            with open(path, "wb") as f:
                f.write(bytes(flipped))
            with pytest.raises(ckpt.CorruptCheckpointError, match=r"ckpt_00000003\.msgpack"):
                ckpt.restore(path)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_good_one(tmp_path):
    for step in (1, 2, 3):
        ckpt.save(tmp_path, step, {"step": step, "w": np.full(3, step, np.float32)}, keep=None)
    newest = ckpt.checkpoint_path(tmp_path, 3)
    raw = bytearray(open_bytes(newest))
    raw[40] ^= 0x10                                        # a flip inside the checksum/header region
    with open(newest, "wb") as f:
        f.write(bytes(raw))
    with pytest.warns(ckpt.CheckpointWarning, match=r"ckpt_00000003\.msgpack.* restoring step 2 instead"):
        back = ckpt.restore(tmp_path)
    assert back["step"] == 2 and back["w"].tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(ckpt.CorruptCheckpointError, match=r"ckpt_00000003"):
        ckpt.restore(tmp_path, step=3)                     # an explicit step never falls back
    for step in (1, 2):                                    # all damaged: the newest's error
        p = ckpt.checkpoint_path(tmp_path, step)
        with open(p, "wb") as f:
            f.write(open_bytes(p)[:30])
    with pytest.warns(ckpt.CheckpointWarning), pytest.raises(ckpt.CorruptCheckpointError, match="ckpt_00000003"):
        ckpt.restore(tmp_path)


def test_stale_temporary_files_of_killed_writes_are_removed(tmp_path):
    stale = tmp_path / ".ckpt_00000005.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    ckpt.save(tmp_path, 6, {"x": np.zeros(2, np.float32)})
    assert sorted(os.listdir(tmp_path)) == ["ckpt_00000006.msgpack"]


def test_restored_params_without_a_target_run_through_apply(tmp_path):
    from fnn import layers
    model = layers.serial(layers.Dense(3), layers.Relu, layers.Dense(2))
    _, params = model.init(jax.random.key(0), (-1, 4))
    ckpt.save(tmp_path, 1, {"params": params})
    back = ckpt.restore(tmp_path)["params"]
    x = jnp.ones((5, 4))
    np.testing.assert_array_equal(model.apply(back, x), model.apply(params, x))


def test_a_corrupt_history_file_is_named(tmp_path):
    from fnn.train.callbacks import History
    path = tmp_path / "history.json"
    History([{"epoch": 1, "loss": 0.5}]).save(path)
    path.write_text(path.read_text()[:-7])
    with pytest.raises(ValueError, match=r"History.load: .*history.json' is corrupt .* delete it"):
        History.load(path)
