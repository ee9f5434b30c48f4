"""Triplet margin loss: the anchor should be closer to its positive than to a negative by a margin.

Reference: Schroff et al. 2015 (FaceNet); Weinberger & Saul 2009.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import ContrastiveLoss, as_float, check_pair, negatives_3d, register


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances between rows: x (..., D), y (..., D) broadcast → (...)."""
    if metric == "euclidean":
        return (x - y).pow(2).sum(-1).clamp_min(1e-12).sqrt()
    if metric == "cosine":
        return 1 - F.cosine_similarity(x, y, dim=-1)
    raise ValueError(f"triplet: metric must be 'euclidean' or 'cosine', got {metric!r}")


@register("triplet", "triplet_margin")
class TripletMargin(ContrastiveLoss):
    r""":math:`\max(0, d(a, p) - d(a, n) + m)`, averaged over triplets.

    Args:
        margin: :math:`m`.
        metric: ``"euclidean"`` (on L2-normalised embeddings when ``normalize``) or ``"cosine"``.
        normalize: L2-normalise embeddings first.

    Inputs:
        anchor, positive: (B, D). negative: (B, K, D) or (B, D): each anchor is compared with its own K
        negatives. Without negatives, every other row's positive is a negative of the anchor (all
        B·(B-1) in-batch triplets, averaged).
    """

    def __init__(self, margin: float = 0.5, metric: str = "euclidean", normalize: bool = True):
        super().__init__()
        if margin < 0:
            raise ValueError(f"triplet: margin must be >= 0, got {margin}")
        pairwise_distance(torch.zeros(1, 1), torch.ones(1, 1), metric)  # validates metric early
        self.margin = float(margin)
        self.metric = metric
        self.normalize = bool(normalize)

    def forward(self, anchor, positive, negative=None, labels=None):
        check_pair(anchor, positive, "triplet")
        anchor, positive, negative = as_float(anchor, positive, negative)
        batch, dim = anchor.shape
        negative = negatives_3d(negative, batch, dim, "triplet")
        if self.normalize:
            anchor, positive = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
            negative = None if negative is None else F.normalize(negative, dim=-1)
        d_pos = pairwise_distance(anchor, positive, self.metric)  # (B,)
        if negative is not None:
            d_neg = pairwise_distance(anchor.unsqueeze(1), negative, self.metric)  # (B, K)
            return F.relu(d_pos.unsqueeze(1) - d_neg + self.margin).mean()
        if batch < 2:
            raise ValueError("triplet: in-batch negatives need a batch of at least 2 pairs")
        d_all = pairwise_distance(anchor.unsqueeze(1), positive.unsqueeze(0), self.metric)  # (B, B)
        valid = ~torch.eye(batch, dtype=torch.bool, device=anchor.device)
        if labels is not None:
            valid &= labels.view(-1, 1) != labels.view(1, -1)
        hinge = F.relu(d_pos.unsqueeze(1) - d_all + self.margin)
        return hinge[valid].mean() if valid.any() else hinge.sum() * 0

    def extra_repr(self) -> str:
        return f"margin={self.margin}, metric={self.metric!r}"
