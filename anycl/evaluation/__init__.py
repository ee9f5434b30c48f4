"""How good the embeddings are. One module per evaluator family, each registered by name (``anycl.evaluation.names()``):
``retrieval`` (nDCG, MRR, MAP, recall over a corpus), ``knn`` (leave-one-out kNN accuracy), ``linear_probe``
(kNN + logistic regression on a train/test split: ``probe``), ``classification`` (the same on a seeded split of one
set), ``sts``, ``triplet``, ``reranking``, ``crossmodal`` (``cross_modal_retrieval`` both ways, zero-shot
classification, freezing towers). ``base`` holds the :class:`Evaluator` contract and the registry (``register``,
``get``, ``names``; entry-point group ``anycl.evaluators``); ``choose`` the one decision of which evaluator a data
set gets (:func:`build_evaluator`); ``probe`` the online probe of ``fit(probe=...)``.

Layer 5: imports the kernel and layers 1-4.
"""

from anycl.moved import forward

# isort: off  (the built-in evaluators register in this order)
from .base import EVALUATORS, Evaluator, at_widths, get, lookup, names, primary_metric, register
from .choose import build_evaluator
from .classification import ClassificationEvaluator
from .crossmodal import CrossModalRetrievalEvaluator, ZeroShotClassifier, cross_modal_retrieval
from .knn import KNNEvaluator, knn_accuracy, knn_hits, knn_votes
from .linear_probe import ProbeEvaluator, linear_probe_accuracy, linear_probe_hits
from .reranking import RerankingEvaluator, reranking_metrics
from .retrieval import RetrievalEvaluator, retrieval_metrics
from .sts import STSEvaluator, pearson, spearman
from .triplet import TripletEvaluator

# isort: on

__getattr__ = forward(__name__, __file__)  # the old module anycl.evaluation's other names, deprecated

__all__ = [
    "EVALUATORS",
    "ClassificationEvaluator",
    "CrossModalRetrievalEvaluator",
    "Evaluator",
    "KNNEvaluator",
    "ProbeEvaluator",
    "RerankingEvaluator",
    "RetrievalEvaluator",
    "STSEvaluator",
    "TripletEvaluator",
    "ZeroShotClassifier",
    "at_widths",
    "build_evaluator",
    "cross_modal_retrieval",
    "get",
    "knn_accuracy",
    "knn_hits",
    "knn_votes",
    "linear_probe_accuracy",
    "linear_probe_hits",
    "lookup",
    "names",
    "pearson",
    "primary_metric",
    "register",
    "reranking_metrics",
    "retrieval_metrics",
    "spearman",
]
