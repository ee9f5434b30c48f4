"""kNN and linear-probe accuracy of frozen embeddings on a labelled train/test split (``anycl eval --train``).
The logistic regression is scikit-learn's, on standardised embeddings."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from anycl.data.inputs import Rows
from anycl.errors import DataError

from .base import Evaluator, register
from .knn import knn_accuracy, labelled


def linear_probe_hits(
    train_emb: torch.Tensor,
    train_labels: Sequence[Any],
    test_emb: torch.Tensor,
    test_labels: Sequence[Any],
    C: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """(N,) bool: whether a logistic regression trained on frozen (standardised) embeddings predicts each test
    item's label (:func:`linear_probe_accuracy` is their mean; per item, for paired intervals)."""
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn: slow to import, only where it is used
    from sklearn.pipeline import make_pipeline  # lazy: scikit-learn: slow to import, only where it is used
    from sklearn.preprocessing import StandardScaler  # lazy: scikit-learn: slow to import, only where it is used

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    clf.fit(np.asarray(train_emb, dtype=np.float64), [repr(y) for y in train_labels])
    return clf.predict(np.asarray(test_emb, dtype=np.float64)) == np.asarray([repr(y) for y in test_labels])


def linear_probe_accuracy(
    train_emb: torch.Tensor,
    train_labels: Sequence[Any],
    test_emb: torch.Tensor,
    test_labels: Sequence[Any],
    C: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
) -> float:
    """Accuracy of a logistic regression trained on frozen (standardised) embeddings."""
    return float(linear_probe_hits(train_emb, train_labels, test_emb, test_labels, C, max_iter, seed).mean())


@register("probe")
class ProbeEvaluator(Evaluator):
    """kNN and linear-probe accuracy of frozen embeddings on a labelled train/test split.

    Args:
        train_items, train_labels, test_items, test_labels: the labelled split.
        k: neighbours for kNN. modality: tower to embed with. linear: also the linear probe.
    """

    def __init__(
        self,
        train_items,
        train_labels,
        test_items,
        test_labels,
        k: int = 5,
        batch_size: int = 64,
        modality: Optional[str] = None,
        linear: bool = True,
        temperature: Optional[float] = None,
    ):
        self.train_items, self.train_labels = list(train_items), list(train_labels)
        self.test_items, self.test_labels = list(test_items), list(test_labels)
        self.k, self.batch_size, self.modality, self.linear = k, batch_size, modality, linear
        self.temperature = temperature
        self.primary_metric = "linear_probe_accuracy" if linear else f"knn@{k}_accuracy"

    @classmethod
    def from_rows(cls, rows: Rows, train: Optional[Rows] = None, k: int = 5, batch_size: int = 64) -> ProbeEvaluator:
        """``rows``: the labelled test items; ``train``: the labelled training items (``anycl eval --train``)."""
        if train is None:
            raise DataError(
                "probe evaluation needs labelled training items besides the test items (anycl eval --train DATA; "
                "in fit: probe=... with eval_dataset={'train': ..., 'test': ...})"
            )
        return cls(
            *labelled(train, "the probe's training data"),
            *labelled(rows, "probe evaluation"),
            k=k,
            batch_size=batch_size,
        )

    def describe(self, rows: int) -> str:
        return f"kNN and linear probe: {len(self.train_items)} training, {len(self.test_items)} test items"

    def __call__(self, model) -> Dict[str, float]:
        tr, te = self.embed(model, [(self.train_items, self.modality), (self.test_items, self.modality)])
        out = {
            f"knn@{self.k}_accuracy": knn_accuracy(
                tr, self.train_labels, te, self.test_labels, self.k, self.temperature
            )
        }
        if self.linear:
            out["linear_probe_accuracy"] = linear_probe_accuracy(tr, self.train_labels, te, self.test_labels)
        return out
