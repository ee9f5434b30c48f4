"""Modality adapters, installed as ``anycl.adapters`` (the folder sits at the repository's top).

``anycl.adapters.get("text")`` builds the text adapter; ``names()`` lists the registered modalities;
third parties add theirs with ``@anycl.adapters.register("lidar")`` or through the entry-point group
``anycl.adapters`` of an installed package.
"""

# kept in this order: the built-in adapters register in it
# isort: off
from .registry import ADAPTERS, file_extensions, file_reader, get, names, register
from .base import Adapter, item_key
from . import text as _text  # noqa: F401  (registers "text")
from .text import TextAdapter
from . import audio as _audio  # noqa: F401  (registers "audio")
from .audio import AudioAdapter
from . import image as _image  # noqa: F401  (registers "image")
from .image import ImageAdapter
# isort: on

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AudioAdapter",
    "ImageAdapter",
    "TextAdapter",
    "file_extensions",
    "file_reader",
    "get",
    "item_key",
    "names",
    "register",
]
