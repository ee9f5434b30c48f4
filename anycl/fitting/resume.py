"""A resume continues the run that wrote the checkpoint: what identifies a run is written into every checkpoint it
saves, and ``resume_from`` compares it with the run being started, before any model is built.

What identifies a run (:func:`run_identity`): the modalities, the model and encoder, their options and the head,
the loss and its options, the sampler, the training values (batch size, epochs, learning rate and schedule, seed,
precision, ...), every other option that changes what is trained, the number of training rows and of processes.
What a restart may change is left out (:data:`RESTART_MAY_CHANGE`: where and how the run is written, logged,
evaluated and checkpointed). A difference is a :class:`~anycl.errors.ConfigError` naming, in one line, each
option with its value in the checkpoint and now; ``resume_force=True`` goes on anyway, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from anycl.errors import ConfigError
from anycl.options.fit_config import NAMES, TRAINING_KEYS, FitConfig
from anycl.training.checkpoint_find import recorded_run

log = logging.getLogger("anycl")

# options a restarted run may change: where it writes, how it shows and logs, evaluates and checkpoints
RESTART_MAY_CHANGE = frozenset(
    {
        "output_dir",
        "overwrite",
        "progress",
        "cpu",
        "num_workers",
        "log_with",
        "log_every",
        "eval_dataset",
        "eval_every",
        "eval_kind",
        "probe",
        "keep_best",
        "early_stopping_patience",
        "early_stopping_metric",
        "callbacks",
        "collapse_watch",
        "checkpoint_every",
        "resume_from",
        "resume_force",
        "keep_checkpoints",
        "gradcache_mini_batch",  # the same gradients, in less memory
        "on_bad_item",  # what it changes, the rows, is compared by their number
        "recipe",  # its values are compared one by one
        "loss",  # compared as the loss built, below
        "loss_options",
        "temperature",
    }
)
_MAX_SHOWN = 6


def _plain(value: Any) -> Any:
    """``value`` as JSON data (what a checkpoint's marker holds): a Python object becomes ``"<its class>"``."""

    def name(obj: Any) -> Any:
        return os.fspath(obj) if isinstance(obj, os.PathLike) else f"<{type(obj).__name__}>"

    try:
        return json.loads(json.dumps(value, default=name))
    except (TypeError, ValueError):  # keys that are not strings, NaN-free JSON, ...
        return name(value)


def run_identity(
    cfg: FitConfig, args: Any, loss_name: str, loss_options: Any, sides: Mapping[str, str], rows
) -> Dict[str, Any]:
    """What identifies a run of ``fit`` (see the module docstring), as plain data: ``cfg``'s options, the resolved
    training values of ``args`` (a :class:`~anycl.training.TrainingArgs`), the loss built, the modality of each
    side and the training rows."""
    resolved = {k: getattr(args, k) for k in TRAINING_KEYS if k not in RESTART_MAY_CHANGE}
    out: Dict[str, Any] = {n: _plain(getattr(cfg, n)) for n in NAMES if n not in RESTART_MAY_CHANGE}
    out.update({k: _plain(v) for k, v in resolved.items()})
    out["modality"] = _plain(dict(sides))
    out["loss"] = loss_name
    out["loss_options"] = _plain(loss_options)
    out["train_rows"] = None if getattr(rows, "streaming", False) else len(rows)
    out["processes"] = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> List[str]:
    """``"<option> <value there>, now <value now>"`` for each option both record with different values."""
    return [
        f"{k} {_shown(recorded[k])} there, {_shown(now[k])} now"
        for k in sorted(set(recorded) & set(now))
        if recorded[k] != now[k]
    ]


def check_resume(checkpoint: Optional[Path], identity: Mapping[str, Any], force: bool) -> None:
    """Refuse to resume from ``checkpoint`` when the run that wrote it differs from this one (``identity``),
    naming each difference in one line; with ``force`` only warn. Nothing to check without a checkpoint, or for
    one that records no run (written outside ``fit`` or by an older anycl)."""
    if checkpoint is None:
        return
    recorded = recorded_run(checkpoint)
    if recorded is None:
        log.info("checkpoint %s records no run options; resuming without comparing them", checkpoint)
        return
    diff = differences(recorded, _plain(dict(identity)))
    if not diff:
        return
    listed = "; ".join(diff[:_MAX_SHOWN]) + (f"; and {len(diff) - _MAX_SHOWN} more" if len(diff) > _MAX_SHOWN else "")
    if force:
        log.warning("resume_force=True: resuming from %s although this run differs from it: %s", checkpoint, listed)
        return
    raise ConfigError(
        f"checkpoint {str(checkpoint)!r} was written by a run with other options: {listed}. Resume with the options "
        f"it was written with, or pass resume_force=True to go on anyway (nothing was trained)"
    )
