"""Triplet accuracy (``triplet_accuracy``): the share of (anchor, positive, negative) whose anchor is closer
(cosine) to the positive than to the negative, every negative column counted."""

from __future__ import annotations

from typing import Any, Dict, Sequence

import torch

from anycl.data.inputs import Rows
from anycl.errors import DataError

from .base import Evaluator, register


@register("triplet")
class TripletEvaluator(Evaluator):
    """Share of triplets whose anchor is closer (cosine) to the positive than to the negative."""

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
    def from_rows(cls, rows: Rows, batch_size: int = 64) -> TripletEvaluator:
        if not rows.has_positive or not rows.negatives:
            raise DataError(
                f"triplet evaluation needs anchor, positive and negative columns; the columns are {rows.columns}"
            )
        negs = [list(t) for t in zip(*[rows.column(c) for c in rows.negatives])]
        return cls(rows.column("anchor"), rows.column("positive"), negs, batch_size=batch_size)

    @staticmethod
    def metrics(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> Dict[str, float]:
        """a, p: (B, D); n: (B, K, D)."""
        cos = torch.nn.functional.cosine_similarity
        pos = cos(a, p, dim=1).unsqueeze(1)
        neg = cos(a.unsqueeze(1).expand_as(n), n, dim=2)
        return {"triplet_accuracy": float((pos > neg).double().mean())}

    def __call__(self, model) -> Dict[str, float]:
        ma, mp = model.sides.get("anchor"), model.sides.get("positive")
        mn = model.sides.get("negative", mp)
        flat = [x for ns in self.negatives for x in ns]
        k = len(self.negatives[0])
        if any(len(ns) != k for ns in self.negatives):
            raise DataError("triplet evaluation needs the same number of negatives per anchor")
        a, p, n = self.embed(model, [(self.anchors, ma), (self.positives, mp), (flat, mn)])
        return self.metrics(a, p, n.view(len(self.anchors), k, -1))
