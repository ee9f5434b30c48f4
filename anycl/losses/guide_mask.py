r"""GISTEmbed-style guiding in the loss (part 2 of 3; Solatorio 2024, arXiv:2402.16829): the mask of in-batch
candidates that a guide model rates too close to be negatives. Pure tensor math.

A *guide* model (frozen, no gradient) embeds the same batch as the trained model. For anchor
:math:`i` with guide embeddings :math:`g(a_i), g(p_i)` and a candidate :math:`c_j` of its softmax, the
candidate is masked out (its logit set to ``MASK_VALUE``, i.e. it is not a negative) when

.. math:: \cos(g(a_i), g(c_j)) > t_i, \qquad
   t_i = \begin{cases} \cos(g(a_i), g(p_i)) - m & \text{absolute} \\
                       \cos(g(a_i), g(p_i)) - |\cos(g(a_i), g(p_i))|\, m & \text{relative} \end{cases}

and :math:`c_j` is not the anchor's own positive (never masked). Where the query of a row is the
positive (a symmetric loss's second direction), the same threshold :math:`t_i` is used and the guide
similarity is measured from :math:`g(p_i)`, as sentence-transformers' ``GISTEmbedLoss`` does for its
positive–positive block. The loss module that owns the candidate layout builds the full mask from
these pieces (see :class:`anycl.losses.InfoNCE`); the guide embeddings reach it as
``guide={"anchor": (B, D), "positive": (B, D), "negative": (B, K, D) or None}``.

The three parts of guiding: the guide model and its embeddings of each batch, :mod:`anycl.training.guide`;
this mask; the same rule applied to mined candidates, :mod:`anycl.mining.guide_filter`.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from anycl.errors import ConfigError

STRATEGIES = ("absolute", "relative")


def check_margin(margin: float, strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"guide_margin_strategy must be one of {STRATEGIES}, got {strategy!r}")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin != margin:
        raise ConfigError(f"guide_margin must be a number, got {margin!r}")


def guide_thresholds(
    g_anchor: torch.Tensor, g_positive: torch.Tensor, margin: float, strategy: str = "absolute"
) -> torch.Tensor:
    """(B,) thresholds :math:`t_i` from the guide's L2-normalised anchor and positive embeddings."""
    s = (g_anchor * g_positive).sum(-1)
    if strategy == "relative":
        return s - s.abs() * margin
    return s - margin


def guided_block(
    g_query: torch.Tensor, g_cands: torch.Tensor, thresholds: torch.Tensor, keep_col: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """(n, N) bool: True where candidate j's guide similarity to row i's query exceeds ``thresholds[i]``.

    ``keep_col`` (n,) long: per row, a column that is never masked (its own positive), or None.
    All inputs are L2-normalised guide embeddings.
    """
    mask = (g_query @ g_cands.T) > thresholds.unsqueeze(1)
    if keep_col is not None:
        mask[torch.arange(mask.shape[0], device=mask.device), keep_col] = False
    return mask


def normalized_guide(guide: dict) -> dict:
    """The guide embeddings by side, float32 and L2-normalised; ``negative`` flattened to (B·K, D)."""
    out = {}
    for side in ("anchor", "positive", "negative"):
        g = guide.get(side)
        if g is None:
            continue
        g = g.detach().float()
        if side == "negative" and g.dim() == 3:
            g = g.reshape(-1, g.shape[-1])
        out[side] = F.normalize(g, dim=-1)
    return out


def guided_mask(
    mask: Optional[torch.Tensor], g: dict, query: str, rows: slice, batch: int, side_start: Optional[int]
) -> torch.Tensor:
    """``mask`` (n, W) or None, widened and OR-ed with the guide's verdicts for one direction of InfoNCE.

    Candidate layout: the other side's B rows first (the positives, then the flattened negatives, when
    ``query`` is ``"anchor"``; the anchors when it is ``"positive"``), then — when ``side_start`` is given —
    the query side's own B rows from column ``side_start`` (same-side negatives). ``g`` holds the
    normalised guide embeddings and ``threshold`` (B,). Row i's own positive (column ``rows.start + i``)
    is never masked; columns past the guided ones (memory-queue entries) are left as ``mask`` has them.
    """
    start = rows.start or 0
    n = (rows.stop if rows.stop is not None else batch) - start
    gq = g[query][rows]
    thr = g["threshold"][rows]
    own = torch.arange(start, start + n, device=gq.device)
    if query == "anchor":
        other = torch.cat([g["positive"], g["negative"]]) if "negative" in g else g["positive"]
    else:
        other = g["anchor"]
    blocks = [(0, guided_block(gq, other, thr, keep_col=own))]
    if side_start is not None:
        blocks.append((side_start, guided_block(gq, g[query], thr)))
    width = max(c + b.shape[1] for c, b in blocks)
    if mask is not None:
        width = max(width, mask.shape[1])
    full = torch.zeros(n, width, dtype=torch.bool, device=gq.device)
    if mask is not None:
        full[:, : mask.shape[1]] = mask
    for col, b in blocks:
        full[:, col : col + b.shape[1]] |= b
    return full
