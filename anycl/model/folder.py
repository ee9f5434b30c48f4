"""A model folder on disk: what :meth:`ContrastiveModel.save` writes and :func:`anycl.load` reads.

JSON config + safetensors weights, nothing pickled; a manifest names the entries anycl wrote (and the save, by a
``save_id``), so an overwrite replaces only those; the folder is written beside its target and swapped in
(:func:`anycl.files.replace_folder`). Files and folders get the process umask.

Loading checks the folder before it builds anything (:mod:`anycl.model.folder_read`), builds each module only
once its shapes match its weights file's header (:mod:`anycl.weights`), and reads the folder again when a save
by another process overlapped the load, so a load returns one complete model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, cast

import safetensors.torch  # its functions looked up when called (tests stand in for them)
from torch import nn

from anycl.adapters.registry import get as get_adapter
from anycl.errors import AnyclError, ConfigError
from anycl.export.card import write_model_files
from anycl.files import apply_umask, check_parent, replace_folder, reworded
from anycl.reading import check_tree, read_json
from anycl.statefile import StateFileError, read_safetensors
from anycl.weights import load_checked, load_weights

from .folder_read import (  # noqa: F401  (the format's names: importable from here, as before)
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    HEADS_FILE,
    MANIFEST_FILE,
    between_renames,
    check_files,
    check_tower_name,
    model_folder,
    read_config,
    save_stamp,
)
from .lora import load_tower_adapter, save_tower
from .tower import Tower, build_head

log = logging.getLogger("anycl")

# what anycl wrote into a model folder before it kept a manifest
_LEGACY_ENTRIES = {CONFIG_FILE, HEADS_FILE, "towers", "README.md", "config.yaml"}
# how long a load keeps trying while other processes save the same folder
RETRY_SECONDS = 30.0


def _read_json_or_none(path: Path) -> Any:
    try:
        return read_json(path, root=path.parent)
    except (OSError, AnyclError):
        return None


def _names_written(folder: Path) -> set:
    manifest = _read_json_or_none(folder / MANIFEST_FILE)
    entries = manifest.get("entries", []) if isinstance(manifest, dict) else []
    return {e for e in entries if isinstance(e, str)} if isinstance(entries, list) else set()


def owned_entries(folder: Path) -> Optional[set]:
    """The top-level names anycl wrote in ``folder`` (from its manifest); an empty set for an empty folder;
    None for a folder anycl did not write."""
    if not any(folder.iterdir()):
        return set()
    if (folder / MANIFEST_FILE).is_file():
        names = _names_written(folder)
        return names | {MANIFEST_FILE} if names else None
    if (folder / CONFIG_FILE).is_file():  # a model saved before manifests existed
        config = _read_json_or_none(folder / CONFIG_FILE)
        if isinstance(config, dict) and config.get("format") == FORMAT:
            return set(_LEGACY_ENTRIES)
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
        manifest = {"format": FORMAT, "written_by": "anycl", "entries": ours + [MANIFEST_FILE]}
        manifest["save_id"] = uuid.uuid4().hex  # this save (a load that overlapped another save reads again)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
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
        check_tower_name(name, "the model")
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
    the folder first (:func:`~anycl.model.folder_read.check_files`, :func:`~anycl.model.folder_read.read_config`)
    and refuses what it should not read, naming the file. A load that overlapped a save of the same folder by
    another process (its ``save_id`` changed meanwhile) reads it again, for up to ``RETRY_SECONDS``."""
    deadline, pause = time.monotonic() + RETRY_SECONDS, 0.01
    while True:
        folder = model_folder(path)
        before = save_stamp(folder)
        try:
            towers, config = _read_once(folder, os.fspath(path), encoders)
        except Exception:
            if time.monotonic() > deadline or (save_stamp(folder) == before and not between_renames(folder)):
                raise  # not a save in between: the folder is what it is
        else:
            if save_stamp(folder) == before:
                return towers, config
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"the model folder {os.fspath(path)!r} kept changing while it was read (another process saves "
                    f"it again and again); load it once the saves are done"
                )
        time.sleep(pause)
        pause = min(2 * pause, 0.2)


def _read_once(
    folder: Path, given: str, encoders: Optional[Mapping[str, nn.Module]]
) -> Tuple[Dict[str, Tower], Dict[str, Any]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{given!r} is not a folder; anycl.load takes the folder written by model.save")
    check_tree(folder)  # before anything in it is opened: no FIFO, device or link out of it
    config = read_config(folder)
    check_files(folder)
    heads_file = folder / HEADS_FILE
    towers = {}
    for name, tcfg in config["towers"].items():
        try:
            adapter = get_adapter(tcfg["modality"], **(tcfg.get("adapter") or {}))
        except (TypeError, ValueError) as exc:  # an option it does not take (AnyclError, a ValueError, as it is)
            if isinstance(exc, AnyclError):
                raise
            raise ConfigError(f"{folder / CONFIG_FILE}: towers.{name}.adapter: {exc}") from exc
        sub = str(folder / "towers" / name)
        head = None
        if tcfg.get("head"):
            spec, where = tcfg["head"], f"{folder / CONFIG_FILE} towers.{name}.head"

            def make_head(spec: Dict[str, Any] = spec, where: str = where) -> nn.Module:
                return cast(nn.Module, build_head(spec, where))  # not None: the spec is not empty

            head = load_checked(
                make_head,
                heads_file,
                f"the {name} tower's head in {CONFIG_FILE}",
                prefix=f"{name}.",
                root=folder,
            )
        if encoders and name in encoders:
            encoder = adapter.adopt_encoder(encoders[name])
            weights = Path(sub) / "encoder.safetensors"
            if not weights.exists() and (tcfg.get("encoder") or {}).get("kind") == "sentence_transformers":
                # a sentence-transformers tower with a module class anycl does not import (the user's own): the
                # user built the model in their code from towers/<name>'s parts; it is used as given
                log.info("the %s tower: using the module given in encoders= as it is (loaded from %s)", name, sub)
                towers[name] = Tower(adapter, encoder, head, tcfg.get("encode_with_head", False))
                continue
            try:
                load_weights(encoder, read_safetensors(weights, root=folder), weights)
            except StateFileError as exc:
                raise ConfigError(str(exc)) from exc
        else:
            encoder = adapter.load_encoder(tcfg.get("encoder") or {}, sub)
        towers[name] = Tower(adapter, encoder, head, tcfg.get("encode_with_head", False))
        if (Path(sub) / "lora").is_dir():  # a LoRA adapter saved unmerged (anycl.model.lora)
            load_tower_adapter(towers[name], sub)
    return towers, config
