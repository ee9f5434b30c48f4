"""Streamed rows (no length, no random access) and each process's share of them.

Two kinds of source are streamed:

- a Hugging Face ``IterableDataset``: under several processes each reads its part through
  ``datasets.distributed.split_dataset_by_node`` (whole shards, when the number of shards is a multiple of
  the number of processes; otherwise every W-th example); ``set_epoch`` is called with the epoch so a
  dataset shuffled with ``.shuffle(seed=…)`` gets a new, seeded order each epoch. A dataset the user
  already split by node is read as it is (never split twice).
- a Python generator function (``def rows(): yield …``), an iterator (a generator object; read once, so
  one epoch), or any other iterable without a length (a ``torch.utils.data.IterableDataset``): process r
  of W keeps rows r, r + W, r + 2W, … of the stream (a round-robin split by row index; every process
  reads the whole stream and skips the others' rows).

Rows are dicts in the column convention, or raw items (a self-supervised single column), as for a list.
:meth:`StreamRows.share` gives one process's rows of one epoch; it counts the rows it has read
(``read``) and can read the rest of its share without using it (``drain``), so the trainer can say how
many rows an epoch left untrained (:mod:`anycl.training.stream_steps`).
"""

from __future__ import annotations

import inspect
import itertools
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from anycl.errors import DataError

from .column_map import canonical_columns, is_raw_item_dict, rename_row
from .rows import Rows

Reader = Callable[[int, int, int], Iterator[dict]]  # (epoch, rank, world size) → that process's rows


class StreamRows(Rows):
    """Streamed :class:`Rows` that know how to read one process's share of one epoch."""

    def __init__(self, source: Any, columns, reader: Reader, description: str, epoch=0, rank=0, world=1):
        super().__init__(source, list(columns), None, None, self._read, None, description)
        self._reader = reader
        self.epoch, self.rank, self.world = epoch, rank, world
        self.read = 0  # rows this share has yielded (and drained)
        self._open: Optional[Iterator[dict]] = None

    def share(self, epoch: int, rank: int = 0, world: int = 1) -> StreamRows:
        """The rows process ``rank`` of ``world`` reads in ``epoch`` (a new view; this one is unchanged)."""
        if not (isinstance(world, int) and world >= 1 and isinstance(rank, int) and 0 <= rank < world):
            raise ValueError(f"rank {rank!r} is not a process of a world of {world!r}")
        out = StreamRows(self.source, self.columns, self._reader, self.description, epoch, rank, world)
        out.teacher_dim = self.teacher_dim
        return out

    def _read(self) -> Iterator[dict]:
        self._open = self._reader(self.epoch, self.rank, self.world)
        for row in self._open:
            self.read += 1
            yield row

    def drain(self) -> int:
        """Read the rest of the share that is being iterated, without using it; returns the rows read."""
        n = 0
        if self._open is not None:
            for _ in self._open:
                n += 1
        self.read += n
        return n


# -- Hugging Face IterableDataset ---------------------------------------------------------------------------
def from_hf_iterable(ds, mapping: Optional[Mapping[str, str]]) -> StreamRows:
    names = ds.column_names
    if names is None:  # features unknown until the first row is read
        first = next(iter(ds), None)
        if first is None:
            raise DataError("the streamed dataset is empty: it yields no rows")
        names = list(first.keys())
    cmap = canonical_columns(names, mapping)

    def reader(epoch: int, rank: int, world: int) -> Iterator[dict]:
        part = ds
        if world > 1 and getattr(ds, "_distributed", None) is None:
            from datasets.distributed import split_dataset_by_node  # lazy: datasets is slow to import

            part = split_dataset_by_node(ds, rank=rank, world_size=world)
        part.set_epoch(epoch)  # a seeded .shuffle() of the dataset reshuffles per epoch, alike in every process
        for r in part:
            yield rename_row(r, cmap)

    return StreamRows(ds, list(cmap), reader, "streamed Hugging Face IterableDataset")


# -- generators and other iterables --------------------------------------------------------------------------
def is_stream(data: Any) -> bool:
    """A generator function, an iterator, or an iterable without a length (what :func:`from_iterable` reads)."""
    if inspect.isgeneratorfunction(data):
        return True
    if isinstance(data, (str, bytes, Mapping)) or hasattr(data, "__len__"):
        return False
    return hasattr(data, "__next__") or hasattr(data, "__iter__")


def from_iterable(data: Any, mapping: Optional[Mapping[str, str]]) -> StreamRows:
    """Rows streamed from a generator function (called once per epoch), an iterator (read once: one
    epoch) or an iterable without a length (iterated once per epoch)."""
    one_shot = not inspect.isgeneratorfunction(data) and iter(data) is data
    if inspect.isgeneratorfunction(data):

        def open_source() -> Iterator[Any]:
            return iter(data())

        kind = f"generator function {data.__name__}()"
    else:

        def open_source() -> Iterator[Any]:
            return iter(data)

        kind = f"streamed {type(data).__name__}"

    probe = open_source()
    first = next(probe, None)
    if first is None:
        raise DataError(f"the streamed dataset ({kind}) is empty: it yields no rows")
    pending = [itertools.chain([first], probe)] if one_shot else []
    as_dicts = isinstance(first, Mapping) and not is_raw_item_dict(first)
    if not as_dicts and mapping:
        raise DataError("columns= applies to rows with named columns, not to a stream of raw items")
    cmap = canonical_columns(list(first.keys()), mapping) if as_dicts else {"anchor": "anchor"}
    keys = set(first.keys()) if as_dicts else set()

    def convert(i: int, row: Any) -> dict:
        if not as_dicts:
            return {"anchor": row}
        if not isinstance(row, Mapping):
            raise DataError(
                f"row {i} of the stream is a {type(row).__name__}, but row 0 is a dict; give every row as a dict"
            )
        missing = sorted(keys - set(row.keys()))
        if missing:
            raise DataError(f"row {i} of the stream lacks column(s) {missing} that row 0 has")
        return rename_row(row, cmap)

    def reader(epoch: int, rank: int, world: int) -> Iterator[dict]:
        if one_shot:
            if not pending:
                raise DataError(
                    f"the dataset ({kind}) is an iterator, read once, and its rows have been used; for several "
                    f"epochs pass a generator function (def rows(): yield ...), a re-iterable object or a "
                    f"datasets.IterableDataset"
                )
            source: Iterable[Any] = pending.pop()
        else:
            source = open_source()
        for i, row in itertools.islice(enumerate(source), rank, None, world):
            yield convert(i, row)

    return StreamRows(data, list(cmap), reader, kind)


def share_of(rows: Rows, epoch: int, rank: int, world: int) -> StreamRows:
    """Process ``rank``'s share of streamed ``rows`` in ``epoch``; streamed :class:`Rows` built elsewhere are
    split round-robin by row index, like a generator."""
    if not isinstance(rows, StreamRows):
        source = rows

        def reader(epoch: int, rank: int, world: int) -> Iterator[dict]:
            for _, row in itertools.islice(enumerate(source), rank, None, world):
                yield row

        rows = StreamRows(source, source.columns, reader, source.description)
    return rows.share(epoch, rank, world)
