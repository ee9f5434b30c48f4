"""The argument names of transformers' ``TrainingArguments`` and sentence-transformers'
``SentenceTransformerTrainingArguments``: the one table of what each is among ``fit``'s options.

``fit(data, "text", num_train_epochs=2, per_device_train_batch_size=64, learning_rate=3e-5, fp16=True)`` is
``fit(data, "text", epochs=2, batch_size=64, lr=3e-5, mixed_precision="fp16")``: each name of
:data:`TRAINER_ARGS` with an ``option`` is read as that option (its value converted where the two differ in
form: ``fp16=True`` → ``mixed_precision="fp16"``, ``batch_sampler=BatchSamplers.NO_DUPLICATES`` →
``sampler="in_batch"``); the others are refused with the option to use instead. docs/text.md's migration
table is this table (a test checks that the two agree).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional

from anycl.errors import ConfigError

DROP = object()  # a converted value that sets nothing (fp16=False: mixed precision stays as it is)


class TrainerArg(NamedTuple):
    """``option``: the fit option the trainer argument is (None: refused); ``convert``: its value → the
    option's (DROP: no effect); ``note``: how it differs, or (refused) what to use instead."""

    option: Optional[str]
    note: str = ""
    convert: Optional[Callable[[Any], Any]] = None


def _value(v: Any) -> Any:
    """An enum member's value (sentence-transformers' BatchSamplers are str enums), else ``v``."""
    return getattr(v, "value", v)


def _choice(arg: str, table: Mapping[str, Any], refused: Mapping[str, str]) -> Callable[[Any], Any]:
    def convert(v: Any) -> Any:
        key = str(_value(v)).lower()
        if key in table:
            return table[key]
        why = refused.get(key, f"the values anycl has are {', '.join(map(repr, table))}")
        raise ConfigError(f"{arg}={v!r}: {why}")

    return convert


def _flag(arg: str, value: Any) -> Callable[[Any], Any]:
    def convert(v: Any) -> Any:
        if not isinstance(v, bool):
            raise ConfigError(f"{arg} must be True or False, got {v!r}")
        return value if v else DROP

    return convert


def _whole_epochs(v: Any) -> Any:
    if isinstance(v, float) and not v.is_integer():
        raise ConfigError(
            f"num_train_epochs={v!r}: anycl trains whole epochs (epochs=N); for part of an epoch give max_steps"
        )
    return int(v) if isinstance(v, float) else v


