"""NNCLR: the positive of each view is its nearest neighbour in a support queue of past embeddings.

Reference: Dwibedi et al. 2021, "With a Little Help from My Friends: Nearest-Neighbor Contrastive
Learning of Visual Representations" (ICCV, arXiv:2104.14548).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .queue import MemoryQueue
from .registry import ContrastiveLoss, Temperature, as_float, check_pair, full_precision, register


def nearest_neighbours(queries: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """For each (normalised) query row, the (normalised) support row of highest cosine: (N, D)."""
    return support[(queries @ support.T).argmax(dim=1)]


@register("nnclr")
class NNCLR(ContrastiveLoss):
    r"""InfoNCE with nearest-neighbour positives from a support queue (the MoCo queue, :class:`MemoryQueue`).

    With normalised embeddings :math:`z_i` (anchor view), :math:`z^+_i` (positive view) and
    :math:`\mathrm{NN}(z)` the nearest entry of the support queue :math:`Q` (no gradient):

    .. math:: \ell_i = -\log \frac{\exp(\mathrm{NN}(z_i) \cdot z^+_i / \tau)}{\sum_j \exp(\mathrm{NN}(z_i) \cdot z^+_j / \tau)}

    and, with ``symmetric`` (default), the same with the views swapped, the two averaged. After the
    loss the batch's anchors are enqueued (the queue is read before: a batch never supports itself).
    While the queue is empty (the first step) each view is its own neighbour: plain InfoNCE.

    Args:
        temperature: :math:`\tau` (default 0.1). queue_size: support entries (default 4096; the paper
            98304; at least the batch size). symmetric: also the swapped term (default True).

    Inputs: anchor, positive (B, D). No hard negatives, no labels.
    """

    accepts_negatives = False
    distributed = "global"  # it sees the gathered batch and enqueues it: the same queue in every process

    def __init__(self, temperature: float = 0.1, queue_size: int = 4096, symmetric: bool = True):
        super().__init__()
        self.temperature = Temperature(temperature, name="nnclr")
        self.queue = MemoryQueue(queue_size)
        self.symmetric = bool(symmetric)
        self.last_support_used = False

    def _term(self, query: torch.Tensor, candidates: torch.Tensor, support: Optional[torch.Tensor]) -> torch.Tensor:
        nn_query = query.detach() if support is None else nearest_neighbours(query.detach(), support)
        logits = nn_query @ candidates.T * self.temperature.scale(query.device)
        return F.cross_entropy(logits, torch.arange(query.shape[0], device=query.device))

    def forward(self, anchor, positive, negative=None, labels=None):
        check_pair(anchor, positive, "nnclr")
        if negative is not None:
            raise ValueError("nnclr uses no hard negatives; drop the negative column(s)")
        self.queue.check_batch(anchor.shape[0])
        anchor, positive = as_float(anchor, positive)
        with full_precision(anchor):
            a, p = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
            bank = self.queue.get()  # before enqueueing
            support = None if bank is None else F.normalize(bank.to(a.dtype), dim=-1)
            self.last_support_used = support is not None
            loss = self._term(a, p, support)
            if self.symmetric:
                loss = 0.5 * (loss + self._term(p, a, support))
        if self.training:
            self.queue.enqueue(a.detach())
        return loss
