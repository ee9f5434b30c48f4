"""Scores that do not depend on how a search was cut into blocks, shards or processes.

A matrix product may round the same dot product differently (in the last bit) depending on the shapes
of the blocks and where the pair falls in them, so a search cut differently (other block sizes, the
corpus split over processes, FAISS's kernels) could rank two near-equal documents differently. The
searches here therefore work in two steps:

1. **candidates** by matrix products: each query's best ``k + slack(k)`` documents;
2. **settle**: each candidate is rescored by :func:`pair_dots` (float64 products summed per pair, then
   rounded to float32: the same number for a pair wherever it is computed), and the best ``k`` are kept
   by (score descending, lower id first). The matrix-product score and :func:`pair_dots` differ by at
   most :func:`rounding_bound` (the textbook bound ``D·u·|q|·|d|`` of a dot product of length D, doubled);
   when the best document left out of the candidates (at most the last candidate's matrix-product
   score) could come within that bound of the k-th settled score, the query is searched again by
   :func:`pair_dots` over the whole corpus (``fallback``). The result is then the exact top-k of the
   :func:`pair_dots` scores, whatever the blocks.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch

UNIT_ROUNDOFF = 2.0**-24  # float32
PAIR_BLOCK = 8192  # pairs scored at a time by pair_dots


def slack(k: int) -> int:
    """Candidates gathered beyond ``k``, so that near-equal scores at the k-th place rarely need a fallback."""
    return max(8, k // 4) if k > 0 else 0


def pair_dots(q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """(P,) dot products of the rows of ``q`` and ``d`` (P, D): float64 products (exact) summed along D,
    rounded to float32 — independent of how many pairs are computed together."""
    out = torch.empty(q.shape[0])
    for s in range(0, q.shape[0], PAIR_BLOCK):  # bounded float64 temporaries
        out[s : s + PAIR_BLOCK] = (q[s : s + PAIR_BLOCK].double() * d[s : s + PAIR_BLOCK].double()).sum(dim=-1).float()
    return out


def indexed_pair_dots(q: torch.Tensor, d: torch.Tensor, qi: torch.Tensor, di: torch.Tensor) -> torch.Tensor:
    """:func:`pair_dots` of the rows ``q[qi[j]]`` and ``d[di[j]]``, gathered ``PAIR_BLOCK`` pairs at a time
    (never a (P, D) copy of all pairs)."""
    out = torch.empty(qi.shape[0])
    for s in range(0, qi.shape[0], PAIR_BLOCK):
        out[s : s + PAIR_BLOCK] = pair_dots(q[qi[s : s + PAIR_BLOCK]], d[di[s : s + PAIR_BLOCK]])
    return out


def rounding_bound(dim: int, q_norms: torch.Tensor, d_norm_max: float) -> torch.Tensor:
    """(Q,) a bound on |matrix-product score − :func:`pair_dots` score| for each query."""
    return 2.0 * (dim + 2) * UNIT_ROUNDOFF * q_norms * float(d_norm_max)


def merge_ranked(scores: torch.Tensor, ids: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The best ``k`` of (Q, C) candidates ordered by score descending, equal scores by the lower id
    (two stable sorts: by id, then by score)."""
    by_id = ids.argsort(dim=1, stable=True)
    s, i = scores.gather(1, by_id), ids.gather(1, by_id)
    s, by_score = s.sort(dim=1, descending=True, stable=True)
    return s[:, :k], i.gather(1, by_score[:, :k])


def settle(
    cand_s: torch.Tensor,
    cand_i: torch.Tensor,
    k: int,
    score_pairs: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    eps: Optional[torch.Tensor] = None,
    fallback: Optional[Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The top-``k`` of (Q, C ≥ k) candidates (``cand_s`` their search scores, sorted descending; ``-1``
    ids: none) rescored by ``score_pairs(query rows, ids)``. With ``fallback`` (an exhaustive search; not
    for an approximate one) and ``eps`` (Q,), queries whose candidates may miss a document of the top-k
    are answered by ``fallback(rows) -> (len(rows), k)`` scores and ids instead."""
    nq = cand_i.shape[0]
    valid = cand_i >= 0
    rows = torch.arange(nq).unsqueeze(1).expand_as(cand_i)
    exact = torch.full(cand_i.shape, float("-inf"))
    if bool(valid.any()):
        exact[valid] = score_pairs(rows[valid], cand_i[valid])
    s, i = merge_ranked(exact, torch.where(valid, cand_i, torch.full_like(cand_i, -1)), k)
    i = torch.where(torch.isinf(s), torch.full_like(i, -1), i)
    if fallback is not None and eps is not None and k > 0 and nq > 0 and cand_i.shape[1] > 0:
        # a full candidate list may have left documents out; they score at most the last candidate's score
        left_out = cand_i[:, -1] >= 0
        unsettled = left_out & ~(cand_s[:, -1] + eps < s[:, k - 1])
        redo = unsettled.nonzero().squeeze(1)
        if len(redo):
            s[redo], i[redo] = fallback(redo)
    return s, i


def canonical_topk(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    k: int,
    exclude: Optional[Sequence[Sequence[int]]] = None,
    corpus_chunk: int = 4096,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` by :func:`pair_dots` scores over the whole corpus, one query at a time (the fallback of
    :func:`settle`; slow, for the rare query with many near-equal scores at the k-th place)."""
    nq, n = queries.shape[0], corpus.shape[0]
    out_s = torch.full((nq, k), float("-inf"))
    out_i = torch.full((nq, k), -1, dtype=torch.long)
    for r in range(nq):
        best_s, best_i = torch.full((1, 0), float("-inf")), torch.full((1, 0), -1, dtype=torch.long)
        banned = set(exclude[r]) if exclude is not None else set()
        for cs in range(0, n, corpus_chunk):
            block = corpus[cs : cs + corpus_chunk]
            sc = pair_dots(queries[r].expand_as(block), block)
            for j in banned:
                if cs <= j < cs + block.shape[0]:
                    sc[j - cs] = float("-inf")
            ids = torch.arange(cs, cs + block.shape[0])
            best_s, best_i = merge_ranked(torch.cat([best_s, sc[None]], 1), torch.cat([best_i, ids[None]], 1), k)
        best_i = torch.where(torch.isinf(best_s), torch.full_like(best_i, -1), best_i)
        out_s[r, : best_s.shape[1]], out_i[r, : best_i.shape[1]] = best_s[0], best_i[0]
    return out_s, out_i
