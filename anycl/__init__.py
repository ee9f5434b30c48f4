"""anycl — contrastive representation learning for text, audio and images behind one API.

>>> import anycl
>>> model = anycl.fit(pairs, modality="text")          # doctest: +SKIP
>>> model.encode(["a query"]).shape                     # doctest: +SKIP
>>> model.save("out/"); anycl.load("out/")              # doctest: +SKIP

Public surface: :func:`fit` (its options: :class:`FitConfig`), :func:`load`, :class:`ContrastiveModel`, for two-tower
(cross-modal) models :class:`ZeroShotClassifier` and :func:`cross_modal_retrieval`, and the registries
``anycl.losses``, ``anycl.adapters``, ``anycl.samplers``, ``anycl.evaluators`` (the package ``anycl.evaluation``)
and ``anycl.exports`` (the package ``anycl.export``), each with ``register``, ``get``, ``names``.
The building blocks for a custom loop live in the stage packages ``anycl.data``, ``anycl.sampling``,
``anycl.training``, ``anycl.evaluation``, ... (docs/architecture.md shows the layers).
"""

from __future__ import annotations

from . import moved
from .version import __version__  # noqa: F401

moved.install()  # the module paths of anycl 0.1 import for one release, with a DeprecationWarning

from . import adapters, losses  # noqa: E402
from . import evaluation as evaluators  # noqa: E402  (the evaluator registry and the evaluators)
from . import export as exports  # noqa: E402  (the export-format registry: model.export(format, path))
from . import sampling as samplers  # noqa: E402
from .api import fit  # noqa: E402
from .errors import AnyclError, ConfigError, DataError  # noqa: E402
from .evaluation.crossmodal import ZeroShotClassifier, cross_modal_retrieval  # noqa: E402  (two-tower models)
from .model import ContrastiveModel, load  # noqa: E402
from .options.fit_config import FitConfig  # noqa: E402

__all__ = [
    "fit",
    "FitConfig",
    "load",
    "ContrastiveModel",
    "losses",
    "adapters",
    "samplers",
    "evaluators",
    "exports",
    "ZeroShotClassifier",
    "cross_modal_retrieval",
    "AnyclError",
    "ConfigError",
    "DataError",
    "__version__",
]
