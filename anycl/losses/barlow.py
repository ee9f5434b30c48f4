"""Barlow Twins: make the cross-correlation matrix of two views' standardised embeddings the identity.

Reference: Zbontar et al. 2021, "Barlow Twins" (ICML, arXiv:2103.03230).
"""

from __future__ import annotations

import torch

from .base import ContrastiveLoss, full_precision, negative_free_inputs
from .registry import register


@register("barlow_twins", "barlow", "barlowtwins")
class BarlowTwins(ContrastiveLoss):
    r"""With :math:`\hat z` each view standardised over the batch (mean 0, biased std 1, as
    ``BatchNorm1d(affine=False)`` does) and :math:`C = \hat z_1^\top \hat z_2 / B`:

    .. math:: L = \sum_i (1 - C_{ii})^2 + \lambda \sum_i \sum_{j \ne i} C_{ij}^2

    Args:
        lambda_: :math:`\lambda` (default 5e-3, the paper's). ``lambd`` is accepted as an alias.
        eps: added to the std before dividing (default 1e-5, BatchNorm's).

    Inputs:
        anchor, positive: (B, D) embeddings of two views, B ≥ 2. Hard negatives are refused.
        Returns {"loss", "on_diagonal", "off_diagonal"}.

    Across processes (``distributed = "global"``): the standardisation and :math:`C` are computed
    over the gathered global batch.
    """

    in_batch_negatives = False
    accepts_negatives = False
    negative_free = True
    distributed = "global"  # standardisation and C are whole-batch statistics

    def __init__(self, lambda_: float = 5e-3, eps: float = 1e-5, lambd=None):
        super().__init__()
        self.lambda_ = float(lambd if lambd is not None else lambda_)
        self.eps = float(eps)

    def forward(self, anchor, positive, negative=None, labels=None):
        z1, z2 = negative_free_inputs(anchor, positive, negative, "barlow_twins", "standardisation over the batch")
        with full_precision(z1):
            n = z1.shape[0]
            z1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + self.eps)
            z2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + self.eps)
            c = z1.T @ z2 / n
            diag = torch.diagonal(c)
            on = (1 - diag).pow(2).sum()
            off = c.pow(2).sum() - diag.pow(2).sum()
            loss = on + self.lambda_ * off
        return {"loss": loss, "on_diagonal": on.detach(), "off_diagonal": off.detach()}
