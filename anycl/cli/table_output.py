"""The table files the command line writes (``anycl mine --output``): rows of dicts as a .csv, .tsv, .jsonl or
.parquet file, by the file's suffix. Reading data tables is :mod:`anycl.data.tables`; the console output
(logging, ``--verbose``/``--quiet``) is :mod:`anycl.cli.common`."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pandas as pd

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")


def write_table(rows: List[dict], out: Path) -> None:
    """``rows`` as one table file at ``out``, in the format its suffix names (anything else: Parquet)."""
    frame = pd.DataFrame(rows)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    elif suffix == ".tsv":
        frame.to_csv(out, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(out, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(out, index=False)
