"""The training report: PNG figures and one self-contained HTML page, written at the end of ``fit``.

``write_report(output_dir, model, trainer, rows, config)`` writes into ``output_dir``:

- ``report/loss.png`` — training loss over steps (plus any extra terms a loss returns, in ``terms.png``);
- ``report/lr.png`` — the learning rate over steps;
- ``report/eval.png`` — evaluation metrics over steps (when ``eval_dataset`` was given);
- ``report/collapse.png`` — collapse-watch measures (:mod:`anycl.collapse`: embedding std and spread,
  alignment, uniformity), one panel each, when the collapse watch ran (on by default in ``fit``);
- ``report/embeddings.png`` — a 2-D map (PCA, or t-SNE) of the embeddings of a sample of training items,
  coloured by label when the data has labels (else anchors and positives in two colours);
- ``report.html`` — all of the above inlined (base64), with the run's config and final metrics.

Each figure is ``FIGSIZE`` inches at ``DPI`` (800 × 450 pixels). Matplotlib runs on the Agg backend
(no display needed). While training runs, the same curves are in TensorBoard
(``tensorboard --logdir <output_dir>/logs``).
"""
from __future__ import annotations

import base64
import html
import logging
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

log = logging.getLogger("anycl")

FIGSIZE = (8.0, 4.5)
DPI = 100
REPORT_HTML = "report.html"
FIGURE_DIR = "report"
BASE_KEYS = ("step", "loss", "lr", "items_per_s", "epoch")
COLLAPSE = re.compile(r"(collapse|std|spread|align|uniform|rank)", re.I)


class StepRecorder:
    """Callback that keeps every optimiser step's logged values (``fit`` adds one when it has an
    ``output_dir``), so the report's curves have a point per step whatever ``log_every`` is. The loss at a
    step is the mean over the steps since the last logged one, as in the progress bar."""

    def __init__(self):
        self.records: List[Dict[str, Any]] = []

    def on_step_end(self, trainer, step: int, logs: Mapping[str, Any]) -> None:
        self.records.append({"step": step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})


def _curves(trainer) -> List[Dict[str, Any]]:
    """Per-step records when a StepRecorder ran (else the trainer's logged history), merged with the
    trainer's history and the collapse watch's measures (as ``collapse/<name>``), each at its step."""
    from .collapse import CollapseWatch

    callbacks = list(getattr(trainer, "callbacks", []) or [])
    history = list(getattr(trainer, "history", []) or [])
    steps = next((cb.records for cb in callbacks if isinstance(cb, StepRecorder)), None)
    merged: Dict[int, Dict[str, Any]] = {r["step"]: dict(r) for r in (steps or history) if "step" in r}
    extra = [h for h in history if "step" in h] if steps else []
    for cb in callbacks:
        if isinstance(cb, CollapseWatch):
            extra += [{"step": h["step"], **{f"collapse/{k}": v for k, v in h.items() if k != "step"}}
                      for h in cb.history if "step" in h]
    for h in extra:
        row = merged.setdefault(h["step"], {"step": h["step"]})
        row.update({k: v for k, v in h.items() if k not in row})
    return [merged[k] for k in sorted(merged)]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _series(history: Sequence[Mapping[str, Any]], key: str):
    pts = [(h["step"], h[key]) for h in history if isinstance(h.get(key), (int, float)) and "step" in h]
    return [p[0] for p in pts], [p[1] for p in pts]


