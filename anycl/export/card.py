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
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional

import yaml

from anycl.adapters import ADAPTERS
from anycl.options.run_config import RUN_CONFIG_FILE, config_file_text
from anycl.version import __version__

from .card_sources import hub_base_model, language_of, public_config, public_path, public_text
from .card_usage import ST, load_code

CARD_FILE = "README.md"
DEFAULT_TEXT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

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
    """A dataset reference as a Hub id (``org/name`` or a bare canonical name such as ``snli``), or None for
    local paths and Python objects."""
    if not isinstance(name, str) or not name.strip():
        return None
    if os.path.exists(os.path.expanduser(name)) or name.startswith(("/", ".", "~")):
        return None
    return name if name.count("/") <= 1 else None


def _local_sources(model, name: str) -> List[Any]:
    """What the tower ``name`` was built from, most specific first: the folder it was read from, the base
    model as recorded."""
    tower = model.towers[name] if name in model.towers else None
    spec = (getattr(tower.encoder, "anycl_spec", None) or {}) if tower is not None else {}
    recorded = ((getattr(model, "info", {}) or {}).get("base_model") or {}).get(name)
    return [v for v in (spec.get("model"), recorded, spec.get("base_model")) if isinstance(v, str)]


def hub_base(model, name: str) -> Optional[str]:
    """The tower ``name``'s base model as a Hub id: as recorded when it is one, else the id its local folder
    states (:func:`anycl.export.card_sources.hub_id_of_folder`); None when neither says one."""
    bases = base_models(model)
    found = hub_base_model(bases.get(name))
    for source in [] if found else _local_sources(model, name):
        found = hub_base_model(source)
        if found:
            break
    return found


def card_options(model) -> Dict[str, Any]:
    """The card fields the user set (``license``, ``language``), kept in ``model.info["card"]``."""
    opts = (getattr(model, "info", {}) or {}).get("card") or {}
    return {k: v for k, v in opts.items() if v not in (None, "", [])} if isinstance(opts, dict) else {}


def _language(model, mods: List[str]) -> Optional[Any]:
    given = card_options(model).get("language")
    if given:
        return given
    for m in mods:
        for source in _local_sources(model, m) if m in model.towers else []:
            lang = language_of(source)
            if lang:
                return lang
    return None


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


def _metrics(info: Mapping[str, Any]) -> Dict[str, float]:
    m = info.get("final_metrics") or {}
    return {k: float(v) for k, v in m.items() if k != "step" and isinstance(v, (int, float))}


def front_matter(model, kind: str = "anycl", modality: Optional[str] = None) -> Dict[str, Any]:
    """The card's YAML front matter as a dict."""
    info: Dict[str, Any] = dict(getattr(model, "info", {}) or {})
    cfg = info.get("config") or {}
    mods = [modality] if modality else list(model.modalities)
    fm: Dict[str, Any] = {}
    bases = list(dict.fromkeys(b for m in mods for b in [hub_base(model, m)] if b))
    if bases:
        fm["base_model"] = bases[0] if len(bases) == 1 else bases
    if card_options(model).get("license"):
        fm["license"] = card_options(model)["license"]
    language = _language(model, mods)
    if language:
        fm["language"] = language
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
        ds_name = cfg.get("eval_dataset") if isinstance(cfg.get("eval_dataset"), str) else None
        fm["model-index"] = [
            {
                "name": info.get("name") or "anycl model",
                "results": [
                    {
                        "task": {"type": fm["pipeline_tag"]},
                        "dataset": _dataset_entry(ds_name),
                        "metrics": [{"type": k, "value": round(v, 4)} for k, v in metrics.items()],
                    }
                ],
            }
        ]
    return fm


def _dataset_entry(name: Optional[str]) -> Dict[str, str]:
    """model-index's ``dataset``: a Hub dataset by its id; local data by its file or folder name (``type`` is
    that name without its suffix: the Hub takes any identifier there); data given from Python as such."""
    if name is None:
        return {"name": "evaluation data given from Python", "type": "in-memory"}
    hub = _hub_id(name)
    if hub:
        return {"name": hub, "type": hub}
    base = os.path.basename(os.path.normpath(name)) or str(name)
    stem = base.split(".")[0] or base
    return {"name": base, "type": re.sub(r"[^\w.-]+", "-", stem).strip("-") or "data"}


