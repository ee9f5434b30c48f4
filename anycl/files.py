"""Files and folders anycl writes: permissions, paths under a file, and the ``output_dir`` lock.

- :func:`apply_umask`: folders made with ``tempfile.mkdtemp`` are 0700 and some writers make 0600 files;
  what anycl hands over gets the process umask instead (0755 folders / 0644 files by default), so
  another account (a serving user) can read a saved model.
- :func:`check_parent`: a plain message when a path lies under an existing *file*.
- :func:`check_export_folder`: an export refuses a non-empty folder unless told to overwrite.
- :func:`replace_folder`: a folder written beside its target swapped into place (models and checkpoints are
  written this way, so a failed write never leaves half a folder where a good one was). On Linux the two folders
  trade places in one step (``renameat2(RENAME_EXCHANGE)``), so the target path never stops naming a complete
  folder; elsewhere the old one is renamed aside first, and a reader may find the path missing for a moment.
- :class:`OutputLock`: ``output_dir/.anycl.lock`` (JSON: pid, host, start time, the process's start time
  from ``/proc``) held while ``fit`` runs, so a second run on the same folder (a re-queued job beside a live
  one) refuses and names the live one. A lock is stale, and taken over with a note, when (on the same host)
  its process is gone, its pid now belongs to a process started at another time (a restarted container whose
  run is pid 1 again), or it names this very process, which holds no lock on the folder; an empty or
  unreadable lock file (a run killed while writing it) is taken over with a warning naming it.
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
from typing import Optional, Set, Union

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


def process_start(pid: int) -> Optional[str]:
    """When process ``pid`` started, as ``"<boot id>:<clock ticks since boot>"`` (Linux ``/proc``); None where
    unknown. Two processes that share a pid (one ended, a later one got its number) differ in it."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read(4096).decode("ascii", "replace")
        ticks = stat[stat.rindex(")") + 1 :].split()[19]  # field 22, starttime; the name in (...) may hold spaces
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            boot = f.read(64).decode("ascii", "replace").strip()
    except (OSError, ValueError, IndexError):
        return None
    return f"{boot}:{ticks}"


LOCK_GRACE_S = 2.0  # an empty lock file younger than this may be a lock another run is writing right now
_HELD: Set[str] = set()  # the lock files this process holds (resolved paths)


class OutputLock:
    """An exclusive lock on an output folder for the duration of a run (use as a context manager or call
    :meth:`acquire` / :meth:`release`)."""

    def __init__(self, folder: Union[str, os.PathLike]):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.held = False
        self.created = False
        self.token = ""

    def _owner(self) -> Optional[dict]:
        """The lock file's content: None when there is none, {} when it is empty or not a JSON object."""
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read(65536).decode("utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError):
            return {}

    def _stale(self, owner: dict, me: dict) -> Optional[str]:
        """Why the lock ``owner`` describes is stale (a note for the log), or None while its run may be alive."""
        pid, host = owner.get("pid"), owner.get("host")
        if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(host, str):
            return "empty or unreadable"
        if host != me["host"]:
            return None  # another machine's process cannot be looked at from here
        if pid == me["pid"]:  # this process: it holds the lock or it does not
            held = str(self.path.resolve()) in _HELD
            return None if held else f"of pid {pid}, this process's own number, which holds no lock on it"
        if not _alive(pid):
            return f"of process {pid} on {host}, which is no longer running"
        then, now = owner.get("process_start"), process_start(pid)
        if isinstance(then, str) and now is not None and then != now:
            return f"of pid {pid} on {host}, a number another process has now"
        return None

    def acquire(self) -> OutputLock:
        check_parent(self.folder, "output_dir")
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(
                f"output_dir {str(self.folder)!r} is a file, not a folder; choose a folder (new or empty) for the run"
            )
        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.token = os.urandom(8).hex()
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "process_start": process_start(os.getpid()),
            "token": self.token,
        }
        for _ in range(40):
            try:
                fd = os.open(str(self.path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None:  # released meanwhile
                    continue
                why = self._stale(owner, me)
                if why == "empty or unreadable" and _age(self.path) < LOCK_GRACE_S:
                    time.sleep(0.1)  # maybe a run writing its lock right now: look again
                    continue
                if why is None:
                    pid, host = owner.get("pid"), owner.get("host")
                    raise ConfigError(
                        f"output_dir {str(self.folder)!r} is in use by another anycl run (pid {pid} on host {host}, "
                        f"started {owner.get('started', '?')}; lock file {str(self.path)!r}); wait for it to finish "
                        f"or choose another output_dir. If that run is dead (e.g. on another host), delete the lock file"
                    ) from None
                (log.warning if why == "empty or unreadable" else log.info)(
                    "output_dir %s: taking over the lock %s (%s)", self.folder, self.path, why
                )
                stale = self.path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
                try:
                    os.replace(self.path, stale)
                    os.remove(stale)
                except FileNotFoundError:
                    pass
                continue
            _HELD.add(str(self.path.resolve()))  # before its content: a thread of this process reading it is refused
            self.held = True
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            return self
        raise ConfigError(
            f"cannot take the lock {str(self.path)!r} on output_dir (it keeps changing); if no other run uses "
            f"{str(self.folder)!r}, delete that file"
        )

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        _HELD.discard(str(self.path.resolve()))
        owner = self._owner()
        if owner and owner.get("token") == self.token:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        if self.created:  # a run that failed early leaves no empty folder behind
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


def _age(path: Path) -> float:
    """Seconds since ``path`` was last written (0 when it cannot be read)."""
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def check_export_folder(path: Union[str, os.PathLike], overwrite: bool, what: str = "the export") -> None:
    """Refuse to write ``what`` into ``path`` when it is a file, or a folder that is not empty and ``overwrite``
    is not given (its files of the same names would be replaced): a FileExistsError naming what is there."""
    p = Path(os.fspath(path))
    check_parent(p, what)
    if p.exists() and not p.is_dir():
        raise FileExistsError(f"{os.fspath(path)!r} is a file, not a folder; give a folder (new or empty) for {what}")
    if overwrite or not p.is_dir():
        return
    names = sorted(c.name for c in p.iterdir())
    if names:
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        raise FileExistsError(
            f"{os.fspath(path)!r} is not empty (it holds {shown}); {what} would replace files there. Choose an "
            f"empty or new folder, or pass overwrite=True (files of the same names are replaced, others kept)"
        )


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
