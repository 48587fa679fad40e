"""The timing pass, kept apart from the study: what one training step of a rule costs on this machine.

The study's programs train many runs at once, so their wall time says little about one rule's step. Here each
rule's best configuration is compiled as the single training step ``fit`` uses (``fnn.train.make_train_step``),
compile time is measured on its own, the step is warmed up, and then ``repeats`` steps are timed one by one
(each waits for its result). Reported: the median step time and its interquartile range, and the floating-point
operations per step from XLA's cost analysis of the compiled step (``compiled.cost_analysis()["flops"]``; ``None``
when the backend does not report it).
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from fnn.train import TrainState, make_train_step

__all__ = ["time_rule", "flops_of"]


def flops_of(compiled) -> float | None:
    """FLOPs of a compiled computation from XLA's cost analysis, or ``None`` when not reported."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        return None
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    value = (analysis or {}).get("flops")
    return None if value is None or value < 0 else float(value)


def time_rule(workload, make_optimizer, hp: dict, *, repeats: int = 30, warmup: int = 3, seed: int = 0) -> dict:
    """Time one training step of ``make_optimizer(**hp)`` on ``workload`` (one run, one batch).

    Args:
      workload: a ``fnn.lab.workloads.Workload``.
      make_optimizer: ``(**hp) -> optimizer``.
      hp: ``{name: float}``, the configuration.
      repeats: timed steps (>= 3); warmup: untimed steps after compiling.
      seed: the key of the run's starting point.

    Returns:
      ``{"compile_s": float, "step_s": median seconds, "step_s_iqr": (q25, q75), "flops": float | None}``.

    Example:
      >>> import fnn.optimizers as fo
      >>> from fnn.lab import workloads
      >>> t = time_rule(workloads.get("rosenbrock"), fo.sgd, {"learning_rate": 1e-3}, repeats=3)
      >>> t["step_s"] > 0 and t["compile_s"] > 0
      True
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 3:
        raise ValueError(f"time_rule: repeats must be an integer >= 3 (a median and quartiles), got {repeats!r}")
    opt = make_optimizer(**{k: float(v) for k, v in hp.items()})
    params, state = workload.init(jax.random.key(seed))
    X, y = workload.data["train"]
    x, t = jnp.asarray(X[: workload.batch_size]), jnp.asarray(y[: workload.batch_size])
    step = make_train_step(workload.apply, workload.loss, opt, metrics=(), l2=workload.l2, donate=False)
    ts = TrainState(params, opt.init(params), state)
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    compiled = step.lower(ts, x, t, key).compile()
    compile_s = time.perf_counter() - t0
    for _ in range(warmup):
        ts, _ = compiled(ts, x, t, key)
    jax.block_until_ready(ts)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ts, stats = compiled(ts, x, t, key)
        jax.block_until_ready((ts, stats))
        times.append(time.perf_counter() - t0)
    q25, q50, q75 = np.percentile(times, [25, 50, 75])
    return {"compile_s": compile_s, "step_s": float(q50), "step_s_iqr": (float(q25), float(q75)),
            "flops": flops_of(compiled)}
