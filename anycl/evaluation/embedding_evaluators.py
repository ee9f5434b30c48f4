"""Evaluation: retrieval metrics over a corpus, and kNN accuracy for labelled items.

Evaluators are callables ``evaluator(model) -> {metric: value}``; ``fit(eval_dataset=...)`` builds one
from the evaluation data (pairs → retrieval, items with labels → kNN accuracy).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Set

import numpy as np
import torch
import torch.nn.functional as F

from anycl.data.inputs import LABEL, Rows, to_rows
from anycl.errors import DataError
from anycl.model.embed import embed_all
from anycl.progress import phase_bar
from anycl.search.exact import retrieval_metrics, topk  # noqa: F401  (retrieval_metrics: re-exported, its home is search)


def _encode_all(model, groups, batch_size: int, show_progress: bool):
    """Embed each (items, modality[, side]) group under one progress bar (:func:`anycl.model.embed.embed_all`);
    a group naming a side gets that side's prompt (``anycl.data.prompts``)."""
    with phase_bar(show_progress, sum(len(g[0]) for g in groups), "evaluate") as bar:
        return [
            embed_all(model, items, side=side[0] if side else None, modality=m, batch_size=batch_size, bar=bar)
            for items, m, *side in groups
        ]


def at_widths(metrics_of, q: torch.Tensor, c: torch.Tensor, truncate_dims: Sequence[int]) -> Dict[str, float]:
    """``metrics_of(q, c)`` at full width, then at each width in ``truncate_dims`` (prefixes,
    re-normalised; Matryoshka models) with the metric names suffixed ``_dim<d>``."""
    out = dict(metrics_of(q, c))
    for d in truncate_dims:
        sub = metrics_of(F.normalize(q[:, :d], dim=-1), F.normalize(c[:, :d], dim=-1))
        out.update({f"{k}_dim{d}": v for k, v in sub.items()})
    return out


class RetrievalEvaluator:
    """Scores a model on retrieving each query's relevant documents from a corpus.

    Args:
        queries: query items. corpus: document items. relevant: per query, relevant corpus indices.
        query_modality / corpus_modality: towers to embed each side with (default: anchor / positive).
    """

    show_progress = False  # the trainer sets it from the `progress` option: one bar per evaluation
    truncate_dims: Sequence[int] = ()  # also report metrics at these widths (fit sets matryoshka_dims)
    primary_metric = "ndcg@10"  # what early stopping / keep_best=True watch (anycl.evaluation.pair_evaluators)

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
    def from_pairs(cls, rows: Rows, **kwargs) -> RetrievalEvaluator:
        """Queries are the distinct anchors; the corpus is every distinct positive and negative."""
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

    def __call__(self, model) -> Dict[str, float]:
        qm = self.query_modality or model.sides.get("anchor")
        cm = self.corpus_modality or model.sides.get("positive")
        q, c = _encode_all(
            model, [(self.queries, qm, "anchor"), (self.corpus, cm, "positive")], self.batch_size, self.show_progress
        )
        return at_widths(lambda a, b: retrieval_metrics(a, b, self.relevant, self.ks), q, c, self.truncate_dims)


def knn_votes(
    scores: torch.Tensor, neighbour_labels: torch.Tensor, num_classes: int, temperature: Optional[float] = None
) -> torch.Tensor:
    """Class votes (N, C) from the k neighbours' cosine ``scores`` (N, k) and labels (N, k).

    ``temperature=None``: one vote each (nearer neighbours break ties); otherwise each neighbour votes
    ``exp(score / temperature)`` (Wu et al. 2018, the weighted kNN of the SimCLR/DINO literature).
    """
    if temperature is None:
        weights = torch.linspace(1.0, 0.9, scores.shape[1]).expand_as(scores)
    else:
        if not temperature > 0:
            raise ValueError(f"kNN temperature must be > 0, got {temperature}")
        weights = (scores.float() / temperature).exp()
    votes = torch.zeros(scores.shape[0], num_classes)
    votes.scatter_add_(1, neighbour_labels, weights.contiguous().float())
    return votes


def knn_accuracy(
    train_emb: torch.Tensor,
    train_labels: Sequence[Any],
    test_emb: torch.Tensor,
    test_labels: Sequence[Any],
    k: int = 5,
    temperature: Optional[float] = None,
) -> float:
    """Accuracy of a vote among the k nearest (cosine) training items for each test item.

    Embeddings are expected L2-normalised. ``temperature=None``: majority vote, ties to the nearest
    label; a value (0.07–0.1 is usual): votes weighted by ``exp(cosine / temperature)``.
    """
    names = sorted(set(train_labels) | set(test_labels), key=repr)
    index = {n: i for i, n in enumerate(names)}
    ytr = torch.tensor([index[y] for y in train_labels])
    yte = torch.tensor([index[y] for y in test_labels])
    scores, nn_idx = topk(test_emb, train_emb, min(k, train_emb.shape[0]), chunk_size=4096, corpus_chunk_size=None)
    votes = knn_votes(scores, ytr[nn_idx], len(names), temperature)
    return float((votes.argmax(1) == yte).float().mean())


