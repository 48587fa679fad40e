"""One compiled program per workload and rule: R runs (configurations x seeds) trained together with ``vmap``.

Run ``r`` is the training-engine epoch of ``fnn.train`` (``fnn.train.engine.make_epoch``, the epoch ``fit`` runs)
repeated for ``epochs`` epochs inside one ``lax.scan``, with its own hyper-parameters ``hp[r]`` (traced scalars
handed to ``make_optimizer(**hp[r])``, so a new learning rate is a new argument value, never a new compilation),
its own key ``keys[r]`` (batch order ``fold_in(keys[r], e)``, as ``fit(key=keys[r])``) and its own starting point
``workload.init(keys[r])``. After every epoch the validation split is evaluated inside the same program, at the
same cadence for every rule; at the end every split is.

A run whose loss or update stops being finite is *frozen*: the engine's guarded step keeps the parameters of its
last good step, the epochs after that leave it unchanged, and its values from then on are ``nan`` (the run is
marked ``diverged``). Other runs of the batch are not affected.

Sharding: given a ``jax.sharding.Mesh`` with one axis, the runs' axis (params, state, hyper-parameters, keys) is
split over its devices, the data are replicated, and XLA partitions the program; the result equals the one-device
result (``tests/test_lab_runner.py`` checks it on 8 simulated CPU devices).
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

from fnn import losses
from fnn.metrics import get_metric
from fnn.train import TrainState, engine

__all__ = ["Program", "RunOutput", "make_program", "run_program", "run_keys", "init_runs"]


class RunOutput(NamedTuple):
    """What a program returns for its R runs (NumPy arrays)."""
    curves: dict      # {"train_loss" | "val_loss" | "val_<metric>": (R, E)}, nan after a run diverged
    final: dict       # {"train_objective" | "test_loss" | "test_<metric>" | "val_loss": (R,)}, nan if diverged
    diverged: np.ndarray  # (R,) bool
    paths: np.ndarray | None  # (R, E + 1, 2) for 2-D function workloads, else None


class Program(NamedTuple):
    """A compiled study program and what it cost to build."""
    run: Callable          # run(params, state, hp, keys) -> RunOutput (device arrays)
    compile_s: float       # seconds spent tracing and compiling
    steps_per_epoch: int
    n_runs: int            # R: the runs it was compiled for (fewer are padded with copies of the last run)


def run_keys(seed: int, seeds) -> jax.Array:
    """The key of each seed number: ``fold_in(key(seed), s)``; the same seed number gives the same run start and
    batch order for every rule (paired comparisons)."""
    base = jax.random.key(seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.asarray(seeds, jnp.uint32))


def init_runs(workload, keys):
    """``(params, state)`` of every run, stacked: ``workload.init(keys[r])``."""
    return jax.vmap(workload.init)(keys)


def _metric_fns(workload):
    return [get_metric(m) for m in workload.metrics]


def make_program(workload, make_optimizer: Callable, *, epochs: int, example_hp: dict, n_runs: int, mesh=None,
                 unroll: int = 1) -> Program:
    """Compile the program that trains ``n_runs`` runs of ``make_optimizer`` on ``workload`` for ``epochs`` epochs.

    Args:
      workload: a ``fnn.lab.workloads.Workload``.
      make_optimizer: ``(**hp) -> optimizer``, called with traced scalars.
      epochs: number of epochs (evaluations).
      example_hp: ``{name: (n_runs,) array}``: only shapes and dtypes are used.
      n_runs: R, the number of runs.
      mesh: optional one-axis ``Mesh`` to split the runs over (R must be divisible by its size).
      unroll: steps per iteration of the scanned epoch.

    Returns:
      ``Program(run, compile_s, steps_per_epoch)``.
    """
    w = workload
    splits = {k: (jnp.asarray(a), jnp.asarray(b)) for k, (a, b) in w.data.items()}
    epoch = engine.make_epoch(w.apply, w.loss, make_optimizer, w.batch_size, metrics=(), l2=w.l2, guard=True,
                              unroll=unroll)
    metric_fns = _metric_fns(w)
    planar = w.kind == "function"

    def evaluate(ts, data, split, objective=False):
        Xs, ys = data[split]
        out, _ = engine.forward(w.apply, ts.params, ts.state, Xs, train=False)
        value = w.loss(out, ys)
        rec = {"loss": value}
        if objective:
            rec["objective"] = value if w.l2 is None else value + losses.l2_penalty(ts.params, w.l2)
        for name, fn in metric_fns:
            rec[name] = fn(out, ys)
        return rec

    def point(params):
        leaves = jax.tree.leaves(params)
        return jnp.concatenate([jnp.ravel(a) for a in leaves])[:2].astype(jnp.float32)

    def one(params, state, hp, key, data):  # the data are an argument, not constants baked into the program
        opt = make_optimizer(**hp)
        ts = TrainState(params, opt.init(params), state)

        def body(carry, e):
            ts, dead = carry
            new, bad, stats = epoch(ts, data["train"][0], data["train"][1], jax.random.fold_in(key, e), hp=hp)
            steps = stats["loss"].shape[0]
            good = jnp.arange(steps) < jnp.where(bad < 0, steps, bad)
            train_loss = jnp.sum(jnp.where(good, stats["loss"], 0.0)) / jnp.maximum(jnp.sum(good), 1)
            ts = jax.tree.map(lambda a, b: jnp.where(dead, a, b), ts, new)
            dead = dead | (bad >= 0)
            val = evaluate(ts, data, "val")
            rec = {"train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()}}
            rec = {k: jnp.where(dead, jnp.nan, v).astype(jnp.float32) for k, v in rec.items()}
            if planar:
                rec["point"] = point(ts.params)
            return (ts, dead), rec

        (ts, dead), curves = lax.scan(body, (ts, jnp.bool_(False)), jnp.arange(epochs, dtype=jnp.int32))
        final = {"train_objective": evaluate(ts, data, "train", objective=True)["objective"]}
        final.update({f"test_{k}": v for k, v in evaluate(ts, data, "test").items()})
        final = {k: jnp.where(dead, jnp.nan, v).astype(jnp.float32) for k, v in final.items()}
        if planar:
            curves["point"] = jnp.concatenate([point(params)[None], curves["point"]], axis=0)
        return curves, final, dead

    batched = jax.vmap(one, in_axes=(0, 0, 0, 0, None))
    params, state = init_runs(w, run_keys(0, np.arange(n_runs)))
    hp = {k: jnp.asarray(v, jnp.float32) for k, v in example_hp.items()}
    keys = run_keys(0, np.arange(n_runs))
    args = (params, state, hp, keys)
    if mesh is not None:
        args = shard_runs(args, mesh)
        splits = jax.device_put(splits, NamedSharding(mesh, PartitionSpec()))  # replicated
    t0 = time.perf_counter()
    compiled = jax.jit(batched).lower(*args, splits).compile()
    compile_s = time.perf_counter() - t0
    steps_per_epoch = int(w.data["train"][0].shape[0]) // w.batch_size
    return Program(lambda *a: compiled(*a, splits), compile_s, steps_per_epoch, n_runs)


def shard_runs(tree, mesh):
    """Place every leaf of ``tree`` with its leading (runs) axis split over the mesh's one axis."""
    (axis,) = mesh.axis_names
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return jax.device_put(tree, sharding)


