"""Nearest neighbours for the training report, any modality: a few query items and their top hits in a
small corpus, before and after training.

``fit`` picks them (:func:`anycl.fitting.setup.retrieval_examples`) from the evaluation set when there is one,
else from the training rows, in one of three shapes:

- **pairs** (:meth:`RetrievalExamples.from_pairs`, :meth:`RetrievalExamples.pick`): each query has its own
  document (its positive, marked ✓); the corpus is the queries' documents plus a seeded sample of others;
- **labelled items** (:meth:`RetrievalExamples.from_items`): the queries' neighbours among the other items of
  the same set (a query never finds itself), each marked same / other label;
- **a split** (:meth:`RetrievalExamples.from_split`): queries from a probe's test items, neighbours from its
  train items.

The corpus holds at most ``corpus_size`` items; the search is :func:`anycl.search.exact.topk`. With labels,
:meth:`RetrievalExamples.snapshot` also measures how often each corpus item's nearest other item shares its
label, against chance (a random pick): the report's neighbour verdict.
"""

from __future__ import annotations

import math
import os
import random
from typing import Any, Dict, List, Optional, Sequence, Set

import torch

from anycl.keys import item_key
from anycl.search.exact import topk


def folder_labels(items: Sequence[Any]) -> Optional[List[str]]:
    """Class folders: each file's parent folder name, when the items are files in at least two folders and
    some folder holds several of them; else None."""
    if len(items) < 3 or not all(isinstance(x, (str, os.PathLike)) for x in items):
        return None
    if not all(os.path.isfile(x) for x in items[:20]):
        return None
    parents = [os.path.basename(os.path.dirname(os.path.abspath(os.fspath(x)))) for x in items]
    distinct = len(set(parents))
    return parents if 1 < distinct < len(items) else None


def label_agreement(emb: torch.Tensor, labels: Sequence[Any]) -> Dict[str, float]:
    """Leave-one-out nearest-neighbour label agreement of ``emb`` (N, D), L2-normalised.

    ``rate``: the share of items whose most similar other item has their label. ``chance``: the same share
    when that neighbour is picked at random, the mean over items of (items of its label − 1) / (N − 1).
    ``stderr``: the standard error of ``rate`` under chance, √(chance (1 − chance) / N)."""
    n = len(labels)
    keys = [repr(y) for y in labels]
    _, idx = topk(emb, emb, 1, exclude=[[i] for i in range(n)])
    rate = sum(keys[int(j)] == keys[i] for i, j in enumerate(idx[:, 0].tolist())) / n
    counts: Dict[str, int] = {}
    for y in keys:
        counts[y] = counts.get(y, 0) + 1
    chance = sum((counts[y] - 1) / (n - 1) for y in keys) / n
    return {"rate": rate, "chance": chance, "stderr": math.sqrt(chance * (1 - chance) / n), "items": n}


