"""A saved text tower (a sentence-transformers folder inside a model folder) checked before sentence-transformers
reads it: :func:`check_text_folder`.

sentence-transformers builds a model from the folder's JSON files, and some of what they name is code or sizes:

- ``modules.json`` names each module's class by its import path; sentence-transformers 5.x imports any path
  from a local folder (a module file planted beside it runs), 6.0 (huggingface/sentence-transformers#3935)
  refuses what lies outside its own namespace without ``trust_remote_code``. anycl refuses it whatever the
  installed version: every ``type`` must be a sentence-transformers class, every module ``path`` inside the folder.
- a ``Dense`` module's ``activation_function`` is imported the same way (5.x calls whatever it names): it must be
  a ``torch`` module class.
- a sharded checkpoint's ``*.index.json`` names its shard files: shards must be safetensors files inside the folder
  (a pickle renamed ``.dat`` behind ``pytorch_model.bin.index.json`` would otherwise be unpickled).
- ``config.json`` decides the transformer's sizes, and transformers 4.x allocates the model before it reads the
  weights: the model is built on the meta device first and its parameter count compared with the weights files';
  a ``Dense`` module's ``in_features × out_features`` likewise.

:func:`check_no_code` makes the checks of code (not of sizes or links) for a sentence-transformers folder a user
names as a base model, a teacher or a mining model.
"""

from __future__ import annotations

import glob
import importlib
import inspect
import logging
import os
import warnings
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from anycl.errors import AnyclError, ConfigError
from anycl.reading import inside, read_json
from anycl.statefile import StateFileError, tensor_shapes

log = logging.getLogger("anycl")

ST_NAMESPACE = "sentence_transformers."
# the parameter count a config may describe beyond what its weights files hold (a pooler left out, rounding)
SLACK_PARAMETERS = 1_000_000


def _resolve(ref: str) -> Any:
    """The object a dotted path names, or None when it cannot be imported (only installed packages are)."""
    module_name, _, attr = ref.rpartition(".")
    try:
        with warnings.catch_warnings():  # sentence-transformers' own deprecated aliases
            warnings.simplefilter("ignore")
            return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        return None


def _is_module_class(obj: Any) -> bool:
    return inspect.isclass(obj) and issubclass(obj, nn.Module)


def _within(path: str, directory: str, root: Optional[str]) -> bool:
    """``path`` lies in ``directory``: by its name, and (with a ``root``) once links are resolved."""
    rel = os.path.relpath(os.path.normpath(path), os.path.normpath(directory))
    return rel != ".." and not rel.startswith(".." + os.sep) and (root is None or inside(path, root))


def _modules(directory: str, root: Optional[str]) -> List[Dict[str, Any]]:
    path = os.path.join(directory, "modules.json")
    if not os.path.lexists(path):
        return []
    modules = read_json(path, root=root)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ConfigError(f"{path} must be a JSON list of modules (objects with 'type' and 'path')")
    for i, m in enumerate(modules):
        ref, sub = m.get("type"), m.get("path", "")
        if not isinstance(ref, str) or not ref.startswith(ST_NAMESPACE) or not _type_ok(ref):
            raise ConfigError(
                f"{path}: module {i} has type {ref!r}, which is not a sentence-transformers module class; loading it "
                f"would import and run code named by the folder, which anycl never does. Remove the entry (or the "
                f"folder, if you did not write it); a module class of your own: build the model in your code from "
                f"the folder's parts, e.g. SentenceTransformer(modules=[Transformer(folder), YourModule()]), and pass it "
                f"as anycl.load(path, encoders={{'text': model}}) (docs/text.md)"
            )
        if not isinstance(sub, str) or os.path.isabs(sub) or not _within(os.path.join(directory, sub), directory, root):
            raise ConfigError(f"{path}: module {i} has path {sub!r}, which is not a folder inside {directory}")
    return modules


def _type_ok(ref: str) -> bool:
    obj = _resolve(ref)
    return obj is None or _is_module_class(obj)  # None: a name this version resolves its own way


