"""``fit``'s loss stage: which loss, with which options, for each data set; the guide and Matryoshka
options checked against it; and the batch size it can train with. All before any model is loaded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

from torch import nn

from anycl.data.multi import per_dataset
from anycl.data.views import default_loss as multiview_default_loss
from anycl.data.views import view_counts
from anycl.errors import ConfigError
from anycl.evaluation.probe import probe_options
from anycl.losses.matryoshka import MatryoshkaLoss, check_dims
from anycl.losses.multi_dataset import MultiLoss
from anycl.losses.registry import resolve_name
from anycl.options.fit_config import FitConfig

from .loss_data import build_losses, check_loss_rows


@dataclass
class LossPlan:
    """The loss ``fit`` trains with: ``loss`` as chosen (a name, a module, or {data set: name}),
    ``loss_options`` (shared) or ``per_options`` ({data set: options}, from ``given_options``), the built
    ``losses`` per data set, ``loss_fn`` (the one the trainer calls, Matryoshka-wrapped when asked) and
    ``matryoshka`` (dims, weights)."""

    loss: Any
    loss_options: Dict[str, Any]
    per_options: Optional[Dict[str, Any]]
    given_options: Any
    losses: Dict[str, nn.Module]
    loss_fn: nn.Module
    matryoshka: Optional[tuple] = None

    @property
    def name(self) -> str:
        """The loss's registered name (its class name when it has none)."""
        return getattr(self.loss_fn, "registry_name", type(self.loss_fn).__name__)

    def recorded_options(self) -> Any:
        """The loss options a run records (as given, when given per data set)."""
        return self.given_options if self.per_options else self.loss_options


def choose_loss(
    cfg: FitConfig, sides: Mapping[str, str], anchor_adapter_cls, parts: Mapping[str, Any], multi: bool
) -> LossPlan:
    """The loss: the one named, else multiview_infonce with views, else CLIP/CLAP's for cross-modal pairs, else
    the anchor modality's default."""
    loss = cfg.loss
    per_options = per_dataset(cfg.loss_options, list(parts)) if multi else None  # {data set: {...}}
    loss_options = {} if per_options else dict(cfg.loss_options or {})
    if cfg.temperature is not None:
        loss_options["temperature"] = cfg.temperature
    if isinstance(loss, str) and per_options is None:  # a sentence-transformers name: anycl's, with its options
        loss, loss_options = resolve_name(loss, loss_options)
    counts = view_counts(cfg.views, cfg.local_views)  # views=, no loss=: multiview_infonce
    loss = multiview_default_loss(counts, loss, loss_options, anchor_adapter_cls)
    if cfg.probe is not None:  # the probe's options, checked before any model loads (anycl.evaluation.probe)
        probe_options(cfg.probe)
    if loss is None and len(set(sides.values())) > 1:  # CLIP/CLAP: both directions, CLIP's initial temperature, learnt
        loss = "infonce"
        loss_options.setdefault("symmetric", True)
        loss_options.setdefault("temperature", 0.07)
        loss_options.setdefault("learn_temperature", True)
    elif loss is None:
        loss = anchor_adapter_cls.default_loss
        for k, v in anchor_adapter_cls.default_loss_options.items():
            loss_options.setdefault(k, v)
    losses = build_losses(loss, loss_options, parts, multi, per_options)  # {data set: loss module}
    loss_fn = MultiLoss(losses) if multi else losses[""]
    configure_guide(cfg, loss_fn, loss)
    check_second_tower(cfg, losses)
    plan = LossPlan(loss, loss_options, per_options, cfg.loss_options, losses, loss_fn)
    if cfg.matryoshka_dims is not None:  # the width is checked once the model is built
        plan.matryoshka = check_dims(cfg.matryoshka_dims, cfg.matryoshka_weights)
        plan.loss_fn = MatryoshkaLoss(loss_fn, *plan.matryoshka)
    elif cfg.matryoshka_weights is not None:
        raise ConfigError("matryoshka_weights needs matryoshka_dims")
    return plan


def check_second_tower(cfg: FitConfig, losses: Mapping[str, nn.Module]) -> None:
    """A loss that trains a copy of the model (Contrastive Tension) embeds each step's batch with both towers at
    once: not in mini-batches (GradCache), not with several views, one data set."""
    for name, loss_fn in losses.items():
        if not getattr(loss_fn, "second_tower", False):
            continue
        what = getattr(loss_fn, "registry_name", type(loss_fn).__name__)
        if len(losses) > 1:
            raise ConfigError(
                f"loss {what!r} (data set {name!r}) trains a second copy of the model; it trains on one data set"
            )
        for option in ("gradcache_mini_batch", "views", "local_views", "teacher"):
            if getattr(cfg, option, None):
                raise ConfigError(f"loss {what!r} trains a second copy of the model and does not combine with {option}")


def configure_guide(cfg: FitConfig, loss_fn, loss) -> None:
    """Check the guide options against the loss before any model is loaded; set the loss's margin."""
    given = [k for k in ("guide_margin", "guide_margin_strategy") if getattr(cfg, k) is not None]
    if cfg.guide is None:
        if (cfg.sampler_options or {}).get("guide_filter"):
            raise ConfigError("sampler_options guide_filter needs fit(..., guide=...) (e.g. guide='start')")
        if given:
            raise ConfigError(f"{given} need guide= (e.g. guide='start'); without a guide nothing is masked")
        return
    name = getattr(loss_fn, "registry_name", loss)
    if not getattr(loss_fn, "accepts_guide", False):
        raise ConfigError(f"guide= needs a loss that uses a guide model (infonce); loss {name!r} does not")
    spec = cfg.guide
    if not (isinstance(spec, (str, os.PathLike)) or isinstance(spec, nn.Module) or type(spec).__name__ == "Guide"):
        raise ConfigError(
            f"guide must be 'start', a model path/name or an anycl ContrastiveModel, got {type(spec).__name__}"
        )
    margin, strategy = cfg.guide_margin, cfg.guide_margin_strategy
    loss_fn.configure_guide(0.0 if margin is None else margin, "absolute" if strategy is None else strategy)


def check_batch_size(batch_size: int, plan: LossPlan) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size < 2 and getattr(plan.loss_fn, "in_batch_negatives", True):
        raise ConfigError(
            f"batch_size={batch_size} leaves no in-batch negatives for loss "
            f"{getattr(plan.loss_fn, 'registry_name', plan.loss)!r}; use batch_size >= 2 (the other items of a batch "
            f"are each anchor's negatives)"
        )


def check_loss_data(plan: LossPlan, parts: Mapping[str, Any]) -> None:
    """What each loss needs from its data set's columns (anycl.fitting.loss_data)."""
    for name, part in parts.items():
        check_loss_rows(plan.losses[name], part, plan.loss, name or None)
