"""The evaluator contract (:class:`Evaluator`) and the evaluator registry (``anycl.evaluation.get("sts", ...)``).

An evaluator is called on a model and returns ``{metric: value}``; its ``primary_metric`` is the one
``keep_best=True`` and early stopping watch when no metric is named; its ``name`` is the one it is registered
under, which ``fit(eval_kind=...)`` and ``anycl eval --kind`` accept. ``from_rows`` builds it from evaluation
data (:class:`anycl.data.inputs.Rows`); :func:`anycl.evaluation.choose.build_evaluator` decides which one a
data set gets.

A new evaluator is one module with a subclass registered by name::

    @anycl.evaluation.register("my_metric")
    class MyEvaluator(anycl.evaluation.Evaluator):
        primary_metric = "my_metric"

        @classmethod
        def from_rows(cls, rows, batch_size=64):
            ...

        def __call__(self, model):
            (emb,) = self.embed(model, [(items, None, "anchor")])
            return {"my_metric": ...}

or an installed package's entry point in the group ``anycl.evaluators``.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from anycl.model.embed import embed_all
from anycl.progress import phase_bar
from anycl.registry import Registry

EVALUATORS = Registry("evaluator", entry_point_group="anycl.evaluators")


class Evaluator:
    """Base class of evaluators.

    - ``evaluator(model)`` → ``{metric name: float}``;
    - ``primary_metric``: the metric it is judged by (None: the user names one);
    - ``name``: its registry name (set by :func:`register`);
    - ``from_rows(rows, **options)``: the evaluator of evaluation data; options it does not take are not
      given to it (``build_evaluator`` offers ``batch_size``, ``seed`` and what the caller adds, e.g. ``k``);
    - ``show_progress``: the trainer and ``anycl eval`` set it (one progress bar per evaluation);
    - ``engine``: what embeds the items in :meth:`embed` (:mod:`anycl.model.engines`); None (the default):
      ``"torch"`` (float32) when called directly or by ``anycl eval``; during training the trainer sets it to
      compute as training does: ``"torch-bf16"`` under bf16 mixed precision (nDCG@10 moves by under 0.003,
      docs/scale.md), else ``"torch"``.
    """

    name: str = ""
    primary_metric: Optional[str] = None
    show_progress: bool = False
    batch_size: int = 64
    engine: Optional[str] = None

    def __call__(self, model) -> Dict[str, float]:
        raise NotImplementedError

    @classmethod
    def from_rows(cls, *args: Any, **options: Any) -> Evaluator:  # (rows: Rows, <the options it takes>)
        raise NotImplementedError(f"the {cls.name or cls.__name__} evaluator cannot be built from evaluation data")

    def describe(self, rows: int) -> str:
        """One line naming the evaluation of ``rows`` rows (``anycl eval`` prints it above the metrics)."""
        return f"{self.name or type(self).__name__}: {rows} rows"

    def embed(self, model, groups: Sequence[tuple]) -> List[torch.Tensor]:
        """Embed each ``(items, modality[, side])`` group under one progress bar (:func:`anycl.model.embed.embed_all`);
        a group naming a side gets that side's prompt (``anycl.data.prompts``); modality None: the side's tower."""
        with phase_bar(self.show_progress, sum(len(g[0]) for g in groups), "evaluate") as bar:
            return [
                embed_all(
                    model,
                    items,
                    side=side[0] if side else None,
                    modality=m,
                    batch_size=self.batch_size,
                    bar=bar,
                    engine=self.engine or "torch",
                )
                for items, m, *side in groups
            ]


def at_widths(metrics_of, q: torch.Tensor, c: torch.Tensor, truncate_dims: Sequence[int]) -> Dict[str, float]:
    """``metrics_of(q, c)`` at full width, then at each width in ``truncate_dims`` (prefixes,
    re-normalised; Matryoshka models) with the metric names suffixed ``_dim<d>``."""
    out = dict(metrics_of(q, c))
    for d in truncate_dims:
        sub = metrics_of(F.normalize(q[:, :d], dim=-1), F.normalize(c[:, :d], dim=-1))
        out.update({f"{k}_dim{d}": v for k, v in sub.items()})
    return out


def register(name: str, *aliases: str, override: bool = False):
    """Decorator registering an :class:`Evaluator` subclass under ``name``; sets its ``name``."""

    def deco(cls):
        if not (inspect.isclass(cls) and issubclass(cls, Evaluator)):
            raise TypeError(f"evaluator {name!r} must be a subclass of anycl.evaluation.Evaluator")
        EVALUATORS.register(name, *aliases, override=override)(cls)
        if "name" not in vars(cls):  # its own, not one inherited from a registered parent
            cls.name = EVALUATORS._norm(name)
        return cls

    return deco


def get(name: str, **kwargs) -> Any:
    """Build the evaluator registered as ``name`` from its constructor's arguments."""
    return EVALUATORS.get(name, **kwargs)


def lookup(name: str) -> Any:
    """The evaluator class registered as ``name``."""
    return EVALUATORS.lookup(name)


def names() -> List[str]:
    """Registered evaluator names."""
    return EVALUATORS.names()


def primary_metric(evaluator) -> Optional[str]:
    """The metric an evaluator is judged by (None when it does not say)."""
    return getattr(evaluator, "primary_metric", None)
