"""A text tower as a sentence-transformers model folder: ``SentenceTransformer(path)`` then gives the same
embeddings as ``model.encode`` (after L2 normalisation, which ``encode`` applies)."""

from __future__ import annotations

import os
from typing import Any, Optional

from anycl.errors import ConfigError
from anycl.progress import quiet_library_bars

from .card import write_card  # our card, not the upstream model's
from .registry import register

FORMAT = "sentence-transformers"


@register(FORMAT)
def export_sentence_transformers(model, path: str, modality: Optional[str] = None) -> str:
    """Write a text tower of an anycl model as a sentence-transformers model folder; returns ``path``.

    The folder an anycl ``model.save(out)`` writes already holds this format under ``out/towers/text``. A
    tower whose adapter does not list the format in its ``export_formats``, or whose ``encode`` uses a
    projection head (which the format cannot hold), is refused.
    """
    tower = model.tower(modality or model.sides.get("anchor", "text"))
    if FORMAT not in getattr(tower.adapter, "export_formats", ()):
        raise ConfigError(
            f"the {tower.modality!r} tower is not a sentence-transformers model; only text towers export to that "
            f"format (an adapter lists it in export_formats)"
        )
    if tower.head is not None and tower.encode_with_head:
        raise ConfigError(
            "this text tower encodes through a projection head, which the sentence-transformers "
            "format does not hold; train with head=None to export"
        )
    st: Any = tower.encoder.st  # a text tower's encoder is a SentenceTransformerEncoder (attach checks it)
    os.makedirs(path, exist_ok=True)
    with quiet_library_bars():
        st.save(str(path), safe_serialization=True)
    write_card(model, str(path), FORMAT, tower.modality)
    return str(path)
