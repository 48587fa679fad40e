"""Argument types shared by the ``fnn`` commands: each rejects a bad value with one clear usage line (exit 2)."""
from __future__ import annotations

import argparse
import math

__all__ = ["Parser", "positive_int", "non_negative_int", "positive_float", "widths"]


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (``prog: message; see prog --help``), status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (``--epochs``, ``--batch-size``, ``--patience``, ``--steps``)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (``--seed``)."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """A finite number > 0 (``--lr``): ``inf`` and ``nan`` are refused, since a run with them "finishes" uselessly."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number like 1e-3, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite positive number like 1e-3, got {text!r}")
    return value


def widths(text: str) -> list[int]:
    """Comma-separated positive widths: ``128`` or ``256,128`` (``--hidden``)."""
    try:
        out = [int(w) for w in text.split(",")]   # an empty entry ("64,,3") is refused, not skipped
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive widths like 128 or 256,128, got {text!r}")
    return out
