"""What one call of :meth:`anycl.training.trainer.Trainer.train` carries from step to step: the loss meter
(the mean loss since the last logged step, items per second) and the run's set-up (:class:`Run`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch


class Meter:
    """The mean loss since the last logged step, and the items per second since training started."""

    def __init__(self) -> None:
        self.loss, self.batches, self.items, self.started = 0.0, 0, 0, time.perf_counter()

    def add(self, loss: torch.Tensor, items: int) -> None:
        self.loss += float(loss.detach())
        self.batches += 1
        self.items += items

    def mean_loss(self) -> float:
        return self.loss / self.batches

    def rate(self) -> float:
        return self.items / max(time.perf_counter() - self.started, 1e-9)

    def logged(self) -> None:
        self.loss, self.batches = 0.0, 0  # the logged loss is the mean since the last logged step


@dataclass
class Run:
    """What one call of ``train`` sets up for its steps."""

    acc: Any  # the Accelerator
    params: List[torch.nn.Parameter]  # the trainable parameters (clipped)
    gradcache: Any  # anycl.training.gradcache's state, or None
    total: Optional[int]  # optimiser steps to run (None: an endless stream)
    log_every: int  # a logged step every this many
    eval_epochs: int = 1  # without eval_every: an evaluation after every this many epochs, and after the last
    bar: Any = None  # the steps' progress bar
    meter: Meter = field(default_factory=Meter)
