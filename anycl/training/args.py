"""``TrainingArgs``: the options of the training loop (:class:`anycl.training.Trainer`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Union


@dataclass
class TrainingArgs:
    """Options of the training loop (``fit`` fills them from its keyword arguments)."""

    batch_size: int = 32
    epochs: int = 1
    max_steps: Optional[int] = None
    # with it set and no max_steps: the epochs come from the data (anycl.training.epochs.budget_epochs), enough
    # for this many optimiser steps, at most MAX_BUDGET_EPOCHS; fit sets it for self-supervised runs given
    # neither epochs nor max_steps (anycl.training.epochs.DEFAULT_STEP_BUDGET)
    step_budget: Optional[int] = None
    # the budget run takes exactly step_budget steps, its epochs uncapped: fit sets it when an encoder starts from
    # shipped weights (the audio CNN's), fine-tuned for the whole budget however small the data
    # (anycl.fitting.recipe.start_budget)
    budget_exact: bool = False
    # a short run is a warning for an encoder trained from scratch; fine-tuning a pretrained one says it at INFO
    pretrained: bool = False
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    lr_schedule: str = "cosine"  # after warm-up: "cosine", "linear" (to 0) or "constant"
    max_grad_norm: Optional[float] = 1.0
    # "auto": bf16 autocast where the GPU or CPU computes in bf16, else fp32 (anycl.training.precision)
    mixed_precision: str = "auto"
    # why "auto" became the precision mixed_precision now holds (anycl.training.precision); None: it was given
    mixed_precision_why: Optional[str] = None
    gradient_accumulation_steps: int = 1
    seed: int = 42
    output_dir: Union[str, os.PathLike, None] = None
    log_with: Any = "tensorboard"
    log_every: Optional[int] = None  # None: about 100 points per run (total steps // 100, at least 1)
    eval_every: Optional[int] = None
    num_workers: int = 0
    progress: bool = True
    cpu: bool = False
    gradcache_mini_batch: Optional[int] = (
        None  # rows per GradCache mini-batch (None: off); see anycl.training.gradcache
    )
    checkpoint_every: Optional[int] = (
        None  # optimiser steps between checkpoints (needs output_dir); anycl.training.checkpoint
    )
    resume_from: Any = None  # "latest" or a checkpoint folder
    keep_checkpoints: Optional[int] = 2
    run_identity: Optional[Dict[str, Any]] = None  # written into each checkpoint; fit checks it on resume
    # what fit resolved for the run (encoder, window or crop, views, augmentations): logged in one line with the
    # batch size, epochs and optimiser steps when training starts (anycl.training.epochs.recipe_line)
    resolved_recipe: Optional[Dict[str, Any]] = None
