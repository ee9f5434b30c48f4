"""The training report: PNG figures and one self-contained HTML page, written at the end of ``fit``.

``write_report(output_dir, model, trainer, rows, config)`` writes into ``output_dir``:

- ``report/loss.png`` — training loss over steps (plus any extra terms a loss returns, in ``terms.png``);
- ``report/lr.png`` — the learning rate over steps;
- ``report/eval.png`` — each evaluation metric over steps, from the evaluation before training (step 0,
  the baseline, marked) to the last (when ``eval_dataset`` was given);
- ``report/similarity.png`` — mean cosine similarity of anchors to their positives and to their hardest
  in-batch negatives over training (the gap contrastive learning opens);
- ``report/collapse.png`` — the collapse watch (:mod:`anycl.training.collapse`): spread, alignment, uniformity on
  fixed axes, healthy ranges shaded, the warning threshold drawn;
- ``report/embeddings.png`` — with labels, a 2-D map (PCA, or t-SNE) of a sample of training items
  coloured by label; with pairs, a histogram of positive-pair vs random-pair similarities;
- retrieval examples (text pairs): a few queries with their top hits before and after training;
- ``report/data.json`` — every plotted point (the same steps TensorBoard got);
- ``report.html`` — all of the above inlined (base64), with the run's config and final metrics.

Every logged step goes to the trackers (TensorBoard) and the report alike: ``log_every`` (default about
100 points per run) sets both.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from anycl.options.run_config import config_file_text
from anycl.training.collapse import CollapseWatch

from .figures import (
    DPI,
    FIGSIZE,
    _plt,
    _save,
    collapse_figure,
    eval_figure,
    label_map,
    line_figure,
    pair_histogram,
    project_2d,
    sample_rows,
    similarity_figure,
)

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


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))


def _metrics_table(final: Mapping[str, Any], baseline: Optional[Mapping[str, Any]]) -> str:
    keys = [k for k in final if k != "step"]
    if baseline:
        head = "<tr><th>metric</th><th>before training</th><th>after</th><th>change</th></tr>"
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_fmt(baseline.get(k, '–'))}</td><td>{_fmt(final[k])}</td><td>"
            + (
                f"{final[k] - baseline[k]:+.4f}"
                if isinstance(baseline.get(k), (int, float)) and isinstance(final[k], (int, float))
                else "–"
            )
            + "</td></tr>"
            for k in keys
        )
    else:
        head = "<tr><th>metric</th><th>value</th></tr>"
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(final[k])}</td></tr>" for k in keys)
    return f"<table>{head}{rows}</table>"


def _examples_html(examples) -> str:
    if examples is None or not examples.hits:
        return ""
    labels = [x for x in ("before", "after") if x in examples.hits]
    parts = [
        "<h2>Retrieval examples</h2>",
        f"<p class=note>Top {examples.k} of {len(examples.corpus)} documents for {len(examples.queries)} "
        "queries, with the cosine score; ✓ marks the query's own document.</p>",
    ]
    for i, q in enumerate(examples.queries):
        parts.append(
            f"<h3>“{html.escape(q[:200])}”</h3><table><tr><th>rank</th>"
            + "".join(f"<th>{x} training</th>" for x in labels)
            + "</tr>"
        )
        for r in range(len(examples.hits[labels[0]][i])):
            cells = []
            for x in labels:
                h = examples.hits[x][i][r]
                mark = "✓ " if h["relevant"] else ""
                cells.append(f"<td>{mark}{html.escape(h['text'][:160])} <span class=score>{h['score']:.3f}</span></td>")
            parts.append(f"<tr><td>{r + 1}</td>{''.join(cells)}</tr>")
        parts.append("</table>")
    return "\n".join(parts)


_CSS = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
    "figure{margin:0 0 1.5em 0}img{max-width:100%;border:1px solid #ddd}"
    "figcaption{color:#555;font-size:.9em}h3{margin:1.2em 0 .3em 0;font-size:1em}.note{color:#555}"
    ".score{color:#888;font-size:.85em}pre{background:#f6f6f6;padding:1em;overflow:auto}"
    "table{border-collapse:collapse;margin:.3em 0 1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;"
    "text-align:left;vertical-align:top}"
)


def render_html(
    figures: Sequence[tuple],
    config: Optional[Mapping[str, Any]],
    summary: Mapping[str, Any],
    final_metrics: Optional[Mapping[str, Any]],
    baseline: Optional[Mapping[str, Any]] = None,
    examples=None,
) -> str:
    """One HTML page, images inlined, no scripts and no outside references.

    ``figures``: (heading, path, caption) triples; the heading names a figure once, the caption says how
    to read it.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',
        "<title>anycl training report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>anycl training report</h1>",
    ]
    parts.append(
        "<ul>"
        + "".join(f"<li><b>{html.escape(k)}:</b> {html.escape(str(v))}</li>" for k, v in summary.items())
        + "</ul>"
    )
    if final_metrics:
        parts += ["<h2>Evaluation</h2>", _metrics_table(final_metrics, baseline)]
    parts.append("<h2>Training curves</h2>")
    for heading, path, caption in figures:
        parts.append(
            f"<h3>{html.escape(heading)}</h3><figure>{_img(path, heading)}"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts.append(_examples_html(examples))
    if config:
        parts += ["<h2>Config</h2>", f"<pre>{html.escape(config_file_text(config))}</pre>"]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _embedding_figure(path: Path, model, rows, sample: int, method: str, seed: int) -> Optional[tuple]:
    picked = sample_rows(rows, sample, seed)
    if len(picked) < 3:
        return None
    if "label" in picked[0]:
        info = label_map(path, model, picked, method, seed)
        return (
            "Embedding map",
            path,
            f"{info['items']} training items, {method.upper()} of their embeddings, coloured by label "
            f"({info['labels']} labels): items of one label should gather.",
        )
    if "positive" in picked[0]:
        info = pair_histogram(path, model, picked, seed)
        return (
            "Positive vs random pairs",
            path,
            f"Cosine similarity of {info['pairs']} training anchors to their own positive (green) and to "
            f"another row's positive (grey), with the final model. Separated humps mean positives are "
            f"found; a random pair scores at least as high as a positive pair "
            f"{100 * info['random_above_positive']:.1f} % of the time.",
        )

    emb = model.encode([r["anchor"] for r in picked], modality=model.sides.get("anchor"))
    xy = project_2d(emb, method, seed)

    plt = _plt()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    ax.scatter(np.asarray(xy)[:, 0], np.asarray(xy)[:, 1], s=12, color="tab:blue")
    ax.set_xticks([])
    ax.set_yticks([])
    _save(fig, path)
    return ("Embedding map", path, f"{len(picked)} training items, {method.upper()} of their embeddings.")


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
        output_dir: the run's folder. model: the trained model (embedding map, retrieval examples).
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
    watch_keys = {k for h in getattr(watch, "history", []) for k in h} - {"step"}
    keys = sorted(
        {k for h in history for k, v in h.items() if isinstance(v, (int, float))} - set(BASE_KEYS) - watch_keys
    )
    metrics = sorted({k for h in eval_history for k, v in h.items() if k != "step" and isinstance(v, (int, float))})
    threshold = getattr(watch, "threshold", 0.1)
    relative = getattr(watch, "relative", 0.2)
    every = getattr(getattr(trainer, "args", None), "log_every", None)
    logged = (
        "logged at every step"
        if every == 1
        else f"logged every {every} steps (and at step 1)"
        if every
        else "logged steps"
    )
    made = [
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
            "Linear warm-up, then cosine decay.",
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
            "Per batch: mean cosine similarity of each anchor to its positive (green) and to the most similar "
            "other positive in the batch (red). Training should push them apart.",
        ),
        (
            "Collapse watch",
            collapse_figure(figdir / "collapse.png", history, threshold, relative),
            f"Spread (0 = every input gives one embedding, 1 = spread over the sphere; warning below {threshold:g}), "
            "alignment (distance of positive pairs; random pairs give 2) and uniformity (0 = collapsed) of each "
            "logged batch, on fixed axes; shaded bands are healthy, dashed lines the warning and reference levels.",
        ),
    ]
    if model is not None and rows is not None:
        try:
            fig = _embedding_figure(figdir / "embeddings.png", model, rows, sample, method, seed)
            if fig is not None:
                made.append(fig)
        except Exception as exc:  # a picture; never lose a trained run over it
            log.warning("the embedding figure could not be drawn: %s", exc)
    if examples is not None and model is not None:
        try:
            examples.snapshot(model, "after")
        except Exception as exc:
            log.warning("the retrieval examples could not be searched: %s", exc)
    figures = [(h, p, c) for h, p, c in made if p is not None]
    info = dict(getattr(model, "info", {}) or {}) if model is not None else {}
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
    (figdir / "data.json").write_text(
        json.dumps(
            {
                "history": history,
                "eval_history": eval_history,
                "examples": {"queries": examples.queries, "hits": examples.hits} if examples is not None else None,
            },
            indent=1,
            default=str,
        )
    )
    baseline = eval_history[0] if len(eval_history) > 1 and eval_history[0].get("step") == 0 else None
    page = out / REPORT_HTML
    page.write_text(
        render_html(figures, config, summary, eval_history[-1] if eval_history else None, baseline, examples)
    )
    return page
