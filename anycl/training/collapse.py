"""Collapse watch: log the spread of the embeddings during training and warn when it falls toward zero.

Collapse — every input mapped to (nearly) the same point — is the usual silent failure of negative-free
methods (BYOL, SimSiam, VICReg, Barlow Twins with a bad setting): the loss keeps going down while the
embeddings become useless. :class:`CollapseWatch` is on by default in ``anycl.fit``.

Measures, on the L2-normalised embeddings :math:`z` of each step's batch:

* ``std``: the mean over dimensions of the per-dimension standard deviation. Healthy embeddings spread
  over the sphere have :math:`\\approx 1/\\sqrt{D}`; collapsed ones 0. ``spread = std · √D`` puts it on
  a 0–1 scale, whatever the width.
* ``alignment``: :math:`\\mathbb{E}\\,\\|z_a - z_p\\|^2` over positive pairs (lower is better).
* ``uniformity``: :math:`\\log \\mathbb{E}_{i \\ne j}\\, e^{-2\\|z_i - z_j\\|^2}` over the batch's anchors
  (lower is better; 0 means collapsed).

Beside them, the quantity contrastive learning moves (logged under ``similarity/``): ``positive``, the
mean cosine similarity of each anchor to its positive, and ``hardest_negative``, the mean over anchors of
the highest cosine similarity to another row's positive in the batch (the in-batch negative the loss
pushes hardest). Training should open the gap between them.

Reference: Wang & Isola 2020, "Understanding Contrastive Representation Learning through Alignment and
Uniformity on the Hypersphere" (ICML, arXiv:2005.10242).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from .contracts import Callback

log = logging.getLogger("anycl")


def spread_std(z: torch.Tensor) -> torch.Tensor:
    """Mean per-dimension std of L2-normalised rows ``z`` (N, D)."""
    z = F.normalize(z.float(), dim=-1)
    return z.std(dim=0).mean()


def alignment(a: torch.Tensor, p: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Wang & Isola's alignment: mean ``||z_a - z_p||^alpha`` of normalised pairs."""
    a, p = F.normalize(a.float(), dim=-1), F.normalize(p.float(), dim=-1)
    return (a - p).norm(dim=-1).pow(alpha).mean()


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola's uniformity: ``log mean_{i<j} exp(-t ||z_i - z_j||^2)`` of normalised rows."""
    z = F.normalize(z.float(), dim=-1)
    sq = torch.pdist(z).pow(2)
    if sq.numel() == 0:
        return z.new_zeros(())
    return torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel())


def embedding_stats(anchor: torch.Tensor, positive: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """{"std", "spread", "uniformity"[, "alignment"]} of one batch of embeddings."""
    std = float(spread_std(anchor))
    out = {"std": std, "spread": std * math.sqrt(anchor.shape[1]), "uniformity": float(uniformity(anchor))}
    if positive is not None and positive.shape == anchor.shape:
        out["alignment"] = float(alignment(anchor, positive))
    return out


def similarity_stats(anchor: torch.Tensor, positive: torch.Tensor) -> Dict[str, float]:
    """{"positive", "hardest_negative"}: mean cosine of anchor_i to positive_i, and mean over i of
    max_{j != i} cosine of anchor_i to positive_j (rows whose positive equals anchor_i's are skipped)."""
    a, p = F.normalize(anchor.float(), dim=-1), F.normalize(positive.float(), dim=-1)
    sim = a @ p.T
    pos = sim.diagonal()
    same = torch.cdist(p, p, p=float("inf")) <= 1e-6  # duplicate positives (max |p_i - p_j|) are not negatives
    hardest = sim.masked_fill(same, float("-inf")).amax(dim=1)
    ok = torch.isfinite(hardest)
    return {"positive": float(pos.mean()), "hardest_negative": float(hardest[ok].mean()) if ok.any() else float("nan")}


def tracker_key(name: str) -> str:
    """The tracker (TensorBoard) name of a :class:`CollapseWatch` history key."""
    return f"similarity/{name}" if name in ("positive", "hardest_negative") else f"collapse/{name}"


class CollapseWatch(Callback):
    """Training callback: embedding spread, alignment and uniformity; a warning when they collapse.

    Args:
        threshold: warn when ``spread`` (mean per-dimension std of normalised embeddings × √D, 1 for
            perfectly spread embeddings, 0 for collapsed ones) falls below it (default 0.1) ...
        relative: ... or below this fraction of its value at the first step (default 0.2).
        every: compute and log every N steps (default: the trainer's ``log_every``); the collapse test
            runs at every such step.
        patience: the number of consecutive checks below the threshold before warning (default 2), so
            that one odd batch does not cry wolf.

    Logged under ``collapse/std``, ``collapse/spread``, ``collapse/alignment``, ``collapse/uniformity``
    (trackers) and kept in :attr:`history`. The warning names the step; it is given once per run
    (``fired_at`` holds the step).
    """

    def __init__(self, threshold: float = 0.1, relative: float = 0.2, every: Optional[int] = None, patience: int = 2):
        self.threshold = float(threshold)
        self.relative = float(relative)
        self.every = every
        self.patience = max(1, int(patience))
        self.history: List[Dict[str, Any]] = []
        self.fired_at: Optional[int] = None
        self._initial: Optional[float] = None
        self._below = 0

    def _embeddings(self, trainer) -> Dict[str, torch.Tensor]:
        module = getattr(trainer, "module", None)
        if module is None:
            return {}
        acc = getattr(trainer, "accelerator", None)
        if acc is not None:
            module = acc.unwrap_model(module)
        return getattr(module, "last_embeddings", None) or {}

    def on_step_end(self, trainer, step: int, logs: Dict[str, Any]) -> None:
        every = self.every or getattr(getattr(trainer, "args", None), "log_every", 10) or 1
        if step != 1 and step % every:
            return
        emb = self._embeddings(trainer)
        anchor = emb.get("anchor")
        if anchor is None or anchor.dim() != 2 or anchor.shape[0] < 2:
            return
        stats = embedding_stats(anchor, emb.get("positive"))
        sims = {}
        positive = emb.get("positive")
        if positive is not None and positive.shape == anchor.shape:
            sims = similarity_stats(anchor, positive)
        self.history.append({"step": step, **stats, **sims})
        acc = getattr(trainer, "accelerator", None)
        if acc is not None:
            acc.log({tracker_key(k): v for k, v in {**stats, **sims}.items()}, step=step)
        if self._initial is None:
            self._initial = stats["spread"]
        low = stats["spread"] < self.threshold or stats["spread"] < self.relative * self._initial
        self._below = self._below + 1 if low else 0
        if self._below >= self.patience and self.fired_at is None:
            self.fired_at = step
            loss_name = getattr(getattr(trainer, "loss", None), "registry_name", None)
            log.warning(
                "embedding collapse at step %d: the spread of the normalised embeddings fell to %.4f "
                "(mean per-dimension std %.5f; it was %.4f at the start; 1 = spread over the sphere, 0 = every "
                "input gives the same embedding); uniformity %.3f. The loss%s may keep falling while the "
                "embeddings become useless: lower the learning rate, check the augmentations, or for "
                "negative-free losses keep the predictor / momentum target / variance term.",
                step,
                stats["spread"],
                stats["std"],
                self._initial,
                stats["uniformity"],
                f" ({loss_name})" if loss_name else "",
            )
