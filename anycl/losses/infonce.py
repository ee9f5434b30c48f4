"""InfoNCE (NT-Xent, MultipleNegativesRanking): pick each anchor's positive out of a set of candidates.

Reference: van den Oord et al. 2018 (CPC); Chen et al. 2020 (SimCLR); Henderson et al. 2017 (MNRL).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import ContrastiveLoss, as_float, check_pair, negatives_3d, register

# A finite "minus infinity": masking with -inf makes a row of all-masked logits NaN.
MASK_VALUE = -1e4


@register("infonce", "ntxent", "nt_xent", "mnrl", "multiple_negatives_ranking")
class InfoNCE(ContrastiveLoss):
    r"""Cross-entropy over cosine similarities divided by a temperature.

    For anchor :math:`a_i`, its positive :math:`p_i` and candidates :math:`c_j` (all positives of the
    batch, then every given hard negative of every row):

    .. math:: \ell_i = -\log \frac{\exp(\cos(a_i, p_i)/\tau)}{\sum_j \exp(\cos(a_i, c_j)/\tau)}

    Args:
        temperature: :math:`\tau`; 0.05 suits fine-tuning sentence embeddings, 0.1–0.5 pretraining
            from augmented views.
        symmetric: also score each positive against all anchors (CLIP's two directions) and average.
        normalize: L2-normalise embeddings first (cosine similarity). Turn off for dot products.

    Inputs:
        anchor: (B, D). positive: (B, D). negative: optional (B, K, D) or (B, D) hard negatives; every
        row's negatives are candidates for every anchor. labels: optional (B,); in-batch candidates
        sharing the anchor's label (other than its own positive) are masked out as false negatives.
        rows: optional slice of the anchors to score (the mean over them is returned). Across
        processes each process scores its own anchors against all gathered candidates
        (``distributed = "rows"``, see :mod:`anycl.distributed`).

    >>> loss = InfoNCE(temperature=0.05)
    >>> a = torch.randn(8, 16); loss(a, a + 0.01 * torch.randn(8, 16)).item() < 0.1
    True
    """

    distributed = "rows"  # a mean of per-anchor terms: each process scores its own anchors

    def __init__(self, temperature: float = 0.05, symmetric: bool = False, normalize: bool = True):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"infonce: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.symmetric = bool(symmetric)
        self.normalize = bool(normalize)

    def forward(self, anchor, positive, negative=None, labels=None, rows=None):
        check_pair(anchor, positive, "infonce")
        anchor, positive, negative = as_float(anchor, positive, negative)
        batch, dim = anchor.shape
        negative = negatives_3d(negative, batch, dim, "infonce")
        if self.normalize:
            anchor = F.normalize(anchor, dim=-1)
            positive = F.normalize(positive, dim=-1)
            negative = None if negative is None else F.normalize(negative, dim=-1)
        rows = slice(0, batch) if rows is None else rows
        targets = torch.arange(batch, device=anchor.device)[rows]  # the scored anchors' own positives
        candidates = positive if negative is None else torch.cat([positive, negative.reshape(-1, dim)])
        logits = anchor[rows] @ candidates.T / self.temperature  # (b, B + B*K)
        if labels is not None:
            same = labels[rows].view(-1, 1) == labels.view(1, -1)  # (b, B)
            same[torch.arange(len(targets)), targets] = False
            logits = logits.clone()
            logits[:, :batch] = logits[:, :batch].masked_fill(same, MASK_VALUE)
        loss = F.cross_entropy(logits, targets)
        if self.symmetric:
            back = positive[rows] @ anchor.T / self.temperature
            if labels is not None:
                back = back.masked_fill(same, MASK_VALUE)
            loss = 0.5 * (loss + F.cross_entropy(back, targets))
        return loss

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, symmetric={self.symmetric}"
