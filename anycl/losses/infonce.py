"""InfoNCE (MultipleNegativesRanking) and SimCLR's 2N-way NT-Xent: pick each anchor's positive out of a
set of candidates.

Reference: van den Oord et al. 2018 (CPC, arXiv:1807.03748); Chen et al. 2020 (SimCLR,
arXiv:2002.05709); Henderson et al. 2017 (MNRL); Radford et al. 2021 (CLIP: learnable temperature,
clamped so that 1/τ ≤ 100).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .base import nonnegative
from .directions import DirectionOptions, check_direction_inputs, directions_loss
from .fused import row_lse
from .guide_mask import check_margin, guide_thresholds, guided_mask, normalized_guide
from .infonce_functional import info_nce, symmetric_info_nce
from .registry import ContrastiveLoss, Temperature, full_precision, pair_inputs, register, same_label_mask


@register("infonce", "ntxent", "nt_xent", "mnrl", "multiple_negatives_ranking")
class InfoNCE(ContrastiveLoss):
    r"""Cross-entropy over cosine similarities divided by a temperature (the asymmetric query → candidates
    form; ``simclr`` is SimCLR's 2N-way form).

    For anchor :math:`a_i`, its positive :math:`p_i` and candidates :math:`c_j` (all positives of the
    batch, then every given hard negative of every row, then memory-queue entries):

    .. math:: \ell_i = -\log \frac{\exp(\cos(a_i, p_i)/\tau)}{\sum_j \exp(\cos(a_i, c_j)/\tau)}

    Args:
        temperature: :math:`\tau` (default 0.05); 0.05 suits fine-tuning sentence embeddings, 0.1–0.5
            pretraining from augmented views. With ``learn_temperature`` it is the initial value.
        symmetric: also score each positive against all anchors (CLIP's two directions) and average.
        same_side_negatives: the batch's other anchors are negatives of each anchor too (and, with
            ``symmetric``, the other positives of each positive): the query–query and document–document
            terms of GTE's "improved contrastive loss" (Li et al. 2023, arXiv:2308.03281). More negatives
            at no extra encoding; same-label anchors are masked out with ``labels``.
        normalize: L2-normalise embeddings first (cosine similarity). Turn off for dot products.
        learn_temperature: make τ a trained parameter (CLIP: log(1/τ) is learnt, 1/τ clamped at
            ``max_scale``).
        max_scale: the clamp on 1/τ when learnt (default 100, i.e. τ ≥ 0.01, as CLIP).
        chunk_size: score this many anchors at a time with activation checkpointing, for batches whose
            B×B logits do not fit in memory (same values and gradients; the logits are computed twice,
            about 2× the time: ``benchmarks/results/losses.md``).
        hardness_weight: :math:`\beta \ge 0` (default 0: off, exactly the plain loss). Up-weights hard
            negatives in the denominator (the importance weights of Robinson et al. 2021, "Contrastive
            learning with hard negative samples", arXiv:2010.04592, without their debiasing term): with
            :math:`s_{ij}` the (cosine) similarity and :math:`N_i` row i's unmasked negatives,

            .. math:: \ell_i = -\log \frac{e^{s_{ii}/\tau}}{e^{s_{ii}/\tau} + \sum_{j \in N_i} w_{ij}
               e^{s_{ij}/\tau}}, \qquad w_{ij} = \frac{|N_i|\, e^{\beta s_{ij}}}{\sum_{k \in N_i} e^{\beta s_{ik}}}

            The weights have mean 1 over :math:`N_i` and are detached (no gradient flows through them).
            This path materialises the n×N logits (no hand-written backward); ``chunk_size`` still bounds it.
        guide_margin, guide_margin_strategy: the margin of guided false-negative masking (GISTEmbed),
            used when ``forward`` gets ``guide=`` embeddings (``fit(..., guide=...)`` passes them):
            an in-batch candidate — another row's positive, any hard negative, and with
            ``same_side_negatives`` another anchor — is masked out when the guide rates it above the
            guide's anchor–positive similarity minus the margin (``"absolute"``: :math:`s - m`;
            ``"relative"``: :math:`s - |s| m`, as sentence-transformers' ``GISTEmbedLoss``). The row's own
            positive is never masked; memory-queue entries have no guide embedding and are never masked.
            See :mod:`anycl.losses.guide_mask`.
        directions, partition_mode, hardness_mode, hardness_strength: sentence-transformers'
            ``MultipleNegativesRankingLoss`` options, with its meaning and values (see
            :mod:`anycl.losses.directions`): ``directions`` a tuple of ``"query_to_doc"`` (always),
            ``"query_to_query"``, ``"doc_to_query"``, ``"doc_to_doc"``; ``partition_mode`` ``"joint"`` (one softmax)
            or ``"per_direction"``; ``hardness_mode`` ``"in_batch_negatives"``, ``"hard_negatives"`` or
            ``"all_negatives"`` adds ``hardness_strength`` × the detached similarity to those negatives' logits.
            Not with ``symmetric``/``same_side_negatives`` (the same thing by other names), ``chunk_size``,
            ``hardness_weight``, a memory queue or a guide, except where they reduce to the plain loss,
            ``symmetric`` or ``same_side_negatives``.

    Inputs:
        anchor: (B, D). positive: (B, D). negative: optional (B, K, D) or (B, D) hard negatives; every
        row's negatives are candidates for every anchor. labels: optional (B,); in-batch candidates
        sharing the anchor's label (other than its own positive) are masked out as false negatives.
        queue: optional (M, D) memory-queue entries, negatives of every anchor (see ``moco``).
        rows: optional slice of the anchors to score (the mean over them is returned). Across
        processes each process scores its own anchors against all gathered candidates
        (``distributed = "rows"``, see :mod:`anycl.distributed`). guide: optional guide-model
        embeddings ``{"anchor": (B, D), "positive": (B, D), "negative": (B, K, D)}`` (no gradient), in
        the same row order as the inputs (gathered alike across processes).

    Returns a scalar: the mean of :math:`\ell_i` over the batch.

    >>> loss = InfoNCE(temperature=0.05)
    >>> a = torch.randn(8, 16); loss(a, a + 0.01 * torch.randn(8, 16)).item() < 0.1
    True
    """

    distributed = "rows"  # a mean of per-anchor terms: each process scores its own anchors

    accepts_guide = True  # takes guide= embeddings (GISTEmbed masking; anycl.training.guide)

    def __init__(
        self,
        temperature: float = 0.05,
        symmetric: bool = False,
        normalize: bool = True,
        learn_temperature: bool = False,
        max_scale: float = 100.0,
        chunk_size: Optional[int] = None,
        same_side_negatives: bool = False,
        hardness_weight: float = 0.0,
        guide_margin: float = 0.0,
        guide_margin_strategy: str = "absolute",
        directions: Optional[Sequence[str]] = None,
        partition_mode: str = "joint",
        hardness_mode: Optional[str] = None,
        hardness_strength: float = 0.0,
    ):
        super().__init__()
        self.tau = Temperature(temperature, learn_temperature, max_scale, "infonce")
        self.direction_options = DirectionOptions(directions, partition_mode, hardness_mode, hardness_strength)
        self.directions, implied = self.direction_options.plain_options()
        if directions is not None and (symmetric or same_side_negatives):
            raise ValueError(
                "infonce: give directions (sentence-transformers' name) or symmetric / same_side_negatives, not both"
            )
        symmetric = implied.get("symmetric", symmetric)
        same_side_negatives = implied.get("same_side_negatives", same_side_negatives)
        if self.directions is not None and (chunk_size or hardness_weight):
            raise ValueError(
                f"infonce: directions {self.directions} / hardness_mode are computed on the whole batch: "
                "without chunk_size and hardness_weight"
            )
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"infonce: chunk_size must be >= 1, got {chunk_size}")
        hardness_weight = nonnegative(hardness_weight, "hardness_weight", "infonce")
        self.symmetric = bool(symmetric)
        self.same_side_negatives = bool(same_side_negatives)
        self.normalize = bool(normalize)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.hardness_weight = float(hardness_weight)
        self.configure_guide(guide_margin, guide_margin_strategy)
        self.last_guide_masked: Optional[float] = None  # after a guided forward: masked candidates per anchor

    def configure_guide(self, margin: float = 0.0, strategy: str = "absolute") -> None:
        """Set the margin of guided false-negative masking (used when ``forward`` gets ``guide=``)."""
        check_margin(margin, strategy)
        self.guide_margin = float(margin)
        self.guide_margin_strategy = strategy

    @property
    def temperature(self) -> float:
        return self.tau.value

    def forward(self, anchor, positive, negative=None, labels=None, queue=None, rows=None, guide=None):
        check_direction_inputs(self.directions, queue, guide)
        anchor, positive, extra = pair_inputs(anchor, positive, negative, queue, "infonce")
        batch = anchor.shape[0]
        with full_precision(anchor):
            if self.normalize:
                anchor = F.normalize(anchor, dim=-1)
                positive = F.normalize(positive, dim=-1)
                extra = None if extra is None else F.normalize(extra, dim=-1)
            candidates = positive if extra is None else torch.cat([positive, extra])
            rows = slice(0, batch) if rows is None else rows
            start = rows.start or 0
            same = same_label_mask(labels, batch, anchor.device)
            if same is not None:
                same = same & ~torch.eye(batch, dtype=torch.bool, device=anchor.device)
                same = same[rows]
            g = None if guide is None else self._guide(guide, batch, negative is not None)
            scale = self.tau.scale(anchor.device)
            if self.directions is not None:  # sentence-transformers' directions (anycl.losses.directions)
                negs = None if extra is None else extra.view(batch, -1, extra.shape[-1])
                return directions_loss(
                    anchor, positive, negs, scale, self.direction_options, self.directions, same, rows
                )
            n_cands = candidates.shape[0]
            side = n_cands if self.same_side_negatives else None
            mask = self._mask(same, g, "anchor", rows, batch, side, labels, anchor.device)
            if g is not None:  # candidates per anchor the guide masked beyond the label / own-entry masks
                base = self._mask(same, None, "anchor", rows, batch, side, labels, anchor.device)
                extra_masked = mask.sum() - (0 if base is None else base.sum())
                self.last_guide_masked = float(extra_masked) / max(1, mask.shape[0])
            if self._fused_symmetric(rows, batch):
                back = self._mask(same, g, "positive", rows, batch, None, labels, anchor.device)
                return symmetric_info_nce(anchor, candidates, scale, mask, back)
            loss = self._direction(anchor, candidates, scale, mask, rows, start)
            if self.symmetric:
                side = batch if self.same_side_negatives else None
                mask = self._mask(same, g, "positive", rows, batch, side, labels, anchor.device)
                loss = 0.5 * (loss + self._direction(positive, anchor, scale, mask, rows, start))
        return loss

    def _direction(self, queries, candidates, scale, mask, rows: slice, start: int):
        """One direction's loss: ``queries[rows]`` against ``candidates``, followed by the queries themselves
        when same-side negatives are on (the mask then covers both blocks)."""
        if self.same_side_negatives:
            candidates = torch.cat([candidates, queries])
        return info_nce(queries[rows], candidates, scale, mask, self.chunk_size, start, self.hardness_weight)

    def _fused_symmetric(self, rows: slice, batch: int) -> bool:
        """Both directions off one logits matrix (:func:`symmetric_info_nce`) unless an option needs the
        two-matrix path: same-side negatives (two different extra blocks), a hardness weight, chunking,
        or a slice of the rows (across processes the second direction's candidates are all anchors)."""
        whole = (rows.start or 0) == 0 and (rows.stop is None or rows.stop >= batch)
        return (
            self.symmetric
            and whole
            and not self.same_side_negatives
            and not self.hardness_weight
            and not self.chunk_size
        )

    def _guide(self, guide, batch: int, has_negatives: bool) -> dict:
        """The guide embeddings, normalised, with the thresholds :math:`t_i` (anycl.losses.guide_mask)."""
        g = normalized_guide(guide)
        if "anchor" not in g or "positive" not in g:
            raise ValueError("infonce: guide= needs the guide's 'anchor' and 'positive' embeddings")
        if g["anchor"].shape[0] != batch or g["positive"].shape[0] != batch:
            raise ValueError(
                f"infonce: the guide embeddings must have one row per pair ({batch}), got "
                f"{g['anchor'].shape[0]} and {g['positive'].shape[0]}"
            )
        if has_negatives and "negative" not in g:
            raise ValueError("infonce: the batch has hard negatives but guide= has no 'negative' embeddings")
        g["threshold"] = guide_thresholds(g["anchor"], g["positive"], self.guide_margin, self.guide_margin_strategy)
        return g

    @staticmethod
    def _mask(
        same: Optional[torch.Tensor],
        g: Optional[dict],
        query: str,
        rows: slice,
        batch: int,
        side_start: Optional[int],
        labels,
        device,
    ) -> Optional[torch.Tensor]:
        """The false-negative mask of one direction: ``same`` (labels), with ``side_start`` the same-side
        block's own entries (and labels), and with the guide ``g`` what it rates above the threshold
        (:func:`anycl.losses.guide_mask.guided_mask`)."""
        mask: Optional[torch.Tensor]
        if side_start is not None:
            mask = InfoNCE._with_same_side(same, rows, batch, side_start, labels, device)
        else:
            mask = same
        return mask if g is None else guided_mask(mask, g, query, rows, batch, side_start)

    @staticmethod
    def _with_same_side(
        same: Optional[torch.Tensor], rows: slice, batch: int, n_cands: int, labels, device
    ) -> torch.Tensor:
        """The (n, n_cands + batch) false-negative mask once the batch's own side is appended to the
        candidates: ``same`` over the first batch columns; in the appended block each row's own entry
        (itself, not a negative) and, with labels, the entries sharing its label."""
        own = torch.eye(batch, dtype=torch.bool, device=device)[rows]
        if labels is not None:
            shared = same_label_mask(labels, batch, device)
            assert shared is not None  # None only without labels
            own = own | shared[rows]
        mask = torch.zeros(own.shape[0], n_cands + batch, dtype=torch.bool, device=device)
        if same is not None:
            mask[:, :batch] = same
        mask[:, n_cands:] = own
        return mask

    def extra_repr(self) -> str:
        learn = ", learn_temperature=True" if self.tau.learnable else ""
        chunk = f", chunk_size={self.chunk_size}" if self.chunk_size else ""
        side = ", same_side_negatives=True" if self.same_side_negatives else ""
        hard = f", hardness_weight={self.hardness_weight:g}" if self.hardness_weight else ""
        more = self.direction_options.describe()
        return f"temperature={self.temperature:.4g}, symmetric={self.symmetric}{learn}{chunk}{side}{hard}{more}"


@register("simclr", "nt_xent_2n", "ntxent_2n")
class NTXent2N(ContrastiveLoss):
    r"""SimCLR's NT-Xent over 2N views: each of the 2N embeddings must pick its partner view out of the
    other 2N − 1.

    With :math:`z = [a_1..a_N, p_1..p_N]` L2-normalised and :math:`k(i)` the other view of :math:`i`:

    .. math:: \ell_i = -\log \frac{\exp(z_i \cdot z_{k(i)}/\tau)}{\sum_{j \ne i} \exp(z_i \cdot z_j/\tau)},
       \qquad L = \frac{1}{2N} \sum_{i=1}^{2N} \ell_i

    Args:
        temperature: :math:`\tau` (default 0.1; SimCLR used 0.1–0.5). Initial value if learnt.
        learn_temperature, max_scale: as for ``infonce``.

    Inputs:
        anchor, positive: (B, D), the two views. negative: optional (B, K, D) hard negatives, extra
        candidates of every view. labels: optional (B,); views of other rows with the same label are
        masked out (not counted as negatives). queue: optional (M, D) extra negatives.

    Across processes (``distributed = "global"``): all 2N views of the global batch score against
    each other.
    """

    distributed = "global"

    def __init__(self, temperature: float = 0.1, learn_temperature: bool = False, max_scale: float = 100.0):
        super().__init__()
        self.tau = Temperature(temperature, learn_temperature, max_scale, "simclr")

    @property
    def temperature(self) -> float:
        return self.tau.value

    def forward(self, anchor, positive, negative=None, labels=None, queue=None):
        anchor, positive, extra = pair_inputs(anchor, positive, negative, queue, "simclr")
        batch = anchor.shape[0]
        with full_precision(anchor):
            a, p = F.normalize(anchor, dim=-1), F.normalize(positive, dim=-1)
            extra = None if extra is None else F.normalize(extra, dim=-1)
            # One (2B, 2B [+ M]) Gram matrix of z = [a; p] (then the extra candidates): row i's target is
            # its other view, its own entry is masked, and with labels the other same-label views too.
            scale = self.tau.scale(a.device)
            z = torch.cat([a, p])
            rows = torch.arange(2 * batch, device=a.device)
            partner = (rows + batch) % (2 * batch)
            same = same_label_mask(labels, batch, a.device)
            if same is None:
                ce = row_lse(z, extra, scale, diags=(0,), gram=True, targets=partner)
            else:
                eye = torch.eye(batch, dtype=torch.bool, device=a.device)
                own_side, other_side = same | eye, same & ~eye
                mask = torch.cat([torch.cat([own_side, other_side], 1), torch.cat([other_side, own_side], 1)])
                ce = row_lse(z, extra, scale, mask, gram=True, targets=partner)
            return ce / (2 * batch)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}"
