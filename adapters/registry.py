"""The modality-adapter registry: names → adapter classes (``anycl.adapters.get("text")``)."""

import os
from typing import Any, Callable

from anycl.registry import Registry

ADAPTERS = Registry("modality adapter", entry_point_group="anycl.adapters")
register = ADAPTERS.register


def get(name: str, **options):
    """Build the adapter registered as ``name`` with ``options``."""
    return ADAPTERS.get(name, **options)


def names():
    """Registered modality names."""
    return ADAPTERS.names()


def file_extensions(modality: str) -> tuple:
    """The file extensions a folder of ``modality`` items is read with (the registered adapter's)."""
    return tuple(getattr(ADAPTERS.lookup(modality), "file_extensions", ()))


def file_reader(*modalities: str) -> Callable[[str], Any]:
    """``read(path) -> item`` for the files of a folder data set: each file by the adapter (of ``modalities``)
    whose ``file_extensions`` hold its suffix, through its ``item_from_file`` (the path itself for audio and
    images, which ``load`` decodes; the file's text for text). A suffix no adapter claims gives the path."""
    by_suffix: dict = {}
    for m in modalities:
        cls = ADAPTERS.lookup(m)
        for ext in getattr(cls, "file_extensions", ()):
            by_suffix.setdefault(ext.lower(), getattr(cls, "item_from_file", None))

    def read(path: str) -> Any:
        fn = by_suffix.get(os.path.splitext(path)[1].lower())
        return path if fn is None else fn(path)

    return read
