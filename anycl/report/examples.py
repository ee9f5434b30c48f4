"""Retrieval examples for the training report (text): a few queries and their top hits before and after.

``fit`` picks the queries from the evaluation pairs when there are some (else from the training pairs),
searches a small corpus (the queries' own documents plus a seeded sample of others, at most
``corpus_size``) with the model before training, and again when the report is written.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Sequence, Set

import torch


class RetrievalExamples:
    """``queries`` (strings), ``corpus`` (strings) and each query's relevant corpus indices."""

    def __init__(self, queries: Sequence[str], corpus: Sequence[str], relevant: Sequence[Set[int]], k: int = 3):
        self.queries, self.corpus = list(queries), list(corpus)
        self.relevant = [set(r) for r in relevant]
        self.k = k
        self.hits: Dict[str, List[List[Dict[str, Any]]]] = {}  # label → per query → top-k hits

    @classmethod
    def pick(
        cls,
        queries: Sequence[Any],
        corpus: Sequence[Any],
        relevant: Sequence[Set[int]],
        n: int = 3,
        corpus_size: int = 200,
        seed: int = 0,
        k: int = 3,
    ) -> Optional[RetrievalExamples]:
        """``n`` seeded queries (strings with a relevant document) and a corpus of at most ``corpus_size``."""
        usable = [i for i, q in enumerate(queries) if isinstance(q, str) and relevant[i]]
        if len(usable) < 1 or not all(isinstance(c, str) for c in corpus[:50]):
            return None
        rng = random.Random(seed)
        chosen = sorted(rng.sample(usable, min(n, len(usable))))
        keep = sorted({d for i in chosen for d in relevant[i]})
        others = [d for d in range(len(corpus)) if d not in set(keep)]
        keep = sorted(keep + rng.sample(others, max(0, min(len(others), corpus_size - len(keep)))))
        where = {d: j for j, d in enumerate(keep)}
        return cls(
            [queries[i] for i in chosen],
            [corpus[d] for d in keep],
            [{where[d] for d in relevant[i] if d in where} for i in chosen],
            k,
        )

    @classmethod
    def from_pairs(cls, anchors: Sequence[Any], positives: Sequence[Any], **kwargs) -> Optional[RetrievalExamples]:
        """From aligned pairs: query i's relevant document is the i-th positive (duplicates merged)."""
        corpus: List[Any] = []
        index: Dict[Any, int] = {}
        relevant = []
        for p in positives:
            if not isinstance(p, str):
                return None
            if p not in index:
                index[p] = len(corpus)
                corpus.append(p)
            relevant.append({index[p]})
        return cls.pick(list(anchors), corpus, relevant, **kwargs)

    def snapshot(self, model, label: str) -> None:
        """Search the corpus with ``model`` and keep the top-k hits under ``label`` ("before", "after")."""
        q = model.encode(self.queries, modality=model.sides.get("anchor"))
        c = model.encode(self.corpus, modality=model.sides.get("positive"))
        scores = q @ c.T
        top = torch.topk(scores, min(self.k, len(self.corpus)), dim=1)
        self.hits[label] = [
            [
                {"text": self.corpus[int(j)], "score": float(s), "relevant": int(j) in self.relevant[i]}
                for s, j in zip(top.values[i], top.indices[i])
            ]
            for i in range(len(self.queries))
        ]
