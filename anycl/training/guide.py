"""GISTEmbed-style guiding, the guide model (part 1 of 3; Solatorio 2024, arXiv:2402.16829).

``fit(..., guide=...)`` makes a :class:`Guide`: a frozen model that embeds every training batch once
more, without gradient and in evaluation mode (no dropout), cached once per batch — with GradCache once
per full batch, not per mini-batch. Its embeddings reach the loss as ``guide={"anchor", "positive",
"negative"}`` (gathered across processes like the trained embeddings, so the mask columns line up with
the gathered candidates: :mod:`anycl.distributed`); the loss masks the in-batch candidates the guide
rates above the anchor–positive score minus a margin (:mod:`anycl.losses.guide_mask`). Losses still see
embeddings only.

What ``guide`` can be:

``"start"``
    A frozen copy of the starting model (no extra download). It shares the model's adapters, so it
    embeds the batch's already-collated features.
a :class:`~anycl.model.ContrastiveModel`
    Any anycl model with towers for the same modalities; it collates the batch's loaded items itself
    (its own tokenizer).
a path or name
    An anycl model folder (``model.save``), or — text only — a sentence-transformers model path or
    Hugging Face name, loaded as an anycl text tower.

The three parts of guiding: this guide model; the mask it drives in the loss, :mod:`anycl.losses.guide_mask`;
the same rule applied to mined hard negatives (``sampler_options={"guide_filter": True}``),
:mod:`anycl.mining.guide_filter`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional

import torch
from torch import nn

from anycl.data.batching import to_device
from anycl.errors import ConfigError
from anycl.model.contrastive import CONFIG_FILE, ContrastiveModel, load

from .gradcache import count_rows, mini_batches, take_rows

SIDES = ("anchor", "positive", "negative")


class Guide:
    """A frozen model that embeds training batches without gradient.

    Args:
        model: a :class:`~anycl.model.ContrastiveModel` (its parameters are frozen here).
        reuse_features: embed the batch's collated features (the guide shares the trained model's
            adapters, as ``"start"`` does); otherwise the batch must carry the loaded items under
            ``"views"`` (``BatchBuilder(keep_views=True)``) and the guide collates them itself.
        chunk: embed at most this many rows at once (the trainer sets GradCache's mini-batch, so the
            guide's activations stay within a mini-batch's memory); None: a side at once.

    Not an ``nn.Module`` on purpose: it is no part of the training module's parameters, state or
    checkpoints. It moves itself to the device of the batch on first use.
    """

    def __init__(self, model: ContrastiveModel, reuse_features: bool = False, chunk: Optional[int] = None):
        if not hasattr(model, "tower"):
            raise ConfigError(f"a guide must be an anycl ContrastiveModel, got {type(model).__name__}")
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        self.model = model
        self.reuse_features = bool(reuse_features)
        self.chunk = chunk
        self.calls = 0  # batches embedded (tests check "once per batch")

    @property
    def needs_views(self) -> bool:
        return not self.reuse_features

    def _features(self, batch: Mapping[str, Any], side: str, device: torch.device):
        if self.reuse_features:
            return batch[side]
        views = batch.get("views")
        if views is None or side not in views:
            raise ConfigError(
                "this guide collates the loaded items itself, but the batch has none; build batches with "
                "BatchBuilder(..., keep_views=True) (fit does this when guide= is set)"
            )

        return to_device(self.model.tower(side).adapter.collate(list(views[side])), device)

    @torch.no_grad()
    def embed(self, batch: Mapping[str, Any], device: Optional[torch.device] = None) -> Dict[str, torch.Tensor]:
        """The guide's (rows, D) embeddings of each side present in ``batch`` (negatives flattened,
        B·K rows, like the trained model's)."""
        model = self.model
        if device is not None and model.device != torch.device(device):
            model.to(device)
        model.eval()
        self.calls += 1
        out: Dict[str, torch.Tensor] = {}
        for side in SIDES:
            if side not in batch:
                continue
            feats = self._features(batch, side, device or model.device)
            tower = model.tower(side)
            n = count_rows(feats, tower.adapter)
            step = self.chunk or n
            parts = [tower(take_rows(tower.adapter, feats, s, e, n), train=False) for s, e in mini_batches(n, step)]
            out[side] = (torch.cat(parts) if len(parts) > 1 else parts[0]).detach().float()
        return out


def make_guide(
    spec: Any, model: ContrastiveModel, build_text_model: Optional[Callable[[str], ContrastiveModel]] = None
) -> Optional[Guide]:
    """The :class:`Guide` for ``fit``'s ``guide`` option (None: no guide).

    ``build_text_model(name)`` loads a sentence-transformers model as an anycl model with the same
    sides (``fit`` passes one).
    """
    if spec is None or spec is False:
        return None
    if isinstance(spec, Guide):
        return spec
    if isinstance(spec, str) and spec == "start":
        return Guide(_frozen_copy(model), reuse_features=True)
    if isinstance(spec, nn.Module):
        if not hasattr(spec, "tower"):
            raise ConfigError(
                f"guide must be 'start', a model path/name or an anycl ContrastiveModel, got an "
                f"nn.Module of type {type(spec).__name__}"
            )
        like_model: Any = spec  # any nn.Module with tower(side), like a ContrastiveModel
        _check_modalities(like_model, model)
        return Guide(_frozen_copy(like_model))
    if isinstance(spec, (str, Path)):
        path = Path(spec)

        if (path / CONFIG_FILE).exists() or (path / "model" / CONFIG_FILE).exists():
            guide_model = load(str(path))
        else:
            modalities = {model.tower(s).modality for s in SIDES}
            st_towers = all("sentence-transformers" in model.tower(s).adapter.export_formats for s in SIDES)
            if not st_towers or build_text_model is None:
                raise ConfigError(
                    f"guide={str(spec)!r}: a sentence-transformers model can guide text models only; this model's "
                    f"modalities are {sorted(modalities)} (pass 'start' or an anycl ContrastiveModel)"
                )
            guide_model = build_text_model(str(spec))
        _check_modalities(guide_model, model)
        return Guide(guide_model)
    raise ConfigError(
        f"guide must be 'start', a model path/name or an anycl ContrastiveModel, got {type(spec).__name__}"
    )


def _frozen_copy(model: ContrastiveModel) -> ContrastiveModel:
    """A copy of a ContrastiveModel's towers only (not what a trained model carries along, such as its
    ``trainer``); the caller's model is left as it is."""
    if isinstance(model, ContrastiveModel):
        towers: Dict[str, Any] = {k: copy.deepcopy(t) for k, t in model.towers.items()}  # Tower modules
        return ContrastiveModel(towers, dict(model.sides))
    return copy.deepcopy(model)


def _check_modalities(guide: ContrastiveModel, model: ContrastiveModel) -> None:
    for side in SIDES:
        want = model.tower(side).modality
        try:
            have = guide.tower(side).modality
        except ConfigError:
            have = None
        if have != want:
            raise ConfigError(
                f"the guide has no {want} tower for the {side} side (guide modalities: "
                f"{getattr(guide, 'modalities', '?')})"
            )
