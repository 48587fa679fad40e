"""Data parallelism: sharded and multi-process training equal single-device training.

Each case runs in a fresh interpreter because XLA's device count and jax.distributed are fixed at start-up.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from fnn.train import distributed as dist

WORKER = str(Path(__file__).with_name("_distributed_worker.py"))
ROOT = str(Path(__file__).resolve().parents[1])


def _env(devices=None):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"      # as tests/conftest.py sets for the suite
    if devices:
        env["XLA_FLAGS"] += f" --xla_force_host_platform_device_count={devices}"
    return env


def _run(mode, out, *extra, devices=None):
    return subprocess.Popen([sys.executable, WORKER, mode, str(out), *map(str, extra)], env=_env(devices),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=120):
    text, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, text
    return text


def _load(path):
    z = np.load(path)
    return int(z["devices"]), [z[k] for k in sorted(k for k in z.files if k.startswith("leaf"))]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp") / "single.npz"
    _finish(_run("single", out))
    return _load(out)


def test_sharded_over_8_devices_equals_single_device(reference, tmp_path):
    _finish(_run("sharded", tmp_path / "sharded.npz", devices=8))
    n, leaves = _load(tmp_path / "sharded.npz")
    assert n == 8 and reference[0] == 1
    for a, b in zip(leaves, reference[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_two_processes_over_loopback_equal_single_process(reference, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [_run("multi", tmp_path / f"p{i}.npz", i, 2, port) for i in range(2)]
    for p in procs:
        _finish(p)
    (n0, a), (n1, b) = _load(tmp_path / "p0.npz"), _load(tmp_path / "p1.npz")
    assert n0 == n1 == 2
    for x, y, r in zip(a, b, reference[1]):
        np.testing.assert_array_equal(x, y)  # the replicas are bit-identical
        np.testing.assert_allclose(x, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("epoch_mode", ["scan", "loop"])
def test_fit_with_mesh_equals_fit_on_one_device_including_batchnorm_statistics(tmp_path, epoch_mode):
    """fit(mesh=...) over 8 devices: params and BatchNorm running statistics equal the one-device run."""
    procs = [_run("fit-single", tmp_path / "one.npz", epoch_mode),
             _run("fit-mesh", tmp_path / "mesh.npz", epoch_mode, devices=8)]
    for p in procs:
        _finish(p)
    (n1, a), (n8, b) = _load(tmp_path / "one.npz"), _load(tmp_path / "mesh.npz")
    assert (n1, n8) == (1, 8) and len(a) == len(b) > 4
    for x, r in zip(b, a):
        np.testing.assert_allclose(x, r, rtol=2e-5, atol=2e-6)


def test_fit_rejects_a_batch_that_does_not_divide_over_the_mesh():
    from fnn import layers as L
    from fnn import losses, optimizers
    from fnn.train import fit

    model = L.serial(L.Dense(2))
    _, params = model.init(jax.random.key(0), (-1, 3))
    fake = type("M", (), {"devices": np.empty(4), "axis_names": ("data",)})
    with pytest.raises(ValueError, match="fit: the batch of 6 examples does not divide over the 4 devices"):
        fit(model.apply, params, optimizers.sgd(0.1), losses.softmax_cross_entropy_with_integer_labels,
            np.ones((12, 3), np.float32), np.zeros(12, np.int32), epochs=1, batch_size=6, key=jax.random.key(0),
            mesh=fake, verbose=False)


def test_batch_that_does_not_divide_is_a_clear_error():
    mesh = dist.data_mesh()
    fake = type("M", (), {"devices": np.empty(8), "axis_names": ("data",)})
    with pytest.raises(ValueError, match=r"batch of 10 examples does not divide over the 8 devices.*8 or 16"):
        dist.check_batch_size(10, fake)
    dist.check_batch_size(16, fake)
    x = np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(dist.shard_batch(x, mesh), x)  # one device: anything divides


def test_mismatched_leading_dims_and_wrong_mesh():
    mesh = dist.data_mesh()
    with pytest.raises(ValueError, match="same leading batch dimension 3"):
        dist.shard_batch((np.ones((3, 2)), np.ones((4,))), mesh)
    with pytest.raises(TypeError, match="expected a jax.sharding.Mesh"):
        dist.replicate({"w": np.ones(2)}, "not a mesh")
    assert "jax " + jax.__version__ in dist.describe()
