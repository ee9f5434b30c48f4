"""Retrieval over a corpus: each query's relevant documents ranked among all (nDCG@10, MRR@10, MAP@100,
recall@k). The default for pairs (``anchor``, ``positive``): queries are the distinct anchors, the corpus
every distinct positive and negative."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Set

from anycl.data.inputs import Rows
from anycl.errors import DataError
from anycl.search.exact import retrieval_metrics, topk  # noqa: F401  (topk: 0.1's anycl.evaluation had it)

from .base import Evaluator, at_widths, register


@register("retrieval")
class RetrievalEvaluator(Evaluator):
    """Scores a model on retrieving each query's relevant documents from a corpus.

    Args:
        queries: query items. corpus: document items. relevant: per query, relevant corpus indices.
        query_modality / corpus_modality: towers to embed each side with (default: anchor / positive).
    """

    truncate_dims: Sequence[int] = ()  # also report metrics at these widths (fit sets matryoshka_dims)
    primary_metric = "ndcg@10"

    def __init__(
        self,
        queries: Sequence[Any],
        corpus: Sequence[Any],
        relevant: Sequence[Set[int]],
        batch_size: int = 64,
        query_modality: Optional[str] = None,
        corpus_modality: Optional[str] = None,
        ks: Sequence[int] = (1, 10, 100),
    ):
        self.queries, self.corpus, self.relevant = list(queries), list(corpus), [set(r) for r in relevant]
        if not self.queries or len(self.corpus) < 2:
            raise DataError(
                f"retrieval evaluation needs at least one query and 2 documents to rank, got {len(self.queries)} "
                f"and {len(self.corpus)} (with one document every metric is 1.0); give more (anchor, positive) pairs"
            )
        self.batch_size = batch_size
        self.query_modality, self.corpus_modality = query_modality, corpus_modality
        self.ks = ks

    @classmethod
    def from_rows(cls, rows: Rows, batch_size: int = 64) -> RetrievalEvaluator:
        return cls.from_pairs(rows, batch_size=batch_size)

    @classmethod
    def from_pairs(cls, rows: Rows, **kwargs) -> RetrievalEvaluator:
        """Queries are the distinct anchors; the corpus is every distinct positive and negative; ``kwargs`` go to
        the constructor."""
        if not rows.has_positive:
            raise DataError(f"retrieval evaluation needs anchor and positive columns; the columns are {rows.columns}")
        corpus: Dict[Any, int] = {}
        queries: Dict[Any, int] = {}
        relevant: List[Set[int]] = []
        for row in rows:
            q = row["anchor"]
            if q not in queries:
                queries[q] = len(queries)
                relevant.append(set())
            for col in ["positive"] + rows.negatives:
                d = row[col]
                if d not in corpus:
                    corpus[d] = len(corpus)
            relevant[queries[q]].add(corpus[row["positive"]])
        return cls(list(queries), list(corpus), relevant, **kwargs)

    def describe(self, rows: int) -> str:
        return f"retrieval: {rows} pairs"

    def __call__(self, model) -> Dict[str, float]:
        qm = self.query_modality or model.sides.get("anchor")
        cm = self.corpus_modality or model.sides.get("positive")
        q, c = self.embed(model, [(self.queries, qm, "anchor"), (self.corpus, cm, "positive")])
        return at_widths(lambda a, b: retrieval_metrics(a, b, self.relevant, self.ks), q, c, self.truncate_dims)
