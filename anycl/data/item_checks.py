"""Checks of training data before and while it is read: every item through its adapter's validator, no
missing values (a NaN label is missing too), one item type per column, finite scores within the loss's
range, no row whose hard negative is its own positive; errors name the row and column.

:func:`check_data` holds the checks that need no adapter (labels, negatives); ``fit`` runs it as soon as the
data is read, before any model loads."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from anycl.errors import DataError
from anycl.keys import item_key

from .rows import LABEL, SCORE_COLUMNS, Rows

_SHOWN = 5  # rows named in one error


def check_items(rows: Rows, validators: Mapping[str, Callable[[Any, str], None]], limit: Optional[int] = None) -> None:
    """Validate every item (all rows unless streamed, where rows are checked as they are read).

    Raises DataError naming the row and column for None/empty items, items the adapter rejects, and
    columns that mix item types. Score columns are checked only when ``validators`` names them (the
    loss reads them; ``fit`` passes :func:`check_score`); others are carried along unread.
    ``validators`` maps a column to ``check(item, where)`` (:func:`anycl.data.column_spec.checks` makes it
    from column specs).
    """
    if rows.streaming:
        return
    n = len(rows) if limit is None else min(limit, len(rows))
    for col in rows.columns:
        if col in SCORE_COLUMNS and col not in validators:
            continue
        values = rows.column(col)[:n]
        check = None if col == LABEL else validators[col]
        check_column(col, values, check, mixed_types=col not in SCORE_COLUMNS)


def check_column(
    column: str,
    values: Sequence[Any],
    check: Optional[Callable[[Any, str], None]],
    first_row: int = 0,
    mixed_types: bool = True,
) -> None:
    """Check one column's values (``values[i]`` is row ``first_row + i``): none missing, one item type
    (``mixed_types``; ints and floats count as one), and ``check(item, where)`` on each (None: only the
    missing values, as for labels). DataError naming the row and the column."""
    first_type = None
    for i, v in enumerate(values):
        where = f"row {first_row + i}, column {column!r}"
        if v is None:
            raise DataError(f"{where} is missing (None); drop or fill such rows before training")
        if check is None:
            if column == LABEL:
                check_label(v, where)
            continue
        if mixed_types:
            t = type(v)
            if first_type is None:
                first_type = t
            elif t is not first_type and not (_numeric(t) and _numeric(first_type)):
                raise DataError(
                    f"column {column!r} mixes item types: row {first_row} is {first_type.__name__} but row "
                    f"{first_row + i} is {t.__name__}; give one type per column"
                )
        check(v, where)


def _numeric(t) -> bool:
    return issubclass(t, (int, float))


def check_row(row: dict, index: int, validators: Mapping[str, Callable[[Any, str], None]]) -> None:
    """Validate one row (used for streamed data, as rows arrive). Columns ``validators`` does not name,
    other than the label, are carried along unread (a score column the loss does not read, a hard-negative
    column the batch builder does not load)."""
    for col, v in row.items():
        if col not in validators and col != LABEL:
            continue
        where = f"row {index}, column {col!r}"
        if v is None:
            raise DataError(f"{where} is missing (None); drop or fill such rows before training")
        if col != LABEL:
            validators[col](v, where)
        else:
            check_label(v, where)
    bad = same_as_positive(row)
    if bad:
        raise DataError(f"row {index}: {_same_message(bad)}")


def check_label(value: Any, where: str) -> None:
    """A label must be a value: None and NaN (what a missing number reads as) are refused, since a NaN
    label would otherwise become a class of its own ('nan')."""
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        raise DataError(
            f"{where} is {'missing (None)' if value is None else 'NaN'}: a label is needed in every row (a NaN "
            f"would become a class 'nan' of its own); drop or fill such rows before training"
        )


def same_as_positive(row: Mapping[str, Any]) -> list:
    """The hard-negative columns of ``row`` that hold the row's positive itself (by item key)."""
    if "positive" not in row:
        return []
    negs = [c for c in row if c == "negative" or c.startswith("negative_")]
    if not negs:
        return []
    pos = _key(row["positive"])
    return [c for c in negs if row[c] is not None and _key(row[c]) == pos]


def _key(item: Any) -> Any:
    try:
        return item_key(item)
    except Exception:  # noqa: BLE001 - an item without a stable key is never called equal
        return object()


def _same_message(columns: list) -> str:
    return (
        f"{', '.join(repr(c) for c in columns)} {'is' if len(columns) == 1 else 'are'} the same item as the row's "
        f"positive; a hard negative must differ from the positive (the loss would push the positive away "
        f"from its anchor): remove or replace such negatives"
    )


def check_labels(rows: Rows) -> None:
    """No missing or NaN label in a data set that is not streamed (evaluation data is checked with this only: a
    reranking or retrieval set may list a row's positive among its negatives, and ranks it as relevant)."""
    if rows.has_label and not rows.streaming:
        for i, v in enumerate(rows.column(LABEL)):
            check_label(v, f"row {i}, column {LABEL!r}")


def check_data(rows: Rows) -> None:
    """The checks that need no adapter, on every row of a data set that is not streamed (streamed rows are
    checked by :func:`check_row` as they are read): no missing or NaN label, and no hard negative that is
    its row's positive (DataError naming the rows)."""
    if rows.streaming:
        return
    check_labels(rows)
    if rows.has_positive and rows.negatives:
        positives = [_key(p) for p in rows.column("positive")]
        bad: dict = {}
        for col in rows.negatives:
            for i, (p, n) in enumerate(zip(positives, rows.column(col))):
                if n is not None and _key(n) == p:
                    bad.setdefault(i, []).append(col)
        if bad:
            first = sorted(bad)
            shown = ", ".join(map(str, first[:_SHOWN])) + (", …" if len(first) > _SHOWN else "")
            more = f" (rows {shown}: {len(first)} in all)" if len(first) > 1 else ""
            raise DataError(f"row {first[0]}: {_same_message(bad[first[0]])}{more}")


def check_score(value: Any, where: str) -> None:
    """A score must be a finite real number (a bool or a string such as '0.5' is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not _is_numpy_number(value):
        raise DataError(f"{where} is {value!r} ({type(value).__name__}); a score must be a number")
    if not math.isfinite(float(value)):
        raise DataError(f"{where} is {value!r}; a score must be a finite number")


def _is_numpy_number(value: Any) -> bool:
    return isinstance(value, (np.integer, np.floating))


def check_score_range(rows: Rows, columns: Sequence[str], bounds, loss_name: str) -> None:
    """Every value of ``columns`` is a finite number within ``bounds`` (low, high) (None: any real),
    else DataError naming the column, the row and the loss's range."""
    if rows.streaming:
        return
    for col in columns:
        for i, v in enumerate(rows.column(col)):
            where = f"row {i}, column {col!r}"
            if v is None:
                raise DataError(f"{where} is missing (None); loss {loss_name!r} needs a number in every row")
            check_score(v, where)
            if bounds is not None and not (bounds[0] <= float(v) <= bounds[1]):
                raise DataError(
                    f"{where} is {float(v)!r}, outside [{bounds[0]}, {bounds[1]}], the range of loss "
                    f"{loss_name!r} (a cosine); rescale the scores (e.g. 0..5 → score / 5)"
                )
