r"""Contrastive Tension (Carlsson et al. 2021, "Semantic Re-tuning with Contrastive Tension", ICLR): two copies of
the encoder, both trained, pulled together on identical sentences and apart on different ones — sentence-transformers'
``ContrastiveTensionLoss`` and ``ContrastiveTensionLossInBatchNegatives``.

A loss still sees embeddings only. It declares ``second_tower = True``, and the training module
(:class:`anycl.training.step.TrainingModule`) keeps a trainable copy of the model, made when training starts: the
copy embeds the ``anchor`` side, the model the ``positive`` side (sentence-transformers' ``model1`` and ``model2``:
its ``model2`` is the model passed in, the one used and saved after training; so is anycl's). The copy's
parameters are optimised with the model's and kept in checkpoints (a resumed run continues both); the saved model
is the model alone.

- ``contrastive_tension`` (ST ``ContrastiveTensionLoss``): pairs labelled 1 (the same sentence twice) or 0 (two
  sentences); :math:`L = \sum_i \mathrm{BCE}(a_i \cdot p_i, y_i)` (the dot product as the logit, summed over the
  batch as ST). One column of sentences is paired by the ``contrastive_tension`` sampler
  (:mod:`anycl.sampling.contrastive_tension`: ST's ``ContrastiveTensionDataLoader``, one identical pair then
  ``pos_neg_ratio − 1`` different ones); or give ``anchor``, ``positive`` and a 0/1 ``label``.
- ``contrastive_tension_in_batch`` (ST ``ContrastiveTensionLossInBatchNegatives``): one column of sentences, each
  embedded by both towers; the symmetric cross-entropy of the (B, B) cosine similarities times a learnt scale
  (:math:`e^{s}`, :math:`s` initialised at :math:`\log(1/\tau)`, no clamp, as ST).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch.nn.functional as F

from .base import ContrastiveLoss, as_float, check_pair, full_precision
from .infonce import InfoNCE
from .labelled_pairs import binary_labels
from .registry import register


def _one_column(name: str, columns: Sequence[str], negatives: Sequence[str]) -> Optional[str]:
    extra = [c for c in columns if c not in ("anchor",)]
    if extra:
        return (
            f"loss {name!r} (sentence-transformers' ContrastiveTensionLossInBatchNegatives) reads one column of "
            f"sentences, each embedded by both towers; the data also has {extra}: give only the sentences "
            f"(for pairs use loss='infonce'; labelled pairs: loss='contrastive_tension')"
        )
    return None


@register("contrastive_tension", "ct")
class ContrastiveTension(ContrastiveLoss):
    r"""sentence-transformers' ``ContrastiveTensionLoss``: binary cross-entropy on the dot product of the two
    towers' embeddings, :math:`\sum_i \mathrm{BCEWithLogits}(a_i \cdot p_i,\ y_i)` (a sum over the batch).

    Inputs: anchor (B, D) from the second tower, positive (B, D) from the model, labels (B,) of 0 and 1 (1: the
    same sentence). No hard negatives. See :mod:`anycl.losses.contrastive_tension`.
    """

    second_tower = True
    in_batch_negatives = False
    accepts_negatives = False
    label_values = (0, 1)
    accepts_guide = False
    single_column_sampler = "contrastive_tension"  # one column of sentences: paired by that sampler

    def forward(self, anchor, positive, negative=None, labels=None):
        check_pair(anchor, positive, "contrastive_tension")
        if negative is not None:
            raise ValueError("contrastive_tension scores (sentence, sentence, label) pairs; it takes no hard negatives")
        y = binary_labels(labels, anchor.shape[0], "contrastive_tension").to(anchor.device)
        with full_precision(anchor):
            a, p = as_float(anchor, positive)
            logits = (a * p).sum(dim=-1)
            return F.binary_cross_entropy_with_logits(logits, y, reduction="sum")

    @staticmethod
    def check_columns(columns: Sequence[str], negatives: Sequence[str]) -> Optional[str]:
        """Why the data's columns cannot feed this loss, or None (``fit`` raises it as a ConfigError)."""
        if negatives:
            return (
                f"loss 'contrastive_tension' scores pairs, without hard negatives; drop the columns {list(negatives)}"
            )
        if "positive" in columns and "label" not in columns:
            return (
                "loss 'contrastive_tension' scores pairs labelled 1 (the same sentence twice) or 0 (two different "
                "sentences); give a 'label' column of 0/1, or one column of sentences (paired by the "
                "'contrastive_tension' sampler, as sentence-transformers' ContrastiveTensionDataLoader)"
            )
        return None


@register("contrastive_tension_in_batch", "ct_in_batch", "contrastive_tension_in_batch_negatives")
class ContrastiveTensionInBatch(InfoNCE):
    r"""sentence-transformers' ``ContrastiveTensionLossInBatchNegatives``: with :math:`S_{ij} = \cos(a_i, p_j)
    \cdot e^{s}` (``a`` the second tower's embeddings of the batch's sentences, ``p`` the model's),
    :math:`\tfrac12(\mathrm{CE}(S, I) + \mathrm{CE}(S^\top, I))`; :math:`s` is a trained parameter starting at
    :math:`\log(1/\tau)`.

    Args:
        temperature: the initial :math:`\tau` (default 0.05: ST's ``scale=20``).
        normalize: cosine similarity (default); False: dot products (ST's ``similarity_fct=dot_score``).
        learn_temperature: train the scale (default True, as ST). max_scale: a clamp on the scale (default none).
    """

    registry_name = "contrastive_tension_in_batch"  # its own, not the InfoNCE class's it inherits
    second_tower = True
    accepts_negatives = False
    accepts_guide = False

    def __init__(
        self,
        temperature: float = 0.05,
        normalize: bool = True,
        learn_temperature: bool = True,
        max_scale: Optional[float] = None,
    ):
        super().__init__(
            temperature=temperature,
            symmetric=True,
            normalize=normalize,
            learn_temperature=learn_temperature,
            max_scale=math.inf if max_scale is None else max_scale,
        )

    def forward(self, anchor, positive, negative=None, labels=None, queue=None, rows=None, guide=None):
        if negative is not None:
            raise ValueError("contrastive_tension_in_batch takes one column of sentences, no hard negatives")
        return super().forward(anchor, positive, None, labels, queue, rows, guide)

    @staticmethod
    def check_columns(columns: Sequence[str], negatives: Sequence[str]) -> Optional[str]:
        """Why the data's columns cannot feed this loss, or None (``fit`` raises it as a ConfigError)."""
        return _one_column("contrastive_tension_in_batch", columns, negatives)
