"""Files and folders anycl writes: permissions, paths under a file, and the ``output_dir`` lock.

- :func:`apply_umask`: folders made with ``tempfile.mkdtemp`` are 0700 and some writers make 0600 files;
  what anycl hands over gets the process umask instead (0755 folders / 0644 files by default), so
  another account (a serving user) can read a saved model.
- :func:`check_parent`: a plain message when a path lies under an existing *file*.
- :func:`replace_folder`: a folder written beside its target swapped into place (models and checkpoints are
  written this way, so a failed write never leaves half a folder where a good one was). On Linux the two folders
  trade places in one step (``renameat2(RENAME_EXCHANGE)``), so the target path never stops naming a complete
  folder; elsewhere the old one is renamed aside first, and a reader may find the path missing for a moment.
- :class:`OutputLock`: ``output_dir/.anycl.lock`` (JSON: pid, host, start time) held while ``fit`` runs,
  so a second run on the same folder (a re-queued job beside a live one) refuses and names the live
  one. A lock whose process is gone (same host, pid not running) is stale and taken over, with a note.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Union

from .errors import ConfigError

log = logging.getLogger("anycl")

LOCK_FILE = ".anycl.lock"


def umask() -> int:
    """The process umask: from /proc on Linux (no change to it at all), else set and restored at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: os.PathLike) -> None:
    """Give ``path`` and everything under it the modes a plain ``open``/``mkdir`` would have:
    0o666 / 0o777 minus the umask."""
    mask = umask()
    fmode, dmode = 0o666 & ~mask, 0o777 & ~mask
    root = Path(path)
    if root.is_file():
        os.chmod(root, fmode)
        return
    os.chmod(root, dmode)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, dmode)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, fmode)


def check_parent(path: Union[str, os.PathLike], what: str = "the path") -> None:
    """Raise ConfigError when an ancestor of ``path`` exists and is not a folder."""
    p = Path(os.fspath(path)).expanduser().absolute()
    for parent in [p, *p.parents][1:]:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    f"cannot write {what} {os.fspath(path)!r}: {str(parent)!r} is a file, not a folder; "
                    f"choose a path that is not under a file"
                )
            return


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return False
    return True


class OutputLock:
    """An exclusive lock on an output folder for the duration of a run (use as a context manager or call
    :meth:`acquire` / :meth:`release`)."""

    def __init__(self, folder: Union[str, os.PathLike]):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.held = False

    def _owner(self) -> Optional[dict]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def acquire(self) -> OutputLock:
        check_parent(self.folder, "output_dir")
        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(str(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None:  # released meanwhile
                    continue
                pid, host = owner.get("pid"), owner.get("host")
                if isinstance(pid, int) and host == me["host"] and not _alive(pid):
                    log.info(
                        "output_dir %s: taking over the lock of process %d on %s, which is no longer running",
                        self.folder,
                        pid,
                        host,
                    )
                    stale = self.path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
                    try:
                        os.replace(self.path, stale)
                        os.remove(stale)
                    except FileNotFoundError:
                        pass
                    continue
                started = owner.get("started", "?")
                raise ConfigError(
                    f"output_dir {str(self.folder)!r} is in use by another anycl run (pid {pid} on host {host}, "
                    f"started {started}; lock file {str(self.path)!r}); wait for it to finish or choose another "
                    f"output_dir. If that run is dead (e.g. on another host), delete the lock file"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise ConfigError(f"cannot take the lock {str(self.path)!r} on output_dir (it keeps changing)")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = self._owner()
        if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        if getattr(self, "created", False):  # a run that failed early leaves no empty folder behind
            try:
                self.folder.rmdir()
            except OSError:
                pass

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` (both existing, same file system) in one step: True when done, False when
    this system cannot (not Linux, an old C library or kernel, a file system without it)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), os.fspath(a), None, os.fspath(b))


def replace_folder(new: Path, target: Path, old: Optional[Path] = None) -> None:
    """Put the finished folder ``new`` at ``target`` (same file system). An existing ``target`` trades places
    with ``new`` in one step where the system can (:func:`exchange`; then ``new`` holds the old folder, removed
    at once); elsewhere it is first renamed to ``old`` (default: a fresh name beside it; a given ``old`` left by
    an earlier run is removed first), then removed once ``new`` is in place."""
    if not target.exists():
        os.replace(new, target)
        return
    if exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)
        return
    if old is None:
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
    else:
        shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def reworded(exc: OSError, message: str) -> OSError:
    """An OSError of the same kind (and errno) as ``exc`` with ``message``, caused by ``exc``."""
    new = type(exc)(exc.errno, message) if exc.errno is not None else type(exc)(message)
    new.__cause__ = exc
    return new
