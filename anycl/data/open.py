"""Where a data set named by a string is opened: a file or folder stays a path (``to_rows`` reads it), a folder
written by ``datasets.Dataset.save_to_disk`` is loaded, any other string is a Hugging Face data set name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from anycl.errors import DataError

DATA_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet", ".gz", ".txt", ".arrow")


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
