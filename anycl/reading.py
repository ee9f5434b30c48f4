"""Reading a folder that someone else may have written (a model folder, a checkpoint): what anycl opens and how
much of it it reads.

- :func:`check_tree`: every entry under a folder is a regular file or a folder; a symbolic link is followed only
  when it points inside the folder. A FIFO, a device, a socket or a link out of the folder is refused, naming it.
- :func:`open_regular`: opens one file without blocking (a FIFO opened for reading would wait for a writer) and
  refuses it unless it is a regular file inside ``root``.
- :func:`read_bytes` / :func:`read_json`: a regular file read whole only up to a limit; more is refused before
  anything is read. JSON nested deeper than Python can parse gives the same one-line error as broken JSON.

The limits (docs/scale.md, "What a model folder can and cannot do to you"): :data:`MAX_CONFIG_BYTES` for a JSON
configuration file, :data:`MAX_STATE_JSON_BYTES` for the JSON half of a checkpoint's state file,
:data:`MAX_HEADER_BYTES` for a safetensors header (the limit of the safetensors library itself).
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Optional, Type, Union

from .errors import AnyclError, ConfigError

MAX_CONFIG_BYTES = 16 * 2**20  # a JSON configuration file (anycl_config.json, modules.json, a manifest, ...)
MAX_STATE_JSON_BYTES = 2**30  # the JSON half of a state file (a checkpoint's optimiser, trainer, sampler)
MAX_HEADER_BYTES = 100_000_000  # a safetensors header: the safetensors library's own limit

# a file this large whose disk blocks hold under 1/SPARSE_RATIO of its length is mostly holes (a sparse file: a
# few KB on disk that reads as gigabytes); neither JSON nor weights compress that well on a compressing file system
SPARSE_MIN_BYTES = 16 * 2**20  # a JSON file
SPARSE_MIN_WEIGHTS_BYTES = 64 * 2**20  # a safetensors file
SPARSE_RATIO = 64

PathLike = Union[str, "os.PathLike[str]"]


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _outside(path: PathLike, root: PathLike) -> str:
    return (
        f"{os.fspath(path)} is a symbolic link to {os.path.realpath(path)}, outside the folder {os.fspath(root)}; "
        f"anycl reads only files inside it. Replace the link by a copy of the file"
    )


def inside(path: PathLike, root: PathLike) -> bool:
    """Whether ``path``, links resolved, lies in ``root`` (links resolved)."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def check_tree(root: PathLike, error: Type[AnyclError] = ConfigError) -> None:
    """Refuse anything under ``root`` that is not a regular file or a folder, and links that leave ``root``."""
    top = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(top, onerror=None, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    if not inside(p, top):
                        raise error(_outside(p, top))
                    st = os.stat(p)
            except OSError as exc:  # a link to nowhere, or a loop of links
                raise error(f"{p} cannot be read ({exc.strerror or exc}); remove it") from exc
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise error(f"{p} is {_kind(st.st_mode)}, not a regular file; anycl does not read it. Remove it")


def check_not_sparse(st: os.stat_result, path: PathLike, min_bytes: int, error: Type[AnyclError]) -> None:
    """Refuse a file longer than ``min_bytes`` whose disk blocks hold under 1/``SPARSE_RATIO`` of it (a sparse
    file); a file system that reports no blocks at all is not judged."""
    blocks = getattr(st, "st_blocks", 0)
    if st.st_size > min_bytes and 0 < blocks * 512 * SPARSE_RATIO < st.st_size:
        raise error(
            f"{os.fspath(path)} is {st.st_size:,} bytes long but only {blocks * 512:,} of them are on disk (a sparse "
            f"file, mostly holes); anycl does not read what the disk does not hold. If the file is genuine, copy it "
            f"without holes (cp --sparse=never)"
        )


def open_regular(path: PathLike, root: Optional[PathLike] = None, error: Type[AnyclError] = ConfigError) -> int:
    """A read-only descriptor of ``path``, which must be a regular file (inside ``root`` when given)."""
    path = os.fspath(path)
    if root is not None and not inside(path, root):
        raise error(_outside(path, root))
    try:  # O_NONBLOCK: opening a FIFO returns at once (and is refused below) instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise error(f"{path} cannot be opened ({exc.strerror or exc})") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{path} is {_kind(mode)}, not a regular file; anycl does not read it. Replace it by a file")
    return fd


def read_bytes(
    path: PathLike,
    limit: int = MAX_CONFIG_BYTES,
    root: Optional[PathLike] = None,
    error: Type[AnyclError] = ConfigError,
) -> bytes:
    """The whole of the regular file ``path``, refused (before any of it is read) when longer than ``limit``
    or when it is mostly holes (a sparse file)."""
    fd = open_regular(path, root, error)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if st.st_size > limit:
            raise error(
                f"{os.fspath(path)} is {st.st_size:,} bytes, more than the {limit:,} anycl reads from such a file "
                f"(docs/scale.md); it is not a file anycl wrote"
            )
        check_not_sparse(st, path, SPARSE_MIN_BYTES, error)
        data = f.read(st.st_size + 1)  # not read(limit): that would allocate the limit at once
    if len(data) > limit:  # grew while read
        raise error(f"{os.fspath(path)} is longer than the {limit:,} bytes anycl reads from such a file")
    return data


def parse_json(data: Union[bytes, str], where: str, error: Type[AnyclError] = ConfigError) -> Any:
    """``json.loads`` with its failures (broken, not UTF-8, nested too deeply) as ``error`` naming ``where``."""
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{where} is not valid JSON (truncated or corrupt?): {exc}") from exc
    except RecursionError:
        raise error(f"{where} is not a file anycl wrote: its JSON is nested too deeply to read") from None


def read_json(
    path: PathLike,
    limit: int = MAX_CONFIG_BYTES,
    root: Optional[PathLike] = None,
    error: Type[AnyclError] = ConfigError,
) -> Any:
    """:func:`read_bytes` parsed as JSON (see :func:`parse_json`)."""
    return parse_json(read_bytes(path, limit, root, error), os.fspath(path), error)
