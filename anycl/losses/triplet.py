"""Triplet margin loss: the anchor should be closer to its positive than to a negative by a margin.

Reference: Schroff et al. 2015 (FaceNet); Weinberger & Saul 2009.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ContrastiveLoss, as_float, check_pair, negatives_3d
from .registry import register


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances between rows: x (..., D), y (..., D) broadcast → (...)."""
    if metric == "euclidean":
        return (x - y).pow(2).sum(-1).clamp_min(1e-12).sqrt()
    if metric == "cosine":
        return 1 - F.cosine_similarity(x, y, dim=-1)
    raise ValueError(f"triplet: metric must be 'euclidean' or 'cosine', got {metric!r}")


MINING = ("all", "batch_hard", "semi_hard")


def _masked_min(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(~valid, float("inf")).min(dim=1).values


def _masked_max(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(~valid, float("-inf")).max(dim=1).values


@register("triplet", "triplet_margin")
class TripletMargin(ContrastiveLoss):
    r""":math:`\max(0, d(a, p) - d(a, n) + m)`, averaged over triplets.

    Args:
        margin: :math:`m` (default 0.5).
        metric: ``"euclidean"`` (on L2-normalised embeddings when ``normalize``) or ``"cosine"``.
        normalize: L2-normalise embeddings first.
        mining: which negatives form the triplets (default ``"all"``):

            * ``"all"`` — with given negatives, each anchor with each of its own K negatives; without,
              all B·(B−1) in-batch triplets (every other row's positive is a negative).
            * ``"batch_hard"`` — one triplet per anchor: its hardest positive (its own, or with
              ``labels`` the farthest same-label positive) and its hardest negative (the closest
              other-label in-batch positive or own given negative). Hermans et al. 2017.
            * ``"semi_hard"`` — one triplet per anchor: the closest negative that is still farther
              than the positive (:math:`d(a,p) < d(a,n)`); if there is none, the farthest negative
              (as TensorFlow Addons does). Schroff et al. 2015.

    Inputs:
        anchor, positive: (B, D). negative: (B, K, D) or (B, D): each anchor's own negatives.
        labels: optional (B,): rows sharing a label are never each other's negatives.

    Reference: Schroff et al. 2015 (FaceNet, arXiv:1503.03832); Hermans et al. 2017 ("In Defense of the
    Triplet Loss", arXiv:1703.07737); Weinberger & Saul 2009.
    """

    def __init__(self, margin: float = 0.5, metric: str = "euclidean", normalize: bool = True, mining: str = "all"):
        super().__init__()
        if margin < 0:
            raise ValueError(f"triplet: margin must be >= 0, got {margin}")
        if mining not in MINING:
            raise ValueError(f"triplet: mining must be one of {MINING}, got {mining!r}")
        pairwise_distance(torch.zeros(1, 1), torch.ones(1, 1), metric)  # validates metric early
        self.margin = float(margin)
        self.metric = metric
        self.normalize = bool(normalize)
        self.mining = mining

    def forward(self, anchor, positive, negative=None, labels=None):
        check_pair(anchor, positive, "triplet")
        anchor, positive, negative = as_float(anchor, positive, negative)
        batch, dim = anchor.shape
        negative = negatives_3d(negative, batch, dim, "triplet")
        if self.normalize:
            anchor, positive = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
            negative = None if negative is None else F.normalize(negative, dim=-1)
        d_pos = pairwise_distance(anchor, positive, self.metric)  # (B,)
        if negative is not None and self.mining == "all":
            d_neg = pairwise_distance(anchor.unsqueeze(1), negative, self.metric)  # (B, K)
            return F.relu(d_pos.unsqueeze(1) - d_neg + self.margin).mean()
        if batch < 2 and negative is None:
            raise ValueError("triplet: in-batch negatives need a batch of at least 2 pairs")
        d_all = pairwise_distance(anchor.unsqueeze(1), positive.unsqueeze(0), self.metric)  # (B, B)
        eye = torch.eye(batch, dtype=torch.bool, device=anchor.device)
        same = eye if labels is None else (labels.view(-1, 1) == labels.view(1, -1)) | eye
        valid = ~same
        if self.mining == "all":
            hinge = F.relu(d_pos.unsqueeze(1) - d_all + self.margin)
            return hinge[valid].mean() if valid.any() else hinge.sum() * 0
        d_an, valid_an = d_all, valid
        if negative is not None:
            d_neg = pairwise_distance(anchor.unsqueeze(1), negative, self.metric)  # (B, K)
            d_an = torch.cat([d_all, d_neg], dim=1)
            valid_an = torch.cat([valid, torch.ones_like(d_neg, dtype=torch.bool)], dim=1)
        has_neg = valid_an.any(dim=1)
        if self.mining == "batch_hard":
            d_ap = _masked_max(d_all, same) if labels is not None else d_pos
            d_n = _masked_min(d_an, valid_an)
        else:  # semi_hard
            d_ap = d_pos
            farther = valid_an & (d_an > d_ap.unsqueeze(1))
            d_n = torch.where(farther.any(dim=1), _masked_min(d_an, farther), _masked_max(d_an, valid_an))
        if not has_neg.any():
            return d_pos.sum() * 0
        return F.relu(d_ap - d_n + self.margin)[has_neg].mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}, metric={self.metric!r}, mining={self.mining!r}"
