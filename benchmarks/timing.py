"""Timing helpers shared by the benchmarks: medians after warm-up, compile time reported apart, peak RSS."""
from __future__ import annotations

import platform
import resource
import statistics
import time
from typing import Callable

import jax


def block(x):
    """Wait for every array in ``x`` (JAX dispatch is asynchronous)."""
    return jax.block_until_ready(x)


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> tuple[float, float, list[float]]:
    """Run ``fn`` ``warmup`` times (the first run's time is returned as the compile+first-run time), then
    ``repeats`` times; return ``(median_seconds, first_seconds, all_repeat_seconds)``."""
    t0 = time.perf_counter()
    block(fn())
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        block(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), first, times


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux's ``VmHWM`` is read first: ``getrusage``'s ``ru_maxrss`` survives ``fork`` + ``exec``, so a child started
    by a large parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> str:
    """One line describing the machine and the JAX backend."""
    import os

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, jax {jax.__version__} on {jax.default_backend()} "
            f"({jax.devices()[0].device_kind})")


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Measured float32 matrix-multiply rate of this machine, in GFLOP/s (2 n^3 flops per product)."""
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    med, _, _ = median_time(lambda: f(a), repeats=repeats)
    return 2 * n ** 3 / med / 1e9
