r"""InfoNCE's interaction directions and hardness penalty, as sentence-transformers' ``MultipleNegativesRankingLoss``
(``directions``, ``partition_mode``, ``hardness_mode``, ``hardness_strength``): what
:class:`anycl.losses.InfoNCE` computes when those options ask for more than its own paths do.

For query :math:`q_i`, its positive :math:`d_i` and the documents :math:`D` (every row's positive, then every hard
negative), the directions are score blocks of row i: ``query_to_doc`` :math:`q_i \cdot D` (always; it holds the
positive), ``query_to_query`` :math:`q_i \cdot q_j` (:math:`j \ne i`), ``doc_to_query`` :math:`d_i \cdot q_j`
(all j) and ``doc_to_doc`` :math:`d_i \cdot D` less row i's own documents. ``partition_mode="joint"`` takes one
softmax over all chosen blocks, ``"per_direction"`` one per block, their log-partitions averaged:

.. math:: \ell_i = \log Z_i - s(q_i, d_i)/\tau

``hardness_mode`` adds :math:`\alpha \cdot \mathrm{sg}(s_{ij})` (the raw similarity, no gradient; Lan et al. 2025,
arXiv:2503.04812) to the ``query_to_doc`` logits of the in-batch negatives (``"in_batch_negatives"``: the other
rows' documents), of the row's own hard negatives (``"hard_negatives"``) or of both (``"all_negatives"``).

The options that :class:`InfoNCE` already computes map onto its own paths (:func:`plain_options`):
``("query_to_doc", "doc_to_query")`` per direction is ``symmetric=True``; ``("query_to_doc", "query_to_query")``
jointly is ``same_side_negatives=True``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from .base import nonnegative

DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
PARTITION_MODES = ("joint", "per_direction")
HARDNESS_MODES = ("in_batch_negatives", "hard_negatives", "all_negatives")


class DirectionOptions:
    """The checked direction options of one InfoNCE: ``directions`` (None: InfoNCE's own paths compute it, else
    the tuple :func:`directions_loss` scores), ``partition_mode``, ``hardness_mode``, ``hardness_strength``."""

    def __init__(
        self,
        directions: Optional[Sequence[str]],
        partition_mode: str,
        hardness_mode: Optional[str],
        hardness_strength: float,
    ):
        if isinstance(directions, str):
            directions = (directions,)
        if directions is not None:
            directions = tuple(directions)
            if not directions:
                raise ValueError("infonce: directions needs at least 'query_to_doc'")
            unknown = [d for d in directions if d not in DIRECTIONS]
            if unknown:
                raise ValueError(f"infonce: unknown direction(s) {unknown}; the directions are {list(DIRECTIONS)}")
            if "query_to_doc" not in directions:
                raise ValueError("infonce: directions must include 'query_to_doc' (it holds the positive pair)")
            if len(set(directions)) != len(directions):
                raise ValueError(f"infonce: directions lists a direction twice: {list(directions)}")
        if partition_mode not in PARTITION_MODES:
            raise ValueError(f"infonce: partition_mode must be one of {list(PARTITION_MODES)}, got {partition_mode!r}")
        if partition_mode == "per_direction" and set(directions or ()) & {"query_to_query", "doc_to_doc"}:
            raise ValueError(
                "infonce: partition_mode='per_direction' needs every direction to hold the positive pair; "
                "'query_to_query' and 'doc_to_doc' do not: use partition_mode='joint'"
            )
        if hardness_mode is not None and hardness_mode not in HARDNESS_MODES:
            raise ValueError(
                f"infonce: hardness_mode must be None or one of {list(HARDNESS_MODES)}, got {hardness_mode!r}"
            )
        hardness_strength = nonnegative(hardness_strength, "hardness_strength", "infonce")
        self.directions = directions
        self.partition_mode = partition_mode
        self.hardness_mode = hardness_mode if hardness_strength else None  # strength 0: no penalty (as ST)
        self.hardness_strength = float(hardness_strength)

    def plain_options(self) -> Tuple[Optional[Tuple[str, ...]], Dict[str, bool]]:
        """``(directions, options)``: None and InfoNCE's own options (``symmetric``, ``same_side_negatives``)
        where its own paths compute the same thing, else the directions :func:`directions_loss` must score."""
        if self.directions is None:
            return None, {}
        if self.hardness_mode is None:
            chosen = set(self.directions)
            if chosen == {"query_to_doc"}:
                return None, {}
            if chosen == {"query_to_doc", "doc_to_query"} and self.partition_mode == "per_direction":
                return None, {"symmetric": True}
            if chosen == {"query_to_doc", "query_to_query"} and self.partition_mode == "joint":
                return None, {"same_side_negatives": True}
        return self.directions or ("query_to_doc",), {}

    def describe(self) -> str:
        out = "" if self.directions is None else f", directions={self.directions}"
        if self.partition_mode != "joint":
            out += f", partition_mode={self.partition_mode!r}"
        if self.hardness_mode is not None:
            out += f", hardness_mode={self.hardness_mode!r}, hardness_strength={self.hardness_strength:g}"
        return out


def directions_loss(
    queries: torch.Tensor,
    positives: torch.Tensor,
    negatives: Optional[torch.Tensor],
    scale: torch.Tensor,
    options: DirectionOptions,
    directions: Sequence[str],
    same: Optional[torch.Tensor] = None,
    rows: slice = slice(None),
) -> torch.Tensor:
    """The mean of :math:`\\ell_i` over ``queries[rows]`` (see the module's docstring).

    Args:
        queries, positives: (B, D) (normalised already for cosine similarity). negatives: None or (B, K, D),
            row b's hard negatives. scale: 1/τ. same: None or (n, B) bool, True where row i's in-batch
            candidate j shares its label (masked out in every block; never the row's own pair).
        rows: the rows scored (one process's share of a gathered batch); all rows are candidates.
    """
    batch, dim = queries.shape
    device = queries.device
    k = 0 if negatives is None else negatives.shape[1]
    docs = positives if negatives is None else torch.cat([positives, negatives.reshape(-1, dim)])
    index = torch.arange(batch, device=device)[rows]
    n = index.shape[0]
    local = torch.arange(n, device=device)
    # each document's row: the B positives, then the B·K hard negatives row by row
    owner = torch.cat([torch.arange(batch, device=device), torch.arange(batch, device=device).repeat_interleave(k)])
    own = owner.view(1, -1) == index.view(-1, 1)  # (n, B(1+K)): row i's own positive and hard negatives
    q, d = queries[rows], positives[rows]
    inf = float("-inf")
    sims: Dict[str, torch.Tensor] = {"query_to_doc": q @ docs.T}
    if "query_to_query" in directions:
        sims["query_to_query"] = (q @ queries.T).index_put((local, index), torch.tensor(inf, device=device))
    if "doc_to_query" in directions:
        sims["doc_to_query"] = d @ queries.T
    if "doc_to_doc" in directions:
        sims["doc_to_doc"] = (d @ docs.T).masked_fill(own, inf)
    if same is not None:  # labels: in-batch candidates sharing the row's label are not negatives
        for key in sims:
            block = torch.zeros_like(sims[key], dtype=torch.bool)
            block[:, :batch] = same
            sims[key] = sims[key].masked_fill(block, inf)
    penalty = _hardness(sims["query_to_doc"], own, batch, options)
    scale = scale.to(queries.dtype)
    logits = {key: s * scale for key, s in sims.items()}
    if penalty is not None:
        logits["query_to_doc"] = logits["query_to_doc"] + penalty
    positive = logits["query_to_doc"][local, index]
    if options.partition_mode == "joint":
        log_z = torch.logsumexp(torch.cat([logits[key] for key in directions], dim=1), dim=1)
    else:
        log_z = torch.stack([torch.logsumexp(logits[key], dim=1) for key in directions]).mean(dim=0)
    return (log_z - positive).mean()


def _hardness(sims: torch.Tensor, own: torch.Tensor, batch: int, options: DirectionOptions) -> Optional[torch.Tensor]:
    """The ``query_to_doc`` penalty :math:`\\alpha \\cdot \\mathrm{sg}(s)` on the negatives ``hardness_mode``
    names (zero elsewhere), or None."""
    mode = options.hardness_mode
    if mode is None:
        return None
    in_batch = torch.zeros_like(own)
    in_batch[:, :batch] = True
    if mode == "hard_negatives":
        keep = own & ~in_batch
    elif mode == "in_batch_negatives":
        keep = ~own
    else:  # all_negatives: all but the row's own positive
        keep = ~(own & in_batch)
    penalty = options.hardness_strength * sims.detach()
    return torch.where(keep, penalty, torch.zeros_like(penalty)).nan_to_num(0.0, neginf=0.0)


def check_direction_inputs(directions: Any, queue, guide, name: str = "infonce") -> None:
    """The inputs the direction path cannot score: memory-queue entries and guide embeddings."""
    if directions is None:
        return
    if queue is not None:
        raise ValueError(f"{name}: directions / hardness_mode do not take memory-queue entries")
    if guide is not None:
        raise ValueError(f"{name}: directions / hardness_mode do not combine with guided masking (guide=)")
