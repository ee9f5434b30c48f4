"""The ``anycl`` command line: ``fit``, ``embed``, ``eval``, ``mine``, ``demo`` (and ``python -m anycl``).

::

    anycl fit pairs.csv --modality text --epochs 1 --output-dir out     # model, report, config, card
    anycl eval out test_pairs.csv                                        # retrieval metrics
    anycl embed out items.csv --output emb.parquet                       # embeddings with item ids
    anycl mine MODEL pairs.csv --output mined.csv --relative-margin 0.05 # hard negatives for a pair file
    anycl fit --config out/config.yaml --output-dir out2                 # the same run again

Every ``fit`` option (``anycl.api.FIT_OPTIONS``) is accepted as ``--name value`` (``--batch-size 16``,
``--loss-options '{"temperature": 0.1}'``); values are read as JSON, YAML flow mappings, booleans, or
strings. A bare ``--name`` means true. Command-line values override the config file's.

Problems a user can fix (a bad path, an unknown option or modality, an existing output folder) print one
line that names the problem and how to fix it, and exit with code 2; ``--verbose`` adds the traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .cli_flags import DEFAULT_RUNS, FIT_FLAG_DOCS, HIDDEN_FIT_OPTIONS, fit_options_help  # noqa: F401
from .options import FIT_OPTIONS

EXIT_USER_ERROR = 2

log = logging.getLogger("anycl")


class UsageError(ValueError):
    """A command-line mistake (reported like the library's errors: one line, exit code 2)."""


# -- shared helpers ----------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="more logging, the libraries' own progress bars, and tracebacks with errors (default: off)")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars, only warnings and results (default: off)")


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    _hide_library_bars()  # the libraries' own bars (loading weights, writing shards) are not phases of a run
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        for name in ("sentence_transformers", "transformers", "accelerate", "datasets"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _hide_library_bars() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
    except Exception:  # pragma: no cover - an optional nicety
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
    except Exception:  # pragma: no cover
        pass


def parse_options(tokens: Sequence[str], valid: Sequence[str]) -> Dict[str, Any]:
    """``--name value`` / ``--name=value`` / bare ``--flag`` tokens → {name: parsed value}.

    Dashes in names become underscores; names not in ``valid`` raise ConfigError listing the valid ones.
    """
    from .config import parse_value
    from .errors import ConfigError

    out: Dict[str, Any] = {}
    i = 0
    tokens = list(tokens)
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            raise UsageError(f"unexpected argument {tok!r}; options are written --name value")
        name, eq, value = tok[2:].partition("=")
        name = name.replace("-", "_")
        if name in HIDDEN_FIT_OPTIONS:
            raise UsageError(f"--{name} takes a Python object, which a command line cannot give; use anycl.fit "
                             f"from Python for it")
        if name not in valid:
            from .config import did_you_mean

            hint = did_you_mean(name, list(valid)).replace("'", "").replace("mean ", "mean --").replace("_", "-")
            raise ConfigError(f"unknown option --{name.replace('_', '-')}{hint}; valid fit options: "
                              + ", ".join("--" + v.replace("_", "-") for v in sorted(valid)))
        if eq:
            out[name] = parse_value(value)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            out[name] = parse_value(tokens[i + 1])
            i += 2
        else:
            out[name] = True
            i += 1
    return out


FIT_FLAGS_WITH_VALUE = ("--modality", "--loss", "--config")
FIT_FLAGS = ("-v", "--verbose", "-q", "--quiet", "-h", "--help")


def split_fit_argv(tokens: Sequence[str]):
    """Separate ``fit``'s own arguments from ``--option value`` pairs of fit options.

    argparse cannot do it alone: in ``DATA --output-dir out`` it would take ``out`` for DATA.
    """
    own: List[str] = []
    extra: List[str] = []
    i = 0
    tokens = list(tokens)
    while i < len(tokens):
        tok = tokens[i]
        name = tok.split("=", 1)[0]
        if name in FIT_FLAGS or (name in FIT_FLAGS_WITH_VALUE and "=" in tok):
            own.append(tok)
            i += 1
        elif name in FIT_FLAGS_WITH_VALUE:
            own.extend(tokens[i:i + 2])
            i += 2
        elif tok.startswith("--") and tok != "--":
            extra.append(tok)
            i += 1
            if "=" not in tok and i < len(tokens) and not tokens[i].startswith("--"):
                extra.append(tokens[i])
                i += 1
        else:
            own.append(tok)
            i += 1
    return own, extra


def _next_run_dir(base: str = DEFAULT_RUNS) -> str:
    n = 1
    while Path(base, f"run-{n}").exists():
        n += 1
    return str(Path(base, f"run-{n}"))


def _load_model(path: str):
    import anycl

    if not Path(path).exists():
        raise FileNotFoundError(f"model folder {path!r} does not exist; give the output folder of `anycl fit` "
                                f"or a folder written by model.save")
    return anycl.load(path)


def _rows(data: str, columns: Optional[dict], split: Optional[str], model=None):
    from . import adapters
    from .config import open_dataset
    from .data import to_rows

    exts: tuple = ()
    if model is not None:
        exts = tuple(e for m in model.modalities for e in adapters.ADAPTERS.lookup(m).file_extensions)
    src = open_dataset(data, split)
    try:
        import datasets

        if isinstance(src, datasets.DatasetDict):
            if split is None and "test" in src:
                src = src["test"]
            elif split is not None:
                if split not in src:
                    raise UsageError(f"the dataset has no split {split!r}; its splits: {list(src)}")
                src = src[split]
    except ImportError:  # pragma: no cover - a dependency
        pass
    return src, to_rows(src, columns, exts)


def _print_metrics(metrics: Dict[str, Any], title: str) -> None:
    print(title)
    width = max(len(k) for k in metrics) if metrics else 0
    for k, v in metrics.items():
        print(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")


# -- fit -------------------------------------------------------------------------------------------------
def cmd_fit(args, extra: List[str]) -> int:
    from . import fit
    from .config import load_config, parse_value
    from .errors import ConfigError

    config: Dict[str, Any] = load_config(args.config) if args.config else {}
    config.update(parse_options(extra, list(FIT_OPTIONS)))
    for key in ("data", "modality", "loss"):
        value = getattr(args, key)
        if value is not None:  # --modality may be a JSON mapping of sides: '{"anchor": "image", "positive": "text"}';
            # DATA and --loss a mapping of data set names: '{"nli": "nli.csv", "qa": "qa.csv"}' (anycl.multi_dataset)
            mapping = key == "modality" or value.lstrip().startswith("{")
            config["dataset" if key == "data" else key] = parse_value(value) if mapping else value
    dataset = config.pop("dataset", None)
    if dataset is None:
        raise ConfigError("no dataset: give DATA (a CSV/JSONL/Parquet file, a folder, or a Hugging Face dataset "
                          "name) or `dataset:` in the config file")
    modality = config.pop("modality", None)
    if modality is None:
        from . import adapters

        raise ConfigError(f"no modality: give --modality ({', '.join(adapters.names())}) or `modality:` in the config")
    loss = config.pop("loss", None)
    if not config.get("output_dir"):
        config["output_dir"] = _next_run_dir()
    if args.quiet:
        config["progress"] = False
    out = config["output_dir"]
    t0 = time.perf_counter()
    import shlex

    from .card import command

    with command("anycl " + shlex.join(getattr(args, "argv", []) or [])):  # shown in the model card
        model = fit(dataset, modality=modality, loss=loss, **config)
    info = model.info
    print(f"trained {info.get('steps')} steps on {info.get('train_rows') or 'streamed'} rows in "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"model:  {Path(out, 'model')}  (anycl.load; model card {Path(out, 'model', 'README.md')})")
    print(f"report: {Path(out, 'report.html')}")
    print(f"config: {Path(out, 'config.yaml')}  (repeat: anycl fit --config {Path(out, 'config.yaml')} "
          f"--output-dir NEW)")
    if info.get("final_metrics"):
        _print_metrics({k: v for k, v in info["final_metrics"].items() if k != "step"}, "final metrics:")
    return 0


# -- embed -----------------------------------------------------------------------------------------------
def cmd_embed(args, extra: List[str]) -> int:
    import numpy as np

    out = Path(args.output)
    if out.suffix.lower() not in (".parquet", ".npy"):
        raise UsageError(f"--output must end in .parquet or .npy, got {args.output!r}")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output!r} already exists; pass --overwrite or choose another file")
    model = _load_model(args.model)
    columns = {"anchor": args.column} if args.column else None
    src, rows = _rows(args.data, columns, args.split, model)
    items = rows.column("anchor")
    ids = _ids(args, src, rows)
    emb = model.encode(items, modality=args.modality, batch_size=args.batch_size, show_progress=not args.quiet,
                       precision=args.precision, truncate_dim=args.truncate_dim, prompt_name=args.prompt_name,
                       convert_to_numpy=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        np.save(out, emb)
        ids_file = out.with_suffix(".ids.json")
        ids_file.write_text(json.dumps(ids))
        where = f"{out} (+ ids in {ids_file})"
    else:
        import pandas as pd

        frame = {"id": ids, "embedding": list(emb)}
        if items and isinstance(items[0], str):
            frame["item"] = items
        pd.DataFrame(frame).to_parquet(out, index=False)
        where = str(out)
    print(f"wrote {emb.shape[0]} embeddings of width {emb.shape[1]} to {where}")
    return 0


def _ids(args, src, rows) -> list:
    """Item ids: --id-column (or an ``id`` column) of a table, file paths of a folder, else row numbers."""
    from .data import read_table

    table = None
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


# -- eval ------------------------------------------------------------------------------------------------
def cmd_eval(args, extra: List[str]) -> int:
    from .data import LABEL
    from .errors import DataError
    from .evaluation import KNNEvaluator, ProbeEvaluator, RetrievalEvaluator

    model = _load_model(args.model)
    columns = json.loads(args.columns) if args.columns else None
    _, rows = _rows(args.data, columns, args.split, model)
    kind_arg = args.kind or ("sts" if "score" in rows.columns and rows.has_positive else None)
    if kind_arg in ("sts", "triplet", "reranking", "classification"):  # anycl.evaluators
        from .evaluators import build_evaluator

        evaluator = build_evaluator(rows, kind_arg, batch_size=args.batch_size)
        kind = f"{kind_arg}: {len(rows)} rows"
    elif kind_arg == "knn" and not rows.has_label:
        raise DataError(f"--kind knn needs a 'label' column; the columns are {rows.columns}")
    elif rows.has_positive and kind_arg in (None, "retrieval"):
        if len(model.modalities) > 1:
            from .crossmodal import CrossModalRetrievalEvaluator

            evaluator = CrossModalRetrievalEvaluator(rows.column("anchor"), rows.column("positive"),
                                                     batch_size=args.batch_size)
        else:
            evaluator = RetrievalEvaluator.from_pairs(rows, batch_size=args.batch_size)
        kind = f"retrieval: {len(rows)} pairs"
    elif rows.has_label and kind_arg in (None, "knn"):
        if args.train:
            _, train = _rows(args.train, columns, "train", model)
            if not train.has_label:
                raise DataError(f"--train data needs a 'label' column for a probe; its columns are {train.columns}")
            evaluator = ProbeEvaluator(train.column("anchor"), train.column(LABEL), rows.column("anchor"),
                                       rows.column(LABEL), k=args.k, batch_size=args.batch_size)
            kind = f"kNN and linear probe: {len(train)} training, {len(rows)} test items"
        else:
            evaluator = KNNEvaluator(rows.column("anchor"), rows.column(LABEL), k=args.k, batch_size=args.batch_size)
            kind = f"leave-one-out kNN: {len(rows)} labelled items"
    else:
        raise DataError(f"eval data needs (anchor, positive) pairs for retrieval metrics or a 'label' column for "
                        f"kNN/probe accuracy; its columns are {rows.columns}")
    if hasattr(evaluator, "show_progress"):
        evaluator.show_progress = not args.quiet
    metrics = evaluator(model)
    _print_metrics(metrics, f"{kind}")
    if args.output:
        Path(args.output).write_text(json.dumps(metrics, indent=2))
        print(f"wrote {args.output}")
    return 0


# -- mine ------------------------------------------------------------------------------------------------
def _mining_model(spec: str):
    """An anycl model folder (or fit output folder) → anycl.load; anything else → SentenceTransformer."""
    from .model import CONFIG_FILE

    p = Path(spec)
    if (p / CONFIG_FILE).exists() or (p / "model" / CONFIG_FILE).exists():
        return _load_model(spec)
    if p.is_dir() and not (p / "modules.json").exists() and not (p / "config.json").exists():
        raise UsageError(f"{spec!r} is neither an anycl model folder nor a sentence-transformers model folder")
    if not p.exists() and (spec.startswith((".", "/", "~")) or spec.count("/") > 1):
        raise FileNotFoundError(f"model {spec!r} does not exist; give an anycl model folder, a sentence-transformers "
                                f"folder, or a model name from the Hugging Face hub (online, or cached)")
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(spec, device="cpu")
    except OSError as exc:  # not on disk and not reachable (offline)
        raise FileNotFoundError(f"cannot load the model {spec!r}: not a folder here and not in the local Hugging "
                                f"Face cache ({_one_line(exc)[:160]})") from exc


def _write_table(rows: List[dict], out: Path) -> None:
    import pandas as pd

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


def cmd_mine(args, extra: List[str]) -> int:
    from .mining import mine_hard_negatives

    out = Path(args.output)
    if out.suffix.lower() not in (".csv", ".tsv", ".jsonl", ".parquet"):
        raise UsageError(f"--output must end in .csv, .tsv, .jsonl or .parquet, got {args.output!r}")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.output!r} already exists; pass --overwrite or choose another file")
    columns = json.loads(args.columns) if args.columns else None
    model = _mining_model(args.model)
    _, rows = _rows(args.data, columns, args.split)
    corpus = None
    if args.corpus:
        _, crows = _rows(args.corpus, {"anchor": args.corpus_column} if args.corpus_column else None, args.split)
        corpus = crows.column("anchor")
    mined, stats = mine_hard_negatives(
        model, rows, corpus=corpus, num_negatives=args.num_negatives, range_min=args.range_min,
        range_max=args.range_max, max_score=args.max_score, absolute_margin=args.absolute_margin,
        relative_margin=args.relative_margin, sampling=args.sampling, batch_size=args.batch_size,
        seed=args.seed, on_short=args.on_short, verbose=True, show_progress=not args.quiet, precision=args.precision)
    if not mined:
        from .errors import DataError

        raise DataError("every row was dropped: no query kept enough negatives after the filters; loosen the "
                        "margins, raise --range-max, or pass --on-short random")
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_table(mined, out)
    negs = "negative_1" if args.num_negatives == 1 else f"negative_1..{args.num_negatives}"
    print(f"wrote {len(mined)} rows (anchor, positive, {negs}) to {out}")
    if args.stats:
        Path(args.stats).write_text(json.dumps(stats.as_dict(), indent=2))
        print(f"wrote {args.stats}")
    return 0


# -- demo ------------------------------------------------------------------------------------------------
def cmd_demo(args, extra: List[str]) -> int:
    from .demo import main as demo_main

    return int(demo_main(list(extra) + (["--quiet"] if args.quiet else [])) or 0)


# -- the parser ------------------------------------------------------------------------------------------
def _model_and_data(p: argparse.ArgumentParser, data_help: str) -> None:
    p.add_argument("model", metavar="MODEL", help="a saved model folder (or a fit output folder)")
    p.add_argument("data", metavar="DATA", help=data_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anycl", description="Contrastive representation learning for text, audio and images.",
        epilog="Run `anycl COMMAND --help` for each command's options.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"anycl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    fit_options = fit_options_help()
    p = sub.add_parser(
        "fit", help="train a model; writes the model, its card, config.yaml and report.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a contrastive encoder (anycl.fit) and write into --output-dir: model/ (with its "
                    "README.md card and config.yaml), config.yaml, report.html + report/*.png, logs/ "
                    "(TensorBoard).",
        epilog="fit options (--name value; JSON values such as '{\"temperature\": 0.1}' are parsed):\n"
               + fit_options + "\n\nexample:\n  anycl fit pairs.csv --modality text --epochs 1 --output-dir out")
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="CSV/TSV/JSONL/JSON/Parquet file, folder of items, or a Hugging Face dataset name (offline: "
                        "only cached datasets) (default: the config's dataset)")
    p.add_argument("--modality", metavar="MODALITY",
                   help="text, audio, image (a registered adapter), or a JSON mapping of sides such as "
                        "'{\"anchor\": \"image\", \"positive\": \"text\"}' (required, here or in --config)")
    p.add_argument("--loss", metavar="NAME", help="a registered loss name (default: the modality's; text, image "
                                                  "and audio: infonce)")
    p.add_argument("--config", metavar="FILE",
                   help="a YAML or JSON file of fit arguments; command-line values win (default: none)")
    _common(p)
    p.set_defaults(func=cmd_fit, takes_extra=True)

    p = sub.add_parser("embed", help="write embeddings of a dataset to Parquet or .npy with item ids",
                       description="Embed the items of a dataset with a saved model. Parquet gets columns id, "
                                   "embedding (and item, for text); .npy gets the (N, D) float32 array and the ids "
                                   "in <name>.ids.json.")
    _model_and_data(p, "the items: a file, folder or Hugging Face dataset name")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output file: .parquet or .npy (required)")
    p.add_argument("--column", metavar="NAME", help="the column of items (default: anchor, or the only column)")
    p.add_argument("--id-column", metavar="NAME",
                   help="the column of item ids (default: id if present, else row numbers; file paths for a folder)")
    p.add_argument("--modality", metavar="MODALITY",
                   help="the tower to embed with, for a model with several (default: the anchor side's)")
    p.add_argument("--split", metavar="SPLIT", help="the split of a Hugging Face dataset (default: test if any)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="items embedded at once (default: 64)")
    p.add_argument("--precision", choices=("float32", "int8", "uint8", "binary", "ubinary"), default="float32",
                   help="quantise the embeddings (int8/uint8: per-dimension ranges of these items; binary/ubinary: "
                        "sign bits, 8 per byte) (default: float32)")
    p.add_argument("--truncate-dim", type=int, metavar="D",
                   help="keep the first D dimensions, re-normalised (Matryoshka models) (default: all)")
    p.add_argument("--prompt-name", metavar="NAME",
                   help="put one of the model's prompts before every item, e.g. anchor or positive (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (default: off)")
    _common(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("eval", help="retrieval metrics or kNN / linear-probe accuracy of a saved model",
                       description="Evaluate a saved model. Pairs (anchor, positive) give retrieval metrics "
                                   "(nDCG@10, MRR@10, MAP@100, recall@k); items with a label give leave-one-out "
                                   "kNN accuracy, or with --train kNN and linear-probe accuracy.")
    _model_and_data(p, "evaluation data: a file, folder or Hugging Face dataset name")
    p.add_argument("--train", metavar="DATA",
                   help="labelled training data for kNN and linear-probe accuracy on DATA (default: none, "
                        "leave-one-out kNN)")
    p.add_argument("--kind", choices=("retrieval", "sts", "triplet", "reranking", "knn", "classification"),
                   help="the evaluation (default: from the columns: score → sts, pairs → retrieval, labels → knn)")
    p.add_argument("--k", type=int, default=5, metavar="K", help="neighbours for kNN (default: 5)")
    p.add_argument("--columns", metavar="JSON", help="JSON mapping of the convention's names to yours, e.g. "
                                                     "'{\"anchor\": \"query\", \"positive\": \"doc\"}' "
                                                     "(default: the convention's names)")
    p.add_argument("--split", metavar="SPLIT", help="the split of a Hugging Face dataset (default: test)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="items embedded at once (default: 64)")
    p.add_argument("-o", "--output", metavar="FILE", help="also write the metrics to this JSON file (default: none)")
    _common(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("mine", help="hard negatives for a pair file, with the filter statistics",
                       description="Mine hard negatives for (anchor, positive) pairs with a model (anycl.mining."
                                   "mine_hard_negatives): exact top-k search, then the false-negative filters "
                                   "(range_min, max_score, absolute and relative margin against the query's lowest "
                                   "positive). Writes rows anchor, positive, negative_1..k and prints how many "
                                   "candidates each rule removed.",
                       epilog="example:\n  anycl mine out examples/data/pydoc_train.csv --output mined.csv "
                              "--relative-margin 0.05",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="an anycl model folder (or fit output folder), or a sentence-transformers model "
                                 "folder or hub name")
    p.add_argument("data", metavar="DATA", help="(anchor, positive) pairs: a file or a Hugging Face dataset name")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="output file: .csv, .tsv, .jsonl or .parquet (required)")
    p.add_argument("--corpus", metavar="FILE", help="documents to mine from (default: the pairs' positives, which "
                                                    "are always added)")
    p.add_argument("--corpus-column", metavar="NAME",
                   help="the corpus file's column of documents (default: anchor or the only one)")
    p.add_argument("--num-negatives", type=int, default=1, metavar="K", help="negatives per row (default: 1)")
    p.add_argument("--range-min", type=int, default=0, metavar="N", help="skip the best N candidates (default: 0)")
    p.add_argument("--range-max", type=int, default=100, metavar="N",
                   help="consider candidates up to this rank (default: 100)")
    p.add_argument("--max-score", type=float, metavar="S", help="drop candidates scoring above this (default: off)")
    p.add_argument("--absolute-margin", type=float, metavar="M",
                   help="keep score <= positive score - M (default: off)")
    p.add_argument("--relative-margin", type=float, metavar="M",
                   help="keep score <= positive score - M × |positive score| (default: off; sentence-transformers "
                        "recommends 0.05)")
    p.add_argument("--sampling", choices=("top", "random"), default="top",
                   help="hardest first, or at random in the window (default: top)")
    p.add_argument("--on-short", choices=("drop", "random"), default="drop",
                   help="a query left without enough negatives: drop its rows or fill at random (default: drop)")
    p.add_argument("--columns", metavar="JSON", help="JSON mapping of the convention's names to yours, e.g. "
                                                     "'{\"anchor\": \"query\", \"positive\": \"doc\"}' "
                                                     "(default: the convention's names)")
    p.add_argument("--split", metavar="SPLIT", help="the split of a Hugging Face dataset (default: test if any)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="items embedded at once (default: 64)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of --sampling random (default: 0)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="embed in float32, or under bfloat16 autocast, about 2x faster on CPUs with bf16 units "
                        "(default: fp32)")
    p.add_argument("--stats", metavar="FILE", help="also write the statistics to this JSON file (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file (default: off)")
    _common(p)
    p.set_defaults(func=cmd_mine)

    p = sub.add_parser("demo", add_help=False, help="fine-tune MiniLM on built-in data, print metrics before/after",
                       description="The built-in demo (see `anycl demo --help`).")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_demo, takes_extra=True)
    return parser


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if isinstance(exc, KeyError) and msg.startswith("'") and msg.endswith("'"):
        msg = msg[1:-1]
    msg = msg.replace("pass overwrite=True", "pass --overwrite")  # the library's wording → the flag
    return msg or type(exc).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``anycl`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv or "-v" in argv
    command = "anycl"
    try:
        from .errors import AnyclError

        parser = build_parser()
        if argv and argv[0] == "fit":
            own, fit_extra = split_fit_argv(argv[1:])
            args, extra = parser.parse_known_args(["fit"] + own)
            extra = extra + fit_extra
        else:
            args, extra = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USER_ERROR
        command = f"anycl {args.command}"
        if extra and not getattr(args, "takes_extra", False):
            raise UsageError(f"unrecognised arguments: {' '.join(extra)} (see {command} --help)")
        _setup_logging(args.verbose, args.quiet)
        args.argv = argv
        return args.func(args, extra)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except (AnyclError, UsageError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError, FloatingPointError) as exc:
        if verbose:
            traceback.print_exc()
        print(f"{command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # a bug or an environment problem: one line unless --verbose
        if verbose:
            traceback.print_exc()
        print(f"{command}: unexpected {type(exc).__name__}: {_one_line(exc)} (run again with --verbose for the "
              f"traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