def run_program(program: Program, workload, hp: dict, seeds, *, seed: int = 0, mesh=None) -> tuple[RunOutput, float]:
    """Run a compiled program on configurations ``hp`` (``{name: (R,)}``) and seed numbers ``seeds`` (``(R,)``).

    Fewer runs than the program was compiled for are padded with copies of the last run (dropped from the result),
    so one compiled program serves the tuning batch and the smaller evaluation batch.

    Returns:
      ``(RunOutput, seconds)``: NumPy results and the wall time of the run (compilation excluded).
    """
    seeds = np.asarray(seeds)
    r = seeds.shape[0]
    if r > program.n_runs or any(np.shape(v) != (r,) for v in hp.values()):
        shapes = {k: np.shape(v) for k, v in hp.items()}
        raise ValueError(f"run_program: expected at most {program.n_runs} runs with one value of each "
                         f"hyper-parameter per seed, got {r} seeds and shapes {shapes}")
    pad = np.concatenate([np.arange(r), np.full(program.n_runs - r, r - 1)])
    seeds, hp = seeds[pad], {k: np.asarray(v)[pad] for k, v in hp.items()}
    keys = run_keys(seed, seeds)
    params, state = init_runs(workload, keys)
    args = (params, state, {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}, keys)
    if mesh is not None:
        args = shard_runs(args, mesh)
    t0 = time.perf_counter()
    curves, final, dead = jax.device_get(program.run(*args))
    seconds = time.perf_counter() - t0
    curves, final, dead = jax.tree.map(lambda a: np.asarray(a)[:r], (curves, final, dead))
    paths = curves.pop("point", None)
    return RunOutput({k: np.asarray(v, np.float64) for k, v in curves.items()},
                     {k: np.asarray(v, np.float64) for k, v in final.items()}, np.asarray(dead, bool),
                     None if paths is None else np.asarray(paths, np.float64)), seconds
