"""Training curves as PNG files: loss and accuracy per epoch, drawn with matplotlib's Agg canvas (no display).

Only ``matplotlib.figure.Figure`` and the Agg canvas are used, never ``pyplot``, so plotting changes no global state
(no backend switch, no open-figure registry) and works on machines without a display.
"""
from __future__ import annotations

import os

__all__ = ["plot_history"]


def _series(history, name):
    values = [r.get(name) for r in history.records]
    points = [(r["epoch"], v) for r, v in zip(history.records, values) if v is not None]
    return ([e for e, _ in points], [float(v) for _, v in points]) if points else None


def plot_history(history, path, *, title: str | None = None) -> str:
    """Write a PNG with two panels: loss (train and validation) and accuracy (train and validation) per epoch.

    Missing series are left out (no validation data: only the training curves; no accuracy: one panel).

    Args:
      history: a ``fnn.train.callbacks.History`` (``fit``'s third result) or anything with ``.records``.
      path: the PNG file to write (directories are created).
      title: optional figure title.

    Returns:
      ``path``.

    Example:
      >>> from fnn.train import History
      >>> history = History([{"epoch": 1, "loss": 0.9, "accuracy": 0.7}, {"epoch": 2, "loss": 0.5, "accuracy": 0.8}])
      >>> plot_history(history, "runs/digits/curves.png")
      'runs/digits/curves.png'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not history.records:
        raise ValueError("plot_history: the history has no epochs; train for at least one epoch first")
    panels = [("loss", "loss", "val_loss"), ("accuracy", "accuracy", "val_accuracy")]
    panels = [p for p in panels if _series(history, p[1]) or _series(history, p[2])]
    fig = Figure(figsize=(5 * len(panels), 3.8), dpi=100)
    FigureCanvasAgg(fig)
    for i, (label, train_key, val_key) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key, name, style in ((train_key, "train", "-o"), (val_key, "validation", "-s")):
            s = _series(history, key)
            if s is not None:
                ax.plot(*s, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    return path
