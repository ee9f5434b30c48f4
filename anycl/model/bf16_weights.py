"""``"torch-bf16"`` for towers fed token ids: the tower run on a bfloat16 copy of its weights.

Autocast casts each matmul's input to bfloat16 and its output back to float32 around every layer norm, GELU and
softmax; a text tower fed integer token ids can instead run wholly in bfloat16 on a bfloat16 copy of its weights
(made once per ``encode`` call, tens of milliseconds for all-MiniLM-L6-v2), which saves those casts and halves the
memory traffic of the elementwise work. Measured against autocast on a mining pass and against float32 within the
tolerance stated in docs/scale.md. Towers fed float features (log-mels, pixels) keep autocast: their data work is
float32 by design (:func:`anycl.model.tower.full_precision`).
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, Optional

import torch
from torch.func import functional_call


def takes_token_ids(features: Any) -> bool:
    """Whether ``features`` (a tensor, or a mapping of them) hold no floating-point tensor: token ids and masks."""
    values = features.values() if isinstance(features, dict) else [features]
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    return bool(tensors) and not any(t.is_floating_point() for t in tensors)


def bf16_state(tower: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Every floating-point parameter and buffer of ``tower`` cast to bfloat16 (others as they are), by name."""
    named = itertools.chain(tower.named_parameters(), tower.named_buffers())
    with torch.no_grad():
        return {n: t.detach().to(torch.bfloat16) if t.is_floating_point() else t for n, t in named}


class Bf16Runner:
    """``features -> (B, D) float32 CPU tensor``: ``tower`` on a bfloat16 copy of its weights, made on the first
    batch of token ids and kept for this runner (one ``encode`` call, during which the weights do not change);
    float features run under the caller's autocast scope as they are."""

    def __init__(self, tower: torch.nn.Module, with_head: bool):
        self.tower, self.with_head = tower, with_head
        self.state: Optional[Dict[str, torch.Tensor]] = None

    def __call__(self, features: Any) -> torch.Tensor:
        kwargs = {"train": False, "use_head": self.with_head}
        if not takes_token_ids(features):
            return self.tower(features, **kwargs).float().cpu()
        if self.state is None:
            self.state = bf16_state(self.tower)
        return functional_call(self.tower, self.state, (features,), kwargs).float().cpu()
