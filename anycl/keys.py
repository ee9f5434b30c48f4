"""Hashable identities of raw items, for de-duplication (mining's corpus, in-batch duplicate checks).

Adapters use :func:`item_key` as the default of :meth:`Adapter.key`; it lives in the core so that core
modules need not import the adapters.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import torch


def item_key(item: Any) -> Any:
    """Hashable identity of an item for de-duplication (see :meth:`Adapter.key`)."""
    if isinstance(item, (str, int, float, bool)) or item is None:
        return item
    if isinstance(item, (bytes, bytearray)):
        return hashlib.blake2b(bytes(item), digest_size=16).digest()
    if isinstance(item, os.PathLike):
        return os.fspath(item)
    if torch.is_tensor(item):
        item = item.detach().cpu().numpy()
    if isinstance(item, np.ndarray):
        arr = np.ascontiguousarray(item)
        return (arr.shape, str(arr.dtype), hashlib.blake2b(arr.tobytes(), digest_size=16).digest())
    if isinstance(item, dict):
        # HF Audio/Image features: a path names the item; otherwise hash the payload.
        if item.get("path"):
            return ("path", item["path"])
        return tuple(sorted((k, item_key(v)) for k, v in item.items()))
    if isinstance(item, (list, tuple)):
        return tuple(item_key(v) for v in item)
    try:
        return hash(item)
    except TypeError:
        return id(item)