def _check_dense(directory: str, sub: str, root: Optional[str]) -> None:
    cfg_path = os.path.join(directory, sub, "config.json")
    if not os.path.lexists(cfg_path):
        return
    cfg = read_json(cfg_path, root=root)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{cfg_path} must hold a JSON object")
    act = cfg.get("activation_function")
    if act is not None and not (isinstance(act, str) and act.startswith("torch.") and _is_module_class(_resolve(act))):
        raise ConfigError(
            f"{cfg_path}: activation_function {act!r} is not a torch.nn module class; loading it would import and "
            f"call what the folder names, which anycl never does"
        )
    ins, outs = cfg.get("in_features"), cfg.get("out_features")
    if root is not None and isinstance(ins, int) and isinstance(outs, int) and "model_type" not in cfg:
        _check_count(ins * outs, os.path.join(directory, sub), cfg_path, root)


def _weights_elements(folder: str, root: str) -> int:
    total = 0
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "*.safetensors"))):
        try:
            total += sum(int(torch.Size(s).numel()) for s in tensor_shapes(path, root).values())
        except StateFileError as exc:
            raise ConfigError(str(exc)) from exc
    return total


def _check_count(described: int, folder: str, cfg_path: str, root: str) -> None:
    held = _weights_elements(folder, root)
    if described > held * 1.05 + SLACK_PARAMETERS:
        raise ConfigError(
            f"{cfg_path} describes {described:,} parameters but the weights beside it hold {held:,}; building it "
            f"would allocate memory no weights fill. The folder was altered or mixed from two models"
        )


def _check_transformer(directory: str, sub: str) -> None:
    folder = os.path.join(directory, sub)
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.lexists(cfg_path) or not glob.glob(os.path.join(glob.escape(folder), "*.safetensors")):
        return
    cfg = read_json(cfg_path, root=directory)
    if not isinstance(cfg, dict) or "model_type" not in cfg:
        return
    from transformers import AutoConfig, AutoModel  # lazy: transformers (sentence-transformers imports it anyway)

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        with torch.device("meta"):
            ghost = AutoModel.from_config(config)
    except Exception as exc:  # a model type transformers cannot build here: sentence-transformers will say so
        log.debug("cannot build %s on the meta device (%s); its size is not checked before loading", folder, exc)
        return
    _check_count(sum(p.numel() for p in ghost.parameters()), folder, cfg_path, directory)


def _check_shards(directory: str, root: Optional[str]) -> None:
    for dirpath, _, filenames in os.walk(directory):
        for name in filenames:
            if not name.endswith(".index.json"):
                continue
            path = os.path.join(dirpath, name)
            index = read_json(path, root=root)
            weight_map = index.get("weight_map") if isinstance(index, dict) else None
            shards = set(weight_map.values()) if isinstance(weight_map, dict) else {None}
            for shard in sorted(shards, key=str):
                if (
                    not isinstance(shard, str)
                    or not shard.endswith(".safetensors")
                    or not _within(os.path.join(dirpath, shard), directory, root)
                ):
                    raise ConfigError(
                        f"{path} names the shard {shard!r}; anycl loads only safetensors shards inside the folder "
                        f"(another file may be a pickle, which runs code when loaded). Remove the index"
                    )


def _check(directory: str, root: Optional[str]) -> None:
    try:
        modules = _modules(directory, root)
        _check_shards(directory, root)
        for sub in sorted({m.get("path", "") for m in modules} or {""}):
            _check_dense(directory, sub, root)
            if root is not None:
                _check_transformer(directory, sub)
    except AnyclError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read the sentence-transformers folder {directory}: {exc}") from exc


def check_text_folder(directory: str) -> None:
    """Refuse, naming the file, a text tower folder (inside an anycl model folder) whose JSON names code to import,
    files outside it or sizes its weights do not hold (see the module docstring); nothing is imported from the
    folder and nothing large is allocated."""
    _check(directory, root=directory)


def check_no_code(model: str) -> None:
    """For a sentence-transformers folder a user names (a base model, a teacher, a mining model): refuse a
    ``modules.json`` type, a ``Dense`` activation or a shard index that would make sentence-transformers import
    or unpickle code named by the folder, whatever its version. Its files may be links anywhere (a Hugging Face
    cache snapshot is); a name that is not a local folder is left to sentence-transformers."""
    if os.path.isdir(model):
        _check(model, root=None)