class RetrievalExamples:
    """Queries, a corpus, and what marks a hit.

    Args:
        queries, corpus: items of any modality.
        relevant: per query, the corpus indices of its own document (✓); empty sets where there is none.
        k: neighbours shown per query.
        query_labels, corpus_labels: the items' labels (same / other label marks), or None.
        own: per query, its own index in the corpus (never returned as its neighbour), or None.
        query_modality, corpus_modality: the towers that embed each side (default: the model's anchor and
            positive sides).
        label_source: where the labels came from, said on the page ("label", "folder").
    """

    def __init__(
        self,
        queries: Sequence[Any],
        corpus: Sequence[Any],
        relevant: Optional[Sequence[Set[int]]] = None,
        k: int = 3,
        query_labels: Optional[Sequence[Any]] = None,
        corpus_labels: Optional[Sequence[Any]] = None,
        own: Optional[Sequence[Optional[int]]] = None,
        query_modality: Optional[str] = None,
        corpus_modality: Optional[str] = None,
        label_source: str = "label",
    ):
        self.queries, self.corpus = list(queries), list(corpus)
        self.relevant = [set(r) for r in relevant] if relevant is not None else [set() for _ in self.queries]
        self.k = k
        self.query_labels = list(query_labels) if query_labels is not None else None
        self.corpus_labels = list(corpus_labels) if corpus_labels is not None else None
        self.own = list(own) if own is not None else [None] * len(self.queries)
        self.query_modality, self.corpus_modality = query_modality, corpus_modality
        self.label_source = label_source
        self.origin = ""  # where the items come from, said on the page ("evaluation set", "training data")
        self.hits: Dict[str, List[List[Dict[str, Any]]]] = {}  # "before"/"after" → per query → top-k hits
        self.agreement: Dict[str, Dict[str, float]] = {}  # "before"/"after" → label_agreement of the corpus
        self.embeddings: Dict[str, torch.Tensor] = {}  # "after" → the corpus's embeddings (the report's map)

    @property
    def has_pairs(self) -> bool:
        return any(self.relevant)

    @property
    def labelled(self) -> bool:
        return self.corpus_labels is not None

    # -- choosing the examples ------------------------------------------------------------------------------
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
        query_labels: Optional[Sequence[Any]] = None,
        corpus_labels: Optional[Sequence[Any]] = None,
        **kwargs,
    ) -> Optional[RetrievalExamples]:
        """``n`` seeded queries that have a relevant document and a corpus of at most ``corpus_size``: their
        documents plus a seeded sample of the others."""
        usable = [i for i in range(len(queries)) if relevant[i]]
        if not usable:
            return None
        rng = random.Random(seed)
        chosen = sorted(rng.sample(usable, min(n, len(usable))))
        keep = sorted({d for i in chosen for d in relevant[i]})
        taken = set(keep)
        others = [d for d in range(len(corpus)) if d not in taken]
        keep = sorted(keep + rng.sample(others, max(0, min(len(others), corpus_size - len(keep)))))
        where = {d: j for j, d in enumerate(keep)}
        return cls(
            [queries[i] for i in chosen],
            [corpus[d] for d in keep],
            [{where[d] for d in relevant[i] if d in where} for i in chosen],
            k,
            query_labels=[query_labels[i] for i in chosen] if query_labels is not None else None,
            corpus_labels=[corpus_labels[d] for d in keep] if corpus_labels is not None else None,
            **kwargs,
        )

    @classmethod
    def from_pairs(
        cls, anchors: Sequence[Any], positives: Sequence[Any], labels: Optional[Sequence[Any]] = None, **kwargs
    ) -> Optional[RetrievalExamples]:
        """From aligned pairs: query i's document is the i-th positive (identical positives are one document,
        by :func:`anycl.keys.item_key`; a document's label is its first row's)."""
        corpus: List[Any] = []
        corpus_labels: List[Any] = []
        index: Dict[Any, int] = {}
        relevant = []
        for i, p in enumerate(positives):
            key = item_key(p)
            if key not in index:
                index[key] = len(corpus)
                corpus.append(p)
                corpus_labels.append(labels[i] if labels is not None else None)
            relevant.append({index[key]})
        return cls.pick(
            list(anchors),
            corpus,
            relevant,
            query_labels=list(labels) if labels is not None else None,
            corpus_labels=corpus_labels if labels is not None else None,
            **kwargs,
        )

    @classmethod
    def from_items(
        cls,
        items: Sequence[Any],
        labels: Optional[Sequence[Any]] = None,
        n: int = 3,
        corpus_size: int = 200,
        seed: int = 0,
        k: int = 3,
        modality: Optional[str] = None,
        label_source: str = "label",
    ) -> Optional[RetrievalExamples]:
        """Items of one set (labelled or not): a seeded sample of at most ``corpus_size`` is the corpus, ``n``
        of them (of different labels where there are several) the queries, each searched among the others."""
        if len(items) < 2:
            return None
        rng = random.Random(seed)
        keep = sorted(rng.sample(range(len(items)), min(corpus_size, len(items))))
        order = rng.sample(range(len(keep)), len(keep))
        chosen: List[int] = []
        seen_labels: set = set()
        for j in order:  # one query per label first, then any
            y = repr(labels[keep[j]]) if labels is not None else None
            if y not in seen_labels or labels is None:
                chosen.append(j)
                seen_labels.add(y)
            if len(chosen) == n:
                break
        for j in order:
            if len(chosen) == n:
                break
            if j not in chosen:
                chosen.append(j)
        chosen.sort()
        corpus = [items[i] for i in keep]
        corpus_labels = [labels[i] for i in keep] if labels is not None else None
        return cls(
            [corpus[j] for j in chosen],
            corpus,
            None,
            k,
            query_labels=[corpus_labels[j] for j in chosen] if corpus_labels is not None else None,
            corpus_labels=corpus_labels,
            own=chosen,
            query_modality=modality,
            corpus_modality=modality,
            label_source=label_source,
        )

    @classmethod
    def from_split(
        cls,
        train_items: Sequence[Any],
        train_labels: Sequence[Any],
        test_items: Sequence[Any],
        test_labels: Sequence[Any],
        n: int = 3,
        corpus_size: int = 200,
        seed: int = 0,
        k: int = 3,
        modality: Optional[str] = None,
    ) -> Optional[RetrievalExamples]:
        """A probe's split: ``n`` seeded test items as queries, a seeded sample of the train items as corpus."""
        if not test_items or not train_items:
            return None
        rng = random.Random(seed)
        chosen = sorted(rng.sample(range(len(test_items)), min(n, len(test_items))))
        keep = sorted(rng.sample(range(len(train_items)), min(corpus_size, len(train_items))))
        return cls(
            [test_items[i] for i in chosen],
            [train_items[i] for i in keep],
            None,
            k,
            query_labels=[test_labels[i] for i in chosen],
            corpus_labels=[train_labels[i] for i in keep],
            query_modality=modality,
            corpus_modality=modality,
        )

    # -- searching --------------------------------------------------------------------------------------------
    def modalities(self, model) -> tuple:
        sides = getattr(model, "sides", {}) or {}
        q = self.query_modality or sides.get("anchor")
        return q, self.corpus_modality or sides.get("positive", q)

    def snapshot(self, model, label: str) -> None:
        """Search the corpus with ``model`` and keep the top-k hits under ``label`` ("before", "after"); with
        labels, also the corpus's :func:`label_agreement`."""
        qm, cm = self.modalities(model)
        q = model.encode(self.queries, modality=qm)
        c = model.encode(self.corpus, modality=cm)
        q, c = torch.as_tensor(q).float(), torch.as_tensor(c).float()
        exclude = [[o] if o is not None else [] for o in self.own]
        k = min(self.k, len(self.corpus) - (1 if any(o is not None for o in self.own) else 0))
        scores, index = topk(q, c, k, exclude=exclude)
        qlabels, clabels = self.query_labels, self.corpus_labels
        self.hits[label] = [
            [
                {
                    "index": int(j),
                    "score": float(s),
                    "relevant": (int(j) in self.relevant[i]) if self.has_pairs else None,
                    "same_label": repr(qlabels[i]) == repr(clabels[int(j)])
                    if qlabels is not None and clabels is not None
                    else None,
                }
                for s, j in zip(scores[i].tolist(), index[i].tolist())
                if j >= 0
            ]
            for i in range(len(self.queries))
        ]
        if clabels is not None and len(clabels) > 2 and len({repr(y) for y in clabels}) > 1:
            self.agreement[label] = label_agreement(c, clabels)
        self.embeddings[label] = c

    def record(self, name) -> Dict[str, Any]:
        """The examples as JSON data (report/data.json): items by ``name(item)``."""
        return {
            "queries": [name(x) for x in self.queries],
            "query_labels": self.query_labels,
            "corpus": [name(x) for x in self.corpus],
            "hits": self.hits,
            "agreement": self.agreement,
        }
