"""What :func:`anycl.mining.mine_negative_ids` asks of its models beyond the search: the check of one item
(the model's adapter's, or a non-empty string), and the guide's rule (GISTEmbed's false-negative filter
applied at mining time): the ranked candidates a second model scores above its own positive score minus
the margin."""

from __future__ import annotations

import time
from typing import List, Optional, Tuple

import torch

from anycl.errors import DataError
from anycl.model.embed import is_anycl_model

from .embed_cache import embed_items
from .rules import MiningStats
from .shard import Shard


def item_validator(model, side: str):
    """The check of one ``side`` item: the model's adapter's ``validate``, or (a plain embedding model) a
    non-empty string."""
    if is_anycl_model(model):
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
    shards: Optional[Tuple[Shard, Shard]] = None,
    embed_cache=None,
) -> torch.Tensor:
    """(Q, R) bool: candidates the guide scores above its own positive score minus the margin. ``shards``
    (queries, corpus): this process's parts (:mod:`anycl.mining.shard`; default: all of both);
    ``embed_cache``: an :class:`~anycl.mining.embed_cache.EmbeddingCache` for the guide's embeddings."""
    shard_q, shard_d = shards or (Shard(len(queries), 0, 1), Shard(len(docs), 0, 1))
    sizes, part = (len(queries), len(docs)), (shard_d.start, shard_d.stop)
    if cache is not None and cache.get("sizes") == sizes and cache.get("shard", part) == part:
        gq, gd = cache["queries"], cache["docs"]
    else:
        t0 = time.perf_counter()
        gq = shard_q.gather(
            embed_items(guide, shard_q.take(queries), "anchor", batch_size, precision, cache=embed_cache)
        )
        gd = embed_items(guide, shard_d.take(docs), "positive", batch_size, precision, cache=embed_cache)
        stats.embed_seconds += time.perf_counter() - t0
        if embed_cache is None:  # with a cache, the caller counts what it embedded
            stats.embedded += len(shard_q) + len(shard_d)
        if cache is not None:
            cache.update(sizes=sizes, shard=part, queries=gq, docs=gd)
    g_pos = lowest_pair_scores(shard_d, gq, gd, labelled)
    thr = g_pos - margin if strategy == "absolute" else g_pos - g_pos.abs() * margin
    nq, depth = idx.shape
    rows = torch.arange(nq).repeat_interleave(depth)
    g_cand = shard_d.pair_scores(gq, gd, rows, idx.clamp(min=0).reshape(-1)).view(nq, depth)
    return (g_cand > thr.unsqueeze(1)) & (idx >= 0)


def lowest_pair_scores(
    shard_d: Shard, q_emb: torch.Tensor, d_local: torch.Tensor, per_query: List[List[int]]
) -> torch.Tensor:
    """(Q,) each query's lowest score among its documents ``per_query[q]`` (global ids; +inf for none)."""
    qi = torch.tensor([q for q, ds in enumerate(per_query) for _ in ds], dtype=torch.long)
    di = torch.tensor([d for ds in per_query for d in ds], dtype=torch.long)
    scores = shard_d.pair_scores(q_emb, d_local, qi, di)
    return torch.full((len(per_query),), float("inf")).scatter_reduce(0, qi, scores, "amin")
