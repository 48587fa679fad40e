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


def test_restore_without_target_gives_dicts_and_lists(tmp_path):
    state = _run_state()
    ckpt.save(tmp_path, 3, state)
    back = ckpt.restore(tmp_path)
    assert set(back["params"][0]) == {"W", "b"} and back["params"][1] == []
    np.testing.assert_array_equal(back["params"][0]["W"], np.asarray(state["params"][0].W))
    assert back["params"][2]["b"].dtype == jnp.bfloat16
    assert back["history"] == {"loss": [0.5, 0.25], "val_acc": [0.75, 0.875]}
    assert back["step"] == 17 and back["lr"] == 0.1 and back["done"] is False and back["name"] == "mlp"
    assert back["nothing"] is None and back["scalar"] == np.float32(2.5) and back["empty"].shape == (0, 3)
    adam = back["opt_state"][0]                    # (ScaleByAdamState, EmptyState) -> [dict, dict]
    assert set(adam) == {"count", "mu", "nu"} and back["opt_state"][1] == {}
    _assert_same_leaf(back["key"], state["key"])
    _assert_same_leaf(back["keys"], state["keys"])
    assert isinstance(back["counts"], np.ndarray) and back["counts"].dtype == np.int32


def test_file_layout_parsed_by_hand(tmp_path):
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": 4}
    raw = open_bytes(ckpt.save(tmp_path, 0, tree))
    assert raw.startswith(b"fnn-checkpoint\n")
    (L,) = struct.unpack(">I", raw[15:19])
    header = msgpack.unpackb(raw[19:19 + L])
    payload = raw[19 + L:]
    assert header["magic"] == "fnn-checkpoint" and header["version"] == 1 and header["step"] == 0
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
    (L,) = struct.unpack(">I", raw[15:19])
    for cut, message in ((len(raw) - 10, r"is truncated: expected \d+ bytes, found \d+"),
                         (19 + L // 2, "truncated: its header needs"),
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
