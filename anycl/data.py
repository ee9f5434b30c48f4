"""Where data enters: any supported input becomes :class:`Rows` in one column convention.

The convention, for every modality:

- ``anchor`` and ``positive``: a given pair;
- ``negative`` or ``negative_1`` … ``negative_k``: given hard negatives (optional);
- ``label``: items sharing a label are positives of each other (optional);
- ``score``: a number per pair, its graded similarity (for ``cosent``, ``angle``, ``cosine_mse``);
- ``positive_score`` / ``negative_score``: a teacher's scores of (anchor, positive) and
  (anchor, negative) (for ``margin_mse``).

A dataset with a single column of items (any name) is self-supervised: the positive of each item is a
second augmented view of it. ``columns={"anchor": "query", "positive": "doc"}`` maps other names.

Accepted inputs: a Hugging Face ``Dataset``, ``DatasetDict`` (its ``train`` split), ``IterableDataset``
(streamed; no length needed), a list of dicts, a list of raw items, a pandas ``DataFrame``, or a path to
a CSV, JSON Lines, JSON, Parquet file or a folder of files of the modality.
"""
from __future__ import annotations

import difflib
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from .errors import DataError
from .tables import read_table

log = logging.getLogger("anycl")

ITEM_COLUMNS = ("anchor", "positive")
LABEL = "label"
SCORE_COLUMNS = ("score", "positive_score", "negative_score")
TEACHER = "_teacher"  # a row's precomputed teacher embedding (distillation), added by anycl.losses.distill
NOT_ITEMS = (LABEL,) + SCORE_COLUMNS  # columns whose values are not items of a modality
_NEG = re.compile(r"^negative(_\d+)?$")


def negative_columns(columns: Sequence[str]) -> List[str]:
    """The hard-negative columns in their order: ``negative``, ``negative_1``, ``negative_2`` …"""
    negs = [c for c in columns if _NEG.match(c)]
    return sorted(negs, key=lambda c: -1 if c == "negative" else int(c.split("_")[1]))


class Rows:
    """Rows of a dataset in the column convention, from whichever source they came.

    Attributes:
        columns: canonical column names present (``anchor`` always).
        negatives: the hard-negative columns, in order.
        has_positive / has_label: whether pairs / labels are given.
        streaming: True when there is no length and no random access (an ``IterableDataset``).
    """

    def __init__(self, source: Any, columns: List[str], length: Optional[int], getter: Optional[Callable[[int], dict]],
                 iterator: Callable[[], Iterator[dict]], column_getter: Optional[Callable[[str], list]] = None,
                 description: str = ""):
        self.source = source
        self.columns = columns
        self._length = length
        self._get = getter
        self._iter = iterator
        self._column = column_getter
        self.description = description
        self.negatives = negative_columns(columns)
        self.has_positive = "positive" in columns
        self.has_label = LABEL in columns
        self.score_columns = [c for c in SCORE_COLUMNS if c in columns]

    @property
    def streaming(self) -> bool:
        return self._length is None

    @property
    def item_columns(self) -> List[str]:
        return [c for c in self.columns if c not in NOT_ITEMS]

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("a streamed dataset has no length")
        return self._length

    def __getitem__(self, i: int) -> dict:
        if self._get is None:
            raise TypeError("a streamed dataset has no random access")
        return self._get(i)

    def __iter__(self) -> Iterator[dict]:
        return self._iter()

    def column(self, name: str) -> list:
        """All values of one column (fast path for Arrow-backed datasets)."""
        if self._column is not None:
            return self._column(name)
        return [self[i][name] for i in range(len(self))]

    def __repr__(self) -> str:
        n = "streamed" if self.streaming else f"{len(self)} rows"
        return f"Rows({n}, columns={self.columns}{', ' + self.description if self.description else ''})"


# ---------------------------------------------------------------------------------------------------
def _canonical(available: Sequence[str], mapping: Optional[Mapping[str, str]]) -> Dict[str, str]:
    """Map canonical names → source column names, or raise naming what exists."""
    available = list(available)
    mapping = dict(mapping or {})
    for canon, src in mapping.items():
        if not (canon in ITEM_COLUMNS or canon in NOT_ITEMS or _NEG.match(canon)):
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
        if (col in ITEM_COLUMNS or col in NOT_ITEMS or _NEG.match(col)) and col not in out:
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
            f"hard-negative columns {[c for c in out if _NEG.match(c)]} need a 'positive' column; the "
            f"dataset's columns are {available}"
        )
    order = ["anchor", "positive"] + negative_columns(list(out)) + [c for c in NOT_ITEMS if c in out]
    _report_unused([c for c in available if c not in out.values()], out, mapping)
    return {c: out[c] for c in order if c in out}


