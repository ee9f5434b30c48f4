"""Sigmoid pairwise loss (SigLIP): every (anchor, candidate) pair is an independent binary decision.

Reference: Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training" (ICCV, arXiv:2303.15343).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ContrastiveLoss, full_precision, pair_inputs, register, same_label_mask


@register("siglip", "sigmoid")
class SigLIP(ContrastiveLoss):
    r"""With :math:`x, y` the L2-normalised anchors and candidates, :math:`t = e^{t'}` and bias :math:`b`:

    .. math:: L = -\frac{1}{B} \sum_{i} \sum_{j} \log \sigma\big(z_{ij}\,(t\, x_i \cdot y_j + b)\big)

    with :math:`z_{ij} = 1` for the positive pair (and for same-label pairs when ``labels`` are given)
    and :math:`-1` otherwise.

    Args:
        temperature: initial :math:`1/t` (default 0.1, i.e. :math:`t = 10`, :math:`t' = \log 10`,
            the paper's initialisation).
        bias: initial :math:`b` (default −10, the paper's: it offsets the many negatives at the start).
        learnable: train :math:`t'` and :math:`b` (default True); else they stay fixed.

    Inputs:
        anchor, positive: (B, D). negative: optional (B, K, D) hard negatives, queue: optional (M, D):
        extra candidates, negatives of every anchor. labels: optional (B,).
    """

    def __init__(self, temperature: float = 0.1, bias: float = -10.0, learnable: bool = True):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"siglip: temperature must be > 0, got {temperature}")
        t_prime = torch.tensor(math.log(1.0 / temperature))
        b = torch.tensor(float(bias))
        if learnable:
            self.t_prime, self.bias = nn.Parameter(t_prime), nn.Parameter(b)
        else:
            self.register_buffer("t_prime", t_prime)
            self.register_buffer("bias", b)

    def forward(self, anchor, positive, negative=None, labels=None, queue=None):
        anchor, positive, extra = pair_inputs(anchor, positive, negative, queue, "siglip")
        batch = anchor.shape[0]
        with full_precision(anchor):
            x = F.normalize(anchor, dim=-1)
            y = F.normalize(positive, dim=-1)
            if extra is not None:
                y = torch.cat([y, F.normalize(extra, dim=-1)])
            logits = (x * self.t_prime.float().exp()) @ y.T + self.bias.float()
            z = -torch.ones_like(logits)
            pos = torch.eye(batch, dtype=torch.bool, device=x.device)
            same = same_label_mask(labels, batch, x.device)
            if same is not None:
                pos = pos | same
            z[:, :batch] = torch.where(pos, 1.0, -1.0)
            return -F.logsigmoid(z * logits).sum() / batch

    def extra_repr(self) -> str:
        return f"t={float(self.t_prime.detach().exp()):.4g}, bias={float(self.bias.detach()):.4g}"
