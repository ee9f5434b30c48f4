"""One object per data column: what the sampler and the batch builder need to know about its items.

A :class:`ColumnSpec` gathers, for one column of the training data (``anchor``, ``positive``,
``negative[_k]`` or a score column), the side and modality it belongs to and the callables the rest of the
pipeline uses on its items, all taken from the adapter of the tower that embeds that side:

- ``validate(items)``: every item checked (missing values, one item type per column, the adapter's own
  check), a :class:`~anycl.errors.DataError` naming the row and the column otherwise;
- ``key(item)``: the hashable identity that keeps an item out of a batch it already sits in;
- ``lengths(items)``: each item's cost for length-grouped batching (tokens for text);
- ``collate(items)``: loaded items → the encoder's input (with the side's prompt for text).

``fit`` builds them with :func:`column_specs` (from the model) and hands them to the sampler
(``sampler.set_columns``) and to the batch builder (``BatchBuilder(specs)``, :class:`anycl.data.batching.BatchBuilder`); a
batch builder made from adapters builds its own with :func:`specs_from_adapters`. Score columns
(``score``, ``positive_score``, ``negative_score``) get a spec too: their check is
:func:`~anycl.data.item_checks.check_score` and their collate a float32 tensor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Sequence

import torch

from anycl.keys import item_key

from .item_checks import check_column, check_score
from .prompts import prompt_for
from .rows import SCORE_COLUMNS, negative_columns

SCORE = "score"  # the side (and modality) of a score column's spec


@dataclass(frozen=True)
class ColumnSpec:
    """What the sampler and the batch builder know about one column (see the module docstring).

    Attributes:
        column: the column's name (``anchor``, ``positive``, ``negative_2``, ``score`` …).
        side: ``"anchor"``, ``"positive"``, ``"negative"`` (every ``negative[_k]`` column) or ``"score"``.
        modality: the side's tower's modality (``"text"``, ``"audio"`` …), ``"score"`` for a score column.
        check: ``check(item, where)``, one item: the adapter's ``validate`` (:func:`check_score` for scores).
        key: ``key(item) -> hashable``, the adapter's ``key``.
        lengths: ``lengths(items) -> [int]``, the adapter's ``lengths``.
        collate: ``collate(items) -> batch``, the adapter's ``collate`` with the side's prompt, if any.
        adapter: the tower's adapter, for what happens to one item before ``collate`` (``load``, ``augment``,
            ``eval_view``); None for a score column.
        prompt: the prompt ``collate`` puts before each item (text), or None.
    """

    column: str
    side: str
    modality: str
    check: Callable[[Any, str], None]
    key: Callable[[Any], Hashable]
    lengths: Callable[[List[Any]], List[int]]
    collate: Callable[[List[Any]], Any]
    adapter: Optional[Any] = None
    prompt: Optional[str] = None

    def validate(self, items: Sequence[Any], first_row: int = 0) -> None:
        """Check the column's values (``items[i]`` is row ``first_row + i``): a DataError naming the row and
        the column for a missing item, a column mixing item types, or an item ``check`` rejects."""
        check_column(self.column, items, self.check, first_row=first_row, mixed_types=self.side != SCORE)


def side_of(column: str) -> Optional[str]:
    """The side whose tower embeds a column (``negative_3`` → ``negative``; a score column → ``"score"``),
    or None for a column that holds no items (``label``, a teacher's embeddings)."""
    if column in ("anchor", "positive"):
        return column
    if negative_columns([column]):
        return "negative"
    if column in SCORE_COLUMNS:
        return SCORE
    return None


def collate_scores(values: List[Any]) -> torch.Tensor:
    """The numbers of a score column as a float32 tensor (one per row)."""
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def no_lengths(items: List[Any]) -> List[int]:
    """A score column's lengths: nothing to pad."""
    return [0] * len(items)


def _score_spec(column: str) -> ColumnSpec:
    return ColumnSpec(
        column=column,
        side=SCORE,
        modality=SCORE,
        check=check_score,
        key=item_key,
        lengths=no_lengths,
        collate=collate_scores,
    )


def adapter_spec(column: str, side: str, adapter: Any, prompt: Optional[str] = None) -> ColumnSpec:
    """The spec of an item column embedded by ``adapter`` (``prompt``: put before each item by ``collate``)."""
    collate = functools.partial(adapter.collate, prompt=prompt) if prompt else adapter.collate
    return ColumnSpec(
        column=column,
        side=side,
        modality=adapter.modality,
        check=adapter.validate,
        key=adapter.key,
        lengths=adapter.lengths,
        collate=collate,
        adapter=adapter,
        prompt=prompt or None,
    )


def specs_from_adapters(
    adapters: Mapping[str, Any], columns: Sequence[str], prompts: Optional[Mapping[str, str]] = None
) -> Dict[str, ColumnSpec]:
    """{column: ColumnSpec} for ``columns``, from the adapter of each side (side → adapter) and the prompts
    (side → text, :mod:`anycl.data.prompts`; every negative column takes the ``negative`` side's). Columns that
    hold no items (``label``) and item columns whose side has no adapter here are left out."""
    prompts = dict(prompts or {})
    out: Dict[str, ColumnSpec] = {}
    for column in columns:
        side = side_of(column)
        if side == SCORE:
            out[column] = _score_spec(column)
        elif side is not None and side in adapters:
            out[column] = adapter_spec(column, side, adapters[side], prompt_for(prompts, side))
    return out


def column_specs(
    model: Any, columns: Sequence[str], prompts: Optional[Mapping[str, str]] = None
) -> Dict[str, ColumnSpec]:
    """{column: ColumnSpec} for ``columns`` of data trained with ``model``: each item column's callables
    come from the adapter of the tower embedding its side (``model.tower(side).adapter``)."""
    sides = {s for s in map(side_of, columns) if s is not None and s != SCORE}
    return specs_from_adapters({s: model.tower(s).adapter for s in sides}, columns, prompts)


def checks(specs: Mapping[str, ColumnSpec]) -> Dict[str, Callable[[Any, str], None]]:
    """{column: check(item, where)} of ``specs``, the form :func:`anycl.data.item_checks.check_items` and
    :func:`~anycl.data.item_checks.check_row` take."""
    return {c: s.check for c, s in specs.items()}
