"""Multi-view training: V >= 2 global views and L local views of every item per step.

``fit(..., views=V, local_views=L)`` swaps the pairwise batches for multi-view ones; everything else
(the sampler, the model, the trainer, GradCache, the momentum target) is unchanged, because a
multi-view batch is laid out as an ordinary one:

- ``anchor``: the V global views of the B items, view-major (rows ``v·B .. v·B + B - 1`` are view v),
  collated in one call, so any adapter (text too) works;
- ``positive``: the L local views, view-major, when L > 0 (images: the adapter's ``local_size`` /
  ``local_scale`` crops; audio: ``local_seconds`` windows);
- ``num_views`` (V) and ``num_local_views`` (L).

The training module embeds the two sides as usual (so GradCache mini-batches them like any side) and
hands the loss ``forward_views(global (V, B, D), local (L, B, D) or None[, target=(V, B, D)])``; the
target is the momentum teacher's embedding of the global views (DINO). Losses with ``forward_views``:
``multiview_infonce`` (the default with views) and ``dino``.

With several processes each process scores its own items (no cross-process gathering of views);
DINO's centre is averaged across processes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import torch

from anycl.errors import ConfigError, DataError

from .batching import BatchBuilder, label_id
from .inputs import LABEL

MULTIVIEW_LOSSES = ("multiview_infonce", "dino")


def view_counts(views: Optional[int], local: Optional[int]) -> Optional[tuple]:
    """(V, L) from fit's ``views`` / ``local_views`` options, or None for pairwise training."""
    if views is None and not local:
        return None
    for name, v, low in (("views", views, 2), ("local_views", local, 0)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            raise ConfigError(f"{name} must be an integer >= {low}, got {v!r}")
    return (2 if views is None else int(views)), int(local or 0)


def default_loss(counts: Optional[tuple], loss: Any, loss_options: Dict[str, Any], adapter_cls) -> Any:
    """With views (``counts``: :func:`view_counts`) and no loss named: ``multiview_infonce`` at the modality's
    default temperature."""
    if loss is not None or counts is None:
        return loss
    temperature = getattr(adapter_cls, "default_loss_options", {}).get("temperature")
    if temperature is not None:
        loss_options.setdefault("temperature", temperature)
    return "multiview_infonce"


def check_multiview(
    counts: Optional[tuple], loss_fn, rows, sides: Mapping[str, str], adapter_cls, multi: bool = False, guide=None
) -> None:
    """Before any model loads: ConfigError for what multi-view training (``counts``: :func:`view_counts`)
    cannot do — given pairs or hard negatives (views are made from each row's anchor), several modalities or
    data sets, a ``guide``, a loss without ``forward_views``, local views from an adapter without
    ``local_view``."""
    if counts is None:
        return
    name = getattr(loss_fn, "registry_name", type(loss_fn).__name__)
    if not callable(getattr(loss_fn, "forward_views", None)):
        raise ConfigError(
            f"views/local_views need a loss that scores several views ({', '.join(MULTIVIEW_LOSSES)}); "
            f"loss {name!r} takes pairs"
        )
    if multi or len(set(sides.values())) > 1:
        raise ConfigError("views/local_views work with one modality and one data set")
    if rows.has_positive or rows.negatives:
        raise ConfigError(
            "views/local_views make every view from each row's anchor; the data has 'positive' or "
            "negative columns (drop them, or train pairwise without views)"
        )
    if guide is not None:
        raise ConfigError("guide= does not work with views/local_views")
    if counts[1] and not callable(getattr(adapter_cls, "local_view", None)):
        raise ConfigError(
            f"local_views need an adapter with local views (image, audio); the {sides['anchor']!r} adapter has none"
        )


def multiview_builder(counts: Optional[tuple], builder: BatchBuilder) -> BatchBuilder:
    """The multi-view builder replacing ``builder`` when ``views``/``local_views`` are set (``counts``:
    :func:`view_counts`; else ``builder``); :func:`check_multiview` has checked the set-up."""
    if counts is None:
        return builder
    return MultiViewBatchBuilder(
        builder.adapters,
        views=counts[0],
        local_views=counts[1],
        on_bad_item=builder.on_bad_item,
        prompts=builder.prompts,
    )


class MultiViewBatchBuilder(BatchBuilder):
    """Builds multi-view batches (see the module docstring) from anchor-only rows.

    Args:
        adapters: side → adapter (only ``anchor``'s is used). views: V >= 2 global views per item.
        local_views: L >= 0 local views per item (the adapter's ``local_view``).
    """

    def __init__(
        self,
        adapters: Mapping[str, Any],
        views: int = 2,
        local_views: int = 0,
        on_bad_item: str = "raise",
        prompts=None,
    ):
        super().__init__(adapters, [], on_bad_item=on_bad_item, prompts=prompts)
        if views < 2 or local_views < 0:
            raise ConfigError(f"need views >= 2 and local_views >= 0, got {views} and {local_views}")
        self.views, self.local_views = int(views), int(local_views)

    def _views_of(self, row: dict, generator: torch.Generator):
        a = self.adapters["anchor"]
        try:
            item = a.load(row["anchor"])
            return (
                [a.augment(item, generator) for _ in range(self.views)],
                [a.local_view(item, generator) for _ in range(self.local_views)],
            )
        except DataError as exc:
            return self._bad_item(exc)

    def build(self, rows: List[dict], generator: torch.Generator, train: bool = True) -> Optional[Dict[str, Any]]:
        loaded = [self._views_of(r, generator) for r in rows]
        keep = [i for i, x in enumerate(loaded) if x is not None]
        if len(keep) < 2:
            return None
        loaded = [loaded[i] for i in keep]
        batch: Dict[str, Any] = {
            "size": len(loaded),
            "num_negatives": 0,
            "num_views": self.views,
            "num_local_views": self.local_views,
        }
        batch["anchor"] = self._collate("anchor", [x[0][v] for v in range(self.views) for x in loaded])
        if self.local_views:
            batch["positive"] = self._collate("anchor", [x[1][v] for v in range(self.local_views) for x in loaded])
        if LABEL in rows[0]:
            batch["labels"] = torch.tensor([label_id(rows[i][LABEL]) for i in keep], dtype=torch.long)
        return batch


def is_multiview(batch: Mapping[str, Any]) -> bool:
    return "num_views" in batch


def multiview_loss(module, emb: Dict[str, torch.Tensor], batch: Mapping[str, Any]):
    """The training module's loss for a multi-view batch: the loss's ``forward_views`` on the
    (V, B, D) global and (L, B, D) local embeddings, with the momentum teacher's global views when the
    loss has one."""
    n, views, local = batch["size"], batch["num_views"], batch["num_local_views"]
    g = emb["anchor"].view(views, n, -1)
    loc = emb["positive"].view(local, n, -1) if local else None
    module.last_embeddings = {"anchor": g[0].detach(), "positive": g[1].detach()}
    kw = {}
    if module.target is not None:  # the EMA teacher sees the global views (same augmentation draws)
        kw["target"] = module.target_embeddings(batch, sides=("anchor",))["anchor"].view(views, n, -1)
    return module.loss.forward_views(g, loc, **kw)
