"""Evaluators beside retrieval: STS, triplet accuracy, reranking, classification (kNN + linear probe).

Each is a callable ``evaluator(model) -> {metric: value}`` with a ``primary_metric`` (what
``early_stopping_patience`` and ``keep_best=True`` watch when no metric is named). ``fit(eval_dataset=...)``
chooses one (:func:`build_evaluator`):

- ``eval_kind=None`` (default): from the columns — a ``score`` column → STS; ``anchor`` + ``positive``
  → retrieval (:class:`anycl.evaluation.RetrievalEvaluator`); items with a ``label`` only → leave-one-out kNN;
- ``eval_kind="sts" | "triplet" | "reranking" | "retrieval" | "knn" | "classification"`` forces a kind
  (e.g. triplets, whose columns would otherwise mean retrieval with the negatives in the corpus);
- an evaluator object (any callable of the model) is used as it is.

Metrics: ``sts_spearman`` / ``sts_pearson`` (of the cosine against the gold scores);
``triplet_accuracy`` (share of (a, p, n) with cos(a, p) > cos(a, n), every negative column counted);
``reranking_map`` / ``reranking_mrr@10`` / ``reranking_ndcg@10`` (each anchor's positives and negatives
re-ranked by cosine); ``knn@k_accuracy`` and ``linear_probe_accuracy`` (a seeded, stratified split).
They work for any modality: items are embedded with the model's towers.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch

from anycl.data.inputs import LABEL, Rows, to_rows
from anycl.data.item_checks import check_labels
from anycl.errors import ConfigError, DataError

from .embedding_evaluators import KNNEvaluator, ProbeEvaluator, RetrievalEvaluator, _encode_all

KINDS = ("retrieval", "sts", "triplet", "reranking", "knn", "classification")


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n with ties given their average rank."""
    x = x.double()
    order = torch.argsort(x, stable=True)
    sorted_x = x[order]
    ranks = torch.empty_like(x)
    n, i = len(x), 0
    while i < n:
        j = i
        while j + 1 < n and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / den if den > 0 else float("nan")


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rank correlation: Pearson's of the (tie-averaged) ranks."""
    return pearson(_ranks(torch.as_tensor(x)), _ranks(torch.as_tensor(y)))


def _modalities(model, anchor_side: str = "anchor", other_side: str = "positive"):
    return model.sides.get(anchor_side), model.sides.get(other_side)


class STSEvaluator:
    """Spearman (and Pearson) correlation of cos(sentence1, sentence2) with gold ``scores``."""

    show_progress = False
    primary_metric = "sts_spearman"

    def __init__(self, items1: Sequence[Any], items2: Sequence[Any], scores: Sequence[float], batch_size: int = 64):
        if not (len(items1) == len(items2) == len(scores)):
            raise DataError("STS evaluation needs one score per pair (items1, items2 and scores of one length)")
        if len(scores) < 2:
            raise DataError("STS evaluation needs at least 2 scored pairs")
        self.items1, self.items2 = list(items1), list(items2)
        self.scores = torch.tensor([float(s) for s in scores], dtype=torch.float64)
        self.batch_size = batch_size

    @classmethod
    def from_rows(cls, rows: Rows, **kw) -> STSEvaluator:
        if not rows.has_positive or "score" not in rows.columns:
            raise DataError(f"STS evaluation needs anchor, positive and score columns; the columns are {rows.columns}")
        return cls(rows.column("anchor"), rows.column("positive"), rows.column("score"), **kw)

    @staticmethod
    def metrics(emb1: torch.Tensor, emb2: torch.Tensor, scores: torch.Tensor) -> Dict[str, float]:
        cos = torch.nn.functional.cosine_similarity(emb1.double(), emb2.double(), dim=1)
        return {"sts_spearman": spearman(cos, scores), "sts_pearson": pearson(cos, scores)}

    def __call__(self, model) -> Dict[str, float]:
        m1, m2 = _modalities(model)
        e1, e2 = _encode_all(model, [(self.items1, m1), (self.items2, m2)], self.batch_size, self.show_progress)
        return self.metrics(e1, e2, self.scores)


