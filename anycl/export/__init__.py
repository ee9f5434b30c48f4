"""The model in other formats, one module per format, each registered by name in ``registry`` (``register``,
``get``, ``names``, ``export``; entry-point group ``anycl.exports``): ONNX (``to_onnx``, ``"onnx"``) and
sentence-transformers (``to_sentence_transformers``, ``"sentence-transformers"``), and a named image backbone's
own formats (``to_backbone``: ``"torchvision"``, ``"timm"``, ``"transformers"``). ``card`` writes the model card
every format carries. ``model.export(format, path, **options)`` dispatches through the registry.

Layer 3: imports the kernel and layers 1-2 (``data``, ``search``, ``options``, ``losses``, ``adapters``).
"""

# isort: off  (the built-in formats register on import)
from . import to_backbone as _to_backbone  # noqa: F401  (registers "torchvision", "timm", "transformers")
from . import to_onnx as _to_onnx  # noqa: F401  (registers "onnx")
from . import to_sentence_transformers as _to_st  # noqa: F401  (registers "sentence-transformers")
from .registry import EXPORTS, export, get, names, register

# isort: on

__all__ = ["EXPORTS", "export", "get", "names", "register"]