# names that mean a column of the convention (a near miss is warned about, never guessed)
_NEAR = {
    "anchor": ("query", "queries", "question", "questions", "anchors", "sentence1", "text1", "q", "source"),
    "positive": ("pos", "positives", "document", "doc", "docs", "answer", "answers", "passage", "sentence2",
                 "text2", "target", "response"),
    "negative": ("neg", "negs", "negatives", "hard_negative", "hard_negatives", "hard_neg", "hardneg",
                 "negative_passage", "negative_passages", "negative_document"),
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
            log.warning("column %r is not used: anycl reads the columns anchor, positive, negative / negative_1..k "
                        "and label (and score, positive_score, negative_score for graded losses). If %r holds the "
                        "%s, map it: columns=%r", col, col, canon, shown)
        else:
            other.append(col)
    if other:
        log.info("ignoring column(s) %s (not in the convention: anchor, positive, negative / negative_1..k, label, "
                 "score, positive_score, negative_score)", other)


def _rename(row: Mapping[str, Any], cmap: Dict[str, str]) -> dict:
    return {canon: row[src] for canon, src in cmap.items()}


def _from_records(records: List[dict], mapping, description: str) -> Rows:
    keys = list(records[0].keys())
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise DataError(f"row {i} is a {type(r).__name__}, but row 0 is a dict; give every row as a dict")
        if list(r.keys()) != keys and set(r.keys()) != set(keys):
            missing = sorted(set(keys) - set(r.keys()))
            extra = sorted(set(r.keys()) - set(keys))
            raise DataError(f"row {i} has different columns from row 0 (missing {missing}, extra {extra})")
    cmap = _canonical(keys, mapping)
    rows = [_rename(r, cmap) for r in records]
    return Rows(records, list(cmap), len(rows), rows.__getitem__, lambda: iter(rows),
                lambda name: [r[name] for r in rows], description)


def _from_hf(ds, mapping) -> Rows:
    cmap = _canonical(ds.column_names, mapping)
    keep = list(cmap.values())
    ds = ds.select_columns(keep)
    inv = cmap

    def get(i):
        return _rename(ds[int(i)], inv)

    def it():
        for r in ds:
            yield _rename(r, inv)

    def column(name):
        return list(ds[inv[name]])

    return Rows(ds, list(cmap), len(ds), get, it, column, "Hugging Face Dataset")


def _from_hf_iterable(ds, mapping) -> Rows:
    names = ds.column_names
    if names is None:  # features unknown until the first row is read
        first = next(iter(ds))
        names = list(first.keys())
    cmap = _canonical(names, mapping)

    def it():
        for r in ds:
            yield _rename(r, cmap)

    return Rows(ds, list(cmap), None, None, it, None, "streamed Hugging Face IterableDataset")


def _from_path(path: Path, mapping, modality_extensions: Sequence[str], sep: Optional[str] = None) -> Rows:
    if not path.exists():
        raise DataError(f"dataset path {str(path)!r} does not exist")
    if path.is_dir():
        exts = tuple(e.lower() for e in modality_extensions)
        if not exts:
            raise DataError(f"{str(path)!r} is a folder, but this modality does not read files from folders")
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        if not files:
            raise DataError(f"folder {str(path)!r} holds no files of this modality (looked for {', '.join(exts)})")
        return _from_records([{"anchor": str(f)} for f in files], None, f"{len(files)} files under {path}")
    df = read_table(path, sep=sep)
    return _from_dataframe(df, mapping, f"file {path.name}")


def _from_dataframe(df, mapping, description="pandas DataFrame") -> Rows:
    if len(df) == 0:
        raise DataError(f"the dataset ({description}) is empty: it has no rows")
    df = df.astype(object).where(df.notna(), None)
    records = df.to_dict(orient="records")
    return _from_records(records, mapping, description)


def to_rows(data: Any, columns: Optional[Mapping[str, str]] = None, file_extensions: Sequence[str] = (),
            sep: Optional[str] = None) -> Rows:
    """Turn any supported dataset into :class:`Rows` (see the module docstring), or raise DataError.

    ``sep``: the field separator of a CSV/TSV file (default: sniffed; see :mod:`anycl.tables`)."""
    if isinstance(data, Rows):
        return data
    if data is None:
        raise DataError("the dataset is None; pass a dataset, a list, a DataFrame or a path")
    try:
        import datasets as hf  # lazy: Hugging Face datasets: slow to import, only for its inputs
    except ImportError:  # pragma: no cover - a dependency
        hf = None
    if hf is not None:
        if isinstance(data, (hf.DatasetDict, hf.IterableDatasetDict)):
            if "train" not in data:
                raise DataError(f"the DatasetDict has no 'train' split (its splits: {list(data.keys())}); pass one split")
            data = data["train"]
        if isinstance(data, hf.Dataset):
            if len(data) == 0:
                raise DataError("the dataset is empty: it has no rows")
            return _from_hf(data, columns)
        if isinstance(data, hf.IterableDataset):
            return _from_hf_iterable(data, columns)
    if isinstance(data, (str, os.PathLike)):
        return _from_path(Path(data), columns, file_extensions, sep)
    try:
        import pandas as pd  # lazy: pandas: slow to import, only when a table is read or written

        if isinstance(data, pd.DataFrame):
            return _from_dataframe(data, columns)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(data, Mapping):
        raise DataError(
            "a dict is not a dataset; pass a list of row dicts, a DataFrame, or datasets.Dataset.from_dict(...)"
        )
    if isinstance(data, (list, tuple)):
        if len(data) == 0:
            raise DataError("the dataset is empty: it has no rows")
        if isinstance(data[0], Mapping) and not _is_raw_item_dict(data[0]):
            return _from_records(list(data), columns, "list of dicts")
        if columns:
            raise DataError("columns= applies to datasets with named columns, not to a list of raw items")
        return _from_records([{"anchor": x} for x in data], None, "list of items")
    raise DataError(
        f"cannot use a {type(data).__name__} as a dataset; pass a datasets.Dataset/DatasetDict/IterableDataset, "
        f"a list of dicts or items, a pandas DataFrame, or a path"
    )


RAW_ITEM_KEYS = {"array", "sampling_rate", "path", "bytes"}


def _is_raw_item_dict(d: Mapping) -> bool:
    """Hugging Face Audio/Image feature dicts are items, not rows."""
    return bool(d) and set(d.keys()) <= RAW_ITEM_KEYS and ("array" in d or "bytes" in d or "path" in d)


def check_items(rows: Rows, validators: Mapping[str, Callable[[Any, str], None]], limit: Optional[int] = None) -> None:
    """Validate every item (all rows unless streamed, where rows are checked as they are read).

    Raises DataError naming the row and column for None/empty items, items the adapter rejects, and
    columns that mix item types. Score columns are checked only when ``validators`` names them (the
    loss reads them; ``fit`` passes :func:`check_score`); others are carried along unread.
    """
    if rows.streaming:
        return
    n = len(rows) if limit is None else min(limit, len(rows))
    for col in rows.columns:
        if col in SCORE_COLUMNS and col not in validators:
            continue
        values = rows.column(col)[:n]
        first_type = None
        for i, v in enumerate(values):
            where = f"row {i}, column {col!r}"
            if v is None:
                raise DataError(f"{where} is missing (None); drop or fill such rows before training")
            if col == LABEL:
                continue
            if col in SCORE_COLUMNS:
                validators[col](v, where)
                continue
            t = type(v)
            if first_type is None:
                first_type = t
            elif t is not first_type and not (_numeric(t) and _numeric(first_type)):
                raise DataError(
                    f"column {col!r} mixes item types: row 0 is {first_type.__name__} but row {i} is "
                    f"{t.__name__}; give one type per column"
                )
            validators[col](v, where)


def _numeric(t) -> bool:
    return issubclass(t, (int, float))


def check_row(row: dict, index: int, validators: Mapping[str, Callable[[Any, str], None]]) -> None:
    """Validate one row (used for streamed data, as rows arrive)."""
    for col, v in row.items():
        if col in SCORE_COLUMNS and col not in validators:
            continue
        where = f"row {index}, column {col!r}"
        if v is None:
            raise DataError(f"{where} is missing (None); drop or fill such rows before training")
        if col != LABEL:
            validators[col](v, where)


def check_score(value: Any, where: str) -> None:
    """A score must be a finite real number (a bool or a string such as '0.5' is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_numpy_number(value):
        raise DataError(f"{where} is {value!r} ({type(value).__name__}); a score must be a number")
    if not math.isfinite(float(value)):
        raise DataError(f"{where} is {value!r}; a score must be a finite number")


def _is_numpy_number(value: Any) -> bool:
    return isinstance(value, (np.integer, np.floating))


def check_score_range(rows: Rows, columns: Sequence[str], bounds, loss_name: str) -> None:
    """Every value of ``columns`` is a finite number within ``bounds`` (low, high) (None: any real),
    else DataError naming the column, the row and the loss's range."""
    if rows.streaming:
        return
    for col in columns:
        for i, v in enumerate(rows.column(col)):
            where = f"row {i}, column {col!r}"
            if v is None:
                raise DataError(f"{where} is missing (None); loss {loss_name!r} needs a number in every row")
            check_score(v, where)
            if bounds is not None and not (bounds[0] <= float(v) <= bounds[1]):
                raise DataError(f"{where} is {float(v)!r}, outside [{bounds[0]}, {bounds[1]}], the range of loss "
                                f"{loss_name!r} (a cosine); rescale the scores (e.g. 0..5 → score / 5)")
