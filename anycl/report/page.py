"""The report's HTML page: one self-contained file (figures, thumbnails and sound inlined as data URIs, no
scripts, no outside references), in the order a reader asks: Health (is it working?), the summary, the
evaluation table, the nearest neighbours (which items are close?), the curves, the embedding map and its table,
the config."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from anycl.options.run_config import config_file_text

from .health import BAD, OK, UNKNOWN, WARN, Verdict, headline

_CSS = (
    "body{font-family:sans-serif;max-width:64em;margin:2em auto;padding:0 1em;color:#222}"
    "figure{margin:0 0 1.5em 0}figure img{max-width:100%;border:1px solid #ddd}"
    "figcaption{color:#555;font-size:.9em}h3{margin:1.2em 0 .3em 0;font-size:1em}.note{color:#555}"
    ".score{color:#888;font-size:.85em}pre{background:#f6f6f6;padding:1em;overflow:auto}"
    "table{border-collapse:collapse;margin:.3em 0 1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;"
    "text-align:left;vertical-align:top}"
    ".health{border:1px solid #ccc;padding:.2em 1em .6em 1em;margin:1em 0}.health ul{list-style:none;padding:0}"
    ".health li{margin:.3em 0;padding:.3em .6em;border-left:.4em solid #bbb;background:#f4f4f4}"
    ".health li.ok{border-color:#2a8a2a;background:#eaf6ea}.health li.bad{border-color:#c62828;background:#fdeaea}"
    ".health li.warn{border-color:#d08a00;background:#fff5e0}.headline{font-weight:bold}"
    ".thumb{max-width:96px;max-height:96px;image-rendering:pixelated;border:1px solid #ddd}"
    ".name{font-size:.8em;color:#555;word-break:break-all}audio{width:12em;display:block}"
    "td.same{background:#eaf6ea}td.other{background:#fdeaea}.mark{font-size:.85em}"
    ".hits td{max-width:16em}.hits td.q{background:#f6f6f6;border-top:2px solid #888}"
    ".hits th.stage{font-weight:normal;color:#555;font-size:.85em}details{margin:.5em 0 1.5em 0}"
)

_SIGN = {OK: "✓", BAD: "✗", WARN: "!", UNKNOWN: "?"}


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))


def metrics_table(final: Mapping[str, Any], baseline: Optional[Mapping[str, Any]]) -> str:
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


def health_html(found: Sequence[Verdict]) -> str:
    """The Health section: a headline and one line per rule, green only where the rule holds."""
    if not found:
        return ""
    items = "".join(
        f"<li class={v.status}><b>{_SIGN.get(v.status, '?')} {html.escape(v.rule)}</b>: {html.escape(v.text)}</li>"
        for v in found
    )
    return (
        "<section class=health id=health><h2>Health</h2>"
        f"<p class=headline>{html.escape(headline(found))}</p><ul>{items}</ul>"
        "<p class=note>Green: the rule holds; red: it does not; amber: read with care (too few steps to judge, or "
        "an inverted gap while classes gather); grey: nothing to judge it by. The rules and their thresholds are in "
        "docs/cli.md (“The training report”).</p></section>"
    )


def map_table_html(table: Sequence[tuple]) -> str:
    """The embedding map's items, folded: name, label and coordinates, to find an item on the map."""
    if not table:
        return ""
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{html.escape(name)}</td><td>{html.escape(label)}</td>"
        f"<td>{x:.2f}</td><td>{y:.2f}</td></tr>"
        for i, (name, label, x, y) in enumerate(table)
    )
    return (
        f"<details><summary>Find an item on the map: the {len(table)} items, their labels and coordinates"
        "</summary><table><tr><th>#</th><th>item</th><th>label</th><th>x</th><th>y</th></tr>"
        f"{rows}</table></details>"
    )


def render_html(
    figures: Sequence[tuple],
    config: Optional[Mapping[str, Any]],
    summary: Mapping[str, Any],
    final_metrics: Optional[Mapping[str, Any]],
    baseline: Optional[Mapping[str, Any]] = None,
    neighbours: str = "",
    health: Sequence[Verdict] = (),
    map_table: Sequence[tuple] = (),
) -> str:
    """One HTML page, images inlined, no scripts and no outside references.

    ``figures``: (heading, path, caption) triples; the heading names a figure once, the caption says how
    to read it; the embedding map ("Embedding map") is followed by ``map_table``. ``neighbours``: the
    neighbours section's HTML (:func:`anycl.report.neighbours.neighbours_html`). ``health``: the verdicts.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<link rel="icon" href="data:,">',
        "<title>anycl training report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>anycl training report</h1>",
        health_html(health),
    ]
    parts.append(
        "<ul>"
        + "".join(f"<li><b>{html.escape(k)}:</b> {html.escape(str(v))}</li>" for k, v in summary.items())
        + "</ul>"
    )
    if final_metrics:
        parts += ["<h2>Evaluation</h2>", metrics_table(final_metrics, baseline)]
    parts.append(neighbours)
    parts.append("<h2>Training curves</h2>")
    for heading, path, caption in figures:
        parts.append(
            f"<h3>{html.escape(heading)}</h3><figure>{_img(path, heading)}"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        if heading == "Embedding map":
            parts.append(map_table_html(map_table))
    if config:
        parts += ["<h2>Config</h2>", f"<pre>{html.escape(config_file_text(config))}</pre>"]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
