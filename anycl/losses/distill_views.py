"""Feature distillation from a teacher on the views the student sees, any modality (``fit(..., teacher=...)``).

The student's embedding ``s`` of a view goes through a small trainable projection ``P`` (linear, or a two-layer
MLP) to the teacher's width; the teacher's embedding ``t`` of the same view (computed by the training module
without gradient: :mod:`anycl.model.distill_teacher`) is its target. The distillation term is

.. math:: L_\\mathrm{distill} = \\frac{1}{BV}\\sum_{b,v} \\lVert \\widehat{P s_{b,v}} - \\hat t_{b,v} \\rVert^2
          = \\frac{1}{BV}\\sum_{b,v} 2 - 2\\cos(P s_{b,v}, t_{b,v})

(``\\hat x = x/\\lVert x\\rVert``: scale-free, so a teacher of any norm is a fair target), over the batch's rows
``b`` and the views ``v`` that have a teacher embedding: the anchor and the positive view when the teacher sees
each view, the anchor alone (or both views of a self-supervised row, which share their item) when the teacher's
embeddings are cached per item.

``loss="distill"`` trains with this term alone. Given another loss (``inner``), the total is
``inner + weight · L_distill`` and the log shows both terms. The projection belongs to the loss, not the model:
it is trained with the student and **dropped at save** (the saved model embeds exactly as the student does).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from anycl.errors import ConfigError

from .base import ContrastiveLoss, copy_capabilities, full_precision
from .registry import register

PROJECTIONS = ("linear", "mlp")


def distill_term(projected: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over rows (and views) of ``‖normalize(projected) − normalize(teacher)‖²``; shapes (…, D) alike."""
    p = F.normalize(projected.float(), dim=-1)
    t = F.normalize(teacher.detach().float(), dim=-1)
    return (p - t).pow(2).sum(-1).mean()


def make_projection(student_dim: int, teacher_dim: int, kind: str = "linear") -> nn.Module:
    """The student → teacher projection: one linear layer, or Linear–GELU–Linear (hidden = teacher width)."""
    if kind == "linear":
        return nn.Linear(student_dim, teacher_dim)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(student_dim, teacher_dim), nn.GELU(), nn.Linear(teacher_dim, teacher_dim))
    raise ConfigError(f"teacher_options projection must be one of {PROJECTIONS}, got {kind!r}")


@register("distill")
class ViewDistill(ContrastiveLoss):
    """Distillation of a teacher's features of the student's views, alone or added to another loss.

    Args:
        inner: the contrastive loss it adds to (None: distillation alone, ``loss="distill"``).
        weight: the distillation term's weight when added to ``inner`` (> 0).
        projection: ``"linear"`` (default) or ``"mlp"``; sized by :meth:`build_projection` once the widths are
            known (``fit`` does it before the optimiser is made).

    ``forward(anchor, positive, negative, labels, teacher=(B, V, D_teacher), **inner_keywords)``.
    """

    needs_view_teacher = True
    in_batch_negatives = False
    accepts_negatives = False

    def __init__(self, inner: Optional[nn.Module] = None, weight: float = 1.0, projection: str = "linear"):
        super().__init__()
        if not float(weight) > 0:
            raise ConfigError(f"distill_weight must be > 0 (0 turns distillation off), got {weight}")
        if projection not in PROJECTIONS:
            raise ConfigError(f"teacher_options projection must be one of {PROJECTIONS}, got {projection!r}")
        self.inner = inner
        if inner is not None:
            copy_capabilities(self, inner)  # batches, negatives and labels as the contrastive loss wants them
            copy_capabilities(self, inner, ("accepts_guide", "registry_name"))
        self.weight = float(weight)
        self.projection_kind = projection
        self.projection: Optional[nn.Module] = None

    def build_projection(self, student_dim: int, teacher_dim: int) -> None:
        """Make the projection (before the optimiser exists, so that it trains with the student)."""
        self.projection = make_projection(int(student_dim), int(teacher_dim), self.projection_kind)

    def build(self, embedding_dim: int) -> None:
        build = getattr(self.inner, "build", None)
        if build is not None:
            build(embedding_dim)

    def on_train_step_end(self, step: int, total: Optional[int]) -> None:
        hook = getattr(self.inner, "on_train_step_end", None)
        if hook is not None:
            hook(step, total)

    def distill(self, anchor: torch.Tensor, positive: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """The distillation term of the anchor (and positive) views against ``teacher`` (B, V, D_teacher)."""
        if self.projection is None:
            raise ValueError("distill: the projection is not built; call build_projection(student_dim, teacher_dim)")
        if teacher.dim() != 3 or teacher.shape[1] not in (1, 2) or teacher.shape[0] != anchor.shape[0]:
            raise ValueError(
                f"distill: teacher must be (B, 1 or 2, D) for B={anchor.shape[0]}, got {tuple(teacher.shape)}"
            )
        views = [anchor, positive][: teacher.shape[1]]
        student = torch.stack(views, dim=1)
        with full_precision(student):
            return distill_term(self.projection(student.float()), teacher)

    def forward(self, anchor, positive, negative=None, labels=None, teacher=None, **kw: Any):
        if teacher is None:
            raise ValueError(
                "distill needs the teacher's embeddings of the views (teacher=, (B, V, D)); fit makes them"
            )
        d = self.distill(anchor, positive, teacher)
        if self.inner is None:
            return d
        out = self.inner(anchor, positive, negative, labels, **kw)
        terms = dict(out) if isinstance(out, dict) else {"loss": out}
        contrastive = terms.pop("loss")
        return {
            **terms,
            "loss": contrastive + self.weight * d,
            "contrastive": contrastive.detach(),
            "distill": d.detach(),
        }
