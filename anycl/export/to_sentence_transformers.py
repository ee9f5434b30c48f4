"""A text tower as a sentence-transformers model folder: ``SentenceTransformer(path)`` then gives the same
embeddings as ``model.encode`` (after L2 normalisation, which ``encode`` applies)."""

from __future__ import annotations

import copy
import os
from typing import Any, Optional

from anycl.errors import ConfigError
from anycl.files import check_export_folder
from anycl.progress import quiet_library_bars

from .card import write_card  # our card, not the upstream model's
from .registry import register

FORMAT = "sentence-transformers"


def merged_copy(module: Any) -> Any:
    """A copy of ``module`` with every LoRA layer (peft's, injected in place) folded into its base layer: what
    a plain sentence-transformers folder can hold, with the same outputs. The model itself keeps its adapter."""
    out = copy.deepcopy(module)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if hasattr(child, "lora_A") and hasattr(child, "get_base_layer"):  # peft.tuners.lora.LoraLayer
                child.merge()
                setattr(parent, name, child.get_base_layer())
    return out


@register(FORMAT)
def export_sentence_transformers(model, path: str, modality: Optional[str] = None, overwrite: bool = False) -> str:
    """Write a text tower of an anycl model as a sentence-transformers model folder; returns ``path``.

    A folder that is not empty is refused unless ``overwrite=True`` (then files of the same names, e.g. a
    ``README.md`` or ``config.json``, are replaced and the others kept).

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
    check_export_folder(path, overwrite, "the sentence-transformers export")
    st: Any = tower.encoder.st  # a text tower's encoder is a SentenceTransformerEncoder (attach checks it)
    if getattr(tower, "lora", None) is not None:  # an unmerged LoRA adapter: the export holds it merged
        st = merged_copy(st)
    st.similarity_fn_name = model.similarity_fn_name  # what SentenceTransformer(path).similarity computes
    os.makedirs(path, exist_ok=True)
    with quiet_library_bars():
        st.save(str(path), safe_serialization=True)
    write_card(model, str(path), FORMAT, tower.modality)
    return str(path)
