"""The sampler contract (:class:`Sampler`) and the sampler registry (``anycl.samplers.get("in_batch")``).

The samplers themselves: :mod:`anycl.sampling.in_batch`, :mod:`anycl.sampling.mined`,
:mod:`anycl.sampling.by_label`; :mod:`anycl.sampling` gathers them.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

from anycl.data.column_spec import ColumnSpec
from anycl.data.inputs import Rows
from anycl.registry import Registry

SAMPLERS = Registry("sampler", entry_point_group="anycl.samplers")
register = SAMPLERS.register


def get(name: str, **options):
    return SAMPLERS.get(name, **options)


def names():
    return SAMPLERS.names()


class Sampler:
    """The sampler contract.

    - ``set_columns(specs)`` → the data's :class:`~anycl.data.column_spec.ColumnSpec` per column (``fit`` calls
      it once, before training): each item column's ``key`` (de-duplication) and ``lengths``;
    - ``plan(rows, epoch, batch_size)`` → list of index batches for a dataset with a length;
    - ``stream(rows, epoch, batch_size)`` → iterator of row batches for streamed data;
    - ``rows_for(rows, indices)`` → the row dicts of one batch (a mining sampler adds its negatives here);
    - ``refresh(model, rows, step)`` → called by the trainer at epoch starts (and every
      ``refresh_every`` steps when the sampler sets it), e.g. to re-mine hard negatives with the
      current model;
    - ``state_dict()`` / ``load_state_dict()`` for checkpoint and resume.

    Attributes the trainer reads or sets (:class:`anycl.training.contracts.TrainingSampler`):

    - ``refresh_every``: the trainer also calls ``refresh`` every this many optimiser steps (None: never);
    - ``show_progress``: set by the trainer from ``fit``'s ``progress`` (main process only): a bar per refresh;
    - ``verbose``: set False by the trainer on every process but the main one (what ``refresh`` prints);
    - ``total_steps``: set by the trainer: the run's optimiser steps (None: an endless stream).
    """

    refresh_every: Optional[int] = None
    show_progress: bool = False
    verbose: bool = False
    total_steps: Optional[int] = None

    def set_columns(self, specs: Mapping[str, ColumnSpec]) -> None:
        """The data's columns (column → :class:`~anycl.data.column_spec.ColumnSpec`). This default hands their
        ``key`` functions to :meth:`set_key_functions`, so a sampler written for that older hook keeps
        working; samplers that group by length override it."""
        self.set_key_functions({c: s.key for c, s in specs.items()})

    def set_key_functions(self, key_fns: Dict[str, Callable[[Any], Any]]) -> None:
        """Per column, the function hashing an item. An alias kept for callers that have plain key
        functions rather than column specs (``sampler.set_key_functions({"anchor": str})``); ``fit``
        calls :meth:`set_columns`."""

    def plan(self, rows: Rows, epoch: int, batch_size: int) -> List[List[int]]:
        raise NotImplementedError

    def stream(self, rows: Rows, epoch: int, batch_size: int) -> Iterator[List[dict]]:
        raise NotImplementedError

    def rows_for(self, rows: Rows, indices: Sequence[int]) -> List[dict]:
        return [rows[i] for i in indices]

    def refresh(self, model, rows: Rows, step: int) -> None:
        return None

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        return None
