"""Where pairs become tensors: rows of one batch → per-side features (anchor, positive, negatives).

Given pairs are loaded as they are (and augmented when the adapter augments); a row without a
positive gets two augmented views of its anchor. Hard negatives of all rows are flattened row by row
(row i's K negatives are contiguous), so the loss can view their embeddings as (B, K, D). Labels are
hashed to stable integers, the same in every process, so they can be gathered and compared.
"""

from __future__ import annotations

import hashlib
import logging
from numbers import Integral
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch

from anycl.errors import ConfigError, DataError

from .column_spec import SCORE, ColumnSpec, checks, specs_from_adapters
from .inputs import LABEL, SCORE_COLUMNS, TEACHER, Rows, check_row
from .prompts import prompt_for
from .rows import negative_columns as negative_columns_of

log = logging.getLogger("anycl")

SIDES = ("anchor", "positive", "negative")


def label_id(value: Any) -> int:
    """A stable 63-bit integer for a label value (ints keep their value)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Integral):  # numpy integers too: their value, as the losses that read labels expect
        return int(value)
    digest = hashlib.blake2b(repr(value).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def batch_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator for one batch's augmentations: depends on nothing but (seed, epoch, batch index)."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch) * 1_000_033 + index)
    return g


class BatchBuilder:
    """Loads, augments and collates the items of one batch for the sides of a model.

    Args:
        adapters: the columns it reads, column → :class:`~anycl.data.column_spec.ColumnSpec` (what ``fit``
            passes: :func:`anycl.data.column_spec.column_specs`); or side name (``anchor``, ``positive``,
            ``negative``) → adapter, with ``negative_columns``, ``prompts`` and ``score_columns``, from
            which the builder makes its specs (:func:`anycl.data.column_spec.specs_from_adapters`).
        negative_columns: hard-negative columns per row (given specs: by default their ``negative[_k]``
            columns, in order).
        on_bad_item: ``"raise"`` (default) or ``"skip"``: a row with an item the adapter cannot load
            is dropped, counted in ``skipped`` and its first names kept in ``skipped_examples``.
        keep_views: also put the loaded (augmented) items of each side, uncollated, under
            ``batch["views"]`` (a guide model with its own tokenizer collates them: :mod:`anycl.training.guide`).
        prompts: side → prompt text put before that side's items when they are collated (text;
            see :mod:`anycl.data.prompts`); given specs, their prompts are used instead.
        score_columns: the numeric columns to carry as ``batch["scores"]`` (None: every score column the
            rows have, or given specs, the score columns they name; ``fit`` passes the ones its loss reads).

    ``specs`` (column → ColumnSpec) also tells :class:`BatchStream` how to check streamed rows as they
    are read.
    """

    def __init__(
        self,
        adapters: Mapping[str, Any],
        negative_columns: Optional[Sequence[str]] = None,
        on_bad_item: str = "raise",
        keep_views: bool = False,
        prompts: Optional[Mapping[str, str]] = None,
        score_columns: Optional[Sequence[str]] = None,
    ):
        if on_bad_item not in ("raise", "skip"):
            raise ValueError(f"on_bad_item must be 'raise' or 'skip', got {on_bad_item!r}")
        # per side, the spec that collates it (every negative column has its side's adapter and prompt)
        self._sides: Dict[str, ColumnSpec] = {}
        if adapters and all(isinstance(v, ColumnSpec) for v in adapters.values()):
            if prompts:
                raise ConfigError("a batch builder made from column specs takes their prompts; pass prompts=None")
            specs = dict(adapters)
            negatives = negative_columns_of(list(specs)) if negative_columns is None else list(negative_columns)
            scores = (
                tuple(c for c, sp in specs.items() if sp.side == SCORE)
                if score_columns is None
                else tuple(score_columns)
            )
            missing = [c for c in [*negatives, *scores] if c not in specs]
            if missing:
                raise ConfigError(f"the batch builder reads columns {missing} but was given no spec for them")
            for sp in specs.values():
                self._sides.setdefault(sp.side, sp)
            self.adapters = {s: sp.adapter for s, sp in self._sides.items() if sp.adapter is not None}
            self.prompts = {s: self._sides[s].prompt if s in self._sides else None for s in SIDES}
        else:
            negatives = list(negative_columns or [])
            scores = SCORE_COLUMNS if score_columns is None else tuple(score_columns)
            specs = specs_from_adapters(adapters, ["anchor", "positive", *negatives, *scores], prompts)
            for sp in specs.values():
                self._sides.setdefault(sp.side, sp)
            self.adapters = dict(adapters)
            self.prompts = {s: prompt_for(dict(prompts or {}), s) for s in SIDES}
        self.specs: Dict[str, ColumnSpec] = specs
        self.negative_columns = negatives
        self.score_columns = scores
        self.on_bad_item = on_bad_item
        self.keep_views = bool(keep_views)  # also keep the loaded items per side (a guide model re-collates them)
        self.skipped = 0
        self.skipped_examples: List[str] = []

    def _collate(self, side: str, items: List[Any]) -> Any:
        return self._sides[side].collate(items)

    def _load_row(self, row: dict, train: bool, generator: torch.Generator) -> Optional[Dict[str, Any]]:
        out = {}
        a = self.adapters["anchor"]
        try:
            anchor = a.load(row["anchor"])
            if "positive" in row:
                out["anchor"] = a.augment(anchor, generator) if train else a.eval_view(anchor)
                p = self.adapters["positive"]
                positive = p.load(row["positive"])
                out["positive"] = p.augment(positive, generator) if train else p.eval_view(positive)
            else:  # self-supervised: two views of one item
                out["anchor"] = a.augment(anchor, generator)
                out["positive"] = a.augment(anchor, generator)
            for col in self.negative_columns:
                n = self.adapters["negative"]
                neg = n.load(row[col])
                out.setdefault("negative", []).append(n.augment(neg, generator) if train else n.eval_view(neg))
        except DataError as exc:
            self._bad_item(exc)
            return None
        return out

    def _bad_item(self, exc: DataError) -> None:
        """An item that cannot be loaded: raise it, or (``on_bad_item="skip"``) count it and drop its row."""
        if self.on_bad_item == "raise":
            raise exc
        self.skipped += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(str(exc))

    def build(self, rows: List[dict], generator: torch.Generator, train: bool = True) -> Optional[Dict[str, Any]]:
        maybe = [self._load_row(r, train, generator) for r in rows]
        keep = [i for i, x in enumerate(maybe) if x is not None]
        if len(keep) < 2:
            return None
        loaded: List[Dict[str, Any]] = [x for x in maybe if x is not None]
        batch: Dict[str, Any] = {"size": len(loaded), "num_negatives": len(self.negative_columns)}
        batch["anchor"] = self._collate("anchor", [x["anchor"] for x in loaded])
        batch["positive"] = self._collate("positive", [x["positive"] for x in loaded])
        if self.negative_columns:
            flat = [neg for x in loaded for neg in x["negative"]]
            batch["negative"] = self._collate("negative", flat)
        if self.keep_views:
            batch["views"] = {"anchor": [x["anchor"] for x in loaded], "positive": [x["positive"] for x in loaded]}
            if self.negative_columns:
                batch["views"]["negative"] = flat
        if LABEL in rows[0]:
            batch["labels"] = torch.tensor([label_id(rows[i][LABEL]) for i in keep], dtype=torch.long)
        scores = {c: self.specs[c].collate([rows[i][c] for i in keep]) for c in self.score_columns if c in rows[0]}
        if scores:  # graded pairs / a teacher's scores (anycl.losses.graded)
            batch["scores"] = scores
        if TEACHER in rows[0]:  # precomputed teacher embeddings (anycl.losses.distill)
            batch["teacher"] = torch.stack([torch.as_tensor(rows[i][TEACHER]) for i in keep]).float()
        return batch


def to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move tensors (nested in dicts/lists) to ``device``; leave everything else as it is."""
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {k: to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device, non_blocking) for v in obj)
    return obj


