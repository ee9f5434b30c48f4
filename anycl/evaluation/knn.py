"""kNN accuracy of labelled items: each item's class by a vote among its k nearest (cosine) neighbours.
The default for items with a ``label``: leave-one-out (each item's neighbours exclude itself)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from anycl.data.inputs import LABEL, Rows
from anycl.data.item_checks import check_labels
from anycl.errors import DataError
from anycl.search.exact import topk

from .base import Evaluator, at_widths, register


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


def knn_hits(
    train_emb: torch.Tensor,
    train_labels: Sequence[Any],
    test_emb: torch.Tensor,
    test_labels: Sequence[Any],
    k: int = 5,
    temperature: Optional[float] = None,
) -> torch.Tensor:
    """(N,) bool: whether each test item's vote among its k nearest (cosine) training items is its label
    (:func:`knn_accuracy` is their mean; per item, for paired intervals between two encoders on one split)."""
    names = sorted(set(train_labels) | set(test_labels), key=repr)
    index = {n: i for i, n in enumerate(names)}
    ytr = torch.tensor([index[y] for y in train_labels])
    yte = torch.tensor([index[y] for y in test_labels])
    scores, nn_idx = topk(test_emb, train_emb, min(k, train_emb.shape[0]), chunk_size=4096, corpus_chunk_size=None)
    votes = knn_votes(scores, ytr[nn_idx], len(names), temperature)
    return votes.argmax(1) == yte


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
    return float(knn_hits(train_emb, train_labels, test_emb, test_labels, k, temperature).float().mean())


def labelled(rows: Rows, what: str) -> Tuple[List[Any], List[Any]]:
    """(items, labels) of labelled rows; DataError naming ``what`` without a label column, and naming the row of a
    missing or NaN label."""
    if not rows.has_label:
        raise DataError(f"{what} needs a 'label' column; the columns are {rows.columns}")
    check_labels(rows)
    return rows.column("anchor"), rows.column(LABEL)


@register("knn")
class KNNEvaluator(Evaluator):
    """Leave-one-out kNN accuracy over labelled items (each item's neighbours exclude itself)."""

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
        self.items, self.labels, self.k, self.batch_size = list(items), list(labels), k, batch_size
        self.modality, self.temperature = modality, temperature
        self.primary_metric = f"knn@{min(k, len(self.items) - 1)}_accuracy"  # k is capped by the items

    @classmethod
    def from_rows(cls, rows: Rows, k: int = 5, batch_size: int = 64) -> KNNEvaluator:
        return cls(*labelled(rows, "knn evaluation"), k=k, batch_size=batch_size)

    def describe(self, rows: int) -> str:
        return f"leave-one-out kNN: {rows} labelled items"

    def __call__(self, model) -> Dict[str, float]:
        (emb,) = self.embed(model, [(self.items, self.modality, "anchor")])
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
