"""``anycl eval``: retrieval, STS, triplet, reranking or kNN / linear-probe metrics of a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, List, Optional, Tuple

from anycl.data.inputs import LABEL, Rows
from anycl.data.item_checks import check_labels
from anycl.errors import DataError
from anycl.evaluation.crossmodal import CrossModalRetrievalEvaluator
from anycl.evaluation.embedding_evaluators import KNNEvaluator, ProbeEvaluator, RetrievalEvaluator
from anycl.evaluation.pair_evaluators import build_evaluator

from .common import (
    add_columns_argument,
    add_output_arguments,
    load_model,
    model_and_data,
    parsed_columns,
    print_metrics,
    read_rows,
    write_json,
)


def _folder_of_items(data: str) -> bool:
    """A folder of item files, whose files are chosen by the model's modalities (a saved data set is not)."""
    p = Path(data)
    return p.is_dir() and not any((p / f).exists() for f in ("dataset_info.json", "dataset_dict.json"))


def _evaluator(args: argparse.Namespace, rows: Rows, columns: Optional[dict], model: Any = None) -> Tuple[Any, str]:
    """(the evaluator, what it scores) for the eval rows; ``model``: None before it is loaded (a two-tower model's
    cross-modal evaluator, a folder of --train items, need it)."""
    kind_arg = args.kind or ("sts" if "score" in rows.columns and rows.has_positive else None)
    if kind_arg in ("sts", "triplet", "reranking", "classification"):  # anycl.evaluation.pair_evaluators
        return build_evaluator(rows, kind_arg, batch_size=args.batch_size), f"{kind_arg}: {len(rows)} rows"
    if kind_arg == "knn" and not rows.has_label:
        raise DataError(f"--kind knn needs a 'label' column; the columns are {rows.columns}")
    if rows.has_positive and kind_arg in (None, "retrieval"):
        if model is not None and len(model.modalities) > 1:
            evaluator: Any = CrossModalRetrievalEvaluator(
                rows.column("anchor"), rows.column("positive"), batch_size=args.batch_size
            )
        else:
            evaluator = RetrievalEvaluator.from_pairs(rows, batch_size=args.batch_size)
        return evaluator, f"retrieval: {len(rows)} pairs"
    if rows.has_label and kind_arg in (None, "knn"):
        check_labels(rows)
        if args.train:
            if model is None and _folder_of_items(args.train):
                return None, ""
            _, train = read_rows(args.train, columns, "train", model)
            if not train.has_label:
                raise DataError(f"--train data needs a 'label' column for a probe; its columns are {train.columns}")
            check_labels(train)
            evaluator = ProbeEvaluator(
                train.column("anchor"),
                train.column(LABEL),
                rows.column("anchor"),
                rows.column(LABEL),
                k=args.k,
                batch_size=args.batch_size,
            )
            return evaluator, f"kNN and linear probe: {len(train)} training, {len(rows)} test items"
        evaluator = KNNEvaluator(rows.column("anchor"), rows.column(LABEL), k=args.k, batch_size=args.batch_size)
        return evaluator, f"leave-one-out kNN: {len(rows)} labelled items"
    raise DataError(
        f"eval data needs (anchor, positive) pairs for retrieval metrics or a 'label' column for "
        f"kNN/probe accuracy; its columns are {rows.columns}"
    )


def run(args, extra: List[str]) -> int:
    columns = parsed_columns(args)
    rows, evaluator, kind = None, None, ""
    if not _folder_of_items(args.data):  # read and checked before the model loads (a folder needs its modalities)
        _, rows = read_rows(args.data, columns, args.split)
        evaluator, kind = _evaluator(args, rows, columns)
    model = load_model(args.model)
    if rows is None:
        _, rows = read_rows(args.data, columns, args.split, model)
    if evaluator is None or len(model.modalities) > 1:
        evaluator, kind = _evaluator(args, rows, columns, model)
    if hasattr(evaluator, "show_progress"):
        evaluator.show_progress = not args.quiet
    metrics = evaluator(model)
    print_metrics(metrics, f"{kind}")
    if args.output:
        write_json(args.output, metrics)
    return 0


def add_parser(sub) -> None:
    """The ``eval`` command."""
    p = sub.add_parser(
        "eval",
        help="retrieval metrics or kNN / linear-probe accuracy of a saved model",
        description="Evaluate a saved model. Pairs (anchor, positive) give retrieval metrics "
        "(nDCG@10, MRR@10, MAP@100, recall@k); items with a label give leave-one-out "
        "kNN accuracy, or with --train kNN and linear-probe accuracy.",
    )
    model_and_data(p, "evaluation data: a file, folder or Hugging Face dataset name")
    p.add_argument(
        "--train",
        metavar="DATA",
        help="labelled training data for kNN and linear-probe accuracy on DATA (default: none, leave-one-out kNN)",
    )
    p.add_argument(
        "--kind",
        choices=("retrieval", "sts", "triplet", "reranking", "knn", "classification"),
        help="the evaluation (default: from the columns: score → sts, pairs → retrieval, labels → knn)",
    )
    p.add_argument("--k", type=int, default=5, metavar="K", help="neighbours for kNN (default: 5)")
    add_columns_argument(p)
    p.add_argument("--split", metavar="SPLIT", help="the split of a Hugging Face dataset (default: test)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="items embedded at once (default: 64)")
    p.add_argument("-o", "--output", metavar="FILE", help="also write the metrics to this JSON file (default: none)")
    add_output_arguments(p)
    p.set_defaults(func=run)
