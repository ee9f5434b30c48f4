"""A Unix socket bound at a path of any length: the crafted-folder tests place one where a model file should be."""

import os
import socket
from pathlib import Path


def bind_unix_socket(path: Path) -> socket.socket:
    """A socket bound at ``path`` (the caller closes it; the socket file stays). The address is the file's name
    in its folder, bound from there, because an AF_UNIX address holds at most 107 bytes and the test folders under
    pytest-xdist's worker directories are longer than that."""
    s = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        s.bind(path.name)
    except BaseException:
        s.close()
        raise
    finally:
        os.chdir(cwd)
    return s
