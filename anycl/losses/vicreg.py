"""VICReg: variance, invariance and covariance regularisation of two views' embeddings.

Reference: Bardes, Ponce & LeCun 2022, "VICReg" (ICLR, arXiv:2105.04906).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import ContrastiveLoss, full_precision, negative_free_inputs
from .registry import register


def variance_term(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    r""":math:`v(Z) = \frac1d \sum_j \max(0, \gamma - \sqrt{\mathrm{Var}(z_{:,j}) + \epsilon})` (unbiased variance)."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    r""":math:`c(Z) = \frac1d \sum_{i \ne j} C(Z)_{ij}^2` with :math:`C` the (n−1)-normalised covariance."""
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


@register("vicreg")
class VICReg(ContrastiveLoss):
    r""":math:`L = \lambda\, s(Z, Z') + \mu\,[v(Z) + v(Z')] + \nu\,[c(Z) + c(Z')]`, with
    :math:`s` the mean squared distance between paired embeddings (summed over dimensions, averaged
    over the batch), :math:`v` the hinge on each dimension's standard deviation and :math:`c` the sum of
    squared off-diagonal covariances divided by the width.

    Args:
        invariance_weight: :math:`\lambda` (default 25). variance_weight: :math:`\mu` (default 25).
        covariance_weight: :math:`\nu` (default 1). gamma: target std :math:`\gamma` (default 1).
        eps: :math:`\epsilon` under the square root (default 1e-4).

    Inputs:
        anchor, positive: (B, D) un-normalised embeddings of two views, B ≥ 2 (statistics over the
        batch). Hard negatives are refused. Returns {"loss", "invariance", "variance", "covariance"}.

    Across processes (``distributed = "global"``): variance and covariance are whole-batch statistics,
    computed over the gathered global batch.
    """

    in_batch_negatives = False
    accepts_negatives = False
    negative_free = True
    distributed = "global"  # variance and covariance over the gathered global batch

    def __init__(
        self,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
    ):
        super().__init__()
        self.invariance_weight = float(invariance_weight)
        self.variance_weight = float(variance_weight)
        self.covariance_weight = float(covariance_weight)
        self.gamma = float(gamma)
        self.eps = float(eps)

    def forward(self, anchor, positive, negative=None, labels=None):
        z1, z2 = negative_free_inputs(
            anchor, positive, negative, "vicreg", "variance and covariance are batch statistics"
        )
        with full_precision(z1):
            inv = F.mse_loss(z1, z2, reduction="none").sum(-1).mean() / z1.shape[1]
            var = variance_term(z1, self.gamma, self.eps) + variance_term(z2, self.gamma, self.eps)
            cov = covariance_term(z1) + covariance_term(z2)
            loss = self.invariance_weight * inv + self.variance_weight * var + self.covariance_weight * cov
        return {"loss": loss, "invariance": inv.detach(), "variance": var.detach(), "covariance": cov.detach()}
