"""Removing checkpoints (:mod:`anycl.training.checkpoint`): only what anycl wrote under ``output_dir/checkpoints``,
the rule a model folder's manifest gives ``save`` (:func:`anycl.model.folder.owned_entries`).

anycl's entries in ``checkpoints/`` are the folders ``step-<k>``, ``.tmp-step-<k>`` (a write in progress, or one
killed) and ``.old-step-<k>`` (a swap killed half-way), the pointer ``latest`` (it holds a ``step-<k>`` name) and
its temporary ``.latest.tmp``. Inside a checkpoint folder anycl's files are the ones its marker lists under
``files`` (the manifest of the folder) and the names anycl gives checkpoint files (``model.json``,
``rng-0.safetensors``, ...: :data:`FILE_NAMES`). Anything else (a user's notes, a folder of their own, a link)
stays where it is: a checkpoint folder that still holds such an entry once anycl's files are gone is kept (it is
no longer a checkpoint: its marker is gone), with a warning naming what was kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import List, Set

from .checkpoint_find import MARKER, POINTER, STEP_NAME

log = logging.getLogger("anycl")

ENTRY_NAMES = re.compile(r"^(\.tmp-|\.old-)?step-\d+$")  # the folders anycl makes in checkpoints/
FILE_NAMES = re.compile(r"^(model|optimizer|scheduler|scaler|trainer|rng-\d+)\.(json|safetensors)$")
_MAX_MARKER_BYTES = 1 << 20


def _listed(folder: Path) -> Set[str]:
    """The plain file names the marker of ``folder`` lists as written by anycl (none when it lists none)."""
    marker = folder / MARKER
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > _MAX_MARKER_BYTES:
            return set()
        names = json.loads(marker.read_text()).get("files", [])
    except (OSError, ValueError, AttributeError, RecursionError):
        return set()
    if not isinstance(names, list):
        return set()
    return {
        n
        for n in names
        if isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\\" not in n and "\0" not in n
    }


def written_files(folder: Path) -> Set[str]:
    """The names of the files in checkpoint folder ``folder`` that anycl wrote."""
    return {p.name for p in folder.iterdir() if FILE_NAMES.match(p.name)} | _listed(folder) | {MARKER}


def remove_checkpoint(folder: Path) -> List[str]:
    """Remove anycl's files from the checkpoint folder ``folder`` (its marker first, so that a removal cut short
    leaves no folder that passes for complete), then the folder once it is empty. Returns the names left in it
    (the user's), sorted; the folder stays when there are any."""
    if folder.is_symlink() or not folder.is_dir():
        return []
    ours = written_files(folder)
    for name in [MARKER] + sorted(ours - {MARKER}):
        p = folder / name
        if p.is_symlink() or p.is_file():  # anycl writes files, never folders, inside a checkpoint
            try:
                p.unlink()
            except FileNotFoundError:
                pass
    left = sorted(p.name for p in folder.iterdir())
    if not left:
        folder.rmdir()
    return left


def _is_pointer(p: Path) -> bool:
    """Whether ``p`` is a pointer file as anycl writes it (a ``step-<k>`` name, or nothing)."""
    try:
        if p.is_symlink() or not p.is_file() or p.stat().st_size > 256:
            return False
        text = p.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return text == "" or STEP_NAME.match(text) is not None


def clear_checkpoints(root: Path) -> List[str]:
    """Remove every checkpoint anycl wrote under ``root`` (``output_dir/checkpoints``), and ``root`` itself when
    nothing else is left in it. Returns what was kept (the user's entries), logged in a warning."""
    if root.is_symlink() or not root.is_dir():
        return []
    kept: List[str] = []
    for p in sorted(root.iterdir()):
        if ENTRY_NAMES.match(p.name) and p.is_dir() and not p.is_symlink():
            left = remove_checkpoint(p)
            if left:
                kept.append(f"{p.name}/{{{', '.join(left)}}}")
        elif p.name in (POINTER, f".{POINTER}.tmp") and _is_pointer(p):
            p.unlink()
        else:
            kept.append(p.name)
    if kept:
        log.warning("%s: removed anycl's checkpoints and kept %s, which anycl did not write", root, ", ".join(kept))
    else:
        try:
            root.rmdir()
        except OSError:
            pass
    return kept


def keep_users_files(old: Path, new: Path) -> None:
    """Before checkpoint folder ``new`` replaces ``old`` (the same step written again): anycl's files of ``old``
    are removed and the user's entries move into ``new``, so the swap loses none of them."""
    for name in remove_checkpoint(old):
        if not os.path.lexists(new / name):
            os.replace(old / name, new / name)
    if old.is_dir() and not old.is_symlink() and not any(old.iterdir()):
        old.rmdir()