def _line_figure(path: Path, history: Sequence[Mapping[str, Any]], keys: Sequence[str], title: str, ylabel: str,
                 log_y: bool = False) -> Optional[Path]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    drawn = 0
    for k in keys:
        xs, ys = _series(history, k)
        if not xs:
            continue
        ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3, label=k)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if drawn > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _panel_figure(path: Path, history: Sequence[Mapping[str, Any]], keys: Sequence[str], title: str) -> Optional[Path]:
    """One small panel per measure (their scales differ), in a grid of up to 2 columns."""
    keys = [k for k in keys if _series(history, k)[0]]
    if not keys:
        return None
    plt = _plt()
    cols = 1 if len(keys) == 1 else 2
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=FIGSIZE, dpi=DPI, squeeze=False)
    for ax, k in zip(axes.flat, keys):
        xs, ys = _series(history, k)
        ax.plot(xs, ys, marker="o" if len(xs) < 20 else None, markersize=3)
        ax.set_title(k, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _sample_rows(rows, n: int, seed: int) -> List[dict]:
    if rows is None:
        return []
    if rows.streaming:
        out = []
        for r in rows:
            out.append(r)
            if len(out) >= n:
                break
        return out
    idx = list(range(len(rows)))
    if len(idx) > n:
        idx = sorted(random.Random(seed).sample(idx, n))
    return [rows[i] for i in idx]


def project_2d(emb, method: str = "pca", seed: int = 0):
    """(N, D) embeddings → (N, 2) with scikit-learn's PCA or t-SNE."""
    import numpy as np

    x = np.asarray(emb, dtype=np.float64)
    if x.shape[0] < 3:
        return np.zeros((x.shape[0], 2))
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(30.0, (x.shape[0] - 1) / 3), init="pca",
                    random_state=seed).fit_transform(x)
    if method != "pca":
        from .errors import ConfigError

        raise ConfigError(f"the embedding map's method must be 'pca' or 'tsne', got {method!r}")
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x)


def embedding_map(path: Path, model, rows, sample: int = 500, method: str = "pca", seed: int = 0) -> Optional[Path]:
    """Draw the 2-D map of a sample of ``rows`` embedded by ``model``; None when there is nothing to draw."""
    picked = _sample_rows(rows, sample, seed)
    if len(picked) < 3:
        return None
    plt = _plt()
    anchors = [r["anchor"] for r in picked]
    emb = model.encode(anchors, modality=model.sides.get("anchor"))
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    if "label" in picked[0]:
        labels = [r["label"] for r in picked]
        xy = project_2d(emb, method, seed)
        names = sorted(set(labels), key=repr)
        cmap = plt.get_cmap("tab10" if len(names) <= 10 else "viridis")
        for i, name in enumerate(names):
            sel = [j for j, y in enumerate(labels) if y == name]
            colour = cmap(i if len(names) <= 10 else i / max(1, len(names) - 1))
            ax.scatter(xy[sel, 0], xy[sel, 1], s=12, color=colour, label=str(name) if len(names) <= 10 else None)
        if len(names) <= 10:
            ax.legend(fontsize=8, title="label", loc="best")
        title = f"{len(picked)} items coloured by label ({len(names)} labels)"
    elif "positive" in picked[0]:
        import torch

        pos = model.encode([r["positive"] for r in picked], modality=model.sides.get("positive"))
        xy = project_2d(torch.cat([emb, pos]), method, seed)
        n = len(picked)
        for j in range(n):
            ax.plot([xy[j, 0], xy[n + j, 0]], [xy[j, 1], xy[n + j, 1]], color="0.8", linewidth=0.5, zorder=1)
        ax.scatter(xy[:n, 0], xy[:n, 1], s=12, color="tab:blue", label="anchor", zorder=2)
        ax.scatter(xy[n:, 0], xy[n:, 1], s=12, color="tab:orange", label="positive", zorder=2)
        ax.legend(fontsize=8)
        title = f"{n} pairs: anchors and their positives (grey lines join a pair)"
    else:
        xy = project_2d(emb, method, seed)
        ax.scatter(xy[:, 0], xy[:, 1], s=12, color="tab:blue")
        title = f"{len(picked)} items"
    ax.set_title(f"Embeddings, {method.upper()}: {title}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _table(metrics: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{v:.4f}</td></tr>" if isinstance(v, float)
        else f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in metrics.items())
    return f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>"


_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
        "figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:.9em}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}")


