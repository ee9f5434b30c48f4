"""The loss registry: names → loss classes.

A loss is an ``nn.Module`` whose ``forward(anchor, positive, negative=None, labels=None)`` takes
embeddings only — never raw data and never the model — and returns a scalar tensor. Because of that,
GradCache, cross-process gathering and memory queues work for every registered loss without changes.

Register a class, or a plain function of embeddings (its keyword arguments become the loss options)::

    @anycl.losses.register("cosine_pull")
    def cosine_pull(anchor, positive, negative=None, labels=None, weight=1.0):
        return weight * (1 - F.cosine_similarity(anchor, positive)).mean()
"""
from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

from ..registry import Registry

LOSSES = Registry("loss", entry_point_group="anycl.losses")


class ContrastiveLoss(nn.Module):
    """Base class of anycl losses. Subclasses set the class attributes that describe their inputs.

    Attributes:
        in_batch_negatives: the loss contrasts each anchor with the other items of the batch, so a
            batch needs at least two distinct items and duplicates are false negatives.
        accepts_negatives: given or mined hard negatives (``negative`` of shape (B, K, D)) are used.
        needs_labels: the loss needs ``labels`` (B,) (for example supervised contrastive).
        negative_free: no negatives at all (BYOL, SimSiam, VICReg, Barlow Twins).
        distributed: how the loss runs across processes (see :mod:`anycl.distributed`): ``"global"``
            (default, any loss: it gets the gathered global batch), ``"rows"`` (a mean of per-anchor
            terms; ``forward`` takes ``rows=slice`` and scores only those anchors against all
            candidates; memory linear in the world size) or ``"local"`` (no gathering).
    """

    in_batch_negatives: bool = True
    accepts_negatives: bool = True
    needs_labels: bool = False
    negative_free: bool = False
    distributed: str = "global"

    def forward(self, anchor, positive, negative=None, labels=None):  # pragma: no cover - abstract
        raise NotImplementedError


class FunctionLoss(ContrastiveLoss):
    """Wraps a plain function of embeddings as a loss module (what ``register`` does with functions)."""

    def __init__(self, fn, **options):
        super().__init__()
        self.fn = fn
        self.options = options
        for attr in ("in_batch_negatives", "accepts_negatives", "needs_labels", "negative_free", "distributed"):
            if hasattr(fn, attr):
                setattr(self, attr, getattr(fn, attr))

    def forward(self, anchor, positive, negative=None, labels=None, **rows):
        return self.fn(anchor, positive, negative=negative, labels=labels, **rows, **self.options)

    def extra_repr(self) -> str:
        return f"{getattr(self.fn, '__name__', self.fn)}, {self.options}"


def register(name: str, *aliases: str, override: bool = False):
    """Decorator registering a loss class or function under ``name``."""

    def deco(obj):
        if inspect.isclass(obj):
            if not issubclass(obj, nn.Module):
                raise TypeError(f"loss {name!r} must be an nn.Module subclass or a function")
            return LOSSES.register(name, *aliases, override=override)(obj)
        if not callable(obj):
            raise TypeError(f"loss {name!r} must be an nn.Module subclass or a function")
        factory = functools.partial(FunctionLoss, obj)
        functools.update_wrapper(factory, obj)
        LOSSES.register(name, *aliases, override=override)(factory)
        return obj

    return deco


def get(name, **kwargs) -> nn.Module:
    """Build a registered loss: ``get("infonce", temperature=0.05)``.

    ``name`` may also be an ``nn.Module`` (returned as it is) or a function of embeddings (wrapped).
    """
    if isinstance(name, nn.Module):
        if kwargs:
            raise TypeError("loss options can only be given with a loss name, not with a loss module")
        return name
    if callable(name) and not isinstance(name, str):
        return FunctionLoss(name, **kwargs)
    factory = LOSSES.lookup(name)
    target = factory.func if isinstance(factory, functools.partial) else factory
    params = inspect.signature(target).parameters
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params and not accepts_any]
    if unknown:
        valid = [p for p in params if p not in ("self", "anchor", "positive", "negative", "labels")]
        raise TypeError(f"loss {name!r} has no option(s) {unknown}; its options are {valid}")
    return factory(**kwargs)


def names():
    """Registered loss names."""
    return LOSSES.names()


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
        raise ValueError(
            f"{loss_name}: negatives must have shape ({batch}, K, {dim}), got {tuple(negative.shape)}"
        )
    return negative
