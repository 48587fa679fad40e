"""Data parallelism over devices and hosts with ``jax.sharding``.

The recipe (data parallelism, "computation follows data"):

    mesh = data_mesh()                        # all devices of all processes on one axis named "data"
    params = replicate(params, mesh)          # every device holds the whole model
    x = shard_batch(x, mesh)                  # each device holds batch_size / n_devices rows
    step(params, opt_state, x, y, ...)        # the same jitted step as on one device

Under ``jit``, XLA sees a replicated ``W`` and a batch sharded on its leading axis; the mean over the batch in the
loss becomes a per-device partial sum followed by an all-reduce, so the gradient is the *global-batch* gradient and
every replica applies the same update. Statistics taken over the batch axis inside the model (BatchNorm) are
global-batch statistics for the same reason. Results equal single-device training up to floating-point summation
order.

Batch size rule: the global batch must divide evenly by the number of devices on the data axis; anything else is a
``ValueError`` that says which sizes would work (fnn never pads silently, so that the loss stays an exact mean).

Several hosts: call ``jax.distributed.initialize(coordinator_address, num_processes, process_id)`` in every
process first (JAX's own runtime; on the CPU the collectives go over gloo); ``data_mesh()`` then spans every
process's devices and :func:`shard_batch` with ``process_local=True`` assembles the global batch from each process's
slice (``jax.make_array_from_process_local_data``). See ``docs/distributed.md``.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["data_mesh", "replicate", "shard_batch", "batch_sharding", "replicated_sharding", "check_batch_size",
           "describe"]


def data_mesh(devices: Sequence[jax.Device] | None = None, axis_name: str = "data") -> Mesh:
    """A 1-D mesh over ``devices`` (default: ``jax.devices()``, every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh: expected at least one device, got an empty list")
    return Mesh(np.array(devices), (axis_name,))


def _axis(mesh: Mesh) -> str:
    if not isinstance(mesh, Mesh):
        raise TypeError(f"fnn.train.distributed: expected a jax.sharding.Mesh, got {type(mesh).__name__}; "
                        f"build one with fnn.train.distributed.data_mesh()")
    if len(mesh.axis_names) != 1:
        raise ValueError(f"fnn.train.distributed: expected a 1-D data mesh, got axes {mesh.axis_names}; "
                         f"build one with fnn.train.distributed.data_mesh()")
    return mesh.axis_names[0]


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that puts a full copy on every device of ``mesh``."""
    _axis(mesh)
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that splits the leading (batch) axis over the mesh's data axis."""
    return NamedSharding(mesh, PartitionSpec(_axis(mesh)))


def check_batch_size(batch_size: int, mesh: Mesh, where: str = "shard_batch") -> None:
    """Raise a ``ValueError`` unless ``batch_size`` divides evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_size % n:
        lower, upper = (batch_size // n) * n, (batch_size // n + 1) * n
        hint = f"{lower} or {upper}" if lower else f"{upper}"
        raise ValueError(f"{where}: the batch of {batch_size} examples does not divide over the {n} devices of "
                         f"the data axis; use a batch size that is a multiple of {n} (e.g. {hint})")


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Put every leaf of ``tree`` (params, optimizer state) on every device of ``mesh``."""
    return jax.device_put(tree, replicated_sharding(mesh))


def shard_batch(tree: Any, mesh: Mesh, *, process_local: bool = False) -> Any:
    """Split the leading axis of every leaf of ``tree`` over the mesh's data axis.

    Args:
      tree: arrays with a common leading batch dimension ``n`` (the global batch, or with ``process_local=True``
        this process's slice of it).
      mesh: a 1-D data mesh (:func:`data_mesh`).
      process_local: in a multi-process run, each process passes its own rows and the global batch is their
        concatenation in process order.

    Returns:
      The same tree of global ``jax.Array``s sharded as ``P("data")``.

    Example:
      >>> mesh = data_mesh()
      >>> n = 2 * mesh.size                                   # the batch must divide over the devices
      >>> x, y = shard_batch((np.ones((n, 3), np.float32), np.zeros(n, np.int32)), mesh)
      >>> x.shape == (n, 3), x.sharding == batch_sharding(mesh)
      (True, True)
    """
    sharding = batch_sharding(mesh)
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return tree
    n = leaves[0].shape[0]
    for leaf in leaves:
        if leaf.shape[:1] != (n,):
            raise ValueError(f"shard_batch: every leaf needs the same leading batch dimension {n}, got a leaf of "
                             f"shape {leaf.shape}")
    if process_local:
        check_batch_size(n * jax.process_count(), mesh)
        return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), tree)
    check_batch_size(n, mesh)
    return jax.device_put(tree, sharding)


def describe() -> str:
    """A few lines on the JAX runtime: version, backend, processes and devices (used by ``fnn info``)."""
    import jaxlib

    lines = [f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, backend {jax.default_backend()}",
             f"process {jax.process_index()} of {jax.process_count()}, "
             f"{jax.local_device_count()} local / {jax.device_count()} global devices"]
    lines.append("devices: " + ", ".join(f"{d.platform}:{d.id} ({d.device_kind}, process {d.process_index})"
                                         for d in jax.devices()))
    return "\n".join(lines)
