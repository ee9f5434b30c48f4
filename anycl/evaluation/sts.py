"""Semantic textual similarity (any modality): Spearman and Pearson correlation of cos(anchor, positive) with
gold ``score``s (``sts_spearman``, ``sts_pearson``). The default for pairs with a ``score`` column."""

from __future__ import annotations

import math
from typing import Any, Dict, Sequence

import torch

from anycl.data.inputs import Rows
from anycl.errors import DataError

from .base import Evaluator, register


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


@register("sts")
class STSEvaluator(Evaluator):
    """Spearman (and Pearson) correlation of cos(sentence1, sentence2) with gold ``scores``."""

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
    def from_rows(cls, rows: Rows, batch_size: int = 64) -> STSEvaluator:
        if not rows.has_positive or "score" not in rows.columns:
            raise DataError(f"STS evaluation needs anchor, positive and score columns; the columns are {rows.columns}")
        return cls(rows.column("anchor"), rows.column("positive"), rows.column("score"), batch_size=batch_size)

    @staticmethod
    def metrics(emb1: torch.Tensor, emb2: torch.Tensor, scores: torch.Tensor) -> Dict[str, float]:
        cos = torch.nn.functional.cosine_similarity(emb1.double(), emb2.double(), dim=1)
        return {"sts_spearman": spearman(cos, scores), "sts_pearson": pearson(cos, scores)}

    def __call__(self, model) -> Dict[str, float]:
        m1, m2 = model.sides.get("anchor"), model.sides.get("positive")
        e1, e2 = self.embed(model, [(self.items1, m1), (self.items2, m2)])
        return self.metrics(e1, e2, self.scores)
