"""MoCo-style memory queue: negatives from past batches for any InfoNCE-family loss.

Reference: He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation Learning" (CVPR,
arXiv:1911.05722).
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import torch
from torch import nn

from anycl.errors import ConfigError

from . import registry
from .base import ContrastiveLoss, check_pair
from .registry import register


class MemoryQueue(nn.Module):
    """A first-in first-out bank of the last ``size`` key embeddings.

    ``get()`` returns a copy of the filled entries (M, D) — call it *before* ``enqueue`` so that a batch
    is never its own negative. Its contents are part of ``state_dict()`` (as extra state), so a
    checkpoint saves and restores them.
    """

    def __init__(self, size: int):
        super().__init__()
        if int(size) < 1:
            raise ConfigError(f"queue_size must be >= 1, got {size}")
        self.size = int(size)
        self.bank: Optional[torch.Tensor] = None  # (size, D), allocated at the first enqueue
        self.ptr = 0
        self.filled = 0

    def check_batch(self, batch: int) -> None:
        if self.size < batch:
            raise ConfigError(
                f"the memory queue holds {self.size} entries, fewer than the batch of {batch}: each step would "
                f"push out the whole queue; use queue_size >= batch_size (typically 10-100x)"
            )

    def get(self) -> Optional[torch.Tensor]:
        """The stored keys (M, D), oldest first is not guaranteed; None while empty."""
        if self.bank is None or self.filled == 0:
            return None
        return self.bank[: self.filled].clone()

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        keys = keys.detach()
        n, dim = keys.shape
        self.check_batch(n)
        if self.bank is None or self.bank.shape[1] != dim:
            self.bank = keys.new_zeros(self.size, dim, dtype=torch.float32)
            self.ptr = self.filled = 0
        self.bank = self.bank.to(keys.device)
        idx = (self.ptr + torch.arange(n, device=keys.device)) % self.size
        self.bank[idx] = keys.float()
        self.ptr = (self.ptr + n) % self.size
        self.filled = min(self.size, self.filled + n)

    def get_extra_state(self) -> Any:
        return {
            "size": self.size,
            "ptr": self.ptr,
            "filled": self.filled,
            "bank": None if self.bank is None else self.bank.detach().cpu().clone(),
        }

    def set_extra_state(self, state: Any) -> None:
        if state["size"] != self.size:
            raise ConfigError(f"the checkpoint's queue holds {state['size']} entries, this one {self.size}")
        self.ptr, self.filled = int(state["ptr"]), int(state["filled"])
        bank = state["bank"]
        device = self.bank.device if self.bank is not None else "cpu"
        self.bank = None if bank is None else bank.to(device).clone()

    def extra_repr(self) -> str:
        return f"size={self.size}, filled={self.filled}"


def _takes_queue(loss: nn.Module) -> bool:
    try:
        return "queue" in inspect.signature(loss.forward).parameters
    except (TypeError, ValueError):
        return False


@register("moco", "memory_queue", "queue")
class QueueLoss(ContrastiveLoss):
    r"""Wraps an InfoNCE-family loss so that keys of past batches are extra negatives (MoCo).

    Each step: the queue's current entries are handed to the wrapped loss, then the batch's keys are
    enqueued (a batch is never its own negative). With ``key_encoder="momentum"`` (MoCo) the keys —
    and the positives the anchors are scored against — are embeddings of the positive view by a
    momentum (EMA) copy of the model, so the queue holds keys of a slowly changing encoder; with
    ``key_encoder=None`` the keys are the online positives, detached.

    Args:
        base: the wrapped loss, a registered name or module (default ``"infonce"``).
        queue_size: number of stored keys (default 4096); must be ≥ the batch size.
        key_encoder: ``"momentum"`` (default) or ``None``.
        momentum: EMA momentum of the key encoder (default 0.999, MoCo's; constant).
        **options: options of the base loss (for example ``temperature=0.2``).

    Inputs:
        anchor, positive: (B, D). negative: optional (B, K, D), passed on. labels: passed on (queue
        entries are always negatives). target: {"positive": (B, D)} from the momentum target.

    How the queue reaches the base loss: a loss whose ``forward`` takes ``queue=`` (infonce, simclr,
    dcl, supcon, siglip) gets the entries (M, D) as negatives shared by every anchor; any other loss
    (a user's function, triplet) gets them as each row's negatives, ``negative`` of shape (B, K + M, D).
    """

    distributed = "global"  # it sees the gathered batch and enqueues the gathered keys: same queue everywhere

    def __init__(
        self,
        base: Any = "infonce",
        queue_size: int = 4096,
        key_encoder: Optional[str] = "momentum",
        momentum: float = 0.999,
        **options,
    ):
        super().__init__()

        self.base = registry.get(base, **options)
        if getattr(self.base, "negative_free", False):
            raise ConfigError(
                f"a memory queue supplies negatives, but {getattr(self.base, 'registry_name', base)!r} is negative-free"
            )
        if key_encoder not in ("momentum", None):
            raise ConfigError(f"key_encoder must be 'momentum' or None, got {key_encoder!r}")
        if not 0 <= momentum <= 1:
            raise ConfigError(f"momentum must be in [0, 1], got {momentum}")
        self.queue = MemoryQueue(queue_size)
        self.key_encoder = key_encoder
        self.needs_labels = getattr(self.base, "needs_labels", False)
        self.accepts_negatives = getattr(self.base, "accepts_negatives", True)
        self.momentum_target = (
            {"momentum": float(momentum), "final_momentum": float(momentum), "schedule": "constant"}
            if key_encoder == "momentum"
            else None
        )
        self._base_takes_queue = _takes_queue(self.base)

    def forward(self, anchor, positive, negative=None, labels=None, target=None):
        check_pair(anchor, positive, "moco")
        batch, dim = anchor.shape
        self.queue.check_batch(batch)
        if self.key_encoder == "momentum":
            if target is None or "positive" not in target:
                raise ValueError(
                    "moco with key_encoder='momentum' needs the momentum target's embeddings "
                    "(target={'positive': ...}); anycl's training module provides them, or pass key_encoder=None"
                )
            keys = target["positive"].detach()
            check_pair(anchor, keys, "moco (keys)")
            positive = keys
        else:
            keys = positive.detach()
        bank = self.queue.get()  # before enqueueing: this batch is never its own negative
        if bank is None:
            out = self.base(anchor, positive, negative, labels)
        elif self._base_takes_queue:
            out = self.base(anchor, positive, negative, labels, queue=bank.to(anchor.dtype))
        else:
            rows = bank.to(anchor.dtype).unsqueeze(0).expand(batch, -1, -1)
            if negative is not None:
                negative = negative.view(batch, -1, dim) if negative.dim() == 3 else negative.unsqueeze(1)
                rows = torch.cat([negative, rows], dim=1)
            out = self.base(anchor, positive, rows, labels)
        if self.training:
            self.queue.enqueue(keys)
        return out

    def on_train_step_end(self, step: int, total: Optional[int]) -> None:
        hook = getattr(self.base, "on_train_step_end", None)
        if hook is not None:
            hook(step, total)
