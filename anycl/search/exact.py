"""Exact nearest-neighbour search and the ranking metrics computed from its results.

One engine serves hard-negative mining (:mod:`anycl.mining`), retrieval evaluation and kNN probes
(:mod:`anycl.evaluation`) and cross-modal recall (:mod:`anycl.evaluation.crossmodal`): :func:`topk` scores
blocks of queries against blocks of documents by matrix products and keeps a running top-k, so memory
is bounded by the block sizes, never a full query × corpus matrix. :func:`ranked_metrics` turns ranked
lists into nDCG@10, MRR@10, MAP@100 and Recall@k.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Dict, List, Optional, Sequence, Set, Tuple

import torch

from .rescore import canonical_topk, indexed_pair_dots, merge_ranked, rounding_bound, settle, slack  # noqa: F401


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
    sorted descending, and (Q, k) long indices. The scores are :func:`~anycl.search.rescore.pair_dots`
    (rounded the same wherever computed) and equal scores are ranked by the lower corpus index, so the
    result does not depend on the block sizes (nor, in :mod:`anycl.mining.shard`, on how the corpus is
    split across processes): see :mod:`anycl.search.rescore`.
    """
    nq, n = queries.shape[0], corpus.shape[0]
    k = max(0, int(k))
    out_s = torch.full((nq, k), float("-inf"))
    out_i = torch.full((nq, k), -1, dtype=torch.long)
    if k == 0 or n == 0:
        return out_s, out_i
    d_max = float(corpus.norm(dim=1).max())
    for qs in range(0, nq, chunk_size):
        q = queries[qs : qs + chunk_size]
        ex = None if exclude is None else exclude[qs : qs + q.shape[0]]
        cand_s, cand_i = candidates(q, corpus, k + slack(k), ex, chunk_size, corpus_chunk_size)
        s, i = settle(
            cand_s,
            cand_i,
            k,
            partial(pair_rows, q, corpus),
            rounding_bound(q.shape[1], q.norm(dim=1), d_max),
            partial(fallback_rows, q, corpus, k, ex),
        )
        out_s[qs : qs + q.shape[0]], out_i[qs : qs + q.shape[0]] = s, i
    return out_s, out_i


def pair_rows(q: torch.Tensor, corpus: torch.Tensor, qi: torch.Tensor, di: torch.Tensor) -> torch.Tensor:
    """:func:`~anycl.search.rescore.pair_dots` of the pairs (``q[qi[j]]``, ``corpus[di[j]]``)."""
    return indexed_pair_dots(q, corpus, qi, di)


def fallback_rows(q, corpus, k: int, ex, rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The exhaustive search of the queries ``q[rows]`` (:func:`~anycl.search.rescore.settle`'s fallback)."""
    return canonical_topk(q[rows], corpus, k, None if ex is None else [ex[r] for r in rows.tolist()])


def candidates(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    depth: int,
    exclude: Optional[Sequence[Sequence[int]]] = None,
    chunk_size: int = 1024,
    corpus_chunk_size: Optional[int] = -1,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each query's best ``depth`` documents by matrix products (blocks as in :func:`topk`): (Q, depth)
    scores sorted descending and ids, ``-inf``/``-1`` for missing ranks; the first step of :func:`topk`
    (:mod:`anycl.search.rescore`)."""
    nq, n = queries.shape[0], corpus.shape[0]
    step = chunk_size if corpus_chunk_size == -1 else (corpus_chunk_size or max(n, 1))
    out_s = torch.full((nq, depth), float("-inf"))
    out_i = torch.full((nq, depth), -1, dtype=torch.long)
    if depth == 0 or n == 0:
        return out_s, out_i
    for qs in range(0, nq, chunk_size):
        q = queries[qs : qs + chunk_size]
        m = q.shape[0]
        best_s = torch.full((m, 0), float("-inf"))
        best_i = torch.full((m, 0), -1, dtype=torch.long)
        ex_r, ex_c = exclusions(exclude, qs, m)
        for cs in range(0, n, step):
            sim = q @ corpus[cs : cs + step].T  # (m, c)
            if len(ex_r):
                sel = (ex_c >= cs) & (ex_c < cs + sim.shape[1])
                sim[ex_r[sel], ex_c[sel] - cs] = float("-inf")
            s, i = sim.topk(min(depth, sim.shape[1]), dim=1)
            cat_s = torch.cat([best_s, s], dim=1)
            cat_i = torch.cat([best_i, i + cs], dim=1)
            best_s, pos = cat_s.topk(min(depth, cat_s.shape[1]), dim=1)
            best_i = cat_i.gather(1, pos)
        best_i = torch.where(torch.isinf(best_s), torch.full_like(best_i, -1), best_i)
        out_s[qs : qs + m, : best_s.shape[1]] = best_s
        out_i[qs : qs + m, : best_i.shape[1]] = best_i
    return out_s, out_i


def recall_at_k(reference: torch.Tensor, found: torch.Tensor, k: Optional[int] = None) -> float:
    """Mean over queries of the share of ``reference``'s first ``k`` ids (e.g. the exact top-k; ``-1``:
    no result) that ``found``'s first ``k`` (e.g. an approximate search's) contains; queries without a
    reference id are left out. 1.0 when nothing is missed; nan without any reference id."""
    k = reference.shape[1] if k is None else int(k)
    total, n = 0.0, 0
    for ref, got in zip(reference[:, :k].tolist(), found[:, :k].tolist()):
        want = {j for j in ref if j >= 0}
        if want:
            total += len(want & set(got)) / len(want)
            n += 1
    return total / n if n else float("nan")


def exclusions(exclude: Optional[Sequence[Sequence[int]]], start: int, m: int) -> Tuple[torch.Tensor, torch.Tensor]:
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
