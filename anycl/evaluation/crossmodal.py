"""Cross-modal use of a two-tower model (image–text, audio–text, as CLIP and CLAP do).

- :class:`ZeroShotClassifier`: class names (through prompt templates) → text embeddings → the nearest
  class for each image or clip.
- :func:`cross_modal_retrieval`: Recall@k in both directions for aligned pairs (repeated items count as hits).
- :class:`CrossModalRetrievalEvaluator`: the same as an ``eval_dataset`` evaluator during ``fit``.
- :func:`freeze`: keep a pretrained tower (or only its encoder) fixed while the rest trains.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Union

import torch
import torch.nn.functional as F

from anycl.data.inputs import Rows
from anycl.errors import ConfigError, DataError
from anycl.keys import item_key
from anycl.search.exact import ranked_metrics, topk

from .base import Evaluator, register


def _other_modality(model, modality: str) -> str:
    others = [m for m in model.modalities if m != modality]
    if not others:
        raise ConfigError(f"the model has only the {modality!r} tower; cross-modal use needs two towers")
    return others[0]


class ZeroShotClassifier:
    """Classify items by the class description their embedding is nearest to.

    Args:
        model: a two-tower :class:`~anycl.model.ContrastiveModel`.
        class_names: the classes, in order.
        templates: prompt templates with ``{}`` for the class name (e.g. ``"a photo of a {}"``); the
            embeddings of a class's prompts are averaged (prompt ensembling).
        text_modality: the tower that embeds the prompts. item_modality: the tower that embeds the
            items (default: the other tower).
    """

    def __init__(
        self,
        model,
        class_names: Sequence[str],
        templates: Union[str, Sequence[str]] = "{}",
        text_modality: str = "text",
        item_modality: Optional[str] = None,
    ):
        if not class_names:
            raise DataError("zero-shot classification needs at least one class name")
        if isinstance(templates, str):
            templates = [templates]
        for t in templates:
            if "{}" not in t:
                raise ConfigError(f"template {t!r} has no '{{}}' for the class name")
        if text_modality not in model.modalities:
            raise ConfigError(f"the model has no {text_modality!r} tower (towers: {model.modalities})")
        self.model = model
        self.class_names = list(class_names)
        self.text_modality = text_modality
        self.item_modality = item_modality or _other_modality(model, text_modality)
        prompts = [t.format(c) for c in self.class_names for t in templates]
        emb = model.encode(prompts, modality=text_modality)
        emb = emb.view(len(self.class_names), len(templates), -1).mean(1)
        self.class_embeddings = F.normalize(emb, dim=-1)

    def scores(self, items: Sequence[Any], batch_size: int = 64) -> torch.Tensor:
        """(N, C) cosine similarity of each item to each class."""
        emb = self.model.encode(items, modality=self.item_modality, batch_size=batch_size)
        return emb @ self.class_embeddings.T

    def predict(self, items: Sequence[Any], batch_size: int = 64) -> List[str]:
        return [self.class_names[i] for i in self.scores(items, batch_size).argmax(1).tolist()]

    def accuracy(self, items: Sequence[Any], labels: Sequence[str], batch_size: int = 64) -> float:
        if len(items) != len(labels):
            raise DataError(f"{len(items)} items but {len(labels)} labels")
        unknown = sorted(set(labels) - set(self.class_names))
        if unknown:
            raise DataError(f"labels {unknown[:5]} are not among the class names")
        pred = self.predict(items, batch_size)
        return sum(p == y for p, y in zip(pred, labels)) / len(labels)


def recall_at_k(sim: torch.Tensor, ks: Iterable[int]) -> Dict[int, float]:
    """Recall@k for a square similarity matrix whose diagonal holds the true pairs."""
    ks = list(ks)
    ranked = sim.topk(min(max(ks), sim.shape[1]), dim=1).indices.tolist()
    metrics = ranked_metrics(ranked, [{i} for i in range(sim.shape[0])], ks)
    return {k: metrics[f"recall@{k}"] for k in ks}


def matching_rows(items_a: Sequence[Any], items_b: Sequence[Any]) -> List[Set[int]]:
    """Per row i, the rows j that are also true pairs for it: ``items_a[j]`` is the same item as
    ``items_a[i]`` or ``items_b[j]`` as ``items_b[i]`` (by :func:`anycl.keys.item_key`): an identical caption at
    another index is a hit, not a miss. Always holds i."""
    by_a: Dict[Any, Set[int]] = {}
    by_b: Dict[Any, Set[int]] = {}
    ka, kb = [item_key(x) for x in items_a], [item_key(x) for x in items_b]
    for i, (a, b) in enumerate(zip(ka, kb)):
        by_a.setdefault(a, set()).add(i)
        by_b.setdefault(b, set()).add(i)
    return [by_a[a] | by_b[b] for a, b in zip(ka, kb)]


def cross_modal_retrieval(
    model,
    items_a: Sequence[Any],
    items_b: Sequence[Any],
    modality_a: Optional[str] = None,
    modality_b: Optional[str] = None,
    ks: Sequence[int] = (1, 5, 10),
    batch_size: int = 64,
) -> Dict[str, float]:
    """Recall@k from a→b and b→a, where ``items_a[i]`` and ``items_b[i]`` are a true pair: the share of
    queries with a true partner among their top k.

    Repeated items count: for the query ``items_a[i]``, every ``items_b[j]`` whose row repeats
    ``items_a[i]`` or ``items_b[i]`` (:func:`matching_rows`) is a hit, so an identical caption found at another
    index is not a miss (and the same the other way round)."""
    if len(items_a) != len(items_b):
        raise DataError(f"{len(items_a)} items on one side but {len(items_b)} on the other; give aligned pairs")
    modality_a = modality_a or model.sides["anchor"]
    modality_b = modality_b or model.sides["positive"]
    a = model.encode(items_a, modality=modality_a, batch_size=batch_size)
    b = model.encode(items_b, modality=modality_b, batch_size=batch_size)
    pairs = matching_rows(items_a, items_b)
    out = {}
    for x, y, mx, my in ((a, b, modality_a, modality_b), (b, a, modality_b, modality_a)):
        _, top = topk(x, y, min(max(ks), y.shape[0]))
        ranked = top.tolist()
        for k in ks:  # a query scores when any true partner is among its top k
            out[f"{mx}_to_{my}_recall@{k}"] = sum(bool(pairs[i] & set(r[:k])) for i, r in enumerate(ranked)) / len(
                ranked
            )
    return out


@register("cross_modal_retrieval")
class CrossModalRetrievalEvaluator(Evaluator):
    """Recall@k in both directions on aligned (anchor, positive) pairs; the default for pairs whose sides are
    different towers."""

    def __init__(
        self, anchors: Sequence[Any], positives: Sequence[Any], ks: Sequence[int] = (1, 5, 10), batch_size: int = 64
    ):
        self.anchors, self.positives, self.ks, self.batch_size = list(anchors), list(positives), ks, batch_size
        if len(self.anchors) != len(self.positives) or len(self.anchors) < 2:
            raise DataError(
                f"cross-modal retrieval evaluation needs at least 2 aligned (anchor, positive) pairs, got "
                f"{len(self.anchors)} anchors and {len(self.positives)} positives (with one pair every recall is 1.0)"
            )

    @classmethod
    def from_rows(cls, rows: Rows, batch_size: int = 64) -> CrossModalRetrievalEvaluator:
        if not rows.has_positive:
            raise DataError(
                f"cross-modal retrieval evaluation needs aligned (anchor, positive) pairs; the columns are {rows.columns}"
            )
        return cls(rows.column("anchor"), rows.column("positive"), batch_size=batch_size)

    def describe(self, rows: int) -> str:
        return f"retrieval: {rows} pairs"

    def __call__(self, model) -> Dict[str, float]:
        return cross_modal_retrieval(model, self.anchors, self.positives, ks=self.ks, batch_size=self.batch_size)


FREEZE_PARTS = ("all", "encoder")


def freeze(model, spec: Union[None, str, Sequence[str], Mapping[str, str]]) -> None:
    """Freeze towers of ``model`` in place.

    ``spec``: a modality name or list of names (the whole tower is frozen: encoder and head), or
    ``{modality: "all" | "encoder"}`` where ``"encoder"`` keeps the projection head trainable (CLIP-style
    "train only the heads"). Frozen parts also stay in eval mode (no dropout, fixed BatchNorm).
    """
    if not spec:
        return
    if isinstance(spec, str):
        spec = {spec: "all"}
    elif not isinstance(spec, Mapping):
        spec = {m: "all" for m in spec}
    for modality, part in spec.items():
        if modality not in model.modalities:
            raise ConfigError(f"freeze names {modality!r}, but the model's towers are {model.modalities}")
        if part is True:
            part = "all"
        if part not in FREEZE_PARTS:
            raise ConfigError(f"freeze[{modality!r}] must be 'all' or 'encoder', got {part!r}")
        tower = model.towers[modality]
        modules = [tower.encoder] + ([tower.head] if part == "all" and tower.head is not None else [])
        for mod in modules:
            for p in mod.parameters():
                p.requires_grad_(False)
        tower.frozen = part
