"""Where a data set named by a string is opened: a file or folder stays a path (``to_rows`` reads it), a folder
written by ``datasets.Dataset.save_to_disk`` is loaded, any other string is a Hugging Face data set name.

Before a saved folder is loaded, its Arrow files are read as they are stored, memory-mapped and batch by batch, and
their data counted with each reference to a dictionary value decoded (:func:`check_saved`): ``datasets`` decodes a
dictionary column into plain strings as it loads, so a 165 KB folder whose 5,000 rows point to one 100 KB string took
578 MB, and a few more KB would take gigabytes. Past :func:`~anycl.data.tables.expansion_limit` of the files' size
the folder is refused, and so is one whose Arrow files hold compressed buffers (:mod:`.arrow_ipc`; ``datasets``
writes none), which would be decompressed to whatever sizes they declare."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from anycl.errors import DataError

from .arrow_ipc import has_compressed_buffers
from .tables import decoded_bytes, expansion_error, expansion_limit

DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet", ".gz", ".txt", ".arrow")


def check_saved(folder: Path) -> None:
    """DataError when the Arrow files of a ``save_to_disk`` folder hold more than :func:`expansion_limit` of their size
    once dictionary values are decoded; read memory-mapped, a record batch at a time (nothing is decoded)."""
    import pyarrow as pa  # lazy: pyarrow comes with datasets, only when a saved folder is read

    files = sorted(folder.rglob("*.arrow"))
    for f in files:
        if has_compressed_buffers(f):
            raise DataError(
                f"{str(folder)!r} holds an Arrow file with compressed buffers ({f.name}), which would be decompressed to "
                f"whatever sizes it declares; datasets' save_to_disk writes them uncompressed: save the dataset again, "
                f"or load it with datasets yourself and pass the Dataset"
            )
    size = sum(f.stat().st_size for f in files)
    limit, total = expansion_limit(size), 0
    for f in files:
        with pa.memory_map(str(f)) as source:
            try:
                batches = pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                continue  # not an Arrow stream: datasets says what it is
            for batch in batches:
                total += sum(decoded_bytes(column) for column in batch.columns)
                if total > limit:
                    raise expansion_error(
                        folder, "holds data of", size, limit, "load it with datasets yourself and pass the Dataset"
                    )


def _looks_like_path(spec: str) -> bool:
    s = spec.strip()
    return (
        s.startswith(("/", "./", "../", "~"))
        or os.sep in s
        and s.count("/") > 1
        or any(s.lower().endswith(suf) for suf in DATA_SUFFIXES)
    )


def open_dataset(spec: Any, split: Optional[str] = None) -> Any:
    """What :func:`anycl.data.to_rows` reads for ``spec``.

    Anything but a string is returned as it is. A string that names an existing file or folder stays a
    path (a folder written by ``datasets.Dataset.save_to_disk`` is loaded with ``load_from_disk``).
    A string that looks like a path but does not exist stays a path (``to_rows`` reports it). Any other string is
    taken as a Hugging Face dataset name and loaded with ``datasets.load_dataset`` (offline,
    ``HF_HUB_OFFLINE=1``, only datasets already in the local cache load); ``split`` picks a split.
    """
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    s = os.fspath(spec)
    p = Path(s).expanduser()
    if p.exists():
        if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
            import datasets  # lazy: datasets: ~2 s to import, only when a saved dataset is read

            check_saved(p)
            ds = datasets.load_from_disk(str(p))
            return ds[split] if split and isinstance(ds, datasets.DatasetDict) else ds
        return s
    if _looks_like_path(s):
        return s  # to_rows says it does not exist
    import datasets  # lazy: datasets: ~2 s to import, only when a Hugging Face dataset name is loaded

    try:
        ds = datasets.load_dataset(s, split=split)
    except Exception as exc:  # offline, unknown name, no network: say what to do instead
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        raise DataError(
            f"{s!r} is not a local file or folder, and loading it as a Hugging Face dataset failed ({reason})"
            + ("; offline (HF_HUB_OFFLINE=1) only datasets in the local cache load" if offline else "")
            + "; give a path to a CSV, JSON Lines or Parquet file, or a folder of items"
        ) from exc
    return ds
