"""Supervised contrastive loss (SupCon): every other view with the same label is a positive.

Reference: Khosla et al. 2020, "Supervised Contrastive Learning" (NeurIPS, arXiv:2004.11362), the
:math:`\\mathcal{L}^{sup}_{out}` form.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from .base import MASK_VALUE, ContrastiveLoss, Temperature, full_precision, pair_inputs
from .registry import register

log = logging.getLogger("anycl")


@register("supcon", "supervised_contrastive")
class SupCon(ContrastiveLoss):
    r"""With :math:`z` the 2N L2-normalised views (anchor then positive), labels repeated, :math:`P(i)`
    the other views sharing :math:`i`'s label (always including its own other view) and :math:`A(i)`
    every view but :math:`i` (plus hard negatives / queue entries):

    .. math:: L = \frac{1}{2N} \sum_i \frac{-1}{|P(i)|} \sum_{p \in P(i)}
       \log \frac{\exp(z_i \cdot z_p/\tau)}{\sum_{a \in A(i)} \exp(z_i \cdot z_a/\tau)}

    Args:
        temperature: :math:`\tau` (default 0.1, the paper's).
        learn_temperature, max_scale: as for ``infonce``.

    Inputs:
        anchor, positive: (B, D), two views of each item (for a single column, two augmentations).
        labels: (B,) class ids — required; a label column with a single class is refused by ``fit``
        (SupCon would then pull every item together). negative: optional (B, K, D) hard negatives,
        queue: optional (M, D): extra candidates that are never positives.
    """

    needs_labels = True
    distributed = "global"

    def __init__(self, temperature: float = 0.1, learn_temperature: bool = False, max_scale: float = 100.0):
        super().__init__()
        self.tau = Temperature(temperature, learn_temperature, max_scale, "supcon")
        self._warned_single = False

    def forward(self, anchor, positive, negative=None, labels=None, queue=None):
        anchor, positive, extra = pair_inputs(anchor, positive, negative, queue, "supcon")
        if labels is None:
            raise ValueError("supcon needs labels (B,): give the dataset a 'label' column")
        batch = anchor.shape[0]
        labels = torch.as_tensor(labels, device=anchor.device).view(-1)
        if labels.numel() != batch:
            raise ValueError(f"supcon: labels must have one entry per row ({batch}), got {labels.numel()}")
        if batch > 1 and bool((labels == labels[0]).all()) and not self._warned_single:
            self._warned_single = True
            log.warning("supcon: a batch holds a single class; its items only attract each other")
        with full_precision(anchor):
            z = F.normalize(torch.cat([anchor, positive]), dim=-1)
            lab = labels.repeat(2)
            cands = z if extra is None else torch.cat([z, F.normalize(extra, dim=-1)])
            logits = (z * self.tau.scale(z.device)) @ cands.T  # (2N, 2N + M)
            n2 = 2 * batch
            self_mask = torch.eye(n2, dtype=torch.bool, device=z.device)
            head = logits[:, :n2].masked_fill(self_mask, MASK_VALUE)
            logits = torch.cat([head, logits[:, n2:]], dim=1)
            log_prob = logits[:, :n2] - torch.logsumexp(logits, dim=1, keepdim=True)
            pos = (lab.view(-1, 1) == lab.view(1, -1)) & ~self_mask
            mean_log_prob_pos = (log_prob * pos).sum(1) / pos.sum(1)
            return -mean_log_prob_pos.mean()

    def extra_repr(self) -> str:
        return f"temperature={self.tau.value:.4g}"
