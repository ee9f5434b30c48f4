"""Up-front checks of ``fit``'s options: every number and mapping a user gives is checked before any data
is embedded or any model is loaded, and a bad one is a :class:`~anycl.errors.ConfigError` that names the
option, the value and what is allowed (the command line reports it in one line with exit code 2).

``validate_options(cfg)`` checks the options of a :class:`~anycl.options.fit_config.FitConfig` that it knows and
leaves the rest (checked where they are used); ``fit`` calls it first.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any, Mapping, Optional

from anycl.errors import ConfigError
from anycl.files import check_parent

from .fields import FitFields


def _is_int(v: Any, lenient: bool) -> Optional[int]:
    """``v`` as an int when it is one (lenient: also an integral float or a string of digits), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, Integral):
        return int(v)
    if lenient and isinstance(v, float) and v.is_integer():
        return int(v)
    if lenient and isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return None
    return None


def check_int(
    name: str,
    v: Any,
    minimum: int,
    *,
    maximum: Optional[int] = None,
    allow_none: bool = False,
    lenient: bool = True,
    hint: str = "",
) -> None:
    if v is None and allow_none:
        return
    n = _is_int(v, lenient)
    bound = f">= {minimum}" + (f" and < {maximum}" if maximum is not None else "")
    if n is None or n < minimum or (maximum is not None and n >= maximum):
        raise ConfigError(f"{name} must be an integer {bound}, got {v!r}{hint}")


def check_float(
    name: str,
    v: Any,
    *,
    low: Optional[float] = None,
    low_inclusive: bool = True,
    high: Optional[float] = None,
    high_inclusive: bool = True,
    allow_none: bool = False,
    hint: str = "",
) -> None:
    if v is None and allow_none:
        return
    x: Optional[float] = None
    if not isinstance(v, bool) and isinstance(v, (Real, str)):
        try:
            x = float(v)
        except ValueError:
            x = None
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low:g}")
    if high is not None:
        parts.append(f"{'<=' if high_inclusive else '<'} {high:g}")
    want = "a finite number" + (" " + " and ".join(parts) if parts else "")
    bad = x is None or not math.isfinite(x)
    if x is not None and not bad and low is not None:
        bad = x < low or (x == low and not low_inclusive)
    if x is not None and not bad and high is not None:
        bad = x > high or (x == high and not high_inclusive)
    if bad:
        raise ConfigError(f"{name} must be {want}, got {v!r}{hint}")


def check_mapping(name: str, v: Any, example: str) -> None:
    if v is None or isinstance(v, Mapping):
        return
    flag = "--" + name.replace("_", "-")
    extra = ""
    if isinstance(v, str) and "=" in v:
        extra = " (a 'key=value' string is not read)"
    raise ConfigError(
        f"{name} must be a mapping of names to values, e.g. {name}={example} (command line: "
        f"{flag} '{example}'), got the {type(v).__name__} {v!r}{extra}"
    )


MIXED_PRECISIONS = ("auto", "no", "bf16", "fp16")  # "auto": anycl.training.precision picks for the machine


def check_mixed_precision(value: Any) -> None:
    """A ConfigError unless ``value`` is one of :data:`MIXED_PRECISIONS` (None: the default, ``"auto"``)."""
    if value is not None and value not in MIXED_PRECISIONS:
        raise ConfigError(f"mixed_precision must be 'auto', 'no', 'bf16' or 'fp16', got {value!r}")


