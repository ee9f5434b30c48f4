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
(streamed; no length needed), a list of dicts, a list of raw items, a pandas ``DataFrame``, a path to
a CSV, JSON Lines, JSON, Parquet file or a folder of files of the modality (class folders,
``root/<class>/<file>`` as torchvision's ``ImageFolder``, give a ``label`` column: :func:`class_folders`), or a
stream of rows (dicts or raw items): a generator function, an iterator or an iterable without a length
(:mod:`anycl.data.stream_rows`, which also says how streamed rows are split across processes).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence

from anycl.errors import DataError

from .column_map import RAW_ITEM_KEYS, canonical_columns, is_raw_item_dict, rename_row  # noqa: F401

# the convention and the checks: their own modules, importable from here as before
from .item_checks import check_items, check_row, check_score, check_score_range  # noqa: F401
from .rows import ITEM_COLUMNS, LABEL, NOT_ITEMS, SCORE_COLUMNS, TEACHER, Rows, negative_columns  # noqa: F401
from .stream_rows import from_hf_iterable, from_iterable, is_stream
from .tables import read_table

log = logging.getLogger("anycl")


def _from_records(records: List[dict], mapping, description: str) -> Rows:
    keys = list(records[0].keys())
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise DataError(f"row {i} is a {type(r).__name__}, but row 0 is a dict; give every row as a dict")
        if list(r.keys()) != keys and set(r.keys()) != set(keys):
            missing = sorted(set(keys) - set(r.keys()))
            extra = sorted(set(r.keys()) - set(keys))
            raise DataError(f"row {i} has different columns from row 0 (missing {missing}, extra {extra})")
    cmap = canonical_columns(keys, mapping)
    rows = [rename_row(r, cmap) for r in records]
    return Rows(
        records,
        list(cmap),
        len(rows),
        rows.__getitem__,
        lambda: iter(rows),
        lambda name: [r[name] for r in rows],
        description,
    )


def _from_hf(ds, mapping) -> Rows:
    cmap = canonical_columns(ds.column_names, mapping)
    keep = list(cmap.values())
    ds = ds.select_columns(keep)
    inv = cmap

    def get(i):
        return rename_row(ds[int(i)], inv)

    def it():
        for r in ds:
            yield rename_row(r, inv)

    def column(name):
        return list(ds[inv[name]])

    return Rows(ds, list(cmap), len(ds), get, it, column, "Hugging Face Dataset")


def _from_path(
    path: Path,
    mapping,
    modality_extensions: Sequence[str],
    sep: Optional[str] = None,
    read_file: Optional[Callable[[str], Any]] = None,
) -> Rows:
    if not path.exists():
        raise DataError(f"dataset path {str(path)!r} does not exist")
    if path.is_dir():
        exts = tuple(e.lower() for e in modality_extensions)
        if not exts:
            raise DataError(f"{str(path)!r} is a folder, but this modality does not read files from folders")
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in exts)
        if not files:
            raise DataError(f"folder {str(path)!r} holds no files of this modality (looked for {', '.join(exts)})")
        read = read_file or str
        classes = class_folders(path, files)
        if classes is None:
            return _from_records([{"anchor": read(str(f))} for f in files], None, f"{len(files)} files under {path}")
        log.info(
            "%s: %d files in %d class folders (%s); their names are the 'label' column",
            path,
            len(files),
            len(set(classes)),
            _names(sorted(set(classes))),
        )
        records = [{"anchor": read(str(f)), LABEL: c} for f, c in zip(files, classes)]
        return _from_records(records, None, f"{len(files)} files in {len(set(classes))} class folders under {path}")
    df = read_table(path, sep=sep)
    return _from_dataframe(df, mapping, f"file {path.name}")


def class_folders(root: Path, files: Sequence[Path]) -> Optional[List[str]]:
    """Each file's class, when ``root`` is laid out as class folders (torchvision's ``ImageFolder``:
    ``root/<class>/<file>``, files deeper down belong to their top folder's class): no file directly in ``root``
    and at least two class folders. Else None (a flat folder, or one folder of files: no labels)."""
    classes = []
    for f in files:
        parts = f.relative_to(root).parts
        if len(parts) < 2:
            return None
        classes.append(parts[0])
    return classes if len(set(classes)) >= 2 else None


def _names(names: Sequence[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f", … ({len(names)} in all)" if len(names) > shown else "")


def _from_dataframe(df, mapping, description="pandas DataFrame") -> Rows:
    if len(df) == 0:
        raise DataError(f"the dataset ({description}) is empty: it has no rows")
    df = df.astype(object).where(df.notna(), None)
    records = df.to_dict(orient="records")
    return _from_records(records, mapping, description)


def to_rows(
    data: Any,
    columns: Optional[Mapping[str, str]] = None,
    file_extensions: Sequence[str] = (),
    sep: Optional[str] = None,
    read_file: Optional[Callable[[str], Any]] = None,
) -> Rows:
    """Turn any supported dataset into :class:`Rows` (see the module docstring), or raise DataError.

    ``sep``: the field separator of a CSV/TSV file (default: sniffed; see :mod:`anycl.data.tables`).
    ``file_extensions``: the suffixes of the files a folder is read for; ``read_file(path) -> item``: the item
    each gives (default: its path; ``anycl.adapters.file_reader`` gives the text of a text file)."""
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
                raise DataError(
                    f"the DatasetDict has no 'train' split (its splits: {list(data.keys())}); pass one split"
                )
            data = data["train"]
        if isinstance(data, hf.Dataset):
            if len(data) == 0:
                raise DataError("the dataset is empty: it has no rows")
            return _from_hf(data, columns)
        if isinstance(data, hf.IterableDataset):
            return from_hf_iterable(data, columns)
    if isinstance(data, (str, os.PathLike)):
        return _from_path(Path(data), columns, file_extensions, sep, read_file)
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
        if isinstance(data[0], Mapping) and not is_raw_item_dict(data[0]):
            return _from_records(list(data), columns, "list of dicts")
        if columns:
            raise DataError("columns= applies to datasets with named columns, not to a list of raw items")
        return _from_records([{"anchor": x} for x in data], None, "list of items")
    if is_stream(data):  # a generator (function), an iterator, an iterable without a length: streamed
        return from_iterable(data, columns)
    raise DataError(
        f"cannot use a {type(data).__name__} as a dataset; pass a datasets.Dataset/DatasetDict/IterableDataset, "
        f"a list of dicts or items, a pandas DataFrame, a path, or a generator of rows"
    )
