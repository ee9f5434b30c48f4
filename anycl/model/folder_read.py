"""What :func:`anycl.load` checks in a model folder before it builds anything, and how it knows that the folder
changed while it was read.

A model folder may come from anyone (a download, a colleague's tarball, a git clone), so nothing in it is
trusted before it is checked (docs/scale.md, "What a model folder can and cannot do to you"):

- :func:`anycl.reading.check_tree` first: every entry is a regular file or a folder, links stay inside the folder
  (no FIFO, device or link to ``/dev/zero``).
- :func:`check_files`: no pickle file (``*.bin``, ``*.pt``, ...) under ``towers/``; every safetensors file is
  complete, its header no longer than safetensors' own limit.
- :func:`read_config`: ``anycl_config.json`` read up to ``MAX_CONFIG_BYTES`` and its structure checked, each
  wrong key named with the file (tower names are plain names: a tower cannot name a path outside the folder).
- :func:`save_stamp`: what identifies one save of the folder (the ``save_id`` of its manifest), read before and
  after a load: a load that overlapped a save (another process writing the same folder) is done again, so a
  load sees one complete model, never parts of two.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from anycl.errors import AnyclError, ConfigError
from anycl.reading import read_json
from anycl.statefile import PICKLE_SUFFIXES, PathLike, StateFileError, check_safetensors

FORMAT = "anycl-model"
FORMAT_VERSION = 1
CONFIG_FILE = "anycl_config.json"
HEADS_FILE = "heads.safetensors"
MANIFEST_FILE = "anycl_manifest.json"

# a tower's name is a folder name under towers/: one plain path component
_TOWER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def check_tower_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not _TOWER_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{where}: tower name {name!r} is not a plain name (letters, digits, '_', '-', '.'); a tower's files "
            f"live in towers/<name>/ inside the model folder, so its name cannot be a path"
        )


def model_folder(path: PathLike) -> Path:
    """The model folder ``path`` names: the folder itself, or the ``model/`` folder of a fit run's output."""
    p = Path(os.fspath(path))
    if not (p / CONFIG_FILE).exists() and (p / "model" / CONFIG_FILE).exists():
        return p / "model"
    return p


def _expect(ok: bool, cfg_file: Path, key: str, what: str, value: Any) -> None:
    if not ok:
        raise ConfigError(
            f"{cfg_file}: {key} must be {what}, got {type(value).__name__} {str(value)[:60]!r}; the file was altered "
            f"(model.save writes it). Save the model again"
        )


def read_config(folder: Path) -> Dict[str, Any]:
    """``anycl_config.json`` of ``folder``, checked: format, version and the type of every key anycl reads."""
    cfg_file = folder / CONFIG_FILE
    if not os.path.lexists(cfg_file):
        raise ConfigError(
            f"{str(folder)!r} is not an anycl model: it has no {CONFIG_FILE} (was it written by model.save?)"
        )
    config = read_json(cfg_file, root=folder)
    _expect(isinstance(config, dict), cfg_file, "the file", "a JSON object", config)
    if config.get("format") != FORMAT:
        raise ConfigError(f"{str(folder)!r} is not an anycl model ({CONFIG_FILE} has format {config.get('format')!r})")
    version = config.get("format_version", 0)
    _expect(isinstance(version, int) and not isinstance(version, bool), cfg_file, "format_version", "a number", version)
    if version > FORMAT_VERSION:
        raise ConfigError(f"{str(folder)!r} was written by a newer anycl (format {version}); upgrade anycl")
    towers = config.get("towers")
    _expect(isinstance(towers, dict) and bool(towers), cfg_file, "'towers'", "an object {name: tower}", towers)
    for name, tcfg in towers.items():
        check_tower_name(name, str(cfg_file))
        key = f"towers.{name}"
        _expect(isinstance(tcfg, dict), cfg_file, key, "an object", tcfg)
        _expect(
            isinstance(tcfg.get("modality"), str), cfg_file, f"{key}.modality", "a modality name", tcfg.get("modality")
        )
        for part in ("adapter", "head", "encoder"):
            value = tcfg.get(part)
            _expect(value is None or isinstance(value, dict), cfg_file, f"{key}.{part}", "an object or null", value)
        options = (tcfg.get("encoder") or {}).get("options", {})
        _expect(isinstance(options, dict), cfg_file, f"{key}.encoder.options", "an object", options)
    sides = config.get("sides")
    _expect(isinstance(sides, dict) and bool(sides), cfg_file, "'sides'", "an object {side: tower}", sides)
    for side, name in sides.items():
        _expect(isinstance(name, str) and name in towers, cfg_file, f"sides.{side}", f"one of {list(towers)}", name)
    for key, kind, what in (
        ("info", dict, "an object"),
        ("prompts", dict, "an object"),
        ("similarity_fn_name", str, "a name"),
    ):
        value = config.get(key)
        _expect(value is None or isinstance(value, kind), cfg_file, f"'{key}'", f"{what} or null", value)
    return config


def check_files(folder: Path) -> None:
    """Refuse pickle files under ``towers/`` and incomplete weights (after :func:`anycl.reading.check_tree`)."""
    towers_dir = folder / "towers"
    pickles = (
        sorted(
            str(p.relative_to(folder))
            for p in towers_dir.rglob("*")
            if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES
        )
        if towers_dir.is_dir()
        else []
    )
    if pickles:  # anycl writes none; a loader might unpickle them (which runs code)
        raise ConfigError(
            f"{str(folder)!r} holds pickle file(s) {pickles} that anycl did not write; anycl models are "
            f"safetensors + JSON only and are not loaded with pickles beside them. Remove them"
        )
    for weights in sorted(folder.rglob("*.safetensors")):  # a truncated file: an error naming it
        try:
            check_safetensors(weights, root=folder)
        except StateFileError as exc:
            raise ConfigError(f"cannot load the model {str(folder)!r}: {exc}") from exc


def save_stamp(folder: Path) -> Optional[Tuple[Any, ...]]:
    """What identifies the save of ``folder`` now: its manifest's ``save_id`` (one per ``model.save``), else (for a
    folder saved before there were ids) the identity and time of its config file; None when it has neither."""
    try:
        manifest = read_json(folder / MANIFEST_FILE, root=folder)
        save_id = manifest.get("save_id") if isinstance(manifest, dict) else None
    except (OSError, AnyclError):
        save_id = None
    if isinstance(save_id, str):
        return ("save_id", save_id)
    try:
        st = os.stat(folder / CONFIG_FILE)
    except OSError:
        return None
    return ("config", st.st_ino, st.st_mtime_ns, st.st_size)


def between_renames(folder: Path) -> bool:
    """Whether ``folder`` is missing because a save is moving it (where the file system cannot swap two folders in
    one step, :func:`anycl.files.replace_folder` renames the old one aside first)."""
    if os.path.lexists(folder):
        return False
    try:
        names = os.listdir(folder.parent)
    except OSError:
        return False
    return any(n.startswith(f".{folder.name}.old-") for n in names)
