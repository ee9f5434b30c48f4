"""What every loss builds on: the base class :class:`ContrastiveLoss` (and :class:`FunctionLoss` for plain
functions), the learnable :class:`Temperature`, and the shared input checks and helpers (shapes, float32
maths, negatives and memory-queue candidates, label masks). The name → class table is
:mod:`anycl.losses.registry`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Optional

import torch
from torch import nn


class ContrastiveLoss(nn.Module):
    """Base class of anycl losses. Subclasses set the class attributes that describe their inputs.

    Attributes:
        in_batch_negatives: the loss contrasts each anchor with the other items of the batch, so a
            batch needs at least two distinct items and duplicates are false negatives.
        accepts_negatives: given or mined hard negatives (``negative`` of shape (B, K, D)) are used.
        needs_labels: the loss needs ``labels`` (B,) (for example supervised contrastive).
        label_values: None (any labels: only equality counts), or the integers the ``label`` column must hold
            (``contrastive``: 0 and 1; ``softmax``: 0 … num_labels − 1); ``fit`` checks every row first.
        score_columns: numeric columns the loss reads (``score``; ``positive_score``/``negative_score``),
            passed to ``forward`` as (B,) float keywords of those names; ``score_range``: (low, high)
            that ``fit`` checks them against (None: any finite number). See :mod:`anycl.losses.graded`.
        needs_teacher: the loss has a ``teacher`` (as the user gave it); ``fit`` opens it and embeds each row's anchor
            with it once and passes ``teacher=`` (B, D). See :mod:`anycl.losses.distill`.
        negative_free: no negatives at all (BYOL, SimSiam, VICReg, Barlow Twins). Such a loss refuses
            hard negatives (``fit`` raises before training; ``forward`` raises too).
        distributed: how the loss runs across processes (see :mod:`anycl.distributed`): ``"global"``
            (default, any loss: it gets the gathered global batch — right for whole-batch statistics
            such as VICReg's variances/covariances and Barlow Twins' cross-correlation), ``"rows"`` (a
            mean of per-anchor terms; ``forward`` takes ``rows=slice`` and scores only those anchors
            against all candidates; memory linear in the world size) or ``"local"`` (no gathering).
        momentum_target: ``None``, or a dict of :class:`anycl.losses.momentum.MomentumTarget` options
            (``momentum``, ``final_momentum``, ``schedule``). When set, the training module keeps an
            EMA copy of the model, embeds each batch with it too (no gradient), passes
            ``target={"anchor": (B, D), "positive": (B, D)}`` to ``forward`` and updates the copy
            after every optimiser step.
        second_tower: the loss trains two copies of the model (Contrastive Tension,
            :mod:`anycl.losses.contrastive_tension`): the training module keeps a trainable copy that embeds the
            ``anchor`` side while the model embeds the others; the copy's parameters are optimised and
            checkpointed with the model's, and only the model is saved.
    """

    in_batch_negatives: bool = True
    accepts_negatives: bool = True
    needs_labels: bool = False
    label_values: Optional[tuple] = None
    score_columns: tuple = ()
    score_range: Optional[tuple] = None
    needs_teacher: bool = False
    negative_free: bool = False
    distributed: str = "global"
    momentum_target: Optional[dict] = None
    second_tower: bool = False

    def forward(self, anchor, positive, negative=None, labels=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def build(self, embedding_dim: int) -> None:
        """Called once with the model's embedding width before the optimiser is made (predictor heads
        are sized here). The default does nothing."""


# what a loss declares about its inputs; wrappers (FunctionLoss, MatryoshkaLoss) copy them from what they wrap
CAPABILITIES = (
    "in_batch_negatives",
    "accepts_negatives",
    "needs_labels",
    "label_values",
    "negative_free",
    "distributed",
    "momentum_target",
    "second_tower",
    "score_columns",
    "score_range",
    "needs_teacher",
)


def copy_capabilities(dst, src, names=CAPABILITIES) -> None:
    """Set on ``dst`` each of ``names`` that ``src`` has."""
    for attr in names:
        if hasattr(src, attr):
            setattr(dst, attr, getattr(src, attr))


class FunctionLoss(ContrastiveLoss):
    """Wraps a plain function of embeddings as a loss module (what ``register`` does with functions)."""

    def __init__(self, fn, **options):
        super().__init__()
        self.fn = fn
        self.options = options
        copy_capabilities(self, fn, CAPABILITIES)

    def forward(self, anchor, positive, negative=None, labels=None, **rows):
        return self.fn(anchor, positive, negative=negative, labels=labels, **rows, **self.options)

    def extra_repr(self) -> str:
        return f"{getattr(self.fn, '__name__', self.fn)}, {self.options}"


def nonnegative(value, option: str, loss_name: str) -> float:
    """``value`` as a float when it is a number >= 0 (not a bool), else a ValueError naming the loss and option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{loss_name}: {option} must be a number >= 0, got {value!r}")
    return float(value)


def as_float(*tensors):
    """Losses compute in float32 whatever the autocast dtype (bf16/fp16 logits overflow at low temperature)."""
    return tuple(None if t is None else t.float() for t in tensors)


