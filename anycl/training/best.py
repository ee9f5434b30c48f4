"""Keep the best weights seen during training, by a named evaluation metric.

``fit(..., eval_dataset=..., keep_best="ndcg@10")`` adds a :class:`KeepBest` callback: after each
evaluation it compares the metric with the best so far; the best weights are kept in memory (a CPU
copy of the state dict) and, with ``output_dir``, saved to ``<output_dir>/best``. When training ends
the model is given back the best weights, so the returned (and saved) model is the best one.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional, Union

from anycl.errors import ConfigError
from anycl.evaluation.base import primary_metric

from .contracts import Callback

log = logging.getLogger("anycl")


class KeepBest(Callback):
    """Callback keeping the best checkpoint by ``metric`` (``mode="max"``, or ``"min"`` for losses).

    Attributes after training: ``best`` (the metric's best value), ``best_step``.
    """

    def __init__(
        self,
        metric: Optional[str],
        mode: str = "max",
        output_dir: Union[str, os.PathLike, None] = None,
        restore: bool = True,
        source: Any = None,
    ):
        if mode not in ("max", "min"):
            raise ConfigError(f"keep_best mode must be 'max' or 'min', got {mode!r}")
        self.metric, self.mode, self.output_dir, self.restore = metric, mode, output_dir, restore
        self.source = source  # metric None: the evaluator whose primary metric is known once it has run
        self.best: Optional[float] = None
        self.best_step: Optional[int] = None
        self._state: Optional[Dict[str, Any]] = None

    @staticmethod
    def _model(trainer):
        acc = getattr(trainer, "accelerator", None)
        return acc.unwrap_model(trainer.module).model if acc is not None else trainer.model

    def on_evaluate(self, trainer, step: int, metrics: Dict[str, float]) -> None:
        self.metric = self.metric or resolved_primary(self.source, "keep_best")
        if self.metric not in metrics:
            raise ConfigError(
                f"keep_best={self.metric!r} is not a metric of the evaluation; it gives {sorted(metrics)}"
            )
        value = float(metrics[self.metric])
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if not better:
            return
        self.best, self.best_step = value, step
        model = self._model(trainer)
        self._state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if self.output_dir:
            model.save(os.path.join(self.output_dir, "best"), overwrite=True)
        log.info("new best %s=%.4f at step %d", self.metric, value, step)

    def on_train_end(self, trainer) -> None:
        if self._state is None:
            log.warning("keep_best=%r: no evaluation ran, so the final weights are kept", self.metric)
            return
        model = self._model(trainer)
        if self.restore:
            model.load_state_dict(self._state)
            log.info("restored the best weights (%s=%.4f at step %d)", self.metric, self.best, self.best_step)
        model.info["best"] = {"metric": self.metric, "value": self.best, "step": self.best_step}


def watched_metric(name: Any, evaluator, option: str) -> Optional[str]:
    """The metric ``keep_best`` / ``early_stopping_patience`` watch: the one named, else (``True`` or
    None) the evaluator's ``primary_metric`` (anycl.evaluation.base.Evaluator); None for an evaluator that names
    it once it has run (``primary_metric_after_call``: sentence-transformers' do), resolved at the first
    evaluation (:func:`resolved_primary`)."""
    if isinstance(name, str) and name:
        return name
    found = primary_metric(evaluator)
    if found is None and getattr(evaluator, "primary_metric_after_call", False):
        return None
    return resolved_primary(evaluator, option)


def resolved_primary(evaluator, option: str) -> str:
    """The evaluator's primary metric; a ConfigError when it names none."""
    found = primary_metric(evaluator)
    if found is None:
        raise ConfigError(
            f"{option}: this evaluator does not name a primary metric; name the metric, e.g. "
            f"keep_best='ndcg@10' or early_stopping_metric='sts_spearman'"
        )
    return found


class EarlyStopping(Callback):
    """Callback stopping training when ``metric`` has not improved for ``patience`` evaluations in a row.

    The trainer finishes the step it is in and ends as after its last step (with ``keep_best``, the best
    weights are restored). Attributes: ``best``, ``best_step``, ``stopped_step`` (None if it never stopped).
    """

    def __init__(
        self, metric: Optional[str], patience: int, mode: str = "max", min_delta: float = 0.0, source: Any = None
    ):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"early_stopping_patience must be an int >= 1, got {patience!r}")
        if mode not in ("max", "min"):
            raise ConfigError(f"early stopping mode must be 'max' or 'min', got {mode!r}")
        self.metric, self.patience, self.mode, self.min_delta = metric, patience, mode, float(min_delta)
        self.source = source  # metric None: the evaluator whose primary metric is known once it has run
        self.best: Optional[float] = None
        self.best_step: Optional[int] = None
        self.bad_evaluations = 0
        self.stopped_step: Optional[int] = None

    def checkpoint_state(self) -> Dict[str, Any]:
        """What a checkpoint keeps, so a resumed run counts from where the interrupted one was."""
        return {"best": self.best, "best_step": self.best_step, "bad_evaluations": self.bad_evaluations}

    def load_checkpoint_state(self, state: Dict[str, Any]) -> None:
        self.best, self.best_step = state.get("best"), state.get("best_step")
        self.bad_evaluations = int(state.get("bad_evaluations", 0))

    def on_evaluate(self, trainer, step: int, metrics: Dict[str, float]) -> None:
        self.metric = self.metric or resolved_primary(self.source, "early_stopping_patience")
        if self.metric not in metrics:
            raise ConfigError(
                f"early stopping watches {self.metric!r}, which is not a metric of the evaluation; it "
                f"gives {sorted(metrics)}"
            )
        value = float(metrics[self.metric])
        if self.best is None or (
            value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta
        ):
            self.best, self.best_step, self.bad_evaluations = value, step, 0
            return
        self.bad_evaluations += 1
        if self.bad_evaluations >= self.patience:
            self.stopped_step = step
            trainer.should_stop = True
            log.info(
                "early stopping at step %d: %s has not improved on %.4f (step %d) for %d evaluations",
                step,
                self.metric,
                self.best,
                self.best_step,
                self.patience,
            )
