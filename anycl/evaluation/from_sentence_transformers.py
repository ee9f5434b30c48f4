"""sentence-transformers' evaluators (``InformationRetrievalEvaluator``, ``EmbeddingSimilarityEvaluator``,
``TripletEvaluator``, ``BinaryClassificationEvaluator``, ``SequentialEvaluator``, …) run on an anycl model.

``fit(eval_dataset=<an ST evaluator>)`` (or ``fit(evaluator=...)``) wraps it in :class:`SentenceTransformersEvaluator`:
at each evaluation the ST evaluator is called on :class:`SentenceTransformerView`, which gives it what it asks of
a ``SentenceTransformer`` (``encode``, ``encode_query``, ``encode_document``, ``similarity``,
``similarity_fn_name``, ``device``, ``model_card_data``) from the anycl model. Its metrics (ST's names, prefixed by
the evaluator's ``name``) are logged, and its ``primary_metric`` and ``greater_is_better`` drive ``keep_best`` and
early stopping. Embeddings are ``model.encode``'s (L2-normalised unless the evaluator passes
``normalize_embeddings=False``), the ones a sentence-transformers export of the tower gives.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from anycl.errors import ConfigError

from .base import Evaluator

_ENCODE_OPTIONS = frozenset(  # ST's encode arguments that anycl's encode takes by the same name
    {
        "show_progress_bar",
        "batch_size",
        "convert_to_numpy",
        "convert_to_tensor",
        "normalize_embeddings",
        "precision",
        "prompt_name",
        "prompt",
        "truncate_dim",
        "device",
    }
)


def is_sentence_transformers_evaluator(obj: Any) -> bool:
    """Whether ``obj`` is one of sentence-transformers' evaluators (an instance of its evaluator base class)."""
    return any(
        c.__module__.startswith("sentence_transformers.") and c.__name__ in ("SentenceEvaluator", "BaseEvaluator")
        for c in type(obj).__mro__
    )


class _CardData:
    """What an ST evaluator stores its metrics in (``model.model_card_data``): anycl records them itself."""

    def set_evaluation_metrics(self, *args: Any, **kwargs: Any) -> None:
        return None


class SentenceTransformerView:
    """An anycl model as sentence-transformers' evaluators see a ``SentenceTransformer``."""

    def __init__(self, model: Any):
        self.model = model
        self.model_card_data = _CardData()

    @property
    def device(self) -> torch.device:
        param = next(self.model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")

    @property
    def similarity_fn_name(self) -> str:
        return getattr(self.model, "similarity_fn_name", "cosine")

    def similarity(self, a: Any, b: Any) -> torch.Tensor:
        return self.model.similarity(a, b)

    def eval(self) -> SentenceTransformerView:
        self.model.eval()
        return self

    @staticmethod
    def _options(kwargs: Dict[str, Any]) -> Dict[str, Any]:
        unknown = sorted(k for k, v in kwargs.items() if k not in _ENCODE_OPTIONS and v is not None)
        if unknown:
            raise ConfigError(
                f"a sentence-transformers evaluator asked encode for {unknown}, which anycl does not take"
            )
        return {k: v for k, v in kwargs.items() if k in _ENCODE_OPTIONS and v is not None}

    def encode(self, sentences: Any, **kwargs: Any) -> Any:
        return self.model.encode(sentences, **self._options(kwargs))

    def encode_query(self, sentences: Any, **kwargs: Any) -> Any:
        return self.model.encode_query(sentences, **self._options(kwargs))

    def encode_document(self, sentences: Any, **kwargs: Any) -> Any:
        return self.model.encode_document(sentences, **self._options(kwargs))


class SentenceTransformersEvaluator(Evaluator):
    """A sentence-transformers evaluator as an anycl evaluator (see the module's docstring)."""

    name = "sentence-transformers"

    def __init__(self, evaluator: Any):
        self.evaluator = evaluator
        self.primary_metric: Optional[str] = getattr(evaluator, "primary_metric", None)
        self.greater_is_better: bool = bool(getattr(evaluator, "greater_is_better", True))
        # ST evaluators name their primary metric when first called: keep_best / early stopping read it then
        self.primary_metric_after_call = self.primary_metric is None

    def describe(self, rows: int) -> str:
        return f"sentence-transformers' {type(self.evaluator).__name__}"

    def __call__(self, model: Any) -> Dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            got = self.evaluator(SentenceTransformerView(model))
        finally:
            model.train(was_training)
        if not isinstance(got, dict):  # ST evaluators before v3 returned one float: their primary score
            return {self.primary_metric or "score": float(got)}
        metrics = {k: float(v) for k, v in got.items() if isinstance(v, (int, float))}
        self.primary_metric = getattr(self.evaluator, "primary_metric", None) or self.primary_metric
        self.greater_is_better = bool(getattr(self.evaluator, "greater_is_better", self.greater_is_better))
        return metrics
