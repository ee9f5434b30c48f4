"""BYOL and SimSiam: a predictor head on the online branch, a stop-gradient on the other.

No negatives: the asymmetry (predictor + stop-gradient, and for BYOL a slowly moving EMA target) is
what keeps the embeddings from collapsing to a constant. Watch the spread anyway (``anycl.training.collapse``).

References: Grill et al. 2020, "Bootstrap Your Own Latent" (NeurIPS, arXiv:2006.07733); Chen & He 2021,
"Exploring Simple Siamese Representation Learning" (CVPR, arXiv:2011.10566).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import ContrastiveLoss, as_float, check_pair, full_precision, refuse_negatives
from .registry import register


def predictor_mlp(dim: int, hidden_dim: int) -> nn.Sequential:
    """Linear(dim, hidden) → BatchNorm → ReLU → Linear(hidden, dim): the predictor of BYOL and SimSiam."""
    return nn.Sequential(
        nn.Linear(dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, dim)
    )


class _PredictorLoss(ContrastiveLoss):
    """Owns the predictor, sized by :meth:`build` (the training module calls it with the model's width
    before the optimiser is made, so the predictor is trained with the model)."""

    in_batch_negatives = False
    accepts_negatives = False
    negative_free = True
    distributed = "local"  # a mean of per-pair terms: DDP's gradient average is the global mean
    name = "predictor loss"
    hidden_factor = 1.0

    def __init__(self, dim: Optional[int] = None, hidden_dim: Optional[int] = None):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.predictor: Optional[nn.Sequential] = None
        if dim is not None:
            self.build(int(dim))

    def build(self, embedding_dim: int) -> None:
        if self.predictor is not None:
            if self.predictor[0].in_features != embedding_dim:
                raise ValueError(
                    f"{self.name}: its predictor was built for width {self.predictor[0].in_features}, but the "
                    f"model gives embeddings of width {embedding_dim}"
                )
            return
        hidden = self.hidden_dim or max(1, int(round(embedding_dim * self.hidden_factor)))
        self.predictor = predictor_mlp(embedding_dim, hidden)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        if self.predictor is None:
            raise ValueError(
                f"{self.name}: the predictor is not built: pass dim=<embedding width> (loss_options={{'dim': ...}}) "
                f"or let anycl's training module call build(width)"
            )
        dtype = next(self.predictor.parameters()).dtype  # its first Linear's weight
        return self.predictor(x.to(dtype) if not torch.is_autocast_enabled() else x)


@register("byol")
class BYOL(_PredictorLoss):
    r"""BYOL: the online branch predicts the EMA target's embedding of the other view.

    With predictor :math:`q`, online embeddings :math:`z_1, z_2` (anchor, positive) and target
    embeddings :math:`z'_1, z'_2` of the same views (no gradient):

    .. math:: L = \frac1B \sum_i \big(2 - 2\cos(q(z_{1,i}), z'_{2,i})\big) + \big(2 - 2\cos(q(z_{2,i}), z'_{1,i})\big)

    The target is an EMA copy of the whole model (:class:`anycl.losses.momentum.MomentumTarget`) whose
    momentum follows :math:`\tau_k = 1 - (1 - \tau_0)(\cos(\pi k/K) + 1)/2`, from ``momentum`` to 1.

    Args:
        dim: embedding width; normally left out (``fit`` sizes the predictor from the model).
        hidden_dim: predictor hidden width (default 4 × dim; the paper: 4096 for dim 256).
        momentum: :math:`\tau_0` (default 0.99).

    Inputs:
        anchor, positive: (B, D), two views. target: {"anchor": (B, D), "positive": (B, D)} from the
        momentum target (anycl's training module passes it). Hard negatives are refused.
    """

    name = "byol"
    hidden_factor = 4.0

    def __init__(self, dim: Optional[int] = None, hidden_dim: Optional[int] = None, momentum: float = 0.99):
        super().__init__(dim, hidden_dim)
        if not 0 <= momentum <= 1:
            raise ValueError(f"byol: momentum must be in [0, 1], got {momentum}")
        self.momentum_target = {"momentum": float(momentum), "final_momentum": 1.0, "schedule": "cosine"}

    def forward(self, anchor, positive, negative=None, labels=None, target=None):
        check_pair(anchor, positive, "byol")
        refuse_negatives(negative, "byol")
        if target is None:
            raise ValueError(
                "byol needs the momentum target's embeddings (target={'anchor': ..., 'positive': ...}); "
                "anycl's training module provides them from anycl.losses.momentum.MomentumTarget"
            )
        p1, p2 = self.predict(anchor), self.predict(positive)
        p1, p2, t1, t2 = as_float(p1, p2, target["anchor"].detach(), target["positive"].detach())
        check_pair(p1, t2, "byol (target)")
        with full_precision(p1):
            return (2 - 2 * F.cosine_similarity(p1, t2, dim=-1)).mean() + (
                2 - 2 * F.cosine_similarity(p2, t1, dim=-1)
            ).mean()


@register("simsiam")
class SimSiam(_PredictorLoss):
    r"""SimSiam: BYOL without the EMA target, the other view's embedding under a stop-gradient.

    .. math:: L = -\frac12 \frac1B \sum_i \cos(q(z_{1,i}), \mathrm{sg}(z_{2,i})) + \cos(q(z_{2,i}), \mathrm{sg}(z_{1,i}))

    Args:
        dim: embedding width; normally left out (``fit`` sizes the predictor from the model).
        hidden_dim: predictor bottleneck width (default dim / 4, the paper's 2048 → 512).

    Inputs:
        anchor, positive: (B, D), two views. Hard negatives are refused. Minimum −1.
    """

    name = "simsiam"
    hidden_factor = 0.25

    def forward(self, anchor, positive, negative=None, labels=None):
        check_pair(anchor, positive, "simsiam")
        refuse_negatives(negative, "simsiam")
        p1, p2 = self.predict(anchor), self.predict(positive)
        p1, p2, z1, z2 = as_float(p1, p2, anchor.detach(), positive.detach())
        with full_precision(p1):
            return -0.5 * (F.cosine_similarity(p1, z2, dim=-1).mean() + F.cosine_similarity(p2, z1, dim=-1).mean())
