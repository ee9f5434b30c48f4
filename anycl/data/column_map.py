"""Column names: a dataset's columns mapped onto the convention (``anchor``, ``positive``, ``negative[_k]``,
``label``, scores; see :mod:`anycl.data`), near misses warned about, and rows renamed by that map."""

from __future__ import annotations

import difflib
import logging
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from anycl.errors import DataError

from .rows import ITEM_COLUMNS, LABEL, NOT_ITEMS, is_negative_column, negative_columns

log = logging.getLogger("anycl")


def canonical_columns(available: Sequence[str], mapping: Optional[Mapping[str, str]]) -> Dict[str, str]:
    """Map canonical names → source column names, or raise naming what exists."""
    available = list(available)
    mapping = dict(mapping or {})
    for canon, src in mapping.items():
        if not (canon in ITEM_COLUMNS or canon in NOT_ITEMS or is_negative_column(canon)):
            raise DataError(
                f"columns= maps to {canon!r}, which is not a column of the convention; use anchor, "
                f"positive, negative / negative_1..k, label, score, positive_score or negative_score"
            )
        if src not in available:
            raise DataError(f"columns= names {src!r} for {canon!r}, but the dataset's columns are {available}")
    used = set(mapping.values())
    out = dict(mapping)
    for col in available:
        if col in used:
            continue
        if (col in ITEM_COLUMNS or col in NOT_ITEMS or is_negative_column(col)) and col not in out:
            out[col] = col
    if "anchor" not in out:
        rest = [c for c in available if c not in used and c not in out.values()]
        label_like = [c for c in rest if c in ("label", "labels")]
        items = [c for c in rest if c not in label_like]
        if len(items) == 1 and not any(k != LABEL for k in out):
            out["anchor"] = items[0]
            if label_like and LABEL not in out:
                out[LABEL] = label_like[0]
        else:
            raise DataError(
                f"no 'anchor' column: the dataset's columns are {available}. Name them by the convention "
                f"(anchor, positive, negative_1..k, label) or map them, e.g. "
                f"columns={{'anchor': '{available[0] if available else 'query'}', 'positive': "
                f"'{available[1] if len(available) > 1 else 'document'}'}}"
            )
    if any(c != "anchor" and c not in NOT_ITEMS for c in out) and "positive" not in out:
        raise DataError(
            f"hard-negative columns {[c for c in out if is_negative_column(c)]} need a 'positive' column; the "
            f"dataset's columns are {available}"
        )
    order = ["anchor", "positive"] + negative_columns(list(out)) + [c for c in NOT_ITEMS if c in out]
    _report_unused([c for c in available if c not in out.values()], out, mapping)
    return {c: out[c] for c in order if c in out}


# names that mean a column of the convention (a near miss is warned about, never guessed)
_NEAR = {
    "anchor": ("query", "queries", "question", "questions", "anchors", "sentence1", "text1", "q", "source"),
    "positive": (
        "pos",
        "positives",
        "document",
        "doc",
        "docs",
        "answer",
        "answers",
        "passage",
        "sentence2",
        "text2",
        "target",
        "response",
    ),
    "negative": (
        "neg",
        "negs",
        "negatives",
        "hard_negative",
        "hard_negatives",
        "hard_neg",
        "hardneg",
        "negative_passage",
        "negative_passages",
        "negative_document",
    ),
    "label": ("labels", "class", "classes", "category", "y", "target_label", "class_label"),
}
_NEG_NUMBERED = re.compile(r"^(hard_?)?neg(ative)?s?[_-]?(\d+)$")


def _near_miss(col: str) -> Optional[str]:
    """The convention's name that column ``col`` most likely means, or None."""
    low = col.strip().lower().replace("-", "_").replace(" ", "_")
    m = _NEG_NUMBERED.match(low)
    if m:
        return f"negative_{m.group(3)}"
    for canon, names in _NEAR.items():
        if low in names or low == canon:
            return canon
    close = difflib.get_close_matches(low, ["anchor", "positive", "negative", "label"], n=1, cutoff=0.8)
    return close[0] if close else None


def _report_unused(unused: List[str], used: Mapping[str, str], given: Mapping[str, str]) -> None:
    """Columns the convention does not read: near misses get a warning with the ``columns=`` mapping,
    the rest one INFO line."""
    if not unused:
        return
    other = []
    for col in unused:
        canon = _near_miss(col)
        if canon is not None and canon not in used:
            shown = dict(given)
            shown[canon] = col
            log.warning(
                "column %r is not used: anycl reads the columns anchor, positive, negative / negative_1..k "
                "and label (and score, positive_score, negative_score for graded losses). If %r holds the "
                "%s, map it: columns=%r",
                col,
                col,
                canon,
                shown,
            )
        else:
            other.append(col)
    if other:
        log.info(
            "ignoring column(s) %s (not in the convention: anchor, positive, negative / negative_1..k, label, "
            "score, positive_score, negative_score)",
            other,
        )


def rename_row(row: Mapping[str, Any], cmap: Dict[str, str]) -> dict:
    return {canon: row[src] for canon, src in cmap.items()}


RAW_ITEM_KEYS = {"array", "sampling_rate", "path", "bytes"}


def is_raw_item_dict(d: Mapping) -> bool:
    """Hugging Face Audio/Image feature dicts are items, not rows."""
    return bool(d) and set(d.keys()) <= RAW_ITEM_KEYS and ("array" in d or "bytes" in d or "path" in d)
