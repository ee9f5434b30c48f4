"""DINO: self-distillation with no labels — a student matches a momentum teacher's sharpened,
centred distribution over learnt prototypes.

The model's embedding (after its projection head) is L2-normalised and scored against K prototype
vectors (also normalised: DINO's weight-normalised last layer); the student's scores of *every* view
are pushed, by cross-entropy, towards the teacher's distribution for each *other global* view.
The teacher is an EMA copy of the model (:class:`anycl.losses.momentum.MomentumTarget`) and of the
prototypes (kept here, moved with the same momentum schedule). Collapse is avoided by centring the
teacher's scores with a running mean :math:`c` and sharpening them with a low temperature.

Reference: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers" (ICCV,
arXiv:2104.14294).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from anycl.errors import ConfigError

from .momentum import momentum_at
from .multiview import check_views, view_pairs
from .registry import ContrastiveLoss, check_pair, full_precision, register


def teacher_temperature_at(
    step: int, temperature: float, warmup_temperature: Optional[float], warmup_steps: int
) -> float:
    """Linear warm-up of the teacher temperature from ``warmup_temperature`` over ``warmup_steps`` steps."""
    if warmup_temperature is None or warmup_steps <= 0 or step >= warmup_steps:
        return float(temperature)
    return float(warmup_temperature) + (float(temperature) - float(warmup_temperature)) * step / warmup_steps


@register("dino")
class DINO(ContrastiveLoss):
    r"""DINO self-distillation loss. With teacher scores :math:`t^g` of global view :math:`g`, student
    scores :math:`s^a` of view :math:`a`, centre :math:`c`, temperatures :math:`\tau_t < \tau_s`:

    .. math:: P_t^g = \mathrm{softmax}((t^g - c)/\tau_t), \quad
              L = \frac{1}{|P|} \sum_{(a, g) \in P} \frac1B \sum_i -\sum_k P_{t,ik}^g \log \mathrm{softmax}(s^a_i/\tau_s)_k

    over the pairs :math:`P` = every view :math:`a` with every global view :math:`g \ne a`. After each
    training forward the centre moves: :math:`c \leftarrow m_c c + (1 - m_c)\,\mathrm{mean}(t)` (over
    all teacher rows of the batch, averaged across processes).

    Args:
        out_dim: number of prototypes K (default 1024; the paper uses 65536 on ImageNet).
        student_temperature: :math:`\tau_s` (default 0.1). teacher_temperature: :math:`\tau_t` (default 0.04).
        warmup_teacher_temperature, warmup_teacher_steps: optional linear warm-up of :math:`\tau_t`
            from this value over that many optimiser steps (the paper: 0.04 → 0.07 over 30 epochs).
        center_momentum: :math:`m_c` (default 0.9).
        momentum, final_momentum: EMA momentum of the teacher, cosine from ``momentum`` (default 0.996)
            to ``final_momentum`` (default 1.0) over training (the teacher's prototypes follow the same).
        dim: embedding width; normally left out (``fit`` sizes the prototypes from the model).

    Inputs: pairwise ``forward(anchor, positive, target={"anchor", "positive"})`` (the two views), or
    ``forward_views(global (V, B, D), local (L, B, D) or None, target (V, B, D))`` with
    ``fit(..., views=V, local_views=L)``; the targets are the teacher's embeddings of the global views.
    """

    in_batch_negatives = False
    accepts_negatives = False
    negative_free = True
    distributed = "local"  # per-row terms; the centre is averaged across processes
    center: torch.Tensor  # buffers (register_buffer), declared for type checkers
    teacher_prototypes: torch.Tensor
    momentum_target: Dict[str, Any]

    def __init__(
        self,
        out_dim: int = 1024,
        student_temperature: float = 0.1,
        teacher_temperature: float = 0.04,
        warmup_teacher_temperature: Optional[float] = None,
        warmup_teacher_steps: int = 0,
        center_momentum: float = 0.9,
        momentum: float = 0.996,
        final_momentum: float = 1.0,
        dim: Optional[int] = None,
    ):
        super().__init__()
        if int(out_dim) < 2:
            raise ConfigError(f"dino: out_dim (prototypes) must be >= 2, got {out_dim}")
        for name, v in (("student_temperature", student_temperature), ("teacher_temperature", teacher_temperature)):
            if not v > 0:
                raise ConfigError(f"dino: {name} must be > 0, got {v}")
        if warmup_teacher_temperature is not None and not warmup_teacher_temperature > 0:
            raise ConfigError(f"dino: warmup_teacher_temperature must be > 0, got {warmup_teacher_temperature}")
        for name, v in (
            ("center_momentum", center_momentum),
            ("momentum", momentum),
            ("final_momentum", final_momentum),
        ):
            if not 0 <= v <= 1:
                raise ConfigError(f"dino: {name} must be in [0, 1], got {v}")
        self.out_dim = int(out_dim)
        self.student_temperature = float(student_temperature)
        self.teacher_temperature = float(teacher_temperature)
        self.warmup_teacher_temperature = warmup_teacher_temperature
        self.warmup_teacher_steps = int(warmup_teacher_steps)
        self.center_momentum = float(center_momentum)
        self.momentum_target = {
            "momentum": float(momentum),
            "final_momentum": float(final_momentum),
            "schedule": "cosine",
        }
        self.prototypes: Optional[nn.Parameter] = None
        self.register_buffer("center", torch.zeros(1, self.out_dim))
        self.register_buffer("teacher_prototypes", torch.zeros(0))
        self.step = 0
        if dim is not None:
            self.build(int(dim))

    def build(self, embedding_dim: int) -> None:
        """Make the K × D prototypes (and the teacher's copy) for embeddings of width ``embedding_dim``."""
        if self.prototypes is not None:
            if self.prototypes.shape[1] != embedding_dim:
                raise ValueError(
                    f"dino: prototypes were built for width {self.prototypes.shape[1]}, but the model "
                    f"gives embeddings of width {embedding_dim}"
                )
            return
        w = torch.empty(self.out_dim, embedding_dim)
        nn.init.trunc_normal_(w, std=0.02)
        self.prototypes = nn.Parameter(w)
        self.teacher_prototypes = w.clone()

    def _require_built(self) -> None:
        if self.prototypes is None:
            raise ValueError(
                "dino: the prototypes are not built: pass dim=<embedding width> "
                "(loss_options={'dim': ...}) or let anycl's training module call build(width)"
            )

    def scores(self, z: torch.Tensor, teacher: bool = False) -> torch.Tensor:
        """Cosine of each (normalised) embedding with each (normalised) prototype: (..., K)."""
        self._require_built()
        w = self.teacher_prototypes if teacher else self.prototypes
        assert w is not None  # _require_built() raised otherwise
        return F.normalize(z.float(), dim=-1) @ F.normalize(w.float(), dim=-1).T

    @property
    def current_teacher_temperature(self) -> float:
        return teacher_temperature_at(
            self.step, self.teacher_temperature, self.warmup_teacher_temperature, self.warmup_teacher_steps
        )

    def forward_views(
        self,
        global_views: torch.Tensor,
        local_views: Optional[torch.Tensor] = None,
        target: Optional[torch.Tensor] = None,
    ):
        check_views(global_views, local_views, "dino")
        self._require_built()
        if target is None or target.shape != global_views.shape:
            raise ValueError(
                f"dino needs the momentum teacher's embeddings of the global views (target of shape "
                f"{tuple(global_views.shape)}); anycl's training module provides them"
            )
        views = global_views if local_views is None else torch.cat([global_views, local_views])
        with full_precision(views):
            student = F.log_softmax(self.scores(views) / self.student_temperature, dim=-1)  # (V+L, B, K)
            with torch.no_grad():
                t = self.scores(target.detach(), teacher=True)  # (V, B, K)
                probs = F.softmax((t - self.center) / self.current_teacher_temperature, dim=-1)
            pairs = view_pairs(global_views.shape[0], views.shape[0] - global_views.shape[0])
            a_idx = [a for a, _ in pairs]
            g_idx = [g for _, g in pairs]
            loss = -(probs[g_idx] * student[a_idx]).sum(-1).mean()
        if self.training:
            self.update_center(t)
        return {"loss": loss, "teacher_entropy": -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean().detach()}

    def forward(self, anchor, positive, negative=None, labels=None, target=None):
        check_pair(anchor, positive, "dino")
        if negative is not None:
            raise ValueError("dino is negative-free and cannot use hard negatives; drop the negative column(s)")
        if target is None or "anchor" not in target or "positive" not in target:
            raise ValueError(
                "dino needs the momentum teacher's embeddings (target={'anchor': ..., 'positive': ...}); "
                "anycl's training module provides them"
            )
        return self.forward_views(
            torch.stack([anchor, positive]), target=torch.stack([target["anchor"], target["positive"]])
        )

    @torch.no_grad()
    def update_center(self, teacher_scores: torch.Tensor) -> None:
        """:math:`c \\leftarrow m_c c + (1 - m_c)\\,\\mathrm{mean}(t)` (the mean across processes too)."""
        mean = teacher_scores.reshape(-1, self.out_dim).mean(0, keepdim=True)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(mean)
            mean /= torch.distributed.get_world_size()
        self.center.mul_(self.center_momentum).add_(mean.to(self.center.dtype), alpha=1 - self.center_momentum)

    @torch.no_grad()
    def on_train_step_end(self, step: int, total: Optional[int]) -> None:
        """Move the teacher's prototypes with the teacher's momentum (same schedule, same step)."""
        self.step = step
        if self.prototypes is None:
            return
        m = momentum_at(step, total, **self.momentum_target)
        self.teacher_prototypes.mul_(m).add_(self.prototypes.detach().to(self.teacher_prototypes.dtype), alpha=1 - m)

    def get_extra_state(self):
        return {"step": self.step}

    def set_extra_state(self, state) -> None:
        self.step = int(state.get("step", 0))