def check_pair(anchor: torch.Tensor, positive: torch.Tensor, loss_name: str) -> None:
    """Raise a clear error when the two views do not line up."""
    if anchor.dim() != 2 or positive.dim() != 2:
        raise ValueError(
            f"{loss_name}: anchor and positive must be (batch, dim) embeddings, got shapes "
            f"{tuple(anchor.shape)} and {tuple(positive.shape)}"
        )
    if anchor.shape != positive.shape:
        raise ValueError(
            f"{loss_name}: anchor {tuple(anchor.shape)} and positive {tuple(positive.shape)} differ in "
            f"batch size or embedding width; both sides must give one (batch, dim) row per pair"
        )


def negatives_3d(negative, batch: int, dim: int, loss_name: str):
    """Accept negatives as (B, D) (one each) or (B, K, D); return (B, K, D) or None."""
    if negative is None:
        return None
    if negative.dim() == 2:
        negative = negative.unsqueeze(1)
    if negative.dim() != 3 or negative.shape[0] != batch or negative.shape[2] != dim:
        raise ValueError(f"{loss_name}: negatives must have shape ({batch}, K, {dim}), got {tuple(negative.shape)}")
    return negative


# A finite "minus infinity": masking with -inf makes a row of all-masked logits NaN. exp(-1e4) is 0 in
# float32, so a masked entry contributes nothing, and -1e4 stays finite in float16 (max 65504).
MASK_VALUE = -1e4


@contextlib.contextmanager
def full_precision(*tensors):
    """Run the loss maths in float32 with autocast switched off for the tensors' device.

    Under bf16/fp16 autocast a matmul would be cast back to half precision: at temperature 0.01 a
    bf16 logit of 100 carries an error of about 0.5. Losses compute in float32 instead.
    """
    device = next((t.device.type for t in tensors if t is not None), "cpu")
    if device not in ("cpu", "cuda", "mps", "xpu"):
        yield
        return
    with torch.autocast(device_type=device, enabled=False):
        yield


def refuse_negatives(negative, loss_name: str) -> None:
    """Negative-free losses refuse hard negatives rather than silently ignore them."""
    if negative is not None:
        raise ValueError(
            f"{loss_name} is negative-free and cannot use hard negatives; drop the negative column(s) or "
            f"pick a loss that uses them (infonce, triplet, supcon, dcl, siglip)"
        )


def flat_negatives(negative, queue, batch: int, dim: int, loss_name: str):
    """Given negatives (B, K, D) / (B, D) and memory-queue entries (M, D) as one (B*K + M, D) set of
    candidates shared by every anchor, or None."""
    parts = []
    negative = negatives_3d(negative, batch, dim, loss_name)
    if negative is not None:
        parts.append(negative.reshape(-1, dim))
    if queue is not None:
        if queue.dim() != 2 or queue.shape[1] != dim:
            raise ValueError(f"{loss_name}: queue entries must be (M, {dim}), got {tuple(queue.shape)}")
        parts.append(queue)
    if not parts:
        return None
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def same_label_mask(labels, batch: int, device) -> Optional[torch.Tensor]:
    """(B, B) bool: True where two rows share a label (diagonal included); None without labels."""
    if labels is None:
        return None
    labels = torch.as_tensor(labels, device=device).view(-1)
    if labels.numel() != batch:
        raise ValueError(f"labels must have one entry per row ({batch}), got {labels.numel()}")
    return labels.view(-1, 1) == labels.view(1, -1)


class Temperature(nn.Module):
    """τ fixed, or learnable as CLIP does: log(1/τ) is the parameter and 1/τ is clamped at ``max_scale``
    (CLIP: 100). ``scale(device)`` gives 1/τ as a float32 tensor."""

    def __init__(self, temperature: float, learnable: bool = False, max_scale: float = 100.0, name: str = "loss"):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"{name}: temperature must be > 0, got {temperature}")
        if not max_scale > 0:
            raise ValueError(f"{name}: max_scale must be > 0, got {max_scale}")
        self.learnable = bool(learnable)
        self.max_scale = float(max_scale)
        self.initial = float(temperature)
        if self.learnable:
            self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def scale(self, device) -> torch.Tensor:
        if self.learnable:
            return self.log_scale.float().clamp(max=math.log(self.max_scale)).exp()
        return torch.tensor(1.0 / self.initial, device=device)

    @property
    def value(self) -> float:
        """The current τ."""
        return 1.0 / float(self.scale("cpu").detach()) if self.learnable else self.initial


def pair_inputs(anchor, positive, negative, queue, loss_name: str):
    """The common start of a loss with negatives: check the views line up, compute in float32, and put
    given negatives and queue entries into one (M, D) candidate set. Returns (anchor, positive, extra)."""
    check_pair(anchor, positive, loss_name)
    anchor, positive, negative, queue = as_float(anchor, positive, negative, queue)
    batch, dim = anchor.shape
    return anchor, positive, flat_negatives(negative, queue, batch, dim, loss_name)


def negative_free_inputs(anchor, positive, negative, loss_name: str, why: str):
    """The common start of a batch-statistics, negative-free loss: checks, refusal of hard negatives,
    a batch of at least 2, float32."""
    check_pair(anchor, positive, loss_name)
    refuse_negatives(negative, loss_name)
    if anchor.shape[0] < 2:
        raise ValueError(f"{loss_name}: needs a batch of at least 2 pairs ({why})")
    return as_float(anchor, positive)


def split_loss(out) -> tuple:
    """A loss returns a scalar or a dict with ``loss`` and extra terms to log."""
    if isinstance(out, dict):
        if "loss" not in out:
            raise ValueError("a loss that returns a dict must put the value to minimise under 'loss'")
        return out["loss"], {
            k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in out.items() if k != "loss"
        }
    return out, {}
