"""``anycl eval``: the metrics of a saved model on evaluation data, from any registered evaluator (retrieval, STS,
triplet, reranking, kNN, classification, a kNN and linear probe with ``--train``, or a plugin's)."""

from __future__ import annotations

from typing import List

from anycl.evaluation.choose import build_evaluator

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


def run(args, extra: List[str]) -> int:
    model = load_model(args.model)
    columns = parsed_columns(args)
    _, rows = read_rows(args.data, columns, args.split, model)
    train = read_rows(args.train, columns, "train", model)[1] if args.train else None
    evaluator = build_evaluator(
        rows,
        args.kind or ("probe" if train is not None else None),
        batch_size=args.batch_size,
        sides=model.sides,
        option="--kind",
        k=args.k,
        train=train,
    )
    evaluator.show_progress = not args.quiet
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
    p.add_argument("-o", "--output", metavar="FILE", help="also write the metrics to this JSON file (default: none)")
    add_output_arguments(p)
    p.set_defaults(func=run)
