"""Several data sets in one run, as losses: one loss per data set, the batch's own chosen by its data set.

The data (:mod:`anycl.data.multi`) names each row's data set; the sampler (:mod:`anycl.sampling.multi_dataset`)
makes every batch from one data set and the batch builder names it in ``batch["dataset"]``; the training step
(:mod:`anycl.training.step`) scores the batch with ``MultiLoss.select(batch["dataset"])``.
"""

from __future__ import annotations

from typing import Mapping

from torch import nn

from anycl.errors import ConfigError


class MultiLoss(nn.Module):
    """One loss per data set; ``select(name)`` gives the batch's loss (the trainer calls it)."""

    def __init__(self, losses: Mapping[str, nn.Module]):
        super().__init__()
        self.losses = nn.ModuleDict(dict(losses))
        for name, loss in self.losses.items():
            if getattr(loss, "momentum_target", None):
                raise ConfigError(
                    f"the loss of data set {name!r} keeps a momentum target (byol/moco style), which "
                    f"several data sets in one run do not support; train it on its own"
                )
        self.registry_name = "+".join(
            sorted({getattr(fn, "registry_name", type(fn).__name__) for fn in self.losses.values()})
        )
        self.in_batch_negatives = any(getattr(fn, "in_batch_negatives", True) for fn in self.losses.values())

    def select(self, name: str) -> nn.Module:
        return self.losses[name]

    def build(self, embedding_dim: int) -> None:
        for loss in self.losses.values():
            build = getattr(loss, "build", None)
            if build is not None:
                build(embedding_dim)

    def forward(self, *a, **kw):  # pragma: no cover - the trainer selects a data set's loss first
        raise RuntimeError("MultiLoss scores a batch through select(batch['dataset'])")