def render_html(figures: Mapping[str, Path], config: Optional[Mapping[str, Any]], summary: Mapping[str, Any],
                final_metrics: Optional[Mapping[str, Any]]) -> str:
    """One HTML page, images inlined, no scripts and no outside references."""
    from .config import config_file_text

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<link rel="icon" href="data:,">', "<title>anycl training report</title>",
             f"<style>{_CSS}</style></head><body>", "<h1>anycl training report</h1>"]
    parts.append("<ul>" + "".join(f"<li><b>{html.escape(k)}:</b> {html.escape(str(v))}</li>"
                                  for k, v in summary.items()) + "</ul>")
    if final_metrics:
        parts += ["<h2>Final metrics</h2>", _table({k: v for k, v in final_metrics.items() if k != "step"})]
    parts.append("<h2>Figures</h2>")
    for caption, path in figures.items():
        parts.append(_img(path, caption))
    if config:
        parts += ["<h2>Config</h2>", f"<pre>{html.escape(config_file_text(config))}</pre>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(output_dir: str, model=None, trainer=None, rows=None, config: Optional[Mapping[str, Any]] = None,
                 sample: int = 500, method: str = "pca", seed: int = 0) -> Path:
    """Write the figures and ``report.html`` into ``output_dir``; returns the HTML page's path.

    Args:
        output_dir: the run's folder. model: the trained model (for the embedding map).
        trainer: the :class:`~anycl.training.Trainer` (its ``history`` and ``eval_history``).
        rows: the training :class:`~anycl.data.Rows` (a sample is embedded for the map).
        config: the run's resolved config (shown on the page).
        sample: items in the embedding map. method: ``"pca"`` or ``"tsne"``.
    """
    out = Path(output_dir)
    figdir = out / FIGURE_DIR
    figdir.mkdir(parents=True, exist_ok=True)
    history = _curves(trainer)
    eval_history = list(getattr(trainer, "eval_history", []) or [])
    keys = sorted({k for h in history for k, v in h.items() if isinstance(v, (int, float))} - set(BASE_KEYS))
    collapse = [k for k in keys if COLLAPSE.search(k)]
    terms = [k for k in keys if k not in collapse]
    metrics = sorted({k for h in eval_history for k, v in h.items() if k != "step" and isinstance(v, (int, float))})
    figures: Dict[str, Path] = {}
    made = [
        ("training loss", _line_figure(figdir / "loss.png", history, ["loss"], "Training loss", "loss")),
        ("loss terms", _line_figure(figdir / "terms.png", history, terms, "Loss terms", "value") if terms else None),
        ("learning rate", _line_figure(figdir / "lr.png", history, ["lr"], "Learning rate", "lr")),
        ("evaluation metrics", _line_figure(figdir / "eval.png", eval_history, metrics, "Evaluation", "metric")
         if metrics else None),
        ("collapse watch", _panel_figure(figdir / "collapse.png", history, collapse,
                                         "Collapse watch (anycl.collapse: embedding spread, alignment, uniformity)")
         if collapse else None),
    ]
    if model is not None and rows is not None:
        try:
            made.append(("embedding map", embedding_map(figdir / "embeddings.png", model, rows, sample, method, seed)))
        except Exception as exc:  # the map is a picture; never lose a trained run over it
            log.warning("the embedding map could not be drawn: %s", exc)
    for caption, path in made:
        if path is not None:
            figures[caption] = path
    info = dict(getattr(model, "info", {}) or {}) if model is not None else {}
    summary = {}
    if config and config.get("dataset"):
        summary["data"] = config["dataset"]
    for k, label in (("train_rows", "training rows"), ("steps", "steps"), ("loss", "loss")):
        if info.get(k) is not None:
            summary[label] = info[k]
    if history:
        summary["final training loss"] = f"{history[-1]['loss']:.4f}"
    summary["TensorBoard"] = f"tensorboard --logdir {out / 'logs'}"
    page = out / REPORT_HTML
    page.write_text(render_html(figures, config, summary, eval_history[-1] if eval_history else None))
    return page
