"""What a loss needs from the data, checked before any model is loaded: labels, scores in range,
hard negatives or none, and — for distillation — the teacher's embeddings of every row.

``fit`` calls :func:`check_loss_rows` once per data set (several data sets each have their own loss,
see :mod:`anycl.losses.multi_dataset`) and :func:`with_teacher_embeddings` when the loss distils a teacher.
"""

from __future__ import annotations

import logging
from numbers import Integral
from typing import Any, Dict, Optional

from torch import nn

from anycl import losses as loss_registry
from anycl.data.inputs import LABEL, TEACHER, Rows, check_score_range
from anycl.data.multi import check_same_columns, per_dataset
from anycl.errors import ConfigError, DataError, UnknownNameError
from anycl.losses.momentum import embedding_width
from anycl.model.teacher import open_teacher, teacher_embeddings

log = logging.getLogger("anycl")


def loss_name(loss_fn, given: Any = None) -> str:
    return getattr(loss_fn, "registry_name", None) or (given if isinstance(given, str) else type(loss_fn).__name__)


def check_loss_rows(loss_fn, rows: Rows, given: Any = None, dataset: Optional[str] = None) -> None:
    """Raise ConfigError/DataError when ``rows`` cannot feed ``loss_fn``; warn about columns it ignores."""
    name = loss_name(loss_fn, given)
    of = f" of data set {dataset!r}" if dataset else ""
    check_columns = getattr(loss_fn, "check_columns", None)  # a loss's own rule on the columns it reads
    why = check_columns(list(rows.columns), list(rows.negatives)) if check_columns is not None else None
    if why:
        raise ConfigError(why + (f" (data set {dataset!r})" if dataset else ""))
    if getattr(loss_fn, "needs_labels", False) and not rows.has_label:
        raise ConfigError(f"loss {name!r} needs a 'label' column; the columns{of} are {rows.columns}")
    if rows.negatives and getattr(loss_fn, "negative_free", False):
        raise ConfigError(
            f"loss {name!r} is negative-free and cannot use the hard-negative column(s) {rows.negatives}{of}; drop "
            f"them, or pick a loss that uses them (infonce, triplet, supcon, ...)"
        )
    if getattr(loss_fn, "needs_labels", False) and rows.has_label and not rows.streaming:
        classes = {str(v) for v in rows.column(LABEL)}
        if len(classes) < 2:
            raise ConfigError(
                f"loss {name!r} contrasts classes, but the 'label' column{of} holds a single class "
                f"({sorted(classes)[:1]}); give items of at least two classes"
            )
    check_label_values(loss_fn, rows, name, of)
    if rows.negatives and not getattr(loss_fn, "accepts_negatives", True):
        log.warning("loss %r does not use hard negatives; the columns %s%s are ignored", name, rows.negatives, of)
    wanted = tuple(getattr(loss_fn, "score_columns", ()) or ())
    missing = [c for c in wanted if c not in rows.columns]
    if missing:
        raise ConfigError(
            f"loss {name!r} needs the column(s) {missing} (numbers per row); the columns{of} are {rows.columns}"
        )
    if wanted and not rows.has_positive:
        raise ConfigError(f"loss {name!r} scores (anchor, positive) pairs; the data{of} has no 'positive' column")
    if "negative_score" in wanted and len(rows.negatives) != 1:
        raise ConfigError(
            f"loss {name!r} needs exactly one hard-negative column with its 'negative_score'; "
            f"the data{of} has {rows.negatives or 'none'}"
        )
    check_score_range(rows, wanted, getattr(loss_fn, "score_range", None), name)
    unused = [c for c in rows.score_columns if c not in wanted]
    if unused:
        log.warning(
            "loss %r does not read the column(s) %s%s; they are ignored (graded losses: cosent, angle, "
            "cosine_mse; teacher margins: margin_mse)",
            name,
            unused,
            of,
        )