def _which_evaluation(info: Mapping[str, Any], step: Any) -> str:
    best = info.get("best") or {}
    if best.get("step") == step and best.get("metric"):
        return (
            f", evaluation at step {step} of {info.get('steps', '?')}: the best `{best['metric']}` "
            "(`keep_best`), whose weights these are"
        )
    return f", final evaluation at step {step}"


def _results(info: Mapping[str, Any]) -> List[str]:
    final = _metrics(info)
    if not final:
        return ["No evaluation ran during training (pass `eval_dataset` to `fit`, or run `anycl eval`).", ""]
    before = {k: v for k, v in (info.get("baseline_metrics") or {}).items() if k != "step"}
    step = (info.get("final_metrics") or {}).get("step")
    lines = [
        "Measured on the evaluation data "
        f"(`{public_path((info.get('config') or {}).get('eval_dataset')) or 'given in Python'}`)"
        + (_which_evaluation(info, step) if step is not None else "")
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


def model_card(
    model, folder: str, kind: str = "anycl", modality: Optional[str] = None, adapter_apart: bool = False
) -> str:
    """The README.md text for ``model`` (or its ``modality`` tower) saved at ``folder``; ``adapter_apart``: the
    folder is a tower of a saved anycl model, which keeps an unmerged LoRA adapter in ``lora/``."""
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
            trained.append(f"**Base model ({m}):** `{hub_base(model, m) or public_path(bases[m])}`")
    dataset = public_path(cfg.get("dataset")) or ("an in-memory dataset given from Python" if cfg else None)
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
    out += (
        ["", "## Results", ""]
        + _results(info)
        + ["## Load it", ""]
        + load_code(model, public_path(folder), kind, modality, adapter_apart)
    )
    if cfg:
        cmd = info.get("command")
        out += ["## Training command and config", ""]
        if cmd:
            out += ["```bash", public_text(cmd), "```", ""]
        out += [
            "Repeat the run with `anycl fit --config config.yaml --output-dir <new folder>`, with this config:",
            "",
            "```yaml",
            config_file_text(public_config(cfg)).rstrip(),
            "```",
            "",
        ]
    return "\n".join(out)


def write_card(
    model,
    directory: str,
    kind: str = "anycl",
    modality: Optional[str] = None,
    folder: Optional[str] = None,
    adapter_apart: bool = False,
) -> None:
    """Write the card of ``kind`` into ``directory`` (replacing any card already there)."""
    text = model_card(model, folder or str(directory), kind, modality, adapter_apart)
    (Path(directory) / CARD_FILE).write_text(text)


def write_model_files(model, directory: str, folder: Optional[str] = None, public: bool = False) -> None:
    """Write README.md and config.yaml (when the model has a run config) into a saved anycl folder, and a
    card into each sentence-transformers tower folder (``towers/<name>``) in place of the upstream one.

    ``folder`` is the path users will load from, shown in the cards (default: ``directory``); cards never show
    an absolute path (:mod:`anycl.export.card_sources`). ``public``: config.yaml too shows its paths so (a
    folder for the Hub); by default it keeps them as given, so that ``anycl fit --config`` reruns the run.
    """
    d = Path(directory)
    folder = public_path(folder or str(directory))  # the towers' cards name their folder below this one
    cfg = (getattr(model, "info", {}) or {}).get("config")
    if cfg:
        (d / RUN_CONFIG_FILE).write_text(config_file_text(public_config(cfg) if public else cfg))
    write_card(model, str(d), "anycl", folder=folder)
    for name, tower in model.towers.items():
        sub = d / "towers" / name
        if getattr(tower.encoder, "st", None) is not None and sub.is_dir():
            write_card(model, str(sub), ST, name, folder=f"{folder}/towers/{name}", adapter_apart=True)
