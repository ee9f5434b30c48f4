"""The teacher of view distillation (``fit(..., teacher=...)``, :mod:`anycl.losses.distill_views`), any modality.

:func:`open_view_teacher` turns what the user gave into a frozen :class:`~anycl.model.ContrastiveModel` with its
own adapter (its own normalisation, input size, sample rate):

- an anycl model (object, model folder or fit output folder);
- a backbone or model name the modality's adapter accepts as ``model=`` (images: ``"torchvision/<arch>"``,
  ``"timm/<name>"``, a Hugging Face vision model; audio: a transformers model name or folder; text: a
  sentence-transformers / Hugging Face name), with its pretrained weights when it has them;
- an ``nn.Module`` encoder (used as the modality's encoder, as ``encoder=`` would be).

:class:`ViewTeacher` embeds, under ``torch.no_grad`` and in eval mode, the views the student's batch builder made
(``batch["views"]``: each adapter's ``from_view`` brings the student's view to the teacher's input: an image
resized to its crop, a clip resampled to its rate), or once per item before training (the cache: each item's
deterministic ``eval_view``). Not an ``nn.Module`` on purpose: the teacher is no part of the training module's
parameters, state, checkpoints or saved model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from anycl.data.batching import to_device
from anycl.errors import ConfigError

from .contrastive import ContrastiveModel, build_model, load
from .folder import CONFIG_FILE

SIDES = ("anchor", "positive", "negative")


def open_view_teacher(spec: Any, modality: str) -> ContrastiveModel:
    """The teacher ``spec`` as a ContrastiveModel with a ``modality`` tower (see the module docstring)."""
    if isinstance(spec, ContrastiveModel) or (isinstance(spec, nn.Module) and hasattr(spec, "tower")):
        model: Any = spec
    elif isinstance(spec, (str, os.PathLike)):
        path = Path(os.fspath(spec))
        if (path / CONFIG_FILE).exists() or (path / "model" / CONFIG_FILE).exists():
            model = load(str(path))
        else:
            model = _build({s: modality for s in SIDES}, os.fspath(spec), model=os.fspath(spec))
    elif isinstance(spec, nn.Module):
        model = _build({s: modality for s in SIDES}, type(spec).__name__, encoder=spec)
    else:
        raise ConfigError(
            f"teacher must be an anycl model (object or folder), a backbone/model name or an nn.Module, "
            f"got {type(spec).__name__}"
        )
    have = list(getattr(model, "modalities", []))
    if modality not in have:
        raise ConfigError(
            f"teacher={_describe(spec)} embeds {have or 'unknown modalities'}, but the student's "
            f"{modality} items need a {modality} teacher"
        )
    return model


def _build(sides, what: str, **how) -> ContrastiveModel:
    try:
        return build_model(sides, head=None, **how)
    except ConfigError as exc:
        raise ConfigError(f"teacher={what!r}: {exc}") from None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(
            f"teacher={what!r} is neither an anycl model folder nor a model the "
            f"{sides['anchor']} adapter can open ({type(exc).__name__}: {exc})"
        ) from None


def _describe(spec: Any) -> str:
    return repr(os.fspath(spec)) if isinstance(spec, (str, os.PathLike)) else type(spec).__name__


class ViewTeacher:
    """A frozen teacher model that embeds the student's views (or items, once) without gradient.

    Args:
        model: the teacher (:func:`open_view_teacher`); its parameters are frozen and it is put in eval mode.
        modality: the modality it embeds (its tower for it is used).
        batch_size: views embedded at once.
        cache: embed each item once before training (``fit`` stores the vectors with the rows) instead of each
            view of each batch.

    ``calls`` counts teacher forward passes and ``items`` the views/items embedded (tests check the cache).
    """

    def __init__(self, model: ContrastiveModel, modality: str, batch_size: int = 64, cache: bool = False):
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        self.model = model
        self.modality = modality
        self.batch_size = int(batch_size)
        self.cache = bool(cache)
        self.both_cached = False  # set by fit: a cached item's vector is the target of both views (self-supervised)
        self.calls = 0
        self.items = 0
        self.dim = self._width()

    @property
    def tower(self):
        return self.model.tower(self.modality)

    def _width(self) -> int:
        width = self.model.embedding_width(self.modality) if hasattr(self.model, "embedding_width") else None
        if width is None:
            views = self.tower.adapter.example_views()
            if not views:
                raise ConfigError(f"cannot tell the teacher's embedding width ({self.modality}): it states none")
            width = int(self._embed(views[:1], None, torch.device("cpu")).shape[-1])
            self.calls, self.items = 0, 0
        return int(width)

    @torch.no_grad()
    def _embed(self, views: Sequence[Any], source: Any, device: Optional[torch.device]) -> torch.Tensor:
        tower = self.tower
        if device is not None and next(iter(self.model.parameters()), torch.zeros(0)).device != torch.device(device):
            self.model.to(device)
        self.model.eval()
        adapter = tower.adapter
        out = []
        for s in range(0, len(views), self.batch_size):
            chunk = list(views[s : s + self.batch_size])
            if source is not None:
                chunk = [adapter.from_view(v, source) for v in chunk]
            feats = to_device(adapter.collate(chunk), device or torch.device("cpu"))
            self.calls += 1
            self.items += len(chunk)
            with_head = getattr(tower, "encode_with_head", True)  # what the teacher's encode gives
            out.append(tower(feats, train=False, use_head=with_head).detach().float())
        return torch.cat(out) if len(out) > 1 else out[0]

    def embed_views(self, views: Sequence[Any], source_adapter: Any, device: Optional[torch.device] = None):
        """(N, D) float32: the teacher's embeddings of views a student adapter (``source_adapter``) made."""
        return self._embed(views, source_adapter, device)

    def embed_items(self, items: Sequence[Any], device: Optional[torch.device] = None) -> torch.Tensor:
        """(N, D) float32 on the CPU: each raw item's deterministic view (``load`` + ``eval_view``), embedded once."""
        adapter = self.tower.adapter
        views = [adapter.eval_view(adapter.load(x)) for x in items]
        return self._embed(views, None, device).cpu()

    def targets(self, batch: dict, student: Any, device: torch.device, state: Any = None) -> torch.Tensor:
        """(B, V, D): the teacher's embeddings of a built batch: the cached per-item vectors (``batch["teacher"]``)
        or the batch's views (``batch["views"]``) of the sides of the teacher's modality (anchor, then positive).

        ``state``: (generator state, device) the student's forward started from; given, the student adapters'
        batched augmentations are replayed side by side, as the student's ``prepare`` drew them
        (``Adapter.batch_views``), so that the teacher sees exactly the student's views."""
        if "teacher" in batch:
            t = batch["teacher"].to(device)[:, None]
            return torch.cat([t, t], 1) if self.both_cached else t
        views = batch.get("views")
        if views is None:
            raise ConfigError(
                "the teacher embeds the views the student sees, but the batch has none; build batches with "
                "BatchBuilder(..., keep_views=True) (fit does this when teacher= is set)"
            )
        gen = None
        if state is not None:
            gen = torch.Generator(device=state[1])
            gen.set_state(state[0])
        out = []
        for side in ("anchor", "positive"):  # the order of the student's forward (ContrastiveModel.forward)
            tower = student.tower(side)
            if side == "positive" and tower.modality != self.modality:
                break
            seen = tower.adapter.batch_views(batch[side], gen) if gen is not None else None
            out.append(self.embed_views(views[side] if seen is None else seen, tower.adapter, device))
        return torch.stack(out, 1)
