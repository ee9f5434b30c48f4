"""Losses for graded pairs: a ``score`` column (a gold or teacher similarity per pair), and MarginMSE
with a teacher's ``positive_score`` / ``negative_score``.

- ``cosent``  (CoSENT, Su 2022): for every two pairs i, j of the batch whose gold scores order them
  (score_i > score_j), the loss pushes cos_i above cos_j:
  ``log(1 + Σ_{score_i > score_j} exp(scale · (cos_j − cos_i)))``. Only the order of the scores counts,
  so any real scores work.
- ``angle``   (AnglE, Li & Li 2023): CoSENT on the angle similarity. Each embedding is read as D/2
  complex numbers z_k = x_k + i·x_{k+D/2} (after L2 normalisation); the similarity of u and v is
  ``|Σ_k Re(z_k(u)·conj(z_k(v))) + Im(z_k(u)·conj(z_k(v)))|``, which keeps a gradient where the cosine
  saturates.
- ``cosine_mse``: ``mean((cos(anchor, positive) − score)²)`` (sentence-transformers' CosineSimilarityLoss);
  scores must lie in [-1, 1], the range of a cosine.
- ``margin_mse`` (Hofstätter et al. 2020): ``mean(((s(a, p) − s(a, n)) − (positive_score − negative_score))²)``
  with s the dot product (default, as sentence-transformers) or the cosine; a teacher's scores of
  the (anchor, positive) and (anchor, negative) pairs, e.g. from a cross-encoder.

Each loss names the score columns it reads (``score_columns``); ``fit`` passes them as keyword
arguments of the same names and checks ``score_range`` before training.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .base import ContrastiveLoss, as_float, check_pair, full_precision, negatives_3d
from .registry import register


def _scores(score, batch: int, name: str, column: str = "score") -> torch.Tensor:
    if score is None:
        raise ValueError(f"{name} needs the {column!r} column (one number per pair); the batch has none")
    score = torch.as_tensor(score).float().view(-1)
    if score.numel() != batch:
        raise ValueError(f"{name}: {column!r} must give one number per pair ({batch}), got {score.numel()}")
    return score


def angle_similarity(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Row-wise AnglE similarity (B,) of (B, D) embeddings; an odd width is padded with one zero."""
    if u.shape[1] % 2:
        u, v = F.pad(u, (0, 1)), F.pad(v, (0, 1))
    u, v = F.normalize(u, dim=1), F.normalize(v, dim=1)
    h = u.shape[1] // 2
    zu = torch.complex(u[:, :h], u[:, h:])
    zv = torch.complex(v[:, :h], v[:, h:])
    prod = (zu * zv.conj()).sum(dim=1)
    return (prod.real + prod.imag).abs()


def ranked_pairs_loss(sim: torch.Tensor, score: torch.Tensor, scale: float) -> torch.Tensor:
    """``log(1 + Σ_{score_i > score_j} exp(scale·(sim_j − sim_i)))``; 0-free batches (all scores equal) give log 1 = 0."""
    diff = scale * (sim.view(1, -1) - sim.view(-1, 1))  # [i, j] = scale·(sim_j − sim_i)
    ordered = score.view(-1, 1) > score.view(1, -1)  # [i, j]: pair i should score above pair j
    terms = diff[ordered]
    return torch.logsumexp(torch.cat([terms.new_zeros(1), terms]), dim=0)


class _RankedPairs(ContrastiveLoss):
    in_batch_negatives = False
    accepts_negatives = False
    score_columns: Tuple[str, ...] = ("score",)
    score_range: Optional[Tuple[float, float]] = None
    name = "cosent"

    def __init__(self, scale: float = 20.0):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"{self.name}: scale must be > 0, got {scale}")
        self.scale = float(scale)

    def similarity(self, a, p):
        return F.cosine_similarity(a, p, dim=1)

    def forward(self, anchor, positive, negative=None, labels=None, score=None):
        check_pair(anchor, positive, self.name)
        with full_precision(anchor):
            a, p = as_float(anchor, positive)
            s = _scores(score, a.shape[0], self.name).to(a.device)
            return ranked_pairs_loss(self.similarity(a, p), s, self.scale)


@register("cosent")
class CoSENT(_RankedPairs):
    """CoSENT: rank the batch's pairs by cosine in the order of their ``score`` (any real numbers)."""


@register("angle")
class AnglE(_RankedPairs):
    """AnglE: CoSENT on the angle similarity (see the module docstring)."""

    name = "angle"

    def similarity(self, a, p):
        return angle_similarity(a, p)


@register("cosine_mse", "cosine_similarity")
class CosineMSE(ContrastiveLoss):
    """``mean((cos(anchor, positive) − score)²)``; ``score`` in [-1, 1]."""

    in_batch_negatives = False
    accepts_negatives = False
    score_columns = ("score",)
    score_range = (-1.0, 1.0)

    def forward(self, anchor, positive, negative=None, labels=None, score=None):
        check_pair(anchor, positive, "cosine_mse")
        with full_precision(anchor):
            a, p = as_float(anchor, positive)
            s = _scores(score, a.shape[0], "cosine_mse").to(a.device)
            return F.mse_loss(F.cosine_similarity(a, p, dim=1), s)


@register("margin_mse")
class MarginMSE(ContrastiveLoss):
    """MarginMSE: the student's margin s(a, p) − s(a, n) regresses the teacher's
    ``positive_score − negative_score``. Needs one hard negative per row.

    Args:
        similarity: ``"dot"`` (default, as sentence-transformers) or ``"cosine"``.
    """

    in_batch_negatives = False
    score_columns = ("positive_score", "negative_score")
    score_range = None

    def __init__(self, similarity: str = "dot"):
        super().__init__()
        if similarity not in ("dot", "cosine"):
            raise ValueError(f"margin_mse: similarity must be 'dot' or 'cosine', got {similarity!r}")
        self.similarity = similarity

    def forward(self, anchor, positive, negative=None, labels=None, positive_score=None, negative_score=None):
        check_pair(anchor, positive, "margin_mse")
        if negative is None:
            raise ValueError(
                "margin_mse needs one hard negative per row (a 'negative' column) with its 'negative_score'"
            )
        batch, dim = anchor.shape
        negative = negatives_3d(negative, batch, dim, "margin_mse")
        if negative.shape[1] != 1:
            raise ValueError(
                f"margin_mse takes one negative per row, got {negative.shape[1]}; keep one "
                f"'negative' column (its teacher score in 'negative_score')"
            )
        with full_precision(anchor):
            a, p, n = as_float(anchor, positive, negative[:, 0])
            if self.similarity == "cosine":
                a, p, n = (F.normalize(t, dim=1) for t in (a, p, n))
            pos = _scores(positive_score, batch, "margin_mse", "positive_score").to(a.device)
            neg = _scores(negative_score, batch, "margin_mse", "negative_score").to(a.device)
            margin = (a * p).sum(1) - (a * n).sum(1)
            return F.mse_loss(margin, pos - neg)
