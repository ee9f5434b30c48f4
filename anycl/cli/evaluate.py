"""``anycl eval``: the metrics of a saved model on evaluation data, from any registered evaluator (retrieval, STS,
triplet, reranking, kNN, classification, a kNN and linear probe with ``--train``, or a plugin's)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from anycl.errors import AnyclError
from anycl.evaluation.choose import build_evaluator
from anycl.model.engines import ENGINES

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


def _folder_of_items(data: Optional[str]) -> bool:
    """A folder of item files, which the model's modalities choose (a saved Hugging Face data set is not one)."""
    p = Path(data) if data else None
    return (
        p is not None and p.is_dir() and not any((p / f).exists() for f in ("dataset_info.json", "dataset_dict.json"))
    )


def run(args, extra: List[str]) -> int:
    columns = parsed_columns(args)

    def evaluator_for(rows, train, sides):
        return build_evaluator(
            rows,
            args.kind or ("probe" if train is not None else None),
            batch_size=args.batch_size,
            sides=sides,
            option="--kind",
            k=args.k,
            train=train,
        )

    early = not _folder_of_items(args.data) and not _folder_of_items(args.train)
    if early:  # the data read and checked before the model loads (empty, one pair, NaN labels, a bad --kind)
        _, rows = read_rows(args.data, columns, args.split)
        train = read_rows(args.train, columns, "train")[1] if args.train else None
        try:
            evaluator_for(rows, train, None)
        except AnyclError:
            raise
        except Exception:  # noqa: BLE001 - what depends on the model's towers (cross-modal pairs) is decided below
            pass
    model = load_model(args.model)
    if not early:  # a folder's files are those of the model's modalities
        _, rows = read_rows(args.data, columns, args.split, model)
        train = read_rows(args.train, columns, "train", model)[1] if args.train else None
    evaluator = evaluator_for(rows, train, model.sides)
    evaluator.show_progress = not args.quiet
    evaluator.engine = args.engine
    metrics = evaluator(model)
    print_metrics(metrics, evaluator.describe(len(rows)))
    if args.output:
        write_json(args.output, metrics)
    return 0


def add_parser(sub) -> None:
    """The ``eval`` command."""
    p = sub.add_parser(
        "eval",
        help="retrieval, STS, triplet, reranking or kNN / linear-probe metrics of a saved model",
        description="Evaluate a saved model. Pairs (anchor, positive) give retrieval metrics "
        "(nDCG@10, MRR@10, MAP@100, recall@k), pairs with a score STS correlations, items with a label "
        "leave-one-out kNN accuracy, or with --train kNN and linear-probe accuracy; --kind names another "
        "registered evaluator.",
    )
    model_and_data(p, "evaluation data: a file, folder or Hugging Face dataset name")
    p.add_argument(
        "--train",
        metavar="DATA",
        help="labelled training data for kNN and linear-probe accuracy on DATA (default: none, leave-one-out kNN)",
    )
    p.add_argument(
        "--kind",
        metavar="KIND",
        help="the evaluation: a registered evaluator's name (anycl.evaluation.names()); default: from the columns "
        "(score → sts, pairs → retrieval, labels → knn; with --train: probe)",
    )
    p.add_argument("--k", type=int, default=5, metavar="K", help="neighbours for kNN (default: 5)")
    add_columns_argument(p)
    p.add_argument("--split", metavar="SPLIT", help="the split of a Hugging Face dataset (default: test)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="items embedded at once (default: 64)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="torch",
        help="what embeds the items: torch (float32), torch-bf16, onnx, onnx-int8 or auto (torch-bf16 where the "
        "device has bf16 units); see anycl embed --help and docs/scale.md (default: torch)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="also write the metrics to this JSON file (default: none)")
    add_output_arguments(p)
    p.set_defaults(func=run)
