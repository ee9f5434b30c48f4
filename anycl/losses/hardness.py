r"""Hardness-weighted InfoNCE: the cross-entropy with the negatives' terms of the denominator reweighted.

Robinson et al. 2021, "Contrastive learning with hard negative samples" (arXiv:2010.04592): importance
weights :math:`w_{ij} \propto e^{\beta s_{ij}}` turn the uniform average over negatives into one that
favours hard negatives (their debiasing term, for unlabelled positives among the negatives, is not used).
:class:`anycl.losses.InfoNCE` calls this for ``hardness_weight > 0``.
"""

from __future__ import annotations

from typing import Optional

import torch

from .base import MASK_VALUE


def hardness_log_weights(sims: torch.Tensor, negs: torch.Tensor, beta: float) -> torch.Tensor:
    r""":math:`\log w_{ij}`, :math:`w_{ij} = |N_i| e^{\beta s_{ij}} / \sum_{k \in N_i} e^{\beta s_{ik}}` on the negatives
    ``negs`` marks (mean 1 over each row's), 0 elsewhere and on rows without negatives; no gradient."""
    with torch.no_grad():
        hard = (beta * sims).masked_fill(~negs, float("-inf"))
        count = negs.sum(dim=1, keepdim=True).clamp(min=1)
        log_w = hard - torch.logsumexp(hard, dim=1, keepdim=True) + count.to(hard.dtype).log()
        return torch.where(negs, log_w, torch.zeros_like(log_w)).nan_to_num(0.0)


def hardness_weighted_ce(
    q: torch.Tensor,
    cands: torch.Tensor,
    scale: torch.Tensor,
    false_neg: Optional[torch.Tensor],
    offset: int,
    beta: float,
) -> torch.Tensor:
    r"""Summed hardness-weighted cross-entropy (see ``InfoNCE(hardness_weight=β)``): the negatives'
    exponentials in the denominator are multiplied by detached weights
    :math:`w_{ij} = M_i \exp(\beta s_{ij}) / \sum_{k \in N_i} \exp(\beta s_{ik})` (mean 1 over the
    row's unmasked negatives :math:`N_i`, :math:`M_i = |N_i|`), i.e. :math:`\log w_{ij}` is added to the
    negatives' logits."""
    n = q.shape[0]
    ar = torch.arange(n, device=q.device)
    cols = ar + offset
    sims = q @ cands.T
    logits = sims * scale
    masked = torch.zeros_like(logits, dtype=torch.bool)
    if false_neg is not None:
        masked[:, : false_neg.shape[1]] = false_neg
    negs = ~masked
    negs[ar, cols] = False
    bias = hardness_log_weights(sims, negs, beta)
    shifted = (logits + bias).masked_fill(masked, MASK_VALUE)
    return (torch.logsumexp(shifted, dim=1) - logits[ar, cols]).sum()
