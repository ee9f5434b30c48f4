"""``anycl embed``: write the embeddings of a dataset's items, with item ids, to Parquet or .npy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, List

import numpy as np
import pandas as pd

from anycl.data.inputs import read_table
from anycl.model.engines import ENGINES

from .common import UsageError, add_output_arguments, load_model, model_and_data, read_rows


def run(args, extra: List[str]) -> int:
    out = Path(args.output)
    if out.suffix.lower() not in (".parquet", ".npy"):
        raise UsageError(f"--output must end in .parquet or .npy, got {args.output!r}")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output!r} already exists; pass --overwrite or choose another file")
    model = load_model(args.model)
    towers = sorted(set(model.modalities))
    if args.modality is None and len(towers) > 1:  # a caption must not be read as an image's file name
        raise UsageError(
            f"this model has {len(towers)} towers ({', '.join(towers)}): pass --modality "
            f"{' or --modality '.join(towers)} to say which one embeds the items of {args.data!r}"
        )
    columns = {"anchor": args.column} if args.column else None
    src, rows = read_rows(args.data, columns, args.split, model)
    items = rows.column("anchor")
    ids = _ids(args, src, rows)
    emb = model.encode(
        items,
        modality=args.modality,
        batch_size=args.batch_size,
        show_progress=not args.quiet,
        precision=args.precision,
        truncate_dim=args.truncate_dim,
        prompt_name=args.prompt_name,
        convert_to_numpy=True,
        engine=args.engine,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        np.save(out, emb)
        ids_file = out.with_suffix(".ids.json")
        ids_file.write_text(json.dumps(ids))
        where = f"{out} (+ ids in {ids_file})"
    else:
        frame = {"id": ids, "embedding": list(emb)}
        if items and isinstance(items[0], str):
            frame["item"] = items
        pd.DataFrame(frame).to_parquet(out, index=False)
        where = str(out)
    print(f"wrote {emb.shape[0]} embeddings of width {emb.shape[1]} to {where}")
    return 0


def _ids(args, src, rows) -> list:
    """Item ids: --id-column (or an ``id`` column) of a table, file paths of a folder, else row numbers."""
    table: Any = None  # a DataFrame or a Hugging Face dataset
    if isinstance(src, str) and Path(src).is_file():
        table = read_table(Path(src))
    elif hasattr(src, "column_names"):
        table = src
    names = list(table.columns) if hasattr(table, "columns") else list(getattr(table, "column_names", []) or [])
    col = args.id_column or ("id" if "id" in names else None)
    if col is not None:
        if col not in names:
            raise UsageError(f"--id-column {col!r} is not a column of the data; its columns: {names}")
        return [v.item() if hasattr(v, "item") else v for v in list(table[col])]
    if isinstance(src, str) and Path(src).is_dir():
        return [os.path.relpath(p, src) for p in rows.column("anchor")]
    return list(range(len(rows)))


def add_parser(sub) -> None:
    """The ``embed`` command."""
    p = sub.add_parser(
        "embed",
        help="write embeddings of a dataset to Parquet or .npy with item ids",
        description="Embed the items of a dataset with a saved model. Parquet gets columns id, "
        "embedding and item (the text, or the file path of an audio or image item); .npy gets the (N, D) "
        "float32 array, and the ids in a JSON file beside it: -o emb.npy writes emb.ids.json.",
    )
    model_and_data(p, "the items: a file, folder or Hugging Face dataset name")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output file: .parquet or .npy (required)")
    p.add_argument("--column", metavar="NAME", help="the column of items (default: anchor, or the only column)")
    p.add_argument(
        "--id-column",
        metavar="NAME",
        help="the column of item ids (default: id if present, else row numbers; file paths for a folder)",
    )
    p.add_argument(
        "--modality",
        metavar="MODALITY",
        help="the tower to embed with: required for a model with several towers (image and text, ...) "
        "(default: the model's only tower)",
    )
    p.add_argument("--split", metavar="SPLIT", help="the split of a Hugging Face dataset (default: test if any)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="items embedded at once (default: 64)")
    p.add_argument(
        "--precision",
        choices=("float32", "int8", "uint8", "binary", "ubinary"),
        default="float32",
        help="quantise the embeddings (int8/uint8: per-dimension ranges of these items; binary/ubinary: "
        "sign bits, 8 per byte) (default: float32)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="torch",
        help="what computes the embeddings: torch (float32, equal to sentence-transformers'), torch-bf16 "
        "(bfloat16 autocast, fast on CPUs and GPUs with bf16 units), onnx or onnx-int8 (ONNX Runtime on the "
        "CPU, float32 or int8 weights; pip install 'anycl[onnx]'), auto (torch-bf16 where the device has bf16 "
        "units, else torch). The fast engines change embeddings by about 1e-3 (int8: 1e-2); tolerances in "
        "docs/scale.md (default: torch)",
    )
    p.add_argument(
        "--truncate-dim",
        type=int,
        metavar="D",
        help="keep the first D dimensions, re-normalised (Matryoshka models) (default: all)",
    )
    p.add_argument(
        "--prompt-name",
        metavar="NAME",
        help="put one of the model's prompts before every item, e.g. anchor or positive (default: none)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (default: off)")
    add_output_arguments(p)
    p.set_defaults(func=run)