class TripletEvaluator:
    """Share of triplets whose anchor is closer (cosine) to the positive than to the negative."""

    show_progress = False
    primary_metric = "triplet_accuracy"

    def __init__(
        self, anchors: Sequence[Any], positives: Sequence[Any], negatives: Sequence[Sequence[Any]], batch_size: int = 64
    ):
        """``negatives``: per anchor, its negatives (one or several)."""
        if not (len(anchors) == len(positives) == len(negatives)) or not anchors:
            raise DataError("triplet evaluation needs anchors, positives and negatives of one (non-zero) length")
        self.anchors, self.positives = list(anchors), list(positives)
        self.negatives = [list(n) for n in negatives]
        self.batch_size = batch_size

    @classmethod
    def from_rows(cls, rows: Rows, **kw) -> TripletEvaluator:
        if not rows.has_positive or not rows.negatives:
            raise DataError(
                f"triplet evaluation needs anchor, positive and negative columns; the columns are {rows.columns}"
            )
        negs = [list(t) for t in zip(*[rows.column(c) for c in rows.negatives])]
        return cls(rows.column("anchor"), rows.column("positive"), negs, **kw)

    @staticmethod
    def metrics(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> Dict[str, float]:
        """a, p: (B, D); n: (B, K, D)."""
        cos = torch.nn.functional.cosine_similarity
        pos = cos(a, p, dim=1).unsqueeze(1)
        neg = cos(a.unsqueeze(1).expand_as(n), n, dim=2)
        return {"triplet_accuracy": float((pos > neg).double().mean())}

    def __call__(self, model) -> Dict[str, float]:
        ma, mp = _modalities(model)
        mn = model.sides.get("negative", mp)
        flat = [x for ns in self.negatives for x in ns]
        k = len(self.negatives[0])
        if any(len(ns) != k for ns in self.negatives):
            raise DataError("triplet evaluation needs the same number of negatives per anchor")
        a, p, n = _encode_all(
            model, [(self.anchors, ma), (self.positives, mp), (flat, mn)], self.batch_size, self.show_progress
        )
        return self.metrics(a, p, n.view(len(self.anchors), k, -1))


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


class RerankingEvaluator:
    """Re-ranks each query's candidates (its positives and negatives) by cosine: MAP, MRR@10, nDCG@10.

    Args:
        queries: query items. positives / negatives: per query, lists of candidate items.
    """

    show_progress = False
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
    def from_rows(cls, rows: Rows, **kw) -> RerankingEvaluator:
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
        return cls(list(index), pos, neg, **kw)

    def __call__(self, model) -> Dict[str, float]:
        mq, mc = _modalities(model)
        cands = [p + n for p, n in zip(self.positives, self.negatives)]
        flat = [x for c in cands for x in c]
        q, c = _encode_all(model, [(self.queries, mq), (flat, mc)], self.batch_size, self.show_progress)
        scores, relevant, start = [], [], 0
        for i, cs in enumerate(cands):
            sim = c[start : start + len(cs)] @ q[i]
            scores.append(sim.tolist())
            relevant.append([j < len(self.positives[i]) for j in range(len(cs))])
            start += len(cs)
        return reranking_metrics(scores, relevant, self.at_k)


class ClassificationEvaluator(ProbeEvaluator):
    """kNN and linear-probe accuracy on a seeded, stratified split of one labelled set (any modality).

    Args:
        items, labels: the labelled items. test_fraction: share held out for testing. k: kNN neighbours.
    """

    primary_metric = "linear_probe_accuracy"

    def __init__(
        self,
        items: Sequence[Any],
        labels: Sequence[Any],
        test_fraction: float = 0.2,
        seed: int = 0,
        k: int = 5,
        batch_size: int = 64,
        modality: Optional[str] = None,
        linear: bool = True,
    ):
        if not 0 < test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if len(set(map(repr, labels))) < 2:
            raise DataError("classification evaluation needs at least two distinct labels")
        from sklearn.model_selection import train_test_split  # lazy: scikit-learn

        keys = [repr(y) for y in labels]
        idx = list(range(len(items)))
        try:
            tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=keys)
        except ValueError:  # a class with a single item cannot be stratified
            tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed)
        items, labels = list(items), list(labels)
        super().__init__(
            [items[i] for i in tr],
            [labels[i] for i in tr],
            [items[i] for i in te],
            [labels[i] for i in te],
            k=k,
            batch_size=batch_size,
            modality=modality,
            linear=linear,
        )
        if not linear:
            self.primary_metric = f"knn@{k}_accuracy"


def build_evaluator(
    eval_dataset: Any,
    kind: Optional[str] = None,
    columns: Optional[Mapping[str, str]] = None,
    batch_size: int = 64,
    file_extensions: Sequence[str] = (),
    seed: int = 0,
):
    """The evaluator for ``eval_dataset`` (see the module docstring); None for None."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"eval_kind must be one of {list(KINDS)} (or None: chosen from the columns), got {kind!r}")
    if eval_dataset is None:
        if kind is not None:
            raise ConfigError(f"eval_kind={kind!r} needs an eval_dataset")
        return None
    if callable(eval_dataset) and not isinstance(eval_dataset, (list, tuple, str)):
        if kind is not None:
            raise ConfigError("eval_kind applies to evaluation data, not to an evaluator object")
        return eval_dataset
    rows = to_rows(eval_dataset, columns, file_extensions)
    check_labels(rows)  # no missing or NaN label
    if kind is None:
        if "score" in rows.columns and rows.has_positive:
            kind = "sts"
        elif rows.has_positive:
            kind = "retrieval"
        elif rows.has_label:
            kind = "knn"
        else:
            raise DataError(
                f"eval_dataset needs pairs (anchor, positive) for retrieval metrics, a 'score' column for STS, or a "
                f"'label' column for kNN accuracy; its columns are {rows.columns}"
            )
    if kind == "sts":
        return STSEvaluator.from_rows(rows, batch_size=batch_size)
    if kind == "triplet":
        return TripletEvaluator.from_rows(rows, batch_size=batch_size)
    if kind == "reranking":
        return RerankingEvaluator.from_rows(rows, batch_size=batch_size)
    if kind == "retrieval":
        if not rows.has_positive:
            raise DataError(f"retrieval evaluation needs anchor and positive columns; the columns are {rows.columns}")
        return RetrievalEvaluator.from_pairs(rows, batch_size=batch_size)
    if not rows.has_label:
        raise DataError(f"{kind} evaluation needs a 'label' column; the columns are {rows.columns}")
    if kind == "knn":
        return KNNEvaluator(rows.column("anchor"), rows.column(LABEL), batch_size=batch_size)
    return ClassificationEvaluator(rows.column("anchor"), rows.column(LABEL), batch_size=batch_size, seed=seed)


def primary_metric(evaluator) -> Optional[str]:
    """The metric an evaluator is judged by (None when it does not say)."""
    name = getattr(evaluator, "primary_metric", None)
    if name is None and isinstance(evaluator, KNNEvaluator):  # its k is capped by the items it has
        return f"knn@{min(evaluator.k, len(evaluator.items) - 1)}_accuracy"
    return name
