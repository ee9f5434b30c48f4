"""Model cards: one writer for the anycl folder and every exported tower, and the run's ``config.yaml``.

Every card starts with Hugging Face Hub front matter (YAML between ``---`` lines): ``base_model`` (the
pretrained model training started from, as a Hub id, when there is one), ``library_name``
(``anycl`` for the anycl folder, ``sentence-transformers`` for a text tower, ``onnx`` for an ONNX export),
``pipeline_tag``, ``tags``, ``datasets`` (training and evaluation data the user named by Hub id; local
files are described in the text, not listed) and ``metrics`` (with their values under ``model-index``,
from the final evaluation). The body says what the model was trained from and on, with which command and
config, what the evaluation measured before and after training, and how to load the folder.

Kinds: ``"anycl"`` (``model.save``), ``"sentence-transformers"`` (``towers/text`` and
``export_sentence_transformers``), ``"onnx"`` (``export_onnx``). A tower folder never keeps the upstream
model's card: the card is rewritten for what was trained.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

import yaml

from anycl.adapters import ADAPTERS
from anycl.options.run_config import RUN_CONFIG_FILE, config_file_text
from anycl.version import __version__

CARD_FILE = "README.md"
DEFAULT_TEXT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
ST = "sentence-transformers"  # the format (anycl.export.to_sentence_transformers); adapters list it in export_formats
LIBRARY = {"anycl": "anycl", "sentence-transformers": "sentence-transformers", "onnx": "onnx"}
_COMMAND: List[Optional[str]] = [None]


def current_command() -> Optional[str]:
    """The command line that started the run, while :func:`command` holds it (None from Python): ``fit``
    records it in ``model.info["command"]`` and the card shows it."""
    return _COMMAND[0]


@contextmanager
def command(text: Optional[str]) -> Iterator[None]:
    """The command line that started the run (the CLI sets it), shown on cards written meanwhile."""
    old, _COMMAND[0] = _COMMAND[0], text
    try:
        yield
    finally:
        _COMMAND[0] = old


def _hub_id(name: Any) -> Optional[str]:
    """A model/dataset reference as a Hub id, or None for local paths and Python objects."""
    if not isinstance(name, str) or not name.strip():
        return None
    if os.path.exists(os.path.expanduser(name)) or name.startswith(("/", ".", "~")):
        return None
    return name if name.count("/") <= 1 else None


def base_models(model) -> Dict[str, str]:
    """{modality: the base model} as recorded by fit, else as the towers' encoders state it (Hub ids where
    known, else local paths)."""
    out = {}
    for name, tower in model.towers.items():
        spec = getattr(tower.encoder, "anycl_spec", None) or {}
        if spec.get("base_model"):
            out[name] = spec["base_model"]
    out.update((getattr(model, "info", {}) or {}).get("base_model") or {})
    return out


def _adapter(model, name: str) -> Any:
    """The adapter (or registered adapter class) of the tower ``name``; None when there is neither."""
    if name in model.towers:
        return model.towers[name].adapter
    return ADAPTERS.lookup(name) if name in ADAPTERS else None


def _st_towers(model) -> List[str]:
    """The towers that are sentence-transformers models (their adapter lists the format)."""
    return [n for n, t in model.towers.items() if ST in getattr(t.adapter, "export_formats", ())]


def _metrics(info: Mapping[str, Any]) -> Dict[str, float]:
    m = info.get("final_metrics") or {}
    return {k: float(v) for k, v in m.items() if k != "step" and isinstance(v, (int, float))}


def front_matter(model, kind: str = "anycl", modality: Optional[str] = None) -> Dict[str, Any]:
    """The card's YAML front matter as a dict."""
    info: Dict[str, Any] = dict(getattr(model, "info", {}) or {})
    cfg = info.get("config") or {}
    mods = [modality] if modality else list(model.modalities)
    fm: Dict[str, Any] = {}
    bases = [b for m in mods for b in [_hub_id(base_models(model).get(m))] if b]
    if bases:
        fm["base_model"] = bases[0] if len(bases) == 1 else bases
    fm["library_name"] = LIBRARY[kind]
    first = _adapter(model, mods[0])
    fm["pipeline_tag"] = getattr(first, "pipeline_tag", "feature-extraction")
    tags = ["anycl", "contrastive-learning"] + [model.towers[m].modality for m in mods if m in model.towers]
    if kind == ST or (ST in getattr(first, "export_formats", ()) and kind != "onnx"):
        tags += ["sentence-transformers", "sentence-similarity", "feature-extraction"]
    if kind == "onnx":
        tags.append("onnx")
    if info.get("peft"):
        tags.append("lora")
    if info.get("loss"):
        tags.append(f"loss:{info['loss']}")
    fm["tags"] = list(dict.fromkeys(tags))
    datasets = [d for d in (_hub_id(cfg.get("dataset")), _hub_id(cfg.get("eval_dataset"))) if d]
    if datasets:
        fm["datasets"] = list(dict.fromkeys(datasets))
    metrics = _metrics(info)
    if metrics:
        fm["metrics"] = list(metrics)
        ds_name = cfg.get("eval_dataset") if isinstance(cfg.get("eval_dataset"), str) else "evaluation data"
        fm["model-index"] = [
            {
                "name": info.get("name") or "anycl model",
                "results": [
                    {
                        "task": {"type": fm["pipeline_tag"]},
                        "dataset": {
                            "name": os.path.basename(str(ds_name)) or str(ds_name),
                            "type": _hub_id(ds_name) or "local",
                        },
                        "metrics": [{"type": k, "value": round(v, 4)} for k, v in metrics.items()],
                    }
                ],
            }
        ]
    return fm


