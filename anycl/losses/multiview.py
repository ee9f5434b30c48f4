"""InfoNCE over every pair of views: the multi-view (multi-crop) form of SimCLR/CMC.

With :math:`V` global views and :math:`L` local views of each of :math:`B` items, every view
:math:`a` is an anchor against every *global* view :math:`g \\ne a` (local views are never targets:
as in multi-crop SwAV/DINO, small crops predict large ones, not the reverse). For one such pair the
candidates are view :math:`g` of every item of the batch:

.. math:: \\ell_{a \\to g} = -\\frac1B \\sum_i \\log \\frac{\\exp(\\cos(z^a_i, z^g_i)/\\tau)}
          {\\sum_j \\exp(\\cos(z^a_i, z^g_j)/\\tau)}, \\qquad
          L = \\frac{1}{|P|} \\sum_{(a, g) \\in P} \\ell_{a \\to g}

With two global views and no local ones this is symmetric InfoNCE (``infonce`` with
``symmetric=True``). References: Tian et al. 2020, "Contrastive Multiview Coding" (the full graph of
view pairs, arXiv:1906.05849); Caron et al. 2020, "Unsupervised Learning of Visual Features by
Contrasting Cluster Assignments" (multi-crop, arXiv:2006.09882).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from .registry import ContrastiveLoss, Temperature, as_float, check_pair, full_precision, register


def view_pairs(num_global: int, num_local: int) -> List[Tuple[int, int]]:
    """(anchor view, target view) index pairs: every view against every other *global* view.
    Views are numbered globals first (0..V-1), then locals (V..V+L-1)."""
    return [(a, g) for a in range(num_global + num_local) for g in range(num_global) if a != g]


def check_views(global_views: torch.Tensor, local_views: Optional[torch.Tensor], name: str) -> None:
    if global_views.dim() != 3 or global_views.shape[0] < 2:
        raise ValueError(f"{name}: global views must be (V >= 2, B, D), got {tuple(global_views.shape)}")
    if local_views is not None and (local_views.dim() != 3 or local_views.shape[1:] != global_views.shape[1:]):
        raise ValueError(
            f"{name}: local views must be (L, B, D) with B, D = {tuple(global_views.shape[1:])}, got "
            f"{tuple(local_views.shape)}"
        )


@register("multiview_infonce", "multiview")
class MultiViewInfoNCE(ContrastiveLoss):
    r"""InfoNCE averaged over every (view, other global view) pair (see the module docstring).

    Args:
        temperature: :math:`\tau` (default 0.1). learn_temperature: make τ a parameter (CLIP style).

    Inputs (``forward_views``, what ``fit(..., views=V, local_views=L)`` calls): global views
    (V, B, D), local views (L, B, D) or None. The pairwise ``forward(anchor, positive)`` is the V = 2 case.

    >>> loss = MultiViewInfoNCE(temperature=0.1)
    >>> z = torch.randn(4, 8, 16)  # 4 views of 8 items
    >>> float(loss.forward_views(z[:3], z[3:])) > 0
    True
    """

    accepts_negatives = False
    distributed = "local"  # multi-view batches are scored within each process (docs/image.md)

    def __init__(self, temperature: float = 0.1, learn_temperature: bool = False):
        super().__init__()
        self.temperature = Temperature(temperature, learn_temperature, name="multiview_infonce")

    def forward_views(
        self, global_views: torch.Tensor, local_views: Optional[torch.Tensor] = None, target=None
    ) -> torch.Tensor:
        check_views(global_views, local_views, "multiview_infonce")
        views = global_views if local_views is None else torch.cat([global_views, local_views])
        (views,) = as_float(views)
        with full_precision(views):
            z = F.normalize(views.float(), dim=-1)
            num_global, batch = global_views.shape[0], global_views.shape[1]
            # logits[a, g, i, j] = cos(z^a_i, z^g_j) / tau, for every anchor view a and global view g at once
            logits = torch.einsum("aid,gjd->agij", z, z[:num_global]) * self.temperature.scale(z.device)
            pairs = view_pairs(num_global, views.shape[0] - num_global)
            a_idx = torch.tensor([a for a, _ in pairs], device=z.device)
            g_idx = torch.tensor([g for _, g in pairs], device=z.device)
            chosen = logits[a_idx, g_idx]  # (P, B, B)
            target_idx = torch.arange(batch, device=z.device).repeat(len(pairs))
            return F.cross_entropy(chosen.reshape(-1, batch), target_idx)

    def forward(self, anchor, positive, negative=None, labels=None):
        check_pair(anchor, positive, "multiview_infonce")
        if negative is not None:
            raise ValueError("multiview_infonce uses no hard negatives; drop the negative column(s)")
        return self.forward_views(torch.stack([anchor, positive]))
