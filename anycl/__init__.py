"""anycl — contrastive representation learning for text, audio and images behind one API.

>>> import anycl
>>> model = anycl.fit(pairs, modality="text")          # doctest: +SKIP
>>> model.encode(["a query"]).shape                     # doctest: +SKIP
>>> model.save("out/"); anycl.load("out/")              # doctest: +SKIP

Public surface: :func:`fit` (its options: :class:`FitConfig`), :func:`load`, :class:`ContrastiveModel`, and the registries
``anycl.losses``, ``anycl.adapters``, ``anycl.samplers`` (each with ``register``, ``get``, ``names``).
The building blocks for a custom loop live in ``anycl.data``, ``anycl.sampling``, ``anycl.batching``,
``anycl.training`` and ``anycl.evaluation``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from .version import __version__  # noqa: F401


def _mount_adapters() -> None:
    """``adapters/`` sits at the repository's top and installs as ``anycl.adapters``.

    An installed anycl finds it normally. When anycl is imported straight from a source checkout (no
    install, e.g. ``python -m pytest`` in a fresh clone), load the top-level folder under that name.
    """
    try:
        importlib.import_module(__name__ + ".adapters")
        return
    except ModuleNotFoundError as exc:
        if exc.name != __name__ + ".adapters":
            raise
    src = Path(__file__).resolve().parent.parent / "adapters" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        __name__ + ".adapters", src, submodule_search_locations=[str(src.parent)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load anycl's adapters from {src}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_mount_adapters()

# kept in this order: after _mount_adapters()
# isort: off
from . import adapters, losses  # type: ignore[attr-defined]  # noqa: E402  (adapters: mounted above)
from . import sampling as samplers  # noqa: E402
from .api import fit  # noqa: E402
from .fit_config import FitConfig  # noqa: E402
from . import evaluators  # noqa: E402  (STS, triplet, reranking, classification evaluators)
from .errors import AnyclError, ConfigError, DataError  # noqa: E402
from .model import ContrastiveModel, load  # noqa: E402
# isort: on

__all__ = [
    "fit",
    "FitConfig",
    "load",
    "ContrastiveModel",
    "losses",
    "adapters",
    "samplers",
    "evaluators",
    "AnyclError",
    "ConfigError",
    "DataError",
    "__version__",
]
