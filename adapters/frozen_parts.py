"""Encoders that keep some of their modules fixed while the rest trains (a mixin shared by the audio encoders).

A frozen part takes no gradient, and it stays in evaluation mode whenever the encoder is put in training mode: no
dropout, and its batch norms keep their running statistics. The whole-tower freeze of ``fit(freeze=...)`` is the
tower's (:class:`anycl.model.tower.Tower`); this is for parts of one encoder."""

from __future__ import annotations

from typing import Iterable, List

from torch import nn


class FrozenParts(nn.Module):
    """Mixin: :meth:`freeze_parts` fixes modules; :meth:`train` keeps them in evaluation mode."""

    def freeze_parts(self, parts: Iterable[nn.Module]) -> None:
        """Fix ``parts`` (modules of this encoder): no gradient, evaluation mode in training."""
        parts = list(parts)
        for part in parts:
            part.requires_grad_(False)
        self._frozen_parts = parts  # a plain list: the modules are registered as this encoder's already

    @property
    def frozen_parts(self) -> List[nn.Module]:
        return getattr(self, "_frozen_parts", [])

    def train(self, mode: bool = True):
        """As :meth:`nn.Module.train`, but the frozen parts stay in evaluation mode."""
        super().train(mode)
        for part in self.frozen_parts:
            part.eval()
        return self
