"""A run's Accelerate setup: the ``Accelerator`` (device, mixed precision: ``"auto"`` resolved by
:mod:`anycl.training.precision`, gradient accumulation, trackers), the warm-up + cosine learning-rate schedule
and the hyper-parameters logged to trackers."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict
from typing import Any, Callable, Dict, Optional

import torch

from anycl.errors import ConfigError

from .args import TrainingArgs
from .precision import resolve_args

log = logging.getLogger("anycl")


LR_SCHEDULES = ("cosine", "linear", "constant")


def warmup_cosine(warmup_steps: int, total_steps: Optional[int], schedule: str = "cosine") -> Callable[[int], float]:
    """Learning-rate multiplier: linear warm-up, then ``schedule``: cosine decay to 0 (the default), linear
    decay to 0 (sentence-transformers' and Hugging Face's default) or constant. Constant if the total is unknown."""
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if not total_steps or schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def make_accelerator(args: TrainingArgs):
    """An Accelerator for ``args``; resets Accelerate's process-wide state when not launched distributed,
    so several ``fit`` calls in one Python process can use different precisions."""
    from accelerate import Accelerator  # lazy: accelerate: slow to import, only when training starts
    from accelerate.state import AcceleratorState  # lazy: accelerate: slow to import, only when training starts
    from accelerate.utils import ProjectConfiguration  # lazy: accelerate: slow to import, only when training starts

    resolve_args(args)  # "auto" (fit resolved it already): the precision for this machine
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        AcceleratorState._reset_state(reset_partial_state=True)
    has_gpu = torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available())
    if args.mixed_precision == "fp16" and (args.cpu or not has_gpu):
        raise ConfigError("mixed_precision='fp16' needs a CUDA or MPS device; on CPU use 'bf16' or 'no'")
    # launched in several processes (torchrun / accelerate launch --multi_gpu) on a machine without a GPU:
    # without cpu=True Accelerate would start W independent single-process runs instead of one gloo group
    cpu = args.cpu or (not has_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1)
    log_with = None
    project = None
    if args.output_dir and args.log_with:
        log_with = _available_trackers(args.log_with)
        project = ProjectConfiguration(project_dir=args.output_dir, logging_dir=f"{args.output_dir}/logs")
    return Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        cpu=cpu,
        log_with=log_with,
        project_config=project,
        step_scheduler_with_optimizer=False,
    )


def _available_trackers(log_with):
    names = [log_with] if isinstance(log_with, str) else list(log_with)
    out = []
    for n in names:
        if n == "tensorboard":
            try:
                import tensorboard  # noqa: F401  # lazy: optional (tensorboard logging): only probed when asked for
            except ImportError:
                log.warning("tensorboard is not installed; training curves are not logged")
                continue
        out.append(n)
    return out or None


def tracker_config(args: TrainingArgs) -> Dict[str, Any]:
    """The training arguments as the flat config a tracker records (``init_trackers(config=...)``): numbers,
    strings and booleans as they are, None as ``"none"``, anything else as its ``str``."""
    out = {}
    for k, v in asdict(args).items():
        if isinstance(v, (int, float, str, bool)):
            out[k] = v
        elif v is None:
            out[k] = "none"
        else:
            out[k] = str(v)
    return out
