"""``sampler="contrastive_tension"``: one column of sentences paired as sentence-transformers'
``ContrastiveTensionDataLoader`` pairs them, for ``loss="contrastive_tension"`` (:mod:`anycl.losses.contrastive_tension`,
which picks this sampler itself when the data is one column).

Each epoch (seeded by ``seed`` and the epoch) the rows are shuffled and read in order; a batch of ``batch_size``
pairs takes, for pair k, the next sentence s₁ and — when k is a multiple of ``pos_neg_ratio`` — s₁ again (label 1,
the positive pair), else the next sentence s₂ (label 0). So each batch holds ``batch_size / pos_neg_ratio`` positive
pairs, and ``2·batch_size − batch_size / pos_neg_ratio`` sentences; the epoch has as many whole batches as the rows
fill (the rest wait for the next epoch's shuffle), as ST's loader. The pairs reach the loss as rows
``{"anchor": s₁, "positive": s₂, "label": 1 | 0}``.

ST shuffles with Python's global ``random``; this sampler with its own seeded generator, so the batches are the
same in kind (ratio, order of positive and negative pairs) but not the same sentences as an ST run's.
"""

from __future__ import annotations

import random
from typing import Iterator, List, Sequence

from anycl.data.inputs import LABEL, Rows
from anycl.errors import ConfigError

from .base import Sampler, register


def sentences_per_batch(batch_size: int, pos_neg_ratio: int) -> int:
    """Sentences one batch of ``batch_size`` pairs reads: one per positive pair, two per negative pair."""
    positives = -(-batch_size // pos_neg_ratio)  # pairs 0, ratio, 2·ratio, ...
    return 2 * batch_size - positives


def ct_pairs(rows: Rows, indices: Sequence[int], pos_neg_ratio: int) -> List[dict]:
    """The pairs of one batch read from ``indices`` in order (the module docstring's rule)."""
    out: List[dict] = []
    position = 0
    while position < len(indices):
        first = rows[indices[position]]["anchor"]
        position += 1
        if len(out) % pos_neg_ratio == 0:
            out.append({"anchor": first, "positive": first, LABEL: 1})
        elif position < len(indices):
            out.append({"anchor": first, "positive": rows[indices[position]]["anchor"], LABEL: 0})
            position += 1
    return out


@register("contrastive_tension", "ct")
class ContrastiveTensionSampler(Sampler):
    """Batches of one identical pair, then ``pos_neg_ratio − 1`` pairs of two sentences (see the module docstring).

    Args:
        pos_neg_ratio: pairs per positive pair (ST's default 8: 1 positive, 7 negatives); the batch size must be
            a multiple of it.
        seed: base seed of the shuffle.
    """

    def __init__(self, pos_neg_ratio: int = 8, seed: int = 0):
        if isinstance(pos_neg_ratio, bool) or not isinstance(pos_neg_ratio, int) or pos_neg_ratio < 1:
            raise ConfigError(f"contrastive_tension sampler: pos_neg_ratio must be an int >= 1, got {pos_neg_ratio!r}")
        self.pos_neg_ratio = pos_neg_ratio
        self.seed = int(seed)

    def plan(self, rows: Rows, epoch: int, batch_size: int) -> List[List[int]]:
        if rows.has_positive:
            raise ConfigError(
                "sampler 'contrastive_tension' pairs one column of sentences; the data has a 'positive' column "
                "(pairs with a 0/1 'label' train with the default sampler)"
            )
        if batch_size % self.pos_neg_ratio:
            raise ConfigError(
                f"sampler 'contrastive_tension': batch_size={batch_size} must be a multiple of pos_neg_ratio="
                f"{self.pos_neg_ratio} (each batch holds batch_size / pos_neg_ratio positive pairs)"
            )
        per_batch = sentences_per_batch(batch_size, self.pos_neg_ratio)
        if len(rows) < per_batch:
            raise ConfigError(
                f"sampler 'contrastive_tension': a batch of {batch_size} pairs reads {per_batch} sentences "
                f"(2·batch_size − batch_size/pos_neg_ratio); the data has {len(rows)}: give more sentences or a "
                f"smaller batch_size"
            )
        order = list(range(len(rows)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return [order[b * per_batch : (b + 1) * per_batch] for b in range(len(rows) // per_batch)]

    def rows_for(self, rows: Rows, indices: Sequence[int]) -> List[dict]:
        return ct_pairs(rows, indices, self.pos_neg_ratio)

    def stream(self, rows: Rows, epoch: int, batch_size: int) -> Iterator[List[dict]]:
        raise ConfigError(
            "sampler 'contrastive_tension' shuffles the whole column each epoch and cannot read a streamed dataset; "
            "load it (or use loss='contrastive_tension_in_batch', which reads a stream)"
        )

    def state_dict(self):
        return {"seed": self.seed, "pos_neg_ratio": self.pos_neg_ratio}

    def load_state_dict(self, state) -> None:
        self.seed = state.get("seed", self.seed)
        self.pos_neg_ratio = state.get("pos_neg_ratio", self.pos_neg_ratio)
