"""Where batches are formed: which rows share a batch, and that no item appears twice in one.

A sampler plans each epoch as a list of index batches (or, for streamed data, groups rows as they
arrive). In-batch negatives make duplicates harmful: if the same text or file sits in two rows of a
batch, one row's positive is scored as the other's negative. The samplers here hash every item once
(:meth:`Adapter.key`) and defer a row whose items are already in the current batch to a later batch.

Samplers register by name: ``anycl.samplers.get("in_batch")``. This module gathers them (the contract and
registry: :mod:`anycl.sampling.base`; the samplers: :mod:`anycl.sampling.in_batch`, :mod:`anycl.sampling.mined`,
:mod:`anycl.sampling.by_label`) and builds a data set's sampler and batch builder (:func:`sampler_and_builder`).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from anycl.data.batching import BatchBuilder
from anycl.data.column_spec import column_specs
from anycl.errors import ConfigError, UnknownNameError
from anycl.options.fit_config import FitConfig

from .base import SAMPLERS, Sampler, get, names, register  # noqa: F401
from .by_label import GroupByLabelSampler  # noqa: F401
from .contrastive_tension import ContrastiveTensionSampler  # noqa: F401

# the samplers register themselves on import; their names stay importable from here
from .in_batch import InBatchSampler, group_distinct, length_grouped, row_lengths  # noqa: F401
from .mined import MinedNegativeSampler  # noqa: F401

log = logging.getLogger("anycl")


def loss_sampler(loss_fn, rows) -> Any:
    """The sampler a loss pairs one column of items with (``single_column_sampler``: Contrastive Tension's), when
    the data is one column; else None."""
    return getattr(loss_fn, "single_column_sampler", None) if not getattr(rows, "has_positive", True) else None


def sampler_and_builder(cfg: FitConfig, sopts, rows, model, loss_fn, guide=None, prompts=None, precision=None):
    """A sampler and a :class:`~anycl.data.batching.BatchBuilder` for one data set's rows, from ``fit``'s options
    ``cfg`` (``sampler``, ``on_bad_item``), the sampler options ``sopts`` and the run's resolved ``precision``
    (``"no"``, ``"bf16"``, ``"fp16"``: a mining sampler mines in bf16 when it is bf16; None: ``cfg``'s
    ``mixed_precision`` as given, ``"auto"`` counting as fp32). Both get
    the :class:`~anycl.data.column_spec.ColumnSpec` of each column they read, made from ``model``'s towers
    (:func:`~anycl.data.column_spec.column_specs`): the sampler the data's item columns (keys, lengths), the
    batch builder the columns it loads and collates (with ``prompts``, side → text, :mod:`anycl.data.prompts`)
    and the score columns the loss reads."""
    # a name, then the Sampler (its optional parts read by getattr); one column for a loss that pairs it its own way
    wanted = loss_sampler(loss_fn, rows)
    sampler: Any = cfg.sampler or wanted or "in_batch"
    if wanted and isinstance(sampler, str) and sampler != wanted:
        raise ConfigError(
            f"loss {getattr(loss_fn, 'registry_name', type(loss_fn).__name__)!r} pairs one column of items with the "
            f"{wanted!r} sampler, not {sampler!r}: leave sampler unset (or give labelled pairs)"
        )
    if isinstance(sampler, str):
        try:
            sampler = get(sampler, **sopts)
        except UnknownNameError as exc:
            raise ConfigError(str(exc)) from None
    else:
        sampler = copy.deepcopy(sampler)  # several data sets: one sampler object each
    sampler.set_columns(column_specs(model, ["anchor", "positive", *rows.negatives]))
    if getattr(sampler, "guide_filter", False):  # the guide's false-negative rule at mining time too
        if guide is None:
            raise ConfigError("the mined sampler's guide_filter needs fit(..., guide=...) (e.g. guide='start')")
        sampler.set_guide(guide.model, loss_fn.guide_margin, loss_fn.guide_margin_strategy)
    if hasattr(sampler, "mining_precision") and sampler.mining_precision is None:  # mine as the model trains
        sampler.mining_precision = "bf16" if (precision or cfg.mixed_precision) == "bf16" else "fp32"
    negative_columns = rows.negatives
    if getattr(sampler, "num_negatives", 0):  # a mining sampler supplies negative_1..k in rows_for
        if rows.negatives:
            log.warning("the sampler mines hard negatives; the data's columns %s are replaced", rows.negatives)
        negative_columns = [f"negative_{i + 1}" for i in range(int(sampler.num_negatives))]
    score_columns = tuple(getattr(loss_fn, "score_columns", ()) or ())
    builder = BatchBuilder(
        column_specs(model, ["anchor", "positive", *negative_columns, *score_columns], prompts),
        on_bad_item=cfg.on_bad_item or "raise",
        keep_views=guide is not None and guide.needs_views,
    )
    return sampler, builder
