"""Which evaluator a data set gets: the one decision, made by :func:`build_evaluator` for ``fit(eval_dataset=...)``,
``anycl eval`` and whoever else evaluates data.

- an evaluator object (any callable of the model) is used as it is; None gives None;
- ``probe=`` (fit's online probe): :func:`anycl.evaluation.probe.probe_evaluator`;
- a ``kind`` (``eval_kind=``, ``anycl eval --kind``) names a registered evaluator (:func:`anycl.evaluation.names`),
  built by its ``from_rows``;
- no kind: from the columns: a ``score`` column with pairs → ``sts``; pairs (``anchor``, ``positive``) →
  ``cross_modal_retrieval`` when the model's anchor and positive are different towers, else ``retrieval``;
  items with a ``label`` only → ``knn`` (leave-one-out).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Optional, Sequence

from anycl.data.inputs import Rows, to_rows
from anycl.errors import ConfigError, DataError, did_you_mean

from .base import EVALUATORS
from .from_sentence_transformers import SentenceTransformersEvaluator, is_sentence_transformers_evaluator
from .probe import probe_evaluator


def kind_from_columns(rows: Rows, sides: Optional[Mapping[str, str]] = None) -> str:
    """The evaluator name for data of these columns (see the module docstring)."""
    if "score" in rows.columns and rows.has_positive:
        return "sts"
    if rows.has_positive:
        cross_modal = bool(sides) and sides.get("anchor") != sides.get("positive")  # type: ignore[union-attr]
        return "cross_modal_retrieval" if cross_modal else "retrieval"
    if rows.has_label:
        return "knn"
    raise DataError(
        f"evaluation data needs pairs (anchor, positive) for retrieval metrics, a 'score' column for STS, or a "
        f"'label' column for kNN accuracy; its columns are {rows.columns}"
    )


def evaluator_class(kind: str, option: str = "eval_kind"):
    """The registered evaluator ``kind``; ConfigError naming ``option`` (with a near miss) for an unknown one."""
    if isinstance(kind, str) and kind in EVALUATORS:
        return EVALUATORS.lookup(kind)
    valid = EVALUATORS.names()
    hint = did_you_mean(EVALUATORS._norm(kind), valid, cutoff=0.6) if isinstance(kind, str) else ""
    raise ConfigError(f"{option} must be one of {valid} (or None: chosen from the columns), got {kind!r}{hint}")


def _accepted(fn, options: Mapping[str, Any]) -> dict:
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def build_evaluator(
    eval_dataset: Any,
    kind: Optional[str] = None,
    columns: Optional[Mapping[str, str]] = None,
    batch_size: int = 64,
    file_extensions: Sequence[str] = (),
    seed: int = 0,
    *,
    sides: Optional[Mapping[str, str]] = None,
    probe: Any = None,
    option: str = "eval_kind",
    **options: Any,
):
    """The evaluator for ``eval_dataset`` (see the module docstring); None for None.

    ``sides``: the model's side → tower mapping (cross-modal pairs); ``option``: the name errors give ``kind``;
    ``options`` (with ``batch_size`` and ``seed``): offered to the evaluator's ``from_rows``, which takes those it
    names (``k`` for kNN, ``train`` for the probe).
    """
    if probe is not None:
        if kind is not None:
            raise ConfigError(f"{option}={kind!r} and probe= both choose the evaluation; give one")
        return probe_evaluator(eval_dataset, probe, columns, file_extensions, seed)
    if kind is not None:
        cls = evaluator_class(kind, option)
    if eval_dataset is None:
        if kind is not None:
            raise ConfigError(f"{option}={kind!r} needs evaluation data (eval_dataset)")
        return None
    if is_sentence_transformers_evaluator(eval_dataset):  # run on the anycl model through a SentenceTransformer view
        if kind is not None:
            raise ConfigError(f"{option} applies to evaluation data, not to a sentence-transformers evaluator")
        return SentenceTransformersEvaluator(eval_dataset)
    if callable(eval_dataset) and not isinstance(eval_dataset, (list, tuple, str)):
        if kind is not None:
            raise ConfigError(f"{option} applies to evaluation data, not to an evaluator object")
        return eval_dataset
    rows = to_rows(eval_dataset, columns, file_extensions)
    if kind is None:
        cls = EVALUATORS.lookup(kind_from_columns(rows, sides))
    return cls.from_rows(rows, **_accepted(cls.from_rows, dict(options, batch_size=batch_size, seed=seed)))
