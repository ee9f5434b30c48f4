"""A run's length and an epoch's batches.

:func:`run_length`: the optimiser steps and epochs a run takes (from the sampler's plan of the first epoch,
``max_steps``, gradient accumulation; a stream has no length), with a warning when they are few
(:func:`warn_short_run`). A run with a step budget (``TrainingArgs.step_budget``, which ``fit`` sets for
self-supervised data given neither ``epochs`` nor ``max_steps``) takes its epochs from the data
(:func:`budget_epochs`). :func:`recipe_line`: the one line that states a run's resolved recipe.
:func:`epoch_batches`: one process's batches of an epoch: a planned epoch through
:class:`~anycl.data.batching.BatchStream` and a ``DataLoader``, a streamed one in lockstep with the other
processes (:mod:`anycl.training.stream_steps`).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Mapping, Optional, Tuple

import torch

from anycl.data.batching import BatchStream
from anycl.data.inputs import Rows
from anycl.errors import ConfigError

from .args import TrainingArgs
from .contracts import TrainingSampler
from .precision import precision_words
from .stream_steps import streamed_epoch

log = logging.getLogger("anycl")

# a self-supervised run given neither epochs nor max_steps: enough epochs for this many optimiser steps ...
DEFAULT_STEP_BUDGET = 1000
# ... but no more epochs than this (a folder of a few hundred items is not passed over a thousand times)
MAX_BUDGET_EPOCHS = 100
# a run whose epochs its step budget chose, with an evaluation and no eval_every, evaluates about this many times
BUDGET_EVALUATIONS = 10
# a run of fewer optimiser steps than this (its length decided by epochs, not max_steps) is warned about
SHORT_RUN_STEPS = 100


def budget_epochs(steps_per_epoch: int, budget: int) -> int:
    """The epochs of a run with a step budget: enough for ``budget`` optimiser steps (``ceil(budget /
    steps_per_epoch)``), at least 1 and at most :data:`MAX_BUDGET_EPOCHS`."""
    return max(1, min(MAX_BUDGET_EPOCHS, math.ceil(budget / max(1, steps_per_epoch))))


def budget_eval_epochs(epochs: int) -> int:
    """Without ``eval_every``, a run whose epochs its budget chose evaluates after every this many epochs (and after
    the last): about :data:`BUDGET_EVALUATIONS` evaluations rather than one per epoch of a small data set."""
    return max(1, math.ceil(epochs / BUDGET_EVALUATIONS))


def budget_applies(rows: Rows, args: TrainingArgs) -> bool:
    """Whether the run's epochs come from its step budget: one is set, no max_steps, data with a length."""
    return bool(args.step_budget) and not args.max_steps and not rows.streaming


def warn_short_run(total: int, epochs: int, steps_per_epoch: int, pretrained: bool = False) -> None:
    """Warn when a run decided by its epochs takes fewer than :data:`SHORT_RUN_STEPS` optimiser steps, naming the
    numbers and the epochs (or max_steps) that would reach that many. Fine-tuning a ``pretrained`` encoder (the
    default text model, a model given by name) can do well in fewer steps: that is said at INFO."""
    if total >= SHORT_RUN_STEPS:
        return
    log.log(
        logging.INFO if pretrained else logging.WARNING,
        "this run takes %d optimiser step%s (%d epoch%s of %d), fewer than the %d a contrastive model needs to "
        "learn much from scratch; lengthen it with epochs=%d or max_steps=%d",
        total,
        "" if total == 1 else "s",
        epochs,
        "" if epochs == 1 else "s",
        steps_per_epoch,
        SHORT_RUN_STEPS,
        math.ceil(SHORT_RUN_STEPS / max(1, steps_per_epoch)),
        SHORT_RUN_STEPS,
    )


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
    by_budget = budget_applies(rows, args)  # never with max_steps
    # a fixed step count: max_steps, or from shipped weights the whole budget (its epochs uncapped)
    fixed = args.max_steps or (int(args.step_budget or 0) if by_budget and args.budget_exact else 0)
    if fixed:
        return fixed, math.ceil(fixed / max(1, steps_per_epoch))
    epochs = budget_epochs(steps_per_epoch, int(args.step_budget or 0)) if by_budget else args.epochs
    total = steps_per_epoch * epochs
    warn_short_run(total, epochs, steps_per_epoch, args.pretrained)
    return total, epochs


def recipe_line(recipe: Optional[Mapping[str, Any]], args: TrainingArgs, total: Optional[int], epochs: int) -> str:
    """The run's resolved recipe in one line: what ``fit`` resolved (``recipe``: encoder, window or crop, views,
    augmentations, in order), then the precision (:func:`anycl.training.precision.precision_words`), the batch
    size, the learning rate and its schedule, the epochs and the optimiser steps, and where they came from."""
    parts = [f"{k} {v}" for k, v in (recipe or {}).items()]
    parts.append(f"precision {precision_words(args)}")
    parts.append(f"batch size {args.batch_size}")
    parts.append(f"learning rate {args.lr:g} ({args.lr_schedule})")
    if total is None:  # a stream without max_steps
        parts.append(f"{args.epochs} pass{'' if args.epochs == 1 else 'es'} over the stream")
    elif args.max_steps:
        parts.append(f"{total} optimiser steps (max_steps)")
    else:
        parts.append(f"{epochs} epoch{'' if epochs == 1 else 's'}")
        how = ""
        if args.budget_exact:
            how = " (default from shipped starting weights: the step budget whatever the data size; set epochs= or max_steps=)"
        elif args.step_budget:
            how = (
                f" (default for self-supervised data: epochs for {args.step_budget} steps, at most {MAX_BUDGET_EPOCHS}; "
                "set epochs= or max_steps=)"
            )
        parts.append(f"{total} optimiser steps{how}")
    return ", ".join(parts)


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
