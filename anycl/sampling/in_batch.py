"""The default sampler: shuffled batches whose items are all distinct (``in_batch``), and the helpers the
other samplers share (distinct-item batching, length grouping)."""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

from anycl.data.column_spec import ColumnSpec
from anycl.data.inputs import Rows
from anycl.errors import ConfigError

from .base import Sampler, register

log = logging.getLogger("anycl")

SHRUNK = 0.5  # batches averaging under this share of the rows asked for, because items repeat, are warned about


def group_distinct(
    order: Iterator[int], key_of: Callable[[int], tuple], batch_size: int, stats: Optional[Dict[str, int]] = None
) -> Iterator[List[int]]:
    """Group indices into batches in which no item key repeats.

    A row whose keys collide with the batch being filled waits in a queue and joins the next batch
    that can take it; the queue is flushed at the end in as few batches as the duplicates allow.
    """
    pending: List[int] = []
    batch: List[int] = []
    seen: set = set()

    def try_add(i) -> bool:
        ks = key_of(i)
        if any(k in seen for k in ks):
            return False
        batch.append(i)
        seen.update(ks)
        return True

    for i in order:
        if not try_add(i):
            pending.append(i)
            if stats is not None:
                stats["deferred"] = stats.get("deferred", 0) + 1
        if len(batch) == batch_size:
            yield batch
            batch, seen = [], set()
            still = []
            for j in pending:
                if len(batch) < batch_size and try_add(j):
                    continue
                still.append(j)
            pending = still
            if len(batch) == batch_size:  # pending rows alone filled a batch
                yield batch
                batch, seen = [], set()
    while pending:
        still = []
        for j in pending:
            if not (len(batch) < batch_size and try_add(j)):
                still.append(j)
        yield batch  # never empty: an empty batch always takes the first pending row
        batch, seen = [], set()
        pending = still
    if batch:
        yield batch


def row_lengths(rows: Rows, length_fns: Dict[str, Callable[[List[Any]], List[int]]]) -> List[int]:
    """Each row's length for grouping: the longest of its items (each side is padded to its own
    longest item, so the row's longest side decides most of its padding).

    ``length_fns`` maps a column to its adapter's ``lengths`` (tokens for text; a
    :class:`~anycl.data.column_spec.ColumnSpec`'s ``lengths``); other columns count the characters of strings.
    """
    per_col = []
    for c in rows.item_columns:
        values = rows.column(c)
        fn = length_fns.get(c)
        if fn is not None:
            present = [i for i, v in enumerate(values) if v is not None]
            got = fn([values[i] for i in present])
            col = [0] * len(values)
            for i, n in zip(present, got):
                col[i] = int(n)
        else:
            col = [len(v) if isinstance(v, str) else 0 for v in values]
        per_col.append(col)
    return [max(ls) for ls in zip(*per_col)] if per_col else [0] * len(rows)


def length_grouped(order: List[int], lengths: Sequence[int], window: int) -> List[int]:
    """``order`` with each window of ``window`` consecutive rows sorted by ``lengths`` (longest first)."""
    out: List[int] = []
    for s in range(0, len(order), window):
        out.extend(sorted(order[s : s + window], key=lengths.__getitem__, reverse=True))
    return out


