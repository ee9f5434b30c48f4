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
from typing import Any, Dict, Mapping, Tuple

from torch import nn

from anycl.registry import Registry

from . import st_names

# the base class and helpers live in .base; imported here too, so ``from .registry import X`` keeps working
from .base import (  # noqa: F401
    MASK_VALUE,
    ContrastiveLoss,
    FunctionLoss,
    Temperature,
    as_float,
    check_pair,
    flat_negatives,
    full_precision,
    negative_free_inputs,
    negatives_3d,
    pair_inputs,
    refuse_negatives,
    same_label_mask,
)

LOSSES = Registry("loss", entry_point_group="anycl.losses")


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

    ``name`` may also be an ``nn.Module`` (returned as it is) or a function of embeddings (wrapped), or the
    class name of a sentence-transformers loss (:mod:`anycl.losses.st_names`: the anycl loss it is, or a
    ConfigError saying what to use instead).
    """
    if isinstance(name, nn.Module):
        st_names.refuse_st_module(name)
        if kwargs:
            raise TypeError("loss options can only be given with a loss name, not with a loss module")
        return name
    if callable(name) and not isinstance(name, str):
        return FunctionLoss(name, **kwargs)
    if isinstance(name, str):
        name, kwargs = resolve_name(name, kwargs)
    factory = LOSSES.lookup(name)
    target = factory.func if isinstance(factory, functools.partial) else factory
    params = inspect.signature(target).parameters
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params and not accepts_any]
    if unknown:
        valid = [p for p in params if p not in ("self", "anchor", "positive", "negative", "labels")]
        raise TypeError(f"loss {name!r} has no option(s) {unknown}; its options are {valid}")
    return factory(**kwargs)


def resolve_name(name: str, options: Mapping[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """``(name, options)`` as anycl's: a sentence-transformers loss class name becomes the anycl loss it is, with
    its options translated (:mod:`anycl.losses.st_names`; a refused one is a ConfigError); others are unchanged."""
    if name not in LOSSES and st_names.st_loss_name(name) is not None:
        return st_names.resolve(name, options)
    return name, dict(options)


def names():
    """Registered loss names."""
    return LOSSES.names()
