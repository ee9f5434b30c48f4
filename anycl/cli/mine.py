"""``anycl mine``: hard negatives for a pair file with a model, and how many candidates each filter removed."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

from sentence_transformers import SentenceTransformer

from anycl.adapters.text_folder import check_no_code
from anycl.errors import DataError
from anycl.mining.mine import mine_hard_negatives
from anycl.mining.options import MiningOptions
from anycl.model.contrastive import CONFIG_FILE as MODEL_CONFIG_FILE
from anycl.model.engines import ENGINES

from .common import (
    UsageError,
    add_columns_argument,
    add_output_arguments,
    load_model,
    one_line,
    parsed_columns,
    read_rows,
    write_json,
)
from .table_output import TABLE_SUFFIXES, write_table

DEFAULTS = MiningOptions()


def mining_model(spec: str):
    """An anycl model folder (or fit output folder) → anycl.load; anything else → SentenceTransformer."""
    p = Path(spec)
    if (p / MODEL_CONFIG_FILE).exists() or (p / "model" / MODEL_CONFIG_FILE).exists():
        return load_model(spec)
    if p.is_dir() and not (p / "modules.json").exists() and not (p / "config.json").exists():
        raise UsageError(f"{spec!r} is neither an anycl model folder nor a sentence-transformers model folder")
    if not p.exists() and (spec.startswith((".", "/", "~")) or spec.count("/") > 1):
        raise FileNotFoundError(
            f"model {spec!r} does not exist; give an anycl model folder, a sentence-transformers "
            f"folder, or a model name from the Hugging Face hub (online, or cached)"
        )
    check_no_code(spec)  # no module the folder names is imported, whatever the library version
    try:
        return SentenceTransformer(spec, device="cpu")
    except OSError as exc:  # not on disk and not reachable (offline)
        raise FileNotFoundError(
            f"cannot load the model {spec!r}: not a folder here and not in the local Hugging "
            f"Face cache ({one_line(exc)[:160]})"
        ) from exc


def run(args, extra: List[str]) -> int:
    out = Path(args.output)
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise UsageError(f"--output must end in .csv, .tsv, .jsonl or .parquet, got {args.output!r}")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output!r} already exists; pass --overwrite or choose another file")
    options = MiningOptions(  # checked before the model is loaded
        num_negatives=args.num_negatives,
        range_min=args.range_min,
        range_max=args.range_max,
        max_score=args.max_score,
        absolute_margin=args.absolute_margin,
        relative_margin=args.relative_margin,
        sampling=args.sampling,
        batch_size=args.batch_size,
        seed=args.seed,
        on_short=args.on_short,
        show_progress=not args.quiet,
        precision=args.precision,
        engine=args.engine,
        backend=args.backend,
        faiss_options={"index": args.faiss_index, "nlist": args.nlist, "nprobe": args.nprobe},
        cache_dir=args.cache_dir,
    )
    columns = parsed_columns(args)
    model = mining_model(args.model)
    _, rows = read_rows(args.data, columns, args.split)
    corpus = None
    if args.corpus:
        _, crows = read_rows(args.corpus, {"anchor": args.corpus_column} if args.corpus_column else None, args.split)
        corpus = crows.column("anchor")
    mined, stats = mine_hard_negatives(model, rows, corpus=corpus, options=options, verbose=True)
    if not mined:
        raise DataError(
            "every row was dropped: no query kept enough negatives after the filters; loosen the "
            "margins, raise --range-max, or pass --on-short random"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(mined, out)
    negs = "negative_1" if args.num_negatives == 1 else f"negative_1..{args.num_negatives}"
    print(f"wrote {len(mined)} rows (anchor, positive, {negs}) to {out}")
    if args.stats:
        write_json(args.stats, stats.as_dict())
    return 0


def option(p, flag: str, text: str, **kw) -> None:
    """A flag whose default is that of the :class:`~anycl.mining.options.MiningOptions` field of its name,
    shown at the end of its help."""
    default = getattr(DEFAULTS, flag[2:].replace("-", "_"))
    p.add_argument(flag, default=default, help=f"{text} (default: {default})", **kw)


def add_parser(sub) -> None:
    """The ``mine`` command."""
    p = sub.add_parser(
        "mine",
        help="hard negatives for a pair file, with the filter statistics",
        description="Mine hard negatives for (anchor, positive) pairs with a model (anycl.mining."
        "mine_hard_negatives): exact top-k search, then the false-negative filters "
        "(range_min, max_score, absolute and relative margin against the query's lowest "
        "positive). Writes rows anchor, positive, negative_1..k and prints how many "
        "candidates each rule removed.",
        epilog="example:\n  anycl mine out examples/data/pydoc_train.csv --output mined.csv --relative-margin 0.05",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="an anycl model folder (or fit output folder), or a sentence-transformers model folder or hub name",
    )
    p.add_argument("data", metavar="DATA", help="(anchor, positive) pairs: a file or a Hugging Face dataset name")
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="output file: .csv, .tsv, .jsonl or .parquet (required)"
    )
    p.add_argument(
        "--corpus",
        metavar="FILE",
        help="documents to mine from (default: the pairs' positives, which are always added)",
    )
    p.add_argument(
        "--corpus-column",
        metavar="NAME",
        help="the corpus file's column of documents (default: anchor or the only one)",
    )
    option(p, "--num-negatives", "negatives per row", type=int, metavar="K")
    option(p, "--range-min", "skip the best N candidates", type=int, metavar="N")
    option(p, "--range-max", "consider candidates up to this rank", type=int, metavar="N")
    p.add_argument("--max-score", type=float, metavar="S", help="drop candidates scoring above this (default: off)")
    p.add_argument("--absolute-margin", type=float, metavar="M", help="keep score <= positive score - M (default: off)")
    p.add_argument(
        "--relative-margin",
        type=float,
        metavar="M",
        help="keep score <= positive score - M × |positive score| (default: off; sentence-transformers "
        "recommends 0.05)",
    )
    option(p, "--sampling", "hardest first, or at random in the window", choices=("top", "random"))
    option(
        p,
        "--on-short",
        "a query left without enough negatives: drop its rows or fill at random",
        choices=("drop", "random"),
    )
    add_columns_argument(p)
    p.add_argument("--split", metavar="SPLIT", help="the split of a Hugging Face dataset (default: test if any)")
    option(p, "--batch-size", "items embedded at once", type=int, metavar="N")
    option(p, "--seed", "seed of --sampling random", type=int, metavar="N")
    option(
        p,
        "--engine",
        "what embeds the items: auto (bf16 autocast on a CPU or GPU with bf16 units, else float32), torch "
        "(float32), torch-bf16, onnx or onnx-int8 (ONNX Runtime on the CPU, for anycl models; pip install "
        "'anycl[onnx]'); the negatives found barely change, see docs/scale.md",
        choices=ENGINES,
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="the older name of the torch engines: fp32 is --engine torch, bf16 is --engine torch-bf16 "
        "(default: not given)",
    )
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="keep the embeddings in this folder, keyed by the model's state and each item's hash: a re-run "
        "embeds only new items (default: none)",
    )
    option(
        p, "--backend", "the search: exact, or a FAISS index (pip install 'anycl[faiss]')", choices=("exact", "faiss")
    )
    p.add_argument(
        "--faiss-index",
        choices=("flat", "ivf"),
        default="flat",
        help="with --backend faiss: flat (exhaustive) or ivf (approximate, faster) (default: flat)",
    )
    p.add_argument("--nlist", type=int, metavar="N", help="ivf: number of lists (default: sqrt of the corpus size)")
    p.add_argument("--nprobe", type=int, default=16, metavar="N", help="ivf: lists scanned per query (default: 16)")
    p.add_argument("--stats", metavar="FILE", help="also write the statistics to this JSON file (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (default: off)")
    add_output_arguments(p)
    p.set_defaults(func=run)
