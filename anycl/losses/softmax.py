"""Softmax classification of pairs (Reimers & Gurevych 2019, SBERT's NLI objective; sentence-transformers'
``SoftmaxLoss``): a linear classifier over ``(u, v, |u − v|)`` (optionally ``u * v``) of each pair's two
embeddings predicts the pair's class (NLI: entailment / neutral / contradiction), with cross-entropy.

The data: (anchor, positive) pairs and a ``label`` column holding the integers ``0 … num_labels − 1``
(string labels such as ``"entailment"`` must be mapped to integers first; ``fit`` refuses any other value
before training, naming the row).

**The classifier is the loss's own**, not part of the encoder: ``build(width)`` sizes it once the model's
embedding width is known, its parameters are trained with the encoder's (the trainer optimises the model and
the loss as one module) and are in the run's checkpoints, but the saved model is the encoder alone — as in
sentence-transformers, whose ``model.save`` does not write the classifier either. To keep the classifier,
pass the loss as an object, ``loss=SoftmaxLoss(num_labels=3)``, and save ``loss.classifier`` after ``fit``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import ContrastiveLoss, check_pair
from .registry import register


@register("softmax", "softmax_classifier")
class SoftmaxLoss(ContrastiveLoss):
    """Cross-entropy of a linear classifier over the pair's combined embeddings (see the module docstring).

    Args:
        num_labels: the number of classes (NLI: 3). Required.
        concatenation_sent_rep: include u and v (default True).
        concatenation_sent_difference: include |u − v| (default True).
        concatenation_sent_multiplication: include u * v (default False).
        dim: the embedding width, to build the classifier at once (default: sized by ``build`` from the model).
    """

    in_batch_negatives = False
    accepts_negatives = False
    needs_labels = True

    def __init__(
        self,
        num_labels: Optional[int] = None,
        concatenation_sent_rep: bool = True,
        concatenation_sent_difference: bool = True,
        concatenation_sent_multiplication: bool = False,
        dim: Optional[int] = None,
    ):
        super().__init__()
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(
                f"softmax needs num_labels, the number of classes (an integer >= 2; NLI: 3), got {num_labels!r}: "
                f"loss_options={{'num_labels': 3}}"
            )
        self.num_labels = num_labels
        self.label_values = tuple(range(num_labels))
        self.parts = (
            ("rep",) * bool(concatenation_sent_rep)
            + ("difference",) * bool(concatenation_sent_difference)
            + ("multiplication",) * bool(concatenation_sent_multiplication)
        )
        if not self.parts:
            raise ValueError(
                "softmax: at least one of concatenation_sent_rep, concatenation_sent_difference and "
                "concatenation_sent_multiplication must be True"
            )
        self.classifier: Optional[nn.Linear] = None
        if dim is not None:
            self.build(dim)

    @property
    def num_vectors(self) -> int:
        return sum(2 if part == "rep" else 1 for part in self.parts)

    def build(self, embedding_dim: int) -> None:
        """Size the classifier for embeddings of ``embedding_dim`` (once; a classifier already made is kept)."""
        if self.classifier is None:
            self.classifier = nn.Linear(self.num_vectors * int(embedding_dim), self.num_labels)
        elif self.classifier.in_features != self.num_vectors * int(embedding_dim):
            raise ValueError(
                f"softmax: the classifier was built for {self.classifier.in_features // self.num_vectors}-wide "
                f"embeddings, the model's are {embedding_dim} wide"
            )

    def features(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The classifier's input: (u, v, |u − v|, u * v), the parts chosen, concatenated."""
        out = []
        for part in self.parts:
            out += [u, v] if part == "rep" else [(u - v).abs()] if part == "difference" else [u * v]
        return torch.cat(out, dim=1)

    def forward(self, anchor, positive, negative=None, labels=None):
        check_pair(anchor, positive, "softmax")
        if negative is not None:
            raise ValueError("softmax classifies (anchor, positive) pairs and takes no hard negatives")
        if labels is None:
            raise ValueError("softmax needs a 'label' column (the class of each pair: 0 … num_labels − 1)")
        if self.classifier is None:
            raise ValueError(
                "softmax: the classifier is not built (the model does not state its width); give loss_options="
                "{'dim': <embedding width>}"
            )
        labels = torch.as_tensor(labels, device=anchor.device).view(-1).long()
        bad = labels[(labels < 0) | (labels >= self.num_labels)]
        if bad.numel():
            raise ValueError(f"softmax: labels must be integers 0 … {self.num_labels - 1}, got {bad[0].item()!r}")
        x = self.features(anchor, positive).to(self.classifier.weight.dtype)
        return F.cross_entropy(self.classifier(x), labels)
