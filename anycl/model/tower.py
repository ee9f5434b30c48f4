"""A tower: one modality's adapter + encoder (+ projection head), and the projection heads."""

from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from anycl.errors import ConfigError
from anycl.losses.base import full_precision


def projection_head(in_dim: int, out_dim: int = 128, hidden_dim: Optional[int] = None, layers: int = 2) -> nn.Module:
    """SimCLR-style MLP head: (Linear → BatchNorm → ReLU) × (layers − 1) → Linear."""
    hidden_dim = hidden_dim or in_dim
    mods: List[nn.Module] = []
    d = in_dim
    for _ in range(max(layers - 1, 0)):
        mods += [nn.Linear(d, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        d = hidden_dim
    mods.append(nn.Linear(d, out_dim))
    head: Any = nn.Sequential(*mods)  # Any: it carries anycl_spec, which nn.Sequential does not declare
    head.anycl_spec = {"type": "mlp", "in_dim": in_dim, "out_dim": out_dim, "hidden_dim": hidden_dim, "layers": layers}
    return head


# more layers than this is no projection head anycl makes (and would only be a loop that builds modules)
MAX_HEAD_LAYERS = 16
_REQUIRED = object()


def _count(spec: Dict[str, Any], key: str, where: str, default: Any = _REQUIRED, most: Optional[int] = None) -> Any:
    value = spec.get(key)
    if value is None:
        if default is _REQUIRED:
            raise ConfigError(f"{where}: the projection head has no {key}")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (most is not None and value > most):
        bound = f" and at most {most}" if most is not None else ""
        raise ConfigError(f"{where}: {key} must be an integer >= 1{bound}, got {value!r}")
    return value


def build_head(spec: Optional[Dict[str, Any]], where: str = "the model config") -> Optional[nn.Module]:
    """The projection head an ``anycl_spec`` describes (its numbers checked; ``where`` names the spec in errors)."""
    if not spec:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: a projection head must be an object, got {type(spec).__name__}")
    in_dim, out_dim = _count(spec, "in_dim", where), _count(spec, "out_dim", where)
    if spec.get("type") == "mlp":
        hidden = _count(spec, "hidden_dim", where, None)
        return projection_head(in_dim, out_dim, hidden, _count(spec, "layers", where, 2, MAX_HEAD_LAYERS))
    if spec.get("type") == "linear":
        head: Any = nn.Linear(in_dim, out_dim, bias=bool(spec.get("bias", False)))  # + anycl_spec
        head.anycl_spec = dict(spec)
        return head
    raise ConfigError(f"{where}: unknown projection head type {spec.get('type')!r} (valid: 'mlp', 'linear')")


class Tower(nn.Module):
    """Adapter + encoder (+ head) for one modality.

    ``encode_with_head``: whether :meth:`ContrastiveModel.encode` returns head outputs (a shared
    cross-modal space) or the encoder's representation (SimCLR's convention for downstream use).
    """

    def __init__(self, adapter, encoder: nn.Module, head: Optional[nn.Module] = None, encode_with_head: bool = False):
        super().__init__()
        self.adapter = adapter
        self.encoder = encoder
        self.head = head
        self.encode_with_head = bool(encode_with_head and head is not None)
        self.frozen: Optional[str] = None  # "all" or "encoder" once anycl.evaluation.crossmodal.freeze ran
        adapter.attach(encoder)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:  # frozen parts keep evaluation behaviour (no dropout, fixed BatchNorm statistics)
            self.encoder.eval()
            if self.frozen == "all" and self.head is not None:
                self.head.eval()
        return self

    @property
    def modality(self) -> str:
        return self.adapter.modality

    def forward(
        self, features: Any, train: bool = True, generator: Optional[torch.Generator] = None, use_head: bool = True
    ) -> torch.Tensor:
        with full_precision(_a_tensor(features)):  # the data's work (augmentation, log-mels) in fp32, not autocast's
            features = self.adapter.prepare(features, train=train, generator=generator)
        # a frozen encoder needs no autograd graph: less memory, faster steps
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            out = _run_windows(self.encoder, self.adapter, features)
        if out.dim() != 2:
            raise ValueError(
                f"the {self.modality} encoder must return (batch, dim) embeddings, got shape {tuple(out.shape)}"
            )
        if use_head and self.head is not None:
            out = self.head(out)
        return out


def _run_windows(encoder: nn.Module, adapter: Any, features: Any) -> torch.Tensor:
    """The encoder on ``features``; where they hold K evaluation windows per item (``adapter.window_count``) and
    the encoder does not take them itself (no true ``accepts_windows``), each window is embedded on its own and
    the K embeddings averaged: any (N, ...) -> (N, D) encoder works with ``eval_crop="windows"``."""
    k = 0 if getattr(encoder, "accepts_windows", False) else adapter.window_count(features)
    if not k:
        return encoder(features)
    n = features.shape[0]
    return encoder(features.flatten(0, 1)).view(n, k, -1).mean(dim=1)


def _a_tensor(features: Any) -> Optional[torch.Tensor]:
    """A tensor of the batch's features (a tensor, or a mapping holding some), for its device; None without one."""
    if isinstance(features, torch.Tensor):
        return features
    if isinstance(features, dict):
        return next((v for v in features.values() if isinstance(v, torch.Tensor)), None)
    return None
