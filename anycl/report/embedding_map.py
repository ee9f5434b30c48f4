"""The report's embedding map: a 2-D projection of a sample of items, coloured by label wherever labels are
known, with a table to find each item; or, for pairs without labels, positive vs random pair similarities.

Where the items and labels come from, first that applies:

1. the training rows with a ``label`` column (a sample of at most ``sample`` rows);
2. training files in class folders (each file's folder is its label);
3. the labelled evaluation or probe set the neighbour examples were drawn from (their corpus, already embedded
   by the trained model);
4. training pairs without labels: the histogram of positive-pair vs random-pair similarities;
5. the training items, uncoloured.

Beside the figure it measures the mean cosine similarity of random pairs of the items (the collapse verdict's
second test, :func:`anycl.report.health.collapse_rule`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, NamedTuple, Optional

import torch

from anycl.adapters.preview import item_name

from .examples import RetrievalExamples, folder_labels
from .map_figures import label_map, pair_histogram, project_2d, sample_rows


class MapResult(NamedTuple):
    """The map's figure (heading, path, caption), its items as (name, label, x, y) rows (empty for the
    histogram), where the labels came from, and the mean cosine of random pairs of the items."""

    figure: tuple
    table: List[tuple]
    label_source: Optional[str]
    random_pair_cosine: Optional[float]


def random_pair_cosine(emb: torch.Tensor, seed: int = 0) -> Optional[float]:
    """Mean cosine similarity of each item to a seeded random other item (L2-normalised rows)."""
    n = emb.shape[0]
    if n < 2:
        return None
    e = torch.nn.functional.normalize(torch.as_tensor(emb).float(), dim=-1)
    g = torch.Generator().manual_seed(seed)
    partner = (torch.arange(n) + torch.randint(1, n, (n,), generator=g)) % n  # never the item itself
    return float((e * e[partner]).sum(-1).mean())


def embedding_map(
    path: Path,
    model,
    rows,
    examples: Optional[RetrievalExamples],
    sample: int = 500,
    method: str = "pca",
    seed: int = 0,
) -> Optional[MapResult]:
    """Draw the map (or histogram) at ``path``; None when there are fewer than 3 items."""
    picked = sample_rows(rows, sample, seed) if rows is not None else []
    anchor = (getattr(model, "sides", {}) or {}).get("anchor")
    items: List[Any] = []
    labels: Optional[List[Any]] = None
    source: Optional[str] = None
    emb = None
    what = "training items"
    if len(picked) >= 3 and "label" in picked[0]:
        items, labels, source = [r["anchor"] for r in picked], [r["label"] for r in picked], "label"
    elif len(picked) >= 3 and "positive" not in picked[0] and folder_labels([r["anchor"] for r in picked]):
        items = [r["anchor"] for r in picked]
        labels, source = folder_labels(items), "folder"
    elif examples is not None and examples.labelled and "after" in examples.embeddings and len(examples.corpus) >= 3:
        items, labels, source = examples.corpus, examples.corpus_labels, examples.label_source
        emb, anchor = examples.embeddings["after"], examples.modalities(model)[1]
        what = "evaluation items"
    elif len(picked) >= 3 and "positive" in picked[0]:
        info = pair_histogram(path, model, picked, seed)
        figure = (
            "Positive vs random pairs",
            path,
            f"Cosine similarity of {info['pairs']} training anchors to their own positive (green) and to "
            f"another row's positive (grey), with the final model. Separated humps mean positives are "
            f"found; a random pair scores at least as high as a positive pair "
            f"{100 * info['random_above_positive']:.1f} % of the time.",
        )
        return MapResult(figure, [], None, info["random_mean"])
    elif len(picked) >= 3:
        items = [r["anchor"] for r in picked]
    if len(items) < 3:
        return None
    if emb is None:
        emb = model.encode(items, modality=anchor)
    emb = torch.as_tensor(emb).float()
    xy = project_2d(emb.numpy(), method, seed)
    info = label_map(path, xy, labels, method)
    coloured = (
        f", coloured by {'class folder' if source == 'folder' else 'label'} ({info['labels']} labels): items of one "
        "label should gather"
        if labels is not None
        else " (no labels to colour them by)"
    )
    caption = (
        f"{info['items']} {what}, {method.upper()} of their embeddings with the final model{coloured}. "
        "The table below gives each item's coordinates."
    )
    names = [item_name(x) for x in items]
    table = [
        (names[i], "" if labels is None else str(labels[i]), float(xy[i][0]), float(xy[i][1]))
        for i in range(len(items))
    ]
    return MapResult(("Embedding map", path, caption), table, source, random_pair_cosine(emb, seed))
