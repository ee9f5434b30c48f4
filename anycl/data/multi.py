"""Several data sets in one run, as data: ``fit({"nli": ds1, "qa": ds2}, ...)``.

:func:`is_multi_dataset` tells a mapping of names to data sets from one row's mapping of columns;
:class:`MultiRows` holds the data sets' :class:`~anycl.data.rows.Rows` one after another, each row dict naming
its data set under :data:`DATASET`; :func:`per_dataset` reads an option given per data set (``loss``,
``loss_options``, ``columns``) and :func:`check_same_columns` checks that one loss fits every data set.

The other parts of a multi-dataset run: which data set each batch comes from,
:mod:`anycl.sampling.multi_dataset`; the loss of each batch, :mod:`anycl.losses.multi_dataset`.
"""

from __future__ import annotations

import bisect
from typing import Any, Dict, List, Mapping, Optional, Sequence

from anycl.errors import ConfigError

from .rows import ITEM_COLUMNS, NOT_ITEMS, Rows, negative_columns

DATASET = "_dataset"  # the key naming a row's data set in the row dicts of a multi-dataset run


def is_multi_dataset(data: Any) -> bool:
    """A mapping of names to data sets (not a mapping of the convention's columns to values)."""
    if not isinstance(data, Mapping) or not data:
        return False
    convention = set(ITEM_COLUMNS) | set(NOT_ITEMS)
    return not all(k in convention or negative_columns([k]) for k in data)


class MultiRows(Rows):
    """The rows of several data sets one after another; ``parts`` keeps each data set's own :class:`Rows`."""

    def __init__(self, parts: Mapping[str, Rows]):
        self.parts = dict(parts)
        for name, r in self.parts.items():
            if r.streaming:
                raise ConfigError(
                    f"data set {name!r} is streamed; several data sets in one run need data sets "
                    f"with a length (load them, or train on one streamed data set)"
                )
        self.names = list(self.parts)
        self.offsets, n = [], 0
        for name in self.names:
            self.offsets.append(n)
            n += len(self.parts[name])
        columns: List[str] = []
        for r in self.parts.values():
            columns += [c for c in r.columns if c not in columns]
        super().__init__(
            self.parts,
            columns,
            n,
            self._get,
            self._iter_all,
            None,
            f"{len(self.parts)} data sets: " + ", ".join(f"{k} ({len(v)} rows)" for k, v in self.parts.items()),
        )

    def locate(self, i: int) -> tuple:
        """(data set name, index within it) of global row ``i``."""
        k = bisect.bisect_right(self.offsets, int(i)) - 1
        return self.names[k], int(i) - self.offsets[k]

    def _get(self, i: int) -> dict:
        name, j = self.locate(i)
        return {**self.parts[name][j], DATASET: name}

    def _iter_all(self):
        for name in self.names:
            for r in self.parts[name]:
                yield {**r, DATASET: name}

    def column(self, name: str) -> list:
        out: list = []
        for part in self.parts.values():
            out += part.column(name) if name in part.columns else [None] * len(part)
        return out


def per_dataset(value: Any, names: Sequence[str]) -> Optional[Dict[str, Any]]:
    """``{name: x}`` naming exactly the data sets → that mapping; otherwise None (one value for all)."""
    if isinstance(value, Mapping) and value and set(value) <= set(names):
        if set(value) != set(names):
            raise ConfigError(
                f"the per-data-set mapping names {sorted(value)}, but the data sets are {sorted(names)}; "
                f"give every data set its entry"
            )
        return dict(value)
    return None


def check_same_columns(parts: Mapping[str, Rows], loss: Any) -> None:
    """One loss for several data sets needs the same columns in each."""
    cols = {name: list(r.columns) for name, r in parts.items()}
    if len({tuple(c) for c in cols.values()}) > 1:
        raise ConfigError(
            f"one loss ({loss!r}) for data sets with different columns: "
            + "; ".join(f"{k}: {v}" for k, v in cols.items())
            + f". Give each its loss, e.g. loss={{{', '.join(repr(k) + ': ...' for k in cols)}}}, or align the columns"
        )
