"""The export-format registry: names → functions writing a model in another format.

An export format is a function ``fn(model, path, **options) -> str`` (the path it wrote) registered by name::

    @anycl.export.register("my-format")
    def export_my_format(model, path, modality=None):
        ...
        return path

or through the entry-point group ``anycl.exports`` of an installed package. ``model.export("my-format", path)``
(:func:`export`) runs it; the built-in formats are ``onnx`` (:mod:`anycl.export.to_onnx`) and
``sentence-transformers`` (:mod:`anycl.export.to_sentence_transformers`). Each format checks what it needs of the
tower itself (an adapter's ``export_formats`` lists the formats a modality can be written in besides anycl's own
folder and ONNX).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, List

from anycl.errors import ConfigError
from anycl.registry import Registry

EXPORTS = Registry("export format", entry_point_group="anycl.exports")


def register(name: str, *aliases: str, override: bool = False):
    """Decorator registering an export function ``fn(model, path, **options) -> str`` under ``name``."""

    def deco(fn):
        if not callable(fn) or inspect.isclass(fn):
            raise TypeError(f"export format {name!r} must be a function fn(model, path, **options) -> str")
        return EXPORTS.register(name, *aliases, override=override)(fn)

    return deco


def get(name: str) -> Callable[..., str]:
    """The export function registered as ``name`` (UnknownNameError, with a near miss, for an unknown one)."""
    return EXPORTS.lookup(name)


def names() -> List[str]:
    """Registered export formats."""
    return EXPORTS.names()


def export(model, format: str, path: str, **options: Any) -> str:
    """Write ``model`` in ``format`` at ``path`` with the format's ``options``; returns what the format wrote."""
    fn = get(format)
    params = inspect.signature(fn).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(list(params)[2:]))
        if unknown:
            valid = list(params)[2:]
            raise ConfigError(f"export format {format!r} has no option(s) {unknown}; its options are {valid}")
    return fn(model, path, **options)
