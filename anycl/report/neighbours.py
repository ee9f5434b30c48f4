"""The report's "Nearest neighbours" section: each query item and its top hits before and after training, shown
the way their adapter previews them (:meth:`~adapters.base.Adapter.preview`): text as text, images as
thumbnails, clips as playable excerpts, all embedded in the page as data URIs (no outside files, no scripts).
Each hit is marked: ✓ the query's own document, "same label" (green) or "other label" (red) where labels are
known."""

from __future__ import annotations

import base64
import html
import logging
from typing import Any, Dict, List, Optional

from anycl.adapters.preview import Preview, item_name, text_preview

from .examples import RetrievalExamples

log = logging.getLogger("anycl")

TEXT_CELL = 160  # characters of a text shown in a cell


def _adapter(model, modality: Optional[str]):
    towers = getattr(model, "towers", None) or {}
    tower = towers[modality] if modality is not None and modality in towers else None
    return getattr(tower, "adapter", None)


def preview_of(adapter, item: Any) -> Preview:
    """``adapter.preview(item)``; the item's name when there is no adapter or it cannot be read."""
    if adapter is None or not hasattr(adapter, "preview"):
        return text_preview(item)
    try:
        return adapter.preview(item)
    except Exception as exc:  # an unreadable file: its name stands in, the report is still written
        log.debug("no preview of %s: %s", item_name(item), exc)
        return text_preview(item)


def preview_html(p: Preview, name: str) -> str:
    """A preview as HTML: text, an <img> thumbnail or an <audio> player (with the item's name)."""
    if p.kind in ("picture", "sound") and p.data:
        uri = f"data:{p.mime};base64,{base64.b64encode(p.data).decode('ascii')}"
        label = f"<div class=name>{html.escape(name)}</div>"
        if p.kind == "picture":
            return f'<img class=thumb alt="{html.escape(name)}" src="{uri}">{label}'
        return f'<audio controls preload="metadata" src="{uri}" title="{html.escape(name)}"></audio>{label}'
    text = p.text or name
    if len(text) > TEXT_CELL:
        text = text[: TEXT_CELL - 1] + "…"
    return f"<span class=text>{html.escape(text)}</span>"


def _mark(hit: Dict[str, Any], label: Any) -> tuple:
    """(CSS class, words) of one hit."""
    parts, cls = [], ""
    if hit.get("relevant"):
        parts.append("✓ its own")
        cls = "same"
    if hit.get("same_label") is True:
        parts.append(f"same label ({html.escape(str(label))})")
        cls = "same"
    elif hit.get("same_label") is False:
        parts.append(f"other label ({html.escape(str(label))})")
        cls = cls or "other"
    return cls, " · ".join(parts)


def neighbours_html(examples: Optional[RetrievalExamples], model) -> str:
    """The section, or an empty string when there are no hits."""
    if examples is None or not examples.hits:
        return ""
    stages = [x for x in ("before", "after") if x in examples.hits]
    qm, cm = examples.modalities(model)
    qa, ca = _adapter(model, qm), _adapter(model, cm)
    shown: Dict[int, str] = {}

    def corpus_item(j: int) -> str:
        if j not in shown:
            item = examples.corpus[j]
            shown[j] = preview_html(preview_of(ca, item), item_name(item))
        return shown[j]

    origin = f" from the {examples.origin}" if getattr(examples, "origin", "") else ""
    marks = []
    if examples.has_pairs:
        marks.append("✓ marks the query's own document")
    if examples.labelled:
        what = "class folder" if examples.label_source == "folder" else "label"
        marks.append(f"green: a neighbour of the query's {what}, red: of another")
    if any(o is not None for o in examples.own):
        marks.append("a query is never its own neighbour")
    parts: List[str] = [
        "<h2 id=neighbours>Nearest neighbours</h2>",
        f"<p class=note>{len(examples.queries)} query items{origin} and their top {examples.k} of "
        f"{len(examples.corpus)} items by cosine similarity (the score), before and after training"
        + (f"; {'; '.join(marks)}" if marks else "")
        + ".</p>",
    ]
    ranks = max(len(examples.hits[x][i]) for x in stages for i in range(len(examples.queries)))
    parts.append(
        "<table class=hits><tr><th>query</th><th></th>" + "".join(f"<th>{r + 1}</th>" for r in range(ranks)) + "</tr>"
    )
    for i, q in enumerate(examples.queries):
        qlabel = examples.query_labels[i] if examples.query_labels is not None else None
        said = f"<div class=score>label: {html.escape(str(qlabel))}</div>" if qlabel is not None else ""
        head = (
            f"<td rowspan={len(stages)} class=q><b>{i + 1}</b>"
            f"<div>{preview_html(preview_of(qa, q), item_name(q))}</div>{said}</td>"
        )
        for n, x in enumerate(stages):
            hits = examples.hits[x][i]
            cells = []
            for r in range(ranks):
                if r >= len(hits):
                    cells.append("<td></td>")
                    continue
                h = hits[r]
                label = examples.corpus_labels[h["index"]] if examples.corpus_labels is not None else None
                cls, words = _mark(h, label)
                cells.append(
                    f"<td class='hit {cls}'>{corpus_item(h['index'])}<div><span class=score>{h['score']:.3f}</span>"
                    + (f" <span class=mark>{words}</span>" if words else "")
                    + "</div></td>"
                )
            parts.append(f"<tr>{head if n == 0 else ''}<th class=stage>{x} training</th>{''.join(cells)}</tr>")
    parts.append("</table>")
    return "\n".join(parts)
