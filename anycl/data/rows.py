"""The column convention every modality shares (``anchor``, ``positive``, ``negative[_k]``, ``label``, scores)
and :class:`Rows`, the one shape training data takes inside anycl (see :mod:`anycl.data`)."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, List, Optional, Sequence

ITEM_COLUMNS = ("anchor", "positive")
LABEL = "label"
SCORE_COLUMNS = ("score", "positive_score", "negative_score")
TEACHER = "_teacher"  # a row's precomputed teacher embedding (distillation), added by anycl.losses.distill
NOT_ITEMS = (LABEL,) + SCORE_COLUMNS  # columns whose values are not items of a modality
_NEG = re.compile(r"^negative(_\d+)?$")


def is_negative_column(name: str) -> bool:
    """Whether ``name`` is a hard-negative column of the convention: ``negative`` or ``negative_<k>``."""
    return _NEG.match(name) is not None


def negative_columns(columns: Sequence[str]) -> List[str]:
    """The hard-negative columns in their order: ``negative``, ``negative_1``, ``negative_2`` …"""
    negs = [c for c in columns if is_negative_column(c)]
    return sorted(negs, key=lambda c: -1 if c == "negative" else int(c.split("_")[1]))


class Rows:
    """Rows of a dataset in the column convention, from whichever source they came.

    Attributes:
        columns: canonical column names present (``anchor`` always).
        negatives: the hard-negative columns, in order.
        has_positive / has_label: whether pairs / labels are given.
        streaming: True when there is no length and no random access (an ``IterableDataset``).
        teacher_dim: the width of precomputed teacher embeddings (:mod:`anycl.fitting.loss_data`), else None.
    """

    teacher_dim: Optional[int] = None

    def __init__(
        self,
        source: Any,
        columns: List[str],
        length: Optional[int],
        getter: Optional[Callable[[int], dict]],
        iterator: Callable[[], Iterator[dict]],
        column_getter: Optional[Callable[[str], list]] = None,
        description: str = "",
    ):
        self.source = source
        self.columns = columns
        self._length = length
        self._get = getter
        self._iter = iterator
        self._column = column_getter
        self.description = description
        self.negatives = negative_columns(columns)
        self.has_positive = "positive" in columns
        self.has_label = LABEL in columns
        self.score_columns = [c for c in SCORE_COLUMNS if c in columns]

    @property
    def streaming(self) -> bool:
        return self._length is None

    @property
    def item_columns(self) -> List[str]:
        return [c for c in self.columns if c not in NOT_ITEMS]

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("a streamed dataset has no length")
        return self._length

    def __getitem__(self, i: int) -> dict:
        if self._get is None:
            raise TypeError("a streamed dataset has no random access")
        return self._get(i)

    def __iter__(self) -> Iterator[dict]:
        return self._iter()

    def column(self, name: str) -> list:
        """All values of one column (fast path for Arrow-backed datasets)."""
        if self._column is not None:
            return self._column(name)
        return [self[i][name] for i in range(len(self))]

    def __repr__(self) -> str:
        n = "streamed" if self.streaming else f"{len(self)} rows"
        return f"Rows({n}, columns={self.columns}{', ' + self.description if self.description else ''})"


# ---------------------------------------------------------------------------------------------------


def select_rows(rows: Rows, keep: Sequence[int], description: str = "") -> Rows:
    """The rows ``keep`` (indices into ``rows``, in order) of a data set with a length, as :class:`Rows` of the
    same columns (what ``fit`` trains on once the rows with unreadable items are dropped)."""
    index = list(keep)
    sub = Rows(
        rows.source,
        list(rows.columns),
        len(index),
        lambda i: rows[index[i]],
        lambda: (rows[i] for i in index),
        lambda name: (lambda values: [values[i] for i in index])(rows.column(name)),
        description or rows.description,
    )
    sub.teacher_dim = rows.teacher_dim
    return sub
