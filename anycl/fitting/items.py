"""What ``fit`` learns from the items before training: adapter options chosen from a sample of them (the image
preset follows the images' size: ``Adapter.data_options``), and the pre-scan that finds unreadable items
(``Adapter.scan``: an image file's header and checksums) once, before the first step.

A row with an unreadable item stops the run before training with a DataError naming it (``on_bad_item="raise"``,
the default), or (``on_bad_item="skip"``) is dropped before training and said once in the log, so it is never
met again epoch after epoch. The batch builder still skips (and counts) an item that passes the scan but fails to
decode, as before."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from anycl import adapters as adapter_registry
from anycl.data.column_spec import column_specs
from anycl.data.rows import Rows, select_rows
from anycl.errors import ConfigError, DataError
from anycl.model.build import model_for, per_modality
from anycl.options.fit_config import FitConfig

log = logging.getLogger("anycl")

SAMPLE = 32  # items per modality whose headers choose its adapter options (spread over the data set)
SHOWN = 3  # unreadable items named in one message


def _sample(part: Rows, column: str, n: int) -> List[Any]:
    """Up to ``n`` items of ``column``, spread evenly over the rows (a folder sorted by class gives each class)."""
    if part.streaming or column not in part.columns or len(part) == 0:
        return []
    count = min(n, len(part))
    return [part[i * len(part) // count][column] for i in range(count)]


def data_adapter_options(
    cfg: FitConfig, sides: Mapping[str, str], parts: Mapping[str, Rows]
) -> Optional[Mapping[str, Any]]:
    """``adapter_options`` as ``{modality: options}`` with what each adapter chose from a sample of its items
    (``Adapter.data_options``, e.g. ``preset="small"`` for small images), or ``cfg.adapter_options`` unchanged when
    none chose anything. A tower given its encoder (``encoder=``, ``model=``) keeps the user's options: the encoder
    has its own input size."""
    modalities = sorted(set(sides.values()))
    given = {m: dict(per_modality(cfg.adapter_options, m, modalities) or {}) for m in modalities}
    chosen: Dict[str, Dict[str, Any]] = {}
    for m in modalities:
        cls = adapter_registry.ADAPTERS.lookup(m)
        encoder = per_modality(cfg.encoder, m, modalities) if isinstance(cfg.encoder, Mapping) else cfg.encoder
        if encoder is not None or model_for(cfg.model, m, modalities, cls) is not None:
            continue
        columns = [s for s in ("anchor", "positive") if sides[s] == m]
        share = max(1, SAMPLE // len(parts))
        items = [x for part in parts.values() for c in columns for x in _sample(part, c, share)]
        choose = getattr(cls, "data_options", None)  # an adapter class of one's own may not derive from Adapter
        extra = choose(items, given[m]) if items and choose is not None else {}
        if extra:
            chosen[m] = extra
    if not chosen:
        return cfg.adapter_options
    return {m: {**given[m], **chosen.get(m, {})} for m in modalities}


def scan_items(model, parts: Mapping[str, Rows], on_bad_item: Optional[str]) -> Tuple[Dict[str, Rows], int]:
    """Every item of every data set (not streamed) through its tower's ``Adapter.scan``; (the data sets, the
    number of rows dropped). ``on_bad_item="skip"`` drops the rows with an unreadable item (said once in the log),
    else the first is a DataError naming it and how many more there are. Items whose adapter has no scan of its
    own cost nothing."""
    out: Dict[str, Rows] = {}
    dropped = 0
    for name, part in parts.items():
        if part.streaming:
            out[name] = part
            continue
        specs = column_specs(model, [c for c in part.item_columns if c in ("anchor", "positive", *part.negatives)])
        bad: Dict[int, str] = {}
        for col, spec in specs.items():
            adapter = spec.adapter
            own = getattr(type(adapter), "scan", None)  # an adapter class of one's own may not derive from Adapter
            if adapter is None or own is None or own is adapter_registry.Adapter.scan:
                continue
            if len(part) == 0 or not isinstance(part[0][col], (str, os.PathLike, bytes, bytearray, dict)):
                continue  # items in memory (arrays, decoded images): nothing a scan would read, and a column of a
                # Hugging Face data set is not decoded a second time
            for i, item in enumerate(part.column(col)):
                if i in bad:
                    continue
                try:
                    adapter.scan(item)
                except DataError as exc:
                    bad[i] = f"row {i}, column {col!r}: {exc}"
        if not bad:
            out[name] = part
            continue
        where = f"data set {name!r}: " if name else ""
        first = [bad[i] for i in sorted(bad)[:SHOWN]]
        if on_bad_item != "skip":
            more = f" ({len(bad)} rows in all have an unreadable item; the others: {'; '.join(first[1:])})"
            raise DataError(
                f"{where}{first[0]}; found before training{more if len(bad) > 1 else ''}: fix or remove such files, "
                f"or pass on_bad_item='skip' to train without their rows"
            )
        log.warning(
            "%sskipping %d of %d rows: an item cannot be read (found before training, said once; first: %s)",
            where,
            len(bad),
            len(part),
            "; ".join(first),
        )
        keep = [i for i in range(len(part)) if i not in bad]
        if len(keep) < 2:
            raise ConfigError(
                f"{where}{len(keep)} row left once the {len(bad)} with unreadable items are skipped; contrastive "
                f"training needs at least 2"
            )
        out[name] = select_rows(part, keep, f"{part.description}, {len(bad)} unreadable rows skipped")
        dropped += len(bad)
    return out, dropped
