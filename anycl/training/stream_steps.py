"""Streamed epochs under several processes: every process takes the same number of steps.

Each process batches its own share of the stream (:mod:`anycl.data.stream_rows`), so the shares' batches can
differ in number: a split by shards gives processes different row counts, and de-duplication or a short
last batch can leave one process a batch more than another. A process that steps while another has
stopped would wait forever in the loss's all-gather, so before every step the processes agree (one
all-gather of a flag) that each still has a batch; when any has run out, all stop the epoch there.

The rows the others held then go untrained this epoch. They are counted exactly: the processes still
holding rows read the rest of their share (rows only; their items are not loaded) and every epoch ends
with a count per process of the rows read but not trained (that also counts a short last batch below the
sampler's ``min_batch_size`` and rows the builder skipped as unreadable); the main process logs it (a
warning when a process ran out early) and the trainer keeps it in ``stream_epochs``.

When reading or building a batch fails in one process (an unreadable row, a bad item), that process raises
its error and every other process raises a DataError naming it, rather than waiting for it in the next
collective (forever under NCCL).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, Iterator, Optional

import torch

from anycl.data.batching import BatchStream
from anycl.data.rows import Rows
from anycl.data.stream_rows import StreamRows, share_of
from anycl.distributed import gather_ints
from anycl.errors import DataError

log = logging.getLogger("anycl")
FAILED, RAN_OUT, HAS_BATCH = 0, 1, 2  # what each process says before a step


class LockstepBatches:
    """One process's batches of one streamed epoch, yielded only while every process has one.

    Args:
        share: this process's :class:`~anycl.data.stream_rows.StreamRows` of the epoch (counts the rows read).
        batches: its built batches (dicts with ``size``, the rows a batch trains on).
        device: where the flag of the all-gather lives (the accelerator's device: NCCL needs CUDA tensors).
    """

    def __init__(self, share: StreamRows, batches: Iterable[Dict[str, Any]], device: torch.device):
        self.share, self.batches, self.device = share, batches, device
        self.steps = 0
        self.trained_rows = 0
        self.stopped_early = False  # this process still had a batch when another had run out

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        it = iter(self.batches)
        while True:
            error: Optional[Exception] = None
            try:
                batch = next(it, None)
            except Exception as exc:  # noqa: BLE001  (the others are told first, then it is raised)
                error, batch = exc, None
            state = FAILED if error is not None else (HAS_BATCH if batch is not None else RAN_OUT)
            states = [s for (s,) in gather_ints([state], self.device)]
            if FAILED in states:  # every process stops: none waits for the failed one in the next collective
                if error is not None:
                    raise error
                failed = [r for r, s in enumerate(states) if s == FAILED]
                raise DataError(
                    f"process(es) {failed} failed while reading or building their share of the stream (their "
                    f"error is in their output); every process stops"
                )
            if RAN_OUT in states:
                if batch is not None:
                    self.stopped_early = True
                    self.share.drain()  # count the rest of this share: those rows go untrained this epoch
                return
            assert batch is not None  # every process has one
            self.steps += 1
            self.trained_rows += int(batch["size"])
            yield batch


def streamed_epoch(
    rows: Rows, sampler, builder, batch_size: int, seed: int, epoch: int, skip: int, acc
) -> LockstepBatches:
    """This process's built batches of one streamed epoch: its share of ``rows`` (:mod:`anycl.data.stream_rows`)
    batched by ``sampler.stream`` into local batches of ``batch_size``, the first ``skip`` left out (resume),
    stepped in lockstep with the other processes."""
    share = share_of(rows, epoch, acc.process_index, acc.num_processes)
    stream = BatchStream(share, sampler, builder, batch_size, epoch, seed, skip_batches=skip)  # rows checked as read
    # not handed to acc.prepare: Accelerate neither dispatches nor splits these batches a second time. Its own
    # generator: a DataLoader otherwise draws its base seed from the global RNG (a resumed run's dropout would
    # differ from the uninterrupted run's)
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        pin_memory=acc.device.type == "cuda",
        generator=torch.Generator().manual_seed(seed + epoch),
    )
    return LockstepBatches(share, loader, acc.device)


def end_of_stream_epoch(stream: LockstepBatches, epoch: int, skipped: int, resumed_batches: int) -> Dict[str, Any]:
    """Every process's count of the epoch's untrained rows (a collective: all processes call it at the same
    epoch's end); logged once, returned as ``{"epoch", "steps", "read", "untrained", "ran_out"}`` with one
    entry per process in rank order. ``skipped``: rows the builder skipped this epoch on this process;
    ``resumed_batches``: batches skipped to resume from a checkpoint (their rows were read, not trained)."""
    untrained = stream.share.read - stream.trained_rows - skipped
    got = gather_ints([stream.share.read, untrained, int(stream.stopped_early)], stream.device)
    record: Dict[str, Any] = {
        "epoch": epoch,
        "steps": stream.steps,
        "read": [g[0] for g in got],
        "untrained": [g[1] for g in got],
        "ran_out": [r for r, g in enumerate(got) if not g[2]] if any(g[2] for g in got) else [],
    }
    if stream.steps == 0 and not resumed_batches:  # (a resumed epoch may have had all its batches before)
        raise DataError(
            f"epoch {epoch} of the streamed dataset gave no batch to train on (rows read per process: "
            f"{record['read']}); a batch needs at least the sampler's min_batch_size rows with distinct items "
            f"in every process's share of the stream"
        )
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return record
    total = sum(record["untrained"])
    note = f" (with the rows of {resumed_batches} batches skipped to resume)" if resumed_batches else ""
    if record["ran_out"]:
        log.warning(
            "epoch %d of the stream: process(es) %s ran out of rows after %d steps, and every process stopped "
            "there so that all take the same number of steps; rows read but not trained this epoch, per "
            "process: %s (%d in all)%s",
            epoch,
            record["ran_out"],
            stream.steps,
            record["untrained"],
            total,
            note,
        )
    elif total:
        log.info(
            "epoch %d of the stream: %d rows read but not trained (per process: %s; a short last batch, or "
            "unreadable rows)%s",
            epoch,
            total,
            record["untrained"],
            note,
        )
    return record
