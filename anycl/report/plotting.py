"""What every figure of the training report shares: matplotlib on its Agg backend, the size (``FIGSIZE`` at
``DPI``) and colours, a series over training steps, the step axis (whole-number ticks), and saving a figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

FIGSIZE = (8.0, 4.5)
DPI = 100
COLOURS = [
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
    "tab:grey",
]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    import matplotlib  # lazy: matplotlib: slow to import, only when a report is drawn

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # lazy: matplotlib: slow to import, only when a report is drawn

    return plt


def series(history: Sequence[Mapping[str, Any]], key: str):
    """The (steps, values) of ``key`` in the history's records, those without a number (or with NaN) left out."""
    pts = [
        (h["step"], h[key])
        for h in history
        if isinstance(h.get(key), (int, float)) and "step" in h and not math.isnan(h[key])
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def step_line(ax, xs, ys, **style) -> None:
    """A line over training steps, with markers when there are few points (under 30)."""
    ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, **style)


def step_axis(ax, nbins: Any = "auto") -> None:
    """Whole-number step ticks (at most ``nbins``), and at least two steps of range so that a run of one step
    reads 0, 1, 2 rather than 0.945 … 1.050."""
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib: slow to import, only when a report is drawn

    lo, hi = ax.get_xlim()
    if hi - lo < 2:
        mid = round((lo + hi) / 2)
        ax.set_xlim(mid - 1, mid + 1)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=nbins, integer=True, min_n_ticks=1))


def save_figure(fig, path: Path) -> Path:
    """Whole-number ticks on a step axis, the layout tightened, the PNG written at ``DPI``, the figure closed."""
    narrow = len(fig.axes) > 1  # side-by-side panels: fewer ticks, so that their labels never touch
    for ax in fig.axes:
        if ax.get_xlabel().endswith("step"):  # steps are whole numbers
            step_axis(ax, 4 if narrow else "auto")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return path
