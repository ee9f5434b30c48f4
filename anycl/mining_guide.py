"""What :func:`anycl.mining.mine_negative_ids` asks of its models beyond the search: the check of one item
(the model's adapter's, or a non-empty string), and the guide's rule (GISTEmbed's false-negative filter
applied at mining time): the ranked candidates a second model scores above its own positive score minus
the margin."""

from __future__ import annotations

import time
from typing import Optional

import torch

from .embed import embedder
from .errors import DataError
from .mining_rules import MiningStats


def item_validator(model, side: str):
    """The check of one ``side`` item: the model's adapter's ``validate``, or (a plain embedding model) a
    non-empty string."""
    if hasattr(model, "tower") and hasattr(model, "sides"):
        return model.tower(side).adapter.validate

    def check(item, where):
        if not isinstance(item, str):
            raise DataError(f"{where} must be a string, got {type(item).__name__}: {item!r:.80}")
        if not item.strip():
            raise DataError(f"{where} is an empty string; remove empty texts or fill them in")

    return check


def guide_rejects(
    guide,
    queries,
    docs,
    labelled,
    idx,
    margin: float,
    strategy: str,
    batch_size: int,
    precision: str,
    cache: Optional[dict],
    stats: MiningStats,
) -> torch.Tensor:
    """(Q, R) bool: candidates the guide scores above its own positive score minus the margin."""
    sizes = (len(queries), len(docs))
    if cache is not None and cache.get("sizes") == sizes:
        gq, gd = cache["queries"], cache["docs"]
    else:
        t0 = time.perf_counter()
        gq = embedder(guide, "anchor", batch_size, precision)(queries)
        gd = embedder(guide, "positive", batch_size, precision)(docs)
        stats.embed_seconds += time.perf_counter() - t0
        if cache is not None:
            cache.update(sizes=sizes, queries=gq, docs=gd)
    g_pos = torch.stack([(gq[qi] @ gd[labelled[qi]].T).min() for qi in range(len(queries))])
    thr = g_pos - margin if strategy == "absolute" else g_pos - g_pos.abs() * margin
    safe = idx.clamp(min=0)
    g_cand = (gq.unsqueeze(1) * gd[safe]).sum(-1)  # (Q, R): the guide's score of each ranked candidate
    return (g_cand > thr.unsqueeze(1)) & (idx >= 0)
