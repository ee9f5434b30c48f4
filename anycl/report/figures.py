"""The training report's curves over the steps (PNG): the loss and learning rate, the evaluation metrics against
their step-0 baseline, the collapse watch (spread, alignment, uniformity) and the positive vs hardest-negative
similarity, with their good / bad shading. What every figure shares: :mod:`.plotting`; the embedding map's
figures: :mod:`.map_figures` (their names stay importable from here).

Figures carry no title: the report's heading above each says what it is, and its caption how to read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .map_figures import LEGEND_LABELS, label_map, pair_histogram, project_2d, sample_rows  # noqa: F401  (importable here)
from .plotting import COLOURS, DPI, FIGSIZE, series, step_axis, step_line  # noqa: F401  (step_axis: importable here)
from .plotting import pyplot as _plt
from .plotting import save_figure as _save


def line_figure(path: Path, history, keys: Sequence[str], ylabel: str, log_y: bool = False) -> Optional[Path]:
    """One line per key over steps (markers when there are few points)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    drawn = 0
    for k in keys:
        xs, ys = series(history, k)
        if xs:
            step_line(ax, xs, ys, label=k)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if drawn > 1:
        ax.legend(fontsize=8)
    return _save(fig, path)


def eval_figure(path: Path, eval_history, metrics: Sequence[str]) -> Optional[Path]:
    """One line per metric over the evaluations; the step-0 value (before training) is a hollow marker
    with a dotted line across, so each curve reads against its own baseline."""
    if not eval_history or not metrics:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    for i, k in enumerate(metrics):
        xs, ys = series(eval_history, k)
        if not xs:
            continue
        c = COLOURS[i % len(COLOURS)]
        # distinct markers, dashes and widths: metrics with equal values stay visible on top of each other
        ax.plot(
            xs,
            ys,
            color=c,
            marker="osD^vP*X"[i % 8],
            markersize=7 - 0.6 * (i % 6),
            linestyle=["-", "--", "-.", ":"][i % 4],
            linewidth=max(0.8, 3.0 - 0.45 * (i % 6)),
            label=k,
        )
        if xs[0] == 0:
            ax.axhline(ys[0], color=c, linestyle=":", linewidth=1, alpha=0.8)
            ax.plot([0], [ys[0]], marker="o", markersize=9, markerfacecolor="white", markeredgecolor=c, zorder=3)
    ax.plot(
        [],
        [],
        linestyle=":",
        color="0.3",
        marker="o",
        markerfacecolor="white",
        markeredgecolor="0.3",
        label="before training (step 0)",
    )
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("metric value")
    ax.set_ylim(
        0,
        min(1.05, max(1e-3, max(v for k in metrics for v in series(eval_history, k)[1]) * 1.1))
        if all(0 <= v <= 1 for k in metrics for v in series(eval_history, k)[1])
        else None,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    return _save(fig, path)


def collapse_figure(path: Path, history, threshold: float = 0.1, relative: float = 0.2) -> Optional[Path]:
    """Spread, alignment and uniformity on fixed axes: what collapse and health look like does not move.

    spread: 0 (collapsed) … 1 (spread over the sphere), the watch's warning threshold and its relative
    threshold (``relative`` × the first value) drawn; the band between the curve and the higher of the two is
    green where the spread is above it, red where below.
    alignment: 0 (positives identical) … 2 (as far as random pairs) … 4; the band between the curve and 2 is
    green where positives are closer than random pairs, red where farther.
    uniformity: 0 (collapsed) … −4 (uniform on a high-dimensional sphere); lower is more spread.
    """
    panels = [k for k in ("spread", "alignment", "uniformity") if series(history, k)[0]]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=FIGSIZE, dpi=DPI, squeeze=False)
    for ax, k in zip(axes[0], panels):
        xs, ys = series(history, k)
        step_line(ax, xs, ys, color="tab:blue")
        if k == "spread":
            ax.set_ylim(0, 1.05)
            floor = max(threshold, relative * ys[0]) if ys else threshold
            shade_against(ax, xs, ys, [floor] * len(xs), "above the warning level", "below: collapse")
            ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"warning ({threshold:g})")
            if ys:
                ax.axhline(
                    relative * ys[0],
                    color="tab:orange",
                    linestyle=":",
                    linewidth=1,
                    label=f"{relative:g} × first value",
                )
            ax.set_ylabel("0 = collapsed, 1 = spread")
        elif k == "alignment":
            ax.set_ylim(0, 4)
            shade_against(ax, xs, [2.0] * len(xs), ys, "closer than random pairs", "farther than random pairs")
            ax.axhline(2, color="0.4", linestyle="--", linewidth=1, label="random pairs (2)")
            ax.set_ylabel("E‖a − p‖² (lower is better)")
        else:
            ax.set_ylim(-4.2, 0.2)
            ax.axhline(0, color="tab:red", linestyle="--", linewidth=1, label="collapsed (0)")
            ax.axhline(-4, color="0.4", linestyle=":", linewidth=1, label="uniform (−4)")
            ax.set_ylabel("log E e^(−2‖x − y‖²)")
        ax.set_xlabel(f"{k}: optimiser step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower left" if k != "alignment" else "upper right")
    return _save(fig, path)


def shade_against(ax, xs, upper, lower, good: str, bad: str) -> None:
    """Shade between two curves over the steps: green where ``upper`` ≥ ``lower`` (the rule holds), red
    where not. Nothing is green by default: a band is only as green as the values in it."""
    if not xs:
        return
    up, lo = np.asarray(upper, dtype=float), np.asarray(lower, dtype=float)
    if len(xs) == 1:  # one point: a short band around it
        xs, up, lo = [xs[0] - 0.3, xs[0] + 0.3], np.repeat(up, 2), np.repeat(lo, 2)
    holds = up >= lo
    if holds.any():
        ax.fill_between(xs, lo, up, where=holds, interpolate=True, color="tab:green", alpha=0.15, label=good)
    if (~holds).any():
        ax.fill_between(xs, lo, up, where=~holds, interpolate=True, color="tab:red", alpha=0.25, label=bad)


def similarity_figure(path: Path, history) -> Optional[Path]:
    """Mean positive similarity and mean hardest in-batch negative similarity over training."""
    xs_p, ys_p = series(history, "positive")
    xs_n, ys_n = series(history, "hardest_negative")
    if not xs_p:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    step_line(ax, xs_p, ys_p, color="tab:green", label="anchor · its positive (mean)")
    if xs_n:
        step_line(ax, xs_n, ys_n, color="tab:red", label="anchor · hardest in-batch negative (mean)")
        common = {x: y for x, y in zip(xs_n, ys_n)}
        gx = [x for x in xs_p if x in common]
        shade_against(
            ax,
            gx,
            [y for x, y in zip(xs_p, ys_p) if x in common],
            [common[x] for x in gx],
            "positive above the hardest negative",
            "inverted: the hardest negative above the positive",
        )
    low = min(ys_p + ys_n + [0.0])
    ax.set_ylim(max(-1.0, low - 0.05), 1.0)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cosine similarity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