def _results(info: Mapping[str, Any]) -> List[str]:
    final = _metrics(info)
    if not final:
        return ["No evaluation ran during training (pass `eval_dataset` to `fit`, or run `anycl eval`).", ""]
    before = {k: v for k, v in (info.get("baseline_metrics") or {}).items() if k != "step"}
    step = (info.get("final_metrics") or {}).get("step")
    lines = [
        f"Measured on the evaluation data (`{(info.get('config') or {}).get('eval_dataset') or 'given in Python'}`)"
        + (f", final evaluation at step {step}" if step is not None else "")
        + ":",
        "",
    ]
    if before:
        lines += ["| metric | before training | after |", "|---|---|---|"]
        lines += [
            f"| {k} | {before[k]:.4f} | {v:.4f} |"
            if isinstance(before.get(k), (int, float))
            else f"| {k} | – | {v:.4f} |"
            for k, v in final.items()
        ]
    else:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in final.items()]
    return lines + [""]


def _load_code(model, folder: str, kind: str, modality: Optional[str]) -> List[str]:
    if kind == "sentence-transformers":
        return [
            "```python",
            "from sentence_transformers import SentenceTransformer",
            "",
            f'model = SentenceTransformer("{folder}")',
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


def model_card(model, folder: str, kind: str = "anycl", modality: Optional[str] = None) -> str:
    """The README.md text for ``model`` (or its ``modality`` tower) saved at ``folder``."""
    info: Dict[str, Any] = dict(getattr(model, "info", {}) or {})
    cfg = info.get("config") or {}
    what = f"the {modality} tower of an anycl model" if modality else f"an anycl model ({' + '.join(model.modalities)})"
    fmt = {"anycl": "", "sentence-transformers": " in the sentence-transformers format", "onnx": " exported to ONNX"}[
        kind
    ]
    out = [
        "---",
        yaml.safe_dump(front_matter(model, kind, modality), sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {what}{fmt}",
        "",
        f"A contrastive encoder trained with anycl {__version__}. Sides: "
        + ", ".join(f"{s} → {m}" for s, m in model.sides.items())
        + ".",
        "",
    ]
    bases = base_models(model)
    trained = []
    for m in [modality] if modality else model.modalities:
        if bases.get(m):
            trained.append(f"**Base model ({m}):** `{bases[m]}`")
    dataset = cfg.get("dataset") or ("an in-memory dataset given from Python" if cfg else None)
    if dataset:
        trained.append(f"**Data:** `{dataset}`" + (f" ({info['train_rows']} rows)" if info.get("train_rows") else ""))
    if info.get("loss"):
        trained.append(
            f"**Loss:** `{info['loss']}`" + (f" with {info['loss_options']}" if info.get("loss_options") else "")
        )
    if info.get("steps") is not None:
        trained.append(f"**Steps:** {info['steps']}")
    if info.get("peft"):
        trained.append(f"**LoRA:** {info['peft']}")
    out += ["## Training", ""]
    if not cfg and info.get("steps") is None:
        trained.append("This model was not trained by `anycl.fit` (no training record).")
    out += [t + "  " for t in trained]
    out += ["", "## Results", ""] + _results(info) + ["## Load it", ""] + _load_code(model, folder, kind, modality)
    if cfg:
        cmd = info.get("command")
        out += ["## Training command and config", ""]
        if cmd:
            out += ["```bash", cmd, "```", ""]
        out += [
            "Repeat the run with `anycl fit --config config.yaml --output-dir <new folder>`, with this config:",
            "",
            "```yaml",
            config_file_text(cfg).rstrip(),
            "```",
            "",
        ]
    return "\n".join(out)


def write_card(
    model, directory: str, kind: str = "anycl", modality: Optional[str] = None, folder: Optional[str] = None
) -> None:
    """Write the card of ``kind`` into ``directory`` (replacing any card already there)."""
    (Path(directory) / CARD_FILE).write_text(model_card(model, folder or str(directory), kind, modality))


def write_model_files(model, directory: str, folder: Optional[str] = None) -> None:
    """Write README.md and config.yaml (when the model has a run config) into a saved anycl folder, and a
    card into each sentence-transformers tower folder (``towers/<name>``) in place of the upstream one.

    ``folder`` is the path users will load from, shown in the cards (default: ``directory``).
    """
    d = Path(directory)
    folder = folder or str(directory)
    cfg = (getattr(model, "info", {}) or {}).get("config")
    if cfg:
        (d / RUN_CONFIG_FILE).write_text(config_file_text(cfg))
    write_card(model, str(d), "anycl", folder=folder)
    for name, tower in model.towers.items():
        sub = d / "towers" / name
        if getattr(tower.encoder, "st", None) is not None and sub.is_dir():
            write_card(model, str(sub), "sentence-transformers", name, folder=f"{folder}/towers/{name}")
