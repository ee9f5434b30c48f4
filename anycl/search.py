"""Exact nearest-neighbour search and the ranking metrics computed from its results.

One engine serves hard-negative mining (:mod:`anycl.mining`), retrieval evaluation and kNN probes
(:mod:`anycl.evaluation`) and cross-modal recall (:mod:`anycl.crossmodal`): :func:`topk` scores
blocks of queries against blocks of documents by matrix products and keeps a running top-k, so memory
is bounded by the block sizes, never a full query × corpus matrix. :func:`ranked_metrics` turns ranked
lists into nDCG@10, MRR@10, MAP@100 and Recall@k.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Set, Tuple

import torch


def topk(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    k: int,
    exclude: Optional[Sequence[Sequence[int]]] = None,
    chunk_size: int = 1024,
    corpus_chunk_size: Optional[int] = -1,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` scores (dot products; cosine for L2-normalised inputs) and corpus indices of each query.

    Args:
        queries: (Q, D). corpus: (N, D).
        exclude: for each query, corpus indices that are never returned (masked before the top-k, so
            they use up no ranks), or None.
        chunk_size: queries per block. corpus_chunk_size: documents per block; ``-1`` (default): the
            same as ``chunk_size``; None: the whole corpus in one block.

    Memory: ``chunk_size × (corpus block + k)`` scores besides the embeddings. Missing ranks (a corpus
    smaller than k plus the exclusions) have score ``-inf`` and index ``-1``. Returns (Q, k) scores,
    sorted descending, and (Q, k) long indices.
    """
    nq, n = queries.shape[0], corpus.shape[0]
    k = max(0, int(k))
    step = chunk_size if corpus_chunk_size == -1 else (corpus_chunk_size or max(n, 1))
    out_s = torch.full((nq, k), float("-inf"))
    out_i = torch.full((nq, k), -1, dtype=torch.long)
    if k == 0 or n == 0:
        return out_s, out_i
    for qs in range(0, nq, chunk_size):
        q = queries[qs : qs + chunk_size]
        m = q.shape[0]
        best_s = torch.full((m, 0), float("-inf"))
        best_i = torch.full((m, 0), -1, dtype=torch.long)
        ex_r, ex_c = _exclusions(exclude, qs, m)
        for cs in range(0, n, step):
            sim = q @ corpus[cs : cs + step].T  # (m, c)
            if len(ex_r):
                sel = (ex_c >= cs) & (ex_c < cs + sim.shape[1])
                sim[ex_r[sel], ex_c[sel] - cs] = float("-inf")
            s, i = sim.topk(min(k, sim.shape[1]), dim=1)
            cat_s = torch.cat([best_s, s], dim=1)
            cat_i = torch.cat([best_i, i + cs], dim=1)
            best_s, pos = cat_s.topk(min(k, cat_s.shape[1]), dim=1)
            best_i = cat_i.gather(1, pos)
        best_i = torch.where(torch.isinf(best_s), torch.full_like(best_i, -1), best_i)
        out_s[qs : qs + m, : best_s.shape[1]] = best_s
        out_i[qs : qs + m, : best_i.shape[1]] = best_i
    return out_s, out_i


def _exclusions(exclude: Optional[Sequence[Sequence[int]]], start: int, m: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The exclusions of queries ``start .. start + m`` as (row in the block, corpus index) tensors."""
    pairs = [] if exclude is None else [(r, c) for r in range(m) for c in exclude[start + r]]
    return (
        torch.tensor([r for r, _ in pairs], dtype=torch.long),
        torch.tensor([c for _, c in pairs], dtype=torch.long),
    )


def ranked_metrics(
    ranked: Sequence[Sequence[int]], relevant: Sequence[Set[int]], ks: Sequence[int] = (1, 10, 100)
) -> Dict[str, float]:
    """nDCG@10, MRR@10, MAP@100 and Recall@k for binary relevance, from each query's ranked corpus
    indices (best first; at least ``max(ks)`` and 100 deep where the corpus allows). Queries without
    relevant documents are left out of the means."""
    ndcg = mrr = ap = 0.0
    recall = {k: 0.0 for k in ks}
    for q, ranked_q in enumerate(ranked):
        rel = relevant[q]
        if not rel:
            continue
        hits = [1 if d in rel else 0 for d in ranked_q]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits[:10]))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), 10)))
        ndcg += dcg / idcg
        for r, h in enumerate(hits[:10]):
            if h:
                mrr += 1 / (r + 1)
                break
        found, prec_sum = 0, 0.0
        for r, h in enumerate(hits[:100]):
            if h:
                found += 1
                prec_sum += found / (r + 1)
        ap += prec_sum / min(len(rel), 100)
        for k in ks:
            recall[k] += sum(hits[:k]) / len(rel)
    n = sum(1 for r in relevant if r)
    out: Dict[str, float] = {"ndcg@10": ndcg / n, "mrr@10": mrr / n, "map@100": ap / n}
    for k in ks:
        out[f"recall@{k}"] = recall[k] / n
    return out


def retrieval_metrics(
    query_emb: torch.Tensor,
    corpus_emb: torch.Tensor,
    relevant: Sequence[Set[int]],
    ks: Sequence[int] = (1, 10, 100),
    chunk_size: int = 4096,
) -> Dict[str, float]:
    """nDCG@10, MRR@10, MAP@100 and Recall@k of ``query_emb`` (Q, D) against ``corpus_emb`` (N, D), both
    L2-normalised; ``relevant``: for each query, the set of relevant corpus indices."""
    if len(relevant) != query_emb.shape[0]:
        raise ValueError("relevant must give one set of corpus indices per query")
    depth = min(max(max(ks), 100), corpus_emb.shape[0])
    _, top = topk(query_emb, corpus_emb, depth, chunk_size=chunk_size, corpus_chunk_size=None)
    ranked: List[List[int]] = top.tolist()
    return ranked_metrics(ranked, relevant, ks)
