"""Finding and checking checkpoints (:mod:`anycl.training.checkpoint`): the folder layout and format constants, the
complete checkpoints under ``output_dir/checkpoints``, the newest one, what ``resume_from`` names, and the
refusal of a folder that holds a pickle or another format. Nothing here reads more than a JSON marker."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from anycl.errors import AnyclError, ConfigError
from anycl.reading import check_tree, read_bytes, read_json
from anycl.statefile import PICKLE_SUFFIXES

log = logging.getLogger("anycl")

FOLDER = "checkpoints"
MARKER = "anycl_checkpoint.json"
POINTER = "latest"
FORMAT = "anycl-checkpoint"
FORMAT_VERSION = 2  # 1: Accelerate's save_state (pickles), no longer read
STEP_NAME = re.compile(r"^step-(\d+)$")  # a checkpoint folder's name


def checkpoint_root(output_dir: Union[str, os.PathLike]) -> Path:
    return Path(output_dir) / FOLDER


def complete_checkpoints(root: Path) -> List[Tuple[int, Path]]:
    """(step, folder) of every complete checkpoint under ``root``, oldest first."""
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = STEP_NAME.match(p.name)
        if m and p.is_dir() and not p.is_symlink() and (p / MARKER).is_file():  # a link may lead anywhere
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(root: Path) -> Optional[Path]:
    """The checkpoint the ``latest`` pointer names, else the complete one with the highest step. A pointer
    that names anything but a checkpoint folder inside ``root`` (a path elsewhere, a link) is refused."""
    pointer = root / POINTER
    if pointer.is_file():
        try:
            name = read_bytes(pointer, limit=4096, root=root).decode("utf-8", "replace").strip()
        except (OSError, AnyclError):  # not a pointer anycl wrote: the newest complete checkpoint instead
            name = ""
        target = pointed_checkpoint(root, name)
        if target is not None and (target / MARKER).is_file():
            return target
    done = complete_checkpoints(root)
    return done[-1][1] if done else None


def pointed_checkpoint(root: Path, name: str) -> Optional[Path]:
    """The folder a ``latest`` pointer holding ``name`` names: ``root/step-<k>`` (None for an empty pointer);
    a ConfigError for anything else, which could lead out of the run's folder."""
    if not name:
        return None
    target = root / name
    if STEP_NAME.match(name) is None or target.is_symlink():
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise ConfigError(
            f"{str(root / POINTER)!r} names {shown!r}, not a checkpoint folder inside {str(root)!r}; it should "
            f"hold the name of a step-N folder beside it (a link is not followed). Delete it (the newest checkpoint "
            f"is then resumed) or give resume_from=<checkpoint folder>"
        )
    return target


def recorded_run(path: Path) -> Optional[Dict[str, Any]]:
    """What identifies the run that wrote checkpoint ``path`` (the ``run`` entry of its marker, as
    :mod:`anycl.fitting.resume` recorded it); None when it records none (a run outside ``fit``, or an older
    anycl)."""
    try:
        info = read_json(path / MARKER, root=path)
    except (OSError, ValueError, AnyclError):
        return None
    run = info.get("run") if isinstance(info, dict) else None
    return run if isinstance(run, dict) else None


def resolve_resume(resume_from: Any, output_dir: Union[str, os.PathLike, None]) -> Optional[Path]:
    """The checkpoint folder to load for ``resume_from`` (None: train from scratch)."""
    if resume_from is None or resume_from is False:
        return None
    if resume_from == "latest" or resume_from is True:
        if not output_dir:
            raise ConfigError("resume_from='latest' needs output_dir (the folder whose checkpoints/ to resume from)")
        found = latest_checkpoint(checkpoint_root(output_dir))
        if found is None:
            log.info(
                "resume_from='latest': no checkpoint in %s yet; training from the start", checkpoint_root(output_dir)
            )
        else:
            check_checkpoint(found)
        return found
    path = Path(os.fspath(resume_from))
    if not path.is_dir():
        raise ConfigError(
            f"resume_from={os.fspath(resume_from)!r} is not a folder; give a checkpoint folder "
            f"(output_dir/checkpoints/step-N) or 'latest'"
        )
    if not (path / MARKER).is_file():
        raise ConfigError(
            f"{os.fspath(path)!r} is not a complete anycl checkpoint (it has no {MARKER}; a run killed "
            f"while writing leaves such a folder); use resume_from='latest' or another step"
        )
    check_checkpoint(path)
    return path


def check_checkpoint(path: Path) -> None:
    """Refuse a checkpoint folder that holds a pickle, a special file (a FIFO, a device) or a link out of it, or
    is not in this version's format (nothing is read but its JSON marker)."""
    check_tree(path)
    pickles = sorted(p.name for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ConfigError(
            f"checkpoint {str(path)!r} holds pickle file(s) {pickles}; anycl checkpoints are JSON + safetensors "
            f"only and anycl never unpickles (unpickling runs code). It was written by an older anycl (Accelerate's "
            f"format) or the files were planted; train from scratch or resume from a checkpoint this anycl wrote"
        )
    try:
        info = read_json(path / MARKER, root=path)
    except OSError as exc:
        raise ConfigError(f"{str(path / MARKER)!r} cannot be read (corrupt checkpoint): {exc}") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ConfigError(
            f"{str(path)!r} is not a checkpoint of this anycl version ({MARKER} has no "
            f"format {FORMAT!r}; older versions wrote pickles, which are not loaded)"
        )
    version = info.get("format_version", 0)
    if not isinstance(version, int):
        raise ConfigError(f"{str(path / MARKER)!r} is corrupt: its format_version is {version!r}, not a number")
    if version > FORMAT_VERSION:
        raise ConfigError(f"{str(path)!r} was written by a newer anycl; upgrade anycl to resume from it")
