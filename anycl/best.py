"""Keep the best weights seen during training, by a named evaluation metric.

``fit(..., eval_dataset=..., keep_best="ndcg@10")`` adds a :class:`KeepBest` callback: after each
evaluation it compares the metric with the best so far; the best weights are kept in memory (a CPU
copy of the state dict) and, with ``output_dir``, saved to ``<output_dir>/best``. When training ends
the model is given back the best weights, so the returned (and saved) model is the best one.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

from .errors import ConfigError

log = logging.getLogger("anycl")


class KeepBest:
    """Callback keeping the best checkpoint by ``metric`` (``mode="max"``, or ``"min"`` for losses).

    Attributes after training: ``best`` (the metric's best value), ``best_step``.
    """

    def __init__(self, metric: str, mode: str = "max", output_dir: Optional[str] = None, restore: bool = True):
        if mode not in ("max", "min"):
            raise ConfigError(f"keep_best mode must be 'max' or 'min', got {mode!r}")
        self.metric, self.mode, self.output_dir, self.restore = metric, mode, output_dir, restore
        self.best: Optional[float] = None
        self.best_step: Optional[int] = None
        self._state: Optional[Dict[str, Any]] = None

    @staticmethod
    def _model(trainer):
        acc = getattr(trainer, "accelerator", None)
        return acc.unwrap_model(trainer.module).model if acc is not None else trainer.model

    def on_evaluate(self, trainer, step: int, metrics: Dict[str, float]) -> None:
        if self.metric not in metrics:
            raise ConfigError(f"keep_best={self.metric!r} is not a metric of the evaluation; it gives "
                              f"{sorted(metrics)}")
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
