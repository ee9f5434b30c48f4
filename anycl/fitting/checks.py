"""``fit``'s checks of the run itself, all before any model is loaded: evaluation-driven callbacks
(``keep_best``, early stopping), LoRA, checkpoints and resuming, the output folder, and the training loop's
arguments; and the callbacks they become once there is an evaluator."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Mapping, Optional, Union

from anycl.errors import ConfigError
from anycl.files import LOCK_FILE
from anycl.model.folder import owned_entries
from anycl.model.lora import check_options as check_peft
from anycl.options.fit_config import FitConfig
from anycl.training.best import EarlyStopping, KeepBest, watched_metric
from anycl.training.checkpoint import resolve_resume
from anycl.training.collapse import CollapseWatch
from anycl.training.gradcache import GradCache
from anycl.training.precision import resolve_args
from anycl.training.trainer import TrainingArgs


def check_watch_options(cfg: FitConfig) -> None:
    """``keep_best`` and early stopping need an evaluation (checked here, once, before the teacher embeds
    anything); a bad patience fails before any model is loaded."""
    if cfg.keep_best and cfg.eval_dataset is None:
        raise ConfigError("keep_best needs an eval_dataset (or a callable evaluator) to compare checkpoints")
    if cfg.early_stopping_patience is not None:
        if cfg.eval_dataset is None:
            raise ConfigError("early_stopping_patience needs an eval_dataset (or a callable evaluator) to watch")
        EarlyStopping("-", cfg.early_stopping_patience)


def check_run_options(cfg: FitConfig) -> Optional[Path]:
    """LoRA options, checkpointing and resuming (a bad path fails here), then the output folder. Returns the
    checkpoint ``resume_from`` names (None: the run starts from scratch)."""
    if cfg.peft:
        check_peft(cfg.peft)
    if cfg.checkpoint_every and not cfg.output_dir:
        raise ConfigError("checkpoint_every needs output_dir (checkpoints go to output_dir/checkpoints)")
    checkpoint = resolve_resume(cfg.resume_from, cfg.output_dir) if cfg.resume_from is not None else None
    prepare_output_dir(cfg.output_dir, bool(cfg.overwrite) or cfg.resume_from is not None)
    return checkpoint


def prepare_output_dir(output_dir: Union[str, os.PathLike, None], overwrite: bool) -> None:
    """Refuse a non-empty output folder unless ``overwrite``, and a model folder anycl did not write."""
    if not output_dir:
        return
    p = Path(output_dir)
    if p.exists() and (not p.is_dir() or any(c.name != LOCK_FILE for c in p.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"output_dir {output_dir!r} already exists and is not empty; pass overwrite=True or choose "
                f"another folder (nothing was trained)"
            )
    model_dir = p / "model"
    if model_dir.is_dir() and owned_entries(model_dir) is None:  # found now, not after training
        raise FileExistsError(
            f"{str(model_dir)!r} is a non-empty folder that anycl did not write, and the model "
            f"would be saved there; move it or choose another output_dir (nothing was trained)"
        )


def training_args(cfg: FitConfig, fit_defaults: Mapping[str, Any], step_budget: Optional[int] = None) -> TrainingArgs:
    """The training loop's arguments: the config's resolved values (``mixed_precision="auto"`` the precision for
    this machine: :mod:`anycl.training.precision`), checked; ``step_budget``: the run's epochs
    come from the data (:func:`anycl.fitting.recipe.step_budget`)."""
    args = TrainingArgs(
        **cfg.training_values(fit_defaults),
        step_budget=step_budget,
        output_dir=cfg.output_dir,
        log_with=cfg.log_with,
        progress=bool(cfg.progress),
        cpu=bool(cfg.cpu),
        gradcache_mini_batch=cfg.gradcache_mini_batch,
        checkpoint_every=cfg.checkpoint_every,
        resume_from=cfg.resume_from,
        keep_checkpoints=cfg.keep_checkpoints,
    )
    resolve_args(args)  # mixed_precision "auto": bf16 where this machine computes in it, else fp32
    if args.gradcache_mini_batch is not None:
        GradCache(args.gradcache_mini_batch)
    if args.gradient_accumulation_steps < 1:
        raise ConfigError("gradient_accumulation_steps must be >= 1")
    if args.epochs < 1 and not args.max_steps:
        raise ConfigError("epochs must be >= 1 (or give max_steps)")
    return args


def watch_callbacks(cfg: FitConfig, evaluator, output_dir: Union[str, os.PathLike, None]) -> List[Any]:
    """The user's callbacks, plus :class:`anycl.training.best.KeepBest` when ``keep_best`` names a metric (``True``:
    the evaluator's primary metric), :class:`anycl.training.best.EarlyStopping` with ``early_stopping_patience``
    (watching ``early_stopping_metric``, else keep_best's metric, else the primary metric) and
    :class:`anycl.training.collapse.CollapseWatch` unless ``collapse_watch`` is off. ``check_watch_options`` made
    sure there is an evaluator for the first two."""
    callbacks = list(cfg.callbacks or ())
    mode = "max" if getattr(evaluator, "greater_is_better", True) else "min"  # an evaluator may say (ST's do)
    if cfg.keep_best:
        callbacks.append(
            KeepBest(
                watched_metric(cfg.keep_best, evaluator, "keep_best"),
                mode=mode,
                output_dir=output_dir,
                source=evaluator,
            )
        )
    if cfg.early_stopping_patience is not None:
        name = cfg.early_stopping_metric or (cfg.keep_best if isinstance(cfg.keep_best, str) else None)
        callbacks.append(
            EarlyStopping(
                watched_metric(name, evaluator, "early_stopping_patience"),
                cfg.early_stopping_patience,
                mode=mode,
                source=evaluator,
            )
        )
    watch = cfg.collapse_watch
    if watch:  # embedding spread logged, a warning when it falls toward collapse
        callbacks.append(
            watch if isinstance(watch, CollapseWatch) else CollapseWatch(**(watch if isinstance(watch, dict) else {}))
        )
    return callbacks