class KNNEvaluator:
    """Leave-one-out kNN accuracy over labelled items (each item's neighbours exclude itself)."""

    show_progress = False  # the trainer sets it from the `progress` option: one bar per evaluation
    truncate_dims: Sequence[int] = ()  # also report accuracy at these widths (fit sets matryoshka_dims)

    def __init__(
        self,
        items: Sequence[Any],
        labels: Sequence[Any],
        k: int = 5,
        batch_size: int = 64,
        modality: Optional[str] = None,
        temperature: Optional[float] = None,
    ):
        if len(set(map(repr, labels))) < 2:
            raise ValueError("kNN evaluation needs at least two distinct labels")
        self.items, self.labels, self.k, self.batch_size, self.modality = (
            list(items),
            list(labels),
            k,
            batch_size,
            modality,
        )
        self.temperature = temperature

    def __call__(self, model) -> Dict[str, float]:
        (emb,) = _encode_all(model, [(self.items, self.modality, "anchor")], self.batch_size, self.show_progress)
        return at_widths(lambda e, _: self._accuracy(e), emb, emb, self.truncate_dims)

    def _accuracy(self, emb: torch.Tensor) -> Dict[str, float]:
        names = sorted(set(self.labels), key=repr)
        index = {n: i for i, n in enumerate(names)}
        y = torch.tensor([index[v] for v in self.labels])
        k = min(self.k, len(self.items) - 1)
        scores, idx = topk(
            emb, emb, k, exclude=[[i] for i in range(len(emb))], chunk_size=4096, corpus_chunk_size=None
        )  # each item's neighbours exclude itself
        votes = knn_votes(scores, y[idx], len(names), self.temperature)
        return {f"knn@{k}_accuracy": float((votes.argmax(1) == y).float().mean())}


def evaluator_for(
    eval_dataset: Any,
    columns: Optional[Mapping[str, str]] = None,
    batch_size: int = 64,
    file_extensions: Sequence[str] = (),
):
    """Build an evaluator from evaluation data: a callable is used as it is; pairs give retrieval
    metrics; items with labels give kNN accuracy."""
    if eval_dataset is None or callable(eval_dataset) and not isinstance(eval_dataset, (list, tuple, str)):
        return eval_dataset
    rows = to_rows(eval_dataset, columns, file_extensions)
    if rows.has_positive:
        return RetrievalEvaluator.from_pairs(rows, batch_size=batch_size)
    if rows.has_label:
        return KNNEvaluator(rows.column("anchor"), rows.column(LABEL), batch_size=batch_size)

    raise DataError(
        f"eval_dataset needs pairs (anchor, positive) for retrieval metrics or a 'label' column for kNN "
        f"accuracy; its columns are {rows.columns}"
    )


def linear_probe_accuracy(
    train_emb: torch.Tensor,
    train_labels: Sequence[Any],
    test_emb: torch.Tensor,
    test_labels: Sequence[Any],
    C: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
) -> float:
    """Accuracy of a logistic regression trained on frozen (standardised) embeddings."""
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn: slow to import, only where it is used
    from sklearn.pipeline import make_pipeline  # lazy: scikit-learn: slow to import, only where it is used
    from sklearn.preprocessing import StandardScaler  # lazy: scikit-learn: slow to import, only where it is used

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    clf.fit(np.asarray(train_emb, dtype=np.float64), [repr(y) for y in train_labels])
    return float(clf.score(np.asarray(test_emb, dtype=np.float64), [repr(y) for y in test_labels]))


class ProbeEvaluator:
    """kNN and linear-probe accuracy of frozen embeddings on a labelled train/test split.

    Args:
        train_items, train_labels, test_items, test_labels: the labelled split.
        k: neighbours for kNN. modality: tower to embed with.
    """

    show_progress = False  # the trainer sets it from the `progress` option: one bar per evaluation

    def __init__(
        self,
        train_items,
        train_labels,
        test_items,
        test_labels,
        k: int = 5,
        batch_size: int = 64,
        modality: Optional[str] = None,
        linear: bool = True,
        temperature: Optional[float] = None,
    ):
        self.train_items, self.train_labels = list(train_items), list(train_labels)
        self.test_items, self.test_labels = list(test_items), list(test_labels)
        self.k, self.batch_size, self.modality, self.linear = k, batch_size, modality, linear
        self.temperature = temperature

    def __call__(self, model) -> Dict[str, float]:
        tr, te = _encode_all(
            model,
            [(self.train_items, self.modality), (self.test_items, self.modality)],
            self.batch_size,
            self.show_progress,
        )
        out = {
            f"knn@{self.k}_accuracy": knn_accuracy(
                tr, self.train_labels, te, self.test_labels, self.k, self.temperature
            )
        }
        if self.linear:
            out["linear_probe_accuracy"] = linear_probe_accuracy(tr, self.train_labels, te, self.test_labels)
        return out
