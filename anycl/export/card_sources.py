"""What a model card may say about where a model came from, without leaking the machine it was trained on.

- :func:`public_path` / :func:`public_text` / :func:`public_config`: an absolute or home-relative path is shown
  by its last two components (``/home/ada/runs/out/model`` → ``out/model``); relative paths, Hub ids and other
  values stay as they are. Cards use them everywhere, so a card pushed to the Hub names no local directory.
- :func:`hub_id_of_folder`: the Hub id of a local model folder, when the folder says it: the Hugging Face cache's
  own layout (``models--org--name/snapshots/<rev>``), else the folder's README naming the model in a loading
  snippet (``SentenceTransformer('org/name')``, ``from_pretrained("org/name")``, ``anycl.load("org/name")``)
  whose name is the README's title or the folder's name. A README that names the model's *own* base model
  (``base_model:``) is not read as the folder's id: that is the base of the base.
- :func:`folder_front_matter`: the YAML front matter of a local folder's README (for ``language``), read
  bounded and with ``yaml.safe_load``.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from anycl.errors import AnyclError
from anycl.reading import read_bytes

CARD_FILE = "README.md"
MAX_README_BYTES = 2 * 2**20  # a model card; larger ones are not read for provenance
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
_SNIPPET = re.compile(r"""(?:SentenceTransformer|from_pretrained|anycl\.load)\(\s*['"]([^'"\s]+)['"]""")
_CACHE = re.compile(r"(?:^|/)models--([^/]+?)--([^/]+)/snapshots/[^/]+/?$")
_ABSOLUTE = re.compile(r"""(?<![\w:/])(~|/)[^\s'"`,;)]+""")


def is_hub_id(name: Any) -> bool:
    """Whether ``name`` has the shape of a Hub repository id (``org/name``) and is not a local path."""
    if not isinstance(name, str) or not _HUB_ID.match(name):
        return False
    return not os.path.exists(os.path.expanduser(name))


def public_path(value: Any) -> Any:
    """An absolute (``/…``) or home (``~…``) path as its last two components; anything else unchanged."""
    if not isinstance(value, str) or not value.startswith(("/", "~")):
        return value
    parts = [p for p in Path(os.path.normpath(value)).parts if p not in ("/", "~")]
    return "/".join(parts[-2:]) if parts else "."


def public_text(text: Any) -> Any:
    """``text`` (e.g. a command line) with each absolute or home path in it shown as :func:`public_path` does."""
    if not isinstance(text, str):
        return text
    return _ABSOLUTE.sub(lambda m: public_path(m.group(0)), text)


def public_config(value: Any) -> Any:
    """A run config (nested dicts and lists) with every path-valued string shown as :func:`public_path` does."""
    if isinstance(value, dict):
        return {k: public_config(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_config(v) for v in value]
    return public_path(value)


def _readme(folder: str) -> Optional[str]:
    """The README.md of ``folder`` (None when there is none or it cannot be read): one save writes several cards,
    each asking of the same base-model folder, so a file is read once while it is unchanged."""
    path = os.path.join(folder, CARD_FILE)
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _read_readme(path, st.st_ino, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _read_readme(path: str, inode: int, mtime_ns: int, size: int) -> Optional[str]:
    try:  # (inode, mtime, size) in the key: a changed file is read again
        return read_bytes(path, MAX_README_BYTES).decode("utf-8", errors="replace")
    except (OSError, AnyclError):  # too large, not a regular file: no provenance from it
        return None


def folder_front_matter(folder: Any) -> Dict[str, Any]:
    """The YAML front matter of ``folder``'s README.md as a dict ({} when there is none or it is not YAML)."""
    if not isinstance(folder, str) or not os.path.isdir(os.path.expanduser(folder)):
        return {}
    text = _readme(os.path.expanduser(folder))
    if not text or not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def hub_id_of_folder(folder: Any) -> Optional[str]:
    """The Hub id a local model ``folder`` says it is (see the module's docstring); None when it says none."""
    if not isinstance(folder, str) or not os.path.isdir(os.path.expanduser(folder)):
        return None
    real = os.path.realpath(os.path.expanduser(folder)).replace(os.sep, "/")
    cached = _CACHE.search(real)
    if cached:
        return f"{cached.group(1)}/{cached.group(2)}"
    text = _readme(os.path.expanduser(folder))
    if not text:
        return None
    title = re.search(r"^#\s+(\S+)\s*$", text, re.MULTILINE)
    names = {os.path.basename(real.rstrip("/"))} | ({title.group(1)} if title else set())
    for candidate in _SNIPPET.findall(text):
        if _HUB_ID.match(candidate) and candidate.split("/")[1] in names:
            return candidate
    return None


def hub_base_model(name: Any) -> Optional[str]:
    """A base model as a Hub id: ``name`` itself when it is one, else the id its local folder states."""
    if is_hub_id(name):
        return name
    return hub_id_of_folder(name)


def language_of(name: Any) -> Optional[Any]:
    """The ``language`` a local base-model folder's card states (a code or a list of codes), else None."""
    lang = folder_front_matter(name).get("language")
    return lang if isinstance(lang, (str, list)) and lang else None
