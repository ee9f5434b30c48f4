"""The "Load it" section of a model card: code that loads the folder (or Hub repository) with anycl,
sentence-transformers or ONNX Runtime, and what to know first (an unmerged LoRA adapter, a projection head that
sentence-transformers does not apply)."""

from __future__ import annotations

from typing import List, Optional

ST = "sentence-transformers"  # the format (anycl.export.to_sentence_transformers); adapters list it in export_formats


def _st_towers(model) -> List[str]:
    """The towers that are sentence-transformers models (their adapter lists the format)."""
    return [n for n, t in model.towers.items() if ST in getattr(t.adapter, "export_formats", ())]


def _unmerged_lora(model, name: Optional[str]) -> bool:
    """Whether the tower ``name`` is saved with its LoRA adapter apart (anycl.model.lora, ``merge=False``)."""
    return name in model.towers and getattr(model.towers[name], "lora", None) is not None


_ADAPTER_NOTE = (
    "This folder holds the *base* weights; the trained LoRA adapter is the PEFT adapter folder `lora/` inside "
    "it. Without `load_adapter` you get the base model's embeddings, not the trained ones."
)


def load_code(model, folder: str, kind: str, modality: Optional[str], adapter_apart: bool = False) -> List[str]:
    """The card's "Load it" section: how to load ``folder`` (a path or Hub id) of ``kind`` with its library."""
    if kind == "sentence-transformers":
        lora = adapter_apart and _unmerged_lora(model, modality)
        return [
            *([_ADAPTER_NOTE, ""] if lora else []),
            "```python",
            "from sentence_transformers import SentenceTransformer",
            "",
            f'model = SentenceTransformer("{folder}")',
            *([f'model.load_adapter("{folder}/lora")'] if lora else []),
            'emb = model.encode(["a sentence"])',
            "```",
            "",
        ]
    if kind == "onnx":
        return [
            "Run with ONNX Runtime; `anycl_onnx.json` names the inputs (what anycl's adapter collates; for "
            "text the tokenizer files are in this folder) and says whether the output is L2-normalised:",
            "",
            "```python",
            "import onnxruntime as ort",
            "",
            f'session = ort.InferenceSession("{folder}/model.onnx")',
            "emb = session.run(None, inputs)[0]   # inputs: {name: numpy array}",
            "```",
            "",
        ]
    out = [
        "```python",
        "import anycl",
        "",
        f'model = anycl.load("{folder}")',
        f"emb = model.encode([...])   # (N, D), L2-normalised; modality= picks a tower: {model.modalities}",
        "```",
        "",
    ]
    for name in _st_towers(model)[:1]:
        tower = model.towers[name]
        out += [
            f"With sentence-transformers (the {name} tower is a sentence-transformers folder):",
            "",
            "```python",
            "from sentence_transformers import SentenceTransformer",
            "",
            f'st = SentenceTransformer("{folder}/towers/{name}")',
            *(
                [f'st.load_adapter("{folder}/towers/{name}/lora")  # the LoRA adapter, saved unmerged']
                if _unmerged_lora(model, name)
                else []
            ),
            "```",
            "",
        ]
        if tower.head is not None and tower.encode_with_head:
            out += [
                "sentence-transformers loads the encoder without anycl's projection head, so its embeddings "
                "differ from `model.encode`.",
                "",
            ]
    return out