def validate_options(cfg: FitFields) -> None:
    """Raise ConfigError for the first option of ``fit`` whose value cannot work (the defaults all work)."""
    check_int("batch_size", cfg.batch_size, 1, allow_none=True)
    check_int("epochs", cfg.epochs, 0, allow_none=True)
    check_int(
        "max_steps",
        cfg.max_steps,
        1,
        allow_none=True,
        lenient=False,
        hint="; omit it (None) to train for `epochs` passes",
    )
    check_float("lr", cfg.lr, low=0, low_inclusive=False, allow_none=True)
    check_float("weight_decay", cfg.weight_decay, low=0, allow_none=True)
    check_float("warmup_ratio", cfg.warmup_ratio, low=0, high=1, allow_none=True)
    if cfg.lr_schedule is not None and cfg.lr_schedule not in ("cosine", "linear", "constant"):
        raise ConfigError(f"lr_schedule must be 'cosine', 'linear' or 'constant', got {cfg.lr_schedule!r}")
    check_float("max_grad_norm", cfg.max_grad_norm, low=0, allow_none=True, hint=" (None: no clipping)")
    check_int("gradient_accumulation_steps", cfg.gradient_accumulation_steps, 1, allow_none=True)
    check_int("seed", cfg.seed, 0, maximum=2**32, allow_none=True)
    check_int("log_every", cfg.log_every, 1, allow_none=True)
    check_int(
        "eval_every",
        cfg.eval_every,
        1,
        allow_none=True,
        lenient=False,
        hint="; omit it (None) to evaluate after each epoch",
    )
    check_int("num_workers", cfg.num_workers, 0, allow_none=True)
    check_float("temperature", cfg.temperature, low=0, low_inclusive=False, allow_none=True)
    check_float("distill_weight", cfg.distill_weight, low=0, allow_none=True, hint=" (0: no distillation)")
    for name, example in (
        ("loss_options", '{"temperature": 0.1}'),
        ("sampler_options", '{"seed": 1}'),
        ("encoder_options", '{"dropout": 0.1}'),
        ("adapter_options", '{"max_length": 128}'),
        ("columns", '{"anchor": "query", "positive": "doc"}'),
        ("teacher_options", '{"cache": true}'),
    ):
        check_mapping(name, getattr(cfg, name), example)
    loss_options = cfg.loss_options or {}
    if "temperature" in loss_options:
        check_float(
            "loss_options['temperature']", loss_options["temperature"], low=0, low_inclusive=False, allow_none=True
        )
    columns = cfg.columns or {}
    if columns and all(isinstance(v, Mapping) for v in columns.values()):  # per data set (anycl.data.multi)
        columns = {k: v for per in columns.values() for k, v in per.items()}
    bad = [f"{k!r}: {v!r}" for k, v in columns.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ConfigError(f"columns must map the convention's names to your column names (strings), got {bad[0]}")
    check_mixed_precision(cfg.mixed_precision)
    if cfg.on_bad_item is not None and cfg.on_bad_item not in ("raise", "skip"):
        raise ConfigError(f"on_bad_item must be 'raise' or 'skip', got {cfg.on_bad_item!r}")
    every = cfg.checkpoint_every
    if every is not None and (_is_int(every, lenient=False) is None or every < 1):
        raise ConfigError(f"checkpoint_every must be a positive number of steps, got {every!r}")
    keep = cfg.keep_checkpoints
    if keep is not None and (_is_int(keep, lenient=False) is None or keep < 1):
        raise ConfigError(f"keep_checkpoints must be a positive integer or None, got {keep!r}")
    for name in ("output_dir", "resume_from"):
        v = getattr(cfg, name)
        if v is not None and not isinstance(v, (str, os.PathLike, bool)):
            raise ConfigError(f"{name} must be a path, got the {type(v).__name__} {v!r}")
    output_dir = cfg.output_dir
    if output_dir is not None:
        check_parent(os.fspath(output_dir), "output_dir")
        if os.path.lexists(output_dir) and not os.path.isdir(output_dir):
            raise ConfigError(
                f"output_dir {os.fspath(output_dir)!r} is a file, not a folder; the run writes a folder there: "
                f"choose a new (or empty) folder's path"
            )
    sep = cfg.sep
    if sep is not None and (not isinstance(sep, str) or (len(sep) != 1 and sep not in ("\\t", "tab"))):
        raise ConfigError(f"sep must be one character (e.g. ',', ';', '\\t', '|'), got {sep!r}")
    kb = cfg.keep_best
    if kb is not None and not isinstance(kb, (str, bool)):
        raise ConfigError(
            f"keep_best must be a metric name such as 'ndcg@10' (or True: the evaluation's primary metric), got {kb!r}"
        )
    check_int("early_stopping_patience", cfg.early_stopping_patience, 1, allow_none=True, lenient=False)
    esm = cfg.early_stopping_metric
    if esm is not None and not isinstance(esm, str):
        raise ConfigError(f"early_stopping_metric must be a metric name such as 'sts_spearman', got {esm!r}")
