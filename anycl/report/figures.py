"""The training report's figures (PNG, matplotlib's Agg backend, ``FIGSIZE`` at ``DPI``).

Figures carry no title: the report's heading above each says what it is, and its caption how to read it.
"""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from anycl.errors import ConfigError

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


def _plt():
    import matplotlib  # lazy: matplotlib: slow to import, only when a report is drawn

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # lazy: matplotlib: slow to import, only when a report is drawn

    return plt


def series(history: Sequence[Mapping[str, Any]], key: str):
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


def _save(fig, path: Path) -> Path:
    narrow = len(fig.axes) > 1  # side-by-side panels: fewer ticks, so that their labels never touch
    for ax in fig.axes:
        if ax.get_xlabel().endswith("step"):  # steps are whole numbers
            step_axis(ax, 4 if narrow else "auto")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return path


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


def project_2d(emb, method: str = "pca", seed: int = 0):
    """(N, D) embeddings → (N, 2) with scikit-learn's PCA or t-SNE."""
    x = np.asarray(emb, dtype=np.float64)
    if x.shape[0] < 3:
        return np.zeros((x.shape[0], 2))
    if method == "tsne":
        from sklearn.manifold import TSNE  # lazy: scikit-learn: slow to import, only where it is used

        return TSNE(
            n_components=2, perplexity=min(30.0, (x.shape[0] - 1) / 3), init="pca", random_state=seed
        ).fit_transform(x)
    if method != "pca":
        raise ConfigError(f"the embedding map's method must be 'pca' or 'tsne', got {method!r}")
    from sklearn.decomposition import PCA  # lazy: scikit-learn: slow to import, only where it is used

    with warnings.catch_warnings():  # collapsed embeddings have no variance to explain: a map of one point
        warnings.simplefilter("ignore", RuntimeWarning)
        return PCA(n_components=2, random_state=seed).fit_transform(x)


def sample_rows(rows, n: int, seed: int) -> List[dict]:
    if rows is None:
        return []
    if rows.streaming:
        out = []
        for r in rows:
            out.append(r)
            if len(out) >= n:
                break
        return out
    idx = list(range(len(rows)))
    if len(idx) > n:
        idx = sorted(random.Random(seed).sample(idx, n))
    return [rows[i] for i in idx]


LEGEND_LABELS = 19  # labels with a colour of their own in the map's legend; the rest are grey "other"


def label_map(path: Path, xy, labels: Optional[Sequence[Any]], method: str = "pca") -> Dict[str, Any]:
    """2-D points coloured by label (the most frequent :data:`LEGEND_LABELS` labels each a colour of the legend,
    the rest grey), or all one colour without labels. The axes keep their ticks: the report's table gives each
    item's coordinates."""
    plt = _plt()
    xy = np.asarray(xy)
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    names: List[str] = []
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=12, color="tab:blue")
    else:
        keys = [str(y) for y in labels]
        freq: Dict[str, int] = {}
        for y in keys:
            freq[y] = freq.get(y, 0) + 1
        names = sorted(freq, key=lambda y: (-freq[y], y))
        shown = sorted(names[:LEGEND_LABELS])
        cmap = plt.get_cmap("tab10" if len(shown) <= 10 else "tab20")
        for i, name in enumerate(shown):
            sel = [j for j, y in enumerate(keys) if y == name]
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=cmap(i), label=f"{name} ({len(sel)})")
        rest = [j for j, y in enumerate(keys) if y not in set(shown)]
        if rest:
            ax.scatter(xy[rest, 0], xy[rest, 1], s=10, color="0.7", label=f"{len(names) - len(shown)} other labels")
        ax.legend(
            fontsize=7,
            title="label (items)",
            title_fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            ncol=1 if len(shown) <= 10 else 2,
            frameon=False,
        )
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.2)
    _save(fig, path)
    return {"items": len(xy), "labels": len(names), "method": method}


def pair_histogram(path: Path, model, picked: List[dict], seed: int = 0) -> Dict[str, Any]:
    """Cosine similarity of each anchor to its positive vs to a random other row's positive."""
    plt = _plt()
    a = model.encode([r["anchor"] for r in picked], modality=model.sides.get("anchor"))
    p = model.encode([r["positive"] for r in picked], modality=model.sides.get("positive"))
    n = len(picked)
    g = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, n, (n,), generator=g)  # partner j = i + shift (mod n) is never i
    j = (torch.arange(n) + shift) % n
    pos = (a * p).sum(-1).numpy()
    rnd = (a * p[j]).sum(-1).numpy()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    bins = [x / 40 for x in range(-40, 41)]
    ax.hist(rnd, bins=bins, color="tab:grey", alpha=0.6, label=f"random pairs (mean {rnd.mean():.2f})")
    ax.hist(pos, bins=bins, color="tab:green", alpha=0.6, label=f"positive pairs (mean {pos.mean():.2f})")
    ax.set_xlim(-1, 1)
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    _save(fig, path)
    overlap = float((rnd[:, None] >= pos[None, :]).mean())  # P(random pair scores at least a positive pair)
    return {
        "pairs": n,
        "positive_mean": float(pos.mean()),
        "random_mean": float(rnd.mean()),
        "random_above_positive": overlap,
    }
