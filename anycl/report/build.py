"""The training report: PNG figures and one self-contained HTML page, written at the end of ``fit``.

``write_report(output_dir, model, trainer, rows, config)`` writes into ``output_dir``:

- ``report.html`` — one page that opens offline (everything inlined as data URIs, no scripts), in this order:
  **Health** (:mod:`anycl.report.health`: a verdict in words per rule: steps, loss, collapse, the
  positive/negative gap, evaluation vs step 0, neighbours vs chance), the summary, the evaluation table
  (before and after training), **Nearest neighbours** (:mod:`anycl.report.neighbours`: a few query items with
  their top hits before and after training, as text, thumbnails or playable excerpts, marked by label), the
  figures below, the embedding map with a table of its items, and the run's config;
- ``report/loss.png`` — training loss over steps (plus any extra terms a loss returns, in ``terms.png``);
- ``report/lr.png`` — the learning rate each step used;
- ``report/eval.png`` — each evaluation metric over steps, from the evaluation before training (step 0,
  the baseline, marked) to the last (when ``eval_dataset`` was given);
- ``report/similarity.png`` — mean cosine similarity of anchors to their positives and to their hardest
  in-batch negatives over training, the gap between them green where the positive is above, red where not;
- ``report/collapse.png`` — the collapse watch (:mod:`anycl.training.collapse`): spread, alignment, uniformity on
  fixed axes, the warning levels drawn, green only where a value is on the healthy side of its level;
- ``report/embeddings.png`` — the embedding map (:mod:`anycl.report.embedding_map`), coloured by label wherever
  labels are known; for pairs without labels, a histogram of positive-pair vs random-pair similarities;
- ``report/data.json`` — every plotted point (the same steps TensorBoard got), the examples and the verdicts.

Every logged step goes to the trackers (TensorBoard) and the report alike: ``log_every`` (default about
100 points per run) sets both.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from anycl.adapters.preview import item_name
from anycl.training.collapse import CollapseWatch

from .embedding_map import embedding_map
from .figures import collapse_figure, eval_figure, line_figure, similarity_figure
from .health import verdicts
from .map_figures import project_2d
from .neighbours import neighbours_html
from .page import render_html
from .plotting import DPI, FIGSIZE

__all__ = ["write_report", "render_html", "project_2d", "FIGSIZE", "DPI", "REPORT_HTML", "FIGURE_DIR"]

log = logging.getLogger("anycl")

REPORT_HTML = "report.html"
FIGURE_DIR = "report"
BASE_KEYS = ("step", "loss", "lr", "items_per_s", "epoch")


def _curves(trainer) -> List[Dict[str, Any]]:
    """The trainer's logged points merged with the collapse watch's measures, by step."""
    merged: Dict[int, Dict[str, Any]] = {}
    for h in list(getattr(trainer, "history", []) or []):
        if "step" in h:
            merged.setdefault(h["step"], {"step": h["step"]}).update(h)
    for cb in list(getattr(trainer, "callbacks", []) or []):
        if isinstance(cb, CollapseWatch):
            for h in cb.history:
                merged.setdefault(h["step"], {"step": h["step"]}).update(h)
    return [merged[k] for k in sorted(merged)]


def _watch(trainer):
    return next((cb for cb in (getattr(trainer, "callbacks", []) or []) if isinstance(cb, CollapseWatch)), None)


def write_report(
    output_dir: Union[str, os.PathLike],
    model=None,
    trainer=None,
    rows=None,
    config: Optional[Mapping[str, Any]] = None,
    sample: int = 500,
    method: str = "pca",
    seed: int = 0,
    examples=None,
) -> Path:
    """Write the figures and ``report.html`` into ``output_dir``; returns the HTML page's path.

    Args:
        output_dir: the run's folder. model: the trained model (embedding map, nearest neighbours).
        trainer: the :class:`~anycl.training.Trainer` (its ``history`` and ``eval_history``).
        rows: the training :class:`~anycl.data.Rows` (a sample is embedded for the map).
        config: the run's resolved config (shown on the page).
        sample: items in the embedding map. method: ``"pca"`` or ``"tsne"``.
        examples: a :class:`~anycl.report.examples.RetrievalExamples` holding the "before" hits; the
            "after" hits are searched here.
    """
    out = Path(output_dir)
    figdir = out / FIGURE_DIR
    figdir.mkdir(parents=True, exist_ok=True)
    history = _curves(trainer)
    eval_history = list(getattr(trainer, "eval_history", []) or [])
    watch = _watch(trainer)
    threshold = getattr(watch, "threshold", 0.1)
    relative = getattr(watch, "relative", 0.2)
    made = _figures(figdir, trainer, history, eval_history, watch, threshold, relative)
    if examples is not None and model is not None:
        try:
            examples.snapshot(model, "after")
        except Exception as exc:  # a picture; never lose a trained run over it
            log.warning("the nearest-neighbour examples could not be searched: %s", exc)
    mapped = None
    if model is not None and (rows is not None or examples is not None):
        try:
            mapped = embedding_map(figdir / "embeddings.png", model, rows, examples, sample, method, seed)
        except Exception as exc:  # a picture; never lose a trained run over it
            log.warning("the embedding figure could not be drawn: %s", exc)
    if mapped is not None:
        made.append(mapped.figure)
    figures = [(h, p, c) for h, p, c in made if p is not None]
    info = dict(getattr(model, "info", {}) or {}) if model is not None else {}
    steps = info.get("steps", getattr(trainer, "global_step", None) or (history[-1]["step"] if history else None))
    found = verdicts(
        history,
        eval_history,
        steps,
        threshold,
        relative,
        random_pair_cosine=mapped.random_pair_cosine if mapped is not None else None,
        primary_metric=getattr(getattr(trainer, "evaluator", None), "primary_metric", None),
        agreement=getattr(examples, "agreement", None),
        label_source=getattr(examples, "label_source", "label"),
    )
    summary = _summary(config, info, history, out)
    try:
        neighbours = neighbours_html(examples, model)
    except Exception as exc:  # a picture; never lose a trained run over it
        log.warning("the nearest-neighbour examples could not be shown: %s", exc)
        neighbours = ""
    (figdir / "data.json").write_text(
        json.dumps(
            {
                "history": history,
                "eval_history": eval_history,
                "examples": examples.record(item_name) if examples is not None else None,
                "health": [v._asdict() for v in found],
            },
            indent=1,
            default=str,
        )
    )
    baseline = eval_history[0] if len(eval_history) > 1 and eval_history[0].get("step") == 0 else None
    page = out / REPORT_HTML
    page.write_text(
        render_html(
            figures,
            config,
            summary,
            _shipped(model, eval_history),
            baseline,
            neighbours=neighbours,
            health=found,
            map_table=mapped.table if mapped is not None else (),
        )
    )
    return page


def _summary(config, info: Mapping[str, Any], history, out: Path) -> Dict[str, Any]:
    summary: Dict[str, Any] = {}
    if config and config.get("dataset"):
        summary["data"] = config["dataset"]
    base = info.get("base_model") or {}
    if base:
        summary["base model"] = ", ".join(f"{v}" for v in base.values())
    for k, label in (("train_rows", "training rows"), ("steps", "steps"), ("loss", "loss")):
        if info.get(k) is not None:
            summary[label] = info[k]
    if history and isinstance(history[-1].get("loss"), (int, float)):
        summary["final training loss"] = f"{history[-1]['loss']:.4f}"
    summary["TensorBoard"] = f"tensorboard --logdir {out / 'logs'}"
    return summary


def _shipped(model, eval_history) -> Optional[Mapping[str, Any]]:
    """The evaluation of the weights handed back (``fit`` records it: the best step's under ``keep_best``)."""
    recorded = (getattr(model, "info", None) or {}).get("final_metrics")
    return recorded or (eval_history[-1] if eval_history else None)


def _figures(figdir: Path, trainer, history, eval_history, watch, threshold: float, relative: float) -> List[tuple]:
    """(heading, path or None, caption) of each curve figure."""
    watch_keys = {k for h in getattr(watch, "history", []) for k in h} - {"step"}
    keys = sorted(
        {k for h in history for k, v in h.items() if isinstance(v, (int, float))} - set(BASE_KEYS) - watch_keys
    )
    metrics = sorted({k for h in eval_history for k, v in h.items() if k != "step" and isinstance(v, (int, float))})
    every = getattr(getattr(trainer, "args", None), "log_every", None)
    logged = (
        "logged at every step"
        if every == 1
        else f"logged every {every} steps (and at step 1)"
        if every
        else "logged steps"
    )
    return [
        (
            "Training loss",
            line_figure(figdir / "loss.png", history, ["loss"], "loss"),
            f"Mean loss over the steps since the previous point; {logged}, the same points as TensorBoard.",
        ),
        (
            "Loss terms",
            line_figure(figdir / "terms.png", history, keys, "value") if keys else None,
            "The extra terms the loss returns, at the same steps.",
        ),
        (
            "Learning rate",
            line_figure(figdir / "lr.png", history, ["lr"], "learning rate"),
            "The learning rate each optimiser step used: linear warm-up, then the schedule (cosine by default).",
        ),
        (
            "Evaluation metrics",
            eval_figure(figdir / "eval.png", eval_history, metrics),
            "Each metric at every evaluation; the hollow marker and dotted line are its value before training (step 0)."
            if eval_history and eval_history[0].get("step") == 0
            else "Each metric at every evaluation.",
        ),
        (
            "Positive vs hardest negative",
            similarity_figure(figdir / "similarity.png", history),
            "Per batch: mean cosine similarity of each anchor to its positive (green line) and to the most similar "
            "other positive in the batch (red line). The band between them is green where the positive is above "
            "(the gap training should open), red where the hardest negative is above (inverted).",
        ),
        (
            "Collapse watch",
            collapse_figure(figdir / "collapse.png", history, threshold, relative),
            f"Spread (0 = every input gives one embedding, 1 = spread over the sphere; warning below {threshold:g} "
            f"or below {relative:g} × its first value), alignment (distance of positive pairs; random pairs give 2) "
            "and uniformity (0 = collapsed) of each logged batch, on fixed axes. Bands are green only where the "
            "value is on the healthy side of its dashed level, red where not.",
        ),
    ]
