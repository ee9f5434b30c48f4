r"""Debiased contrastive loss: InfoNCE for unlabelled data, corrected for the same-class items among the negatives.

Without labels, an anchor's in-batch "negatives" are random items of the data, and a fraction :math:`\tau^+` of
them belong to the anchor's own class (with ten balanced classes, one in ten). InfoNCE pushes those apart too.
Chuang et al. 2020, "Debiased Contrastive Learning" (NeurIPS, arXiv:2007.00224), estimate the sum over true
negatives from the sum over all candidates minus :math:`\tau^+` times the positive's term; Robinson et al. 2021
("Contrastive learning with hard negative samples", arXiv:2010.04592) add importance weights towards hard negatives
to the same estimator (their HCL: ``hardness_weight > 0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import nonnegative
from .hardness import hardness_log_weights
from .registry import ContrastiveLoss, Temperature, full_precision, pair_inputs, register, same_label_mask


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < 1):
        raise ValueError(f"debiased: {name} must be a number in [0, 1), got {value!r}")
    return float(value)


@register("debiased", "debiased_infonce", "hcl")
class DebiasedInfoNCE(ContrastiveLoss):
    r"""InfoNCE with the negatives' sum replaced by Chuang et al.'s debiased estimate.

    For anchor :math:`a_i` with positive :math:`p_i`, cosine similarities :math:`s_{ij}` to the candidates (every
    row's positive, then any hard negatives and memory-queue entries), :math:`N_i` the row's negatives (every
    candidate but its own positive and same-label ones) and :math:`n_i = |N_i|`:

    .. math::

        g_i = \max\Big(\frac{\sum_{j \in N_i} w_{ij} e^{s_{ij}/\tau} - \tau^+ n_i e^{s_{ii}/\tau}}{1 - \tau^+},
              \; n_i e^{-1/\tau}\Big), \qquad
        \ell_i = -\log \frac{e^{s_{ii}/\tau}}{e^{s_{ii}/\tau} + g_i}

    (the floor :math:`n_i e^{-1/\tau}` is the smallest value the true sum can take for cosine similarities). With
    ``hardness_weight`` :math:`\beta > 0` the weights are
    :math:`w_{ij} = n_i e^{\beta s_{ij}} / \sum_{k \in N_i} e^{\beta s_{ik}}` (mean 1, detached: no gradient flows
    through them, as ``infonce``'s ``hardness_weight``); else :math:`w_{ij} = 1`. With ``tau_plus=0`` and
    :math:`\beta = 0` this is exactly ``infonce``.

    Args:
        temperature: :math:`\tau` (default 0.1).
        tau_plus: :math:`\tau^+`, the expected fraction of the anchor's own class among random items, in [0, 1)
            (default 0.1: about ten balanced classes). 0 turns the correction off.
        hardness_weight: :math:`\beta \ge 0` (default 0: off).
        symmetric: also score each positive against all anchors, and average the two directions.
        learn_temperature, max_scale: as for ``infonce``.

    Inputs:
        anchor, positive: (B, D). negative: optional (B, K, D) or (B, D): candidates of every anchor, counted with
        the in-batch negatives (the estimator treats them as items drawn from the data). labels: optional (B,);
        same-label in-batch candidates are left out of :math:`N_i`. queue: optional (M, D) memory-queue entries.

    Returns a scalar: the mean of :math:`\ell_i` over the batch (and the directions).
    """

    def __init__(
        self,
        temperature: float = 0.1,
        tau_plus: float = 0.1,
        hardness_weight: float = 0.0,
        symmetric: bool = False,
        learn_temperature: bool = False,
        max_scale: float = 100.0,
    ):
        super().__init__()
        self.tau = Temperature(temperature, learn_temperature, max_scale, "debiased")
        self.tau_plus = _check_fraction("tau_plus", tau_plus)
        self.hardness_weight = nonnegative(hardness_weight, "hardness_weight", "debiased")
        self.symmetric = bool(symmetric)

    @property
    def temperature(self) -> float:
        return self.tau.value

    def forward(self, anchor, positive, negative=None, labels=None, queue=None):
        anchor, positive, extra = pair_inputs(anchor, positive, negative, queue, "debiased")
        batch = anchor.shape[0]
        with full_precision(anchor):
            anchor = F.normalize(anchor, dim=-1)
            positive = F.normalize(positive, dim=-1)
            extra = None if extra is None else F.normalize(extra, dim=-1)
            if batch < 2 and extra is None:
                raise ValueError(
                    "debiased: needs a batch of at least 2 pairs (or hard negatives): the other items are the negatives"
                )
            same = same_label_mask(labels, batch, anchor.device)
            scale = self.tau.scale(anchor.device)
            loss = self._direction(anchor, positive, extra, same, scale)
            if self.symmetric:
                loss = 0.5 * (loss + self._direction(positive, anchor, None, same, scale))
        return loss

    def _direction(self, queries, keys, extra, same, scale):
        """Mean :math:`\\ell_i` of ``queries`` against ``keys`` (row i's positive is ``keys[i]``) and ``extra``."""
        batch = queries.shape[0]
        cands = keys if extra is None else torch.cat([keys, extra])
        sims = queries @ cands.T
        logits = sims * scale
        eye = torch.zeros_like(logits, dtype=torch.bool)
        eye[:, :batch] = torch.eye(batch, dtype=torch.bool, device=logits.device)
        negs = ~eye
        if same is not None:
            negs[:, :batch] &= ~same
        count = negs.sum(dim=1)  # a row whose every candidate shares its label has none: its term is 0
        pos = logits[:, :batch].diagonal()
        top = logits.detach().max(dim=1).values  # exponentials are taken after subtracting each row's largest logit
        shifted = torch.exp(logits - top[:, None]).masked_fill(~negs, 0.0)
        if self.hardness_weight > 0:  # infonce's hardness weights (anycl.losses.hardness)
            shifted = shifted * hardness_log_weights(sims, negs, self.hardness_weight).exp()
        pos_shifted = pos - top
        raw = (shifted.sum(dim=1) - self.tau_plus * count * torch.exp(pos_shifted)) / (1 - self.tau_plus)
        floor = torch.log(count.to(logits.dtype)) - scale - top
        log_g = torch.maximum(torch.log(raw.clamp_min(torch.finfo(raw.dtype).tiny)), floor)
        log_g = log_g.masked_fill(count == 0, float("-inf"))
        return (torch.logaddexp(pos_shifted, log_g) - pos_shifted).mean()

    def extra_repr(self) -> str:
        return (
            f"temperature={self.tau.value:.4g}, tau_plus={self.tau_plus}, hardness_weight={self.hardness_weight}, "
            f"symmetric={self.symmetric}"
        )
