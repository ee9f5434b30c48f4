"""A run's length and an epoch's batches.

:func:`run_length`: the optimiser steps and epochs a run takes (from the sampler's plan of the first epoch,
``max_steps``, gradient accumulation; a stream has no length). :func:`epoch_batches`: one process's batches of
an epoch: a planned epoch through :class:`~anycl.data.batching.BatchStream` and a ``DataLoader``, a streamed
one in lockstep with the other processes (:mod:`anycl.training.stream_steps`).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Optional, Tuple

import torch

from anycl.data.batching import BatchStream
from anycl.data.inputs import Rows
from anycl.errors import ConfigError

from .args import TrainingArgs
from .contracts import TrainingSampler
from .stream_steps import streamed_epoch

log = logging.getLogger("anycl")


def run_length(rows: Rows, sampler: TrainingSampler, args: TrainingArgs, processes: int) -> Tuple[Optional[int], int]:
    """(total optimiser steps or None for an endless stream, epochs to run)."""
    if rows.streaming:
        return args.max_steps, (args.epochs if not args.max_steps else 10**9)
    wanted = args.batch_size * processes
    first_plan = sampler.plan(rows, 0, wanted)
    if not first_plan:
        raise ConfigError(
            f"no batch of at least 2 distinct items can be formed from {len(rows)} rows with "
            f"batch_size={args.batch_size}; give more (distinct) rows"
        )
    largest = max(len(b) for b in first_plan)
    if len(first_plan) == 1 and largest < wanted:
        log.warning(
            "batch_size=%d is larger than the data: every step uses one batch of %d rows (all the "
            "rows that can share a batch)%s",
            args.batch_size,
            largest,
            "" if processes == 1 else f" across {processes} processes",
        )
    steps_per_epoch = math.ceil(len(first_plan) / args.gradient_accumulation_steps)
    if args.max_steps:
        return args.max_steps, math.ceil(args.max_steps / max(1, steps_per_epoch))
    return steps_per_epoch * args.epochs, args.epochs


def epoch_batches(
    rows: Rows, sampler: TrainingSampler, builder: Any, args: TrainingArgs, epoch: int, acc, skip: int = 0
) -> Iterable[Any]:
    """This process's built batches of ``epoch``, from batch ``skip`` on (a resumed epoch)."""
    world = acc.num_processes
    if rows.streaming:  # each process batches its own share, in step with the others
        return streamed_epoch(rows, sampler, builder, args.batch_size, args.seed, epoch, skip, acc)
    plan = sampler.plan(rows, epoch, args.batch_size * world)
    stream = BatchStream(
        rows,
        sampler,
        builder,
        args.batch_size,
        epoch,
        args.seed,
        rank=acc.process_index,
        world_size=world,
        plan=plan,
        skip_batches=skip,
    )
    # its own generator: a DataLoader otherwise draws its base seed from the global RNG, which would
    # make a resumed run's dropout differ from the uninterrupted run's
    return torch.utils.data.DataLoader(
        stream,
        batch_size=None,
        num_workers=args.num_workers,
        pin_memory=acc.device.type == "cuda",
        persistent_workers=False,
        generator=torch.Generator().manual_seed(args.seed + epoch),
    )
