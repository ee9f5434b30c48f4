"""The model card: a README.md written into every saved model folder, and the run's ``config.yaml``.

The card says what the model was trained on, with which config, its final metrics, and how to load it
(with anycl, and for a text tower with sentence-transformers: ``<folder>/towers/text`` is a
sentence-transformers model folder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

CARD_FILE = "README.md"


def _metrics_table(metrics: Optional[Mapping[str, Any]]) -> str:
    if not metrics:
        return "No evaluation ran during training (pass `eval_dataset` to `fit`, or run `anycl eval`).\n"
    step = metrics.get("step")
    lines = [f"At step {step}:\n" if step is not None else "", "| metric | value |", "|---|---|"]
    for k, v in metrics.items():
        if k == "step":
            continue
        lines.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
    return "\n".join(lines) + "\n"


def model_card(model, folder: str) -> str:
    """The README.md text for ``model`` saved at ``folder``."""
    from . import __version__
    from .config import config_file_text

    info: Dict[str, Any] = dict(getattr(model, "info", {}) or {})
    cfg = info.get("config") or {}
    modalities = model.modalities
    kind = " + ".join(modalities)
    dataset = cfg.get("dataset")
    if dataset is None and cfg:
        dataset = "an in-memory dataset given from Python"
    trained = []
    if dataset:
        trained.append(f"**Data:** `{dataset}`" + (f" ({info['train_rows']} rows)" if info.get("train_rows") else ""))
    if info.get("loss"):
        trained.append(f"**Loss:** `{info['loss']}`" + (f" with {info['loss_options']}" if info.get("loss_options") else ""))
    if info.get("steps") is not None:
        trained.append(f"**Steps:** {info['steps']}")
    sides = ", ".join(f"{s} → {m}" for s, m in model.sides.items())
    out = [f"# anycl model ({kind})", "",
           f"A contrastive encoder saved by anycl {__version__}. Sides: {sides}.", ""]
    if trained:
        out += ["## Training", ""] + [t + "  " for t in trained] + [""]
    else:
        out += ["## Training", "", "This model was not trained by `anycl.fit` (no training record).", ""]
    out += ["## Final metrics", "", _metrics_table(info.get("final_metrics")), "## Load it", "", "```python",
            "import anycl", "", f'model = anycl.load("{folder}")',
            f"emb = model.encode([...])          # (N, D), L2-normalised; modality= picks a tower: {modalities}",
            "```", ""]
    if "text" in modalities:
        tower = model.towers["text"]
        note = ""
        if tower.head is not None and tower.encode_with_head:
            note = ("\nNote: sentence-transformers loads the encoder without anycl's projection head, so its "
                    "embeddings differ from `model.encode`.\n")
        out += ["With sentence-transformers (the text tower is a sentence-transformers model folder):", "",
                "```python", "from sentence_transformers import SentenceTransformer", "",
                f'st = SentenceTransformer("{folder}/towers/text")', 'emb = st.encode(["a sentence"])', "```", note]
    if cfg:
        out += ["## Config", "", "Repeat the run with `anycl fit --config "
                f"{folder}/config.yaml --output-dir <new folder>`:", "", "```yaml",
                config_file_text(cfg).rstrip(), "```", ""]
    return "\n".join(out)


def write_model_files(model, directory: str, folder: Optional[str] = None) -> None:
    """Write README.md (and config.yaml when the model has a run config) into ``directory``.

    ``folder`` is the path users will load from, shown in the card (default: ``directory``).
    """
    from .config import CONFIG_FILE, config_file_text

    d = Path(directory)
    cfg = (getattr(model, "info", {}) or {}).get("config")
    if cfg:
        (d / CONFIG_FILE).write_text(config_file_text(cfg))
    (d / CARD_FILE).write_text(model_card(model, folder or str(directory)))