class BatchStream(torch.utils.data.IterableDataset):
    """Yields one epoch of built batches for this process (its slice of every global batch).

    With ``num_workers`` > 0 in a DataLoader, worker w builds batches w, w + n, …; the DataLoader
    returns them in order, so the result does not depend on the number of workers. Streamed rows (no
    ``plan``) are checked as they are read, with the ``check`` of the builder's column specs
    (:class:`~anycl.data.column_spec.ColumnSpec`; data with a length is checked before training); a builder
    of one's own without ``specs`` has its rows taken as they come.
    """

    def __init__(
        self,
        rows: Rows,
        sampler,
        builder: BatchBuilder,
        batch_size: int,
        epoch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        skip_batches: int = 0,
        plan=None,
    ):
        self.rows, self.sampler, self.builder = rows, sampler, builder
        self.batch_size, self.epoch, self.seed = batch_size, epoch, seed
        self.rank, self.world_size, self.skip = rank, world_size, skip_batches
        self.plan = plan
        specs = getattr(builder, "specs", None)  # a builder of one's own may have none
        self.checks = checks(specs) if specs else None

    def _global_batches(self):
        if self.plan is not None:
            for idx in self.plan:
                yield self.sampler.rows_for(self.rows, idx)
        else:
            seen = 0
            for rows in self.sampler.stream(self.rows, self.epoch, self.batch_size * self.world_size):
                if self.checks:
                    for r in rows:
                        check_row(r, seen, self.checks)
                        seen += 1
                yield rows

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        for b, rows in enumerate(self._global_batches()):
            if b < self.skip or (b - self.skip) % nw != wid:
                continue
            if self.world_size > 1:
                # each process takes its share; a short global batch (de-duplication, a last partial
                # batch) is split as evenly as it goes, so the processes step on the batches one process
                # would (the losses weigh each process's rows: anycl.distributed)
                n = len(rows)
                if n < self.world_size:
                    continue  # some process would get no row at all
                rows = rows[self.rank * n // self.world_size : (self.rank + 1) * n // self.world_size]
            built = self.builder.build(rows, batch_generator(self.seed, self.epoch, b), train=True)
            if built is not None:
                built["index"] = b
                yield built