def _not(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ConfigError(f"disable_tqdm must be True or False, got {v!r}")
    return not v


def _report_to(v: Any) -> Any:
    return None if v in ("none", None, [], ["none"]) else ("tensorboard" if v == "all" else v)


SAMPLERS = {"no_duplicates": "in_batch", "group_by_label": "group_by_label"}
SCHEDULES = {"linear": "linear", "cosine": "cosine", "constant_with_warmup": "constant"}
_EVAL = "anycl evaluates eval_dataset after each epoch, or every eval_every=N steps (eval_steps)"

TRAINER_ARGS: Dict[str, TrainerArg] = {
    "num_train_epochs": TrainerArg("epochs", "whole epochs only", _whole_epochs),
    "max_steps": TrainerArg("max_steps", "None (not -1) for no limit"),
    "per_device_train_batch_size": TrainerArg("batch_size", "rows per process per step, as in transformers"),
    "learning_rate": TrainerArg("lr", "default per modality (text 2e-5)"),
    "weight_decay": TrainerArg("weight_decay", "anycl's default is 0.01 (transformers' 0)"),
    "warmup_ratio": TrainerArg("warmup_ratio", "anycl's default is 0.1 (transformers' 0)"),
    "lr_scheduler_type": TrainerArg(
        "lr_schedule",
        "'linear', 'cosine', 'constant_with_warmup' (→ 'constant'); always after warm-up",
        _choice(
            "lr_scheduler_type",
            SCHEDULES,
            {"constant": "anycl warms up first: give lr_schedule='constant' with warmup_ratio=0"},
        ),
    ),
    "max_grad_norm": TrainerArg("max_grad_norm", "None: no clipping"),
    "gradient_accumulation_steps": TrainerArg("gradient_accumulation_steps", "adds no in-batch negatives"),
    "seed": TrainerArg("seed"),
    "output_dir": TrainerArg("output_dir", "the model is saved in output_dir/model"),
    "overwrite_output_dir": TrainerArg("overwrite"),
    "fp16": TrainerArg(
        "mixed_precision",
        "fp16=True → mixed_precision='fp16'; False leaves fit's default 'auto'",
        _flag("fp16", "fp16"),
    ),
    "bf16": TrainerArg(
        "mixed_precision",
        "bf16=True → mixed_precision='bf16'; False leaves 'auto' (bf16 where the CPU or GPU has it): "
        "mixed_precision='no' for fp32",
        _flag("bf16", "bf16"),
    ),
    "use_cpu": TrainerArg("cpu"),
    "no_cuda": TrainerArg("cpu"),
    "eval_steps": TrainerArg("eval_every", "evaluates every N optimiser steps"),
    "save_steps": TrainerArg("checkpoint_every", "checkpoints in output_dir/checkpoints"),
    "save_total_limit": TrainerArg("keep_checkpoints"),
    "logging_steps": TrainerArg("log_every"),
    "report_to": TrainerArg("log_with", "'none' → None, 'all' → 'tensorboard'", _report_to),
    "disable_tqdm": TrainerArg("progress", "disable_tqdm=True → progress=False", _not),
    "dataloader_num_workers": TrainerArg("num_workers"),
    "load_best_model_at_end": TrainerArg(
        "keep_best",
        "True → keep_best=metric_for_best_model (or the primary metric)",
        _flag("load_best_model_at_end", True),
    ),
    "metric_for_best_model": TrainerArg("keep_best", "with load_best_model_at_end; anycl's metric names"),
    "batch_sampler": TrainerArg(
        "sampler",
        "NO_DUPLICATES → 'in_batch', GROUP_BY_LABEL → 'group_by_label'",
        _choice(
            "batch_sampler",
            SAMPLERS,
            {
                "batch_sampler": "anycl's sampler always keeps duplicates out of a batch (they would be false "
                "negatives): give sampler='in_batch' (sentence-transformers' NO_DUPLICATES)"
            },
        ),
    ),
    "multi_dataset_batch_sampler": TrainerArg(
        "multi_dataset_sampling",
        "PROPORTIONAL → 'proportional', ROUND_ROBIN → 'round_robin'",
        _choice("multi_dataset_batch_sampler", {"proportional": "proportional", "round_robin": "round_robin"}, {}),
    ),
    "resume_from_checkpoint": TrainerArg("resume_from", "a checkpoint folder, or True/'latest'"),
    "eval_dataset": TrainerArg("eval_dataset", "pairs, scored pairs or labelled items, or an ST evaluator"),
    "evaluator": TrainerArg("eval_dataset", "a sentence-transformers evaluator, run on the anycl model"),
    "prompts": TrainerArg("prompts", "{column: prompt}"),
    "warmup_steps": TrainerArg(None, "give warmup_ratio, a fraction of the run's steps (warmup_steps / total steps)"),
    "eval_strategy": TrainerArg(None, f"{_EVAL}; drop eval_strategy"),
    "evaluation_strategy": TrainerArg(None, f"{_EVAL}; drop evaluation_strategy"),
    "save_strategy": TrainerArg(
        None, "give checkpoint_every=N (save_steps) to checkpoint; the final model is always saved"
    ),
    "logging_strategy": TrainerArg(None, "give log_every=N (logging_steps)"),
    "per_device_eval_batch_size": TrainerArg(None, "no option: evaluation embeds with its own batch size"),
    "greater_is_better": TrainerArg(None, "no option: keep_best and early stopping know each metric's direction"),
    "optim": TrainerArg(None, "no option: anycl trains with AdamW (lr, weight_decay)"),
    "gradient_checkpointing": TrainerArg(None, "no option; for large batches give gradcache_mini_batch=N"),
    "push_to_hub": TrainerArg(None, "fit does not upload; upload the saved model folder after training"),
    "run_name": TrainerArg(None, "no option: output_dir names the run"),
    "eval_on_start": TrainerArg(None, "no option: anycl always evaluates once before training"),
}


def translate_trainer_args(values: Mapping[str, Any], valid: Any) -> Dict[str, Any]:
    """``values`` with each trainer argument name of :data:`TRAINER_ARGS` that is not a ``valid`` option name
    read as its fit option; a refused one, or one given with its option too, is a ConfigError."""
    out = {k: v for k, v in values.items() if k in valid or k not in TRAINER_ARGS}
    given_by: Dict[str, str] = {k: k for k in out}
    for key, value in values.items():
        if key in out:
            continue
        entry = TRAINER_ARGS[key]
        if entry.option is None:
            raise ConfigError(f"{key!r} (a transformers trainer argument) is not an option of fit: {entry.note}")
        if key == "metric_for_best_model":
            if not values.get("load_best_model_at_end"):
                raise ConfigError(
                    "metric_for_best_model without load_best_model_at_end: give keep_best='<metric>' to keep the "
                    "best evaluation's weights, or early_stopping_metric='<metric>' for early stopping"
                )
        elif key == "load_best_model_at_end" and "metric_for_best_model" in values:
            continue  # keep_best is the metric's name (above)
        new = entry.convert(value) if entry.convert is not None else value
        if new is DROP:
            continue
        if entry.option in given_by:
            raise ConfigError(
                f"{key!r} and {given_by[entry.option]!r} both give fit's option {entry.option!r}; give one of them"
            )
        given_by[entry.option] = key
        out[entry.option] = new
    return out


def migration_table() -> str:
    """docs/text.md's migration table (Markdown), row by row from :data:`TRAINER_ARGS`."""
    rows = ["| sentence-transformers / transformers | `anycl.fit` | note |", "|---|---|---|"]
    for name, entry in TRAINER_ARGS.items():
        option = f"`{entry.option}`" if entry.option else "refused"
        rows.append(f"| `{name}` | {option} | {entry.note} |")
    return "\n".join(rows)
