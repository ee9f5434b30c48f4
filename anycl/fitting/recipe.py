"""``fit``'s defaults that follow the data, and the run's recipe in words.

Self-supervised data (:func:`self_supervised`: no ``positive`` column, so the positive of each item is another
augmented view of it: audio and image folders, a list of items, any one-column data set) gets:

- a step budget (:func:`step_budget`; not for text, whose default encoder is pretrained): given neither
  ``epochs`` nor ``max_steps``, the run takes enough epochs
  for :data:`~anycl.training.epochs.DEFAULT_STEP_BUDGET` optimiser steps, at most
  :data:`~anycl.training.epochs.MAX_BUDGET_EPOCHS` (:func:`anycl.training.epochs.budget_epochs`); pairs keep
  one epoch, as sentence-transformers does;
- from shipped starting weights (the default audio CNN's, :func:`start_budget`): exactly the step budget's optimiser
  steps, without the cap on epochs (issue 29 round 9: fine-tuning a pretrained start on a small folder for 1,000
  steps rather than 100 epochs raised the protocol's worst dev margin from -0.017 to -0.011);
- full batches: the ``in_batch`` sampler's ``drop_last`` (:func:`anycl.fitting.setup.default_sampler_options`).

:func:`resolved_recipe`: the encoder, window or crop, views and augmentations, which the trainer logs in one
line with the batch size, epochs and optimiser steps (:func:`anycl.training.epochs.recipe_line`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from anycl.data.inputs import Rows
from anycl.options.fit_config import FitConfig
from anycl.training.epochs import DEFAULT_STEP_BUDGET


def self_supervised(rows: Rows) -> bool:
    """Whether the positives are augmented views of each item (no ``positive`` column) rather than given pairs."""
    return not rows.has_positive


def step_budget(cfg: FitConfig, rows: Rows, anchor_adapter: Any = None) -> Optional[int]:
    """The run's step budget: :data:`~anycl.training.epochs.DEFAULT_STEP_BUDGET` for self-supervised data given
    neither ``epochs`` nor ``max_steps``, else None (the epochs decide, 1 by default). A modality whose default
    encoder is pretrained (``anchor_adapter.pretrained_default``: text, where one-column data trains SimCSE-style
    from all-MiniLM-L6-v2) keeps one epoch."""
    if getattr(anchor_adapter, "pretrained_default", False):
        return None
    if cfg.epochs is None and cfg.max_steps is None and self_supervised(rows):
        return DEFAULT_STEP_BUDGET
    return None


def start_budget(model: Any, args: Any) -> None:
    """A run with a step budget takes exactly the budget's optimiser steps (``args.budget_exact``; its epochs
    uncapped, :func:`anycl.training.epochs.run_length`) when an encoder of ``model`` starts from shipped weights
    (``anycl_start``): a pretrained start is fine-tuned for the whole budget however small the data, not for at most
    :data:`~anycl.training.epochs.MAX_BUDGET_EPOCHS` epochs."""
    if args.step_budget and any(getattr(tower.encoder, "anycl_start", None) for tower in model.towers.values()):
        args.budget_exact = True


def _encoder(tower: Any) -> str:
    """A tower's encoder in words: the pretrained model it started from, or its class (and the shipped weights it
    started from); its parameters."""
    spec = getattr(tower.encoder, "anycl_spec", None) or {}
    name = spec.get("base_model") or type(tower.encoder).__name__
    start = getattr(tower.encoder, "anycl_start", None)  # shipped starting weights (the audio CNN's)
    name = f"{name} from {start}" if start else name
    if spec.get("readout"):  # the audio CNN's multi-layer readout: its output is wider than its embedding_dim
        name = f"{name}, readout {spec['readout']!r}"
    blocks = getattr(tower.encoder, "frozen_blocks", 0)  # the audio CNN's fixed first blocks
    if blocks:
        name = f"{name}, first {blocks} conv block{'s' if blocks > 1 else ''} frozen"
    params = list(tower.encoder.parameters())
    total, trainable = sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
    if trainable == total:
        return f"{name} ({total:,} parameters)"
    return f"{name} ({total:,} parameters, {trainable:,} trained)"


def resolved_recipe(model: Any, rows: Rows, counts: Optional[tuple]) -> Dict[str, str]:
    """The recipe of a run in words, in the order the recipe line says it: the encoder, the window or crop (each
    tower adapter's ``recipe()``), the views (``counts``: :func:`anycl.data.views.view_counts`), the
    augmentations. With several towers each fact is named by its modality."""
    towers = list(model.towers.items())
    one = len(towers) == 1
    out: Dict[str, str] = {}
    augment: Dict[str, str] = {}
    for modality, tower in towers:
        key = "" if one else f" ({modality})"
        out[f"encoder{key}"] = _encoder(tower)
        said = dict(tower.adapter.recipe())
        if "augment" in said:
            augment[f"augment{key}"] = said.pop("augment")
        out.update({f"{k}{key}": v for k, v in said.items()})
    if counts is not None:
        views, local = counts
        out["views"] = f"{views} per item" + (f" + {local} local" if local else "")
    elif self_supervised(rows):
        out["views"] = "2 per item (self-supervised)"
    else:
        out["views"] = "the given pairs"
    out.update(augment)
    return out
