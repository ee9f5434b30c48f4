"""Modality adapters, installed as ``anycl.adapters`` (the folder sits at the repository's top).

``anycl.adapters.get("text")`` builds the text adapter; ``names()`` lists the registered modalities;
third parties add theirs with ``@anycl.adapters.register("lidar")`` or through the entry-point group
``anycl.adapters`` of an installed package.
"""
from anycl.registry import Registry

ADAPTERS = Registry("modality adapter", entry_point_group="anycl.adapters")
register = ADAPTERS.register


def get(name: str, **options):
    """Build the adapter registered as ``name`` with ``options``."""
    return ADAPTERS.get(name, **options)


def names():
    """Registered modality names."""
    return ADAPTERS.names()


from .base import Adapter, item_key  # noqa: E402
from . import text as _text  # noqa: E402,F401  (registers "text")
from .text import TextAdapter  # noqa: E402
from . import audio as _audio  # noqa: E402,F401  (registers "audio")
from .audio import AudioAdapter  # noqa: E402
from . import image as _image  # noqa: E402,F401  (registers "image")
from .image import ImageAdapter  # noqa: E402

__all__ = ["ADAPTERS", "Adapter", "AudioAdapter", "ImageAdapter", "TextAdapter", "get", "item_key", "names",
           "register"]
