"""Losses for pairs labelled 1 (similar) or 0 (dissimilar): the ``label`` column says which, and there are
no in-batch negatives (each pair is scored on its own).

- ``contrastive`` (Hadsell, Chopra & LeCun 2006; sentence-transformers' ``ContrastiveLoss``):
  ``mean(½·(y·d² + (1 − y)·relu(margin − d)²))`` with d the distance of the pair's two embeddings:
  similar pairs are pulled together, dissimilar ones pushed at least ``margin`` apart.
- ``online_contrastive`` (sentence-transformers' ``OnlineContrastiveLoss``): the same terms, summed over the
  batch's *hard* pairs only: the positives farther apart than the closest negative, and the negatives
  closer than the farthest positive (with a single class in the batch, its mean distance is the threshold).

Distances (``metric``): ``"cosine"`` (1 − cosine, the default, as sentence-transformers), ``"euclidean"`` or
``"manhattan"`` (on the raw embeddings, as ``torch.nn.functional.pairwise_distance``). Labels are the
integers 0 and 1 (or booleans); ``fit`` refuses any other value before training, naming the row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ContrastiveLoss, as_float, check_pair, full_precision
from .registry import register

METRICS = ("cosine", "euclidean", "manhattan")


def pair_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """Row-wise distance (B,) of (B, D) embeddings, as sentence-transformers' ``SiameseDistanceMetric``."""
    if metric == "cosine":
        return 1 - F.cosine_similarity(a, b)
    if metric == "euclidean":
        return F.pairwise_distance(a, b, p=2)
    if metric == "manhattan":
        return F.pairwise_distance(a, b, p=1)
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def binary_labels(labels, batch: int, name: str) -> torch.Tensor:
    """The batch's labels as a (B,) float tensor of 0s and 1s, else a clear error."""
    if labels is None:
        raise ValueError(f"{name} needs a 'label' column (1: a similar pair, 0: a dissimilar one)")
    labels = torch.as_tensor(labels).view(-1)
    if labels.numel() != batch:
        raise ValueError(f"{name}: labels must give one value per pair ({batch}), got {labels.numel()}")
    bad = labels[(labels != 0) & (labels != 1)]
    if bad.numel():
        raise ValueError(f"{name}: labels must be 0 (dissimilar) or 1 (similar), got {bad[0].item()!r}")
    return labels.float()


class _LabelledPairs(ContrastiveLoss):
    in_batch_negatives = False
    accepts_negatives = False
    needs_labels = True
    label_values = (0, 1)
    name = "contrastive"

    def __init__(self, margin: float = 0.5, metric: str = "cosine"):
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"{self.name}: margin must be >= 0, got {margin}")
        if metric not in METRICS:
            raise ValueError(f"{self.name}: metric must be one of {METRICS}, got {metric!r}")
        self.margin = float(margin)
        self.metric = metric

    def inputs(self, anchor, positive, negative, labels):
        check_pair(anchor, positive, self.name)
        if negative is not None:
            raise ValueError(f"{self.name} scores labelled pairs and takes no hard negatives")
        a, p = as_float(anchor, positive)
        y = binary_labels(labels, a.shape[0], self.name).to(a.device)
        return pair_distance(a, p, self.metric), y


@register("contrastive", "contrastive_pairs")
class PairContrastive(_LabelledPairs):
    """``mean(½·(y·d² + (1 − y)·relu(margin − d)²))`` over labelled pairs (see the module docstring)."""

    def forward(self, anchor, positive, negative=None, labels=None):
        with full_precision(anchor):
            d, y = self.inputs(anchor, positive, negative, labels)
            return (0.5 * (y * d.pow(2) + (1 - y) * F.relu(self.margin - d).pow(2))).mean()


@register("online_contrastive")
class OnlineContrastive(_LabelledPairs):
    """The contrastive terms of the batch's hard positives and hard negatives, summed (see the module docstring)."""

    name = "online_contrastive"

    def forward(self, anchor, positive, negative=None, labels=None):
        with full_precision(anchor):
            d, y = self.inputs(anchor, positive, negative, labels)
            negs, poss = d[y == 0], d[y == 1]
            hard_negs = negs[negs < (poss.max() if len(poss) else negs.mean())]
            hard_poss = poss[poss > (negs.min() if len(negs) else poss.mean())]
            return hard_poss.pow(2).sum() + F.relu(self.margin - hard_negs).pow(2).sum()
