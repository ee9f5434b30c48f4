"""MegaBatchMargin (Wieting & Gimpel 2018, ParaNMT; sentence-transformers' ``MegaBatchMarginLoss``).

Each anchor's hardest negative is the most similar *other* positive of the (large) batch; the loss is
``mean(relu(positive_margin − cos(a_i, p_i)) + relu(max_{j≠i} cos(a_i, p_j) − negative_margin))``.
It takes (anchor, positive) pairs and no hard-negative column. sentence-transformers' mini-batched version
(``use_mini_batched_version=True``) computes the same value and gradients in pieces; in anycl the same
memory saving is ``fit(..., gradcache_mini_batch=N)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ContrastiveLoss, as_float, check_pair, full_precision
from .registry import register


@register("mega_batch_margin", "megabatch_margin")
class MegaBatchMargin(ContrastiveLoss):
    """Margins on each pair's cosine and on its hardest in-batch negative (see the module docstring).

    Args:
        positive_margin: a pair's cosine should reach it (default 0.8).
        negative_margin: the hardest negative's cosine should stay below it (default 0.3).
    """

    accepts_negatives = False

    def __init__(self, positive_margin: float = 0.8, negative_margin: float = 0.3):
        super().__init__()
        self.positive_margin = float(positive_margin)
        self.negative_margin = float(negative_margin)

    def forward(self, anchor, positive, negative=None, labels=None):
        check_pair(anchor, positive, "mega_batch_margin")
        if negative is not None:
            raise ValueError(
                "mega_batch_margin mines each anchor's negative from the batch's other positives and takes no "
                "hard-negative column; drop it, or use infonce"
            )
        if anchor.shape[0] < 2:
            raise ValueError("mega_batch_margin: needs a batch of at least 2 pairs (the negatives are the other pairs)")
        with full_precision(anchor):
            a, p = as_float(anchor, positive)
            cos = F.normalize(a, dim=1) @ F.normalize(p, dim=1).T
            eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
            hardest = cos.masked_fill(eye, float("-inf")).max(dim=1).values
            return (F.relu(self.positive_margin - cos.diagonal()) + F.relu(hardest - self.negative_margin)).mean()
