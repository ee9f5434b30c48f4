"""Classification (any modality): kNN and linear-probe accuracy on a seeded, stratified split of one labelled
set (``knn@k_accuracy``, ``linear_probe_accuracy``)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from anycl.data.inputs import Rows
from anycl.errors import ConfigError, DataError

from .base import register
from .knn import labelled
from .linear_probe import ProbeEvaluator


@register("classification")
class ClassificationEvaluator(ProbeEvaluator):
    """kNN and linear-probe accuracy on a seeded, stratified split of one labelled set (any modality).

    Args:
        items, labels: the labelled items. test_fraction: share held out for testing. k: kNN neighbours.
    """

    def __init__(
        self,
        items: Sequence[Any],
        labels: Sequence[Any],
        test_fraction: float = 0.2,
        seed: int = 0,
        k: int = 5,
        batch_size: int = 64,
        modality: Optional[str] = None,
        linear: bool = True,
    ):
        if not 0 < test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if len(set(map(repr, labels))) < 2:
            raise DataError("classification evaluation needs at least two distinct labels")
        from sklearn.model_selection import train_test_split  # lazy: scikit-learn

        keys = [repr(y) for y in labels]
        idx = list(range(len(items)))
        try:
            tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=keys)
        except ValueError:  # a class with a single item cannot be stratified
            tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed)
        items, labels = list(items), list(labels)
        super().__init__(
            [items[i] for i in tr],
            [labels[i] for i in tr],
            [items[i] for i in te],
            [labels[i] for i in te],
            k=k,
            batch_size=batch_size,
            modality=modality,
            linear=linear,
        )

    # one labelled set, split here (not a train set besides, as the probe's)
    @classmethod
    def from_rows(  # type: ignore[override]
        cls, rows: Rows, seed: int = 0, k: int = 5, batch_size: int = 64
    ) -> ClassificationEvaluator:
        return cls(*labelled(rows, "classification evaluation"), seed=seed, k=k, batch_size=batch_size)
