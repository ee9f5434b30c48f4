"""InfoNCE as functions of embeddings (what :class:`anycl.losses.infonce.InfoNCE` computes with): one direction
over rows, optionally scored ``chunk_size`` rows at a time under activation checkpointing and with a
hardness-weighted denominator, and CLIP's symmetric form from one logits matrix."""

from __future__ import annotations

from typing import Optional

import torch
from torch.utils.checkpoint import checkpoint

from .fused import row_col_ce, row_lse
from .hardness import hardness_weighted_ce


def _row_chunk_ce(
    q: torch.Tensor,
    cands: torch.Tensor,
    scale: torch.Tensor,
    false_neg: Optional[torch.Tensor],
    offset: int = 0,
    hardness: float = 0.0,
) -> torch.Tensor:
    """Summed cross-entropy of rows ``q`` (n, D) against ``cands`` (N, D), row i's target being candidate
    ``offset + i``; ``false_neg`` (n, B) masks the first B candidate columns."""
    if hardness:
        return hardness_weighted_ce(q, cands, scale.to(q.dtype), false_neg, offset, float(hardness))
    targets = torch.arange(offset, offset + q.shape[0], device=q.device)
    return row_lse(q, cands, scale.to(q.dtype), false_neg, targets=targets)


def info_nce(
    q: torch.Tensor,
    cands: torch.Tensor,
    scale: torch.Tensor,
    false_neg: Optional[torch.Tensor] = None,
    chunk_size: Optional[int] = None,
    offset: int = 0,
    hardness: float = 0.0,
) -> torch.Tensor:
    """Mean over rows i of ``-log softmax(scale · q_i·cands)[offset + i]``: row i's positive is candidate
    ``offset + i`` (``offset`` > 0 when q holds one process's rows of a gathered batch).

    Args:
        q: (B, D) queries. cands: (N ≥ B, D) candidates; the first B are the queries' positives.
        scale: 1/τ (a scalar tensor; may require grad).
        false_neg: optional (B, W ≤ N) bool, True where candidate j (< W) must not count as a negative of i.
        chunk_size: score ``chunk_size`` rows at a time under activation checkpointing, so only a
            chunk_size×N block of logits is ever alive (forward and backward); same values and gradients.
        hardness: β of the hardness-weighted denominator (0: plain InfoNCE, the same code path).
    """
    batch = q.shape[0]
    if not chunk_size or chunk_size >= batch:
        return _row_chunk_ce(q, cands, scale, false_neg, offset, hardness) / batch
    total = q.new_zeros(())
    for s in range(0, batch, chunk_size):
        e = min(s + chunk_size, batch)
        mask = None if false_neg is None else false_neg[s:e]
        if torch.is_grad_enabled():
            total = total + checkpoint(
                _row_chunk_ce, q[s:e], cands, scale, mask, offset + s, hardness, use_reentrant=False
            )
        else:
            total = total + _row_chunk_ce(q[s:e], cands, scale, mask, offset + s, hardness)
    return total / batch


def symmetric_info_nce(
    a: torch.Tensor,
    cands: torch.Tensor,
    scale: torch.Tensor,
    row_mask: Optional[torch.Tensor] = None,
    back_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE, ``0.5 · (info_nce(a, cands) + info_nce(p, a))`` with p = ``cands[:B]``,
    from one (B, N) logits matrix: the second direction is its first B columns' log-sum-exps.

    ``row_mask``: optional (B, W) false negatives of the anchors' direction; ``back_mask``: optional
    (B, B) of the positives' direction (row j: positive j; column i: anchor i).
    """
    batch = a.shape[0]
    scale = scale.to(a.dtype)
    col_mask = None if back_mask is None else back_mask.T
    return 0.5 * row_col_ce(a, cands, scale, row_mask, col_mask) / batch
