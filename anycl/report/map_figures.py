"""The embedding map's figures: the 2-D projection (PCA or t-SNE) of a sample of rows, its points coloured by label,
and for pairs without labels the histogram of positive-pair vs random-pair similarities
(:mod:`anycl.report.embedding_map` chooses which)."""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from anycl.errors import ConfigError

from .plotting import DPI, FIGSIZE
from .plotting import pyplot as _plt
from .plotting import save_figure as _save


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
