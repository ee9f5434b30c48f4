"""Momentum (EMA) target of a model, for BYOL and MoCo-style key encoders.

The training module consults the loss: a loss with a ``momentum_target`` dict (see
:class:`anycl.losses.ContrastiveLoss`) gets a :class:`MomentumTarget` — a frozen copy of the whole
:class:`~anycl.model.ContrastiveModel` (encoders and projection heads) that embeds each batch again,
without gradient, and follows the online model as an exponential moving average after every optimiser
step. The loss itself still sees embeddings only.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, Mapping, Optional

import torch
from torch import nn

from anycl.errors import ConfigError

SCHEDULES = ("cosine", "constant")


def momentum_at(
    step: int, total: Optional[int], momentum: float, final_momentum: float = 1.0, schedule: str = "cosine"
) -> float:
    r"""The EMA momentum after ``step`` of ``total`` optimiser steps.

    ``"cosine"`` (BYOL): :math:`\tau_k = \tau_\mathrm{end} - (\tau_\mathrm{end} - \tau_0)(\cos(\pi k/K) + 1)/2`,
    from ``momentum`` at step 0 to ``final_momentum`` at the last step. ``"constant"``: ``momentum``.
    """
    if schedule == "constant" or not total:
        return float(momentum)
    if schedule != "cosine":
        raise ConfigError(f"momentum schedule must be one of {SCHEDULES}, got {schedule!r}")
    progress = min(max(step / total, 0.0), 1.0)
    return final_momentum - (final_momentum - momentum) * (math.cos(math.pi * progress) + 1) / 2


class MomentumTarget(nn.Module):
    """A frozen EMA copy of ``model``.

    Args:
        model: the online model (a ``ContrastiveModel``, or any module with the same call signature).
        momentum: :math:`\\tau_0` (default 0.99). final_momentum: the value at the last step (default 1).
        schedule: ``"cosine"`` (default) or ``"constant"``.

    ``forward(features_by_side, generator_state)`` embeds with the copy under ``no_grad`` (same
    augmentation randomness as the online pass when given the generator state it started from);
    ``update(online, step, total)`` moves each parameter: ``target ← m·target + (1 − m)·online``.
    Buffers (BatchNorm statistics) are copied. Its state is part of the training module's
    ``state_dict`` (prefix ``target.``), so checkpoints carry it.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.99, final_momentum: float = 1.0, schedule: str = "cosine"):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ConfigError(f"momentum schedule must be one of {SCHEDULES}, got {schedule!r}")
        for name, v in (("momentum", momentum), ("final_momentum", final_momentum)):
            if not 0 <= v <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {v}")
        self.model = copy.deepcopy(model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.momentum = float(momentum)
        self.final_momentum = float(final_momentum)
        self.schedule = schedule
        self.last_momentum = float(momentum)

    @torch.no_grad()
    def forward(
        self,
        features_by_side: Mapping[str, Any],
        generator_state: Optional[torch.Tensor] = None,
        device: Optional[torch.device] = None,
    ) -> Dict[str, torch.Tensor]:
        gen = None
        if generator_state is not None:
            gen = torch.Generator(device=device or "cpu")
            gen.set_state(generator_state)
        self.model.train(self.training)
        out = self.model(features_by_side, train=True, generator=gen)
        return {k: v.detach() for k, v in out.items()}

    @torch.no_grad()
    def update(self, online: nn.Module, step: int, total: Optional[int]) -> float:
        m = momentum_at(step, total, self.momentum, self.final_momentum, self.schedule)
        self.last_momentum = m
        for t, o in zip(self.model.parameters(), online.parameters()):
            t.mul_(m).add_(o.detach().to(t.dtype), alpha=1 - m)
        for tb, ob in zip(self.model.buffers(), online.buffers()):
            tb.copy_(ob)
        return m


def embedding_width(model: nn.Module) -> Optional[int]:
    """The anchor side's embedding width of a ContrastiveModel (head output, else encoder width)."""
    tower_fn = getattr(model, "tower", None)
    if tower_fn is None:
        return getattr(model, "embedding_dim", None)
    tower = tower_fn("anchor")
    if tower.head is not None:
        spec = getattr(tower.head, "anycl_spec", None)
        if spec and "out_dim" in spec:
            return int(spec["out_dim"])
        last = [m for m in tower.head.modules() if isinstance(m, nn.Linear)]
        return last[-1].out_features if last else None
    width = tower.adapter.embedding_dim(tower.encoder)
    return None if width is None else int(width)


def prepare_loss(model: nn.Module, loss: nn.Module) -> Optional[MomentumTarget]:
    """What the training module does with a loss before training: size its heads (``loss.build(width)``)
    and make the momentum target it asks for (or return None)."""
    build = getattr(loss, "build", None)
    if build is not None:
        width = embedding_width(model)
        if width is None:
            needs = getattr(loss, "predictor", "absent") is None
            if needs:
                raise ConfigError(
                    f"loss {getattr(loss, 'registry_name', type(loss).__name__)!r} needs the embedding width to size "
                    f"its predictor, and the model does not state it; pass loss_options={{'dim': <width>}}"
                )
        else:
            build(width)
    spec = getattr(loss, "momentum_target", None)
    return MomentumTarget(model, **spec) if spec else None
