"""GISTEmbed-style guiding at mining time (part 3 of 3): a mined candidate is dropped when the *guide* model
scores it above the guide's own positive score minus the margin — the same rule the loss applies to in-batch
candidates, applied to the candidates :func:`anycl.mining.mine_negative_ids` ranks with the mined model (rule 6
of :mod:`anycl.mining.mine`). ``fit`` turns it on with ``sampler_options={"guide_filter": True}`` beside
``guide=``.

The three parts of guiding: the guide model and its embeddings of each training batch,
:mod:`anycl.training.guide`; the mask of in-batch candidates in the loss, :mod:`anycl.losses.guide_mask`; this
filter of mined candidates.
"""

from __future__ import annotations

import time
from typing import Optional, Tuple

import torch

from .embed_cache import embed_items
from .rules import MiningStats
from .shard import Shard, lowest_pair_scores


def guide_rejects(
    guide,
    queries,
    docs,
    labelled,
    idx,
    margin: float,
    strategy: str,
    batch_size: int,
    engine: str,
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
        gq = shard_q.gather(embed_items(guide, shard_q.take(queries), "anchor", batch_size, engine, cache=embed_cache))
        gd = embed_items(guide, shard_d.take(docs), "positive", batch_size, engine, cache=embed_cache)
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
