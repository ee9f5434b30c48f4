"""Where the loss is: :class:`TrainingModule` embeds a built batch's sides with the model and hands the
embeddings (never raw data) to the loss, across processes when there are several (:mod:`anycl.distributed`),
with the momentum target's and the guide's embeddings when the loss asks for them.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from anycl.data.views import multiview_loss
from anycl.distributed import loss_across_processes
from anycl.errors import ConfigError
from anycl.losses.momentum import prepare_loss


class TrainingModule(nn.Module):
    """Model + loss as one module, so that one forward gives the loss (what DDP and Accelerate expect)."""

    def __init__(self, model: nn.Module, loss: nn.Module, guide=None, teacher=None):
        super().__init__()
        self.model = model
        self.loss = loss
        # a frozen guide model (anycl.training.guide) whose embeddings of the batch reach the loss as guide=
        if guide is not None and not getattr(loss, "accepts_guide", False):
            raise ConfigError(
                f"loss {getattr(loss, 'registry_name', type(loss).__name__)!r} does not use a guide "
                f"model; guided false-negative masking works with infonce"
            )
        self.guide = guide
        # a frozen distillation teacher (anycl.model.distill_teacher) whose embeddings of the batch's views reach
        # the loss as teacher= (B, V, D); a plain attribute: no part of the parameters, state or checkpoints
        if teacher is not None and not getattr(loss, "needs_view_teacher", False):
            raise ConfigError("a teacher needs the distill loss (anycl.losses.distill_views); fit wraps the loss in it")
        self.teacher: Any = teacher  # not an nn.Module: a plain attribute
        self._view_state: Optional[Tuple[torch.Tensor, torch.device]] = None
        # -- loss support (anycl.losses.momentum, anycl.training.collapse) ------------------------------------------------
        # The loss's predictor is sized here (before the optimiser exists); a loss with `momentum_target`
        # gets an EMA copy of the model whose embeddings reach it as `target=`; the last step's detached
        # embeddings stay readable for the collapse watch.
        self.target = prepare_loss(model, loss)
        # -- a loss that trains two copies of the model (Contrastive Tension, anycl.losses.contrastive_tension) ----------
        # the copy embeds the anchor side; its parameters are this module's (optimised, checkpointed), never saved
        self.second_tower: Optional[nn.Module] = second_tower(model, loss, self.target, guide, teacher)
        self._prepare_state: Optional[Tuple[torch.Tensor, torch.device]] = None
        self.last_embeddings: Dict[str, torch.Tensor] = {}

    @staticmethod
    def side_features(batch: Dict[str, Any]) -> Dict[str, Any]:
        return {s: batch[s] for s in ("anchor", "positive", "negative") if s in batch}

    def embed(self, batch: Dict[str, Any], generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
        if self.target is not None and generator is not None:  # replayed by the momentum target's pass
            self._prepare_state = (generator.get_state(), generator.device)
        if self.teacher is not None and generator is not None:  # replayed: the teacher sees the batched augmentations
            self._view_state = (generator.get_state(), generator.device)
        features = self.side_features(batch)
        if self.second_tower is None:
            return self.model(features, train=True, generator=generator)
        anchor = self.second_tower({"anchor": features.pop("anchor")}, train=True, generator=generator)
        return {**anchor, **self.model(features, train=True, generator=generator)}

    def compute_loss(self, emb: Dict[str, torch.Tensor], batch: Dict[str, Any]):
        if "num_views" in batch:  # a multi-view batch: the loss's forward_views (anycl.data.views)
            return multiview_loss(self, emb, batch)
        negative = emb.get("negative")
        if negative is not None:
            negative = negative.view(emb["anchor"].shape[0], batch["num_negatives"], -1)
        self.last_embeddings = {s: emb[s].detach() for s in ("anchor", "positive") if s in emb}
        extra = {}
        if self.target is not None:  # the EMA copy's embeddings of the same views (anycl.losses.momentum)
            extra["target"] = self.target_embeddings(batch)
        loss = self.loss
        select = getattr(loss, "select", None)
        if "dataset" in batch and select is not None:  # several data sets: their own loss (anycl.losses.multi_dataset)
            loss = select(batch["dataset"])
        # per-row numbers the loss reads: scores (anycl.losses.graded), teacher embeddings (anycl.losses.distill)
        rows = {c: batch["scores"][c] for c in getattr(loss, "score_columns", ()) if c in batch.get("scores", {})}
        if getattr(loss, "needs_teacher", False) and "teacher" in batch:
            rows["teacher"] = batch["teacher"]
        if getattr(loss, "needs_view_teacher", False):  # once per (full) batch, no gradient (distill_teacher)
            if self.teacher is None:
                raise ConfigError("the distill loss needs a teacher: fit(..., teacher=...)")
            state, self._view_state = self._view_state, None  # None under GradCache: the loaded views only
            rows["teacher"] = self.teacher.targets(batch, self.model, emb["anchor"].device, state)
        if self.guide is not None:  # once per (full) batch, no gradient (anycl.training.guide)
            g = self.guide.embed(batch, emb["anchor"].device)
            if g.get("negative") is not None:
                g["negative"] = g["negative"].view(emb["anchor"].shape[0], batch["num_negatives"], -1)
            extra["guide"] = g
        # several processes: every process's rows are candidates (see anycl.distributed)
        out = loss_across_processes(
            loss, emb["anchor"], emb["positive"], negative, batch.get("labels"), row_values=rows or None, **extra
        )
        masked = getattr(loss, "last_guide_masked", None) if self.guide is not None else None
        if masked is not None:  # logged with the loss: how many in-batch candidates per anchor the guide masked
            out = {**out, "guide_masked": masked} if isinstance(out, dict) else {"loss": out, "guide_masked": masked}
        return out

    def target_embeddings(
        self, batch: Dict[str, Any], sides: Sequence[str] = ("anchor", "positive")
    ) -> Dict[str, torch.Tensor]:
        """The batch's ``sides`` (anchor and positive) embedded by the momentum target, without gradient,
        replaying the augmentation generator state that :meth:`embed` saw (a fresh state under GradCache).
        A multi-view batch asks for its global views only (``sides=("anchor",)``: :mod:`anycl.data.views`)."""
        assert self.target is not None  # called only for a loss with a momentum target
        state, device = self._prepare_state or (None, None)
        self._prepare_state = None
        views = {s: batch[s] for s in sides if s in batch}
        return self.target(views, state, device)

    def after_optimizer_step(self, step: int, total: Optional[int]) -> None:
        """Called after every optimiser step: the loss's own update (its ``on_train_step_end``, e.g. DINO's
        teacher prototypes; a loss is any ``nn.Module``, so the hook is optional), then the momentum target (if
        any) moved towards the model."""
        hook = getattr(self.loss, "on_train_step_end", None)
        if hook is not None:
            hook(step, total)
        if self.target is not None:
            self.target.update(self.model, step, total)

    def forward(self, batch: Dict[str, Any], generator: Optional[torch.Generator] = None):
        return self.compute_loss(self.embed(batch, generator), batch)


def second_tower(model: nn.Module, loss: nn.Module, target, guide, teacher) -> Optional[nn.Module]:
    """A trainable copy of ``model`` when the loss asks for one (``second_tower``), else None; refused beside a
    momentum target, a guide or a distillation teacher (each embeds the batch with one model)."""
    if not getattr(loss, "second_tower", False):
        return None
    name = getattr(loss, "registry_name", type(loss).__name__)
    for what, given in (("a momentum target", target), ("a guide model", guide), ("a distillation teacher", teacher)):
        if given is not None:
            raise ConfigError(f"loss {name!r} trains a second copy of the model and does not combine with {what}")
    return copy.deepcopy(model)


def check_finite(loss: torch.Tensor, step: int, epoch: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"the loss became {loss.item()} at step {step} (epoch {epoch}); lower "
            f"the learning rate or raise the temperature"
        )
