"""How good the embeddings are: retrieval, kNN and linear-probe evaluators (``embedding_evaluators``); STS,
triplet, reranking and classification evaluators (``pair_evaluators``); cross-modal retrieval and zero-shot
classification (``crossmodal``); the online probe (``probe``).

Layer 5: imports the kernel and layers 1-4.
"""

from anycl.moved import forward

from .embedding_evaluators import (
    KNNEvaluator,
    ProbeEvaluator,
    RetrievalEvaluator,
    knn_accuracy,
    linear_probe_accuracy,
)

__getattr__ = forward(__name__, __file__)  # the old module anycl.evaluation's other names, deprecated

__all__ = ["KNNEvaluator", "ProbeEvaluator", "RetrievalEvaluator", "knn_accuracy", "linear_probe_accuracy"]
