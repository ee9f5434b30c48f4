"""Reranking: each query's candidates (its positives and negatives) ranked by cosine (``reranking_map``,
``reranking_mrr@10``, ``reranking_ndcg@10``); rows sharing an anchor are one query."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

from anycl.data.inputs import Rows
from anycl.errors import DataError

from .base import Evaluator, register


def reranking_metrics(
    scores: Sequence[Sequence[float]], relevant: Sequence[Sequence[bool]], at_k: int = 10
) -> Dict[str, float]:
    """MAP, MRR@k and nDCG@k of each query's candidates ranked by ``scores`` (ties: first given first)."""
    ap = mrr = ndcg = 0.0
    n = 0
    for s, rel in zip(scores, relevant):
        if not any(rel):
            continue
        n += 1
        order = sorted(range(len(s)), key=lambda i: -s[i])
        hits = [bool(rel[i]) for i in order]
        found, prec = 0, 0.0
        for r, h in enumerate(hits):
            if h:
                found += 1
                prec += found / (r + 1)
        ap += prec / sum(hits)
        first = next(r for r, h in enumerate(hits) if h)
        mrr += 1 / (first + 1) if first < at_k else 0.0
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits[:at_k]) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(sum(hits), at_k)))
        ndcg += dcg / idcg
    if n == 0:
        raise DataError("reranking evaluation needs at least one query with a relevant candidate")
    return {"reranking_map": ap / n, f"reranking_mrr@{at_k}": mrr / n, f"reranking_ndcg@{at_k}": ndcg / n}


@register("reranking")
class RerankingEvaluator(Evaluator):
    """Re-ranks each query's candidates (its positives and negatives) by cosine: MAP, MRR@10, nDCG@10.

    Args:
        queries: query items. positives / negatives: per query, lists of candidate items.
    """

    primary_metric = "reranking_map"

    def __init__(
        self,
        queries: Sequence[Any],
        positives: Sequence[Sequence[Any]],
        negatives: Sequence[Sequence[Any]],
        batch_size: int = 64,
        at_k: int = 10,
    ):
        if not (len(queries) == len(positives) == len(negatives)) or not queries:
            raise DataError("reranking evaluation needs queries, positives and negatives of one (non-zero) length")
        self.queries = list(queries)
        self.positives, self.negatives = [list(p) for p in positives], [list(n) for n in negatives]
        self.batch_size, self.at_k = batch_size, at_k

    @classmethod
    def from_rows(cls, rows: Rows, batch_size: int = 64) -> RerankingEvaluator:
        """Rows sharing an anchor are one query: its positives, and the negatives of all its rows."""
        if not rows.has_positive or not rows.negatives:
            raise DataError(
                f"reranking evaluation needs anchor, positive and negative columns; the columns are {rows.columns}"
            )
        index: Dict[Any, int] = {}
        pos: List[List[Any]] = []
        neg: List[List[Any]] = []
        for row in rows:
            q = row["anchor"]
            if q not in index:
                index[q] = len(index)
                pos.append([])
                neg.append([])
            k = index[q]
            if row["positive"] not in pos[k]:
                pos[k].append(row["positive"])
            for c in rows.negatives:
                if row[c] not in neg[k] and row[c] not in pos[k]:
                    neg[k].append(row[c])
        return cls(list(index), pos, neg, batch_size=batch_size)

    def __call__(self, model) -> Dict[str, float]:
        mq, mc = model.sides.get("anchor"), model.sides.get("positive")
        cands = [p + n for p, n in zip(self.positives, self.negatives)]
        flat = [x for c in cands for x in c]
        q, c = self.embed(model, [(self.queries, mq), (flat, mc)])
        scores, relevant, start = [], [], 0
        for i, cs in enumerate(cands):
            sim = c[start : start + len(cs)] @ q[i]
            scores.append(sim.tolist())
            relevant.append([j < len(self.positives[i]) for j in range(len(cs))])
            start += len(cs)
        return reranking_metrics(scores, relevant, self.at_k)
