"""Worker for tests/test_distributed.py (not a test module): trains a small MLP data-parallel and saves params.

Usage: python _distributed_worker.py MODE OUT [PROCESS_ID NUM_PROCESSES PORT]
  MODE = single   one device, the reference
         sharded  the global batch sharded over all local devices (set XLA_FLAGS for 8 fake CPU devices)
         multi    one of NUM_PROCESSES processes joined with jax.distributed over 127.0.0.1:PORT
"""
import sys

import numpy as np

mode, out = sys.argv[1], sys.argv[2]
import jax  # noqa: E402

if mode == "multi":
    pid, nproc, port = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=nproc, process_id=pid,
                               initialization_timeout=60)

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

if mode.startswith("fit"):
    # fnn.train.fit with a BatchNorm model: with mesh= on all devices ("fit-mesh") or on one ("fit-single").
    from fnn import layers as L
    from fnn import losses, optimizers
    from fnn.train import distributed as dist
    from fnn.train import fit

    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int32) + (X[:, 2] > 1).astype(np.int32)
    model = L.serial(L.Dense(16), L.BatchNorm(axis=(0,)), L.Relu, L.Dense(3))
    _, params, state = L.init_with_state(model, jax.random.key(1), (-1, 6))
    res = fit(model.apply, params, optimizers.momentum(0.1, 0.9), losses.softmax_cross_entropy_with_integer_labels,
              X, y, epochs=3, batch_size=32, key=jax.random.key(2), state=state, verbose=False, progress=False,
              epoch_mode=sys.argv[3], mesh=dist.data_mesh() if mode == "fit-mesh" else None)
    leaves = jax.tree.leaves((res.params, res.state))
    np.savez(out, devices=jax.device_count(), **{f"leaf{i}": np.asarray(l) for i, l in enumerate(leaves)})
    sys.exit(0)

from fnn.layers import Dense, Relu, serial  # noqa: E402
from fnn.train import distributed as dist  # noqa: E402

STEPS, BATCH = 25, 16
rng = np.random.default_rng(0)
X = rng.normal(size=(STEPS * BATCH, 6)).astype(np.float32)
Y = (X[:, :3] @ rng.normal(size=(3, 2))).astype(np.float32)

model = serial(Dense(16), Relu, Dense(2))
_, params = model.init(jax.random.key(1), (-1, 6))
opt = optax.sgd(0.1, momentum=0.9)
opt_state = opt.init(params)


def loss(p, x, y):
    return jnp.mean((model.apply(p, x) - y) ** 2)


@jax.jit
def step(p, s, x, y):
    g = jax.grad(loss)(p, x, y)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s


if mode != "single":
    mesh = dist.data_mesh()
    params, opt_state = dist.replicate((params, opt_state), mesh)
for i in range(STEPS):
    xb, yb = X[i * BATCH:(i + 1) * BATCH], Y[i * BATCH:(i + 1) * BATCH]
    if mode == "sharded":
        xb, yb = dist.shard_batch((xb, yb), mesh)
    elif mode == "multi":
        per = BATCH // jax.process_count()
        lo = jax.process_index() * per
        xb, yb = dist.shard_batch((xb[lo:lo + per], yb[lo:lo + per]), mesh, process_local=True)
    params, opt_state = step(params, opt_state, xb, yb)

flat = {f"leaf{i}": np.asarray(jax.device_get(l)) for i, l in enumerate(jax.tree.leaves(params))}
np.savez(out, devices=jax.device_count(), **flat)
if mode == "multi":
    jax.distributed.shutdown()