def check_label_values(loss_fn, rows: Rows, name: str, of: str) -> None:
    """A loss that reads labels as numbers (``label_values``: contrastive's 0/1, softmax's classes) gets only
    those integers, else a DataError naming the row."""
    allowed = getattr(loss_fn, "label_values", None)
    if allowed is None or not rows.has_label or rows.streaming:
        return
    for i, v in enumerate(rows.column(LABEL)):
        if not isinstance(v, Integral) or int(v) not in allowed:
            raise DataError(
                f"row {i}, column 'label'{of} is {v!r}; loss {name!r} needs the integers "
                f"{', '.join(map(str, allowed))} (map other labels, e.g. 'entailment', to them first)"
            )


def with_teacher_embeddings(loss_fn, rows: Rows, modality: Optional[str] = None) -> Rows:
    """``rows`` whose row dicts also carry the teacher's embedding of their anchor (computed once,
    without gradient); unchanged when the loss has no teacher."""
    if not getattr(loss_fn, "needs_teacher", False):
        return rows
    if rows.streaming:
        raise ConfigError(
            f"loss {loss_name(loss_fn)!r} embeds every row with the teacher before training, which "
            f"a streamed dataset does not allow; load the data (or give max rows as a Dataset)"
        )
    log.info("embedding %d rows with the teacher (no gradient)", len(rows))
    teacher = open_teacher(loss_fn.__dict__["teacher"], loss_name(loss_fn))
    emb = teacher_embeddings(teacher, rows.column("anchor"), loss_fn.batch_size, loss_fn.normalize)
    out = rows_with_teacher(rows, emb)
    out.teacher_dim = int(emb.shape[1])
    return out


def rows_with_teacher(source: Rows, emb) -> Rows:
    """``source`` whose row dicts also carry ``emb[i]`` (a teacher's embedding of row i's anchor) as ``teacher``."""

    def get(i):
        return {**source[i], TEACHER: emb[int(i)]}

    def it():
        for i, r in enumerate(source):
            yield {**r, TEACHER: emb[i]}

    return Rows(
        source.source,
        list(source.columns),
        len(source),
        get,
        it,
        source.column,
        (source.description + ", " if source.description else "") + "with teacher embeddings",
    )


def build_losses(loss, loss_options, parts, multi: bool, per_options=None) -> Dict[str, nn.Module]:
    """{data set name: loss module} ('' for a single data set); ``per_options`` ({data set: options}) adds to
    ``loss_options``. One loss for several data sets needs the same columns in each (anycl.data.multi)."""
    names = list(parts)
    given = per_dataset(loss, names) if multi else None
    if multi and given is None and per_options is None:
        check_same_columns(parts, loss)
    out: Dict[str, nn.Module] = {}
    shared = None
    for name in names:
        spec = given[name] if given else loss
        opts = {**loss_options, **(per_options[name] if per_options else {})}
        if given is None and per_options is None and shared is not None:
            out[name] = shared  # one loss module for all data sets
            continue
        try:
            out[name] = loss_registry.get(spec, **opts)
        except (UnknownNameError, TypeError) as exc:
            raise ConfigError(f"data set {name!r}: {exc}" if name else str(exc)) from None
        except ValueError as exc:  # a loss's own check of its options (e.g. temperature must be > 0)
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{'data set ' + repr(name) + ': ' if name else ''}loss {spec!r}: {exc}") from None
        shared = out[name]
    return out


def check_teacher_width(model, parts) -> None:
    """Distillation: the student's embedding width must be the teacher's."""
    for part in parts.values():
        dim = getattr(part, "teacher_dim", None)
        width = embedding_width(model) if dim is not None else None
        if dim is not None and width is not None and width != dim:
            raise ConfigError(
                f"the teacher's embeddings are {dim} wide but the student's are {width}; give the "
                f"student head={dim} (a projection head of the teacher's width)"
            )
