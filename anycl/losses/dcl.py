"""Decoupled contrastive learning (DCL) and its weighted variant (DCLW): InfoNCE without the positive in
the denominator, so the gradient no longer shrinks when the positive is already close.

Reference: Yeh et al. 2022, "Decoupled Contrastive Learning" (ECCV, arXiv:2110.06848).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .fused import row_lse
from .registry import ContrastiveLoss, Temperature, full_precision, pair_inputs, register, same_label_mask


def vmf_weights(u: torch.Tensor, v: torch.Tensor, sigma: float) -> torch.Tensor:
    r"""DCLW's positive weights :math:`w_i = 2 - \frac{\exp(u_i \cdot v_i/\sigma)}{\frac1N\sum_k \exp(u_k \cdot v_k/\sigma)}`
    (mean 1; easy positives weigh less)."""
    return 2 - u.shape[0] * torch.softmax((u * v).sum(-1) / sigma, dim=0)


@register("dcl", "decoupled_contrastive")
class DCL(ContrastiveLoss):
    r"""Decoupled contrastive loss over the two views.

    With :math:`u, v` the L2-normalised views and :math:`s = 1/\tau`, for each anchor :math:`u_i`:

    .. math:: \ell_i = -w_i\, s\, u_i \cdot v_i + \log \sum_{j \ne i} \left(e^{s\, u_i \cdot u_j} + e^{s\, u_i \cdot v_j}\right)

    (:math:`w_i = 1` for DCL; von Mises–Fisher weights for ``weighted`` / ``dclw``). The loss is the
    mean of :math:`\ell_i` over both directions (u→v and v→u) and the batch.

    Args:
        temperature: :math:`\tau` (default 0.1).
        weighted: use DCLW's weights :math:`w_i = 2 - N\,\mathrm{softmax}_i(u_i \cdot v_i / \sigma)`.
        sigma: :math:`\sigma` of the weights (default 0.5, the paper's).
        learn_temperature, max_scale: as for ``infonce``.

    Inputs:
        anchor, positive: (B, D); B ≥ 2 unless hard negatives are given. negative: optional (B, K, D),
        extra negatives of every anchor. labels: optional (B,); same-label items are not negatives.
        queue: optional (M, D) extra negatives.
    """

    distributed = "global"

    def __init__(
        self,
        temperature: float = 0.1,
        weighted: bool = False,
        sigma: float = 0.5,
        learn_temperature: bool = False,
        max_scale: float = 100.0,
    ):
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"dcl: sigma must be > 0, got {sigma}")
        self.tau = Temperature(temperature, learn_temperature, max_scale, "dcl")
        self.weighted = bool(weighted)
        self.sigma = float(sigma)

    def forward(self, anchor, positive, negative=None, labels=None, queue=None):
        anchor, positive, extra = pair_inputs(anchor, positive, negative, queue, "dcl")
        batch = anchor.shape[0]
        with full_precision(anchor):
            if batch < 2 and extra is None:
                raise ValueError(
                    "dcl: needs a batch of at least 2 pairs (or hard negatives): the other items are the negatives"
                )
            u, v = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
            extra = None if extra is None else F.normalize(extra, dim=-1)
            same = same_label_mask(labels, batch, u.device)
            scale = self.tau.scale(u.device)
            # Both directions are the rows of one (2B, 2B [+ M]) Gram matrix of z = [u; v]: row i's
            # negatives are every other item but itself and its other view (and same-label items).
            z = torch.cat([u, v])
            if same is None:
                lse = row_lse(z, extra, scale, diags=(0, batch), gram=True)
            else:
                block = same | torch.eye(batch, dtype=torch.bool, device=u.device)
                lse = row_lse(z, extra, scale, block.repeat(2, 2), gram=True)
            pos = scale * (u * v).sum(-1)
            if self.weighted:
                pos = pos * vmf_weights(u, v, self.sigma)
            return lse / (2 * batch) - pos.mean()

    def extra_repr(self) -> str:
        return f"temperature={self.tau.value:.4g}, weighted={self.weighted}, sigma={self.sigma}"


@register("dclw", "weighted_dcl", "dcl_weighted")
class WeightedDCL(DCL):
    """DCL with von Mises–Fisher positive weights (``dcl`` with ``weighted=True``); see :class:`DCL`."""

    def __init__(
        self, temperature: float = 0.1, sigma: float = 0.5, learn_temperature: bool = False, max_scale: float = 100.0
    ):
        super().__init__(temperature, True, sigma, learn_temperature, max_scale)
