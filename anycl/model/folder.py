"""A model folder on disk: what :meth:`ContrastiveModel.save` writes and :func:`anycl.load` reads.

JSON config + safetensors weights, nothing pickled; a manifest names the entries anycl wrote, so an
overwrite replaces only those; the folder is written beside its target and swapped in by renames
(:func:`anycl.files.replace_folder`). Files and folders get the process umask.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import safetensors.torch  # its functions looked up when called (tests stand in for them)
from torch import nn

from anycl.adapters.registry import get as get_adapter
from anycl.errors import ConfigError
from anycl.export.card import write_model_files
from anycl.files import apply_umask, check_parent, replace_folder, reworded
from anycl.statefile import PICKLE_SUFFIXES, StateFileError, check_safetensors

from .lora import load_tower_adapter, save_tower
from .tower import Tower, build_head

FORMAT = "anycl-model"
FORMAT_VERSION = 1
CONFIG_FILE = "anycl_config.json"
HEADS_FILE = "heads.safetensors"
MANIFEST_FILE = "anycl_manifest.json"
# what anycl wrote into a model folder before it kept a manifest
_LEGACY_ENTRIES = {CONFIG_FILE, HEADS_FILE, "towers", "README.md", "config.yaml"}


def _names_written(folder: Path) -> set:
    try:
        return set(json.loads((folder / MANIFEST_FILE).read_text()).get("entries", []))
    except (OSError, ValueError, AttributeError):
        return set()


def owned_entries(folder: Path) -> Optional[set]:
    """The top-level names anycl wrote in ``folder`` (from its manifest); an empty set for an empty folder;
    None for a folder anycl did not write."""
    if not any(folder.iterdir()):
        return set()
    if (folder / MANIFEST_FILE).is_file():
        names = _names_written(folder)
        return names | {MANIFEST_FILE} if names else None
    if (folder / CONFIG_FILE).is_file():  # a model saved before manifests existed
        try:
            if json.loads((folder / CONFIG_FILE).read_text()).get("format") == FORMAT:
                return set(_LEGACY_ENTRIES)
        except (OSError, ValueError, AttributeError):
            return None
    return None


def save_model(model, path: str, overwrite: bool = False) -> str:
    """:meth:`ContrastiveModel.save`."""
    path = os.fspath(path)
    target = Path(path)
    check_parent(target, "the model to")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{path!r} exists and is a file, not a folder; choose another path")
    previous = owned_entries(target) if target.exists() else None
    if target.exists() and not overwrite:
        raise FileExistsError(f"{path!r} already exists; pass overwrite=True to replace it")
    if previous is None and target.exists() and any(target.iterdir()):
        raise FileExistsError(
            f"{path!r} is a non-empty folder that anycl did not write (no {MANIFEST_FILE}); overwrite=True only "
            f"replaces anycl's own model files. Choose an empty or new folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    moved: List[str] = []  # the user's files moved into tmp (given back if the save fails)
    try:
        try:
            _write(model, tmp, path)
        except OSError as exc:  # e.g. a full disk: what was at path is untouched
            raise reworded(
                exc,
                f"saving the model to {path!r} failed ({exc.strerror or exc}); "
                f"{'the model already there is unchanged' if previous else 'nothing was written there'}",
            ) from exc
        ours = sorted(p.name for p in tmp.iterdir())
        (tmp / MANIFEST_FILE).write_text(
            json.dumps({"format": FORMAT, "written_by": "anycl", "entries": ours + [MANIFEST_FILE]}, indent=1)
        )
        apply_umask(tmp)
        if target.exists():
            # the user's own files in the folder move into the new model folder before the swap
            foreign = [p for p in target.iterdir() if p.name not in (previous or set())]
            clash = [p.name for p in foreign if (tmp / p.name).exists()]
            if clash:
                raise FileExistsError(
                    f"{path!r} holds {clash}, which anycl did not write but would now write; move them away first"
                )
            for p in foreign:
                os.replace(p, tmp / p.name)
                moved.append(p.name)
        replace_folder(tmp, target)
    except BaseException:
        if target.exists() and tmp.exists():  # give back what was moved over
            for name in moved:
                if (tmp / name).exists() and not (target / name).exists():
                    os.replace(tmp / name, target / name)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write(model, tmp: Path, path: str) -> None:
    config = model.config()
    heads = {}
    for name, t in model.towers.items():
        sub = tmp / "towers" / name
        sub.mkdir(parents=True)
        if getattr(t.encoder, "st", None) is not None:  # towers/<name>, a sentence-transformers folder, says it too
            t.encoder.st.similarity_fn_name = model.similarity_fn_name
        if getattr(t, "lora", None) is not None:  # unmerged LoRA: base weights + adapter (anycl.model.lora)
            base = (getattr(t.encoder, "anycl_spec", None) or {}).get("base_model")
            config["towers"][name]["encoder"] = save_tower(t, str(sub), base)
        else:
            config["towers"][name]["encoder"] = t.adapter.save_encoder(t.encoder, str(sub))
        if t.head is not None:
            for k, v in t.head.state_dict().items():
                heads[f"{name}.{k}"] = v.detach().contiguous().cpu()
    if heads:
        safetensors.torch.save_file(heads, str(tmp / HEADS_FILE))
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
    write_model_files(model, str(tmp), path)


def read_model(
    path: str, encoders: Optional[Mapping[str, nn.Module]] = None
) -> Tuple[Dict[str, Tower], Dict[str, Any]]:
    """The towers (weights loaded) and the config of a model folder written by :func:`save_model`; checks
    the format and refuses pickle files and truncated weights, naming the file."""
    path = os.fspath(path)
    if not (Path(path) / CONFIG_FILE).exists() and (Path(path) / "model" / CONFIG_FILE).exists():
        path = os.path.join(path, "model")  # the output_dir of a fit run
    cfg_file = Path(path) / CONFIG_FILE
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{path!r} is not a folder; anycl.load takes the folder written by model.save")
    if not cfg_file.exists():
        raise ConfigError(f"{path!r} is not an anycl model: it has no {CONFIG_FILE} (was it written by model.save?)")
    try:
        config = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{cfg_file} is not valid JSON: {exc}") from exc
    if config.get("format") != FORMAT:
        raise ConfigError(f"{path!r} is not an anycl model ({CONFIG_FILE} has format {config.get('format')!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ConfigError(f"{path!r} was written by a newer anycl (format {config['format_version']}); upgrade anycl")
    towers_dir = Path(path) / "towers"
    pickles = (
        sorted(
            str(p.relative_to(path))
            for p in towers_dir.rglob("*")
            if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES
        )
        if towers_dir.is_dir()
        else []
    )
    if pickles:  # anycl writes none; a loader might unpickle them (which runs code)
        raise ConfigError(
            f"{path!r} holds pickle file(s) {pickles} that anycl did not write; anycl models are "
            f"safetensors + JSON only and are not loaded with pickles beside them. Remove them"
        )
    for weights in sorted(Path(path).rglob("*.safetensors")):  # a truncated file: an error naming it
        try:
            check_safetensors(weights)
        except StateFileError as exc:
            raise ConfigError(f"cannot load the model {path!r}: {exc}") from exc
    heads_file = Path(path) / HEADS_FILE
    heads_state = safetensors.torch.load_file(str(heads_file)) if heads_file.exists() else {}
    towers = {}
    for name, tcfg in config["towers"].items():
        adapter = get_adapter(tcfg["modality"], **tcfg.get("adapter", {}))
        sub = str(Path(path) / "towers" / name)
        spec = tcfg.get("encoder") or {}
        if encoders and name in encoders:
            encoder = encoders[name]
            encoder.load_state_dict(safetensors.torch.load_file(os.path.join(sub, "encoder.safetensors")))
        else:
            encoder = adapter.load_encoder(spec, sub)
        head = build_head(tcfg.get("head"))
        if head is not None:
            prefix = f"{name}."
            head.load_state_dict({k[len(prefix) :]: v for k, v in heads_state.items() if k.startswith(prefix)})
        towers[name] = Tower(adapter, encoder, head, tcfg.get("encode_with_head", False))
        if (Path(sub) / "lora").is_dir():  # a LoRA adapter saved unmerged (anycl.model.lora)
            load_tower_adapter(towers[name], sub)
    return towers, config
