"""``fnn info``: fnn, JAX and library versions, the backend and its devices."""
from __future__ import annotations

import os
import platform

__all__ = ["run"]


def run(args) -> int:
    """Print versions, backend and devices; returns 0."""
    import numpy
    import optax

    from fnn.train.distributed import describe
    print(f"fnn {_version()}  python {platform.python_version()}  optax {optax.__version__}  numpy {numpy.__version__}")
    print(describe())  # jax/jaxlib versions, backend, processes, devices
    print(f"machine {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs")
    return 0


def _version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("fnn")
    except PackageNotFoundError:
        return "(not installed)"
