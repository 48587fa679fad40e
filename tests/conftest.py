"""Strict JAX settings for the whole suite: rank promotion raises; pytest turns warnings into errors.

On a GPU, JAX's default float32 matrix product rounds its inputs to TensorFloat-32 (10-bit mantissa), which is far
outside the 1e-5 tolerances these tests hold fnn to against NumPy and optax; the suite asks for full float32
products there (``jax_default_matmul_precision="highest"``), as a user checking numbers would (docs/training.md).

The suite checks numbers, not speed, and most of its time is XLA compiling small programs: it asks XLA's CPU
backend for LLVM optimisation level 0 (``--xla_backend_optimization_level=0``), which compiled a sample of the
slowest tests in 41% less CPU time (111 s -> 65 s) with the same results. The variable is set before JAX starts, so
the subprocesses the CLI tests launch inherit it. Benchmarks (``benchmarks/``) never run under it."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
if jax.default_backend() != "cpu":
    jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def fashion_mnist():
    """Skip (with the reason) when the Fashion-MNIST IDX files are absent (``.ci/run`` installs them; a GPU machine
    or a fresh checkout may not have them)."""
    from fnn.data import load_fashion_mnist
    try:
        load_fashion_mnist(split="test")
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST files not found: {e}")