@register("in_batch", "default")
class InBatchSampler(Sampler):
    """Shuffled batches whose items are all distinct (negatives come from the rest of the batch).

    Args:
        shuffle: reshuffle rows each epoch (seeded by ``seed`` and the epoch number).
        deduplicate: keep repeated items out of one batch (hash-based; defers the later row).
        seed: base seed of the shuffle.
        min_batch_size: batches smaller than this (a short last batch) are dropped; in-batch
            negatives need at least 2.
        drop_last: keep only full batches (of the batch size asked for) when the epoch has at least one, so
            every step scores as many negatives and the loss curve has no sawtooth at each epoch's short last
            batch; data smaller than one batch still trains as one batch. ``fit`` turns it on for
            self-supervised data (one column: the positives are augmented views); off by default.
        shuffle_buffer: for streamed data, rows are shuffled within a buffer of this many rows, seeded by
            ``seed``, the epoch and the process (each shuffles its own share of the stream).
        group_by_length: when set to W, the shuffled rows are cut into windows of W batches, each
            window is sorted by the rows' length (characters of their string items) before batching,
            and the batches are shuffled again: rows of similar length share a batch, which saves
            padding for text, while batches stay random across the data. None: off.
    """

    def __init__(
        self,
        shuffle: bool = True,
        deduplicate: bool = True,
        seed: int = 0,
        min_batch_size: int = 2,
        shuffle_buffer: int = 1000,
        group_by_length: Optional[int] = None,
        drop_last: bool = False,
    ):
        if group_by_length is not None and (not isinstance(group_by_length, int) or group_by_length < 1):
            raise ConfigError(
                f"group_by_length must be an int >= 1 (batches per window) or None, got {group_by_length!r}"
            )
        if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 1:
            raise ConfigError(
                f"shuffle_buffer must be an int >= 1 (rows a stream is shuffled in), got {shuffle_buffer!r}"
            )
        self.group_by_length = group_by_length
        self.shuffle = shuffle
        self.deduplicate = deduplicate
        self.seed = seed
        self.min_batch_size = min_batch_size
        self.shuffle_buffer = shuffle_buffer
        if not isinstance(drop_last, bool):
            raise ConfigError(f"drop_last must be True or False, got {drop_last!r}")
        self.drop_last = drop_last
        self.key_fns: Dict[str, Callable[[Any], Any]] = {}
        self.length_fns: Dict[str, Callable[[List[Any]], List[int]]] = {}
        self._lengths: Optional[List[int]] = None
        self._lengths_for: Optional[int] = None
        self._keys: Optional[List[tuple]] = None
        self._keys_for: Optional[int] = None
        self.stats: Dict[str, int] = {}
        self._told_shrunk = False

    def set_columns(self, specs: Mapping[str, ColumnSpec]) -> None:
        """The data's column specs: each item column's ``key`` (de-duplication) and ``lengths``
        (``group_by_length``)."""
        self.key_fns = {c: s.key for c, s in specs.items()}
        self.length_fns = {c: s.lengths for c, s in specs.items()}
        self._keys = self._lengths = None

    def set_key_functions(self, key_fns):
        """Alias for plain key functions (no lengths: strings count their characters); see
        :meth:`Sampler.set_key_functions`."""
        self.key_fns = dict(key_fns)
        self._keys = None

    def _row_lengths(self, rows: Rows) -> List[int]:
        if self._lengths is None or self._lengths_for != id(rows):
            self._lengths = row_lengths(rows, self.length_fns)
            self._lengths_for = id(rows)
        return self._lengths

    def _row_keys(self, rows: Rows) -> List[tuple]:
        if self._keys is not None and self._keys_for == id(rows):
            return self._keys
        cols = [c for c in rows.item_columns if c in self.key_fns]
        per_col = [[self.key_fns[c](v) for v in rows.column(c)] for c in cols]
        self._keys = [tuple(ks) for ks in zip(*per_col)] if per_col else [() for _ in range(len(rows))]
        self._keys_for = id(rows)
        return self._keys

    def _rng(self, epoch: int, rank: int = 0) -> random.Random:
        if rank:  # a process's share of a stream (anycl.data.stream_rows): its own order, not the others' pattern
            return random.Random(f"{self.seed}:{epoch}:{rank}")
        return random.Random(self.seed * 1_000_003 + epoch)

    def plan(self, rows: Rows, epoch: int, batch_size: int) -> List[List[int]]:
        order = list(range(len(rows)))
        if self.shuffle:
            self._rng(epoch).shuffle(order)
        if self.group_by_length:
            order = length_grouped(order, self._row_lengths(rows), self.group_by_length * batch_size)
        self.stats = {}
        if self.deduplicate:
            keys = self._row_keys(rows)
            batches = list(group_distinct(iter(order), keys.__getitem__, batch_size, self.stats))
        else:
            batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        kept = [b for b in batches if len(b) >= self.min_batch_size]
        if self.drop_last and any(len(b) == batch_size for b in kept):  # only full batches
            kept = [b for b in kept if len(b) == batch_size]
        if self.group_by_length and self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch + 1).shuffle(kept)
        self.stats["dropped"] = sum(len(b) for b in batches) - sum(len(b) for b in kept)
        if self.deduplicate and self.stats.get("deferred") and not self._told_shrunk:
            self._warn_if_shrunk(rows, kept, batch_size)
        return kept

    def _warn_if_shrunk(self, rows: Rows, batches: List[List[int]], batch_size: int) -> None:
        """Say once when repeated items keep batches under :data:`SHRUNK` of ``batch_size`` (or of all the
        rows, when there are fewer), naming the column with the fewest distinct items."""
        wanted = min(batch_size, len(rows))
        mean = sum(len(b) for b in batches) / max(1, len(batches))
        if mean >= SHRUNK * wanted:
            return
        self._told_shrunk = True
        cols = [c for c in rows.item_columns if c in self.key_fns]
        keys = self._row_keys(rows)
        distinct = {c: len({k[i] for k in keys}) for i, c in enumerate(cols)}
        column = min(distinct, key=lambda c: distinct[c])
        log.warning(
            "batches hold %.0f rows on average instead of batch_size=%d: a batch holds each item once (a repeated "
            "item would be a false negative of itself), and column %r has only %d distinct items in %d rows. Vary "
            "the repeated items (caption templates, synonyms), or pass sampler_options={'deduplicate': False} with "
            "a label column and a label-aware loss such as loss='siglip' (docs/crossmodal.md, 'Repeated captions')",
            mean,
            batch_size,
            column,
            distinct[column],
            len(rows),
        )

    def stream(self, rows: Rows, epoch: int, batch_size: int) -> Iterator[List[dict]]:
        rng = self._rng(epoch, getattr(rows, "rank", 0))
        store: Dict[int, dict] = {}

        def numbered():
            buffer: List[dict] = []
            n = 0
            for row in rows:
                if self.shuffle and self.shuffle_buffer > 1:
                    buffer.append(row)
                    if len(buffer) < self.shuffle_buffer:
                        continue
                    k = rng.randrange(len(buffer))
                    buffer[k], buffer[-1] = buffer[-1], buffer[k]
                    row = buffer.pop()
                store[n] = row
                yield n
                n += 1
            rng.shuffle(buffer)
            for row in buffer:
                store[n] = row
                yield n
                n += 1

        def key_of(i):
            if not self.deduplicate:
                return ()
            row = store[i]
            return tuple(self.key_fns[c](row[c]) for c in rows.item_columns if c in self.key_fns)

        self.stats = {}
        full_seen = False
        for batch in group_distinct(numbered(), key_of, batch_size, self.stats):
            full_seen = full_seen or len(batch) == batch_size
            if len(batch) >= self.min_batch_size and not (self.drop_last and full_seen and len(batch) < batch_size):
                yield [store[i] for i in batch]
            for i in batch:
                store.pop(i, None)

    def state_dict(self):
        return {"seed": self.seed}

    def load_state_dict(self, state):
        self.seed = state.get("seed", self.seed)
